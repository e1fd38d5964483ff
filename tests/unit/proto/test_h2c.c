/*
 * RFC 9380 hash-to-curve for P-256: every vector of Appendices J.1.1, J.1.2,
 * K.1 and K.2 (u values, Q0, Q1 and P checked exactly), the field arithmetic
 * cross-checked against OpenSSL BIGNUM on random and edge values, the
 * exceptional SSWU inputs, the affine addition against EC_POINT_add, and the
 * argument checks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/rand.h>

#include "harness.h"
#include "proto/err.h"
#include "proto/group.h"
#include "proto/h2c.h"
#include "proto/kdf.h"
#include "proto/util.h"

#define FIELD_ITERATIONS 3000

static json_t *vectors;

static int suite_init(void)
{
    vectors = bkv_test_vectors("rfc9380-p256-sswu-ro.json");
    return vectors == NULL;
}

static int suite_cleanup(void)
{
    json_decref(vectors);
    return 0;
}

/* A "0x..." big-endian field element from the vector file, left-padded to 32 bytes. */
static int field_hex(const json_t *s, uint8_t out[32])
{
    const char *hex = json_string_value(s);
    uint8_t buf[32];
    size_t len = 0;

    if (hex == NULL)
        return 0;
    if (strncmp(hex, "0x", 2) == 0)
        hex += 2;
    if (strlen(hex) % 2 != 0 || bkv_hex_decode(hex, buf, sizeof(buf), &len) != BKV_OK)
        return 0;
    memset(out, 0, 32);
    memcpy(out + 32 - len, buf, len);
    return 1;
}

/* 04 || x || y of the vector point obj. */
static int point_hex(const json_t *obj, uint8_t out[65])
{
    out[0] = 0x04;
    return field_hex(json_object_get(obj, "x"), out + 1) &&
           field_hex(json_object_get(obj, "y"), out + 33);
}

static const uint8_t *str_bytes(const json_t *obj, const char *key, size_t *len)
{
    const char *s = json_string_value(json_object_get(obj, key));

    *len = s != NULL ? strlen(s) : 0;
    return (const uint8_t *)s;
}

/* Runs one expand_message_xmd vector set; the message is also fed in three parts. */
static void xmd_set(const char *name, const char *what)
{
    const json_t *set = json_object_get(vectors, name);
    const json_t *tests = json_object_get(set, "tests");
    size_t dst_len, msg_len, i;
    const uint8_t *dst = str_bytes(set, "DST", &dst_len);
    const json_t *t;
    int passed = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(dst);
    json_array_foreach(tests, i, t)
    {
        const uint8_t *msg = str_bytes(t, "msg", &msg_len);
        uint8_t want[256], got[256], split[256];
        size_t want_len = bkv_test_hex(t, "uniform_bytes", want, sizeof(want));
        unsigned long len_in =
            strtoul(json_string_value(json_object_get(t, "len_in_bytes")), NULL, 16);
        struct bkv_buf one = {msg, msg_len};
        struct bkv_buf three[] = {
            {msg, msg_len / 3}, {NULL, 0}, {msg + msg_len / 3, msg_len - msg_len / 3}};

        if (msg == NULL || len_in != want_len)
            continue;
        if (bkv_h2c_expand_xmd(&one, 1, dst, dst_len, got, len_in) != BKV_OK ||
            bkv_h2c_expand_xmd(three, 3, dst, dst_len, split, len_in) != BKV_OK)
            continue;
        if (memcmp(got, want, want_len) == 0 && memcmp(split, want, want_len) == 0)
            passed++;
        else
            printf("\n%s: vector %zu differs\n", what, i);
    }
    bkv_test_vectors_report(what, passed, (int)json_array_size(tests), 10);
}

static void test_xmd_vectors(void)
{
    xmd_set("expand_message_xmd_sha256", "rfc9380 expand_message_xmd SHA-256");
}

static void test_xmd_long_dst_vectors(void)
{
    xmd_set("expand_message_xmd_sha256_long_dst", "rfc9380 expand_message_xmd SHA-256 long DST");
}

