/*
 * One Raft member: libraft 0.22 on raft_uv and its TCP transport, the FSM over
 * the SQLite store, all on one libuv loop. This file holds the life cycle, the
 * role watch and the image fetch hook; proposals are in propose.c, membership
 * changes, snapshot now and the accessors in members.c, and the private struct
 * bkv_raft in node_internal.h.
 *
 * Normal path: bkv_raft_init makes <data_dir>/{raft,snapshots,images}
 * (emptying snapshots/ of a crash's leftovers), opens the store with group
 * commit (at most STORE_GROUP entries per SQLite transaction; pending
 * entries are committed STORE_FLUSH_MS after the first, by the monitor right
 * after it has handed the queued proposals to libraft), starts the
 * snapshot image server (transfer.h) on cfg.snapshot_address, gives the FSM
 * a fetch hook that asks the leader's image server first, then the other
 * members' (blocking the loop, within snapshot_fetch_timeout_ms), and sets
 * up the transport (version 1), raft_uv and raft_init (which probes the
 * disk). bkv_raft_start starts raft and a uv_prepare_t monitor
 * that polls raft_state() once per loop iteration: a new leader issues a
 * barrier of its term and serves proposals (LEADER_READY) once it commits;
 * any step down cancels that. The monitor then hands the queued proposals
 * to libraft (node_flush, propose.c).
 * Failure modes: an unusable data directory fails init with a message that
 * names it and the call. The instance is declared unavailable, once, through
 * the unavailable callback, when raft_state() says so or when the applied
 * index stops short of the commit index (libraft 0.22.1 neither applies nor
 * turns unavailable after an FSM failure such as a full store disk), or at
 * once when a group commit failed (its entries, reported applied, are lost:
 * a restart replays them from the log); queued proposals then get
 * BKV_ERR_RAFT. A barrier refused for a full raft disk makes proposals
 * report BKV_ERR_NOSPACE until one commits. Close is asynchronous and in
 * reverse order: queued proposals get BKV_ERR_SHUTDOWN, then raft_close
 * (which waits for log writes; entries it never called back get
 * BKV_ERR_SHUTDOWN too), raft_uv, the transport, the image server, the FSM,
 * the store (which commits what is pending).
 */
#include "consensus/node.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <raft.h>
#include <raft/uv.h>

#include "consensus/fsm.h"
#include "consensus/iotap.h"
#include "consensus/node_internal.h"
#include "consensus/store.h"
#include "consensus/transfer.h"
#include "proto/err.h"

#define BARRIER_RETRY_MS 100   /* after a failed barrier of a still-current term */
#define APPLY_STALL_MS   3000  /* commit > applied this long: the FSM is failing */
#define STORE_GROUP      1024  /* entries one SQLite transaction may hold */
#define STORE_FLUSH_MS   20    /* pending entries are committed this soon at the latest */
#define FETCH_TIMEOUT_MS 30000 /* default deadline of one image fetch */

/* A barrier issued on becoming leader; freed in its callback. */
struct barrier {
    struct raft_barrier req;
    struct bkv_raft *r;
    uint64_t term;
    struct barrier *next;
};

/* ---- helpers ---- */

/* The tap's hold predicate (iotap.h): libraft is between fsm snapshot and finalize. */
static int snapshot_taking(void *data)
{
    const struct bkv_fsm *f = data;
    return f->taking;
}

void node_set_err(struct bkv_raft *r, char *err, size_t err_cap, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->errmsg, sizeof(r->errmsg), fmt, ap);
    va_end(ap);
    if (err != NULL && err_cap > 0)
        snprintf(err, err_cap, "%s", r->errmsg);
}

static bool mentions_nospace(const char *msg)
{
    return msg != NULL && (strstr(msg, "No space") != NULL || strstr(msg, "no space") != NULL ||
                           strstr(msg, "disk is full") != NULL || strstr(msg, "ENOSPC") != NULL);
}

