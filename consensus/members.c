/*
 * The cluster as one Raft member sees it and changes it: the accessors
 * (leader, role, progress, the configuration), membership changes, leadership
 * transfer and snapshot now (node.c has the life cycle; struct bkv_raft is in
 * node_internal.h).
 *
 * Normal path: on the leader, bkv_raft_member_add runs raft_add, then
 * raft_assign(RAFT_STANDBY) once the add committed (only the assign for a
 * spare left by an interrupted add; nothing for a member already receiving
 * the log); promote, remove and transfer are one libraft request each; cb
 * gets the outcome once. Snapshot now lowers the snapshot threshold to 1,
 * commits a barrier, polls the FSM's snapshot count every 50 ms and restores
 * the threshold.
 * Failure modes: a node that is not the leader gets BKV_ERR_NOT_LEADER and a
 * bad id, duplicate or role BKV_ERR_INVALID at once (message in
 * bkv_raft_errmsg, cb not called); a change that fails later reaches cb with
 * libraft's message; leadership that did not move, or no snapshot within
 * 10 s (or before close), gives BKV_ERR_LIMIT.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <raft.h>

#include "consensus/iotap.h"
#include "consensus/node_internal.h"
#include "consensus/transfer.h"
#include "proto/err.h"

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
        return node_map_raft(rv, raft_errmsg(&r->raft));
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
    node_set_err(r, NULL, 0, "raft: membership change: %s",
                 raft_errmsg(&r->raft)[0] != '\0' ? raft_errmsg(&r->raft) : raft_strerror(rv));
    free(c);
    return st;
}

static int change_ready(struct bkv_raft *r, bkv_raft_change_cb cb)
{
    if (r == NULL || cb == NULL || !r->started || r->closing)
        return BKV_ERR_INVALID;
    if (raft_state(&r->raft) != RAFT_LEADER) {
        node_set_err(r, NULL, 0, "raft: membership change: this node is not the leader");
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
            node_set_err(r, NULL, 0, "raft: add %llu: it is a member at another address (%s)",
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
        snap_finish(s, node_map_raft(status, raft_errmsg(&s->r->raft)));
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
        node_set_err(r, NULL, 0, "raft: snapshot now: %s", raft_strerror(rv));
        return change_error(r, rv);
    }
    return BKV_OK;
}
