/*
 * The consensus benchmark (bench_raft.h).
 *
 * Normal path: for each of two modes, bare libraft and BKV, start three raft
 * instances in this process, each on its own libuv loop thread, over
 * loopback TCP with the real disk log under a temporary directory; wait for a
 * leader whose barrier has committed; then, on the leader's loop, keep K
 * proposals in flight (K = 1, 16, 256): each completion records its latency
 * and proposes again. A short warm-up precedes each measured window. Bare
 * proposals are raft_apply calls of one entry the size of an encoded
 * ATTEMPT; BKV proposals are bkv_raft_propose of one ATTEMPT each on
 * registered accounts (consensus/propose.c batches what one loop iteration brings in).
 * Failure modes: no leader within the deadline, or proposals failing (a
 * leadership change mid-run) are reported; the temporary directory is
 * removed on every path. Threads: the main thread only talks to the loops
 * through uv_async_t and a mutex.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "tests/bench/bench_raft.h"

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <unistd.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "consensus/cmd.h"
#include "consensus/node.h"
#include "proto/err.h"
#include "tests/bench/bench_util.h"

#define N_NODES        3
#define N_ACCOUNTS     256
#define LEADER_WAIT_MS 15000
#define ROUNDS         5 /* measured windows per mode and level, alternating (odd: a median) */
/*
 * Entries between snapshots, the same for both clusters. BKV's snapshot is
 * an image of its store, which grows with every remembered request id (one
 * row per ATTEMPT), and taking it blocks the node's loop (a VACUUM INTO, an
 * fsync and a SHA-256 of the file): at libraft's default of 1024 entries the
 * 1-in-flight level spends its time snapshotting a store of 10^5 rows every
 * third of a second. BKV_BENCH_RAFT_SNAPSHOT=N overrides it.
 */
#define SNAPSHOT_THRESHOLD 8192

enum mode { MODE_BARE, MODE_BKV };
enum order { ORDER_NONE, ORDER_SETUP, ORDER_RUN, ORDER_STOP };

struct slot; /* one proposal in flight */

/* What the leader's loop measures for one level. */
struct level {
    int inflight;
    double warmup_s, seconds;
    /* filled by the loop thread */
    size_t done, failed;
    double *lat_us; /* latencies of completions inside the window */
    size_t n_lat, cap_lat;
    double t_start, t_end; /* the measured window */
    uint64_t entries;      /* raft entries appended during the window */
};

struct bnode {
    int idx;
    enum mode mode;
    uint64_t id;
    char addr[32];
    char snap_addr[32]; /* BKV: its snapshot image server */
    char dir[512];
    struct bench *bench;
    struct cluster *cl;
    pthread_t thread;
    uv_loop_t loop;
    uv_async_t async;
    uv_prepare_t watch;    /* bare: leader watch + barrier, and resubmission */
    uv_idle_t kick;        /* bare: keeps the loop from blocking while slots wait */
    struct slot *resubmit; /* bare: completed slots to propose again */
    uv_timer_t timer;      /* warm-up / window end */
    atomic_int ready;      /* 1: leader with its barrier committed */
    atomic_int failed;     /* 1: could not start (message in err) */
    char err[1024];
    enum order order;          /* under bench.mu */
    struct level *order_level; /* under bench.mu */

    /* bare libraft */
    struct raft_uv_transport transport;
    struct raft_io io;
    struct raft raft;
    struct raft_fsm fsm;
    uint64_t barrier_term;

    /* BKV */
    struct bkv_raft *br;

    /* driver (leader only) */
    struct slot *slots;
    struct level *lv;
    bool measuring, stopping;
    int outstanding;
    uint64_t last_index0;
    uint64_t next_reqid;
    unsigned next_account;
};

struct slot {
    struct bnode *n;
    struct slot *next; /* in bnode.resubmit */
    double t0;
    struct raft_apply apply;
    struct bkv_raft_propose prop;
};

/* One 3-node cluster: bare libraft or BKV. */
struct cluster {
    enum mode mode;
    struct bnode nodes[N_NODES];
    struct bnode *leader;
    int started; /* node threads running */
};

struct bench {
    char root[256];
    struct cluster cl[2]; /* [MODE_BARE], [MODE_BKV] */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool order_done; /* under mu: the order waited for is done */
    unsigned snapshot_threshold;
    size_t entry_len;
    uint8_t entry[256]; /* one encoded ATTEMPT */
};

