/*
 * consensus/node internals shared by node.c (life cycle, role watch),
 * propose.c (proposals) and members.c (membership, snapshot now, accessors):
 * the private struct bkv_raft and the few helpers more than one of them
 * calls. Nothing outside consensus/ may include this header; everything here
 * runs on the loop thread.
 */
#ifndef BKV_CONSENSUS_NODE_INTERNAL_H
#define BKV_CONSENSUS_NODE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "consensus/fsm.h"
#include "consensus/iotap.h"
#include "consensus/node.h"

struct barrier; /* node.c */

/* One raft_apply entry in flight: the proposals whose commands it carries. */
struct batch {
    struct raft_apply req;
    struct bkv_raft *r;
    struct bkv_raft_propose *head; /* proposals in entry order, linked by impl[0] */
    size_t n_cmds;
    struct batch *prev, *next;
};

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

/* node.c: format r's message (r->errmsg) and copy it to err[0..err_cap-1] if err is not NULL. */
void node_set_err(struct bkv_raft *r, char *err, size_t err_cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* node.c: a libraft code (and the message that came with it, or NULL) as a BKV code. */
int node_map_raft(int rv, const char *msg);

/* propose.c: call back every proposal of a list (linked by impl[0]) with status,
 * BKV_ERR_LEADERSHIP_LOST for one that was re-proposed after it committed. */
void node_fail_list(struct bkv_raft_propose *p, int status);

/* propose.c: detach the queue of proposals waiting for the next flush. */
struct bkv_raft_propose *node_take_queue(struct bkv_raft *r);

/* propose.c: take an entry in flight off r->inflight (it is not freed). */
void node_batch_unlink(struct bkv_raft *r, struct batch *b);

/* propose.c: turn the queue into raft_apply entries (the monitor calls it once per
 * iteration, after the role watch). */
void node_flush(struct bkv_raft *r);

#endif
