/*
 * RFC 9380 hash-to-curve for P-256 on our own constant-time field code.
 *
 * Normal path: expand_message_xmd(SHA-256) -> 48-byte blocks reduced modulo p
 * (or n) -> straight-line SSWU map (App. F.2, sqrt_ratio_3mod4) -> affine
 * addition of the two points with masks instead of branches. The input is
 * derived from a password, so nothing here branches on or indexes by a value
 * derived from it; exponents (c1, p-2) are public constants.
 * Failure modes: bad lengths or arguments give BKV_ERR_LENGTH / BKV_ERR_INVALID,
 * a sum at the identity gives BKV_ERR_POINT, OpenSSL failures BKV_ERR_CRYPTO.
 * Every buffer derived from the message is wiped before returning.
 */
#include "h2c.h"

#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "err.h"
#include "util.h"

__extension__ typedef unsigned __int128 u128;

/* A residue modulo a 256-bit odd modulus: four 64-bit limbs, least significant first. */
typedef struct {
    uint64_t v[4];
} fe;

/* A modulus with its Montgomery constants (R = 2^256). */
struct modulus {
    fe m;
    uint64_t m0inv; /* -m^-1 mod 2^64 */
    fe rr;          /* R^2 mod m */
};

static const struct modulus mod_p = {
    .m = {{0xffffffffffffffff, 0x00000000ffffffff, 0x0000000000000000, 0xffffffff00000001}},
    .m0inv = 0x1,
    .rr = {{0x0000000000000003, 0xfffffffbffffffff, 0xfffffffffffffffe, 0x00000004fffffffd}},
};

static const struct modulus mod_n = {
    .m = {{0xf3b9cac2fc632551, 0xbce6faada7179e84, 0xffffffffffffffff, 0xffffffff00000000}},
    .m0inv = 0xccd1c8aaee00bc4f,
    .rr = {{0x83244c95be79eea2, 0x4699799c49bd6fa6, 0x2845b2392b6bec59, 0x66e12d94f3d95620}},
};

/* Public exponents and curve constants (plain, not Montgomery, form). */
static const fe p_minus_2 = {
    {0xfffffffffffffffd, 0x00000000ffffffff, 0x0000000000000000, 0xffffffff00000001}};
/* c1 = (p - 3) / 4 and c2 = sqrt(-Z) = sqrt(10) of sqrt_ratio_3mod4. */
static const fe sqrt_c1 = {
    {0xffffffffffffffff, 0x000000003fffffff, 0x4000000000000000, 0x3fffffffc0000000}};
static const fe sqrt_c2 = {
    {0x2ccd3427e433c47f, 0x7b8d1ff84c55d5b6, 0xc978fc675180aab2, 0xda538e3be1d89b99}};
static const fe curve_b = {
    {0x3bce3c3e27d2604b, 0x651d06b0cc53b0f6, 0xb3ebbd55769886bc, 0x5ac635d8aa3a93e7}};
static const fe small_one = {{1, 0, 0, 0}};
static const fe small_three = {{3, 0, 0, 0}};
static const fe small_ten = {{10, 0, 0, 0}};

/* Hide a mask from the optimiser so that selections stay branch-free. */
static uint64_t barrier(uint64_t x)
{
    __asm__("" : "+r"(x));
    return x;
}

static void fe_from_bytes(fe *r, const uint8_t in[32])
{
    for (int i = 0; i < 4; i++) {
        uint64_t w = 0;
        for (int j = 0; j < 8; j++)
            w = w << 8 | in[(3 - i) * 8 + j];
        r->v[i] = w;
    }
}

static void fe_to_bytes(uint8_t out[32], const fe *a)
{
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 8; j++)
            out[(3 - i) * 8 + j] = (uint8_t)(a->v[i] >> (56 - 8 * j));
}