/* ---- helpers ---- */

static uint64_t raft_last_index_of(struct bnode *n)
{
    struct bkv_raft_info info;

    if (n->mode == MODE_BARE)
        return raft_last_index(&n->raft);
    bkv_raft_info(n->br, &info);
    return info.last_index;
}

static void account_of(unsigned i, uint8_t out[BKV_ACCOUNT_KEY_LEN])
{
    memset(out, 0, BKV_ACCOUNT_KEY_LEN);
    out[0] = 0xbe;
    out[30] = (uint8_t)(i >> 8);
    out[31] = (uint8_t)i;
}

static void reqid_of(uint64_t v, uint8_t out[BKV_REQUEST_ID_LEN])
{
    memset(out, 0, BKV_REQUEST_ID_LEN);
    out[0] = 0xbe;
    for (int i = 0; i < 8; i++)
        out[15 - i] = (uint8_t)(v >> (8 * i));
}

static void order_done(struct bench *b)
{
    pthread_mutex_lock(&b->mu);
    b->order_done = true;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

static void record(struct bnode *n, double t0)
{
    struct level *lv = n->lv;
    double now = bkv_bench_now_us();

    if (!n->measuring || t0 < lv->t_start)
        return;
    lv->done++;
    if (lv->n_lat == lv->cap_lat) {
        size_t cap = lv->cap_lat ? 2 * lv->cap_lat : 65536;
        double *p = realloc(lv->lat_us, cap * sizeof(*p));
        if (p == NULL)
            return;
        lv->lat_us = p;
        lv->cap_lat = cap;
    }
    lv->lat_us[lv->n_lat++] = now - t0;
}

/* ---- the driver ---- */

static void submit(struct slot *s);

static void finish_if_drained(struct bnode *n)
{
    if (n->stopping && n->outstanding == 0) {
        free(n->slots);
        n->slots = NULL;
        order_done(n->bench);
    }
}

static void kick_cb(uv_idle_t *h)
{
    (void)h;
}

static void bare_apply_cb(struct raft_apply *req, int status, void *result)
{
    struct slot *s = req->data;
    struct bnode *n = s->n;

    (void)result;
    n->outstanding--;
    if (status != 0) {
        if (n->measuring)
            n->lv->failed++;
    } else {
        record(n, s->t0);
    }
    if (n->stopping || status != 0) {
        finish_if_drained(n);
    } else {
        /* Like propose.c, propose again from the next loop iteration, never
         * from inside a libraft callback. */
        s->next = n->resubmit;
        n->resubmit = s;
        uv_idle_start(&n->kick, kick_cb);
    }
}

static void bkv_propose_cb(struct bkv_raft_propose *req, int status,
                           const struct bkv_cmd_result *res, size_t cnt)
{
    struct slot *s = req->data;
    struct bnode *n = s->n;

    (void)res;
    (void)cnt;
    n->outstanding--;
    if (status != BKV_OK) {
        if (n->measuring)
            n->lv->failed++;
    } else {
        record(n, s->t0);
    }
    if (n->stopping || status != BKV_OK)
        finish_if_drained(n);
    else
        submit(s);
}

static void submit(struct slot *s)
{
    struct bnode *n = s->n;
    struct bench *b = n->bench;
    int rv;

    s->t0 = bkv_bench_now_us();
    if (n->mode == MODE_BARE) {
        struct raft_buffer buf;
        buf.len = b->entry_len;
        buf.base = raft_malloc(buf.len);
        if (buf.base == NULL) {
            rv = RAFT_NOMEM;
        } else {
            memcpy(buf.base, b->entry, buf.len);
            s->apply.data = s;
            rv = raft_apply(&n->raft, &s->apply, &buf, 1, bare_apply_cb);
            if (rv != 0)
                raft_free(buf.base);
        }
    } else {
        struct bkv_cmd cmd;
        memset(&cmd, 0, sizeof(cmd));
        cmd.type = BKV_CMD_ATTEMPT;
        account_of(n->next_account++ % N_ACCOUNTS, cmd.account);
        reqid_of(++n->next_reqid, cmd.request_id);
        s->prop.data = s;
        rv = bkv_raft_propose(n->br, &s->prop, &cmd, 1, bkv_propose_cb);
    }
    if (rv != 0) {
        if (n->measuring)
            n->lv->failed++;
        finish_if_drained(n);
        return;
    }
    n->outstanding++;
}

static void window_end_cb(uv_timer_t *t)
{
    struct bnode *n = t->data;

    n->lv->t_end = bkv_bench_now_us();
    n->lv->entries = raft_last_index_of(n) - n->last_index0;
    n->measuring = false;
    n->stopping = true;
    n->resubmit = NULL; /* completed: nothing left to propose again */
    finish_if_drained(n);
}

static void warmup_end_cb(uv_timer_t *t)
{
    struct bnode *n = t->data;

    n->measuring = true;
    n->lv->t_start = bkv_bench_now_us();
    n->last_index0 = raft_last_index_of(n);
    uv_timer_start(&n->timer, window_end_cb, (uint64_t)(n->lv->seconds * 1000), 0);
}

static void start_level(struct bnode *n, struct level *lv)
{
    n->lv = lv;
    n->measuring = false;
    n->stopping = false;
    n->outstanding = 0;
    n->slots = calloc((size_t)lv->inflight, sizeof(*n->slots));
    if (n->slots == NULL) {
        lv->failed = 1;
        n->stopping = true;
        order_done(n->bench);
        return;
    }
    for (int i = 0; i < lv->inflight; i++) {
        n->slots[i].n = n;
        submit(&n->slots[i]);
    }
    uv_timer_start(&n->timer, warmup_end_cb, (uint64_t)(lv->warmup_s * 1000), 0);
}

/* BKV only: register the accounts the ATTEMPTs count against. */
static void setup_cb(struct bkv_raft_propose *req, int status, const struct bkv_cmd_result *res,
                     size_t cnt)
{
    struct bnode *n = req->data;

    (void)res;
    (void)cnt;
    if (status != BKV_OK)
        snprintf(n->err, sizeof(n->err), "register accounts: %s", bkv_strerror(status));
    free(req);
    order_done(n->bench);
}

static void start_setup(struct bnode *n)
{
    static const uint8_t blob[64] = {1};
    struct bkv_cmd *cmds = calloc(N_ACCOUNTS, sizeof(*cmds));
    struct bkv_raft_propose *req = calloc(1, sizeof(*req));
    int rc = BKV_ERR_NOMEM;

    if (cmds != NULL && req != NULL) {
        for (unsigned i = 0; i < N_ACCOUNTS; i++) {
            cmds[i].type = BKV_CMD_REGISTER;
            account_of(i, cmds[i].account);
            reqid_of(++n->next_reqid, cmds[i].request_id);
            cmds[i].record = blob;
            cmds[i].record_len = sizeof(blob);
            cmds[i].wrapped = blob;
            cmds[i].wrapped_len = 48;
            cmds[i].max_attempts = BKV_CMD_MAX_LIMIT; /* never reached in a run */
        }
        req->data = n;
        rc = bkv_raft_propose(n->br, req, cmds, N_ACCOUNTS, setup_cb);
    }
    free(cmds);
    if (rc != BKV_OK) {
        snprintf(n->err, sizeof(n->err), "register accounts: %s", bkv_strerror(rc));
        free(req);
        order_done(n->bench);
    }
}

/* ---- node threads ---- */

static int bare_fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    (void)fsm;
    (void)buf;
    *result = NULL;
    return 0;
}

