/*
 * The vault's replicated commands and their binary encoding.
 *
 * One Raft entry carries one or more commands (a batch), applied in order in
 * one SQLite transaction. Entry layout, all integers big-endian:
 *
 *   entry   = version(1) = 2 || reserved(3) = 0 || count(4) || command{count}
 *   command = type(1) || reserved(3) = 0 || body_len(4) || request_id(16)
 *             || account(32) || body(body_len) || zero pad to a multiple of 8
 *   body    = REGISTER: max_attempts(4) || condition(4) || expect(8)
 *                       || record_len(4) || record || wrapped_len(4) || wrapped
 *             ATTEMPT:  reserved(8) = 0
 *             SUCCESS:  registration(8)  (the index of the REGISTER it answers)
 *             DELETE:   empty
 *
 * Every entry's length is a multiple of 8 (libraft needs it). The decoder is
 * total: it checks every length and every reserved byte, and refuses unknown
 * versions and types, trailing bytes and non-zero padding. A sealed field is
 * 1..BKV_CMD_MAX_SEALED bytes; max_attempts is 1..BKV_CMD_MAX_LIMIT (so a
 * counter of attempts + 1 never wraps); registration is never 0.
 *
 * Version 1 entries (written before REGISTER had a condition) are still
 * decoded: their REGISTER body is max_attempts(4) || record_len(4) || record
 * || wrapped_len(4) || wrapped, read as condition 0. A log or a follower of
 * an older build thus applies the same state. An older build cannot read
 * version 2: it would skip such an entry as malformed (the FSM skips what
 * it cannot decode), so every node is upgraded before a new build leads.
 *
 * A REGISTER with condition 1 is a compare-and-set: it applies only if the
 * account's row still has registration `expect` (0: no row at all), else it
 * is STALE and changes nothing. The gateway sends every REG_FINISH this way,
 * with the registration its ticket was bound to at REG_INIT, so two
 * registrations raced from one ticket, or a REG_FINISH replayed after its
 * request id left the window, cannot replace a record they never saw.
 * Condition 0 is unconditional (tests and tools).
 *
 * The guess limit is replicated state: a REGISTER carries the limit of the
 * leader that registered the record (bkv_raft_propose fills in the node's
 * configured limit when the caller leaves max_attempts 0), the store keeps
 * it in the record's row, and every ATTEMPT is counted against that row's
 * limit. An ATTEMPT carries no limit, so no proposer (and no node with a
 * different configuration) can choose the limit of a login.
 *
 * Request ids (the rule the gateway must follow): a request id is derived
 * from a digest of the request's content; for LOGIN_INIT, from the client's
 * request id and a digest of its KE1. A retried request (same content) is
 * then the same request and gets its remembered result (replayed = 1); a
 * changed request is a new request and is applied (counted) anew. So a
 * replayed COUNTED only permits answering the same KE1 again, which reveals
 * nothing new: one KE1 is one password guess, and it was counted once. A
 * request id chosen by the client alone would let it reuse one COUNTED for
 * many KE1s, i.e. many guesses for one count.
 *
 * account is HMAC(realm MAC key, account id), computed in the HSM: the store
 * never sees account names. record and wrapped are sealed by the HSM before
 * they are proposed; this layer never sees them in the clear.
 *
 * Pure functions: reentrant, any thread.
 */
#ifndef BKV_CONSENSUS_CMD_H
#define BKV_CONSENSUS_CMD_H

#include <stddef.h>
#include <stdint.h>

#define BKV_CMD_VERSION       2 /* written; version 1 entries are still read (above) */
#define BKV_REQUEST_ID_LEN    16
#define BKV_ACCOUNT_KEY_LEN   32
#define BKV_CMD_MAX_SEALED    4096    /* longest sealed record or wrapped key */
#define BKV_CMD_MAX_BATCH     1024    /* most commands in one entry */
#define BKV_CMD_DEFAULT_LIMIT 10      /* default max_attempts of a cluster */
#define BKV_CMD_MAX_LIMIT     1000000 /* highest max_attempts a REGISTER may carry */

enum bkv_cmd_type {
    BKV_CMD_REGISTER = 1, /* replace the record, reset the counter */
    BKV_CMD_ATTEMPT = 2,  /* count one login attempt before its KE2 goes out */
    BKV_CMD_SUCCESS = 3,  /* a valid KE3: reset the counter */
    BKV_CMD_DELETE = 4,   /* remove the record */
};

/* One command. Pointers borrow from the caller (encode) or the entry (decode). */
struct bkv_cmd {
    enum bkv_cmd_type type;
    uint8_t request_id[BKV_REQUEST_ID_LEN];
    uint8_t account[BKV_ACCOUNT_KEY_LEN];
    uint32_t max_attempts; /* REGISTER: the record's guess limit, 1..BKV_CMD_MAX_LIMIT */
    uint64_t registration; /* SUCCESS: index of the REGISTER the login ran against;
                            * conditional REGISTER: the row's registration it expects (0: none) */
    int conditional;       /* REGISTER: 1 = compare-and-set on registration, 0 = unconditional */
    const uint8_t *record; /* REGISTER: sealed OPAQUE record */
    size_t record_len;
    const uint8_t *wrapped; /* REGISTER: sealed wrapped backup key */
    size_t wrapped_len;
};

/*
 * The applied outcome of one command, as the proposer receives it after the
 * commit. attempts is the counter after the command; registration the index
 * of the REGISTER entry of the live record (0 if none).
 */
enum bkv_cmd_status {
    BKV_CMD_REGISTERED = 1, /* REGISTER applied */
    BKV_CMD_COUNTED,        /* ATTEMPT counted; a KE2 may go out */
    BKV_CMD_DESTROYED,      /* the record is (now or already) a tombstone; no KE2, no key */
    BKV_CMD_NOT_FOUND,      /* no record for this account */
    BKV_CMD_RESET,          /* SUCCESS applied: counter back to 0, the key may be released */
    BKV_CMD_STALE,          /* SUCCESS for a registration that has since been replaced, or a
                             * conditional REGISTER whose expected registration is not the row's */
    BKV_CMD_DELETED,        /* DELETE applied */
};

struct bkv_cmd_result {
    enum bkv_cmd_status status;
    uint32_t attempts;
    uint32_t max_attempts; /* the record's own limit (from its REGISTER); 0 if no record */
    uint64_t registration;
    int replayed; /* 1: the request id was seen before; this is the original result */
};

/* Bytes the entry holding cmds[0..n-1] needs (a multiple of 8), 0 if invalid. */
size_t bkv_cmd_entry_len(const struct bkv_cmd *cmds, size_t n);

/* Encode cmds[0..n-1] into out (cap bytes); *len = bkv_cmd_entry_len(). */
int bkv_cmd_entry_encode(const struct bkv_cmd *cmds, size_t n, uint8_t *out, size_t cap,
                         size_t *len);

/*
 * Decode an entry into cmds (capacity cap); *n gets the count. The commands'
 * pointers borrow from in. BKV_ERR_LENGTH / BKV_ERR_FORMAT /
 * BKV_ERR_UNSUPPORTED for malformed input, BKV_ERR_LIMIT if count > cap.
 */
int bkv_cmd_entry_decode(const uint8_t *in, size_t len, struct bkv_cmd *cmds, size_t cap,
                         size_t *n);

const char *bkv_cmd_status_name(enum bkv_cmd_status status);

#endif
