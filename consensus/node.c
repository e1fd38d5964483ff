/*
 * One Raft member: libraft 0.22 on raft_uv and its TCP transport, the FSM over
 * the SQLite store, all on one libuv loop.
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
 * any step down cancels that. bkv_raft_propose copies the commands into a
 * queue; the monitor flushes the queue into ONE raft_apply entry of up to
 * BKV_CMD_MAX_BATCH commands (so proposals made in one iteration share an
 * entry and its disk write; never from inside a libraft callback), and the
 * apply callback fans the FSM's results out to each proposer in order. If
 * the FSM's result ring was overrun (fsm.h), the entry did commit: its
 * proposals are proposed again and get their remembered results; any later
 * failure of such a proposal is reported as BKV_ERR_LEADERSHIP_LOST
 * (outcome unknown), never as a code that suggests nothing was applied.
 * Failure modes: an unusable data directory fails init with a message that
 * names it and the call. The instance is declared unavailable, once, through
 * the unavailable callback, when raft_state() says so or when the applied
 * index stops short of the commit index (libraft 0.22.1 neither applies nor
 * turns unavailable after an FSM failure such as a full store disk), or at
 * once when a group commit failed (its entries, reported applied, are lost:
 * a restart replays them from the log).
 * Proposals in flight when leadership is lost get BKV_ERR_LEADERSHIP_LOST
 * (outcome unknown: retry with the same request ids), queued ones
 * BKV_ERR_NOT_LEADER, and BKV_ERR_SHUTDOWN on close. A full raft disk
 * (libraft refuses entries, barriers included, below its capacity
 * threshold) maps to BKV_ERR_NOSPACE. Close is asynchronous and in reverse
 * order: raft_close (which waits for log writes), raft_uv, the transport,
 * the image server, the FSM, the store (which commits what is pending).
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
#include "consensus/store.h"
#include "consensus/transfer.h"
#include "proto/err.h"

#define BATCH_MAX_BYTES  (1u << 20) /* soft cap on one entry: always room for one proposal */
#define BARRIER_RETRY_MS 100        /* after a failed barrier of a still-current term */
#define APPLY_STALL_MS   3000       /* commit > applied this long: the FSM is failing */
#define STORE_GROUP      1024       /* entries one SQLite transaction may hold */
#define STORE_FLUSH_MS   20         /* pending entries are committed this soon at the latest */
#define FETCH_TIMEOUT_MS 30000      /* default deadline of one image fetch */

/* A barrier issued on becoming leader; freed in its callback. */
struct barrier {
    struct raft_barrier req;
    struct bkv_raft *r;
    uint64_t term;
    struct barrier *next;
};

/* One raft_apply entry in flight: the proposals whose commands it carries. */
struct batch {
    struct raft_apply req;
    struct bkv_raft *r;
    struct bkv_raft_propose *head; /* proposals in entry order, linked by impl[0] */
    size_t n_cmds;
    struct batch *prev, *next;
};

/* A proposal's private slots (struct bkv_raft_propose.impl). */
enum { P_NEXT = 0, P_COPY = 1, P_BYTES = 2, P_REQUEUED = 3 };

struct bkv_raft {
    uv_loop_t *loop;
    struct bkv_raft_config cfg;
    char raft_dir[4200];
    char db_path[4200];
    char snap_dir[4200];
    char image_dir[4200];

    struct bkv_store *store;
    struct bkv_fsm fsm;
    struct raft_uv_transport transport;
    struct bkv_iotap tap; /* tap.io is raft_uv: receive times stamped per member */
    struct raft raft;
    struct bkv_transfer_server *images; /* this node's image server (NULL: none) */

    uv_prepare_t monitor; /* role watch + queue flush, once per iteration */
    uv_idle_t kick;       /* keeps the loop from blocking while proposals wait */
    uv_timer_t defer;     /* starts the close outside any raft callback */
    uv_timer_t flush;     /* commits the store's pending entries (group commit) */
    int open_handles;

