/*
 * The FSM (consensus/fsm.c) on libraft's deterministic raft_fixture, 3 and 5
 * servers, each with its own SQLite store in a temporary directory.
 *
 * The test drives proposals itself: a barrier of the leader's own term before
 * it serves, raft_apply of one encoded entry per request, and a retry with
 * the same request id whenever the outcome is unknown (leadership lost, the
 * leader killed). Every acknowledged result is recorded. A fixture hook
 * samples every store after every step and records each counter decrease
 * with the index range it happened in; at the end each decrease must be
 * covered by an acknowledged REGISTER or SUCCESS (RESET) in that range.
 * Scenarios: leader loss mid-stream (before and after the entry reached the
 * followers), a minority partition, a lagging node that must install a
 * snapshot, the guess limit through Raft, a malformed entry, a store ahead
 * of its log (an error for the proposer, never OK), and several
 * entries committed in one step (libraft 0.22.1 fires their callbacks only
 * after applying all of them). Every wait is bounded in virtual time. One
 * case runs a real single-member node (node.h) on loopback instead: propose
 * must ignore the record/wrapped fields of an ATTEMPT.
 * Set BKV_RAFT_TRACE=1 to see libraft's own trace.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <raft.h>
#include <raft/fixture.h>

#include "harness.h"

#include "consensus/fsm.h"
#include "consensus/image.h"
#include "consensus/node.h"
#include "consensus/store.h"
#include "proto/err.h"

#define MAXN    5
#define N_ACCT  4
#define WAIT_MS 20000 /* virtual milliseconds any single wait may take */
#define MAX_DEC 256
#define MAX_RST 64

struct prop {
    struct raft_apply req;
    int done, status, fsm_status;
    uint64_t index;
    size_t n;
    struct bkv_cmd_result res;
};

struct barrier {
    struct raft_barrier req;
    int done, status;
};

struct cluster {
    struct raft_fixture fx;
    unsigned n;
    char dir[64];
    struct bkv_store *store[MAXN];
    struct bkv_fsm *fsm[MAXN];
    unsigned ready; /* 1 + the leader whose barrier of ready_term committed */
    raft_term ready_term;
    raft_index last_barrier;
    void **pool; /* requests, freed after the fixture is closed */
    size_t n_pool;
    /* the sampler's view of each store, and the decreases it saw */
    uint64_t seen_applied[MAXN];
    uint32_t seen[MAXN][N_ACCT];
    struct {
        unsigned acct;
        uint64_t from, to;
    } dec[MAX_DEC];
    size_t n_dec;
    uint64_t resets[N_ACCT][MAX_RST]; /* indexes of acknowledged REGISTER/RESET */
    size_t n_resets[N_ACCT];
    unsigned counted[N_ACCT]; /* distinct acknowledged ATTEMPTs counted */
    unsigned acked, replayed, leader_changes;
};

static struct cluster *C;
static unsigned request_seq;
static unsigned long fetch_copies; /* images the fixture's fetch hook copied */

static void quiet_emit(struct raft_tracer *t, int type, const void *info)
{
    (void)t;
    (void)type;
    (void)info;
}

static struct raft_tracer quiet = {NULL, 2, quiet_emit};

static void *pool_new(struct cluster *c, size_t size)
{
    void *p = calloc(1, size);
    void **grown = realloc(c->pool, (c->n_pool + 1) * sizeof(*c->pool));

    CU_ASSERT_FATAL(p != NULL && grown != NULL);
    c->pool = grown;
    c->pool[c->n_pool++] = p;
    return p;
}

static struct raft *srv(struct cluster *c, unsigned i)
{
    return raft_fixture_get(&c->fx, i);
}

static uint32_t attempts_of(struct bkv_store *s, unsigned acct)
{
    struct bkv_store_record rec;
    uint8_t a[BKV_ACCOUNT_KEY_LEN] = {(uint8_t)acct, 0xac};
    int found = 0;
    uint32_t n = 0;

    if (bkv_store_get(s, a, &rec, &found) == BKV_OK && found) {
        n = rec.attempts;
        bkv_store_record_free(&rec);
    }
    return n;
}

/* The fixture hook: look at every store whose applied index moved. */
static void sample(struct raft_fixture *fx, struct raft_fixture_event *ev)
{
    struct cluster *c = C;

    (void)fx;
    (void)ev;
    for (unsigned i = 0; i < c->n; i++) {
        uint64_t applied = bkv_store_applied_index(c->store[i]);

        if (applied == c->seen_applied[i])
            continue;
        for (unsigned a = 0; a < N_ACCT; a++) {
            uint32_t now = attempts_of(c->store[i], a);

            if (now < c->seen[i][a] && c->n_dec < MAX_DEC) {
                c->dec[c->n_dec].acct = a;
                c->dec[c->n_dec].from = c->seen_applied[i];
                c->dec[c->n_dec++].to = applied;
            }
            c->seen[i][a] = now;
        }
        c->seen_applied[i] = applied;
    }
}

/* Copy the file src to the new file dest; 0 or -1. */
static int copy_file(const char *src, const char *dest)
{
    uint8_t buf[16384];
    FILE *in = fopen(src, "rb"), *out = in != NULL ? fopen(dest, "wbx") : NULL;
    size_t got;
    int rv = in != NULL && out != NULL ? 0 : -1;

    while (rv == 0 && (got = fread(buf, 1, sizeof(buf), in)) > 0)
        if (fwrite(buf, 1, got, out) != got)
            rv = -1;
    if (in != NULL && ferror(in))
        rv = -1;
    if (out != NULL && fclose(out) != 0)
        rv = -1;
    if (in != NULL)
        fclose(in);
    return rv;
}