static void test_hash_to_curve_vectors(void)
{
    const json_t *set = json_object_get(vectors, "hash_to_curve");
    const json_t *tests = json_object_get(set, "vectors");
    size_t dst_len, msg_len, i;
    const uint8_t *dst = str_bytes(set, "dst", &dst_len);
    const json_t *t;
    int passed = 0;
    BN_CTX *bn = BN_CTX_new();
    EC_POINT *pt = EC_POINT_new(bkv_p256_group());

    CU_ASSERT_PTR_NOT_NULL_FATAL(dst);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bn);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pt);
    json_array_foreach(tests, i, t)
    {
        const uint8_t *msg = str_bytes(t, "msg", &msg_len);
        struct bkv_buf m = {msg, msg_len};
        const json_t *u = json_object_get(t, "u");
        uint8_t want_u[64], want_q0[65], want_q1[65], want_p[65];
        uint8_t got_u[64], got_q0[65], got_q1[65], got_p[65], got_pt[65];
        int ok;

        if (msg == NULL || !field_hex(json_array_get(u, 0), want_u) ||
            !field_hex(json_array_get(u, 1), want_u + 32) ||
            !point_hex(json_object_get(t, "Q0"), want_q0) ||
            !point_hex(json_object_get(t, "Q1"), want_q1) ||
            !point_hex(json_object_get(t, "P"), want_p))
            continue;
        ok =
            bkv_h2c_hash_to_field(&m, 1, dst, dst_len, got_u, 2) == BKV_OK &&
            bkv_h2c_map_to_curve(got_u, got_q0) == BKV_OK &&
            bkv_h2c_map_to_curve(got_u + 32, got_q1) == BKV_OK &&
            bkv_hash_to_curve(&m, 1, dst, dst_len, got_p) == BKV_OK &&
            bkv_p256_pubkey_decode(got_p, 65, pt, bn) == BKV_OK &&
            bkv_p256_pubkey_encode(pt, got_pt, bn) == BKV_OK; /* OpenSSL agrees P is on the curve */
        CU_ASSERT_TRUE(ok);
        if (!ok)
            continue;
        CU_ASSERT_EQUAL(memcmp(got_u, want_u, 64), 0);
        CU_ASSERT_EQUAL(memcmp(got_q0, want_q0, 65), 0);
        CU_ASSERT_EQUAL(memcmp(got_q1, want_q1, 65), 0);
        CU_ASSERT_EQUAL(memcmp(got_p, want_p, 65), 0);
        CU_ASSERT_EQUAL(memcmp(got_pt, want_p, 65), 0);
        if (memcmp(got_u, want_u, 64) == 0 && memcmp(got_q0, want_q0, 65) == 0 &&
            memcmp(got_q1, want_q1, 65) == 0 && memcmp(got_p, want_p, 65) == 0 &&
            memcmp(got_pt, want_p, 65) == 0)
            passed++;
    }
    bkv_test_vectors_report("rfc9380 P256_XMD:SHA-256_SSWU_RO_ (u, Q0, Q1, P)", passed,
                            (int)json_array_size(tests), 5);
    EC_POINT_free(pt);
    BN_CTX_free(bn);
}

static void test_encode_to_curve_vectors(void)
{
    const json_t *set = json_object_get(vectors, "encode_to_curve_nu");
    const json_t *tests = json_object_get(set, "vectors");
    size_t dst_len, msg_len, i;
    const uint8_t *dst = str_bytes(set, "dst", &dst_len);
    const json_t *t;
    int passed = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(dst);
    json_array_foreach(tests, i, t)
    {
        const uint8_t *msg = str_bytes(t, "msg", &msg_len);
        struct bkv_buf m = {msg, msg_len};
        uint8_t want_u[32], want_q[65], want_p[65], got_u[32], got_q[65], got_p[65];
        int ok;

        if (msg == NULL || !field_hex(json_array_get(json_object_get(t, "u"), 0), want_u) ||
            !point_hex(json_object_get(t, "Q"), want_q) ||
            !point_hex(json_object_get(t, "P"), want_p))
            continue;
        ok = bkv_h2c_hash_to_field(&m, 1, dst, dst_len, got_u, 1) == BKV_OK &&
             bkv_h2c_map_to_curve(got_u, got_q) == BKV_OK &&
             bkv_encode_to_curve(&m, 1, dst, dst_len, got_p) == BKV_OK;
        CU_ASSERT_TRUE(ok);
        if (ok && memcmp(got_u, want_u, 32) == 0 && memcmp(got_q, want_q, 65) == 0 &&
            memcmp(got_p, want_p, 65) == 0)
            passed++;
    }
    bkv_test_vectors_report("rfc9380 P256_XMD:SHA-256_SSWU_NU_ (u, Q, P)", passed,
                            (int)json_array_size(tests), 5);
}

/* --- field arithmetic against BIGNUM --- */

struct bnenv {
    BN_CTX *ctx;
    BIGNUM *p, *n, *z;
};