    bool started, closing, unavailable_reported;
    enum bkv_raft_role role;
    uint64_t leader_term;   /* term this node leads (0: not leader) */
    uint64_t barrier_term;  /* term of the barrier in flight (0: none) */
    uint64_t barrier_retry; /* loop time before which no barrier is reissued */
    bool ready;             /* barrier of leader_term committed */
    bool nospace;           /* the last barrier was refused for lack of disk space */
    bool commit_due;        /* the store's pending entries are due for their commit */
    uint64_t stall_applied; /* applied index when commit > applied was first seen */
    uint64_t stall_since;   /* loop time of that */
    struct barrier *barriers;

    struct bkv_raft_propose *q_head, *q_tail; /* waiting for the next flush */
    struct batch *inflight;

    bkv_raft_state_cb state_cb;
    bkv_raft_unavailable_cb unavailable_cb;
    void *cb_data;
    void (*close_cb)(void *data);
    void *close_data;

    char errmsg[BKV_RAFT_ERRMSG_LEN];
    struct bkv_cmd scratch[BKV_CMD_MAX_BATCH]; /* the commands of the entry being built */
};

/* ---- helpers ---- */

/* The tap's hold predicate (iotap.h): libraft is between fsm snapshot and finalize. */
static int snapshot_taking(void *data)
{
    const struct bkv_fsm *f = data;
    return f->taking;
}

