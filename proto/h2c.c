/*
 * RFC 9380 hash-to-curve for P-256 on our own constant-time field code (p256.c).
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
#include "p256.h"
#include "util.h"

/* c1 = (p - 3) / 4 and c2 = sqrt(-Z) = sqrt(10) of sqrt_ratio_3mod4 (plain form). */
static const bkv_fe sqrt_c1 = {
    {0xffffffffffffffff, 0x000000003fffffff, 0x4000000000000000, 0x3fffffffc0000000}};
static const bkv_fe sqrt_c2 = {
    {0x2ccd3427e433c47f, 0x7b8d1ff84c55d5b6, 0xc978fc675180aab2, 0xda538e3be1d89b99}};
static const bkv_fe small_ten = {{10, 0, 0, 0}};

/*
 * sqrt_ratio_3mod4 (RFC 9380 F.2.1.2): y = sqrt(u/v) with *is_qr all-ones if
 * u/v is square, else y = sqrt(Z * u/v) and *is_qr = 0. Montgomery form.
 */
static void sqrt_ratio(bkv_fe *y, uint64_t *is_qr, const bkv_fe *u, const bkv_fe *v)
{
    struct {
        bkv_fe tv1, tv2, tv3, y1, y2, c2;
    } t;

    bkv_fe_sqr(&t.tv1, v);
    bkv_fe_mul(&t.tv2, u, v);
    bkv_fe_mul(&t.tv1, &t.tv1, &t.tv2);
    bkv_fe_pow(&t.y1, &t.tv1, &sqrt_c1);
    bkv_fe_mul(&t.y1, &t.y1, &t.tv2);
    bkv_fe_to_mont(&t.c2, &sqrt_c2);
    bkv_fe_mul(&t.y2, &t.y1, &t.c2);
    bkv_fe_sqr(&t.tv3, &t.y1);
    bkv_fe_mul(&t.tv3, &t.tv3, v);
    *is_qr = bkv_fe_eq_mask(&t.tv3, u);
    *y = t.y2;
    bkv_fe_cmov(y, &t.y1, *is_qr);
    bkv_wipe(&t, sizeof(t));
}

/*
 * map_to_curve_simple_swu (RFC 9380 F.2, straight-line), u, x and y in
 * Montgomery form, with Z = -10. Both candidates are always computed; the
 * choice is a mask.
 */
static void map_to_curve(bkv_fe *x, bkv_fe *y, const bkv_fe *u)
{
    struct bkv_p256_curve c;
    struct {
        bkv_fe z, tv1, tv2, tv3, tv4, tv5, tv6, y1, neg;
    } t;
    uint64_t is_gx1_square, e1;

    bkv_p256_curve_init(&c);
    bkv_fe_to_mont(&t.z, &small_ten);
    bkv_fe_neg(&t.z, &t.z);
    bkv_fe_sqr(&t.tv1, u);
    bkv_fe_mul(&t.tv1, &t.z, &t.tv1);
    bkv_fe_sqr(&t.tv2, &t.tv1);
    bkv_fe_add(&t.tv2, &t.tv2, &t.tv1);
    bkv_fe_add(&t.tv3, &t.tv2, &c.one);
    bkv_fe_mul(&t.tv3, &c.b, &t.tv3);
    bkv_fe_neg(&t.tv4, &t.tv2);
    bkv_fe_cmov(&t.tv4, &t.z, bkv_fe_zero_mask(&t.tv2));
    bkv_fe_mul(&t.tv4, &c.a, &t.tv4);
    bkv_fe_sqr(&t.tv2, &t.tv3);
    bkv_fe_sqr(&t.tv6, &t.tv4);
    bkv_fe_mul(&t.tv5, &c.a, &t.tv6);
    bkv_fe_add(&t.tv2, &t.tv2, &t.tv5);
    bkv_fe_mul(&t.tv2, &t.tv2, &t.tv3);
    bkv_fe_mul(&t.tv6, &t.tv6, &t.tv4);
    bkv_fe_mul(&t.tv5, &c.b, &t.tv6);
    bkv_fe_add(&t.tv2, &t.tv2, &t.tv5);
    bkv_fe_mul(x, &t.tv1, &t.tv3);
    sqrt_ratio(&t.y1, &is_gx1_square, &t.tv2, &t.tv6);
    bkv_fe_mul(y, &t.tv1, u);
    bkv_fe_mul(y, y, &t.y1);
    bkv_fe_cmov(x, &t.tv3, is_gx1_square);
    bkv_fe_cmov(y, &t.y1, is_gx1_square);
    e1 = 0 - (1 ^ bkv_fe_sgn0(u) ^ bkv_fe_sgn0(y));
    bkv_fe_neg(&t.neg, y);
    bkv_fe_cmov(&t.neg, y, e1);
    *y = t.neg;
    bkv_fe_inv(&t.tv5, &t.tv4);
    bkv_fe_mul(x, x, &t.tv5);
    bkv_wipe(&t, sizeof(t));
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
                         size_t dst_len, bkv_fe *u, size_t u_count, const struct bkv_fe_modulus *m)
{
    uint8_t uniform[2 * BKV_H2C_L];
    int rc;

    if (u_count < 1 || u_count > 2)
        return BKV_ERR_INVALID;
    rc = bkv_h2c_expand_xmd(msg, count, dst, dst_len, uniform, u_count * BKV_H2C_L);
    if (rc != BKV_OK)
        return rc;
    for (size_t i = 0; i < u_count; i++)
        bkv_fe_reduce_wide(&u[i], uniform + i * BKV_H2C_L, m);
    bkv_wipe(uniform, sizeof(uniform));
    return BKV_OK;
}

