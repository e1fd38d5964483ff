/*
 * RFC 9497 OPRF mode 0, P256-SHA256: the DeriveKeyPair vector and both mode-0
 * vectors of Appendix A.3.1, then the input validation of every function
 * (element encodings, scalar ranges, input length) and a random-blind round
 * trip that must agree with the deterministic one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "proto/err.h"
#include "proto/group.h"
#include "proto/oprf.h"
#include "proto/util.h"

static json_t *vectors;
static const json_t *mode0;
static uint8_t sk_vec[BKV_P256_SCALAR_LEN];

/* A valid element (the first vector's BlindedElement) and scalars for negative tests. */
static uint8_t good_element[BKV_P256_ELEMENT_LEN];
static uint8_t good_scalar[BKV_P256_SCALAR_LEN];

static int suite_init(void)
{
    const char *sk_hex, *el_hex, *blind_hex;
    size_t len;

    vectors = bkv_test_vectors("rfc9497-p256-oprf.json");
    mode0 = json_object_get(vectors, "oprf_mode");
    sk_hex = json_string_value(json_object_get(mode0, "skSm"));
    el_hex = json_string_value(
        json_object_get(json_array_get(json_object_get(mode0, "vectors"), 0), "BlindedElement"));
    blind_hex = json_string_value(
        json_object_get(json_array_get(json_object_get(mode0, "vectors"), 0), "Blind"));
    if (sk_hex == NULL || el_hex == NULL || blind_hex == NULL)
        return 1;
    if (bkv_hex_decode(sk_hex, sk_vec, sizeof(sk_vec), &len) != BKV_OK || len != 32 ||
        bkv_hex_decode(el_hex, good_element, sizeof(good_element), &len) != BKV_OK || len != 33 ||
        bkv_hex_decode(blind_hex, good_scalar, sizeof(good_scalar), &len) != BKV_OK || len != 32)
        return 1;
    return 0;
}

static int suite_cleanup(void)
{
    json_decref(vectors);
    return 0;
}

static void test_derive_key_pair_vector(void)
{
    uint8_t seed[BKV_OPRF_SEED_LEN], info[64], want[32], sk[32], pk[33], pk2[33];
    size_t seed_len = bkv_test_hex(mode0, "seed", seed, sizeof(seed));
    size_t info_len = bkv_test_hex(mode0, "keyInfo", info, sizeof(info));
    size_t want_len = bkv_test_hex(mode0, "skSm", want, sizeof(want));
    int passed = 0;

    CU_ASSERT_EQUAL(seed_len, BKV_OPRF_SEED_LEN);
    CU_ASSERT_EQUAL(want_len, 32);
    CU_ASSERT_EQUAL(bkv_oprf_derive_key_pair(seed, info, info_len, sk, pk), BKV_OK);
    if (memcmp(sk, want, 32) == 0)
        passed++;
    bkv_test_vectors_report("rfc9497 oprf P256-SHA256 DeriveKeyPair (skSm)", passed, 1, 1);

    /* pk is sk * G, and pk may be omitted. */
    CU_ASSERT_EQUAL(bkv_p256_mul_base(want, pk2), BKV_OK);
    CU_ASSERT_EQUAL(memcmp(pk, pk2, 33), 0);
    CU_ASSERT_EQUAL(bkv_oprf_derive_key_pair(seed, info, info_len, sk, NULL), BKV_OK);
    CU_ASSERT_EQUAL(memcmp(sk, want, 32), 0);

    /* The infos OPAQUE uses give distinct valid keys. */
    {
        static const char i1[] = "OPAQUE-DeriveKeyPair";
        static const char i2[] = "OPAQUE-DeriveDiffieHellmanKeyPair";
        uint8_t sk2[32];

        CU_ASSERT_EQUAL(bkv_oprf_derive_key_pair(seed, (const uint8_t *)i1, sizeof(i1) - 1, sk, pk),
                        BKV_OK);
        CU_ASSERT_EQUAL(
            bkv_oprf_derive_key_pair(seed, (const uint8_t *)i2, sizeof(i2) - 1, sk2, pk2), BKV_OK);
        CU_ASSERT_EQUAL(bkv_p256_scalar_check(sk), BKV_OK);
        CU_ASSERT_NOT_EQUAL(memcmp(sk, sk2, 32), 0);
        CU_ASSERT_NOT_EQUAL(memcmp(pk, pk2, 33), 0);
    }

    /* Empty info is allowed; info longer than 2^16-1 bytes is not. */
    CU_ASSERT_EQUAL(bkv_oprf_derive_key_pair(seed, NULL, 0, sk, NULL), BKV_OK);
    CU_ASSERT_EQUAL(bkv_oprf_derive_key_pair(seed, NULL, 5, sk, NULL), BKV_ERR_INVALID);
    {
        uint8_t *big = calloc(1, 65536);

        CU_ASSERT_PTR_NOT_NULL_FATAL(big);
        CU_ASSERT_EQUAL(bkv_oprf_derive_key_pair(seed, big, 65536, sk, NULL), BKV_ERR_LENGTH);
        CU_ASSERT_EQUAL(bkv_oprf_derive_key_pair(seed, big, 65535, sk, NULL), BKV_OK);
        free(big);
    }
}

