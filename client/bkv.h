/*
 * libbkv: what an app links to protect its backup key with BKV.
 *
 * The backup key K is 32 random bytes. A person sees it as 64 hex digits of
 * the key in 16 groups of 4, followed by one group of 4 check digits (a
 * CRC-16 of the key), so that a mistyped digit or two swapped neighbours are
 * caught instead of silently giving a wrong key:
 *   1a2b 3c4d ... (16 groups) ... 9f0e  c7d1
 * Parsing ignores case, spaces and dashes.
 *
 * The backup stream (bkv_backup_encrypt / decrypt) is chunked AES-256-GCM in
 * the STREAM construction, keyed by HKDF from K and a per-file salt; see
 * docs/protocol.md. It runs in constant memory.
 *
 * register / recover / delete talk to a BKV router over HTTP/1.1 with the
 * account token, and to the vault through RFC 9458 envelopes sealed to the
 * realm key config the client pinned. They block; one bkv_client per thread.
 *
 * Every function returns 0 (BKV_OK) or an enum bkv_err code (proto/err.h);
 * the ones that take err/err_cap write a sentence for a person there.
 */
#ifndef BKV_CLIENT_BKV_H
#define BKV_CLIENT_BKV_H

#include <stddef.h>
#include <stdint.h>

#define BKV_KEY_LEN      32
#define BKV_KEY_TEXT_MAX 96 /* 17 groups of 4 + separators + NUL, with room */

/* --- the key ------------------------------------------------------------- */

int bkv_key_generate(uint8_t key[BKV_KEY_LEN]);
/* "xxxx xxxx ... cccc": 16 key groups and the check group, lower case. */
int bkv_key_format(const uint8_t key[BKV_KEY_LEN], char *out, size_t cap);
/*
 * Parse text as written by bkv_key_format. BKV_ERR_FORMAT for a character
 * that is not a hex digit, space or dash, BKV_ERR_LENGTH for the wrong number
 * of digits, BKV_ERR_MAC when the check digits do not match (a typo).
 * key is wiped on failure.
 */
int bkv_key_parse(const char *text, uint8_t key[BKV_KEY_LEN]);

/* --- the backup stream --------------------------------------------------- */

/*
 * Encrypt everything readable from in_fd into out_fd. err gets a sentence on
 * failure (BKV_ERR_IO for a read or write error).
 */
int bkv_backup_encrypt(const uint8_t key[BKV_KEY_LEN], int in_fd, int out_fd, char *err,
                       size_t err_cap);
/*
 * Decrypt a stream from in_fd into out_fd. Plaintext is written chunk by
 * chunk as each chunk authenticates; the stream as a whole is accepted only
 * when the call returns 0. A caller writing to a file must therefore write a
 * temporary file and rename it on success. BKV_ERR_DECRYPT for a wrong key,
 * a flipped bit or reordered chunks, BKV_ERR_LENGTH for a truncated stream,
 * BKV_ERR_FORMAT / UNSUPPORTED for a header that is not ours.
 */
int bkv_backup_decrypt(const uint8_t key[BKV_KEY_LEN], int in_fd, int out_fd, char *err,
                       size_t err_cap);

/* --- the vault ----------------------------------------------------------- */

struct bkv_client_config {
    const char *router;  /* "host:port" of a BKV router */
    const char *token;   /* the account token from the app's backend */
    const char *account; /* the account id the token names */
    /*
     * The realm key config the client trusts: either its bytes (as
     * published by `bkv-admin realm keyconfig`) or only its fingerprint (64
     * hex digits), in which case the client fetches GET /v1/keyconfig from
     * the router and refuses anything with another fingerprint. Give at
     * least one; given both, they must agree.
     */
    const uint8_t *keyconfig;
    size_t keyconfig_len;
    const char *fingerprint;
    unsigned timeout_ms; /* per HTTP request; 0: 10000 */
};

struct bkv_client;

int bkv_client_new(const struct bkv_client_config *cfg, struct bkv_client **out, char *err,
                   size_t err_cap);
void bkv_client_free(struct bkv_client *c);

/* What the vault said, beyond the return code. */
enum bkv_outcome {
    BKV_OUTCOME_OK = 0,
    BKV_OUTCOME_WRONG_PASSWORD, /* attempts_left tells how many remain */
    BKV_OUTCOME_DESTROYED,      /* too many wrong guesses: the key is gone for good */
    BKV_OUTCOME_NOT_REGISTERED, /* no key is registered for this account */
    BKV_OUTCOME_UNREACHABLE,    /* the router could not be reached or answered 5xx */
    BKV_OUTCOME_PIN_MISMATCH,   /* the router served a key config that is not the pinned one */
    BKV_OUTCOME_REFUSED,        /* the router refused: bad/expired token (401), 429, 413 */
    BKV_OUTCOME_PROTOCOL,       /* a malformed answer, or one that did not authenticate */
};

struct bkv_result {
    enum bkv_outcome outcome;
    uint32_t attempts_left; /* WRONG_PASSWORD (and OK: the limit) */
    uint32_t max_attempts;
    unsigned retry_after_s; /* REFUSED with 429 / UNREACHABLE with 503: the server's hint */
    char message[256];      /* a sentence for a person: what happened and what to do */
};

/* Register key under password (password is borrowed and not kept). Replaces any earlier key. */
int bkv_register(struct bkv_client *c, const uint8_t *password, size_t password_len,
                 const uint8_t key[BKV_KEY_LEN], struct bkv_result *res);
/* Recover the key. Only with outcome OK is key written (and the call returns 0). */
int bkv_recover(struct bkv_client *c, const uint8_t *password, size_t password_len,
                uint8_t key[BKV_KEY_LEN], struct bkv_result *res);
int bkv_delete(struct bkv_client *c, struct bkv_result *res);

#endif