int bkv_h2c_hash_to_field(const struct bkv_buf *msg, size_t count, const uint8_t *dst,
                          size_t dst_len, uint8_t *u, size_t u_count)
{
    bkv_fe e[2];
    int rc;

    if (u == NULL)
        return BKV_ERR_INVALID;
    rc = hash_to_field(msg, count, dst, dst_len, e, u_count, &bkv_fe_mod_p);
    if (rc == BKV_OK)
        for (size_t i = 0; i < u_count; i++)
            bkv_fe_to_bytes(u + i * BKV_H2C_FIELD_LEN, &e[i]);
    bkv_wipe(e, sizeof(e));
    return rc;
}

int bkv_hash_to_scalar(const struct bkv_buf *msg, size_t count, const uint8_t *dst, size_t dst_len,
                       uint8_t out[static BKV_P256_SCALAR_LEN])
{
    bkv_fe s;
    int rc = hash_to_field(msg, count, dst, dst_len, &s, 1, &bkv_fe_mod_n);

    if (rc == BKV_OK)
        bkv_fe_to_bytes(out, &s);
    bkv_wipe(&s, sizeof(s));
    return rc;
}

int bkv_h2c_map_to_curve(const uint8_t u[static BKV_H2C_FIELD_LEN],
                         uint8_t out[static BKV_P256_UNCOMPRESSED_LEN])
{
    bkv_fe e, x, y;
    int rc = BKV_ERR_INVALID;

    bkv_fe_from_bytes(&e, u);
    if (bkv_fe_below_p_mask(&e) == 0)
        goto out;
    bkv_fe_to_mont(&e, &e);
    map_to_curve(&x, &y, &e);
    bkv_p256_affine_encode(out, &x, &y);
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
    bkv_fe x1, y1, x2, y2, x3, y3;
    int rc = bkv_p256_affine_decode(&x1, &y1, a);

    if (rc == BKV_OK)
        rc = bkv_p256_affine_decode(&x2, &y2, b);
    if (rc == BKV_OK && bkv_p256_affine_add(&x3, &y3, &x1, &y1, &x2, &y2) != 0)
        rc = BKV_ERR_POINT;
    if (rc == BKV_OK)
        bkv_p256_affine_encode(out, &x3, &y3);
    return rc;
}

/*
 * hash_to_curve (ro = 1) or encode_to_curve (ro = 0) into affine Montgomery
 * coordinates. The identity is reported, once the arithmetic is done, as
 * BKV_ERR_POINT.
 */
static int hash_affine(const struct bkv_buf *msg, size_t count, const uint8_t *dst, size_t dst_len,
                       int ro, bkv_fe *x, bkv_fe *y)
{
    struct {
        bkv_fe u[2], x1, y1;
    } t;
    uint64_t identity = 0;
    int rc = hash_to_field(msg, count, dst, dst_len, t.u, ro ? 2 : 1, &bkv_fe_mod_p);

    if (rc != BKV_OK)
        return rc;
    bkv_fe_to_mont(&t.u[0], &t.u[0]);
    map_to_curve(x, y, &t.u[0]);
    if (ro) {
        bkv_fe_to_mont(&t.u[1], &t.u[1]);
        map_to_curve(&t.x1, &t.y1, &t.u[1]);
        identity = bkv_p256_affine_add(x, y, x, y, &t.x1, &t.y1);
    }
    bkv_wipe(&t, sizeof(t));
    return identity != 0 ? BKV_ERR_POINT : BKV_OK;
}

