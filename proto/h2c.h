/*
 * RFC 9380 hashing to P-256: expand_message_xmd(SHA-256), hash_to_field (L = 48,
 * modulo p or modulo the group order n), the straight-line simplified SWU map
 * (Appendix F.2), and the suites P256_XMD:SHA-256_SSWU_RO_ (hash_to_curve) and
 * P256_XMD:SHA-256_SSWU_NU_ (encode_to_curve).
 *
 * Messages are lists of byte strings (struct bkv_buf), hashed as their
 * concatenation. All field arithmetic on message-derived values is constant
 * time (p256.c: fixed 4x64-bit limbs, masks, no secret-dependent branch or
 * index).
 * Field elements are 32 bytes big-endian; points leave as 65-byte uncompressed
 * encodings (04 || x || y) or in a caller-allocated EC_POINT.
 *
 * No function keeps state: all are reentrant and may run on any thread. Every
 * input buffer is borrowed for the duration of the call only.
 */
#ifndef BKV_PROTO_H2C_H
#define BKV_PROTO_H2C_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ec.h>

#include "group.h"
#include "kdf.h"

#define BKV_H2C_FIELD_LEN   32   /* a field element or scalar, big-endian */
#define BKV_H2C_L           48   /* bytes of uniform output per element */
#define BKV_H2C_MAX_XMD_LEN 8160 /* ell <= 255 blocks of 32 bytes */

/*
 * expand_message_xmd with SHA-256: out_len bytes into out. A DST longer than
 * 255 bytes is first replaced by SHA-256("H2C-OVERSIZE-DST-" || DST).
 * BKV_ERR_INVALID for an empty DST, a NULL out, or a NULL buffer (message list
 * or part) with a non-zero length; BKV_ERR_LENGTH when out_len is 0 or above
 * BKV_H2C_MAX_XMD_LEN (ell > 255; len_in_bytes <= 65535 follows). Arguments
 * are checked before out is touched; if hashing then fails, out is zeroed.
 */
int bkv_h2c_expand_xmd(const struct bkv_buf *msg, size_t count, const uint8_t *dst, size_t dst_len,
                       uint8_t *out, size_t out_len);

/*
 * hash_to_field(msg, u_count) for P-256 modulo p: u_count (1 or 2) elements
 * written to u, 32 bytes each, canonical (< p).
 */
int bkv_h2c_hash_to_field(const struct bkv_buf *msg, size_t count, const uint8_t *dst,
                          size_t dst_len, uint8_t *u, size_t u_count);

/*
 * HashToScalar of RFC 9497: hash_to_field(msg, 1) modulo the group order n.
 * The result is in [0, n-1]; it may be zero, callers that need a valid
 * scalar check it with bkv_p256_scalar_check.
 */
int bkv_hash_to_scalar(const struct bkv_buf *msg, size_t count, const uint8_t *dst, size_t dst_len,
                       uint8_t out[static BKV_P256_SCALAR_LEN]);

/*
 * map_to_curve_simple_swu(u) for one field element u < p (else
 * BKV_ERR_INVALID), output 04 || x || y. Every u maps to a point, including
 * the exceptional u with Z^2 u^4 + Z u^2 = 0.
 */
int bkv_h2c_map_to_curve(const uint8_t u[static BKV_H2C_FIELD_LEN],
                         uint8_t out[static BKV_P256_UNCOMPRESSED_LEN]);

/*
 * a + b for two uncompressed points, with the same constant-time affine
 * addition hash_to_curve uses. BKV_ERR_POINT when an input is malformed or
 * off the curve, or when the sum is the identity. The OPRF uses it to mask
 * H(password) with a random point before OpenSSL sees it.
 */
int bkv_h2c_point_add(const uint8_t a[static BKV_P256_UNCOMPRESSED_LEN],
                      const uint8_t b[static BKV_P256_UNCOMPRESSED_LEN],
                      uint8_t out[static BKV_P256_UNCOMPRESSED_LEN]);

/*
 * hash_to_curve (P256_XMD:SHA-256_SSWU_RO_ with the caller's DST):
 * P = map(u0) + map(u1), output 04 || x || y. BKV_ERR_POINT if P is the
 * identity (probability about 2^-256).
 */
int bkv_hash_to_curve(const struct bkv_buf *msg, size_t count, const uint8_t *dst, size_t dst_len,
                      uint8_t out[static BKV_P256_UNCOMPRESSED_LEN]);

/* encode_to_curve (P256_XMD:SHA-256_SSWU_NU_): map(hash_to_field(msg, 1)). */
int bkv_encode_to_curve(const struct bkv_buf *msg, size_t count, const uint8_t *dst, size_t dst_len,
                        uint8_t out[static BKV_P256_UNCOMPRESSED_LEN]);

/*
 * Test hook onto the field arithmetic of p256.c and the sqrt_ratio of the
 * SSWU map, on 32-byte big-endian values.
 * Inputs must be below p (BKV_ERR_INVALID otherwise), except for the REDUCE
 * operations, which take 48 bytes (a_len = 48) and reduce them modulo p or n.
 * INV maps 0 to 0. SQRT_RATIO(a, b) is sqrt_ratio_3mod4: *flag = 1 and
 * out^2 * b = a if a/b is a square, else *flag = 0 and out^2 * b = Z * a.
 * b may be NULL and flag may be NULL for operations that do not use them.
 */
enum bkv_h2c_field_op {
    BKV_H2C_FP_ADD,
    BKV_H2C_FP_SUB,
    BKV_H2C_FP_MUL,
    BKV_H2C_FP_SQR,
    BKV_H2C_FP_INV,
    BKV_H2C_FP_SQRT_RATIO,
    BKV_H2C_FP_REDUCE,
    BKV_H2C_FN_REDUCE,
};

int bkv_h2c_field_op(enum bkv_h2c_field_op op, const uint8_t *a, size_t a_len, const uint8_t *b,
                     uint8_t out[static BKV_H2C_FIELD_LEN], int *flag);

#endif