/* Snapshots of the bare FSM carry 8 bytes (raft frees them: version 1). */
static int bare_fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    (void)fsm;
    *bufs = raft_malloc(sizeof(**bufs));
    if (*bufs == NULL)
        return RAFT_NOMEM;
    (*bufs)[0].len = 8;
    (*bufs)[0].base = raft_calloc(1, 8);
    if ((*bufs)[0].base == NULL) {
        raft_free(*bufs);
        return RAFT_NOMEM;
    }
    *n_bufs = 1;
    return 0;
}

static int bare_fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    (void)fsm;
    raft_free(buf->base);
    return 0;
}

static void bare_barrier_cb(struct raft_barrier *req, int status)
{
    struct bnode *n = req->data;

    free(req);
    if (status == 0 && raft_state(&n->raft) == RAFT_LEADER &&
        raft_current_term(&n->raft) == n->barrier_term)
        atomic_store(&n->ready, 1);
    else
        n->barrier_term = 0;
}

static void bare_watch_cb(uv_prepare_t *h)
{
    struct bnode *n = h->data;
    struct slot *s = n->resubmit;

    n->resubmit = NULL;
    uv_idle_stop(&n->kick);
    while (s != NULL) {
        struct slot *next = s->next;
        submit(s);
        s = next;
    }

    if (raft_state(&n->raft) != RAFT_LEADER) {
        atomic_store(&n->ready, 0);
        return;
    }
    if (n->barrier_term == 0 || n->barrier_term != raft_current_term(&n->raft)) {
        struct raft_barrier *req = calloc(1, sizeof(*req));
        atomic_store(&n->ready, 0);
        if (req == NULL)
            return;
        n->barrier_term = raft_current_term(&n->raft);
        req->data = n;
        if (raft_barrier(&n->raft, req, bare_barrier_cb) != 0) {
            free(req);
            n->barrier_term = 0;
        }
    }
}