static void test_oprf_vectors(void)
{
    const json_t *tests = json_object_get(mode0, "vectors");
    const json_t *t;
    size_t i;
    int passed = 0;

    json_array_foreach(tests, i, t)
    {
        uint8_t input[64], blind[32], blinded[33], evaluated[33], output[32];
        uint8_t got_blind[32], got_blinded[33], got_eval[33], got_out[32];
        size_t in_len = bkv_test_hex(t, "Input", input, sizeof(input));
        int ok = bkv_test_hex(t, "Blind", blind, sizeof(blind)) == 32 &&
                 bkv_test_hex(t, "BlindedElement", blinded, sizeof(blinded)) == 33 &&
                 bkv_test_hex(t, "EvaluationElement", evaluated, sizeof(evaluated)) == 33 &&
                 bkv_test_hex(t, "Output", output, sizeof(output)) == 32;

        CU_ASSERT_TRUE(ok);
        if (!ok)
            continue;
        CU_ASSERT_EQUAL(bkv_oprf_blind(input, in_len, blind, got_blind, got_blinded), BKV_OK);
        CU_ASSERT_EQUAL(bkv_oprf_blind_evaluate(sk_vec, got_blinded, got_eval), BKV_OK);
        CU_ASSERT_EQUAL(bkv_oprf_finalize(input, in_len, got_blind, got_eval, got_out), BKV_OK);
        CU_ASSERT_EQUAL(memcmp(got_blind, blind, 32), 0);
        CU_ASSERT_EQUAL(memcmp(got_blinded, blinded, 33), 0);
        CU_ASSERT_EQUAL(memcmp(got_eval, evaluated, 33), 0);
        CU_ASSERT_EQUAL(memcmp(got_out, output, 32), 0);
        if (memcmp(got_blind, blind, 32) == 0 && memcmp(got_blinded, blinded, 33) == 0 &&
            memcmp(got_eval, evaluated, 33) == 0 && memcmp(got_out, output, 32) == 0)
            passed++;
    }
    bkv_test_vectors_report("rfc9497 oprf P256-SHA256 mode 0 (Blind, BlindedElement, "
                            "EvaluationElement, Output)",
                            passed, (int)json_array_size(tests), 2);
}

/* Bad 33-byte element encodings; each must fail with BKV_ERR_POINT. */
static void bad_elements(uint8_t bad[][BKV_P256_ELEMENT_LEN], int *count)
{
    static const uint8_t p_be[32] = {
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    };
    int n = 0;

    /* Valid x, wrong prefixes: 04 (uncompressed), 00, 06 (hybrid), 01, ff. */
    for (int i = 0; i < 5; i++) {
        static const uint8_t prefixes[] = {0x04, 0x00, 0x06, 0x01, 0xff};
        memcpy(bad[n], good_element, 33);
        bad[n++][0] = prefixes[i];
    }
    /* A lone 00 (the identity for OpenSSL) padded with zeros. */
    memset(bad[n++], 0, 33);
    /* x = p and x = 2^256 - 1, both >= p. */
    bad[n][0] = 0x02;
    memcpy(bad[n++] + 1, p_be, 32);
    bad[n][0] = 0x03;
    memset(bad[n++] + 1, 0xff, 32);
    /* x = 1: x^3 - 3x + b is not a square, so no point has this x. */
    memset(bad[n], 0, 33);
    bad[n][0] = 0x02;
    bad[n++][32] = 0x01;
    *count = n;
}

static void test_element_validation(void)
{
    uint8_t bad[16][BKV_P256_ELEMENT_LEN], out[33], output[32], buf[65];
    static const uint8_t input[] = {0x00};
    EC_POINT *pt = EC_POINT_new(bkv_p256_group());
    int n = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(pt);
    bad_elements(bad, &n);
    for (int i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(bkv_oprf_blind_evaluate(sk_vec, bad[i], out), BKV_ERR_POINT);
        CU_ASSERT_EQUAL(bkv_oprf_finalize(input, 1, good_scalar, bad[i], output), BKV_ERR_POINT);
    }
    /*
     * The OPRF API takes fixed 33-byte elements, so a wrong length cannot reach
     * it; the decoder it relies on refuses other lengths, a lone 00 byte included.
     */
    memset(buf, 0, sizeof(buf));
    memcpy(buf, good_element, 33);
    CU_ASSERT_EQUAL(bkv_p256_element_decode(buf, 32, pt, NULL), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_p256_element_decode(buf, 34, pt, NULL), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_p256_element_decode(buf, 65, pt, NULL), BKV_ERR_LENGTH);
    buf[0] = 0x00;
    CU_ASSERT_EQUAL(bkv_p256_element_decode(buf, 1, pt, NULL), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_p256_element_decode(good_element, 33, pt, NULL), BKV_OK);
    EC_POINT_free(pt);
}