static void bnenv_init(struct bnenv *e)
{
    e->ctx = BN_CTX_new();
    e->p = NULL;
    e->n = NULL;
    e->z = BN_new();
    CU_ASSERT_FATAL(e->ctx != NULL && e->z != NULL);
    CU_ASSERT_FATAL(
        BN_hex2bn(&e->p, "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff") &&
        BN_hex2bn(&e->n, "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551"));
    CU_ASSERT_FATAL(BN_sub(e->z, e->p, BN_value_one()) && BN_sub_word(e->z, 9)); /* -10 */
}

static void bnenv_free(struct bnenv *e)
{
    BN_free(e->p);
    BN_free(e->n);
    BN_free(e->z);
    BN_CTX_free(e->ctx);
}

static void to32(const BIGNUM *a, uint8_t out[32])
{
    CU_ASSERT_EQUAL(BN_bn2binpad(a, out, 32), 32);
}

/* The i-th test value below p: edge values first, then random ones. */
static void field_value(struct bnenv *e, int i, BIGNUM *out)
{
    switch (i) {
    case 0:
        BN_zero(out);
        break;
    case 1:
        BN_one(out);
        break;
    case 2:
        BN_sub(out, e->p, BN_value_one());
        break;
    case 3:
        BN_sub(out, e->p, BN_value_one());
        BN_sub_word(out, 1);
        break;
    case 4:
        BN_set_word(out, 2);
        break;
    case 5:
        BN_set_bit(out, 255);
        break;
    case 6:
        BN_copy(out, e->z);
        break;
    default:
        BN_rand_range(out, e->p);
    }
}

static void test_field_against_bignum(void)
{
    struct bnenv e;
    BIGNUM *a = BN_new(), *b = BN_new(), *r = BN_new(), *want = BN_new(), *t = BN_new();
    uint8_t ab[32], bb[32], out[32], wide[48];
    int bad = 0, squares = 0, nonsquares = 0;

    bnenv_init(&e);
    CU_ASSERT_FATAL(a && b && r && want && t);
    for (int i = 0; i < FIELD_ITERATIONS; i++) {
        int flag = -1;

        /* All pairs of the 7 edge values first, then random pairs. */
        field_value(&e, i < 49 ? i % 7 : 7, a);
        field_value(&e, i < 49 ? i / 7 : 7, b);
        to32(a, ab);
        to32(b, bb);

#define CHECK_OP(op, expr)                                                                         \
    do {                                                                                           \
        CU_ASSERT_FATAL(expr);                                                                     \
        CU_ASSERT_EQUAL_FATAL(bkv_h2c_field_op(op, ab, 32, bb, out, &flag), BKV_OK);               \
        BN_bin2bn(out, 32, r);                                                                     \
        if (BN_cmp(r, want) != 0)                                                                  \
            bad++;                                                                                 \
    } while (0)

        CHECK_OP(BKV_H2C_FP_ADD, BN_mod_add(want, a, b, e.p, e.ctx));
        CHECK_OP(BKV_H2C_FP_SUB, BN_mod_sub(want, a, b, e.p, e.ctx));
        CHECK_OP(BKV_H2C_FP_MUL, BN_mod_mul(want, a, b, e.p, e.ctx));
        CHECK_OP(BKV_H2C_FP_SQR, BN_mod_sqr(want, a, e.p, e.ctx));
        if (BN_is_zero(a))
            CHECK_OP(BKV_H2C_FP_INV, (BN_zero(want), 1));
        else
            CHECK_OP(BKV_H2C_FP_INV, BN_mod_inverse(want, a, e.p, e.ctx) != NULL);

        /* sqrt_ratio(a, b): y^2 * b == a (square) or Z * a (non-square). */
        if (!BN_is_zero(b)) {
            int legendre;

            CU_ASSERT_EQUAL_FATAL(bkv_h2c_field_op(BKV_H2C_FP_SQRT_RATIO, ab, 32, bb, out, &flag),
                                  BKV_OK);
            BN_bin2bn(out, 32, r);
            CU_ASSERT_FATAL(BN_mod_inverse(t, b, e.p, e.ctx) != NULL &&
                            BN_mod_mul(t, a, t, e.p, e.ctx));
            legendre = BN_is_zero(t) ? 1 : BN_kronecker(t, e.p, e.ctx);
            CU_ASSERT_FATAL(BN_mod_sqr(t, r, e.p, e.ctx) && BN_mod_mul(t, t, b, e.p, e.ctx));
            if (flag)
                BN_copy(want, a);
            else
                BN_mod_mul(want, a, e.z, e.p, e.ctx);
            if (BN_cmp(t, want) != 0 || flag != (legendre == 1))
                bad++;
            if (flag)
                squares++;
            else
                nonsquares++;
        }

        /* 48-byte reduction modulo p and n. */
        if (i < 3)
            memset(wide, i == 0 ? 0x00 : 0xff, sizeof(wide));
        else
            CU_ASSERT_FATAL(RAND_bytes(wide, sizeof(wide)) == 1);
        if (i == 2)
            memset(wide, 0, 16); /* high part zero, low part 2^256 - 1 >= p */
        BN_bin2bn(wide, 48, t);
        CU_ASSERT_EQUAL_FATAL(bkv_h2c_field_op(BKV_H2C_FP_REDUCE, wide, 48, NULL, out, NULL),
                              BKV_OK);
        BN_bin2bn(out, 32, r);
        BN_nnmod(want, t, e.p, e.ctx);
        if (BN_cmp(r, want) != 0)
            bad++;
        CU_ASSERT_EQUAL_FATAL(bkv_h2c_field_op(BKV_H2C_FN_REDUCE, wide, 48, NULL, out, NULL),
                              BKV_OK);
        BN_bin2bn(out, 32, r);
        BN_nnmod(want, t, e.n, e.ctx);
        if (BN_cmp(r, want) != 0)
            bad++;
#undef CHECK_OP
    }
    printf("\nfield: %d iterations, %d square and %d non-square ratios, %d mismatches\n",
           FIELD_ITERATIONS, squares, nonsquares, bad);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_TRUE(squares > FIELD_ITERATIONS / 4 && nonsquares > FIELD_ITERATIONS / 4);
    BN_free(a);
    BN_free(b);
    BN_free(r);
    BN_free(want);
    BN_free(t);
    bnenv_free(&e);
}