static void bkv_state_cb(struct bkv_raft *r, enum bkv_raft_role role, void *data)
{
    struct bnode *n = data;

    (void)r;
    atomic_store(&n->ready, role == BKV_RAFT_LEADER_READY);
}

static void bkv_unavailable_cb(struct bkv_raft *r, const char *reason, void *data)
{
    struct bnode *n = data;

    (void)r;
    fprintf(stderr, "bkv-bench raft: node %d: %s\n", n->idx + 1, reason);
}

static void closed_cb(uv_handle_t *h)
{
    (void)h;
}

static void bare_closed_cb(struct raft *raft)
{
    struct bnode *n = (struct bnode *)((char *)raft - offsetof(struct bnode, raft));

    raft_uv_close(&n->io);
    raft_uv_tcp_close(&n->transport);
    uv_close((uv_handle_t *)&n->async, closed_cb);
    uv_close((uv_handle_t *)&n->timer, closed_cb);
}

static void bkv_closed_cb(void *data)
{
    struct bnode *n = data;

    n->br = NULL;
    uv_close((uv_handle_t *)&n->async, closed_cb);
    uv_close((uv_handle_t *)&n->timer, closed_cb);
}

static void async_cb(uv_async_t *h)
{
    struct bnode *n = h->data;
    struct bench *b = n->bench;
    enum order order;
    struct level *lv;

    pthread_mutex_lock(&b->mu);
    order = n->order;
    lv = n->order_level;
    n->order = ORDER_NONE;
    pthread_mutex_unlock(&b->mu);
    switch (order) {
    case ORDER_SETUP:
        start_setup(n);
        break;
    case ORDER_RUN:
        start_level(n, lv);
        break;
    case ORDER_STOP:
        uv_timer_stop(&n->timer);
        if (n->mode == MODE_BARE) {
            uv_close((uv_handle_t *)&n->watch, closed_cb);
            uv_close((uv_handle_t *)&n->kick, closed_cb);
            raft_close(&n->raft, bare_closed_cb);
        } else {
            bkv_raft_close(n->br, bkv_closed_cb, n);
        }
        break;
    case ORDER_NONE:
        break;
    }
}

