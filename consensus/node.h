/*
 * One Raft member of the vault: libraft 0.22 on raft_uv (its disk log) and
 * the raft_uv TCP transport, the FSM over a SQLite store, on one libuv loop.
 *
 * Data directory layout (created by bkv_raft_init if missing):
 *   <data_dir>/raft/       libraft's segments, metadata and snapshots
 *   <data_dir>/state.db    the SQLite store (plus -wal, -shm)
 *   <data_dir>/snapshots/  scratch files for snapshot images (emptied by
 *                          bkv_raft_init: anything there is a crash's leftover)
 *   <data_dir>/images/     snapshot images, named by their SHA-256: the ones
 *                          this node's two latest snapshot descriptors name
 *
 * Snapshots move out of band. libraft stores and sends only a 64-byte
 * descriptor (consensus/image.h); the image itself is a file, which every
 * node serves on its snapshot_address (consensus/transfer.h) to members that
 * need it. A node that restores a descriptor whose image it lacks (an
 * InstallSnapshot from the leader, or its own latest snapshot after a power
 * cut lost its store's latest commits) fetches the image from the leader's
 * snapshot server first, then the other members', streaming it to disk in
 * constant memory and checking its size and SHA-256, within
 * snapshot_fetch_timeout_ms. That fetch blocks the loop (libraft calls
 * restore synchronously). So a cluster of two or more members needs
 * snapshot_address set on this node and on every member, and the member
 * list on every start, not only at bootstrap; bkv_raft_init refuses a
 * config that lacks them. A single-member cluster needs none (it never
 * receives an InstallSnapshot; it serves its images if given an address).
 *
 * Bootstrapping is explicit: bkv_raft_bootstrap() on a pristine node writes
 * the member list; on a node with state it returns BKV_ERR_INVALID ("already
 * bootstrapped", or "the store already holds state at index N; refusing to
 * bootstrap" when state.db has applied entries but the Raft log is empty). A restart needs no
 * bootstrap: libraft loads its log and snapshot, the store skips entries it already applied.
 *
 * A leader serves proposals only after a barrier of its own term has
 * committed; before that bkv_raft_propose() returns BKV_ERR_NOT_READY. A
 * follower returns BKV_ERR_NOT_LEADER and bkv_raft_leader() names the leader.
 * The role is watched from a uv_prepare_t (libraft 0.22 has no state
 * callback); changes reach the state callback. If the instance becomes
 * unavailable (a disk or FSM failure), the unavailable callback fires with
 * the reason: the process must exit non-zero for its supervisor to restart it.
 *
 * Everything here runs on the loop thread.
 */
#ifndef BKV_CONSENSUS_NODE_H
#define BKV_CONSENSUS_NODE_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "consensus/cmd.h"

#define BKV_RAFT_MAX_MEMBERS 16
#define BKV_RAFT_ERRMSG_LEN  512

struct bkv_raft_member {
    uint64_t id;
    char dc[64];                /* data-center label */
    char address[128];          /* Raft address, host:port */
    char snapshot_address[128]; /* its snapshot image server, host:port (see above) */
    int later;                  /* 1: known (for snapshots) but not in the bootstrap
                                   configuration: a member added later by bkv_raft_member_add */
};

struct bkv_raft_config {
    uint64_t id;
    char dc[64];
    char address[128]; /* this node's Raft address, host:port */
    char data_dir[4096];
    struct bkv_raft_member members[BKV_RAFT_MAX_MEMBERS]; /* for bootstrap */
    size_t n_members;
    uint32_t max_attempts;         /* guess limit put into REGISTERs whose caller left it 0
                                      (0: BKV_CMD_DEFAULT_LIMIT; at most BKV_CMD_MAX_LIMIT) */
    unsigned snapshot_threshold;   /* entries between snapshots (0: libraft default) */
    unsigned snapshot_trailing;    /* entries kept after a snapshot (0: default) */
    unsigned election_timeout_ms;  /* 0: 1000 */
    unsigned heartbeat_timeout_ms; /* 0: 100 */
    /* This node's snapshot image server, host:port ("": none; see above). */
    char snapshot_address[128];
    unsigned snapshot_fetch_timeout_ms; /* deadline of one image fetch (0: 30000) */
    /* Tests only (a failpoint, iotap.h): each snapshot this node takes ends this many ms
     * late, and it accepts no log entries meanwhile, as on a stalled disk. 0: off. */
    unsigned test_slow_snapshot_ms;
};

enum bkv_raft_role {
    BKV_RAFT_FOLLOWER = 1,
    BKV_RAFT_CANDIDATE,
    BKV_RAFT_LEADER,       /* leader, barrier of its term not yet committed */
    BKV_RAFT_LEADER_READY, /* leader serving proposals */
    BKV_RAFT_UNAVAILABLE,
};

struct bkv_raft;

typedef void (*bkv_raft_state_cb)(struct bkv_raft *r, enum bkv_raft_role role, void *data);
typedef void (*bkv_raft_unavailable_cb)(struct bkv_raft *r, const char *reason, void *data);

/* A proposal, allocated by the caller, valid until its callback. */
struct bkv_raft_propose;
typedef void (*bkv_raft_propose_cb)(struct bkv_raft_propose *req, int status,
                                    const struct bkv_cmd_result *results, size_t n);
struct bkv_raft_propose {
    void *data;
    /* private */
    bkv_raft_propose_cb cb;
    struct bkv_raft *r;
    size_t n;
    void *impl[8];
};

int bkv_raft_init(uv_loop_t *loop, const struct bkv_raft_config *cfg, struct bkv_raft **out,
                  char *err, size_t err_cap);