/* A libraft code (and the message that came with it) as a BKV code. */
int node_map_raft(int rv, const char *msg)
{
    switch (rv) {
    case 0:
        return BKV_OK;
    case RAFT_NOMEM:
        return BKV_ERR_NOMEM;
    case RAFT_NOTLEADER:
        return BKV_ERR_NOT_LEADER;
    case RAFT_LEADERSHIPLOST:
        return BKV_ERR_LEADERSHIP_LOST;
    case RAFT_SHUTDOWN:
    case RAFT_CANCELED:
        return BKV_ERR_SHUTDOWN;
    case RAFT_NOSPACE:
        return BKV_ERR_NOSPACE;
    case RAFT_TOOBIG:
        return BKV_ERR_LIMIT;
    case RAFT_IOERR:
    case RAFT_CORRUPT:
        return mentions_nospace(msg) ? BKV_ERR_NOSPACE : BKV_ERR_IO;
    default:
        return mentions_nospace(msg) ? BKV_ERR_NOSPACE : BKV_ERR_RAFT;
    }
}

static int make_dir(struct bkv_raft *r, const char *path, char *err, size_t err_cap)
{
    struct stat st;

    if (mkdir(path, 0700) == 0)
        return BKV_OK;
    if (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return BKV_OK;
    node_set_err(r, err, err_cap, "raft: mkdir %s: %s", path, strerror(errno));
    return errno == ENOSPC ? BKV_ERR_NOSPACE : BKV_ERR_IO;
}

/*
 * Remove the files left in the snapshot scratch directory by a crash (image
 * copies, a half-written restore.db): nothing there outlives a process, and
 * an old image holds secrets that have since been deleted.
 */
static int clear_dir(struct bkv_raft *r, const char *path, char *err, size_t err_cap)
{
    DIR *d = opendir(path);
    struct dirent *e;
    int rc = BKV_OK;

    if (d == NULL) {
        node_set_err(r, err, err_cap, "raft: opendir %s: %s", path, strerror(errno));
        return BKV_ERR_IO;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) != 0 && errno != ENOENT) {
            node_set_err(r, err, err_cap, "raft: remove %s/%s: %s", path, e->d_name,
                         strerror(errno));
            rc = BKV_ERR_IO;
            break;
        }
    }
    closedir(d);
    return rc;
}

static bool terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

static int check_config(const struct bkv_raft_config *c, char *err, size_t err_cap)
{
    const char *why = NULL;
    char buf[128];

    if (c->id == 0)
        why = "node id 0";
    else if (!terminated(c->dc, sizeof(c->dc)) || !terminated(c->address, sizeof(c->address)) ||
             !terminated(c->data_dir, sizeof(c->data_dir)))
        why = "unterminated string";
    else if (c->address[0] == '\0')
        why = "no Raft address";
    else if (c->data_dir[0] == '\0')
        why = "no data directory";
    else if (c->n_members > BKV_RAFT_MAX_MEMBERS)
        why = "too many members";
    else if (c->max_attempts > BKV_CMD_MAX_LIMIT)
        why = "max_attempts above BKV_CMD_MAX_LIMIT";
    else if (!terminated(c->snapshot_address, sizeof(c->snapshot_address)))
        why = "unterminated string";
    else if (c->n_members > 1 && c->snapshot_address[0] == '\0')
        why = "no snapshot address (every node of a cluster serves its snapshot images)";
    for (size_t i = 0; why == NULL && i < c->n_members; i++) {
        const struct bkv_raft_member *m = &c->members[i];
        if (m->id == 0 || !terminated(m->dc, sizeof(m->dc)) ||
            !terminated(m->address, sizeof(m->address)) || m->address[0] == '\0' ||
            !terminated(m->snapshot_address, sizeof(m->snapshot_address)))
            why = "bad member";
        else if (c->n_members > 1 && m->snapshot_address[0] == '\0') {
            snprintf(buf, sizeof(buf), "member %llu has no snapshot address",
                     (unsigned long long)m->id);
            why = buf;
        }
        for (size_t j = 0; why == NULL && j < i; j++)
            if (c->members[j].id == m->id || strcmp(c->members[j].address, m->address) == 0)
                why = "duplicate member id or address";
    }
    if (why == NULL)
        return BKV_OK;
    if (err != NULL && err_cap > 0)
        snprintf(err, err_cap, "raft: config: %s", why);
    return BKV_ERR_INVALID;
}