/* Set up one node on its loop; 0 or -1 with n->err set. Runs on the node's thread. */
static int node_open(struct bnode *n)
{
    struct cluster *b = n->cl;
    int rv;

    if (n->mode == MODE_BKV) {
        struct bkv_raft_config cfg;
        memset(&cfg, 0, sizeof(cfg));
        cfg.id = n->id;
        snprintf(cfg.dc, sizeof(cfg.dc), "dc%d", n->idx + 1);
        snprintf(cfg.address, sizeof(cfg.address), "%s", n->addr);
        snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", n->dir);
        for (int i = 0; i < N_NODES; i++) {
            cfg.members[i].id = b->nodes[i].id;
            snprintf(cfg.members[i].dc, sizeof(cfg.members[i].dc), "dc%d", i + 1);
            snprintf(cfg.members[i].snapshot_address, sizeof(cfg.members[i].snapshot_address), "%s",
                     b->nodes[i].snap_addr);
            snprintf(cfg.members[i].address, sizeof(cfg.members[i].address), "%s",
                     b->nodes[i].addr);
        }
        cfg.n_members = N_NODES;
        snprintf(cfg.snapshot_address, sizeof(cfg.snapshot_address), "%s", n->snap_addr);
        cfg.max_attempts = BKV_CMD_MAX_LIMIT; /* never reached: 256 accounts */
        cfg.snapshot_threshold = n->bench->snapshot_threshold;
        rv = bkv_raft_init(&n->loop, &cfg, &n->br, n->err, sizeof(n->err));
        if (rv == BKV_OK && (rv = bkv_raft_bootstrap(n->br)) != BKV_OK)
            snprintf(n->err, sizeof(n->err), "%s", bkv_raft_errmsg(n->br));
        if (rv == BKV_OK &&
            (rv = bkv_raft_start(n->br, bkv_state_cb, bkv_unavailable_cb, n)) != BKV_OK)
            snprintf(n->err, sizeof(n->err), "%s", bkv_raft_errmsg(n->br));
        if (rv != BKV_OK && n->br != NULL) {
            bkv_raft_close(n->br, NULL, NULL);
            uv_run(&n->loop, UV_RUN_DEFAULT);
        }
        return rv == BKV_OK ? 0 : -1;
    }

    struct raft_configuration conf;
    if (mkdir(n->dir, 0700) != 0 && errno != EEXIST) {
        snprintf(n->err, sizeof(n->err), "mkdir %s: %s", n->dir, strerror(errno));
        return -1;
    }
    n->fsm.version = 1;
    n->fsm.apply = bare_fsm_apply;
    n->fsm.snapshot = bare_fsm_snapshot;
    n->fsm.restore = bare_fsm_restore;
    n->transport.version = 1;
    rv = raft_uv_tcp_init(&n->transport, &n->loop);
    if (rv != 0) {
        snprintf(n->err, sizeof(n->err), "raft_uv_tcp_init: %s", raft_strerror(rv));
        return -1;
    }
    rv = raft_uv_init(&n->io, &n->loop, n->dir, &n->transport);
    if (rv != 0) {
        snprintf(n->err, sizeof(n->err), "raft_uv_init %s: %s", n->dir, n->io.errmsg);
        raft_uv_tcp_close(&n->transport);
        return -1;
    }
    rv = raft_init(&n->raft, &n->io, &n->fsm, n->id, n->addr);
    if (rv != 0) {
        snprintf(n->err, sizeof(n->err), "raft_init %s: %s", n->dir, raft_errmsg(&n->raft));
        raft_uv_close(&n->io);
        raft_uv_tcp_close(&n->transport);
        return -1;
    }
    raft_set_pre_vote(&n->raft, true);
    raft_set_snapshot_threshold(&n->raft, n->bench->snapshot_threshold);
    raft_configuration_init(&conf);
    for (int i = 0; i < N_NODES && rv == 0; i++)
        rv = raft_configuration_add(&conf, b->nodes[i].id, b->nodes[i].addr, RAFT_VOTER);
    if (rv == 0)
        rv = raft_bootstrap(&n->raft, &conf);
    raft_configuration_close(&conf);
    if (rv == 0)
        rv = raft_start(&n->raft);
    if (rv != 0) {
        snprintf(n->err, sizeof(n->err), "bootstrap/start %s: %s", n->dir, raft_strerror(rv));
        raft_close(&n->raft, NULL);
        uv_run(&n->loop, UV_RUN_DEFAULT);
        raft_uv_close(&n->io);
        raft_uv_tcp_close(&n->transport);
        return -1;
    }
    uv_prepare_init(&n->loop, &n->watch);
    uv_idle_init(&n->loop, &n->kick);
    n->watch.data = n;
    uv_prepare_start(&n->watch, bare_watch_cb);
    return 0;
}

static void *node_thread(void *arg)
{
    struct bnode *n = arg;

    uv_loop_init(&n->loop);
    uv_async_init(&n->loop, &n->async, async_cb);
    uv_timer_init(&n->loop, &n->timer);
    n->async.data = n->timer.data = n;
    if (node_open(n) != 0) {
        uv_close((uv_handle_t *)&n->async, closed_cb);
        uv_close((uv_handle_t *)&n->timer, closed_cb);
        atomic_store(&n->failed, 1);
    }
    uv_run(&n->loop, UV_RUN_DEFAULT);
    uv_loop_close(&n->loop);
    return NULL;
}

