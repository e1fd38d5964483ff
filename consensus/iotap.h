/*
 * libraft's io with two BKV additions: receive times, and a hold that works
 * around a libraft 0.22.1 crash.
 *
 * Receive times. libraft 0.22 keeps the leader's per-follower progress
 * private and records no receive times, yet an operator asks the leader
 * "when did you last hear from node 3?". Every message that arrives, from any
 * server and of any type, stamps its sender with the loop time before
 * libraft sees it.
 *
 * The hold. libraft 0.22.1 dereferences NULL when an InstallSnapshot is
 * accepted while the node is taking a snapshot of its own: it parks the
 * install, and the callback that ends the local snapshot clears the parked
 * pointer before reading it (takeSnapshotCb in src/legacy.c). A restarted
 * follower that catches up past its snapshot threshold while the leader
 * sends it a snapshot hits exactly that. The tap keeps such an
 * InstallSnapshot back (the newest one, with its sender's address copied)
 * while the caller's hold predicate says a snapshot is being taken, and hands
 * it to libraft once the predicate turns false (next tick or next message), so libraft
 * never parks one. Raft tolerates the delay: terms are checked on delivery.
 *
 * A failpoint for tests (bkv_iotap_slow_snapshot): each snapshot the node
 * takes ends late, and entries sent to it meanwhile are dropped (freed), as
 * on a disk that stalls while the snapshot is written. The leader then
 * compacts past it and sends an InstallSnapshot inside the window, which is
 * the sequence that crashes an unprotected libraft 0.22.1.
 *
 * How: the tap replaces methods of the raft_uv io: start() (to put its
 * receive and tick callbacks in front of libraft's), close() (to free a held
 * message and end a slowed snapshot) and, with the failpoint, snapshot_put(); the io libraft is
 * given stays raft_uv's own object, so everything raft_uv and libraft share through it (data,
 * capacity, errmsg) works as before. Only the loop thread may call any of this.
 */
#ifndef BKV_CONSENSUS_IOTAP_H
#define BKV_CONSENSUS_IOTAP_H

#include <raft.h>
#include <stdint.h>
#include <uv.h>

#define BKV_IOTAP_MAX 64 /* servers remembered; the oldest stamp is reused past it */

/* Non-zero while libraft is taking a snapshot (between fsm snapshot and finalize). */
typedef int (*bkv_iotap_hold_fn)(void *data);

struct bkv_iotap {
    struct raft_io io; /* raft_uv_init this, then bkv_iotap_init, then raft_init */
    /* private */
    uv_loop_t *loop;
    bkv_iotap_hold_fn hold;
    void *hold_data;
    int (*start)(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                 raft_io_recv_cb recv);                     /* raft_uv's */
    void (*close)(struct raft_io *io, raft_io_close_cb cb); /* raft_uv's */
    raft_io_tick_cb tick;                                   /* libraft's */
    raft_io_recv_cb recv;                                   /* libraft's */
    struct {
        raft_id id;
        uint64_t at; /* uv_now() of the latest message from id */
    } seen[BKV_IOTAP_MAX];
    unsigned n_seen;
    int has_held;
    struct raft_message held; /* an InstallSnapshot kept back; it owns conf and data */
    char held_address[256];
    unsigned long n_held; /* InstallSnapshots ever kept back */
    /* the slow-snapshot failpoint (0: off) */
    unsigned slow_ms;
    int (*snapshot_put)(struct raft_io *io, unsigned trailing, struct raft_io_snapshot_put *req,
                        const struct raft_snapshot *snapshot,
                        raft_io_snapshot_put_cb cb); /* raft_uv's */
    int slowed;                                      /* a snapshot put is in its window */
    int closing;                                     /* close() was called */
    int put_done;                                    /* raft_uv finished it */
    int put_status;
    uint64_t put_until;                   /* loop time the window ends */
    struct raft_io_snapshot_put own_req;  /* what raft_uv sees; data is the tap */
    struct raft_io_snapshot_put *put_req; /* libraft's */
    raft_io_snapshot_put_cb put_cb;       /* libraft's */
};

/*
 * Put the tap on t->io, which raft_uv_init has set up and nothing has
 * started yet. hold (with hold_data, borrowed) may be NULL: nothing is held.
 */
void bkv_iotap_init(struct bkv_iotap *t, uv_loop_t *loop, bkv_iotap_hold_fn hold, void *hold_data);

/* Tests only: turn on the slow-snapshot failpoint (above) before raft_init. */
void bkv_iotap_slow_snapshot(struct bkv_iotap *t, unsigned ms);

/* Milliseconds since the latest message from id, or UINT64_MAX if none came since start. */
uint64_t bkv_iotap_since(const struct bkv_iotap *t, raft_id id);

#endif