/* ---- leadership ---- */

static void set_role(struct bkv_raft *r, enum bkv_raft_role role)
{
    if (role == r->role)
        return;
    r->role = role;
    if (r->state_cb != NULL)
        r->state_cb(r, role, r->cb_data);
}

static void barrier_unlink(struct bkv_raft *r, struct barrier *b)
{
    for (struct barrier **pp = &r->barriers; *pp != NULL; pp = &(*pp)->next)
        if (*pp == b) {
            *pp = b->next;
            return;
        }
}

/* Retry later; remember a full disk, which proposals then report. */
static void barrier_failed(struct bkv_raft *r, int rv)
{
    r->barrier_retry = uv_now(r->loop) + BARRIER_RETRY_MS;
    r->nospace = node_map_raft(rv, raft_errmsg(&r->raft)) == BKV_ERR_NOSPACE;
    if (r->nospace)
        node_set_err(r, NULL, 0, "raft: barrier %s: %s", r->raft_dir, raft_errmsg(&r->raft));
}

static void barrier_cb(struct raft_barrier *req, int status)
{
    struct barrier *b = req->data;
    struct bkv_raft *r = b->r;
    uint64_t term = b->term;

    barrier_unlink(r, b);
    free(b);
    if (r->closing || term != r->barrier_term)
        return; /* a barrier of a term this node no longer leads */
    r->barrier_term = 0;
    if (status == 0 && raft_state(&r->raft) == RAFT_LEADER && raft_current_term(&r->raft) == term &&
        r->leader_term == term) {
        r->ready = true;
        r->nospace = false;
        set_role(r, BKV_RAFT_LEADER_READY);
    } else {
        barrier_failed(r, status);
    }
}

static void issue_barrier(struct bkv_raft *r, uint64_t term)
{
    struct barrier *b;
    int rv;

    if (r->barrier_term == term || uv_now(r->loop) < r->barrier_retry)
        return;
    b = calloc(1, sizeof(*b));
    if (b == NULL)
        return; /* retried on the next iteration */
    b->r = r;
    b->term = term;
    b->req.data = b;
    rv = raft_barrier(&r->raft, &b->req, barrier_cb);
    if (rv != 0) {
        free(b);
        barrier_failed(r, rv);
        return;
    }
    b->next = r->barriers;
    r->barriers = b;
    r->barrier_term = term;
}

/* The reason an instance became unavailable, as one line. */
/* The reason an instance is unusable, as one line: what, then every message we have. */
static void describe_unavailable(struct bkv_raft *r, const char *what)
{
    const char *rmsg = raft_errmsg(&r->raft);
    const char *smsg = bkv_store_errmsg(r->store);
    size_t len;

    len = (size_t)snprintf(r->errmsg, sizeof(r->errmsg), "raft: %s: %s", r->cfg.data_dir, what);
    if (rmsg != NULL && rmsg[0] != '\0' && len < sizeof(r->errmsg))
        len += (size_t)snprintf(r->errmsg + len, sizeof(r->errmsg) - len, ": %s", rmsg);
    if (r->tap.io.errmsg[0] != '\0' && len < sizeof(r->errmsg))
        len += (size_t)snprintf(r->errmsg + len, sizeof(r->errmsg) - len, "; io: %s",
                                r->tap.io.errmsg);
    if (smsg != NULL && smsg[0] != '\0' && len < sizeof(r->errmsg))
        len += (size_t)snprintf(r->errmsg + len, sizeof(r->errmsg) - len, "; %s", smsg);
    if (r->fsm.errmsg[0] != '\0' && len < sizeof(r->errmsg))
        len +=
            (size_t)snprintf(r->errmsg + len, sizeof(r->errmsg) - len, "; fsm: %s", r->fsm.errmsg);
    if (len < sizeof(r->errmsg) &&
        (mentions_nospace(rmsg) || mentions_nospace(r->tap.io.errmsg) || mentions_nospace(smsg)))
        snprintf(r->errmsg + len, sizeof(r->errmsg) - len, " (disk full)");
}