/* r = a - b over 256 bits; returns the borrow (0 or 1). */
static uint64_t fe_sub_raw(fe *r, const fe *a, const fe *b)
{
    uint64_t borrow = 0;

    for (int i = 0; i < 4; i++) {
        u128 d = (u128)a->v[i] - b->v[i] - borrow;
        r->v[i] = (uint64_t)d;
        borrow = (uint64_t)(d >> 64) & 1;
    }
    return borrow;
}

/* r = mask ? a : r, for mask all-zeros or all-ones. */
static void fe_cmov(fe *r, const fe *a, uint64_t mask)
{
    mask = barrier(mask);
    for (int i = 0; i < 4; i++)
        r->v[i] = (r->v[i] & ~mask) | (a->v[i] & mask);
}

/* All-ones if a == 0, else 0. */
static uint64_t fe_zero_mask(const fe *a)
{
    uint64_t x = a->v[0] | a->v[1] | a->v[2] | a->v[3];
    return ((x | (0 - x)) >> 63) - 1;
}

static uint64_t fe_eq_mask(const fe *a, const fe *b)
{
    fe d;

    for (int i = 0; i < 4; i++)
        d.v[i] = a->v[i] ^ b->v[i];
    return fe_zero_mask(&d);
}

/* All-ones if a < m (a is canonical). */
static uint64_t fe_lt_mask(const fe *a, const fe *m)
{
    fe d;

    return 0 - fe_sub_raw(&d, a, m);
}

/* r = (a + carry * 2^256) mod m for a value below 2m. r may alias a. */
static void mod_reduce_once(fe *r, const fe *a, uint64_t carry, const struct modulus *m)
{
    fe s;
    uint64_t borrow = fe_sub_raw(&s, a, &m->m);
    uint64_t keep = 0 - (borrow & (carry ^ 1));

    fe_cmov(&s, a, keep);
    *r = s;
}

static void mod_add(fe *r, const fe *a, const fe *b, const struct modulus *m)
{
    fe s;
    uint64_t carry = 0;

    for (int i = 0; i < 4; i++) {
        u128 t = (u128)a->v[i] + b->v[i] + carry;
        s.v[i] = (uint64_t)t;
        carry = (uint64_t)(t >> 64);
    }
    mod_reduce_once(r, &s, carry, m);
}

static void mod_sub(fe *r, const fe *a, const fe *b, const struct modulus *m)
{
    fe d;
    uint64_t mask = 0 - fe_sub_raw(&d, a, b), carry = 0;

    mask = barrier(mask);
    for (int i = 0; i < 4; i++) {
        u128 t = (u128)d.v[i] + (m->m.v[i] & mask) + carry;
        d.v[i] = (uint64_t)t;
        carry = (uint64_t)(t >> 64);
    }
    *r = d;
}

/*
 * Montgomery multiplication (CIOS): r = a * b / 2^256 mod m, for a, b < m.
 * The result is canonical. r may alias a or b.
 */
static void mont_mul(fe *r, const fe *a, const fe *b, const struct modulus *m)
{
    uint64_t t[6] = {0};

    for (int i = 0; i < 4; i++) {
        uint64_t carry = 0, q;
        u128 acc;

        for (int j = 0; j < 4; j++) {
            acc = (u128)a->v[j] * b->v[i] + t[j] + carry;
            t[j] = (uint64_t)acc;
            carry = (uint64_t)(acc >> 64);
        }
        acc = (u128)t[4] + carry;
        t[4] = (uint64_t)acc;
        t[5] = (uint64_t)(acc >> 64);

        q = t[0] * m->m0inv;
        acc = (u128)q * m->m.v[0] + t[0];
        carry = (uint64_t)(acc >> 64);
        for (int j = 1; j < 4; j++) {
            acc = (u128)q * m->m.v[j] + t[j] + carry;
            t[j - 1] = (uint64_t)acc;
            carry = (uint64_t)(acc >> 64);
        }
        acc = (u128)t[4] + carry;
        t[3] = (uint64_t)acc;
        t[4] = t[5] + (uint64_t)(acc >> 64);
    }
    mod_reduce_once(r, &(fe){{t[0], t[1], t[2], t[3]}}, t[4], m);
}