/* Checks that out is a valid point with sgn0(y) == sgn0(u). */
static void check_mapped(const uint8_t u[32], const uint8_t out[65])
{
    const EC_GROUP *g = bkv_p256_group();
    EC_POINT *pt = EC_POINT_new(g);
    BN_CTX *bn = BN_CTX_new();

    CU_ASSERT_FATAL(pt != NULL && bn != NULL);
    CU_ASSERT_EQUAL(out[0], 0x04);
    CU_ASSERT_EQUAL(bkv_p256_pubkey_decode(out, 65, pt, bn), BKV_OK);
    CU_ASSERT_EQUAL(out[64] & 1, u[31] & 1);
    EC_POINT_free(pt);
    BN_CTX_free(bn);
}

static void test_sswu_exceptional(void)
{
    struct bnenv e;
    BIGNUM *x = BN_new(), *t = BN_new(), *c2inv = BN_new(), *bcoef = NULL;
    uint8_t u[32], out[65], want_x[32];

    bnenv_init(&e);
    CU_ASSERT_FATAL(x && t && c2inv);
    /* x1 = B / (Z * A) when tv2 = Z^2 u^4 + Z u^2 = 0 (u = 0 or u^2 = -1/Z). */
    CU_ASSERT_FATAL(
        BN_hex2bn(&bcoef, "5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b"));
    CU_ASSERT_FATAL(BN_set_word(t, 30)); /* Z * A = (-10) * (-3) = 30 */
    CU_ASSERT_FATAL(BN_mod_inverse(t, t, e.p, e.ctx) && BN_mod_mul(x, bcoef, t, e.p, e.ctx));
    to32(x, want_x);

    /* u = 0 */
    memset(u, 0, sizeof(u));
    CU_ASSERT_EQUAL(bkv_h2c_map_to_curve(u, out), BKV_OK);
    check_mapped(u, out);
    CU_ASSERT_EQUAL(memcmp(out + 1, want_x, 32), 0);

    /* u = +-1/sqrt(10), so Z u^2 = -1 and tv2 = 1 - 1 = 0 */
    CU_ASSERT_FATAL(
        BN_hex2bn(&c2inv, "95d527d249c8dc5cadbf4c70bb59aaab72c14fffbad5622bd147b86a639ec6d9"));
    CU_ASSERT_FATAL(BN_mod_sqr(t, c2inv, e.p, e.ctx) && BN_mod_mul(t, t, e.z, e.p, e.ctx));
    CU_ASSERT_FATAL(BN_sub(x, e.p, BN_value_one()));
    CU_ASSERT_EQUAL(BN_cmp(x, t), 0);
    for (int sign = 0; sign < 2; sign++) {
        if (sign)
            BN_sub(t, e.p, c2inv);
        else
            BN_copy(t, c2inv);
        to32(t, u);
        CU_ASSERT_EQUAL(bkv_h2c_map_to_curve(u, out), BKV_OK);
        check_mapped(u, out);
        CU_ASSERT_EQUAL(memcmp(out + 1, want_x, 32), 0);
    }

    /* Edge and random inputs always land on the curve with the sign of u. */
    for (int i = 0; i < 300; i++) {
        field_value(&e, i < 7 ? i : 7, t);
        to32(t, u);
        CU_ASSERT_EQUAL(bkv_h2c_map_to_curve(u, out), BKV_OK);
        check_mapped(u, out);
    }
    BN_free(x);
    BN_free(t);
    BN_free(c2inv);
    BN_free(bcoef);
    bnenv_free(&e);
}

