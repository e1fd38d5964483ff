/*
 * Our own P-256 field arithmetic and affine point helpers, for proto/ only.
 *
 * Field elements (bkv_fe) are four 64-bit limbs, least significant first.
 * Arithmetic modulo p works on Montgomery-form values (R = 2^256); the only
 * arithmetic modulo the group order n is the wide reduction of hash_to_field.
 * Everything here is constant time in the values (fixed limbs, masks, no
 * branch or index on a value); exponents are public constants. Masks are
 * uint64_t, all-ones for true and zero for false.
 *
 * Users: h2c.c (hash-to-curve, which runs on password-derived values) and
 * group.c (decompression of public points). No function keeps state: all are
 * reentrant and may run on any thread. Pointers are borrowed for the call;
 * r may alias an input wherever one is given.
 */
#ifndef BKV_PROTO_P256_H
#define BKV_PROTO_P256_H

#include <stddef.h>
#include <stdint.h>

#define BKV_FE_LEN 32 /* a field element or scalar, big-endian */

typedef struct {
    uint64_t v[4];
} bkv_fe;

/* A modulus with its Montgomery constants: p (the field) or n (the order). */
struct bkv_fe_modulus;
extern const struct bkv_fe_modulus bkv_fe_mod_p;
extern const struct bkv_fe_modulus bkv_fe_mod_n;

/* ---- representation (any value, plain form) ---- */

void bkv_fe_from_bytes(bkv_fe *r, const uint8_t in[static BKV_FE_LEN]);
void bkv_fe_to_bytes(uint8_t out[static BKV_FE_LEN], const bkv_fe *a);

/* r = mask ? a : r, for mask all-ones or all-zeros. */
void bkv_fe_cmov(bkv_fe *r, const bkv_fe *a, uint64_t mask);

/* All-ones if a == 0 / a == b / a < p (a is a canonical field element). */
uint64_t bkv_fe_zero_mask(const bkv_fe *a);
uint64_t bkv_fe_eq_mask(const bkv_fe *a, const bkv_fe *b);
uint64_t bkv_fe_below_p_mask(const bkv_fe *a);

/*
 * r = OS2IP(in[0..47]) mod m (bkv_fe_mod_p or bkv_fe_mod_n), canonical and
 * in plain form: hash_to_field's reduction of L = 48 uniform bytes.
 */
void bkv_fe_reduce_wide(bkv_fe *r, const uint8_t in[static 48], const struct bkv_fe_modulus *m);

/* ---- arithmetic modulo p on Montgomery-form values ---- */

/* Plain a (< p) into Montgomery form, and back. */
void bkv_fe_to_mont(bkv_fe *r, const bkv_fe *a);
void bkv_fe_from_mont(bkv_fe *r, const bkv_fe *a);

void bkv_fe_add(bkv_fe *r, const bkv_fe *a, const bkv_fe *b);
void bkv_fe_sub(bkv_fe *r, const bkv_fe *a, const bkv_fe *b);
void bkv_fe_neg(bkv_fe *r, const bkv_fe *a);
void bkv_fe_mul(bkv_fe *r, const bkv_fe *a, const bkv_fe *b);
void bkv_fe_sqr(bkv_fe *r, const bkv_fe *a);

/* r = a^e for a public exponent e (plain form, not secret). */
void bkv_fe_pow(bkv_fe *r, const bkv_fe *a, const bkv_fe *e);

/* r = a^(p-2): 1/a for a != 0, and 0 for a = 0. */
void bkv_fe_inv(bkv_fe *r, const bkv_fe *a);

/* sgn0 (RFC 9380): the parity of the plain form of a, 0 or 1. */
uint64_t bkv_fe_sgn0(const bkv_fe *a);

/* ---- the curve y^2 = x^3 + a x + b, affine coordinates in Montgomery form ---- */

/* A = -3, B and 1 in Montgomery form. */
struct bkv_p256_curve {
    bkv_fe a, b, one;
};

void bkv_p256_curve_init(struct bkv_p256_curve *c);

/* All-ones if (x, y) satisfies the curve equation. */
uint64_t bkv_p256_affine_on_curve(const bkv_fe *x, const bkv_fe *y);

/*
 * (x3, y3) = (x1, y1) + (x2, y2) for affine points on the curve, none the
 * identity, equal points included. Returns all-ones if the sum is the
 * identity, with x3 = y3 = 0. x3, y3 may alias the inputs.
 */
uint64_t bkv_p256_affine_add(bkv_fe *x3, bkv_fe *y3, const bkv_fe *x1, const bkv_fe *y1,
                             const bkv_fe *x2, const bkv_fe *y2);

/* 04 || x || y from Montgomery-form coordinates. */
void bkv_p256_affine_encode(uint8_t out[static 65], const bkv_fe *x, const bkv_fe *y);

/*
 * 04 || x || y into Montgomery form. BKV_ERR_POINT for another prefix, a
 * coordinate >= p or a point off the curve (decided without branching on
 * the coordinates).
 */
int bkv_p256_affine_decode(bkv_fe *x, bkv_fe *y, const uint8_t in[static 65]);

/*
 * Decompress a public point: in = 02/03 || x, out = 04 || x || y. Rejects,
 * with BKV_ERR_POINT, any other prefix, x >= p, and an x for which
 * x^3 - 3x + b has no square root. Variable time: only for public points.
 */
int bkv_p256_decompress(const uint8_t in[static 33], uint8_t out[static 65]);

#endif