static void to_mont(fe *r, const fe *a, const struct modulus *m)
{
    mont_mul(r, a, &m->rr, m);
}

static void from_mont(fe *r, const fe *a, const struct modulus *m)
{
    mont_mul(r, a, &small_one, m);
}

/* r = a^e for a public exponent e; a and r in Montgomery form. */
static void mont_pow(fe *r, const fe *a, const fe *e, const struct modulus *m)
{
    fe acc;

    to_mont(&acc, &small_one, m);
    for (int i = 255; i >= 0; i--) {
        mont_mul(&acc, &acc, &acc, m);
        if ((e->v[i / 64] >> (i % 64)) & 1) /* public exponent bit */
            mont_mul(&acc, &acc, a, m);
    }
    *r = acc;
}

/*
 * r = OS2IP(in[0..47]) mod m, canonical and in plain form. With in = hi * 2^256
 * + lo (hi < 2^128): hi * 2^256 mod m is one Montgomery product with R^2, and
 * lo < 2^256 < 2m needs one conditional subtraction.
 */
static void mod_reduce_wide(fe *r, const uint8_t in[48], const struct modulus *m)
{
    uint8_t hi_bytes[32] = {0};
    fe hi, lo;

    memcpy(hi_bytes + 16, in, 16);
    fe_from_bytes(&hi, hi_bytes);
    fe_from_bytes(&lo, in + 16);
    mont_mul(&hi, &hi, &m->rr, m);
    mod_reduce_once(&lo, &lo, 0, m);
    mod_add(r, &hi, &lo, m);
    bkv_wipe(hi_bytes, sizeof(hi_bytes));
    bkv_wipe(&hi, sizeof(hi));
    bkv_wipe(&lo, sizeof(lo));
}

/* Field operations modulo p, on Montgomery-form values. */
static void fp_add(fe *r, const fe *a, const fe *b)
{
    mod_add(r, a, b, &mod_p);
}

static void fp_sub(fe *r, const fe *a, const fe *b)
{
    mod_sub(r, a, b, &mod_p);
}

static void fp_neg(fe *r, const fe *a)
{
    static const fe zero;

    mod_sub(r, &zero, a, &mod_p);
}

static void fp_mul(fe *r, const fe *a, const fe *b)
{
    mont_mul(r, a, b, &mod_p);
}

static void fp_sqr(fe *r, const fe *a)
{
    mont_mul(r, a, a, &mod_p);
}

/* r = a^(p-2), so 1/a for a != 0 and 0 for a = 0. */
static void fp_inv(fe *r, const fe *a)
{
    mont_pow(r, a, &p_minus_2, &mod_p);
}

/* The constant c (plain form) in Montgomery form. */
static void fp_const(fe *r, const fe *c)
{
    to_mont(r, c, &mod_p);
}

/* sgn0 of a Montgomery-form value: the parity of its plain form. */
static uint64_t fp_sgn0(const fe *a)
{
    fe t;

    from_mont(&t, a, &mod_p);
    return t.v[0] & 1;
}

/*
 * sqrt_ratio_3mod4 (RFC 9380 F.2.1.2): y = sqrt(u/v) with *is_qr all-ones if
 * u/v is square, else y = sqrt(Z * u/v) and *is_qr = 0. Montgomery form.
 */
static void sqrt_ratio(fe *y, uint64_t *is_qr, const fe *u, const fe *v)
{
    struct {
        fe tv1, tv2, tv3, y1, y2, c2;
    } t;

    fp_sqr(&t.tv1, v);
    fp_mul(&t.tv2, u, v);
    fp_mul(&t.tv1, &t.tv1, &t.tv2);
    mont_pow(&t.y1, &t.tv1, &sqrt_c1, &mod_p);
    fp_mul(&t.y1, &t.y1, &t.tv2);
    fp_const(&t.c2, &sqrt_c2);
    fp_mul(&t.y2, &t.y1, &t.c2);
    fp_sqr(&t.tv3, &t.y1);
    fp_mul(&t.tv3, &t.tv3, v);
    *is_qr = fe_eq_mask(&t.tv3, u);
    *y = t.y2;
    fe_cmov(y, &t.y1, *is_qr);
    bkv_wipe(&t, sizeof(t));
}

