/*
 * proto/group and proto/p256: P-256 element and scalar validation. Each
 * malformed encoding is rejected before it reaches OpenSSL's permissive
 * decoder (which accepts a lone 00 byte as the identity and hybrid 06/07
 * prefixes). Our decompression is cross-checked against OpenSSL's own
 * decoder on edge and random x; mul2, ECDH and the uncompressed base
 * multiplication against bkv_p256_mul, OpenSSL's EVP ECDH and mul_base.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "harness.h"
#include "proto/err.h"
#include "proto/group.h"
#include "proto/p256.h"
#include "proto/util.h"

#define DECOMPRESS_ITERATIONS 2000

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

static void test_invert(void)
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

static const uint8_t p_be[32] = {
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
};

/* x + d for a small signed d, big-endian, wrapping modulo 2^256. */
static void add_small(uint8_t x[32], int d)
{
    int carry = d;

    for (int i = 31; i >= 0 && carry != 0; i--) {
        int v = x[i] + carry;
        x[i] = (uint8_t)(v & 0xff);
        carry = v >> 8; /* arithmetic shift: -1 for a borrow */
    }
}

/* The i-th x to try: edge values around 0, p and 2^256 first, then random bytes. */
static void edge_or_random_x(int i, uint8_t x[32])
{
    static const int around_p[] = {-2, -1, 0, 1, 2};

    memset(x, 0, 32);
    if (i < 5) {
        x[31] = (uint8_t)i; /* 0 .. 4 */
    } else if (i < 10) {
        memcpy(x, p_be, 32);
        add_small(x, around_p[i - 5]); /* p-2 .. p+2 */
    } else if (i < 12) {
        memset(x, 0xff, 32);
        add_small(x, -(i - 10)); /* 2^256-1, 2^256-2 */
    } else {
        CU_ASSERT_FATAL(RAND_bytes(x, 32) == 1);
    }
}

/*
 * bkv_p256_decompress and bkv_p256_element_decode against OpenSSL's
 * EC_POINT_oct2point on the same 33 bytes: the same accept/reject decision
 * and, when accepted, the same point. Random x are on the curve about half
 * the time; points k*G give both parities of y for sure.
 */
static void test_decompress_against_openssl(void)
{
    const EC_GROUP *g = bkv_p256_group();
    EC_POINT *want = EC_POINT_new(g), *got = EC_POINT_new(g);
    BN_CTX *bn = BN_CTX_new();
    uint8_t in[33], full[65], want_full[65], k[32];
    int mismatches = 0, accepted = 0, rejected = 0;

    CU_ASSERT_FATAL(want != NULL && got != NULL && bn != NULL);
    for (int i = 0; i < DECOMPRESS_ITERATIONS; i++) {
        int ours, theirs, decoded;

        if (i % 4 == 3) {
            CU_ASSERT_FATAL(bkv_p256_random_scalar(k) == BKV_OK);
            CU_ASSERT_FATAL(bkv_p256_mul_base(k, in) == BKV_OK);
        } else {
            /* i % 4 == 0 and 1: the same edge or random x with both prefixes. */
            if (i % 4 == 0)
                edge_or_random_x(i / 4, in + 1);
            else if (i % 4 == 2)
                edge_or_random_x(12, in + 1);
            in[0] = (uint8_t)(0x02 | (i & 1));
        }
        theirs = EC_POINT_oct2point(g, want, in, 33, bn) == 1 && !EC_POINT_is_at_infinity(g, want);
        ERR_clear_error();
        ours = bkv_p256_decompress(in, full) == BKV_OK;
        decoded = bkv_p256_element_decode(in, 33, got, bn) == BKV_OK;
        if (ours != theirs || decoded != theirs) {
            mismatches++;
            continue;
        }
        if (!theirs) {
            rejected++;
            continue;
        }
        accepted++;
        CU_ASSERT_FATAL(
            EC_POINT_point2oct(g, want, POINT_CONVERSION_UNCOMPRESSED, want_full, 65, bn) == 65);
        if (memcmp(full, want_full, 65) != 0 || EC_POINT_cmp(g, got, want, bn) != 0)
            mismatches++;
    }
    printf("\ndecompress: %d accepted, %d rejected, %d mismatches\n", accepted, rejected,
           mismatches);
    CU_ASSERT_EQUAL(mismatches, 0);
    CU_ASSERT_TRUE(accepted > DECOMPRESS_ITERATIONS / 3 && rejected > DECOMPRESS_ITERATIONS / 10);

    /* x = p and x = 2^256 - 1 are refused as x >= p, whatever the prefix. */
    in[0] = 0x03;
    memcpy(in + 1, p_be, 32);
    CU_ASSERT_EQUAL(bkv_p256_decompress(in, full), BKV_ERR_POINT);
    memset(in + 1, 0xff, 32);
    CU_ASSERT_EQUAL(bkv_p256_decompress(in, full), BKV_ERR_POINT);
    /* Other prefixes: the identity byte, uncompressed, hybrid. */
    CU_ASSERT_EQUAL_FATAL(bkv_p256_mul_base(k, in), BKV_OK);
    for (int prefix = 0; prefix < 8; prefix++) {
        if (prefix == 2 || prefix == 3)
            continue;
        in[0] = (uint8_t)prefix;
        CU_ASSERT_EQUAL(bkv_p256_decompress(in, full), BKV_ERR_POINT);
        CU_ASSERT_EQUAL(bkv_p256_element_decode(in, 33, got, bn), BKV_ERR_POINT);
    }
    EC_POINT_free(want);
    EC_POINT_free(got);
    BN_CTX_free(bn);
}