/* Report, once, that this instance can no longer serve: the process must exit. */
static void declare_unavailable(struct bkv_raft *r, const char *what)
{
    if (r->unavailable_reported)
        return;
    r->unavailable_reported = true;
    r->ready = false;
    describe_unavailable(r, what);
    node_fail_list(node_take_queue(r), BKV_ERR_RAFT);
    set_role(r, BKV_RAFT_UNAVAILABLE);
    if (r->unavailable_cb != NULL && !r->closing)
        r->unavailable_cb(r, r->errmsg, r->cb_data);
}

/*
 * libraft 0.22.1 applies committed entries synchronously, inside the event
 * that advanced the commit index, so commit > applied between two loop
 * iterations means the FSM refused an entry (a storage failure). libraft
 * does not turn unavailable then: it keeps the entry and retries on a later
 * commit, and every proposal waits forever. Declare the instance unavailable
 * once the applied index has not moved for APPLY_STALL_MS (a snapshot being
 * installed also leaves commit > applied for a moment).
 */
static bool apply_stalled(struct bkv_raft *r)
{
    uint64_t applied = raft_last_applied(&r->raft), now = uv_now(r->loop);

    if (raft_commit_index(&r->raft) <= applied || applied != r->stall_applied) {
        r->stall_applied = applied;
        r->stall_since = now;
        return false;
    }
    return now - r->stall_since >= APPLY_STALL_MS;
}

/* Poll raft's state and move our role along; see the header comment. */
static void watch_role(struct bkv_raft *r)
{
    enum raft_state st = raft_state(&r->raft);

    if (r->unavailable_reported)
        return;
    if (st != RAFT_LEADER) {
        r->leader_term = 0;
        r->ready = false;
    }
    if (st != RAFT_UNAVAILABLE && apply_stalled(r)) {
        char what[96];
        snprintf(what, sizeof(what), "apply stopped at index %llu (committed %llu)",
                 (unsigned long long)raft_last_applied(&r->raft),
                 (unsigned long long)raft_commit_index(&r->raft));
        declare_unavailable(r, what);
        return;
    }
    switch (st) {
    case RAFT_FOLLOWER:
        set_role(r, BKV_RAFT_FOLLOWER);
        break;
    case RAFT_CANDIDATE:
        set_role(r, BKV_RAFT_CANDIDATE);
        break;
    case RAFT_LEADER: {
        uint64_t term = raft_current_term(&r->raft);
        if (term != r->leader_term) {
            r->leader_term = term;
            r->ready = false;
            r->barrier_retry = 0;
        }
        if (!r->ready)
            issue_barrier(r, term);
        set_role(r, r->ready ? BKV_RAFT_LEADER_READY : BKV_RAFT_LEADER);
        break;
    }
    default:
        declare_unavailable(r, "unavailable");
        break;
    }
}

/*
 * The store's pending entries are due for their commit. The timer only says
 * so (and wakes the loop): monitor_cb commits once it has handed the queued
 * proposals to libraft, so the commit overlaps their disk write and round
 * trip instead of delaying them.
 */
static void flush_cb(uv_timer_t *h)
{
    struct bkv_raft *r = h->data;

    r->commit_due = true;
}

static void monitor_cb(uv_prepare_t *h)
{
    struct bkv_raft *r = h->data;

    if (r->closing)
        return;
    if (bkv_store_failed(r->store)) {
        declare_unavailable(r, "store commit failed");
        return;
    }
    watch_role(r);
    if (r->closing)
        return; /* a callback above asked to close */
    node_flush(r);
    if (r->commit_due && !r->unavailable_reported) {
        r->commit_due = false;
        if (bkv_store_flush(r->store) != BKV_OK) {
            /* the pending entries are lost: the node must restart and replay them */
            declare_unavailable(r, "store commit failed");
            return;
        }
    }
    if (bkv_store_pending(r->store) > 0 && !uv_is_active((uv_handle_t *)&r->flush))
        uv_timer_start(&r->flush, flush_cb, STORE_FLUSH_MS, 0);
    if (r->q_head == NULL)
        uv_idle_stop(&r->kick);
}