/*
 * The FSM's fetch hook on raft_fixture (its transport is in memory, so there
 * is no image server to ask): copy the image from another node's image
 * directory, as the real hook streams it from a member's server, and check
 * it like the real one does (size, SHA-256).
 */
static int fixture_fetch(void *arg, const uint8_t sha256[static 32], uint64_t size,
                         const char *dest, char *err, size_t err_cap)
{
    struct cluster *c = C;
    unsigned self = (unsigned)(uintptr_t)arg;
    struct bkv_image_desc d = {0, size, {0}};

    memcpy(d.sha256, sha256, 32);
    snprintf(err, err_cap, "no other node has the image");
    for (unsigned i = 0; i < c->n; i++) {
        char src[256];

        if (i == self || bkv_image_path(c->fsm[i]->image_dir, sha256, src, sizeof(src)) != BKV_OK ||
            access(src, R_OK) != 0)
            continue;
        if (copy_file(src, dest) == 0 && bkv_image_verify(dest, &d, err, err_cap) == BKV_OK) {
            fetch_copies++;
            return BKV_OK;
        }
        unlink(dest);
    }
    return BKV_ERR_IO;
}

static struct cluster *cluster_new(unsigned n)
{
    struct cluster *c = calloc(1, sizeof(*c));
    struct raft_configuration conf;
    char path[256], images[256], db[256], err[BKV_STORE_ERRMSG_LEN];

