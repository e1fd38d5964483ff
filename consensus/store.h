/*
 * The vault state on one node: a SQLite database in WAL mode, written only
 * from the loop thread.
 *
 * Rows are keyed by the account MAC. A record is live (sealed record and
 * wrapped key present, counter) or a tombstone (secrets deleted from the row,
 * for good). Each applied Raft entry runs in one transaction that also stores
 * the entry's index, so a restart never applies an entry twice: apply of an
 * index at or below the stored one is a no-op that says so (see
 * bkv_store_apply; bkv_store_set_group lets several entries share one
 * transaction). Request ids are remembered
 * (with their original results) for BKV_STORE_REQUEST_WINDOW entries, so a
 * replayed request changes nothing and gets its first result again. A
 * request is identified by its id, account and command type together: an id
 * reused for another account or type is a new request (so a client cannot
 * borrow another account's COUNTED result by reusing its id).
 *
 * Rules (the guess limit rests on them):
 *   REGISTER  replaces the record (live again, counter 0, registration = index,
 *             max_attempts = the REGISTER's limit, kept in the row)
 *   ATTEMPT   live: counter + 1; if that passes the row's max_attempts (the
 *             limit its REGISTER carried; an ATTEMPT carries none), the record is
 *             destroyed (tombstone, secrets deleted) and the result is
 *             DESTROYED (no KE2); otherwise COUNTED. Tombstone: DESTROYED.
 *             Unknown: NOT_FOUND (the gateway answers with a fake record).
 *   SUCCESS   live and registration matches: counter 0, RESET; live but
 *             another registration: STALE; tombstone: DESTROYED; else NOT_FOUND
 *   DELETE    removes the row entirely: DELETED (or NOT_FOUND)
 *
 * Not thread-safe: one thread (the loop) owns a store.
 */
#ifndef BKV_CONSENSUS_STORE_H
#define BKV_CONSENSUS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "consensus/cmd.h"

#define BKV_STORE_REQUEST_WINDOW 1000000 /* entries a request id is remembered for */
#define BKV_STORE_ERRMSG_LEN     512

struct bkv_store;

/* A record as read back (copies; the caller frees record and wrapped). */
struct bkv_store_record {
    int live; /* 1 live, 0 tombstone */
    uint32_t attempts;
    uint32_t max_attempts; /* the limit its REGISTER carried */
    uint64_t registration;
    uint8_t *record;
    size_t record_len;
    uint8_t *wrapped;
    size_t wrapped_len;
};

/*
 * Open (creating if needed) the database at path, WAL mode, schema checked.
 * *out is owned by the caller (bkv_store_close). Errors: BKV_ERR_IO for a
 * path that cannot be opened or written, BKV_ERR_FORMAT for a database of
 * another schema; the text goes to err.
 */
int bkv_store_open(const char *path, struct bkv_store **out, char *err, size_t err_cap);
void bkv_store_close(struct bkv_store *s);

/* The message of the latest failure on s (owned by s). */
const char *bkv_store_errmsg(const struct bkv_store *s);

/* Index of the last applied entry (0 for a fresh store). */
uint64_t bkv_store_applied_index(const struct bkv_store *s);

/*
 * Apply the commands of the entry at index, all in one transaction (or in
 * the group's transaction, bkv_store_set_group) with the new applied index;
 * results[i] is the outcome of cmds[i]. index <= applied
 * index: nothing changes, BKV_OK is returned with results zeroed and *ahead
 * (if ahead is not NULL) is set to 1, else 0. A caller that hands results to
 * a proposer must treat *ahead = 1 as a failure: the commands were NOT
 * applied (the store already holds a state at or past index, e.g. a replay
 * after a restart, which has no proposer, or a store ahead of its log). A
 * storage failure rolls the transaction back and returns BKV_ERR_NOSPACE
 * (full disk) or BKV_ERR_IO (any other SQLite error) with the SQLite message
 * in bkv_store_errmsg(); the store is then unchanged, unless the failure also
 * dropped pending entries of a group (bkv_store_failed: every later apply
 * returns BKV_ERR_IO).
 */
int bkv_store_apply(struct bkv_store *s, uint64_t index, const struct bkv_cmd *cmds, size_t n,
                    struct bkv_cmd_result *results, int *ahead);

/*
 * Group commit: let up to max consecutive entries share one SQLite
 * transaction (default 1: every apply commits). Pending entries are visible
 * through this handle (get, counts) but not yet durable in the database: a
 * crash loses them like any commit not yet synced under synchronous=NORMAL,
 * and the node re-applies them from its Raft log. An entry that deletes
 * secrets commits at once. hash, snapshot, restore and close commit first.
 * A failed apply rolls the whole group back, and so does a failed commit:
 * the group's entries that were reported applied are then lost, so the
 * handle refuses every later apply (bkv_store_failed) and the node must
 * restart to replay them. (A savepoint per entry would undo a failed entry
 * alone, but its statement journal copies every page an entry touches: it
 * cost more than the commits it saved. Every storage failure in apply stops
 * the node anyway.)
 */
void bkv_store_set_group(struct bkv_store *s, unsigned max);

/* Commit the pending entries now: BKV_OK, or as bkv_store_apply's storage failures. */
int bkv_store_flush(struct bkv_store *s);

/* Entries applied but not yet committed to SQLite. */
unsigned bkv_store_pending(const struct bkv_store *s);

/* 1 once a failed commit dropped entries reported applied (see bkv_store_set_group). */
int bkv_store_failed(const struct bkv_store *s);

/* Mark index as applied with no command (barriers, configuration entries). */
int bkv_store_skip(struct bkv_store *s, uint64_t index);

/* Read one account's row: *found = 0 (and *out untouched) if there is none. */
int bkv_store_get(struct bkv_store *s, const uint8_t account[static BKV_ACCOUNT_KEY_LEN],
                  struct bkv_store_record *out, int *found);
void bkv_store_record_free(struct bkv_store_record *r);

/* Live records and tombstones. */
int bkv_store_counts(struct bkv_store *s, uint64_t *live, uint64_t *tombstones);

/*
 * SHA-256 over the whole replicated state in a canonical order (every row and
 * every remembered request, not the applied index): equal on every node that
 * applied the same entries.
 */
int bkv_store_hash(struct bkv_store *s, uint8_t out[static 32]);

/*
 * Write a consistent image of the database to path (a new file), without
 * blocking later applies longer than the copy takes. Its size is bounded by
 * the disk only: the image is a file, never one buffer in memory.
 */
int bkv_store_snapshot(struct bkv_store *s, const char *path);

/*
 * Replace the state with the image at path (written by bkv_store_snapshot on
 * any node). If the image's applied index is not above the current one, the
 * current state is kept (it is at least as new) and *kept = 1.
 */
int bkv_store_restore(struct bkv_store *s, const char *path, int *kept);

#endif