static void test_scalar_validation(void)
{
    static const uint8_t order[32] = {
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17,
        0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
    };
    static const uint8_t input[] = {0x00};
    uint8_t bad[3][32], blind[32], blinded[33], out[33], output[32];

    memset(bad[0], 0, 32);     /* zero */
    memcpy(bad[1], order, 32); /* n */
    memset(bad[2], 0xff, 32);  /* 2^256 - 1 */
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(bkv_oprf_blind_evaluate(bad[i], good_element, out), BKV_ERR_SCALAR);
        CU_ASSERT_EQUAL(bkv_oprf_blind(input, 1, bad[i], blind, blinded), BKV_ERR_SCALAR);
        CU_ASSERT_EQUAL(bkv_oprf_finalize(input, 1, bad[i], good_element, output), BKV_ERR_SCALAR);
    }
    /* n - 1 is the largest valid scalar. */
    memcpy(bad[1], order, 32);
    bad[1][31]--;
    CU_ASSERT_EQUAL(bkv_oprf_blind_evaluate(bad[1], good_element, out), BKV_OK);
    CU_ASSERT_EQUAL(bkv_oprf_blind(input, 1, bad[1], blind, blinded), BKV_OK);
}

static void test_random_blind_round_trip(void)
{
    const json_t *tests = json_object_get(mode0, "vectors");
    const json_t *t;
    size_t i;

    json_array_foreach(tests, i, t)
    {
        uint8_t input[64], output[32], blind[32], blinded[33], evaluated[33], got[32];
        uint8_t blind2[32], blinded2[33];
        size_t in_len = bkv_test_hex(t, "Input", input, sizeof(input));

        CU_ASSERT_EQUAL_FATAL(bkv_test_hex(t, "Output", output, sizeof(output)), 32);
        CU_ASSERT_EQUAL(bkv_oprf_blind(input, in_len, NULL, blind, blinded), BKV_OK);
        CU_ASSERT_EQUAL(bkv_p256_scalar_check(blind), BKV_OK);
        CU_ASSERT_EQUAL(bkv_oprf_blind_evaluate(sk_vec, blinded, evaluated), BKV_OK);
        CU_ASSERT_EQUAL(bkv_oprf_finalize(input, in_len, blind, evaluated, got), BKV_OK);
        CU_ASSERT_EQUAL(memcmp(got, output, 32), 0);
        /* A second random blind differs and gives a different blinded element. */
        CU_ASSERT_EQUAL(bkv_oprf_blind(input, in_len, NULL, blind2, blinded2), BKV_OK);
        CU_ASSERT_NOT_EQUAL(memcmp(blind, blind2, 32), 0);
        CU_ASSERT_NOT_EQUAL(memcmp(blinded, blinded2, 33), 0);
        /* Finalizing with the wrong blind gives another output. */
        CU_ASSERT_EQUAL(bkv_oprf_finalize(input, in_len, blind2, evaluated, got), BKV_OK);
        CU_ASSERT_NOT_EQUAL(memcmp(got, output, 32), 0);
    }
}

static void test_input_length(void)
{
    uint8_t *big = calloc(1, 65535);
    uint8_t blind[32], blinded[33], evaluated[33], output[32];

    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    /* 2^16 - 1 bytes and more are refused. */
    CU_ASSERT_EQUAL(bkv_oprf_blind(big, 65535, good_scalar, blind, blinded), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_oprf_finalize(big, 65535, good_scalar, good_element, output),
                    BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_oprf_blind(big, (size_t)1 << 40, good_scalar, blind, blinded),
                    BKV_ERR_LENGTH);
    /* 2^16 - 2 bytes work end to end. */
    CU_ASSERT_EQUAL(bkv_oprf_blind(big, 65534, NULL, blind, blinded), BKV_OK);
    CU_ASSERT_EQUAL(bkv_oprf_blind_evaluate(sk_vec, blinded, evaluated), BKV_OK);
    CU_ASSERT_EQUAL(bkv_oprf_finalize(big, 65534, blind, evaluated, output), BKV_OK);
    /* The empty input is valid; a NULL pointer with a length is not. */
    CU_ASSERT_EQUAL(bkv_oprf_blind(NULL, 0, NULL, blind, blinded), BKV_OK);
    CU_ASSERT_EQUAL(bkv_oprf_blind(NULL, 3, NULL, blind, blinded), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_oprf_finalize(NULL, 3, good_scalar, good_element, output), BKV_ERR_INVALID);
    free(big);
}

static CU_TestInfo tests[] = {
    {"DeriveKeyPair vector", test_derive_key_pair_vector},
    {"mode 0 vectors", test_oprf_vectors},
    {"element validation", test_element_validation},
    {"scalar validation", test_scalar_validation},
    {"random blind round trip", test_random_blind_round_trip},
    {"input length", test_input_length},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return bkv_test_main("proto_oprf", tests, suite_init, suite_cleanup);
}
