/*
 * Account tokens, the router proof, and the router key files.
 *
 * Account token (what a client sends as "Authorization: Bearer <token>"):
 *
 *   bkv1.<base64url(payload)>.<base64url(tag)>      base64url without padding
 *   payload = expiry (8 bytes, big-endian Unix seconds) || account
 *   tag     = HMAC-SHA256(token key, "bkv1." || base64url(payload))
 *
 * The account is 1..BKV_MSG_ACCOUNT_MAX bytes of [A-Za-z0-9._@+-]
 * (bkv_msg_account_valid). Every token has exactly one text: padding,
 * non-canonical trailing bits and any byte outside the alphabet are refused.
 *
 * Router proof (X-BKV-Router-Proof, router to node), lowercase hex of
 *
 *   HMAC-SHA256(proof key, "BKV-ROUTER-PROOF-v1" || lp(method) || lp(path)
 *               || lp(account) || lp(time) || lp(SHA-256(body)))
 *
 * where lp(x) = 2-byte big-endian length of x || x, and time is the decimal
 * Unix time in seconds the router sends as X-BKV-Router-Time (no sign, no
 * leading zero). A node accepts a time within BKV_ROUTER_PROOF_WINDOW
 * seconds of its own clock, either way.
 *
 * Key files, written by `bkv-admin router keygen`, lowercase hex and a
 * newline, mode 0600: router.key = token key || proof key (routers and
 * `bkv-admin token issue`), router-proof.key = the proof key alone (nodes:
 * they can check a router's proof but cannot mint account tokens).
 *
 * Every function is reentrant and may run on any thread. Keys are borrowed
 * and never copied except into the caller's buffers; intermediates holding
 * them are wiped.
 */
#ifndef BKV_NODE_TOKEN_H
#define BKV_NODE_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "proto/msg.h"

#define BKV_TOKEN_KEY_LEN        32
#define BKV_TOKEN_PREFIX         "bkv1."
#define BKV_TOKEN_MAX_LEN        512 /* longest token text, without the NUL */
#define BKV_ROUTER_PROOF_LABEL   "BKV-ROUTER-PROOF-v1"
#define BKV_ROUTER_PROOF_HEX_LEN 64
#define BKV_ROUTER_PROOF_WINDOW  60 /* seconds */
#define BKV_ROUTER_TIME_MAX_LEN  20 /* digits of a uint64_t */
#define BKV_ROUTER_KEY_FILE      "router.key"
#define BKV_ROUTER_PROOF_FILE    "router-proof.key"

struct bkv_router_keys {
    uint8_t token_key[BKV_TOKEN_KEY_LEN]; /* signs and checks account tokens */
    uint8_t proof_key[BKV_TOKEN_KEY_LEN]; /* proves to nodes that a request came from a router */
};

/*
 * Write the token for account (NUL-terminated, borrowed) that expires at
 * expiry (Unix seconds) into out (capacity cap, NUL-terminated).
 * BKV_ERR_INVALID for an invalid account, BKV_ERR_LENGTH if cap is short.
 */
int bkv_token_issue(const uint8_t key[static BKV_TOKEN_KEY_LEN], const char *account,
                    uint64_t expiry, char *out, size_t cap);

/*
 * Check token (len bytes, borrowed, need not be NUL-terminated) at time now
 * (Unix seconds). On success the account is copied NUL-terminated into
 * account and, if expiry is not NULL, its expiry into *expiry. Errors, in
 * the order they are checked:
 *   BKV_ERR_FORMAT  malformed: not bkv1.<b64url>.<b64url> of the right
 *                   lengths, or a signed payload with an invalid account;
 *   BKV_ERR_MAC     the tag does not verify under key (constant-time compare);
 *   BKV_ERR_LIMIT   expired: now >= expiry.
 * On failure account is an empty string.
 */
int bkv_token_verify(const uint8_t key[static BKV_TOKEN_KEY_LEN], const char *token, size_t len,
                     uint64_t now, char account[static BKV_MSG_ACCOUNT_MAX + 1], uint64_t *expiry);

/*
 * The proof over one forwarded request, as lowercase hex (NUL-terminated)
 * in out. All strings borrowed and NUL-terminated; body may be NULL when
 * body_len is 0. BKV_ERR_INVALID for a NULL string, an invalid account or a
 * time that is not a canonical decimal; BKV_ERR_LENGTH for a field above
 * 65535 bytes.
 */
int bkv_router_proof_compute(const uint8_t key[static BKV_TOKEN_KEY_LEN], const char *method,
                             const char *path, const char *account, const char *time_str,
                             const uint8_t *body, size_t body_len,
                             char out[static BKV_ROUTER_PROOF_HEX_LEN + 1]);

/*
 * The node's check of X-BKV-Account (account), X-BKV-Router-Time
 * (time_str) and X-BKV-Router-Proof (proof_hex) for a request with method,
 * path and body, at its own time now (Unix seconds). Any header may be NULL
 * (missing). Returns 0 if the proof is genuine and fresh; otherwise:
 *   BKV_ERR_FORMAT  a header missing or malformed (account not valid, time
 *                   not a canonical decimal, proof not 64 hex digits);
 *   BKV_ERR_MAC     the proof does not verify (constant-time compare);
 *   BKV_ERR_LIMIT   genuine, but the time is more than
 *                   BKV_ROUTER_PROOF_WINDOW seconds away from now (a clock
 *                   skew or a replay of an old request).
 * Answer 401 for any of them.
 */
int bkv_router_proof_verify(const uint8_t key[static BKV_TOKEN_KEY_LEN], const char *method,
                            const char *path, const char *account, const char *time_str,
                            const char *proof_hex, const uint8_t *body, size_t body_len,
                            uint64_t now);

/* Fresh random keys (OpenSSL's CSPRNG). BKV_ERR_CRYPTO if it fails. */
int bkv_router_keys_generate(struct bkv_router_keys *keys);
void bkv_router_keys_wipe(struct bkv_router_keys *keys);

/*
 * The key files' content: hex of token key || proof key (router.key,
 * 2 * 64 + 1 bytes written, the last a newline, no NUL) and hex of the proof
 * key (router-proof.key, 2 * 32 + 1 bytes). The caller wipes out.
 */
#define BKV_ROUTER_KEY_FILE_LEN   (4 * BKV_TOKEN_KEY_LEN + 1)
#define BKV_ROUTER_PROOF_FILE_LEN (2 * BKV_TOKEN_KEY_LEN + 1)
void bkv_router_key_file_encode(const struct bkv_router_keys *keys,
                                uint8_t out[static BKV_ROUTER_KEY_FILE_LEN]);
void bkv_router_proof_file_encode(const struct bkv_router_keys *keys,
                                  uint8_t out[static BKV_ROUTER_PROOF_FILE_LEN]);

/*
 * Load router.key (both keys) or router-proof.key (the proof key) from path
 * (borrowed). Refused with BKV_ERR_PERMISSION when the file is not owned by
 * this process's effective uid or any group/other permission bit is set;
 * BKV_ERR_IO when it cannot be opened or is not a regular file (symlinks are
 * not followed); BKV_ERR_FORMAT when it is not the hex of the right number of
 * bytes (the message says which file it looks like instead). err (capacity
 * err_cap) names the file, never its content. Nothing is kept on failure.
 */
int bkv_router_key_load(const char *path, struct bkv_router_keys *keys, char *err, size_t err_cap);
int bkv_router_proof_key_load(const char *path, uint8_t key[static BKV_TOKEN_KEY_LEN], char *err,
                              size_t err_cap);

#endif