static const int levels[] = {1, 16, 256};
#define N_LEVELS (int)(sizeof(levels) / sizeof(levels[0]))

/* BKV_BENCH_RAFT_LEVEL=K (for profiling): measure only the level K. */
static bool level_wanted(int l)
{
    const char *only = getenv("BKV_BENCH_RAFT_LEVEL");

    return only == NULL || only[0] == '\0' || atoi(only) == levels[l];
}

/* BKV_BENCH_RAFT_MODE=bare|bkv (for profiling): run only that cluster. */
static bool mode_wanted(enum mode m)
{
    const char *only = getenv("BKV_BENCH_RAFT_MODE");

    return only == NULL || only[0] == '\0' || strcmp(only, m == MODE_BARE ? "bare" : "bkv") == 0;
}

/* ---- the main thread ---- */

static int free_ports(uint16_t *ports, int n)
{
    int fds[3 * N_NODES];
    int rc = 0, i;

    for (i = 0; i < n; i++) {
        struct sockaddr_in sa;
        socklen_t len = sizeof(sa);
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
            getsockname(fds[i], (struct sockaddr *)&sa, &len) != 0) {
            rc = -1;
            if (fds[i] >= 0)
                close(fds[i]);
            break;
        }
        ports[i] = ntohs(sa.sin_port);
    }
    while (i-- > 0)
        close(fds[i]);
    return rc;
}

/* Give an order to node n's loop and wait until it reports done. */
static void order(struct bench *b, struct bnode *n, enum order o, struct level *lv, bool wait)
{
    pthread_mutex_lock(&b->mu);
    n->order = o;
    n->order_level = lv;
    b->order_done = false;
    pthread_mutex_unlock(&b->mu);
    uv_async_send(&n->async);
    if (!wait)
        return;
    pthread_mutex_lock(&b->mu);
    while (!b->order_done)
        pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
}