static void test_point_add_against_openssl(void)
{
    const EC_GROUP *g = bkv_p256_group();
    BN_CTX *bn = BN_CTX_new();
    EC_POINT *p = EC_POINT_new(g), *q = EC_POINT_new(g), *s = EC_POINT_new(g);
    BIGNUM *k = BN_new();
    uint8_t pa[65], qa[65], want[65], got[65], bad[65];
    int mismatches = 0;

    CU_ASSERT_FATAL(bn && p && q && s && k);
    for (int i = 0; i < 200; i++) {
        CU_ASSERT_FATAL(BN_rand_range(k, bkv_p256_order()) && !BN_is_zero(k));
        CU_ASSERT_FATAL(EC_POINT_mul(g, p, k, NULL, NULL, bn));
        if (i % 4 == 0) {
            CU_ASSERT_FATAL(EC_POINT_copy(q, p)); /* doubling */
        } else {
            CU_ASSERT_FATAL(BN_rand_range(k, bkv_p256_order()) && !BN_is_zero(k));
            CU_ASSERT_FATAL(EC_POINT_mul(g, q, k, NULL, NULL, bn));
        }
        CU_ASSERT_FATAL(EC_POINT_add(g, s, p, q, bn));
        CU_ASSERT_FATAL(bkv_p256_pubkey_encode(p, pa, bn) == BKV_OK &&
                        bkv_p256_pubkey_encode(q, qa, bn) == BKV_OK &&
                        bkv_p256_pubkey_encode(s, want, bn) == BKV_OK);
        if (bkv_h2c_point_add(pa, qa, got) != BKV_OK || memcmp(got, want, 65) != 0)
            mismatches++;
        /* P + (-P) is the identity. */
        CU_ASSERT_FATAL(EC_POINT_invert(g, q, bn) && EC_POINT_copy(q, p) &&
                        EC_POINT_invert(g, q, bn));
        CU_ASSERT_FATAL(bkv_p256_pubkey_encode(q, qa, bn) == BKV_OK);
        CU_ASSERT_EQUAL(bkv_h2c_point_add(pa, qa, got), BKV_ERR_POINT);
    }
    CU_ASSERT_EQUAL(mismatches, 0);

    /* Malformed inputs: wrong prefix, a point off the curve, x >= p. */
    memcpy(bad, pa, 65);
    bad[0] = 0x06;
    CU_ASSERT_EQUAL(bkv_h2c_point_add(bad, pa, got), BKV_ERR_POINT);
    memcpy(bad, pa, 65);
    bad[64] ^= 1;
    CU_ASSERT_EQUAL(bkv_h2c_point_add(pa, bad, got), BKV_ERR_POINT);
    memset(bad + 1, 0xff, 32);
    CU_ASSERT_EQUAL(bkv_h2c_point_add(bad, pa, got), BKV_ERR_POINT);

    BN_free(k);
    EC_POINT_free(p);
    EC_POINT_free(q);
    EC_POINT_free(s);
    BN_CTX_free(bn);
}

