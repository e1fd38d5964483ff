/*
 * The libraft state machine (struct raft_fsm, version 2) on a bkv_store.
 *
 * apply: decode the entry, bkv_store_apply it at index raft_last_applied()+1
 * (verified on libraft 0.22.1: last_applied is bumped after apply returns),
 * and hand the proposer a pointer to the results: a slot of a ring of
 * BKV_FSM_RING results, valid until BKV_FSM_RING more entries are applied.
 * libraft 0.22.1 fires the raft_apply callbacks of all the entries committed
 * together only after it has applied all of them, so one results buffer
 * would be overwritten before the callbacks read it. The proposer must check
 * that result->index equals its request's index: if not, its slot was reused
 * (more than BKV_FSM_RING entries committed at once); the entry did commit,
 * and proposing the same commands again returns their remembered results
 * (replayed = 1).
 * A malformed entry is refused by every node alike: it is marked applied with
 * no change and the results say so. An entry the store had already applied
 * (store ahead of the log) gets status BKV_ERR_RAFT, never BKV_OK. A storage failure returns
 * non-zero, which makes the raft instance unavailable; the node then exits for its supervisor to
 * restart it (never continue with a diverged state).
 *
 * snapshot: bkv_store_snapshot into a file in the snapshot directory, mapped
 * read-only into memory and handed to libraft as buffers into the mapping
 * (no heap copy); snapshot_finalize unmaps and deletes it. restore: write the
 * buffer to a file, bkv_store_restore it, raft_free the buffer.
 *
 * Loop thread only.
 */
#ifndef BKV_CONSENSUS_FSM_H
#define BKV_CONSENSUS_FSM_H

#include <stddef.h>
#include <stdint.h>

#include <raft.h>

#include "consensus/cmd.h"
#include "consensus/store.h"

#define BKV_FSM_RING 64 /* entries whose results stay readable (see above) */

/* What apply hands the proposer (through raft_apply's callback result). */
struct bkv_fsm_result {
    int status;      /* BKV_OK; a BKV_ERR_* code for a malformed entry; BKV_ERR_RAFT if the
                        store had already applied index (nothing applied, see errmsg) */
    char errmsg[96]; /* why status is not BKV_OK, when there is more to say ("" else) */
    uint64_t index;  /* the entry these results belong to */
    size_t n;
    struct bkv_cmd_result results[BKV_CMD_MAX_BATCH];
};

struct bkv_fsm {
    struct raft_fsm raft; /* handed to raft_init / raft_fixture_grow */
    struct raft *r;       /* set with bkv_fsm_bind before the first apply */
    struct bkv_store *store;
    char snapshot_dir[4096];
    struct bkv_cmd cmds[BKV_CMD_MAX_BATCH];
    struct bkv_fsm_result *ring; /* BKV_FSM_RING slots, entry index % BKV_FSM_RING */
    struct bkv_fsm_result *last; /* the slot of the latest apply (NULL before) */
    /* snapshot in progress */
    void *map;
    size_t map_len;
    char map_path[4096];
    struct raft_buffer bufs[1];
    unsigned long snapshots, restores; /* counters for status/metrics */
};

/*
 * Set up f on store (borrowed; outlives f). snapshot_dir must exist.
 * Allocates the result ring (BKV_ERR_NOMEM); bkv_fsm_close frees it.
 */
int bkv_fsm_init(struct bkv_fsm *f, struct bkv_store *store, const char *snapshot_dir);

/* Tell f which raft instance it serves (needed for the applied index). */
void bkv_fsm_bind(struct bkv_fsm *f, struct raft *r);

void bkv_fsm_close(struct bkv_fsm *f);

#endif