/* The curve constants A = -3, B and Z = -10 in Montgomery form. */
struct curve_consts {
    fe a, b, z, one;
};

static void curve_consts(struct curve_consts *c)
{
    fe t;

    fp_const(&c->one, &small_one);
    fp_const(&t, &small_three);
    fp_neg(&c->a, &t);
    fp_const(&c->b, &curve_b);
    fp_const(&t, &small_ten);
    fp_neg(&c->z, &t);
}

/*
 * map_to_curve_simple_swu (RFC 9380 F.2, straight-line), u, x and y in
 * Montgomery form. Both candidates are always computed; the choice is a mask.
 */
static void map_to_curve(fe *x, fe *y, const fe *u)
{
    struct curve_consts c;
    struct {
        fe tv1, tv2, tv3, tv4, tv5, tv6, y1, neg;
    } t;
    uint64_t is_gx1_square, e1;

    curve_consts(&c);
    fp_sqr(&t.tv1, u);
    fp_mul(&t.tv1, &c.z, &t.tv1);
    fp_sqr(&t.tv2, &t.tv1);
    fp_add(&t.tv2, &t.tv2, &t.tv1);
    fp_add(&t.tv3, &t.tv2, &c.one);
    fp_mul(&t.tv3, &c.b, &t.tv3);
    fp_neg(&t.tv4, &t.tv2);
    fe_cmov(&t.tv4, &c.z, fe_zero_mask(&t.tv2));
    fp_mul(&t.tv4, &c.a, &t.tv4);
    fp_sqr(&t.tv2, &t.tv3);
    fp_sqr(&t.tv6, &t.tv4);
    fp_mul(&t.tv5, &c.a, &t.tv6);
    fp_add(&t.tv2, &t.tv2, &t.tv5);
    fp_mul(&t.tv2, &t.tv2, &t.tv3);
    fp_mul(&t.tv6, &t.tv6, &t.tv4);
    fp_mul(&t.tv5, &c.b, &t.tv6);
    fp_add(&t.tv2, &t.tv2, &t.tv5);
    fp_mul(x, &t.tv1, &t.tv3);
    sqrt_ratio(&t.y1, &is_gx1_square, &t.tv2, &t.tv6);
    fp_mul(y, &t.tv1, u);
    fp_mul(y, y, &t.y1);
    fe_cmov(x, &t.tv3, is_gx1_square);
    fe_cmov(y, &t.y1, is_gx1_square);
    e1 = 0 - (1 ^ fp_sgn0(u) ^ fp_sgn0(y));
    fp_neg(&t.neg, y);
    fe_cmov(&t.neg, y, e1);
    *y = t.neg;
    fp_inv(&t.tv5, &t.tv4);
    fp_mul(x, x, &t.tv5);
    bkv_wipe(&t, sizeof(t));
}

/* All-ones if (x, y) (Montgomery form) satisfies y^2 = x^3 + A x + B. */
static uint64_t on_curve_mask(const fe *x, const fe *y)
{
    struct curve_consts c;
    fe lhs, rhs;

    curve_consts(&c);
    fp_sqr(&lhs, y);
    fp_sqr(&rhs, x);
    fp_add(&rhs, &rhs, &c.a);
    fp_mul(&rhs, &rhs, x);
    fp_add(&rhs, &rhs, &c.b);
    return fe_eq_mask(&lhs, &rhs);
}

/*
 * (x3, y3) = (x1, y1) + (x2, y2) for affine points on the curve, none the
 * identity. The chord slope and the tangent slope (for equal points) are both
 * computed and selected with a mask; one inversion by exponentiation. Returns
 * all-ones if the sum is the identity (x1 = x2, y1 != y2), with x3 = y3 = 0.
 * P-256 has prime order, so no point has y = 0 and the tangent is defined.
 */