/* hash_affine, then 04 || x || y. */
static int hash_encoded(const struct bkv_buf *msg, size_t count, const uint8_t *dst, size_t dst_len,
                        int ro, uint8_t out[static BKV_P256_UNCOMPRESSED_LEN])
{
    bkv_fe x, y;
    int rc = hash_affine(msg, count, dst, dst_len, ro, &x, &y);

    if (rc == BKV_OK)
        bkv_p256_affine_encode(out, &x, &y);
    bkv_wipe(&x, sizeof(x));
    bkv_wipe(&y, sizeof(y));
    return rc;
}

int bkv_hash_to_curve(const struct bkv_buf *msg, size_t count, const uint8_t *dst, size_t dst_len,
                      uint8_t out[static BKV_P256_UNCOMPRESSED_LEN])
{
    return hash_encoded(msg, count, dst, dst_len, 1, out);
}

int bkv_encode_to_curve(const struct bkv_buf *msg, size_t count, const uint8_t *dst, size_t dst_len,
                        uint8_t out[static BKV_P256_UNCOMPRESSED_LEN])
{
    return hash_encoded(msg, count, dst, dst_len, 0, out);
}

/*
 * The hashing, the map and the addition above are our constant-time code. Only
 * this last step runs on OpenSSL's BIGNUM code: BN_bin2bn and the on-curve
 * check inside EC_POINT_set_affine_coordinates are not guaranteed constant time
 * in the coordinates of P (BN_FLG_CONSTTIME is set where OpenSSL honours it).
 */
int bkv_h2c_field_op(enum bkv_h2c_field_op op, const uint8_t *a, size_t a_len, const uint8_t *b,
                     uint8_t out[static BKV_H2C_FIELD_LEN], int *flag)
{
    bkv_fe x, y, r;
    uint64_t qr;
    int wide = op == BKV_H2C_FP_REDUCE || op == BKV_H2C_FN_REDUCE;
    int binary = op == BKV_H2C_FP_ADD || op == BKV_H2C_FP_SUB || op == BKV_H2C_FP_MUL ||
                 op == BKV_H2C_FP_SQRT_RATIO;

    if (a == NULL || a_len != (wide ? 48u : 32u) || (binary && b == NULL) ||
        (op == BKV_H2C_FP_SQRT_RATIO && flag == NULL))
        return BKV_ERR_INVALID;
    if (wide) {
        bkv_fe_reduce_wide(&r, a, op == BKV_H2C_FP_REDUCE ? &bkv_fe_mod_p : &bkv_fe_mod_n);
        bkv_fe_to_bytes(out, &r);
        return BKV_OK;
    }
    bkv_fe_from_bytes(&x, a);
    bkv_fe_from_bytes(&y, binary ? b : a);
    if ((bkv_fe_below_p_mask(&x) & bkv_fe_below_p_mask(&y)) == 0)
        return BKV_ERR_INVALID;
    bkv_fe_to_mont(&x, &x);
    bkv_fe_to_mont(&y, &y);
    switch (op) {
    case BKV_H2C_FP_ADD:
        bkv_fe_add(&r, &x, &y);
        break;
    case BKV_H2C_FP_SUB:
        bkv_fe_sub(&r, &x, &y);
        break;
    case BKV_H2C_FP_MUL:
        bkv_fe_mul(&r, &x, &y);
        break;
    case BKV_H2C_FP_SQR:
        bkv_fe_sqr(&r, &x);
        break;
    case BKV_H2C_FP_INV:
        bkv_fe_inv(&r, &x);
        break;
    case BKV_H2C_FP_SQRT_RATIO:
        sqrt_ratio(&r, &qr, &x, &y);
        *flag = qr != 0;
        break;
    default:
        return BKV_ERR_INVALID;
    }
    bkv_fe_from_mont(&r, &r);
    bkv_fe_to_bytes(out, &r);
    return BKV_OK;
}