/* mul2 gives exactly two bkv_p256_mul calls, results and errors alike. */
static void test_mul2(void)
{
    uint8_t k1[32], k2[32], e[33], bad[33], want1[33], want2[33], out1[33], out2[33];
    static const uint8_t zero33[33];
    static const uint8_t zero_k[32];

    for (int i = 0; i < 50; i++) {
        CU_ASSERT_FATAL(bkv_p256_random_scalar(k1) == BKV_OK);
        CU_ASSERT_FATAL(bkv_p256_random_scalar(k2) == BKV_OK);
        CU_ASSERT_FATAL(bkv_p256_random_scalar(want1) == BKV_OK);
        CU_ASSERT_FATAL(bkv_p256_mul_base(want1, e) == BKV_OK);
        if (i == 0)
            memcpy(k2, k1, 32); /* the same scalar twice */
        CU_ASSERT_EQUAL(bkv_p256_mul(k1, e, want1), BKV_OK);
        CU_ASSERT_EQUAL(bkv_p256_mul(k2, e, want2), BKV_OK);
        CU_ASSERT_EQUAL(bkv_p256_mul2(k1, k2, e, out1, out2), BKV_OK);
        CU_ASSERT_EQUAL(memcmp(out1, want1, 33), 0);
        CU_ASSERT_EQUAL(memcmp(out2, want2, 33), 0);
    }
    /* The outputs may alias the element. */
    memcpy(bad, e, 33);
    CU_ASSERT_EQUAL(bkv_p256_mul2(k1, k2, bad, bad, out2), BKV_OK);
    CU_ASSERT_EQUAL(memcmp(bad, want1, 33), 0);
    CU_ASSERT_EQUAL(memcmp(out2, want2, 33), 0);

    /* Errors, in the order of two sequential calls; both outputs zeroed. */
    CU_ASSERT_EQUAL(bkv_p256_mul2(zero_k, k2, e, out1, out2), BKV_ERR_SCALAR);
    CU_ASSERT_EQUAL(memcmp(out1, zero33, 33), 0);
    CU_ASSERT_EQUAL(memcmp(out2, zero33, 33), 0);
    memset(out1, 0x11, 33);
    CU_ASSERT_EQUAL(bkv_p256_mul2(zero_k, k2, zero33, out1, out2), BKV_ERR_SCALAR);
    CU_ASSERT_EQUAL(memcmp(out1, zero33, 33), 0);
    CU_ASSERT_EQUAL(bkv_p256_mul2(k1, zero_k, zero33, out1, out2), BKV_ERR_POINT);
    memset(out1, 0x11, 33);
    CU_ASSERT_EQUAL(bkv_p256_mul2(k1, zero_k, e, out1, out2), BKV_ERR_SCALAR);
    CU_ASSERT_EQUAL(memcmp(out1, zero33, 33), 0);
    CU_ASSERT_EQUAL(memcmp(out2, zero33, 33), 0);
    CU_ASSERT_EQUAL(bkv_p256_mul2(n_be, k2, e, out1, out2), BKV_ERR_SCALAR);
    /* An x with no square root (the first of 0, 1, 2, ...). */
    memset(bad, 0, 33);
    bad[0] = 0x02;
    while (bkv_p256_element_check(bad, 33) == BKV_OK)
        bad[32]++;
    CU_ASSERT_EQUAL(bkv_p256_mul(k1, bad, out1), BKV_ERR_POINT);
    CU_ASSERT_EQUAL(bkv_p256_mul2(k1, k2, bad, out1, out2), BKV_ERR_POINT);
}

