/*
 * The proposals of one Raft member (node.c has its life cycle and role watch;
 * struct bkv_raft is in node_internal.h).
 *
 * Normal path: bkv_raft_propose copies the commands into a queue; the monitor
 * (node.c) calls node_flush once per loop iteration, which turns the queue into
 * raft_apply entries of up to BKV_CMD_MAX_BATCH commands and, softly,
 * BATCH_MAX_BYTES (so proposals made in one iteration share an entry and its
 * disk write; never from inside a libraft callback), and the apply callback
 * fans the FSM's results out to each proposer in order. If the FSM's result
 * ring was overrun (fsm.h), the entry did commit: its proposals are proposed
 * again and get their remembered results; any later failure of such a
 * proposal is reported as BKV_ERR_LEADERSHIP_LOST (outcome unknown), never as
 * a code that suggests nothing was applied.
 * Failure modes: proposals in flight when leadership is lost get
 * BKV_ERR_LEADERSHIP_LOST (outcome unknown: retry with the same request ids),
 * queued ones BKV_ERR_NOT_LEADER, and BKV_ERR_SHUTDOWN on close. A full raft
 * disk (libraft refuses entries, barriers included, below its capacity
 * threshold) maps to BKV_ERR_NOSPACE.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <raft.h>

#include "consensus/cmd.h"
#include "consensus/fsm.h"
#include "consensus/node_internal.h"
#include "proto/err.h"

#define BATCH_MAX_BYTES (1u << 20) /* soft cap on one entry: always room for one proposal */

/* A proposal's private slots (struct bkv_raft_propose.impl). */
enum { P_NEXT = 0, P_COPY = 1, P_BYTES = 2, P_REQUEUED = 3 };

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
void node_fail_list(struct bkv_raft_propose *p, int status)
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

struct bkv_raft_propose *node_take_queue(struct bkv_raft *r)
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

void node_batch_unlink(struct bkv_raft *r, struct batch *b)
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

    node_batch_unlink(r, b);
    st = node_map_raft(status, status != 0 ? raft_errmsg(&r->raft) : NULL);
    if (st == BKV_OK && fr == NULL) {
        st = BKV_ERR_RAFT;
    } else if (st == BKV_OK && fr->index != req->index) {
        free(b);
        if (!r->closing) {
            requeue(r, p);
            return;
        }
        node_fail_list(p, BKV_ERR_LEADERSHIP_LOST);
        return;
    } else if (st == BKV_OK && fr->status != BKV_OK) {
        /* refused as malformed by every node, or the store was ahead of the log */
        st = fr->status;
        if (fr->errmsg[0] != '\0')
            node_set_err(r, NULL, 0, "raft: %s", fr->errmsg);
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
void node_flush(struct bkv_raft *r)
{
    struct bkv_raft_propose *q = node_take_queue(r);
    int st;

    while (q != NULL) {
        struct bkv_raft_propose *first = q, *last = NULL, *p;
        struct raft_buffer buf;
        struct batch *b;
        size_t n_cmds = 0, bytes = 8, len = 0;
        int rv;

        st = serve_status(r);
        if (st != BKV_OK) {
            node_fail_list(q, st);
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
            node_fail_list(first, (len == 0 || len % 8 != 0) ? BKV_ERR_INVALID : BKV_ERR_NOMEM);
            continue;
        }
        b->r = r;
        b->head = first;
        b->n_cmds = n_cmds;
        b->req.data = b;
        rv = raft_apply(&r->raft, &b->req, &buf, 1, apply_cb);
        if (rv != 0) {
            st = node_map_raft(rv, raft_errmsg(&r->raft));
            if (st == BKV_ERR_NOSPACE)
                node_set_err(r, NULL, 0, "raft: append to %s: %s", r->raft_dir,
                             raft_errmsg(&r->raft));
            raft_free(buf.base);
            free(b);
            node_fail_list(first, st);
            continue;
        }
        b->next = r->inflight;
        if (r->inflight != NULL)
            r->inflight->prev = b;
        r->inflight = b;
    }
}