static void test_argument_errors(void)
{
    static const uint8_t dst[] = "BKV-TEST-DST";
    static const uint8_t p_be[32] = {
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    };
    static uint8_t big[BKV_H2C_MAX_XMD_LEN + 1];
    struct bkv_buf m = {(const uint8_t *)"abc", 3}, empty = {NULL, 0};
    uint8_t out[65], u[64], wide[48] = {0}, a[32] = {0};
    int flag;

    /* expand_message_xmd: lengths and arguments. */
    CU_ASSERT_EQUAL(bkv_h2c_expand_xmd(&m, 1, dst, sizeof(dst) - 1, big, 0), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_h2c_expand_xmd(&m, 1, dst, sizeof(dst) - 1, big, sizeof(big)),
                    BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_h2c_expand_xmd(&m, 1, dst, sizeof(dst) - 1, big, 65535), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_h2c_expand_xmd(&m, 1, dst, sizeof(dst) - 1, big, 65536), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_h2c_expand_xmd(&m, 1, dst, sizeof(dst) - 1, big, sizeof(big) - 1), BKV_OK);
    CU_ASSERT_EQUAL(bkv_h2c_expand_xmd(&m, 1, dst, 0, out, 32), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_h2c_expand_xmd(&m, 1, NULL, 5, out, 32), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_h2c_expand_xmd(NULL, 1, dst, sizeof(dst) - 1, out, 32), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_h2c_expand_xmd(&m, 1, dst, sizeof(dst) - 1, NULL, 32), BKV_ERR_INVALID);
    {
        struct bkv_buf holes[] = {{(const uint8_t *)"a", 1}, {NULL, 2}};

        CU_ASSERT_EQUAL(bkv_h2c_expand_xmd(holes, 2, dst, sizeof(dst) - 1, out, 32),
                        BKV_ERR_INVALID);
    }
    /* An empty message, as a NULL list or as an empty part, is fine. */
    CU_ASSERT_EQUAL(bkv_h2c_expand_xmd(NULL, 0, dst, sizeof(dst) - 1, out, 32), BKV_OK);
    CU_ASSERT_EQUAL(bkv_h2c_expand_xmd(&empty, 1, dst, sizeof(dst) - 1, u, 32), BKV_OK);
    CU_ASSERT_EQUAL(memcmp(out, u, 32), 0);
    /* A DST of 256 bytes or more is hashed, whatever its length. */
    CU_ASSERT_EQUAL(bkv_h2c_expand_xmd(&m, 1, big, 300, out, 32), BKV_OK);

    /* hash_to_field / hash_to_curve. */
    CU_ASSERT_EQUAL(bkv_h2c_hash_to_field(&m, 1, dst, sizeof(dst) - 1, u, 0), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_h2c_hash_to_field(&m, 1, dst, sizeof(dst) - 1, u, 3), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_h2c_hash_to_field(&m, 1, dst, sizeof(dst) - 1, NULL, 1), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_hash_to_curve(&m, 1, dst, 0, out), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_hash_to_scalar(&m, 1, NULL, 0, u), BKV_ERR_INVALID);

    /* map_to_curve and the field hook refuse values >= p. */
    CU_ASSERT_EQUAL(bkv_h2c_map_to_curve(p_be, out), BKV_ERR_INVALID);
    memset(a, 0xff, sizeof(a));
    CU_ASSERT_EQUAL(bkv_h2c_map_to_curve(a, out), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_h2c_field_op(BKV_H2C_FP_ADD, p_be, 32, p_be, out, NULL), BKV_ERR_INVALID);
    memset(a, 0, sizeof(a));
    CU_ASSERT_EQUAL(bkv_h2c_field_op(BKV_H2C_FP_MUL, a, 32, p_be, out, NULL), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_h2c_field_op(BKV_H2C_FP_MUL, a, 31, a, out, NULL), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_h2c_field_op(BKV_H2C_FP_MUL, a, 32, NULL, out, NULL), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_h2c_field_op(BKV_H2C_FP_SQRT_RATIO, a, 32, a, out, NULL), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_h2c_field_op(BKV_H2C_FP_REDUCE, wide, 32, NULL, out, NULL),
                    BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_h2c_field_op((enum bkv_h2c_field_op)99, a, 32, a, out, &flag),
                    BKV_ERR_INVALID);
}

static CU_TestInfo tests[] = {
    {"expand_message_xmd vectors", test_xmd_vectors},
    {"expand_message_xmd long-DST vectors", test_xmd_long_dst_vectors},
    {"hash_to_curve RO vectors", test_hash_to_curve_vectors},
    {"encode_to_curve NU vectors", test_encode_to_curve_vectors},
    {"field arithmetic against BIGNUM", test_field_against_bignum},
    {"SSWU exceptional and edge inputs", test_sswu_exceptional},
    {"affine addition against EC_POINT_add", test_point_add_against_openssl},
    {"argument errors", test_argument_errors},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return bkv_test_main("proto_h2c", tests, suite_init, suite_cleanup);
}
