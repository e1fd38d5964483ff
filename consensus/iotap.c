/*
 * Receive times and the InstallSnapshot hold on raft_uv (iotap.h).
 *
 * Normal path: libraft calls io->start (the tap's), which calls raft_uv's
 * start with tap_tick and tap_recv in place of libraft's callbacks; raft_uv
 * then calls them with the io embedded in the tap. tap_recv stamps the
 * sender and passes the message on untouched, unless it is an
 * InstallSnapshot that arrives while hold() is true: that one is copied into
 * the tap (replacing and freeing an older held one) and is delivered once
 * hold() is false: on the next tick, or before the next message, whichever
 * comes first, so messages reach libraft in the order they arrived. Nothing here can fail: past
 * BKV_IOTAP_MAX servers the oldest stamp is reused, and an address too long for the copy is cut
 * (libraft only records it as the leader's address).
 */
#include "consensus/iotap.h"

#include <stdio.h>
#include <string.h>

static struct bkv_iotap *tap_of(struct raft_io *io)
{
    return (struct bkv_iotap *)io; /* io is the tap's first member */
}

static void stamp(struct bkv_iotap *t, raft_id id)
{
    uint64_t now = uv_now(t->loop);
    unsigned oldest = 0;
    for (unsigned i = 0; i < t->n_seen; i++) {
        if (t->seen[i].id == id) {
            t->seen[i].at = now;
            return;
        }
        if (t->seen[i].at < t->seen[oldest].at)
            oldest = i;
    }
    unsigned slot = t->n_seen < BKV_IOTAP_MAX ? t->n_seen++ : oldest;
    t->seen[slot].id = id;
    t->seen[slot].at = now;
}

static void drop_held(struct bkv_iotap *t)
{
    if (!t->has_held)
        return;
    raft_configuration_close(&t->held.install_snapshot.conf);
    raft_free(t->held.install_snapshot.data.base);
    t->has_held = 0;
}

/* Hand a held InstallSnapshot to libraft once no snapshot is being taken. */
static void flush_held(struct bkv_iotap *t)
{
    if (t->has_held && !t->hold(t->hold_data)) {
        struct raft_message m = t->held;
        t->has_held = 0; /* libraft owns conf and data from here */
        t->recv(&t->io, &m);
    }
}

static void tap_recv(struct raft_io *io, struct raft_message *msg)
{
    struct bkv_iotap *t = tap_of(io);
    if (msg != NULL && msg->server_id != 0)
        stamp(t, msg->server_id);
    if (t->slowed && msg != NULL && msg->type == RAFT_APPEND_ENTRIES &&
        msg->append_entries.n_entries > 0) {
        /* The failpoint's stalled disk: the entries are lost, as on the network. */
        raft_free(msg->append_entries.entries[0].batch);
        raft_free(msg->append_entries.entries);
        return;
    }
    flush_held(t); /* in arrival order: never after a newer message */
    if (msg != NULL && msg->type == RAFT_INSTALL_SNAPSHOT && t->hold != NULL &&
        t->hold(t->hold_data)) {
        drop_held(t); /* the newer install supersedes it */
        t->held = *msg;
        snprintf(t->held_address, sizeof(t->held_address), "%s",
                 msg->server_address != NULL ? msg->server_address : "");
        t->held.server_address = t->held_address;
        t->has_held = 1;
        t->n_held++;
        return;
    }
    t->recv(io, msg);
}

/* The failpoint: hand libraft the end of its snapshot put (now, or once it is due). */
static void end_slow_put(struct bkv_iotap *t, int now)
{
    if (!t->slowed || !t->put_done || (!now && uv_now(t->loop) < t->put_until))
        return;
    t->slowed = 0;
    t->put_cb(t->put_req, t->put_status);
}

static void slow_put_done(struct raft_io_snapshot_put *req, int status)
{
    struct bkv_iotap *t = req->data;
    t->put_done = 1;
    t->put_status = status;
    if (t->closing)
        end_slow_put(t, 1); /* raft_uv finishes its puts before it closes */
}

static int tap_snapshot_put(struct raft_io *io, unsigned trailing, struct raft_io_snapshot_put *req,
                            const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb)
{
    struct bkv_iotap *t = tap_of(io);
    if (trailing == 0 || t->slowed) /* an installed snapshot, not one taken here */
        return t->snapshot_put(io, trailing, req, snapshot, cb);
    t->own_req.data = t;
    t->put_req = req;
    t->put_cb = cb;
    t->put_done = 0;
    t->put_until = uv_now(t->loop) + t->slow_ms;
    int rv = t->snapshot_put(io, trailing, &t->own_req, snapshot, slow_put_done);
    t->slowed = rv == 0;
    return rv;
}

static void tap_tick(struct raft_io *io)
{
    struct bkv_iotap *t = tap_of(io);
    t->tick(io);
    end_slow_put(t, 0);
    flush_held(t);
}

static int tap_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv)
{
    struct bkv_iotap *t = tap_of(io);
    t->tick = tick;
    t->recv = recv;
    return t->start(io, msecs, tap_tick, tap_recv);
}

static void tap_close(struct raft_io *io, raft_io_close_cb cb)
{
    struct bkv_iotap *t = tap_of(io);
    drop_held(t);
    t->closing = 1;
    end_slow_put(t, 1); /* libraft is closing: it cancels the snapshot */
    t->close(io, cb);
}

void bkv_iotap_init(struct bkv_iotap *t, uv_loop_t *loop, bkv_iotap_hold_fn hold, void *hold_data)
{
    t->loop = loop;
    t->hold = hold;
    t->hold_data = hold_data;
    t->tick = NULL;
    t->recv = NULL;
    t->n_seen = 0;
    memset(t->seen, 0, sizeof(t->seen));
    t->has_held = 0;
    t->n_held = 0;
    t->slow_ms = 0;
    t->slowed = 0;
    t->closing = 0;
    t->start = t->io.start;
    t->io.start = tap_start;
    t->close = t->io.close;
    t->io.close = tap_close;
}

void bkv_iotap_slow_snapshot(struct bkv_iotap *t, unsigned ms)
{
    t->slow_ms = ms;
    t->slowed = 0;
    if (ms > 0 && t->io.snapshot_put != tap_snapshot_put) {
        t->snapshot_put = t->io.snapshot_put;
        t->io.snapshot_put = tap_snapshot_put;
    }
}

uint64_t bkv_iotap_since(const struct bkv_iotap *t, raft_id id)
{
    for (unsigned i = 0; i < t->n_seen; i++)
        if (t->seen[i].id == id) {
            uint64_t now = uv_now(t->loop);
            return now > t->seen[i].at ? now - t->seen[i].at : 0;
        }
    return UINT64_MAX;
}