static struct bnode *wait_leader(struct cluster *c)
{
    for (int t = 0; t < LEADER_WAIT_MS / 10; t++) {
        for (int i = 0; i < N_NODES; i++) {
            if (atomic_load(&c->nodes[i].failed))
                return NULL;
            if (atomic_load(&c->nodes[i].ready))
                return &c->nodes[i];
        }
        usleep(10000);
    }
    return NULL;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* What one mode measured at one level, over all its windows. */
struct figures {
    size_t done, failed;
    double secs;
    uint64_t entries;
    double *lat_us;
    size_t n_lat;
    double ops, p50_ms, p99_ms, per_entry;
    double win_ops[ROUNDS]; /* each window's rate */
};

/* Add one window's measurements to f (takes lv's latencies). */
static void accumulate(struct figures *f, int round, struct level *lv)
{
    double secs = (lv->t_end - lv->t_start) / 1e6;
    double *p;

    f->done += lv->done;
    f->failed += lv->failed;
    f->entries += lv->entries;
    if (secs > 0) {
        f->secs += secs;
        f->win_ops[round] = (double)lv->done / secs;
    }
    p = realloc(f->lat_us, (f->n_lat + lv->n_lat + 1) * sizeof(*p));
    if (p != NULL) {
        f->lat_us = p;
        if (lv->n_lat > 0)
            memcpy(p + f->n_lat, lv->lat_us, lv->n_lat * sizeof(*p));
        f->n_lat += lv->n_lat;
    }
    free(lv->lat_us);
    lv->lat_us = NULL;
}

static void summarize(struct figures *f)
{
    if (f->n_lat == 0 || f->secs <= 0)
        return;
    qsort(f->lat_us, f->n_lat, sizeof(double), bkv_bench_cmp_double);
    f->ops = (double)f->done / f->secs;
    f->p50_ms = f->lat_us[f->n_lat / 2] / 1000;
    f->p99_ms = f->lat_us[(size_t)((double)f->n_lat * 0.99)] / 1000;
    f->per_entry = f->entries > 0 ? (double)f->done / (double)f->entries : 0;
}

/* Start a cluster's node threads and wait for its leader (BKV: and register accounts). */
static int cluster_start(struct bench *b, enum mode mode, const uint16_t *ports)
{
    struct cluster *c = &b->cl[mode];

    c->mode = mode;
    for (int i = 0; i < N_NODES; i++) {
        struct bnode *n = &c->nodes[i];
        memset(n, 0, sizeof(*n));
        n->idx = i;
        n->mode = mode;
        n->id = (uint64_t)i + 1;
        n->bench = b;
        n->cl = c;
        snprintf(n->addr, sizeof(n->addr), "127.0.0.1:%u", ports[i]);
        if (mode == MODE_BKV)
            snprintf(n->snap_addr, sizeof(n->snap_addr), "127.0.0.1:%u", ports[N_NODES + i]);
        snprintf(n->dir, sizeof(n->dir), "%s/%s-%d", b->root, mode == MODE_BARE ? "bare" : "bkv",
                 i + 1);
    }
    for (int i = 0; i < N_NODES; i++) {
        if (pthread_create(&c->nodes[i].thread, NULL, node_thread, &c->nodes[i]) != 0)
            return BKV_ERR_NOMEM;
        c->started++;
    }
    c->leader = wait_leader(c);
    if (c->leader == NULL) {
        for (int i = 0; i < N_NODES; i++)
            if (c->nodes[i].err[0] != '\0')
                fprintf(stderr, "bkv-bench raft: node %d: %s\n", i + 1, c->nodes[i].err);
        fprintf(stderr, "bkv-bench raft: %s: no leader within %d ms\n",
                mode == MODE_BARE ? "bare" : "BKV", LEADER_WAIT_MS);
        return BKV_ERR_RAFT;
    }
    if (mode == MODE_BKV) {
        order(b, c->leader, ORDER_SETUP, NULL, true);
        if (c->leader->err[0] != '\0') {
            fprintf(stderr, "bkv-bench raft: %s\n", c->leader->err);
            return BKV_ERR_RAFT;
        }
    }
    return BKV_OK;
}

static void cluster_stop(struct bench *b, struct cluster *c)
{
    for (int i = 0; i < c->started; i++) {
        if (!atomic_load(&c->nodes[i].failed))
            order(b, &c->nodes[i], ORDER_STOP, NULL, false);
        pthread_join(c->nodes[i].thread, NULL);
    }
    c->started = 0;
}

/*
 * Measure one level: ROUNDS windows per mode, alternating bare and BKV
 * (bare first in even rounds, BKV first in odd ones), so that both see the
 * same machine: a drift in load between the two shows in both.
 */
static void run_level(struct bench *b, int inflight, double seconds, struct figures figs[2])
{
    for (int r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < 2; k++) {
            enum mode m = (enum mode)((r + k) % 2 == 0 ? MODE_BARE : MODE_BKV);
            struct cluster *c = &b->cl[m];
            struct level lv;

            if (c->leader == NULL)
                continue;
            memset(&lv, 0, sizeof(lv));
            lv.inflight = inflight;
            lv.seconds = seconds / ROUNDS;
            lv.warmup_s = lv.seconds >= 1 ? 0.25 : 0.25 * lv.seconds;
            order(b, c->leader, ORDER_RUN, &lv, true);
            if (getenv("BKV_BENCH_RAFT_VERBOSE") != NULL) /* each window, for the curious */
                fprintf(stderr, "  %d in flight, pair %d, %s: %zu done in %.3f s, %zu failed\n",
                        inflight, r + 1, m == MODE_BARE ? "bare" : "BKV ", lv.done,
                        (lv.t_end - lv.t_start) / 1e6, lv.failed);
            accumulate(&figs[m], r, &lv);
        }
    }
    summarize(&figs[MODE_BARE]);
    summarize(&figs[MODE_BKV]);
}

