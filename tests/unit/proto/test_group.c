/*
 * proto/group: P-256 element and scalar validation. Each malformed encoding
 * is rejected before it reaches OpenSSL's permissive decoder (which accepts a
 * lone 00 byte as the identity and hybrid 06/07 prefixes).
 */
#include <string.h>

#include <openssl/ec.h>

#include "harness.h"
#include "proto/err.h"
#include "proto/group.h"
#include "proto/util.h"

static const uint8_t n_be[32] = {
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
};

static void test_scalar_range(void)
{
    uint8_t k[32] = {0}, out[33];

    CU_ASSERT_EQUAL(bkv_p256_scalar_check(k), BKV_ERR_SCALAR); /* zero */
    CU_ASSERT_EQUAL(bkv_p256_mul_base(k, out), BKV_ERR_SCALAR);
    k[31] = 1;
    CU_ASSERT_EQUAL(bkv_p256_scalar_check(k), BKV_OK);
    memcpy(k, n_be, 32);
    CU_ASSERT_EQUAL(bkv_p256_scalar_check(k), BKV_ERR_SCALAR); /* n */
    k[31] -= 1;
    CU_ASSERT_EQUAL(bkv_p256_scalar_check(k), BKV_OK); /* n - 1 */
    memcpy(k, n_be, 32);
    k[31] += 1;
    CU_ASSERT_EQUAL(bkv_p256_scalar_check(k), BKV_ERR_SCALAR); /* n + 1 */
    memset(k, 0xff, 32);
    CU_ASSERT_EQUAL(bkv_p256_scalar_check(k), BKV_ERR_SCALAR);
    CU_ASSERT_EQUAL(bkv_p256_mul_base(k, out), BKV_ERR_SCALAR);
    CU_ASSERT_EQUAL(bkv_p256_scalar_invert(k, out), BKV_ERR_SCALAR);
}

static void test_invert_and_reduce(void)
{
    uint8_t k[32], inv[32], p[33], q[33], r[33], one[32] = {0};

    one[31] = 1;
    for (int i = 0; i < 20; i++) {
        CU_ASSERT_EQUAL_FATAL(bkv_p256_random_scalar(k), BKV_OK);
        CU_ASSERT_EQUAL_FATAL(bkv_p256_scalar_invert(k, inv), BKV_OK);
        /* (k^-1)(kG) == G */
        CU_ASSERT_EQUAL(bkv_p256_mul_base(k, p), BKV_OK);
        CU_ASSERT_EQUAL(bkv_p256_mul(inv, p, q), BKV_OK);
        CU_ASSERT_EQUAL(bkv_p256_mul_base(one, r), BKV_OK);
        CU_ASSERT_EQUAL(memcmp(q, r, 33), 0);
    }
}

static void test_element_rejections(void)
{
    const EC_GROUP *g = bkv_p256_group();
    EC_POINT *pt = EC_POINT_new(g);
    uint8_t k[32], good[33], bad[65], up[65], out[33];
    static const uint8_t lone_zero[1] = {0};

    CU_ASSERT_EQUAL_FATAL(bkv_p256_random_scalar(k), BKV_OK);
    CU_ASSERT_EQUAL_FATAL(bkv_p256_mul_base(k, good), BKV_OK);
    CU_ASSERT_EQUAL(bkv_p256_element_decode(good, 33, pt, NULL), BKV_OK);
    CU_ASSERT_EQUAL(bkv_p256_pubkey_encode(pt, up, NULL), BKV_OK);
    CU_ASSERT_EQUAL(bkv_p256_pubkey_decode(up, 65, pt, NULL), BKV_OK);

    /* The identity, in every form OpenSSL might accept. */
    CU_ASSERT_EQUAL(bkv_p256_element_decode(lone_zero, 1, pt, NULL), BKV_ERR_LENGTH);
    memset(bad, 0, 33);
    CU_ASSERT_EQUAL(bkv_p256_element_decode(bad, 33, pt, NULL), BKV_ERR_POINT);
    CU_ASSERT_EQUAL(bkv_p256_mul(k, bad, out), BKV_ERR_POINT);
    /* Wrong lengths. */
    CU_ASSERT_EQUAL(bkv_p256_element_decode(good, 32, pt, NULL), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_p256_element_decode(up, 65, pt, NULL), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_p256_pubkey_decode(good, 33, pt, NULL), BKV_ERR_LENGTH);
    /* Wrong prefixes: uncompressed where compressed is due, hybrid forms. */
    memcpy(bad, good, 33);
    bad[0] = 0x04;
    CU_ASSERT_EQUAL(bkv_p256_element_decode(bad, 33, pt, NULL), BKV_ERR_POINT);
    memcpy(bad, up, 65);
    bad[0] = (up[64] & 1) ? 0x07 : 0x06;
    CU_ASSERT_EQUAL(bkv_p256_pubkey_decode(bad, 65, pt, NULL), BKV_ERR_POINT);
    /* x >= p. */
    memset(bad, 0xff, 33);
    bad[0] = 0x02;
    CU_ASSERT_EQUAL(bkv_p256_element_decode(bad, 33, pt, NULL), BKV_ERR_POINT);
    /* An uncompressed point off the curve (y + 1). */
    memcpy(bad, up, 65);
    bad[64] ^= 1;
    CU_ASSERT_EQUAL(bkv_p256_pubkey_decode(bad, 65, pt, NULL), BKV_ERR_POINT);
    /* x with no square root: count rejections over many x, at least one exists. */
    int rejected = 0;
    for (int i = 0; i < 16; i++) {
        memset(bad, 0, 33);
        bad[0] = 0x02;
        bad[32] = (uint8_t)i;
        rejected += bkv_p256_element_decode(bad, 33, pt, NULL) == BKV_ERR_POINT;
    }
    CU_ASSERT_TRUE(rejected > 0 && rejected < 16);
    /* The identity cannot be encoded. */
    CU_ASSERT_EQUAL_FATAL(EC_POINT_set_to_infinity(g, pt), 1);
    CU_ASSERT_EQUAL(bkv_p256_element_encode(pt, out, NULL), BKV_ERR_POINT);
    CU_ASSERT_EQUAL(bkv_p256_pubkey_encode(pt, up, NULL), BKV_ERR_POINT);
    EC_POINT_free(pt);
}

static CU_TestInfo tests[] = {
    {"scalar range: zero, n, n+1 rejected; n-1 accepted", test_scalar_range},
    {"constant-time inverse", test_invert_and_reduce},
    {"element decoders reject identity, bad prefix, off-curve", test_element_rejections},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return bkv_test_main("proto_group", tests, NULL, NULL);
}
