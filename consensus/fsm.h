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
 * snapshot: the store writes an image file (bkv_store_snapshot, every
 * applied entry included), which is synced, digested and renamed into the
 * image directory under its SHA-256 (image.h); libraft gets only the 64-byte
 * descriptor naming it. restore: decode the descriptor; if the store is at
 * least as new, keep it; else take the image from the image directory, or
 * fetch it with the fetch hook (node.c: from the members' image servers,
 * transfer.h; tests: from another node's directory) when it is not local,
 * verify its size and SHA-256, and let the store install it. The images of
 * the two latest descriptors taken or restored are kept (libraft may still
 * be sending the older one), every other image is deleted.
 *
 * Loop thread only.
 */
#ifndef BKV_CONSENSUS_FSM_H
#define BKV_CONSENSUS_FSM_H

#include <stddef.h>
#include <stdint.h>

#include <raft.h>

#include "consensus/cmd.h"
#include "consensus/image.h"
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

/*
 * Fetch the image of hash sha256 and size bytes into the new file dest
 * (fsynced, verified, removed on failure), blocking; err gets the reason.
 * Called from restore on the loop thread.
 */
typedef int (*bkv_fsm_fetch_fn)(void *arg, const uint8_t sha256[static 32], uint64_t size,
                                const char *dest, char *err, size_t err_cap);

struct bkv_fsm {
    struct raft_fsm raft; /* handed to raft_init / raft_fixture_grow */
    struct raft *r;       /* set with bkv_fsm_bind before the first apply */
    struct bkv_store *store;
    char scratch_dir[4096]; /* temporary files */
    char image_dir[4096];   /* images, by hash */
    bkv_fsm_fetch_fn fetch;
    void *fetch_arg;
    struct bkv_cmd cmds[BKV_CMD_MAX_BATCH];
    struct bkv_fsm_result *ring; /* BKV_FSM_RING slots, entry index % BKV_FSM_RING */
    struct bkv_fsm_result *last; /* the slot of the latest apply (NULL before) */
    /* the descriptor libraft holds between snapshot and snapshot_finalize */
    int taking;
    uint8_t desc[BKV_IMAGE_DESC_LEN];
    struct raft_buffer bufs[1];
    uint8_t keep[2][32]; /* images of the latest two descriptors, newest first */
    size_t n_keep;
    /* counters for status/metrics */
    unsigned long snapshots, restores, fetches;
    uint64_t image_size; /* bytes of the latest image taken or restored */
    char errmsg[512];    /* why the latest snapshot or restore failed ("" if none did) */
};

/*
 * Set up f on store (borrowed; outlives f). scratch_dir and image_dir must
 * exist (copied paths; same file system, images are renamed from one into
 * the other). Allocates the result ring (BKV_ERR_NOMEM); bkv_fsm_close
 * frees it.
 */
int bkv_fsm_init(struct bkv_fsm *f, struct bkv_store *store, const char *scratch_dir,
                 const char *image_dir);

/* Tell f which raft instance it serves (needed for the applied index). */
void bkv_fsm_bind(struct bkv_fsm *f, struct raft *r);

/* How restore gets an image that is not local (without one it fails). */
void bkv_fsm_set_fetch(struct bkv_fsm *f, bkv_fsm_fetch_fn fetch, void *arg);

void bkv_fsm_close(struct bkv_fsm *f);

#endif