int bkv_raft_bootstrap(struct bkv_raft *r);
int bkv_raft_start(struct bkv_raft *r, bkv_raft_state_cb state_cb,
                   bkv_raft_unavailable_cb unavailable_cb, void *data);
/* Close asynchronously; cb runs on the loop once everything is released. */
void bkv_raft_close(struct bkv_raft *r, void (*cb)(void *data), void *data);

/*
 * Propose cmds[0..n-1] (copied; record and wrapped only for REGISTER, other
 * types' record/wrapped/max_attempts fields are ignored). A REGISTER whose
 * max_attempts is 0 gets this node's cfg.max_attempts: the limit is fixed
 * when the record is registered and replicated with it (cmd.h). BKV_ERR_INVALID for commands
 * the codec refuses, BKV_ERR_LENGTH if the copy's size would overflow,
 * BKV_ERR_NOMEM. The callback gets BKV_OK and the applied
 * results after the commit, or BKV_ERR_LEADERSHIP_LOST (outcome unknown:
 * retry with the same request ids), BKV_ERR_SHUTDOWN. A proposal whose entry
 * committed but whose results were lost (fsm.h ring overrun) is proposed
 * again; if that fails in any way the callback gets BKV_ERR_LEADERSHIP_LOST,
 * never NOSPACE/NOMEM/RAFT/SHUTDOWN (its commands may have been applied). Returns
 * BKV_ERR_NOT_LEADER / BKV_ERR_NOT_READY at once without calling cb.
 * Proposals made in the same loop iteration may share one Raft entry.
 */
int bkv_raft_propose(struct bkv_raft *r, struct bkv_raft_propose *req, const struct bkv_cmd *cmds,
                     size_t n, bkv_raft_propose_cb cb);

/* The leader as this node knows it: id 0 and address NULL if unknown. */
void bkv_raft_leader(struct bkv_raft *r, uint64_t *id, const char **address);
enum bkv_raft_role bkv_raft_role(struct bkv_raft *r);

/* Raft progress as this node sees it, for status pages (all 0 before start). */
struct bkv_raft_info {
    uint64_t term;
    uint64_t commit_index;
    uint64_t last_index;    /* last entry in the local log */
    uint64_t applied_index; /* last entry applied (commands, barriers, configurations) */
    /* snapshots (since start) */
    unsigned long snapshots_taken;
    unsigned long snapshots_restored; /* images installed into the store */
    unsigned long images_fetched;     /* of them, images fetched from a member */
    unsigned long images_served;      /* images sent to members by this node's server */
    uint64_t image_size;              /* bytes of the latest image taken or installed */
    unsigned long installs_held;      /* InstallSnapshots kept back during a snapshot (iotap.h) */
    /* A follower: ms since it last heard from the leader (libraft's election timer start);
     * 0 on the leader itself; UINT64_MAX when it is neither and knows no leader. */
    uint64_t leader_contact_ms;
};
void bkv_raft_info(struct bkv_raft *r, struct bkv_raft_info *out);
struct bkv_store *bkv_raft_store(struct bkv_raft *r);

/* --- membership and leadership (leader only) --------------------------------- */

enum bkv_raft_member_role { BKV_MEMBER_VOTER = 1, BKV_MEMBER_STANDBY, BKV_MEMBER_SPARE };

/* One server of the current configuration, as this node sees it. */
struct bkv_raft_server {
    uint64_t id;
    char address[128];
    enum bkv_raft_member_role role;
    int has_match;        /* 1 on the leader: match_index is the follower's progress */
    uint64_t match_index; /* the highest entry known replicated on it */
    /* On the leader: ms since it last received a message from this member (0 for
     * itself, UINT64_MAX if none since this process started). */
    uint64_t contact_ms;
};

/* Copy the current configuration (at most cap servers) into out; returns the count. */
size_t bkv_raft_servers(struct bkv_raft *r, struct bkv_raft_server *out, size_t cap);

/*
 * A membership or leadership change finished: status BKV_OK, or a BKV_ERR_*
 * code with msg (static or owned by the node until the callback returns)
 * saying why. Called once, on the loop thread.
 */
typedef void (*bkv_raft_change_cb)(void *data, int status, const char *msg);

/*
 * Add server id at its Raft address as a non-voter that receives the log
 * (RAFT_STANDBY): raft_add, then raft_assign. Promote it to a voter with
 * bkv_raft_member_promote once it has caught up (libraft also runs its own
 * catch-up rounds before the promotion commits). Remove takes any server out,
 * the leader included (it steps down after the change commits). Transfer
 * hands leadership to id, or to the most up-to-date voter with id 0.
 * Each returns BKV_ERR_NOT_LEADER / BKV_ERR_INVALID (unknown id, a duplicate,
 * a role it already has; msg in bkv_raft_errmsg) at once without calling cb,
 * else BKV_OK and calls cb later.
 */
int bkv_raft_member_add(struct bkv_raft *r, uint64_t id, const char *address, bkv_raft_change_cb cb,
                        void *data);
int bkv_raft_member_promote(struct bkv_raft *r, uint64_t id, bkv_raft_change_cb cb, void *data);
int bkv_raft_member_remove(struct bkv_raft *r, uint64_t id, bkv_raft_change_cb cb, void *data);
int bkv_raft_leader_transfer(struct bkv_raft *r, uint64_t id, bkv_raft_change_cb cb, void *data);
/*
 * Take a snapshot now, on the leader: libraft 0.22 has no call for it, so the
 * snapshot threshold is lowered to 1 for one barrier entry, and restored once
 * the snapshot was taken (cb BKV_OK) or after 10 s (BKV_ERR_LIMIT).
 */
int bkv_raft_snapshot_now(struct bkv_raft *r, bkv_raft_change_cb cb, void *data);
const char *bkv_raft_errmsg(struct bkv_raft *r);

#endif
