/*
 * SHA-256, HMAC-SHA256 and HKDF-SHA256 (RFC 5869), the hash family of every
 * suite BKV uses. Inputs are given as a list of byte strings so callers can
 * hash or MAC a concatenation without building it in memory first.
 * All functions are reentrant and may be called from any thread.
 */
#ifndef BKV_PROTO_KDF_H
#define BKV_PROTO_KDF_H

#include <stddef.h>
#include <stdint.h>

#define BKV_HASH_LEN 32

/* One piece of a concatenated input; borrowed for the duration of the call. */
struct bkv_buf {
    const uint8_t *p;
    size_t n;
};

/* out = SHA-256(parts[0] || ... || parts[count-1]). */
int bkv_sha256(const struct bkv_buf *parts, size_t count, uint8_t out[static BKV_HASH_LEN]);

/* out = HMAC-SHA256(key, parts[0] || ...). */
int bkv_hmac_sha256(const uint8_t *key, size_t key_len, const struct bkv_buf *parts, size_t count,
                    uint8_t out[static BKV_HASH_LEN]);

/* prk = HKDF-Extract(salt, ikm parts). An empty salt means 32 zero bytes. */
int bkv_hkdf_extract(const uint8_t *salt, size_t salt_len, const struct bkv_buf *ikm, size_t count,
                     uint8_t prk[static BKV_HASH_LEN]);

/* out = HKDF-Expand(prk, info parts, out_len); out_len <= 255*32. */
int bkv_hkdf_expand(const uint8_t *prk, size_t prk_len, const struct bkv_buf *info, size_t count,
                    uint8_t *out, size_t out_len);

#endif