/* ECDH and k*G uncompressed against OpenSSL's EVP ECDH and bkv_p256_mul_base. */
static void test_ecdh_and_uncompressed_base(void)
{
    const EC_GROUP *g = bkv_p256_group();
    EC_POINT *pt = EC_POINT_new(g);
    uint8_t k[32], kp[32], peer[65], pk[65], c[33], dh[32], want[32], bad[65];
    static const uint8_t zero_k[32];
    static const uint8_t zero32[32];

    CU_ASSERT_FATAL(pt != NULL);
    for (int i = 0; i < 30; i++) {
        CU_ASSERT_FATAL(bkv_p256_random_scalar(k) == BKV_OK);
        CU_ASSERT_FATAL(bkv_p256_random_scalar(kp) == BKV_OK);
        /* k*G uncompressed is the compressed k*G, re-encoded. */
        CU_ASSERT_EQUAL(bkv_p256_mul_base_uncompressed(kp, peer), BKV_OK);
        CU_ASSERT_EQUAL(bkv_p256_mul_base(kp, c), BKV_OK);
        CU_ASSERT_EQUAL(bkv_p256_element_decode(c, 33, pt, NULL), BKV_OK);
        CU_ASSERT_EQUAL(bkv_p256_pubkey_encode(pt, pk, NULL), BKV_OK);
        CU_ASSERT_EQUAL(memcmp(peer, pk, 65), 0);
        CU_ASSERT_EQUAL(bkv_p256_pubkey_check(peer, 65), BKV_OK);
        CU_ASSERT_EQUAL(bkv_p256_element_check(c, 33), BKV_OK);
        /* x(k * peer) */
        CU_ASSERT_EQUAL(bkv_p256_ecdh(k, peer, 65, dh), BKV_OK);
        CU_ASSERT_FATAL(bkv_test_p256_ecdh_x(k, peer, want));
        CU_ASSERT_EQUAL(memcmp(dh, want, 32), 0);
    }
    /* The peer is validated before the scalar; dh is zeroed on failure. */
    CU_ASSERT_EQUAL(bkv_p256_ecdh(k, peer, 64, dh), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(memcmp(dh, zero32, 32), 0);
    memcpy(bad, peer, 65);
    bad[64] ^= 1;
    CU_ASSERT_EQUAL(bkv_p256_ecdh(k, bad, 65, dh), BKV_ERR_POINT);
    CU_ASSERT_EQUAL(bkv_p256_ecdh(zero_k, bad, 65, dh), BKV_ERR_POINT);
    CU_ASSERT_EQUAL(bkv_p256_pubkey_check(bad, 65), BKV_ERR_POINT);
    CU_ASSERT_EQUAL(bkv_p256_pubkey_check(peer, 33), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_p256_element_check(peer, 65), BKV_ERR_LENGTH);
    bad[0] = 0x02;
    CU_ASSERT_EQUAL(bkv_p256_ecdh(k, bad, 65, dh), BKV_ERR_POINT);
    CU_ASSERT_EQUAL(bkv_p256_ecdh(zero_k, peer, 65, dh), BKV_ERR_SCALAR);
    CU_ASSERT_EQUAL(memcmp(dh, zero32, 32), 0);
    CU_ASSERT_EQUAL(bkv_p256_ecdh(n_be, peer, 65, dh), BKV_ERR_SCALAR);
    CU_ASSERT_EQUAL(bkv_p256_mul_base_uncompressed(zero_k, pk), BKV_ERR_SCALAR);
    EC_POINT_free(pt);
}

static CU_TestInfo tests[] = {
    {"scalar range: zero, n, n+1 rejected; n-1 accepted", test_scalar_range},
    {"scalar inverse: (k^-1)(kG) == G", test_invert},
    {"element decoders reject identity, bad prefix, off-curve", test_element_rejections},
    {"decompression against OpenSSL's decoder", test_decompress_against_openssl},
    {"mul2 against two bkv_p256_mul calls", test_mul2},
    {"ECDH and uncompressed k*G against OpenSSL", test_ecdh_and_uncompressed_base},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return bkv_test_main("proto_group", tests, NULL, NULL);
}