static void set_err(struct bkv_raft *r, char *err, size_t err_cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_err(struct bkv_raft *r, char *err, size_t err_cap, const char *fmt, ...)
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
static int map_raft(int rv, const char *msg)
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
    set_err(r, err, err_cap, "raft: mkdir %s: %s", path, strerror(errno));
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
        set_err(r, err, err_cap, "raft: opendir %s: %s", path, strerror(errno));
        return BKV_ERR_IO;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) != 0 && errno != ENOENT) {
            set_err(r, err, err_cap, "raft: remove %s/%s: %s", path, e->d_name, strerror(errno));
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

/* ---- proposals ---- */

/* The idle handle only keeps uv_run from blocking in poll; the monitor flushes. */
static void kick_cb(uv_idle_t *h)
{
    (void)h;
}

static struct bkv_raft_propose *p_next(struct bkv_raft_propose *p)
{
    return p->impl[P_NEXT];
}

static void release_copy(struct bkv_raft_propose *p)
{
    free(p->impl[P_COPY]);
    p->impl[P_COPY] = NULL;
}

/*
 * The status a proposal is failed with. A requeued proposal (re-proposed
 * after a result-ring overrun) has committed: whatever fails later
 * (NOSPACE, NOMEM, RAFT, SHUTDOWN, NOT_LEADER ...), its outcome is unknown
 * to the proposer, never "not applied": BKV_ERR_LEADERSHIP_LOST.
 */
static int fail_status(const struct bkv_raft_propose *p, int status)
{
    return p->impl[P_REQUEUED] != NULL ? BKV_ERR_LEADERSHIP_LOST : status;
}

/* Call back every proposal of list (linked by impl[0]) with status (see fail_status). */
static void fail_list(struct bkv_raft_propose *p, int status)
{
    while (p != NULL) {
        struct bkv_raft_propose *next = p_next(p);
        int st = fail_status(p, status);
        release_copy(p);
        p->impl[P_NEXT] = NULL;
        p->cb(p, st, NULL, 0);
        p = next;
    }
}

static struct bkv_raft_propose *take_queue(struct bkv_raft *r)
{
    struct bkv_raft_propose *q = r->q_head;
    r->q_head = r->q_tail = NULL;
    return q;
}

/* What a proposal gets right now instead of being queued (BKV_OK: queue it). */
static int serve_status(struct bkv_raft *r)
{
    if (r->closing)
        return BKV_ERR_SHUTDOWN;
    if (!r->started)
        return BKV_ERR_NOT_READY;
    if (r->unavailable_reported)
        return BKV_ERR_RAFT;
    switch (raft_state(&r->raft)) {
    case RAFT_LEADER:
        break;
    case RAFT_UNAVAILABLE:
        return BKV_ERR_RAFT;
    default:
        return BKV_ERR_NOT_LEADER;
    }
    if (!r->ready || raft_current_term(&r->raft) != r->leader_term)
        return r->nospace ? BKV_ERR_NOSPACE : BKV_ERR_NOT_READY;
    return BKV_OK;
}

int bkv_raft_propose(struct bkv_raft *r, struct bkv_raft_propose *req, const struct bkv_cmd *cmds,
                     size_t n, bkv_raft_propose_cb cb)
{
    struct bkv_cmd *copy;
    size_t bytes, extra = 0;
    uint8_t *tail;
    int rc;

    if (r == NULL || req == NULL || cmds == NULL || cb == NULL || n == 0 || n > BKV_CMD_MAX_BATCH)
        return BKV_ERR_INVALID;
    rc = serve_status(r);
    if (rc != BKV_OK)
        return rc;
    /*
     * Only a REGISTER carries record and wrapped; any other type's pointers
     * and lengths are ignored and zeroed in the copy, whatever the caller
     * left in them. The lengths are bounded before they are summed (the
     * codec checks them again on the copy).
     */
    for (size_t i = 0; i < n; i++) {
        if (cmds[i].type != BKV_CMD_REGISTER)
            continue;
        if (cmds[i].record_len > BKV_CMD_MAX_SEALED || cmds[i].wrapped_len > BKV_CMD_MAX_SEALED ||
            cmds[i].record == NULL || cmds[i].wrapped == NULL)
            return BKV_ERR_INVALID;
        if (extra > SIZE_MAX - cmds[i].record_len - cmds[i].wrapped_len)
            return BKV_ERR_LENGTH;
        extra += cmds[i].record_len + cmds[i].wrapped_len;
    }
    if (n > (SIZE_MAX - extra) / sizeof(*copy))
        return BKV_ERR_LENGTH;
    copy = malloc(n * sizeof(*copy) + extra);
    if (copy == NULL)
        return BKV_ERR_NOMEM;
    memcpy(copy, cmds, n * sizeof(*copy));
    tail = (uint8_t *)(copy + n);
    for (size_t i = 0; i < n; i++) {
        if (copy[i].type != BKV_CMD_REGISTER) {
            copy[i].record = copy[i].wrapped = NULL;
            copy[i].record_len = copy[i].wrapped_len = 0;
            copy[i].max_attempts = 0;
            copy[i].conditional = 0;
            continue;
        }
        /* The limit is replicated with the record (cmd.h): default to ours. */
        if (copy[i].max_attempts == 0)
            copy[i].max_attempts = r->cfg.max_attempts;
        memcpy(tail, cmds[i].record, cmds[i].record_len);
        copy[i].record = tail;
        tail += cmds[i].record_len;
        memcpy(tail, cmds[i].wrapped, cmds[i].wrapped_len);
        copy[i].wrapped = tail;
        tail += cmds[i].wrapped_len;
    }
    bytes = bkv_cmd_entry_len(copy, n);
    if (bytes == 0) {
        free(copy);
        return BKV_ERR_INVALID;
    }
    req->cb = cb;
    req->r = r;
    req->n = n;
    req->impl[P_NEXT] = NULL;
    req->impl[P_COPY] = copy;
    req->impl[P_BYTES] = (void *)(uintptr_t)bytes;
    req->impl[P_REQUEUED] = NULL;
    if (r->q_tail != NULL)
        r->q_tail->impl[P_NEXT] = req;
    else
        r->q_head = req;
    r->q_tail = req;
    uv_idle_start(&r->kick, kick_cb);
    return BKV_OK;
}

static void batch_unlink(struct bkv_raft *r, struct batch *b)
{
    if (b->prev != NULL)
        b->prev->next = b->next;
    else
        r->inflight = b->next;
    if (b->next != NULL)
        b->next->prev = b->prev;
    b->prev = b->next = NULL;
}

/* Put a committed batch's proposals back at the head of the queue, in order. */
static void requeue(struct bkv_raft *r, struct bkv_raft_propose *head)
{
    struct bkv_raft_propose *last = head;

    for (struct bkv_raft_propose *p = head; p != NULL; p = p_next(p)) {
        p->impl[P_REQUEUED] = p;
        last = p;
    }
    last->impl[P_NEXT] = r->q_head;
    if (r->q_head == NULL)
        r->q_tail = last;
    r->q_head = head;
    uv_idle_start(&r->kick, kick_cb);
}

/*
 * The leader applied the entry (status 0, result = the FSM's struct
 * bkv_fsm_result in its ring) or gave up on it. Hand each proposer its slice
 * of the results, in entry order. If the ring slot already holds a later
 * entry (more than BKV_FSM_RING entries were committed at once, see fsm.h),
 * the entry did commit but its results are gone: propose the same commands
 * again, and the store answers with their remembered results.
 */
static void apply_cb(struct raft_apply *req, int status, void *result)
{
    struct batch *b = req->data;
    struct bkv_raft *r = b->r;
    const struct bkv_fsm_result *fr = result;
    struct bkv_raft_propose *p = b->head;
    size_t off = 0;
    int st;

    batch_unlink(r, b);
    st = map_raft(status, status != 0 ? raft_errmsg(&r->raft) : NULL);
    if (st == BKV_OK && fr == NULL) {
        st = BKV_ERR_RAFT;
    } else if (st == BKV_OK && fr->index != req->index) {
        free(b);
        if (!r->closing) {
            requeue(r, p);
            return;
        }
        fail_list(p, BKV_ERR_LEADERSHIP_LOST);
        return;
    } else if (st == BKV_OK && fr->status != BKV_OK) {
        /* refused as malformed by every node, or the store was ahead of the log */
        st = fr->status;
        if (fr->errmsg[0] != '\0')
            set_err(r, NULL, 0, "raft: %s", fr->errmsg);
    } else if (st == BKV_OK && fr->n != b->n_cmds) {
        st = BKV_ERR_RAFT; /* cannot happen: the entry we built has n_cmds commands */
    }
    free(b);
    while (p != NULL) {
        struct bkv_raft_propose *next = p_next(p);
        size_t n = p->n;
        release_copy(p);
        p->impl[P_NEXT] = NULL;
        if (st == BKV_OK)
            p->cb(p, BKV_OK, fr->results + off, n);
        else
            p->cb(p, fail_status(p, st), NULL, 0);
        off += n;
        p = next;
    }
}

/*
 * Turn the queue into raft_apply entries. The queue is detached first, so
 * proposals made from the callbacks below wait for the next iteration.
 */
static void flush(struct bkv_raft *r)
{
    struct bkv_raft_propose *q = take_queue(r);
    int st;

    while (q != NULL) {
        struct bkv_raft_propose *first = q, *last = NULL, *p;
        struct raft_buffer buf;
        struct batch *b;
        size_t n_cmds = 0, bytes = 8, len = 0;
        int rv;

        st = serve_status(r);
        if (st != BKV_OK) {
            fail_list(q, st);
            return;
        }
        /* Take proposals while the entry stays within its limits. */
        for (p = q; p != NULL; p = p_next(p)) {
            size_t pbytes = (size_t)(uintptr_t)p->impl[P_BYTES] - 8;
            if (n_cmds + p->n > BKV_CMD_MAX_BATCH ||
                (n_cmds > 0 && bytes + pbytes > BATCH_MAX_BYTES))
                break;
            memcpy(r->scratch + n_cmds, p->impl[P_COPY], p->n * sizeof(struct bkv_cmd));
            n_cmds += p->n;
            bytes += pbytes;
            last = p;
        }
        q = p_next(last);
        last->impl[P_NEXT] = NULL;

        b = calloc(1, sizeof(*b));
        len = bkv_cmd_entry_len(r->scratch, n_cmds);
        buf.len = len;
        buf.base = (b != NULL && len > 0) ? raft_malloc(len) : NULL;
        if (buf.base == NULL || len % 8 != 0 ||
            bkv_cmd_entry_encode(r->scratch, n_cmds, buf.base, len, &len) != BKV_OK ||
            len != buf.len) {
            raft_free(buf.base);
            free(b);
            fail_list(first, (len == 0 || len % 8 != 0) ? BKV_ERR_INVALID : BKV_ERR_NOMEM);
            continue;
        }
        b->r = r;
        b->head = first;
        b->n_cmds = n_cmds;
        b->req.data = b;
        rv = raft_apply(&r->raft, &b->req, &buf, 1, apply_cb);
        if (rv != 0) {
            st = map_raft(rv, raft_errmsg(&r->raft));
            if (st == BKV_ERR_NOSPACE)
                set_err(r, NULL, 0, "raft: append to %s: %s", r->raft_dir, raft_errmsg(&r->raft));
            raft_free(buf.base);
            free(b);
            fail_list(first, st);
            continue;
        }
        b->next = r->inflight;
        if (r->inflight != NULL)
            r->inflight->prev = b;
        r->inflight = b;
    }
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
    r->nospace = map_raft(rv, raft_errmsg(&r->raft)) == BKV_ERR_NOSPACE;
    if (r->nospace)
        set_err(r, NULL, 0, "raft: barrier %s: %s", r->raft_dir, raft_errmsg(&r->raft));
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
    fail_list(take_queue(r), BKV_ERR_RAFT);
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
    flush(r);
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
            set_err(r, err, err_cap, "raft: open store %s: %s", r->db_path, serr);
            if (mentions_nospace(serr))
                rc = BKV_ERR_NOSPACE;
            goto err_free;
        }
    }
    rc = bkv_fsm_init(&r->fsm, r->store, r->snap_dir, r->image_dir);
    if (rc != BKV_OK) {
        set_err(r, err, err_cap, "raft: fsm init %s: %s", r->snap_dir, bkv_strerror(rc));
        goto err_store;
    }
    bkv_fsm_set_fetch(&r->fsm, fetch_image, r);
    if (cfg->snapshot_address[0] != '\0') {
        char terr[256] = "";
        rc =
            bkv_transfer_serve(cfg->snapshot_address, r->image_dir, &r->images, terr, sizeof(terr));
        if (rc != BKV_OK) {
            set_err(r, err, err_cap, "raft: snapshot server %s: %s", cfg->snapshot_address, terr);
            goto err_fsm;
        }
    }
    bkv_store_set_group(r->store, STORE_GROUP);

    r->transport.version = 1; /* raft_uv_tcp_init refuses version 0 */
    rv = raft_uv_tcp_init(&r->transport, loop);
    if (rv != 0) {
        set_err(r, err, err_cap, "raft: transport init %s: %s: %s", cfg->address, raft_strerror(rv),
                r->transport.errmsg);
        rc = map_raft(rv, r->transport.errmsg);
        goto err_images;
    }
    rv = raft_uv_init(&r->tap.io, loop, r->raft_dir, &r->transport);
    if (rv != 0) {
        set_err(r, err, err_cap, "raft: io init %s: %s", r->raft_dir,
                r->tap.io.errmsg[0] != '\0' ? r->tap.io.errmsg : raft_strerror(rv));
        rc = map_raft(rv, r->tap.io.errmsg);
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
        set_err(r, err, err_cap, "raft: init %s: %s", r->raft_dir,
                raft_errmsg(&r->raft)[0] != '\0' ? raft_errmsg(&r->raft) : raft_strerror(rv));
        rc = map_raft(rv, raft_errmsg(&r->raft));
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
        set_err(r, NULL, 0, "raft: bootstrap %s: node already started", r->cfg.data_dir);
        return BKV_ERR_INVALID;
    }
    for (size_t i = 0; i < r->cfg.n_members; i++)
        if (r->cfg.members[i].id == r->cfg.id && !r->cfg.members[i].later &&
            strcmp(r->cfg.members[i].address, r->cfg.address) == 0)
            self = true;
    if (!self) {
        set_err(r, NULL, 0, "raft: bootstrap %s: node %llu (%s) is not in the member list",
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
        set_err(r, NULL, 0,
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
        set_err(r, NULL, 0, "raft: bootstrap %s: already bootstrapped", r->raft_dir);
        return BKV_ERR_INVALID;
    }
    if (rv != 0) {
        set_err(r, NULL, 0, "raft: bootstrap %s: %s: %s", r->raft_dir, raft_strerror(rv),
                r->tap.io.errmsg);
        return map_raft(rv, r->tap.io.errmsg);
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
        set_err(r, NULL, 0, "raft: start %s: %s", r->raft_dir,
                raft_errmsg(&r->raft)[0] != '\0' ? raft_errmsg(&r->raft) : raft_strerror(rv));
        return map_raft(rv, raft_errmsg(&r->raft));
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
        batch_unlink(r, b);
        fail_list(b->head, BKV_ERR_SHUTDOWN);
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
    fail_list(take_queue(r), BKV_ERR_SHUTDOWN);
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

/* ---- accessors ---- */

void bkv_raft_leader(struct bkv_raft *r, uint64_t *id, const char **address)
{
    raft_id lid = 0;
    const char *laddr = NULL;

    if (r != NULL && r->started && !r->closing)
        raft_leader(&r->raft, &lid, &laddr);
    if (id != NULL)
        *id = lid;
    if (address != NULL)
        *address = laddr;
}

enum bkv_raft_role bkv_raft_role(struct bkv_raft *r)
{
    return r->role;
}

struct bkv_store *bkv_raft_store(struct bkv_raft *r)
{
    return r->store;
}

const char *bkv_raft_errmsg(struct bkv_raft *r)
{
    return r->errmsg;
}

void bkv_raft_info(struct bkv_raft *r, struct bkv_raft_info *out)
{
    memset(out, 0, sizeof(*out));
    if (r == NULL || !r->started || r->closing)
        return;
    out->term = raft_current_term(&r->raft);
    out->commit_index = raft_commit_index(&r->raft);
    out->last_index = raft_last_index(&r->raft);
    out->applied_index = raft_last_applied(&r->raft);
    out->snapshots_taken = r->fsm.snapshots;
    out->snapshots_restored = r->fsm.restores;
    out->images_fetched = r->fsm.fetches;
    out->images_served = bkv_transfer_served(r->images);
    out->image_size = r->fsm.image_size;
    out->installs_held = r->tap.n_held;
    if (raft_state(&r->raft) == RAFT_LEADER) {
        out->leader_contact_ms = 0;
    } else if (raft_state(&r->raft) == RAFT_FOLLOWER) {
        uint64_t now = uv_now(r->loop), start = r->raft.election_timer_start;
        out->leader_contact_ms = now > start ? now - start : 0;
    } else {
        out->leader_contact_ms = UINT64_MAX;
    }
}

/* --- membership and leadership ---------------------------------------------------- */

struct change {
    struct raft_change change;
    struct raft_transfer transfer;
    struct bkv_raft *r;
    uint64_t id;
    int then_standby; /* add: assign RAFT_STANDBY once the add committed */
    bkv_raft_change_cb cb;
    void *data;
};

static int change_error(struct bkv_raft *r, int rv)
{
    switch (rv) {
    case RAFT_NOTLEADER:
        return BKV_ERR_NOT_LEADER;
    case RAFT_BADID:
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS:
    case RAFT_BADROLE:
    case RAFT_NOTFOUND:
    case RAFT_CANTCHANGE:
        return BKV_ERR_INVALID;
    default:
        return map_raft(rv, raft_errmsg(&r->raft));
    }
}

static void change_done(struct change *c, int rv)
{
    int st = rv == 0 ? BKV_OK : change_error(c->r, rv);
    const char *msg = rv == 0 ? "" : raft_errmsg(&c->r->raft);
    if (rv != 0 && (msg == NULL || msg[0] == '\0'))
        msg = raft_strerror(rv);
    c->cb(c->data, st, msg);
    free(c);
}

static void change_cb(struct raft_change *req, int status)
{
    struct change *c = req->data;
    if (status == 0 && c->then_standby) {
        c->then_standby = 0;
        int rv = raft_assign(&c->r->raft, &c->change, c->id, RAFT_STANDBY, change_cb);
        if (rv == 0)
            return;
        status = rv;
    }
    change_done(c, status);
}

static struct change *change_new(struct bkv_raft *r, uint64_t id, bkv_raft_change_cb cb, void *data)
{
    struct change *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->r = r;
    c->id = id;
    c->cb = cb;
    c->data = data;
    c->change.data = c;
    c->transfer.data = c;
    return c;
}

static int change_start(struct bkv_raft *r, struct change *c, int rv)
{
    if (rv == 0)
        return BKV_OK;
    int st = change_error(r, rv);
    set_err(r, NULL, 0, "raft: membership change: %s",
            raft_errmsg(&r->raft)[0] != '\0' ? raft_errmsg(&r->raft) : raft_strerror(rv));
    free(c);
    return st;
}

static int change_ready(struct bkv_raft *r, bkv_raft_change_cb cb)
{
    if (r == NULL || cb == NULL || !r->started || r->closing)
        return BKV_ERR_INVALID;
    if (raft_state(&r->raft) != RAFT_LEADER) {
        set_err(r, NULL, 0, "raft: membership change: this node is not the leader");
        return BKV_ERR_NOT_LEADER;
    }
    return BKV_OK;
}

int bkv_raft_member_add(struct bkv_raft *r, uint64_t id, const char *address, bkv_raft_change_cb cb,
                        void *data)
{
    int rc = change_ready(r, cb);
    if (rc != BKV_OK)
        return rc;
    if (id == 0 || address == NULL || address[0] == '\0')
        return BKV_ERR_INVALID;
    struct change *c = change_new(r, id, cb, data);
    if (c == NULL)
        return BKV_ERR_NOMEM;
    c->then_standby = 1;
    /* Idempotent: a spare left by an interrupted add only needs its role; a member already
     * receiving the log at that address is done. */
    for (unsigned i = 0; i < r->raft.configuration.n; i++) {
        const struct raft_server *s = &r->raft.configuration.servers[i];
        if (s->id != id)
            continue;
        if (s->address == NULL || strcmp(s->address, address) != 0) {
            free(c);
            set_err(r, NULL, 0, "raft: add %llu: it is a member at another address (%s)",
                    (unsigned long long)id, s->address ? s->address : "?");
            return BKV_ERR_INVALID;
        }
        if (s->role != RAFT_SPARE) {
            free(c);
            cb(data, BKV_OK, "");
            return BKV_OK;
        }
        c->then_standby = 0;
        return change_start(r, c, raft_assign(&r->raft, &c->change, id, RAFT_STANDBY, change_cb));
    }
    return change_start(r, c, raft_add(&r->raft, &c->change, id, address, change_cb));
}

/* promote (assign RAFT_VOTER) or remove server id. */
static int change_member(struct bkv_raft *r, uint64_t id, int promote, bkv_raft_change_cb cb,
                         void *data)
{
    int rc = change_ready(r, cb);
    if (rc != BKV_OK)
        return rc;
    struct change *c = change_new(r, id, cb, data);
    if (c == NULL)
        return BKV_ERR_NOMEM;
    return change_start(r, c,
                        promote ? raft_assign(&r->raft, &c->change, id, RAFT_VOTER, change_cb)
                                : raft_remove(&r->raft, &c->change, id, change_cb));
}

int bkv_raft_member_promote(struct bkv_raft *r, uint64_t id, bkv_raft_change_cb cb, void *data)
{
    return change_member(r, id, 1, cb, data);
}

int bkv_raft_member_remove(struct bkv_raft *r, uint64_t id, bkv_raft_change_cb cb, void *data)
{
    return change_member(r, id, 0, cb, data);
}

static void transfer_cb(struct raft_transfer *req)
{
    struct change *c = req->data;
    raft_id leader = 0;
    const char *address = NULL;
    raft_leader(&c->r->raft, &leader, &address);
    int ok = c->id != 0 ? leader == c->id : leader != 0 && leader != c->r->cfg.id;
    c->cb(c->data, ok ? BKV_OK : BKV_ERR_LIMIT,
          ok ? "" : "leadership did not move within the election timeout");
    free(c);
}

int bkv_raft_leader_transfer(struct bkv_raft *r, uint64_t id, bkv_raft_change_cb cb, void *data)
{
    int rc = change_ready(r, cb);
    if (rc != BKV_OK)
        return rc;
    struct change *c = change_new(r, id, cb, data);
    if (c == NULL)
        return BKV_ERR_NOMEM;
    return change_start(r, c, raft_transfer(&r->raft, &c->transfer, id, transfer_cb));
}

size_t bkv_raft_servers(struct bkv_raft *r, struct bkv_raft_server *out, size_t cap)
{
    size_t n = 0;
    if (r == NULL || !r->started || r->closing)
        return 0;
    int leader = raft_state(&r->raft) == RAFT_LEADER;
    for (unsigned i = 0; i < r->raft.configuration.n && n < cap; i++) {
        const struct raft_server *s = &r->raft.configuration.servers[i];
        struct bkv_raft_server *o = &out[n++];
        memset(o, 0, sizeof(*o));
        o->id = s->id;
        snprintf(o->address, sizeof(o->address), "%s", s->address ? s->address : "");
        o->role = s->role == RAFT_VOTER     ? BKV_MEMBER_VOTER
                  : s->role == RAFT_STANDBY ? BKV_MEMBER_STANDBY
                                            : BKV_MEMBER_SPARE;
        raft_index match = 0;
        if (leader && raft_match_index(&r->raft, s->id, &match) == 0) {
            o->has_match = 1;
            o->match_index = match;
            o->contact_ms = s->id == r->cfg.id ? 0 : bkv_iotap_since(&r->tap, s->id);
        }
    }
    return n;
}

/* --- snapshot now --------------------------------------------------------------------- */

struct snap_now {
    struct raft_barrier barrier;
    uv_timer_t timer;
    struct bkv_raft *r;
    unsigned long before; /* snapshots taken when asked */
    unsigned polls;
    int status;
    bkv_raft_change_cb cb;
    void *data;
};

static void snap_closed(uv_handle_t *h)
{
    struct snap_now *s = h->data;
    s->cb(s->data, s->status,
          s->status == BKV_OK ? "" : "no snapshot was taken within 10 s; see the node's log");
    free(s);
}

static void snap_free(uv_handle_t *h)
{
    free(h->data);
}

static void snap_finish(struct snap_now *s, int status)
{
    struct bkv_raft *r = s->r;
    raft_set_snapshot_threshold(&r->raft,
                                r->cfg.snapshot_threshold > 0 ? r->cfg.snapshot_threshold : 1024);
    s->status = status;
    uv_close((uv_handle_t *)&s->timer, snap_closed);
}

static void snap_poll(uv_timer_t *t)
{
    struct snap_now *s = t->data;
    if (s->r->fsm.snapshots > s->before)
        snap_finish(s, BKV_OK);
    else if (++s->polls >= 200 || s->r->closing)
        snap_finish(s, BKV_ERR_LIMIT);
}

static void snap_barrier_cb(struct raft_barrier *req, int status)
{
    struct snap_now *s = req->data;
    if (status != 0) {
        snap_finish(s, map_raft(status, raft_errmsg(&s->r->raft)));
        return;
    }
    uv_timer_start(&s->timer, snap_poll, 0, 50);
}

int bkv_raft_snapshot_now(struct bkv_raft *r, bkv_raft_change_cb cb, void *data)
{
    int rc = change_ready(r, cb);
    if (rc != BKV_OK)
        return rc;
    struct snap_now *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return BKV_ERR_NOMEM;
    s->r = r;
    s->cb = cb;
    s->data = data;
    s->before = r->fsm.snapshots;
    s->barrier.data = s;
    if (uv_timer_init(r->loop, &s->timer) != 0) {
        free(s);
        return BKV_ERR_IO;
    }
    s->timer.data = s;
    raft_set_snapshot_threshold(&r->raft, 1);
    int rv = raft_barrier(&r->raft, &s->barrier, snap_barrier_cb);
    if (rv != 0) {
        raft_set_snapshot_threshold(
            &r->raft, r->cfg.snapshot_threshold > 0 ? r->cfg.snapshot_threshold : 1024);
        uv_close((uv_handle_t *)&s->timer, snap_free);
        set_err(r, NULL, 0, "raft: snapshot now: %s", raft_strerror(rv));
        return change_error(r, rv);
    }
    return BKV_OK;
}