int bkv_bench_raft(int seconds_per_level)
{
    static struct bench b; /* large; one benchmark at a time */
    struct figures figs[N_LEVELS][2];
    uint16_t ports[3 * N_NODES]; /* bare Raft, BKV Raft, BKV snapshot servers */
    struct bkv_cmd cmd;
    const char *tmp = getenv("TMPDIR");
    int rc = BKV_OK;

    if (seconds_per_level <= 0)
        return BKV_ERR_INVALID;
    signal(SIGPIPE, SIG_IGN); /* libuv writes to peers that may be gone */
    memset(&b, 0, sizeof(b));
    memset(figs, 0, sizeof(figs));
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    b.snapshot_threshold = SNAPSHOT_THRESHOLD;
    if (getenv("BKV_BENCH_RAFT_SNAPSHOT") != NULL && atoi(getenv("BKV_BENCH_RAFT_SNAPSHOT")) > 0)
        b.snapshot_threshold = (unsigned)atoi(getenv("BKV_BENCH_RAFT_SNAPSHOT"));
    memset(&cmd, 0, sizeof(cmd));
    cmd.type = BKV_CMD_ATTEMPT; /* carries no limit: the REGISTER's row holds it */
    b.entry_len = bkv_cmd_entry_len(&cmd, 1);
    if (b.entry_len == 0 || b.entry_len > sizeof(b.entry) ||
        bkv_cmd_entry_encode(&cmd, 1, b.entry, sizeof(b.entry), &b.entry_len) != BKV_OK) {
        fprintf(stderr, "bkv-bench raft: cannot encode an ATTEMPT entry\n");
        return BKV_ERR_FORMAT;
    }
    if (free_ports(ports, 3 * N_NODES) != 0) {
        fprintf(stderr, "bkv-bench raft: no free loopback ports\n");
        return BKV_ERR_IO;
    }
    /* Not /dev/shm: the disk log's durable writes are part of what is measured. */
    snprintf(b.root, sizeof(b.root), "%s/bkv-bench-raft-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/var/tmp");
    if (mkdtemp(b.root) == NULL) {
        fprintf(stderr, "bkv-bench raft: mkdtemp %s: %s\n", b.root, strerror(errno));
        return BKV_ERR_IO;
    }
    for (int m = MODE_BARE; m <= MODE_BKV && rc == BKV_OK; m++)
        if (mode_wanted((enum mode)m))
            rc = cluster_start(&b, (enum mode)m, ports + m * N_NODES);
    for (int l = 0; l < N_LEVELS && rc == BKV_OK; l++)
        if (level_wanted(l))
            run_level(&b, levels[l], seconds_per_level, figs[l]);
    cluster_stop(&b, &b.cl[MODE_BARE]);
    cluster_stop(&b, &b.cl[MODE_BKV]);
    nftw(b.root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (rc == BKV_OK) {
        printf("raft: 3 voters per cluster in one process (one libuv loop thread each), loopback "
               "TCP, disk log under %s; entry %zu bytes per ATTEMPT; a snapshot every %u "
               "entries; %d s per level in %d alternating pairs of windows\n",
               tmp != NULL && tmp[0] != '\0' ? tmp : "/var/tmp", b.entry_len, b.snapshot_threshold,
               seconds_per_level, ROUNDS);
        printf("%9s | %12s %8s %8s | %12s %8s %8s %10s | %8s %8s %8s\n", "in-flight", "bare ops/s",
               "p50 ms", "p99 ms", "BKV ops/s", "p50 ms", "p99 ms", "cmds/entry", "BKV/bare",
               "(total)", "(pairs)");
        for (int l = 0; l < N_LEVELS; l++) {
            struct figures *bare = &figs[l][MODE_BARE], *bkv = &figs[l][MODE_BKV];
            double q[ROUNDS];

            /* each pair's ratio; the median is the headline, steadier than the totals */
            for (int r = 0; r < ROUNDS; r++)
                q[r] = bare->win_ops[r] > 0 ? 100 * bkv->win_ops[r] / bare->win_ops[r] : 0;
            qsort(q, ROUNDS, sizeof(double), bkv_bench_cmp_double);
            printf("%9d | %12.0f %8.3f %8.3f | %12.0f %8.3f %8.3f %10.1f | %7.0f%% %7.0f%% "
                   "%3.0f-%.0f%%\n",
                   levels[l], bare->ops, bare->p50_ms, bare->p99_ms, bkv->ops, bkv->p50_ms,
                   bkv->p99_ms, bkv->per_entry, q[ROUNDS / 2],
                   bare->ops > 0 ? 100 * bkv->ops / bare->ops : 0, q[0], q[ROUNDS - 1]);
            if (bare->failed || bkv->failed)
                printf("%9s   (failed proposals: bare %zu, BKV %zu; a leader change mid-run)\n", "",
                       bare->failed, bkv->failed);
        }
    }
    for (int l = 0; l < N_LEVELS; l++) {
        free(figs[l][MODE_BARE].lat_us);
        free(figs[l][MODE_BKV].lat_us);
    }
    pthread_mutex_destroy(&b.mu);
    pthread_cond_destroy(&b.cv);
    return rc;
}