/* ---- snapshot images ---- */

static unsigned fetch_timeout(const struct bkv_raft *r)
{
    return r->cfg.snapshot_fetch_timeout_ms ? r->cfg.snapshot_fetch_timeout_ms : FETCH_TIMEOUT_MS;
}

/*
 * The FSM's fetch hook (fsm.h): the image from the leader's snapshot server
 * first, then from every other member's, all within one deadline. It runs
 * inside restore on the loop thread and blocks the loop meanwhile (libraft
 * calls restore synchronously, in InstallSnapshot and in raft_start).
 */
/* 1 if id is in the current Raft configuration (a reserved spare not yet added is not). */
static int in_configuration(struct bkv_raft *r, uint64_t id)
{
    for (unsigned i = 0; i < r->raft.configuration.n; i++)
        if (r->raft.configuration.servers[i].id == id)
            return 1;
    return r->raft.configuration.n == 0; /* before the configuration is known: try everyone */
}

static int fetch_image(void *arg, const uint8_t sha256[static 32], uint64_t size, const char *dest,
                       char *err, size_t err_cap)
{
    struct bkv_raft *r = arg;
    const struct bkv_raft_member *order[BKV_RAFT_MAX_MEMBERS];
    uint64_t deadline = uv_hrtime() / 1000000 + fetch_timeout(r);
    raft_id leader = 0;
    const char *laddr = NULL;
    size_t n = 0, len = 0;
    int rv = BKV_ERR_IO;

    raft_leader(&r->raft, &leader, &laddr);
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < r->cfg.n_members; i++) {
            const struct bkv_raft_member *m = &r->cfg.members[i];
            if (m->id != r->cfg.id && m->snapshot_address[0] != '\0' &&
                (pass == 0) == (m->id == leader) && in_configuration(r, m->id))
                order[n++] = m;
        }
    err[0] = '\0';
    if (n == 0)
        snprintf(err, err_cap, "no member with a snapshot address to fetch it from");
    for (size_t i = 0; i < n; i++) {
        uint64_t now = uv_hrtime() / 1000000;
        char why[256];

        if (now >= deadline) {
            if (len < err_cap)
                snprintf(err + len, err_cap - len, "%sdeadline of %u ms passed", len ? "; " : "",
                         fetch_timeout(r));
            break;
        }
        rv = bkv_transfer_fetch(order[i]->snapshot_address, sha256, size, dest,
                                (unsigned)(deadline - now), why, sizeof(why));
        if (rv == BKV_OK)
            return BKV_OK;
        if (len < err_cap)
            len += (size_t)snprintf(err + len, err_cap - len, "%snode %llu%s: %s", len ? "; " : "",
                                    (unsigned long long)order[i]->id,
                                    order[i]->id == leader ? " (leader)" : "", why);
    }
    return rv == BKV_ERR_NOSPACE ? rv : BKV_ERR_IO;
}

/* ---- life cycle ---- */