static uint64_t point_add(fe *x3, fe *y3, const fe *x1, const fe *y1, const fe *x2, const fe *y2)
{
    static const fe zero;
    struct curve_consts c;
    struct {
        fe num, den, dnum, dden, lambda, rx, ry;
    } t;
    uint64_t same_x = fe_eq_mask(x1, x2), same_y = fe_eq_mask(y1, y2), identity;

    curve_consts(&c);
    fp_sub(&t.num, y2, y1);
    fp_sub(&t.den, x2, x1);
    fp_sqr(&t.dnum, x1);
    fp_add(&t.dden, &t.dnum, &t.dnum);
    fp_add(&t.dnum, &t.dden, &t.dnum);
    fp_add(&t.dnum, &t.dnum, &c.a);
    fp_add(&t.dden, y1, y1);
    fe_cmov(&t.num, &t.dnum, same_x);
    fe_cmov(&t.den, &t.dden, same_x);
    fp_inv(&t.den, &t.den);
    fp_mul(&t.lambda, &t.num, &t.den);
    fp_sqr(&t.rx, &t.lambda);
    fp_sub(&t.rx, &t.rx, x1);
    fp_sub(&t.rx, &t.rx, x2);
    fp_sub(&t.ry, x1, &t.rx);
    fp_mul(&t.ry, &t.ry, &t.lambda);
    fp_sub(&t.ry, &t.ry, y1);
    identity = same_x & ~same_y;
    fe_cmov(&t.rx, &zero, identity);
    fe_cmov(&t.ry, &zero, identity);
    *x3 = t.rx;
    *y3 = t.ry;
    bkv_wipe(&t, sizeof(t));
    return identity;
}

/* 04 || x || y from Montgomery-form coordinates. */
static void point_to_bytes(uint8_t out[65], const fe *x, const fe *y)
{
    fe t;

    out[0] = 0x04;
    from_mont(&t, x, &mod_p);
    fe_to_bytes(out + 1, &t);
    from_mont(&t, y, &mod_p);
    fe_to_bytes(out + 33, &t);
    bkv_wipe(&t, sizeof(t));
}

/* Decode 04 || x || y into Montgomery form; BKV_ERR_POINT unless valid. */
static int point_from_bytes(fe *x, fe *y, const uint8_t in[65])
{
    fe px, py;
    uint64_t ok;

    fe_from_bytes(&px, in + 1);
    fe_from_bytes(&py, in + 33);
    ok = fe_lt_mask(&px, &mod_p.m) & fe_lt_mask(&py, &mod_p.m);
    fp_const(x, &px);
    fp_const(y, &py);
    ok &= on_curve_mask(x, y);
    return (in[0] == 0x04 && ok != 0) ? BKV_OK : BKV_ERR_POINT;
}