    CU_ASSERT_FATAL(c != NULL);
    C = c;
    c->n = n;
    snprintf(c->dir, sizeof(c->dir), "/tmp/bkv-fixture-XXXXXX");
    CU_ASSERT_FATAL(mkdtemp(c->dir) != NULL);
    CU_ASSERT_EQUAL_FATAL(raft_fixture_initialize(&c->fx), 0);
    for (unsigned i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/%u", c->dir, i);
        CU_ASSERT_FATAL(mkdir(path, 0700) == 0);
        snprintf(path, sizeof(path), "%s/%u/snapshots", c->dir, i);
        CU_ASSERT_FATAL(mkdir(path, 0700) == 0);
        snprintf(images, sizeof(images), "%s/%u/images", c->dir, i);
        CU_ASSERT_FATAL(mkdir(images, 0700) == 0);
        snprintf(db, sizeof(db), "%s/%u/state.db", c->dir, i);
        CU_ASSERT_EQUAL_FATAL(bkv_store_open(db, &c->store[i], err, sizeof(err)), BKV_OK);
        bkv_store_set_group(c->store[i], 8); /* group commit, as node.c runs it */
        c->fsm[i] = calloc(1, sizeof(*c->fsm[i]));
        CU_ASSERT_FATAL(c->fsm[i] != NULL);
        CU_ASSERT_EQUAL_FATAL(bkv_fsm_init(c->fsm[i], c->store[i], path, images), BKV_OK);
        bkv_fsm_set_fetch(c->fsm[i], fixture_fetch, (void *)(uintptr_t)i);
        CU_ASSERT_EQUAL_FATAL(raft_fixture_grow(&c->fx, &c->fsm[i]->raft), 0);
        bkv_fsm_bind(c->fsm[i], srv(c, i));
        if (getenv("BKV_RAFT_TRACE") == NULL)
            srv(c, i)->tracer = &quiet;
    }
    CU_ASSERT_EQUAL_FATAL(raft_fixture_configuration(&c->fx, n, &conf), 0);
    CU_ASSERT_EQUAL_FATAL(raft_fixture_bootstrap(&c->fx, &conf), 0);
    raft_configuration_close(&conf);
    CU_ASSERT_EQUAL_FATAL(raft_fixture_start(&c->fx), 0);
    raft_fixture_hook(&c->fx, sample);
    return c;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void cluster_free(struct cluster *c)
{
    raft_fixture_close(&c->fx);
    for (unsigned i = 0; i < c->n; i++) {
        bkv_fsm_close(c->fsm[i]);
        free(c->fsm[i]);
        bkv_store_close(c->store[i]);
    }
    for (size_t i = 0; i < c->n_pool; i++)
        free(c->pool[i]);
    free(c->pool);
    nftw(c->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(c);
    C = NULL;
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    struct prop *p = req->data;
    const struct bkv_fsm_result *fr = result;

    p->done = 1;
    p->status = status;
    if (status == 0 && fr != NULL) {
        p->fsm_status = fr->status;
        p->index = fr->index;
        p->n = fr->n;
        if (fr->n > 0)
            p->res = fr->results[0];
    }
}

static void barrier_cb(struct raft_barrier *req, int status)
{
    struct barrier *b = req->data;

    b->done = 1;
    b->status = status;
}

struct wait {
    struct cluster *c;
    unsigned leader;
    raft_term term;
    const int *done;
};

/* Stop when the request is done or its leader is no longer leading. */
static bool done_or_deposed(struct raft_fixture *fx, void *arg)
{
    struct wait *w = arg;
    struct raft *r = raft_fixture_get(fx, w->leader);

    return *w->done || !raft_fixture_alive(fx, w->leader) || raft_state(r) != RAFT_LEADER ||
           r->current_term != w->term;
}

static bool has_live_leader(struct raft_fixture *fx, void *arg)
{
    (void)arg;
    return fx->leader_id != 0 && raft_fixture_alive(fx, (unsigned)fx->leader_id - 1);
}

/* A leader that has committed a barrier of its own term; -1 if none shows up. */
static int ensure_ready(struct cluster *c, unsigned *leader, int fresh_barrier)
{
    for (int tries = 0; tries < 20; tries++) {
        struct barrier *b;
        struct wait w;
        struct raft *r;
        unsigned l;

        if (!raft_fixture_step_until(&c->fx, has_live_leader, NULL, WAIT_MS))
            continue;
        l = raft_fixture_leader_index(&c->fx);
        r = srv(c, l);
        if (!fresh_barrier && c->ready == l + 1 && c->ready_term == r->current_term &&
            raft_state(r) == RAFT_LEADER) {
            *leader = l;
            return 0;
        }
        if (c->ready != l + 1)
            c->leader_changes++;
        c->ready = 0;
        b = pool_new(c, sizeof(*b));
        b->req.data = b;
        if (raft_barrier(r, &b->req, barrier_cb) != 0) {
            raft_fixture_step(&c->fx);
            continue;
        }
        w = (struct wait){c, l, r->current_term, &b->done};
        raft_fixture_step_until(&c->fx, done_or_deposed, &w, WAIT_MS);
        if (b->done && b->status == 0) {
            c->ready = l + 1;
            c->ready_term = w.term;
            c->last_barrier = b->req.index;
            *leader = l;
            return 0;
        }
    }
    return -1;
}

static struct bkv_cmd make(enum bkv_cmd_type type, unsigned acct)
{
    static const uint8_t record[96] = {1, 2, 3}, wrapped[48] = {4, 5, 6};
    struct bkv_cmd c;

    memset(&c, 0, sizeof(c));
    c.type = type;
    c.account[0] = (uint8_t)acct;
    c.account[1] = 0xac;
    request_seq++;
    memcpy(c.request_id, &request_seq, sizeof(request_seq));
    c.request_id[15] = 0xf1;
    c.max_attempts = 1000; /* REGISTER's limit; ATTEMPTs carry none */
    c.record = record;
    c.record_len = sizeof(record);
    c.wrapped = wrapped;
    c.wrapped_len = sizeof(wrapped);
    return c;
}

/* raft_apply one entry holding cmd on server l; NULL if refused. */
static struct prop *submit(struct cluster *c, unsigned l, const struct bkv_cmd *cmd)
{
    size_t len = bkv_cmd_entry_len(cmd, 1);
    struct raft_buffer buf = {raft_malloc(len), len};
    struct prop *p = pool_new(c, sizeof(*p));

    CU_ASSERT_FATAL(buf.base != NULL);
    CU_ASSERT_EQUAL_FATAL(bkv_cmd_entry_encode(cmd, 1, buf.base, len, &len), BKV_OK);
    p->req.data = p;
    if (raft_apply(srv(c, l), &p->req, &buf, 1, apply_cb) != 0) {
        raft_free(buf.base);
        return NULL;
    }
    return p;
}

/* Record an acknowledged result of cmd. */
static void acked(struct cluster *c, const struct bkv_cmd *cmd, const struct prop *p)
{
    unsigned a = cmd->account[0];

    c->acked++;
    c->replayed += (unsigned)p->res.replayed;
    if (cmd->type == BKV_CMD_ATTEMPT && p->res.status == BKV_CMD_COUNTED)
        c->counted[a]++;
    if ((p->res.status == BKV_CMD_REGISTERED || p->res.status == BKV_CMD_RESET) &&
        c->n_resets[a] < MAX_RST)
        c->resets[a][c->n_resets[a]++] = p->req.index;
}

/* Propose cmd until it is acknowledged, retrying with the same request id. */
static int propose(struct cluster *c, const struct bkv_cmd *cmd, struct bkv_cmd_result *out)
{
    for (int tries = 0; tries < 20; tries++) {
        struct prop *p;
        struct wait w;
        unsigned l;

        if (ensure_ready(c, &l, 0) != 0)
            return -1;
        p = submit(c, l, cmd);
        if (p == NULL) {
            c->ready = 0;
            continue;
        }
        w = (struct wait){c, l, srv(c, l)->current_term, &p->done};
        raft_fixture_step_until(&c->fx, done_or_deposed, &w, WAIT_MS);
        if (!p->done || p->status != 0) {
            c->ready = 0; /* outcome unknown: retry */
            continue;
        }
        CU_ASSERT_EQUAL(p->fsm_status, BKV_OK);
        if (p->index != p->req.index || p->n != 1)
            continue; /* results slot reused: the replay returns them */
        acked(c, cmd, p);
        if (out != NULL)
            *out = p->res;
        return 0;
    }
    return -1;
}

static void attempts(struct cluster *c, unsigned count)
{
    for (unsigned k = 0; k < count; k++) {
        struct bkv_cmd cmd = make(BKV_CMD_ATTEMPT, k % N_ACCT);
        struct bkv_cmd_result r;

        CU_ASSERT_EQUAL_FATAL(propose(c, &cmd, &r), 0);
        CU_ASSERT_EQUAL(r.status, BKV_CMD_COUNTED);
    }
}

static void register_all(struct cluster *c)
{
    for (unsigned a = 0; a < N_ACCT; a++) {
        struct bkv_cmd cmd = make(BKV_CMD_REGISTER, a);
        struct bkv_cmd_result r;

        CU_ASSERT_EQUAL_FATAL(propose(c, &cmd, &r), 0);
        CU_ASSERT_EQUAL(r.status, BKV_CMD_REGISTERED);
    }
}

struct all_applied {
    struct cluster *c;
    raft_index index;
};

static bool all_applied(struct raft_fixture *fx, void *arg)
{
    struct all_applied *w = arg;

    for (unsigned i = 0; i < w->c->n; i++)
        if (raft_fixture_alive(fx, i) && raft_last_applied(raft_fixture_get(fx, i)) < w->index)
            return false;
    return true;
}

/* A fresh barrier through the leader, then every live node applies it. */
static void converge(struct cluster *c)
{
    struct all_applied w = {c, 0};
    unsigned l;

    CU_ASSERT_EQUAL_FATAL(ensure_ready(c, &l, 1), 0);
    w.index = c->last_barrier;
    CU_ASSERT_FATAL(raft_fixture_step_until(&c->fx, all_applied, &w, WAIT_MS));
}

/* Same hash everywhere, counters as acknowledged, decreases all explained. */
static void check_final(struct cluster *c, int exact_counts)
{
    uint8_t h0[32], h[32];
    char hex[17];

    converge(c);
    CU_ASSERT_EQUAL(bkv_store_hash(c->store[0], h0), BKV_OK);
    for (unsigned i = 1; i < c->n; i++) {
        CU_ASSERT_EQUAL(bkv_store_hash(c->store[i], h), BKV_OK);
        CU_ASSERT_EQUAL(memcmp(h0, h, 32), 0);
    }
    for (unsigned i = 0; i < c->n; i++)
        for (unsigned a = 0; a < N_ACCT && exact_counts; a++)
            CU_ASSERT_EQUAL(attempts_of(c->store[i], a), c->counted[a]);
    for (size_t d = 0; d < c->n_dec; d++) {
        int covered = 0;
        unsigned a = c->dec[d].acct;

        for (size_t k = 0; k < c->n_resets[a]; k++)
            covered |= c->resets[a][k] > c->dec[d].from && c->resets[a][k] <= c->dec[d].to;
        CU_ASSERT(covered);
    }
    for (int i = 0; i < 8; i++)
        snprintf(hex + 2 * i, 3, "%02x", h0[i]);
    printf("\n  %u nodes: %u acknowledged (%u replayed), %u leaders, %zu counter resets seen,"
           " state %s...\n",
           c->n, c->acked, c->replayed, c->leader_changes, c->n_dec, hex);
}

struct has_entry {
    struct cluster *c;
    unsigned leader;
    raft_index index;
};

static bool followers_have(struct raft_fixture *fx, void *arg)
{
    struct has_entry *w = arg;

    for (unsigned i = 0; i < w->c->n; i++)
        if (i != w->leader && raft_fixture_alive(fx, i) &&
            raft_last_index(raft_fixture_get(fx, i)) < w->index)
            return false;
    return true;
}

/*
 * Leader loss: submit an ATTEMPT, kill the leader (at once, or once every
 * follower holds the entry but before the leader learns it committed), then
 * retry it with the same request id on the next leader. Returns the killed
 * server; the retry's result goes to *out.
 */
static unsigned kill_leader_mid_request(struct cluster *c, int after_replication,
                                        struct bkv_cmd_result *out)
{
    struct bkv_cmd cmd = make(BKV_CMD_ATTEMPT, 1);
    struct prop *p;
    unsigned l;

    CU_ASSERT_EQUAL_FATAL(ensure_ready(c, &l, 0), 0);
    p = submit(c, l, &cmd);
    CU_ASSERT_FATAL(p != NULL);
    CU_ASSERT(p->req.index > 0);
    if (after_replication) {
        struct has_entry w = {c, l, p->req.index};

        CU_ASSERT_FATAL(raft_fixture_step_until(&c->fx, followers_have, &w, WAIT_MS));
    }
    CU_ASSERT_FALSE(p->done);
    raft_fixture_kill(&c->fx, l);
    CU_ASSERT_EQUAL_FATAL(propose(c, &cmd, out), 0);
    CU_ASSERT_EQUAL(out->status, BKV_CMD_COUNTED);
    return l;
}

/* Cut (on = 1) or heal the links between the nodes in minority and the rest. */
static void partition(struct cluster *c, const unsigned *minority, size_t k, int on)
{
    for (size_t m = 0; m < k; m++) {
        for (unsigned j = 0; j < c->n; j++) {
            int inside = 0;

            for (size_t q = 0; q < k; q++)
                inside |= minority[q] == j;
            if (inside)
                continue;
            if (on) {
                raft_fixture_saturate(&c->fx, minority[m], j);
                raft_fixture_saturate(&c->fx, j, minority[m]);
            } else {
                raft_fixture_desaturate(&c->fx, minority[m], j);
                raft_fixture_desaturate(&c->fx, j, minority[m]);
            }
        }
    }
}

static void stream(unsigned n)
{
    struct cluster *c = cluster_new(n);
    struct bkv_cmd_result r;
    unsigned killed, l, minority[2], k = n / 2; /* 1 of 3, 2 of 5 */
    raft_index frozen[2];

    register_all(c);
    attempts(c, 24);

    /* leader loss before the entry left the leader: the retry counts it */
    killed = kill_leader_mid_request(c, 0, &r);
    CU_ASSERT_EQUAL(r.replayed, 0);
    attempts(c, 16);
    raft_fixture_revive(&c->fx, killed);
    converge(c);

    /* leader loss after every follower got the entry: the retry is a replay */
    killed = kill_leader_mid_request(c, 1, &r);
    CU_ASSERT_EQUAL(r.replayed, 1);
    attempts(c, 16);
    raft_fixture_revive(&c->fx, killed);
    converge(c);

    /* a minority of followers cut off: the majority commits, they catch up */
    CU_ASSERT_EQUAL_FATAL(ensure_ready(c, &l, 0), 0);
    for (unsigned i = 0, m = 0; i < n && m < k; i++)
        if (i != l) {
            minority[m] = i;
            frozen[m++] = raft_last_applied(srv(c, i));
        }
    partition(c, minority, k, 1);
    attempts(c, 20);
    for (unsigned m = 0; m < k; m++)
        CU_ASSERT_EQUAL(raft_last_applied(srv(c, minority[m])), frozen[m]);
    partition(c, minority, k, 0);
    attempts(c, 8);
    check_final(c, 1);
    cluster_free(c);
}

static void test_stream_3(void)
{
    stream(3);
}

static void test_stream_5(void)
{
    stream(5);
}

/* The number of image files in dir (names of 64 hex digits and ".db"). */
static unsigned count_images(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    unsigned n = 0;

    while (d != NULL && (e = readdir(d)) != NULL)
        n += strlen(e->d_name) == BKV_IMAGE_NAME_LEN && strstr(e->d_name, ".db") != NULL;
    if (d != NULL)
        closedir(d);
    return n;
}

static void snapshot_catch_up(unsigned n)
{
    struct cluster *c = cluster_new(n);
    unsigned l, lag;
    unsigned long snaps = 0, copies = fetch_copies;
    char path[300];

    for (unsigned i = 0; i < n; i++) {
        raft_set_snapshot_threshold(srv(c, i), 16);
        raft_set_snapshot_trailing(srv(c, i), 4);
    }
    register_all(c);
    CU_ASSERT_EQUAL_FATAL(ensure_ready(c, &l, 0), 0);
    lag = (l + 1) % n;
    raft_fixture_kill(&c->fx, lag);
    attempts(c, 60);
    for (unsigned i = 0; i < n; i++)
        snaps += c->fsm[i]->snapshots;
    CU_ASSERT(snaps > 0);
    CU_ASSERT_EQUAL(c->fsm[lag]->restores, 0);
    raft_fixture_revive(&c->fx, lag);
    attempts(c, 4);
    check_final(c, 1);
    CU_ASSERT(c->fsm[lag]->restores > 0);
    /* the lagging node had no image: it fetched one (here: copied from another node) */
    CU_ASSERT(c->fsm[lag]->fetches > 0);
    CU_ASSERT(fetch_copies > copies);
    for (unsigned i = 0; i < n; i++) {
        struct bkv_image_desc d = {0, 0, {0}};
        char why[256];

        /* every node keeps the image of its latest descriptor (and at most one older) */
        CU_ASSERT(c->fsm[i]->n_keep > 0);
        CU_ASSERT(count_images(c->fsm[i]->image_dir) >= 1);
        CU_ASSERT(count_images(c->fsm[i]->image_dir) <= 2);
        memcpy(d.sha256, c->fsm[i]->keep[0], 32);
        CU_ASSERT_EQUAL(bkv_image_path(c->fsm[i]->image_dir, d.sha256, path, sizeof(path)), 0);
        CU_ASSERT_EQUAL(bkv_image_digest(path, &d.size, d.sha256, why, sizeof(why)), BKV_OK);
        CU_ASSERT_EQUAL(memcmp(d.sha256, c->fsm[i]->keep[0], 32), 0);
    }
    printf("  snapshots taken: %lu, restores on the lagging node: %lu (%lu fetched)\n", snaps,
           c->fsm[lag]->restores, c->fsm[lag]->fetches);
    cluster_free(c);
}

static void test_snapshot_3(void)
{
    snapshot_catch_up(3);
}

static void test_snapshot_5(void)
{
    snapshot_catch_up(5);
}

/* A 64-byte buffer from raft_malloc holding the descriptor d (as libraft hands restore). */
static struct raft_buffer desc_buf(const struct bkv_image_desc *d)
{
    struct raft_buffer b = {raft_malloc(BKV_IMAGE_DESC_LEN), BKV_IMAGE_DESC_LEN};

    CU_ASSERT_FATAL(b.base != NULL);
    bkv_image_desc_encode(d, b.base);
    return b;
}

static void flip_byte(const char *path, long at)
{
    FILE *fp = fopen(path, "r+b");
    int ch;

    CU_ASSERT_FATAL(fp != NULL);
    CU_ASSERT(fseek(fp, at, SEEK_SET) == 0);
    ch = fgetc(fp);
    CU_ASSERT(fseek(fp, at, SEEK_SET) == 0);
    fputc(ch ^ 0xff, fp);
    fclose(fp);
}

/*
 * restore on its own, on a fresh node beside the cluster: what libraft sees
 * of a snapshot is the 64-byte descriptor; a malformed descriptor and an
 * image nobody has are refused with the store untouched; a damaged image is
 * refused by the fetch's check; the intact one installs node 0's exact
 * state; the same descriptor again keeps it and fetches nothing.
 */
static void test_restore_paths(void)
{
    struct cluster *c = cluster_new(3);
    struct bkv_fsm *ff = calloc(1, sizeof(*ff));
    struct raft_fsm *src = &c->fsm[0]->raft;
    struct raft_buffer *bufs = NULL, buf;
    struct bkv_image_desc d, nobody;
    struct bkv_store *fresh = NULL;
    char dir[256], scratch[300], images[300], db[300], path[400], err[BKV_STORE_ERRMSG_LEN];
    uint8_t h0[32], h[32];
    unsigned n_bufs = 0;

    CU_ASSERT_FATAL(ff != NULL);
    register_all(c);
    attempts(c, 8);
    converge(c);
    CU_ASSERT_EQUAL_FATAL(src->snapshot(src, &bufs, &n_bufs), 0);
    CU_ASSERT_EQUAL(n_bufs, 1);
    CU_ASSERT_EQUAL_FATAL(bufs[0].len, BKV_IMAGE_DESC_LEN);
    CU_ASSERT_EQUAL_FATAL(bkv_image_desc_decode(bufs[0].base, bufs[0].len, &d), BKV_OK);
    CU_ASSERT_EQUAL(src->snapshot_finalize(src, &bufs, &n_bufs), 0);
    CU_ASSERT_EQUAL(d.index, bkv_store_applied_index(c->store[0]));
    CU_ASSERT_EQUAL(bkv_store_hash(c->store[0], h0), BKV_OK);

    snprintf(dir, sizeof(dir), "%s/fresh", c->dir);
    snprintf(scratch, sizeof(scratch), "%s/snapshots", dir);
    snprintf(images, sizeof(images), "%s/images", dir);
    snprintf(db, sizeof(db), "%s/state.db", dir);
    CU_ASSERT_FATAL(mkdir(dir, 0700) == 0 && mkdir(scratch, 0700) == 0 && mkdir(images, 0700) == 0);
    CU_ASSERT_EQUAL_FATAL(bkv_store_open(db, &fresh, err, sizeof(err)), BKV_OK);
    CU_ASSERT_EQUAL_FATAL(bkv_fsm_init(ff, fresh, scratch, images), BKV_OK);
    bkv_fsm_set_fetch(ff, fixture_fetch, (void *)(uintptr_t)99);

    buf = desc_buf(&d);
    memcpy(buf.base, "NOT-SNAP", 8);
    CU_ASSERT_EQUAL(ff->raft.restore(&ff->raft, &buf), RAFT_MALFORMED);
    raft_free(buf.base);
    nobody = d;
    nobody.sha256[0] ^= 1;
    buf = desc_buf(&nobody);
    CU_ASSERT_EQUAL(ff->raft.restore(&ff->raft, &buf), RAFT_IOERR);
    printf("\n  no image: %s\n", ff->errmsg);
    CU_ASSERT_PTR_NOT_NULL(strstr(ff->errmsg, "no other node has the image"));
    raft_free(buf.base);

    CU_ASSERT_EQUAL_FATAL(bkv_image_path(c->fsm[0]->image_dir, d.sha256, path, sizeof(path)), 0);
    flip_byte(path, 300);
    buf = desc_buf(&d);
    CU_ASSERT_EQUAL(ff->raft.restore(&ff->raft, &buf), RAFT_IOERR);
    printf("  damaged image: %s\n", ff->errmsg);
    CU_ASSERT_PTR_NOT_NULL(strstr(ff->errmsg, "does not match"));
    CU_ASSERT_EQUAL(bkv_store_applied_index(fresh), 0);
    CU_ASSERT_EQUAL(count_images(images), 0);
    flip_byte(path, 300);
    CU_ASSERT_EQUAL(ff->raft.restore(&ff->raft, &buf), 0); /* the buffer is the FSM's now */
    CU_ASSERT_EQUAL(bkv_store_applied_index(fresh), d.index);
    CU_ASSERT_EQUAL(bkv_store_hash(fresh, h), BKV_OK);
    CU_ASSERT_EQUAL(memcmp(h, h0, 32), 0);
    CU_ASSERT_EQUAL(ff->fetches, 1);
    CU_ASSERT_EQUAL(ff->restores, 1);
    CU_ASSERT_EQUAL(count_images(images), 1);
    buf = desc_buf(&d);
    CU_ASSERT_EQUAL(ff->raft.restore(&ff->raft, &buf), 0); /* as new already: kept */
    CU_ASSERT_EQUAL(ff->fetches, 1);
    CU_ASSERT_EQUAL(ff->restores, 1);

    bkv_fsm_close(ff);
    free(ff);
    bkv_store_close(fresh);
    cluster_free(c);
}

static void test_guess_limit(void)
{
    struct cluster *c = cluster_new(3);
    struct bkv_cmd cmd = make(BKV_CMD_REGISTER, 2);
    struct bkv_cmd_result r;
    uint64_t reg;

    cmd.max_attempts = BKV_CMD_DEFAULT_LIMIT; /* the limit travels with the record */
    CU_ASSERT_EQUAL_FATAL(propose(c, &cmd, &r), 0);
    reg = r.registration;
    /* 4 attempts, a SUCCESS resets, then exactly 10 more are counted */
    for (uint32_t i = 1; i <= 14; i++) {
        cmd = make(BKV_CMD_ATTEMPT, 2);
        CU_ASSERT_EQUAL_FATAL(propose(c, &cmd, &r), 0);
        CU_ASSERT_EQUAL(r.status, BKV_CMD_COUNTED);
        CU_ASSERT_EQUAL(r.attempts, i <= 4 ? i : i - 4);
        if (i == 4) {
            cmd = make(BKV_CMD_SUCCESS, 2);
            cmd.registration = reg;
            CU_ASSERT_EQUAL_FATAL(propose(c, &cmd, &r), 0);
            CU_ASSERT_EQUAL(r.status, BKV_CMD_RESET);
        }
    }
    cmd = make(BKV_CMD_ATTEMPT, 2);
    CU_ASSERT_EQUAL_FATAL(propose(c, &cmd, &r), 0);
    CU_ASSERT_EQUAL(r.status, BKV_CMD_DESTROYED);
    CU_ASSERT_EQUAL(r.attempts, 11);
    cmd = make(BKV_CMD_ATTEMPT, 2);
    CU_ASSERT_EQUAL_FATAL(propose(c, &cmd, &r), 0);
    CU_ASSERT_EQUAL(r.status, BKV_CMD_DESTROYED);
    cmd = make(BKV_CMD_SUCCESS, 2);
    cmd.registration = reg;
    CU_ASSERT_EQUAL_FATAL(propose(c, &cmd, &r), 0);
    CU_ASSERT_EQUAL(r.status, BKV_CMD_DESTROYED);
    check_final(c, 0);
    for (unsigned i = 0; i < c->n; i++) {
        struct bkv_store_record rec;
        uint8_t a[BKV_ACCOUNT_KEY_LEN] = {2, 0xac};
        int found = 0;

        CU_ASSERT_EQUAL(bkv_store_get(c->store[i], a, &rec, &found), BKV_OK);
        CU_ASSERT_EQUAL(found, 1);
        CU_ASSERT_EQUAL(rec.live, 0);
        CU_ASSERT_EQUAL(rec.attempts, 11);
        CU_ASSERT_PTR_NULL(rec.record);
        CU_ASSERT_PTR_NULL(rec.wrapped);
        bkv_store_record_free(&rec);
    }
    cluster_free(c);
}

/* Entries committed in one step: each callback still gets its own results. */
static void test_results_of_batched_commits(void)
{
    struct cluster *c = cluster_new(3);
    struct prop *p[N_ACCT];
    struct bkv_cmd cmd[N_ACCT];
    struct all_applied w;
    unsigned l;

    register_all(c);
    for (unsigned a = 0; a < N_ACCT; a++)
        for (unsigned k = 0; k < a; k++) {
            cmd[0] = make(BKV_CMD_ATTEMPT, a);
            CU_ASSERT_EQUAL_FATAL(propose(c, &cmd[0], NULL), 0);
        }
    CU_ASSERT_EQUAL_FATAL(ensure_ready(c, &l, 0), 0);
    /* hold the leader's messages back so one AppendEntries carries all four */
    for (unsigned i = 0; i < c->n; i++)
        if (i != l)
            raft_fixture_saturate(&c->fx, l, i);
    for (unsigned a = 0; a < N_ACCT; a++) {
        cmd[a] = make(BKV_CMD_ATTEMPT, a);
        p[a] = submit(c, l, &cmd[a]);
        CU_ASSERT_FATAL(p[a] != NULL);
    }
    raft_fixture_step_until_elapsed(&c->fx, 50);
    for (unsigned i = 0; i < c->n; i++)
        if (i != l)
            raft_fixture_desaturate(&c->fx, l, i);
    w = (struct all_applied){c, p[N_ACCT - 1]->req.index};
    CU_ASSERT_FATAL(raft_fixture_step_until(&c->fx, all_applied, &w, WAIT_MS));
    raft_fixture_step_until_elapsed(&c->fx, 100);
    for (unsigned a = 0; a < N_ACCT; a++) {
        CU_ASSERT_EQUAL(p[a]->done, 1);
        CU_ASSERT_EQUAL(p[a]->status, 0);
        CU_ASSERT_EQUAL(p[a]->index, p[a]->req.index);
        CU_ASSERT_EQUAL(p[a]->res.status, BKV_CMD_COUNTED);
        CU_ASSERT_EQUAL(p[a]->res.attempts, a + 1);
    }
    cluster_free(c);
}

/* A malformed entry: skipped alike everywhere, the error in the result. */
static void test_malformed_entry(void)
{
    struct cluster *c = cluster_new(3);
    uint64_t garbage[3] = {0x0200000000000001ull, 0, 0};
    struct raft_buffer buf;
    struct prop *p;
    struct wait w;
    uint8_t before[32], after[32];
    unsigned l;

    register_all(c);
    converge(c);
    CU_ASSERT_EQUAL(bkv_store_hash(c->store[0], before), BKV_OK);
    CU_ASSERT_EQUAL_FATAL(ensure_ready(c, &l, 0), 0);
    buf.len = sizeof(garbage);
    buf.base = raft_malloc(buf.len);
    memcpy(buf.base, garbage, buf.len);
    p = pool_new(c, sizeof(*p));
    p->req.data = p;
    CU_ASSERT_EQUAL_FATAL(raft_apply(srv(c, l), &p->req, &buf, 1, apply_cb), 0);
    w = (struct wait){c, l, srv(c, l)->current_term, &p->done};
    CU_ASSERT_FATAL(raft_fixture_step_until(&c->fx, done_or_deposed, &w, WAIT_MS));
    CU_ASSERT_EQUAL(p->status, 0);
    CU_ASSERT_NOT_EQUAL(p->fsm_status, BKV_OK);
    CU_ASSERT_EQUAL(p->n, 0);
    printf("\n  malformed entry %llu: %s\n", (unsigned long long)p->req.index,
           bkv_strerror(p->fsm_status));
    check_final(c, 1);
    for (unsigned i = 0; i < c->n; i++) {
        CU_ASSERT(bkv_store_applied_index(c->store[i]) >= p->req.index);
        CU_ASSERT_EQUAL(bkv_store_hash(c->store[i], after), BKV_OK);
        CU_ASSERT_EQUAL(memcmp(before, after, 32), 0);
    }
    cluster_free(c);
}

/*
 * A store ahead of its log (state.db kept, the Raft log wiped and the
 * cluster bootstrapped again): an entry at an index the store already holds
 * must reach its proposer as an error, never as OK with empty results.
 */
static void test_store_ahead_of_log(void)
{
    struct cluster *c = cluster_new(3);
    struct bkv_cmd cmd = make(BKV_CMD_REGISTER, 1);
    struct bkv_store_record rec;
    struct prop *p;
    struct wait w;
    unsigned l;
    int found = 1;

    for (unsigned i = 0; i < c->n; i++)
        CU_ASSERT_EQUAL(bkv_store_skip(c->store[i], 1000), BKV_OK);
    CU_ASSERT_EQUAL_FATAL(ensure_ready(c, &l, 0), 0);
    p = submit(c, l, &cmd);
    CU_ASSERT_FATAL(p != NULL);
    w = (struct wait){c, l, srv(c, l)->current_term, &p->done};
    CU_ASSERT_FATAL(raft_fixture_step_until(&c->fx, done_or_deposed, &w, WAIT_MS));
    CU_ASSERT_EQUAL(p->status, 0);
    CU_ASSERT_EQUAL(p->fsm_status, BKV_ERR_RAFT);
    CU_ASSERT_EQUAL(p->n, 0);
    CU_ASSERT(p->req.index < 1000);
    CU_ASSERT_EQUAL(bkv_store_get(c->store[l], cmd.account, &rec, &found), BKV_OK);
    CU_ASSERT_EQUAL(found, 0);
    printf("\n  entry %llu on a store at 1000: %s\n", (unsigned long long)p->req.index,
           bkv_strerror(p->fsm_status));
    cluster_free(c);
}

/* ---- one real node (node.h), single member, on loopback ---- */

struct solo {
    uv_loop_t loop;
    uv_timer_t timer;
    struct bkv_raft *r;
    int ready, timed_out, done, status;
    struct bkv_cmd_result res;
};

static void solo_state_cb(struct bkv_raft *r, enum bkv_raft_role role, void *data)
{
    struct solo *s = data;

    (void)r;
    if (role == BKV_RAFT_LEADER_READY)
        s->ready = 1;
}

static void solo_timeout(uv_timer_t *t)
{
    ((struct solo *)t->data)->timed_out = 1;
}

static void solo_propose_cb(struct bkv_raft_propose *req, int status,
                            const struct bkv_cmd_result *results, size_t n)
{
    struct solo *s = req->data;

    s->done = 1;
    s->status = status;
    if (status == BKV_OK && n == 1)
        s->res = results[0];
}

static void solo_run_until(struct solo *s, const int *flag)
{
    s->timed_out = 0;
    uv_timer_start(&s->timer, solo_timeout, 10000, 0);
    while (!*flag && !s->timed_out)
        uv_run(&s->loop, UV_RUN_ONCE);
    uv_timer_stop(&s->timer);
}

/*
 * bkv_raft_propose copies record/wrapped only for a REGISTER: an ATTEMPT
 * whose record/wrapped fields hold garbage (a wild pointer, lengths near
 * SIZE_MAX) is proposed safely with those fields ignored, and a REGISTER
 * with such lengths is refused before anything is copied.
 */
static void test_propose_ignores_garbage(void)
{
    static struct solo s;
    struct bkv_raft_config cfg;
    struct bkv_raft_propose req;
    struct bkv_cmd cmd;
    char dir[64] = "/tmp/bkv-solo-XXXXXX", err[BKV_RAFT_ERRMSG_LEN] = "";
    unsigned port = 20000 + (unsigned)getpid() % 20000;

    CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
    memset(&s, 0, sizeof(s));
    memset(&cfg, 0, sizeof(cfg));
    cfg.id = 1;
    snprintf(cfg.address, sizeof(cfg.address), "127.0.0.1:%u", port);
    snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", dir);
    cfg.members[0].id = 1;
    snprintf(cfg.members[0].address, sizeof(cfg.members[0].address), "%s", cfg.address);
    cfg.n_members = 1;
    cfg.election_timeout_ms = 200;
    cfg.heartbeat_timeout_ms = 50;
    CU_ASSERT_EQUAL_FATAL(uv_loop_init(&s.loop), 0);
    uv_timer_init(&s.loop, &s.timer);
    s.timer.data = &s;
    CU_ASSERT_EQUAL_FATAL(bkv_raft_init(&s.loop, &cfg, &s.r, err, sizeof(err)), BKV_OK);
    CU_ASSERT_EQUAL(bkv_raft_bootstrap(s.r), BKV_OK);
    CU_ASSERT_EQUAL(bkv_raft_start(s.r, solo_state_cb, NULL, &s), BKV_OK);
    solo_run_until(&s, &s.ready);
    CU_ASSERT_FATAL(s.ready);

    memset(&cmd, 0, sizeof(cmd));
    cmd.type = BKV_CMD_ATTEMPT;
    cmd.account[0] = 0x77;
    cmd.request_id[0] = 0x55;
    cmd.record = (const uint8_t *)(uintptr_t)1;
    cmd.record_len = SIZE_MAX;
    cmd.wrapped = (const uint8_t *)(uintptr_t)8;
    cmd.wrapped_len = SIZE_MAX - 5;
    cmd.max_attempts = UINT32_MAX;
    req.data = &s;
    CU_ASSERT_EQUAL_FATAL(bkv_raft_propose(s.r, &req, &cmd, 1, solo_propose_cb), BKV_OK);
    solo_run_until(&s, &s.done);
    CU_ASSERT_EQUAL(s.status, BKV_OK);
    CU_ASSERT_EQUAL(s.res.status, BKV_CMD_NOT_FOUND);

    cmd.type = BKV_CMD_REGISTER; /* the same garbage where it counts: refused */
    cmd.max_attempts = 0;
    CU_ASSERT_EQUAL(bkv_raft_propose(s.r, &req, &cmd, 1, solo_propose_cb), BKV_ERR_INVALID);

    s.done = 0;
    bkv_raft_close(s.r, NULL, NULL);
    uv_close((uv_handle_t *)&s.timer, NULL);
    uv_run(&s.loop, UV_RUN_DEFAULT);
    CU_ASSERT_EQUAL(uv_loop_close(&s.loop), 0);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static CU_TestInfo tests[] = {
    {"3 nodes: ATTEMPT stream, leader loss, minority partition", test_stream_3},
    {"5 nodes: ATTEMPT stream, leader loss, minority partition", test_stream_5},
    {"3 nodes: a lagging node catches up by snapshot", test_snapshot_3},
    {"5 nodes: a lagging node catches up by snapshot", test_snapshot_5},
    {"restore: descriptors, missing and damaged images", test_restore_paths},
    {"the guess limit through Raft", test_guess_limit},
    {"entries committed together keep their own results", test_results_of_batched_commits},
    {"a malformed entry is skipped alike on every node", test_malformed_entry},
    {"a store ahead of its log answers an error, never OK", test_store_ahead_of_log},
    {"a real node: propose ignores an ATTEMPT's garbage lengths", test_propose_ignores_garbage},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return bkv_test_main("consensus_fixture", tests, NULL, NULL);
}