int bkv_raft_init(uv_loop_t *loop, const struct bkv_raft_config *cfg, struct bkv_raft **out,
                  char *err, size_t err_cap)
{
    struct bkv_raft *r;
    int rc, rv;

    if (out != NULL)
        *out = NULL;
    if (loop == NULL || cfg == NULL || out == NULL) {
        if (err != NULL && err_cap > 0)
            snprintf(err, err_cap, "raft: init: missing argument");
        return BKV_ERR_INVALID;
    }
    rc = check_config(cfg, err, err_cap);
    if (rc != BKV_OK)
        return rc;
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        if (err != NULL && err_cap > 0)
            snprintf(err, err_cap, "raft: init %s: out of memory", cfg->data_dir);
        return BKV_ERR_NOMEM;
    }
    r->loop = loop;
    r->cfg = *cfg;
    if (r->cfg.max_attempts == 0)
        r->cfg.max_attempts = BKV_CMD_DEFAULT_LIMIT;
    r->role = BKV_RAFT_FOLLOWER;
    snprintf(r->raft_dir, sizeof(r->raft_dir), "%s/raft", cfg->data_dir);
    snprintf(r->db_path, sizeof(r->db_path), "%s/state.db", cfg->data_dir);
    snprintf(r->snap_dir, sizeof(r->snap_dir), "%s/snapshots", cfg->data_dir);
    snprintf(r->image_dir, sizeof(r->image_dir), "%s/images", cfg->data_dir);

    rc = make_dir(r, cfg->data_dir, err, err_cap);
    if (rc == BKV_OK)
        rc = make_dir(r, r->raft_dir, err, err_cap);
    if (rc == BKV_OK)
        rc = make_dir(r, r->snap_dir, err, err_cap);
    if (rc == BKV_OK)
        rc = clear_dir(r, r->snap_dir, err, err_cap);
    if (rc == BKV_OK)
        rc = make_dir(r, r->image_dir, err, err_cap);
    if (rc != BKV_OK)
        goto err_free;

    {
        char serr[BKV_STORE_ERRMSG_LEN] = "";
        rc = bkv_store_open(r->db_path, &r->store, serr, sizeof(serr));
        if (rc != BKV_OK) {
            node_set_err(r, err, err_cap, "raft: open store %s: %s", r->db_path, serr);
            if (mentions_nospace(serr))
                rc = BKV_ERR_NOSPACE;
            goto err_free;
        }
    }
    rc = bkv_fsm_init(&r->fsm, r->store, r->snap_dir, r->image_dir);
    if (rc != BKV_OK) {
        node_set_err(r, err, err_cap, "raft: fsm init %s: %s", r->snap_dir, bkv_strerror(rc));
        goto err_store;
    }
    bkv_fsm_set_fetch(&r->fsm, fetch_image, r);
    if (cfg->snapshot_address[0] != '\0') {
        char terr[256] = "";
        rc =
            bkv_transfer_serve(cfg->snapshot_address, r->image_dir, &r->images, terr, sizeof(terr));
        if (rc != BKV_OK) {
            node_set_err(r, err, err_cap, "raft: snapshot server %s: %s", cfg->snapshot_address,
                         terr);
            goto err_fsm;
        }
    }
    bkv_store_set_group(r->store, STORE_GROUP);

    r->transport.version = 1; /* raft_uv_tcp_init refuses version 0 */
    rv = raft_uv_tcp_init(&r->transport, loop);
    if (rv != 0) {
        node_set_err(r, err, err_cap, "raft: transport init %s: %s: %s", cfg->address,
                     raft_strerror(rv), r->transport.errmsg);
        rc = node_map_raft(rv, r->transport.errmsg);
        goto err_images;
    }
    rv = raft_uv_init(&r->tap.io, loop, r->raft_dir, &r->transport);
    if (rv != 0) {
        node_set_err(r, err, err_cap, "raft: io init %s: %s", r->raft_dir,
                     r->tap.io.errmsg[0] != '\0' ? r->tap.io.errmsg : raft_strerror(rv));
        rc = node_map_raft(rv, r->tap.io.errmsg);
        goto err_transport;
    }
    /* Snapshots stay file-mapped (fsm.h); a no-op on 0.22, which never compresses. */
    raft_uv_set_snapshot_compression(&r->tap.io, false);
    /* A corrupt log tail is an operator's problem, never silently dropped. */
    raft_uv_set_auto_recovery(&r->tap.io, false);

    bkv_iotap_init(&r->tap, loop, snapshot_taking, &r->fsm);
    if (cfg->test_slow_snapshot_ms > 0)
        bkv_iotap_slow_snapshot(&r->tap, cfg->test_slow_snapshot_ms);
    rv = raft_init(&r->raft, &r->tap.io, &r->fsm.raft, cfg->id, cfg->address);
    if (rv != 0) {
        node_set_err(r, err, err_cap, "raft: init %s: %s", r->raft_dir,
                     raft_errmsg(&r->raft)[0] != '\0' ? raft_errmsg(&r->raft) : raft_strerror(rv));
        rc = node_map_raft(rv, raft_errmsg(&r->raft));
        goto err_io;
    }
    bkv_fsm_bind(&r->fsm, &r->raft);
    raft_set_election_timeout(&r->raft, cfg->election_timeout_ms ? cfg->election_timeout_ms : 1000);
    raft_set_heartbeat_timeout(&r->raft,
                               cfg->heartbeat_timeout_ms ? cfg->heartbeat_timeout_ms : 100);
    if (cfg->snapshot_threshold > 0)
        raft_set_snapshot_threshold(&r->raft, cfg->snapshot_threshold);
    if (cfg->snapshot_trailing > 0)
        raft_set_snapshot_trailing(&r->raft, cfg->snapshot_trailing);
    raft_set_pre_vote(&r->raft, true); /* a restarted node does not depose a healthy leader */
    /* A follower's restore may block for a whole image fetch before it answers. */
    raft_set_install_snapshot_timeout(&r->raft, fetch_timeout(r) + 10000);

    uv_prepare_init(loop, &r->monitor);
    uv_idle_init(loop, &r->kick);
    uv_timer_init(loop, &r->defer);
    uv_timer_init(loop, &r->flush);
    r->monitor.data = r->kick.data = r->defer.data = r->flush.data = r;
    r->open_handles = 4;
    *out = r;
    return BKV_OK;