int bkv_h2c_expand_xmd(const struct bkv_buf *msg, size_t count, const uint8_t *dst, size_t dst_len,
                       uint8_t *out, size_t out_len)
{
    static const uint8_t z_pad[64];
    static const char oversize[] = "H2C-OVERSIZE-DST-";
    uint8_t dst_hash[BKV_HASH_LEN], b0[BKV_HASH_LEN], bi[BKV_HASH_LEN], lib[2], zero = 0;
    uint8_t dst_len_byte, idx;
    EVP_MD_CTX *ctx = NULL;
    size_t ell;
    int rc;

    if (out == NULL || dst == NULL || dst_len == 0 || (msg == NULL && count > 0))
        return BKV_ERR_INVALID;
    for (size_t i = 0; i < count; i++)
        if (msg[i].p == NULL && msg[i].n > 0)
            return BKV_ERR_INVALID;
    ell = (out_len + BKV_HASH_LEN - 1) / BKV_HASH_LEN;
    if (out_len == 0 || out_len > 65535 || ell > 255)
        return BKV_ERR_LENGTH;
    if (dst_len > 255) {
        struct bkv_buf parts[] = {{(const uint8_t *)oversize, sizeof(oversize) - 1},
                                  {dst, dst_len}};
        rc = bkv_sha256(parts, 2, dst_hash);
        if (rc != BKV_OK)
            goto out;
        dst = dst_hash;
        dst_len = BKV_HASH_LEN;
    }
    dst_len_byte = (uint8_t)dst_len;
    bkv_put_u16(lib, (uint16_t)out_len);

    /* b_0 = H(Z_pad || msg || I2OSP(len_in_bytes, 2) || 0x00 || DST_prime) */
    rc = BKV_ERR_NOMEM;
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        goto out;
    rc = BKV_ERR_CRYPTO;
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, z_pad, sizeof(z_pad)) != 1)
        goto out;
    for (size_t i = 0; i < count; i++)
        if (msg[i].n > 0 && EVP_DigestUpdate(ctx, msg[i].p, msg[i].n) != 1)
            goto out;
    if (EVP_DigestUpdate(ctx, lib, 2) != 1 || EVP_DigestUpdate(ctx, &zero, 1) != 1 ||
        EVP_DigestUpdate(ctx, dst, dst_len) != 1 || EVP_DigestUpdate(ctx, &dst_len_byte, 1) != 1 ||
        EVP_DigestFinal_ex(ctx, b0, NULL) != 1)
        goto out;

    /* b_i = H((b_0 XOR b_(i-1)) || I2OSP(i, 1) || DST_prime), with b_0 alone for i = 1 */
    memset(bi, 0, sizeof(bi));
    for (size_t i = 1; i <= ell; i++) {
        size_t take = out_len - (i - 1) * BKV_HASH_LEN;
        struct bkv_buf parts[] = {
            {bi, BKV_HASH_LEN}, {&idx, 1}, {dst, dst_len}, {&dst_len_byte, 1}};

        for (size_t j = 0; j < BKV_HASH_LEN; j++)
            bi[j] ^= b0[j];
        idx = (uint8_t)i;
        rc = bkv_sha256(parts, 4, bi);
        if (rc != BKV_OK)
            goto out;
        memcpy(out + (i - 1) * BKV_HASH_LEN, bi, take < BKV_HASH_LEN ? take : BKV_HASH_LEN);
    }
    rc = BKV_OK;
out:
    if (rc != BKV_OK)
        bkv_wipe(out, out_len);
    EVP_MD_CTX_free(ctx);
    bkv_wipe(b0, sizeof(b0));
    bkv_wipe(bi, sizeof(bi));
    return rc;
}

/* Up to two elements reduced modulo m, plain form. */
static int hash_to_field(const struct bkv_buf *msg, size_t count, const uint8_t *dst,
                         size_t dst_len, fe *u, size_t u_count, const struct modulus *m)
{
    uint8_t uniform[2 * BKV_H2C_L];
    int rc;

    if (u_count < 1 || u_count > 2)
        return BKV_ERR_INVALID;
    rc = bkv_h2c_expand_xmd(msg, count, dst, dst_len, uniform, u_count * BKV_H2C_L);
    if (rc != BKV_OK)
        return rc;
    for (size_t i = 0; i < u_count; i++)
        mod_reduce_wide(&u[i], uniform + i * BKV_H2C_L, m);
    bkv_wipe(uniform, sizeof(uniform));
    return BKV_OK;
}

int bkv_h2c_hash_to_field(const struct bkv_buf *msg, size_t count, const uint8_t *dst,
                          size_t dst_len, uint8_t *u, size_t u_count)
{
    fe e[2];
    int rc;

    if (u == NULL)
        return BKV_ERR_INVALID;
    rc = hash_to_field(msg, count, dst, dst_len, e, u_count, &mod_p);
    if (rc == BKV_OK)
        for (size_t i = 0; i < u_count; i++)
            fe_to_bytes(u + i * BKV_H2C_FIELD_LEN, &e[i]);
    bkv_wipe(e, sizeof(e));
    return rc;
}

int bkv_hash_to_scalar(const struct bkv_buf *msg, size_t count, const uint8_t *dst, size_t dst_len,
                       uint8_t out[static BKV_P256_SCALAR_LEN])
{
    fe s;
    int rc = hash_to_field(msg, count, dst, dst_len, &s, 1, &mod_n);

    if (rc == BKV_OK)
        fe_to_bytes(out, &s);
    bkv_wipe(&s, sizeof(s));
    return rc;
}

int bkv_h2c_map_to_curve(const uint8_t u[static BKV_H2C_FIELD_LEN],
                         uint8_t out[static BKV_P256_UNCOMPRESSED_LEN])
{
    fe e, x, y;
    int rc = BKV_ERR_INVALID;

    fe_from_bytes(&e, u);
    if (fe_lt_mask(&e, &mod_p.m) == 0)
        goto out;
    fp_const(&e, &e);
    map_to_curve(&x, &y, &e);
    point_to_bytes(out, &x, &y);
    rc = BKV_OK;
out:
    bkv_wipe(&e, sizeof(e));
    bkv_wipe(&x, sizeof(x));
    bkv_wipe(&y, sizeof(y));
    return rc;
}

int bkv_h2c_point_add(const uint8_t a[static BKV_P256_UNCOMPRESSED_LEN],
                      const uint8_t b[static BKV_P256_UNCOMPRESSED_LEN],
                      uint8_t out[static BKV_P256_UNCOMPRESSED_LEN])
{
    fe x1, y1, x2, y2, x3, y3;
    int rc = point_from_bytes(&x1, &y1, a);

    if (rc == BKV_OK)
        rc = point_from_bytes(&x2, &y2, b);
    if (rc == BKV_OK && point_add(&x3, &y3, &x1, &y1, &x2, &y2) != 0)
        rc = BKV_ERR_POINT;
    if (rc == BKV_OK)
        point_to_bytes(out, &x3, &y3);
    return rc;
}

/*
 * hash_to_curve (ro = 1) or encode_to_curve (ro = 0) into affine Montgomery
 * coordinates. The identity is reported, once the arithmetic is done, as
 * BKV_ERR_POINT.
 */
static int hash_affine(const struct bkv_buf *msg, size_t count, const uint8_t *dst, size_t dst_len,
                       int ro, fe *x, fe *y)
{
    struct {
        fe u[2], x1, y1;
    } t;
    uint64_t identity = 0;
    int rc = hash_to_field(msg, count, dst, dst_len, t.u, ro ? 2 : 1, &mod_p);

    if (rc != BKV_OK)
        return rc;
    fp_const(&t.u[0], &t.u[0]);
    map_to_curve(x, y, &t.u[0]);
    if (ro) {
        fp_const(&t.u[1], &t.u[1]);
        map_to_curve(&t.x1, &t.y1, &t.u[1]);
        identity = point_add(x, y, x, y, &t.x1, &t.y1);
    }
    bkv_wipe(&t, sizeof(t));
    return identity != 0 ? BKV_ERR_POINT : BKV_OK;
}

int bkv_hash_to_curve(const struct bkv_buf *msg, size_t count, const uint8_t *dst, size_t dst_len,
                      uint8_t out[static BKV_P256_UNCOMPRESSED_LEN])
{
    fe x, y;
    int rc = hash_affine(msg, count, dst, dst_len, 1, &x, &y);

    if (rc == BKV_OK)
        point_to_bytes(out, &x, &y);
    bkv_wipe(&x, sizeof(x));
    bkv_wipe(&y, sizeof(y));
    return rc;
}

int bkv_encode_to_curve(const struct bkv_buf *msg, size_t count, const uint8_t *dst, size_t dst_len,
                        uint8_t out[static BKV_P256_UNCOMPRESSED_LEN])
{
    fe x, y;
    int rc = hash_affine(msg, count, dst, dst_len, 0, &x, &y);

    if (rc == BKV_OK)
        point_to_bytes(out, &x, &y);
    bkv_wipe(&x, sizeof(x));
    bkv_wipe(&y, sizeof(y));
    return rc;
}