err_io:
    raft_uv_close(&r->tap.io);
err_transport:
    raft_uv_tcp_close(&r->transport);
err_images:
    bkv_transfer_stop(r->images);
err_fsm:
    bkv_fsm_close(&r->fsm);
err_store:
    bkv_store_close(r->store);
err_free:
    free(r);
    return rc;
}

/*
 * Whether raft_uv's directory holds anything beyond the two metadata files
 * it creates on every load (segments, open segments, snapshots): a node
 * that ever ran bootstrap or joined has them. Unreadable counts as yes, so
 * libraft's own check decides.
 */
static bool raft_dir_has_log(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    bool found = false;

    if (d == NULL)
        return true;
    while (!found && (e = readdir(d)) != NULL)
        found = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
                strcmp(e->d_name, "metadata1") != 0 && strcmp(e->d_name, "metadata2") != 0;
    closedir(d);
    return found;
}

int bkv_raft_bootstrap(struct bkv_raft *r)
{
    struct raft_configuration conf;
    bool self = false;
    int rv = 0;

    if (r == NULL)
        return BKV_ERR_INVALID;
    if (r->started || r->closing) {
        node_set_err(r, NULL, 0, "raft: bootstrap %s: node already started", r->cfg.data_dir);
        return BKV_ERR_INVALID;
    }
    for (size_t i = 0; i < r->cfg.n_members; i++)
        if (r->cfg.members[i].id == r->cfg.id && !r->cfg.members[i].later &&
            strcmp(r->cfg.members[i].address, r->cfg.address) == 0)
            self = true;
    if (!self) {
        node_set_err(r, NULL, 0, "raft: bootstrap %s: node %llu (%s) is not in the member list",
                     r->cfg.data_dir, (unsigned long long)r->cfg.id, r->cfg.address);
        return BKV_ERR_INVALID;
    }
    /*
     * A store with state but a pristine log would be ahead of the log: the
     * new log's entries would land on indexes it already holds, and their
     * commands would not be applied. (A node with a log gets libraft's
     * "already bootstrapped" below, as before.)
     */
    if (bkv_store_applied_index(r->store) > 0 && !raft_dir_has_log(r->raft_dir)) {
        node_set_err(r, NULL, 0,
                     "raft: bootstrap %s: the store already holds state at index %llu; refusing to "
                     "bootstrap",
                     r->cfg.data_dir, (unsigned long long)bkv_store_applied_index(r->store));
        return BKV_ERR_INVALID;
    }
    raft_configuration_init(&conf);
    for (size_t i = 0; rv == 0 && i < r->cfg.n_members; i++)
        if (!r->cfg.members[i].later)
            rv = raft_configuration_add(&conf, r->cfg.members[i].id, r->cfg.members[i].address,
                                        RAFT_VOTER);
    if (rv == 0)
        rv = raft_bootstrap(&r->raft, &conf);
    raft_configuration_close(&conf);
    if (rv == RAFT_CANTBOOTSTRAP) {
        node_set_err(r, NULL, 0, "raft: bootstrap %s: already bootstrapped", r->raft_dir);
        return BKV_ERR_INVALID;
    }
    if (rv != 0) {
        node_set_err(r, NULL, 0, "raft: bootstrap %s: %s: %s", r->raft_dir, raft_strerror(rv),
                     r->tap.io.errmsg);
        return node_map_raft(rv, r->tap.io.errmsg);
    }
    return BKV_OK;
}

int bkv_raft_start(struct bkv_raft *r, bkv_raft_state_cb state_cb,
                   bkv_raft_unavailable_cb unavailable_cb, void *data)
{
    int rv;

    if (r == NULL || r->started || r->closing)
        return BKV_ERR_INVALID;
    r->state_cb = state_cb;
    r->unavailable_cb = unavailable_cb;
    r->cb_data = data;
    rv = raft_start(&r->raft);
    if (rv != 0) {
        node_set_err(r, NULL, 0, "raft: start %s: %s", r->raft_dir,
                     raft_errmsg(&r->raft)[0] != '\0' ? raft_errmsg(&r->raft) : raft_strerror(rv));
        return node_map_raft(rv, raft_errmsg(&r->raft));
    }
    r->started = true;
    uv_prepare_start(&r->monitor, monitor_cb);
    return BKV_OK;
}

static void handle_closed(uv_handle_t *h)
{
    struct bkv_raft *r = h->data;
    void (*cb)(void *) = r->close_cb;
    void *data = r->close_data;

    if (--r->open_handles > 0)
        return;
    free(r);
    if (cb != NULL)
        cb(data);
}

static void raft_closed_cb(struct raft *raft)
{
    struct bkv_raft *r = (struct bkv_raft *)((char *)raft - offsetof(struct bkv_raft, raft));

    /* Requests raft never called back: nothing will, from now on. */
    while (r->inflight != NULL) {
        struct batch *b = r->inflight;
        node_batch_unlink(r, b);
        node_fail_list(b->head, BKV_ERR_SHUTDOWN);
        free(b);
    }
    while (r->barriers != NULL) {
        struct barrier *b = r->barriers;
        r->barriers = b->next;
        free(b);
    }
    raft_uv_close(&r->tap.io);
    raft_uv_tcp_close(&r->transport);
    bkv_transfer_stop(r->images);
    r->images = NULL;
    bkv_fsm_close(&r->fsm);
    bkv_store_close(r->store);
    r->store = NULL;
    uv_close((uv_handle_t *)&r->monitor, handle_closed);
    uv_close((uv_handle_t *)&r->kick, handle_closed);
    uv_close((uv_handle_t *)&r->defer, handle_closed);
    uv_close((uv_handle_t *)&r->flush, handle_closed);
}

/* Runs from a timer, never inside a raft callback. */
static void close_start_cb(uv_timer_t *h)
{
    struct bkv_raft *r = h->data;

    uv_prepare_stop(&r->monitor);
    uv_idle_stop(&r->kick);
    uv_timer_stop(&r->flush); /* the store commits on close */
    node_fail_list(node_take_queue(r), BKV_ERR_SHUTDOWN);
    raft_close(&r->raft, raft_closed_cb); /* fails what is pending, waits for log writes */
}

void bkv_raft_close(struct bkv_raft *r, void (*cb)(void *data), void *data)
{
    if (r == NULL || r->closing)
        return;
    r->closing = true;
    r->close_cb = cb;
    r->close_data = data;
    uv_timer_start(&r->defer, close_start_cb, 0, 0);
}