/*
 * The hashing, the map and the addition above are our constant-time code. Only
 * this last step runs on OpenSSL's BIGNUM code: BN_bin2bn and the on-curve
 * check inside EC_POINT_set_affine_coordinates are not guaranteed constant time
 * in the coordinates of P (BN_FLG_CONSTTIME is set where OpenSSL honours it).
 */
int bkv_hash_to_curve_point(const struct bkv_buf *msg, size_t count, const uint8_t *dst,
                            size_t dst_len, EC_POINT *out)
{
    const EC_GROUP *g = bkv_p256_group();
    uint8_t enc[BKV_P256_UNCOMPRESSED_LEN];
    BN_CTX *bn = NULL;
    BIGNUM *x = NULL, *y = NULL;
    int rc;

    if (out == NULL)
        return BKV_ERR_INVALID;
    if (g == NULL)
        return BKV_ERR_NOMEM;
    rc = bkv_hash_to_curve(msg, count, dst, dst_len, enc);
    if (rc != BKV_OK)
        goto out;
    rc = BKV_ERR_NOMEM;
    bn = BN_CTX_secure_new();
    x = BN_secure_new();
    y = BN_secure_new();
    if (bn == NULL || x == NULL || y == NULL)
        goto out;
    BN_set_flags(x, BN_FLG_CONSTTIME);
    BN_set_flags(y, BN_FLG_CONSTTIME);
    rc = BKV_ERR_CRYPTO;
    if (BN_bin2bn(enc + 1, 32, x) == NULL || BN_bin2bn(enc + 33, 32, y) == NULL)
        goto out;
    if (EC_POINT_set_affine_coordinates(g, out, x, y, bn) != 1)
        goto out;
    rc = BKV_OK;
out:
    ERR_clear_error();
    BN_clear_free(x);
    BN_clear_free(y);
    BN_CTX_free(bn);
    bkv_wipe(enc, sizeof(enc));
    return rc;
}

int bkv_h2c_field_op(enum bkv_h2c_field_op op, const uint8_t *a, size_t a_len, const uint8_t *b,
                     uint8_t out[static BKV_H2C_FIELD_LEN], int *flag)
{
    fe x, y, r;
    uint64_t qr;
    int wide = op == BKV_H2C_FP_REDUCE || op == BKV_H2C_FN_REDUCE;
    int binary = op == BKV_H2C_FP_ADD || op == BKV_H2C_FP_SUB || op == BKV_H2C_FP_MUL ||
                 op == BKV_H2C_FP_SQRT_RATIO;

    if (a == NULL || a_len != (wide ? 48u : 32u) || (binary && b == NULL) ||
        (op == BKV_H2C_FP_SQRT_RATIO && flag == NULL))
        return BKV_ERR_INVALID;
    if (wide) {
        mod_reduce_wide(&r, a, op == BKV_H2C_FP_REDUCE ? &mod_p : &mod_n);
        fe_to_bytes(out, &r);
        return BKV_OK;
    }
    fe_from_bytes(&x, a);
    fe_from_bytes(&y, binary ? b : a);
    if ((fe_lt_mask(&x, &mod_p.m) & fe_lt_mask(&y, &mod_p.m)) == 0)
        return BKV_ERR_INVALID;
    fp_const(&x, &x);
    fp_const(&y, &y);
    switch (op) {
    case BKV_H2C_FP_ADD:
        fp_add(&r, &x, &y);
        break;
    case BKV_H2C_FP_SUB:
        fp_sub(&r, &x, &y);
        break;
    case BKV_H2C_FP_MUL:
        fp_mul(&r, &x, &y);
        break;
    case BKV_H2C_FP_SQR:
        fp_sqr(&r, &x);
        break;
    case BKV_H2C_FP_INV:
        fp_inv(&r, &x);
        break;
    case BKV_H2C_FP_SQRT_RATIO:
        sqrt_ratio(&r, &qr, &x, &y);
        *flag = qr != 0;
        break;
    default:
        return BKV_ERR_INVALID;
    }
    from_mont(&r, &r, &mod_p);
    fe_to_bytes(out, &r);
    return BKV_OK;
}
