/*
 * proto/hpke: RFC 9180 base mode against both DHKEM(P-256) entries of the
 * official test vectors (DeriveKeyPair, Encap/Decap, key schedule, 2 x 257
 * encryptions, 2 x 3 exports), the receiver setup with the DH computed
 * outside (as an HSM would), and the failure modes: tampering, wrong
 * sequence numbers, invalid enc, unsupported ids and the sequence limit.
 */
#include <string.h>

#include "harness.h"
#include "proto/err.h"
#include "proto/hpke.h"
#include "proto/util.h"

#define MAXBUF 512

static const struct bkv_hpke_suite p256_128 = {BKV_HPKE_KEM_P256_SHA256, BKV_HPKE_KDF_HKDF_SHA256,
                                               BKV_HPKE_AEAD_AES_128_GCM};

/* One vector entry, decoded. */
struct vec {
    struct bkv_hpke_suite suite;
    uint8_t info[MAXBUF], ikmE[64], ikmR[64], skEm[32], skRm[32], pkEm[65], pkRm[65];
    uint8_t enc[65], ss[32], key[32], base_nonce[12], exporter_secret[32];
    size_t info_len, ikmE_len, ikmR_len, key_len;
    const json_t *encryptions, *exports;
};

static json_t *root;

static int suite_init(void)
{
    root = bkv_test_vectors("rfc9180-hpke-p256.json");
    return 0;
}

static int suite_cleanup(void)
{
    json_decref(root);
    return 0;
}

static void load(size_t index, struct vec *v)
{
    const json_t *e = json_array_get(json_object_get(root, "vectors"), index);

    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL_FATAL(json_integer_value(json_object_get(e, "mode")), 0);
    v->suite.kem = (uint16_t)json_integer_value(json_object_get(e, "kem_id"));
    v->suite.kdf = (uint16_t)json_integer_value(json_object_get(e, "kdf_id"));
    v->suite.aead = (uint16_t)json_integer_value(json_object_get(e, "aead_id"));
    v->info_len = bkv_test_hex(e, "info", v->info, sizeof(v->info));
    v->ikmE_len = bkv_test_hex(e, "ikmE", v->ikmE, sizeof(v->ikmE));
    v->ikmR_len = bkv_test_hex(e, "ikmR", v->ikmR, sizeof(v->ikmR));
    CU_ASSERT_EQUAL(bkv_test_hex(e, "skEm", v->skEm, sizeof(v->skEm)), 32);
    CU_ASSERT_EQUAL(bkv_test_hex(e, "skRm", v->skRm, sizeof(v->skRm)), 32);
    CU_ASSERT_EQUAL(bkv_test_hex(e, "pkEm", v->pkEm, sizeof(v->pkEm)), 65);
    CU_ASSERT_EQUAL(bkv_test_hex(e, "pkRm", v->pkRm, sizeof(v->pkRm)), 65);
    CU_ASSERT_EQUAL(bkv_test_hex(e, "enc", v->enc, sizeof(v->enc)), 65);
    CU_ASSERT_EQUAL(bkv_test_hex(e, "shared_secret", v->ss, sizeof(v->ss)), 32);
    v->key_len = bkv_test_hex(e, "key", v->key, sizeof(v->key));
    CU_ASSERT_EQUAL(bkv_test_hex(e, "base_nonce", v->base_nonce, sizeof(v->base_nonce)), 12);
    CU_ASSERT_EQUAL(bkv_test_hex(e, "exporter_secret", v->exporter_secret, 32), 32);
    v->encryptions = json_object_get(e, "encryptions");
    v->exports = json_object_get(e, "exports");
}

static const char *aead_name(uint16_t aead)
{
    return aead == BKV_HPKE_AEAD_AES_128_GCM ? "aes128gcm" : "aes256gcm";
}

/* 1 when ctx holds exactly the vector's key schedule outputs. */
static int ctx_matches(const struct bkv_hpke_ctx *ctx, const struct vec *v)
{
    static const uint8_t zero_seq[12];

    return ctx->key_len == v->key_len && memcmp(ctx->key, v->key, v->key_len) == 0 &&
           memcmp(ctx->base_nonce, v->base_nonce, 12) == 0 &&
           memcmp(ctx->exporter_secret, v->exporter_secret, 32) == 0 &&
           memcmp(ctx->seq, zero_seq, 12) == 0;
}

/* Key derivation, Encap/Decap and SetupBase{S,R}: returns checks passed of 8. */
static int check_setup(const struct vec *v, struct bkv_hpke_ctx *s, struct bkv_hpke_ctx *r)
{
    uint8_t sk[32], pk[65], ss[32], enc[65];
    size_t pk_len = 0, enc_len = 0;
    int ok = 0;

    ok += bkv_hpke_derive_key_pair(v->suite.kem, v->ikmE, v->ikmE_len, sk, pk, &pk_len) == 0 &&
          memcmp(sk, v->skEm, 32) == 0 && pk_len == 65 && memcmp(pk, v->pkEm, 65) == 0;
    ok += bkv_hpke_derive_key_pair(v->suite.kem, v->ikmR, v->ikmR_len, sk, pk, &pk_len) == 0 &&
          memcmp(sk, v->skRm, 32) == 0 && pk_len == 65 && memcmp(pk, v->pkRm, 65) == 0;
    ok += bkv_hpke_public_key(v->suite.kem, v->skRm, pk, &pk_len) == 0 &&
          memcmp(pk, v->pkRm, 65) == 0;
    ok += bkv_hpke_kem_encap(v->suite.kem, v->pkRm, 65, v->skEm, ss, enc, &enc_len) == 0 &&
          enc_len == 65 && memcmp(enc, v->enc, 65) == 0 && memcmp(ss, v->ss, 32) == 0;
    memset(ss, 0, sizeof(ss));
    ok += bkv_hpke_kem_decap(v->suite.kem, v->enc, 65, v->skRm, ss) == 0 &&
          memcmp(ss, v->ss, 32) == 0;
    ok += bkv_hpke_key_schedule(v->suite, v->ss, v->info, v->info_len, s) == 0 && ctx_matches(s, v);
    memset(enc, 0, sizeof(enc));
    ok += bkv_hpke_setup_base_s(v->suite, v->pkRm, 65, v->info, v->info_len, v->skEm, enc, &enc_len,
                                s) == 0 &&
          enc_len == 65 && memcmp(enc, v->enc, 65) == 0 && ctx_matches(s, v);
    ok += bkv_hpke_setup_base_r(v->suite, v->enc, 65, v->skRm, v->info, v->info_len, r) == 0 &&
          ctx_matches(r, v);
    return ok;
}

/* Every encryption in order on both sides; returns how many matched fully. */
static int check_encryptions(const struct vec *v, struct bkv_hpke_ctx *s, struct bkv_hpke_ctx *r,
                             int *total)
{
    int passed = 0;
    size_t i;
    const json_t *e;

    *total = (int)json_array_size(v->encryptions);
    json_array_foreach(v->encryptions, i, e)
    {
        uint8_t aad[64], pt[MAXBUF], ct[MAXBUF], nonce[12], out[MAXBUF], out2[MAXBUF];
        size_t aad_len = bkv_test_hex(e, "aad", aad, sizeof(aad));
        size_t pt_len = bkv_test_hex(e, "pt", pt, sizeof(pt));
        size_t ct_len = bkv_test_hex(e, "ct", ct, sizeof(ct));
        size_t out_len = 0, out2_len = 0;
        int ok = 1;

        CU_ASSERT_EQUAL(bkv_test_hex(e, "nonce", nonce, sizeof(nonce)), 12);
        /* nonce = base_nonce XOR I2OSP(seq, 12), with seq = i here. */
        for (size_t k = 0; k < 12; k++)
            ok &= (s->base_nonce[k] ^ s->seq[k]) == nonce[k];
        ok &= s->seq[11] == (uint8_t)i && s->seq[10] == (uint8_t)(i >> 8);
        ok &= bkv_hpke_seal(s, aad, aad_len, pt, pt_len, out, sizeof(out), &out_len) == 0 &&
              out_len == ct_len && memcmp(out, ct, ct_len) == 0;
        ok &= bkv_hpke_open(r, aad, aad_len, ct, ct_len, out2, sizeof(out2), &out2_len) == 0 &&
              out2_len == pt_len && memcmp(out2, pt, pt_len) == 0;
        passed += ok;
    }
    return passed;
}

static int check_exports(const struct vec *v, const struct bkv_hpke_ctx *s,
                         const struct bkv_hpke_ctx *r, int *total)
{
    int passed = 0;
    size_t i;
    const json_t *e;

    *total = (int)json_array_size(v->exports);
    json_array_foreach(v->exports, i, e)
    {
        uint8_t ectx[64], want[64], got[64];
        size_t ectx_len = bkv_test_hex(e, "exporter_context", ectx, sizeof(ectx));
        size_t want_len = bkv_test_hex(e, "exported_value", want, sizeof(want));
        size_t L = (size_t)json_integer_value(json_object_get(e, "L"));
        int ok = L == want_len;

        ok &= bkv_hpke_export(s, ectx, ectx_len, got, L) == 0 && memcmp(got, want, L) == 0;
        memset(got, 0, sizeof(got));
        ok &= bkv_hpke_export(r, ectx, ectx_len, got, L) == 0 && memcmp(got, want, L) == 0;
        passed += ok;
    }
    return passed;
}

static void test_rfc9180_vectors(void)
{
    size_t n = json_array_size(json_object_get(root, "vectors"));

    CU_ASSERT_EQUAL(n, 2);
    for (size_t idx = 0; idx < n; idx++) {
        struct vec v;
        struct bkv_hpke_ctx s, r;
        char what[96];
        int total = 0, passed;

        load(idx, &v);
        CU_ASSERT_EQUAL(bkv_hpke_suite_check(v.suite), 0);
        passed = check_setup(&v, &s, &r);
        snprintf(what, sizeof(what), "rfc9180 %s derive/encap/decap/key schedule",
                 aead_name(v.suite.aead));
        bkv_test_vectors_report(what, passed, 8, 8);

        passed = check_encryptions(&v, &s, &r, &total);
        snprintf(what, sizeof(what), "rfc9180 %s encryptions", aead_name(v.suite.aead));
        bkv_test_vectors_report(what, passed, total, 257);

        passed = check_exports(&v, &s, &r, &total);
        snprintf(what, sizeof(what), "rfc9180 %s exports", aead_name(v.suite.aead));
        bkv_test_vectors_report(what, passed, total, 3);
        bkv_hpke_ctx_wipe(&s);
        bkv_hpke_ctx_wipe(&r);
    }
}

/* The HSM path: SetupBaseR with dh computed elsewhere gives the same context. */
static void test_receiver_dh_from_elsewhere(void)
{
    int passed = 0, total = 0;

    for (size_t idx = 0; idx < 2; idx++) {
        struct vec v;
        struct bkv_hpke_ctx r;
        uint8_t dh[32], ss[32], pt[MAXBUF], ct[MAXBUF];
        size_t ct_len, pt_len = 0;
        const json_t *e;

        load(idx, &v);
        total += 3;
        CU_ASSERT_FATAL(bkv_test_p256_ecdh_x(v.skRm, v.enc, dh));
        passed += bkv_hpke_kem_decap_dh(v.suite.kem, v.enc, 65, v.pkRm, 65, dh, ss) == 0 &&
                  memcmp(ss, v.ss, 32) == 0;
        passed += bkv_hpke_setup_base_r_dh(v.suite, v.enc, 65, v.pkRm, 65, dh, v.info, v.info_len,
                                           &r) == 0 &&
                  ctx_matches(&r, &v);
        e = json_array_get(v.encryptions, 0);
        ct_len = bkv_test_hex(e, "ct", ct, sizeof(ct));
        passed += bkv_hpke_open(&r, (const uint8_t *)"Count-0", 7, ct, ct_len, pt, sizeof(pt),
                                &pt_len) == 0 &&
                  pt_len == ct_len - 16;
        /* A dh that is not skR * pkE gives a context that cannot open. */
        dh[5] ^= 1;
        CU_ASSERT_EQUAL(
            bkv_hpke_setup_base_r_dh(v.suite, v.enc, 65, v.pkRm, 65, dh, v.info, v.info_len, &r),
            0);
        CU_ASSERT_EQUAL(
            bkv_hpke_open(&r, (const uint8_t *)"Count-0", 7, ct, ct_len, pt, sizeof(pt), &pt_len),
            BKV_ERR_DECRYPT);
        /* pkR is validated too. */
        v.pkRm[64] ^= 1;
        CU_ASSERT_EQUAL(
            bkv_hpke_setup_base_r_dh(v.suite, v.enc, 65, v.pkRm, 65, dh, v.info, v.info_len, &r),
            BKV_ERR_POINT);
        bkv_hpke_ctx_wipe(&r);
    }
    bkv_test_vectors_report("rfc9180 receiver with dh from elsewhere", passed, total, 6);
}

/* A fresh sender/receiver pair on the first vector's keys (random ephemeral). */
static void fresh_pair(struct bkv_hpke_suite suite, struct vec *v, struct bkv_hpke_ctx *s,
                       struct bkv_hpke_ctx *r)
{
    uint8_t enc[65];
    size_t enc_len = 0;

    load(0, v);
    CU_ASSERT_EQUAL_FATAL(
        bkv_hpke_setup_base_s(suite, v->pkRm, 65, v->info, v->info_len, NULL, enc, &enc_len, s), 0);
    CU_ASSERT_EQUAL_FATAL(
        bkv_hpke_setup_base_r(suite, enc, enc_len, v->skRm, v->info, v->info_len, r), 0);
}

static void test_tampering(void)
{
    static const uint8_t msg[] = "attack at dawn";
    static const uint8_t aad[] = "Count-0";
    struct vec v;
    struct bkv_hpke_ctx s, r;
    uint8_t ct[64], bad[64], pt[64];
    size_t ct_len = 0, pt_len = 0;

    fresh_pair(p256_128, &v, &s, &r);
    CU_ASSERT_EQUAL(bkv_hpke_seal(&s, aad, 7, msg, sizeof(msg), ct, sizeof(ct), &ct_len), 0);
    CU_ASSERT_EQUAL(ct_len, sizeof(msg) + 16);
    /* Every bit of the ciphertext and tag matters; seq does not move on failure. */
    for (size_t i = 0; i < ct_len * 8; i++) {
        memcpy(bad, ct, ct_len);
        bad[i / 8] ^= (uint8_t)(1u << (i % 8));
        CU_ASSERT_EQUAL(bkv_hpke_open(&r, aad, 7, bad, ct_len, pt, sizeof(pt), &pt_len),
                        BKV_ERR_DECRYPT);
    }
    {
        uint8_t aad2[7];
        memcpy(aad2, aad, 7);
        aad2[6] ^= 0x01;
        CU_ASSERT_EQUAL(bkv_hpke_open(&r, aad2, 7, ct, ct_len, pt, sizeof(pt), &pt_len),
                        BKV_ERR_DECRYPT);
        CU_ASSERT_EQUAL(bkv_hpke_open(&r, NULL, 0, ct, ct_len, pt, sizeof(pt), &pt_len),
                        BKV_ERR_DECRYPT);
    }
    CU_ASSERT_EQUAL(r.seq[11], 0);
    /* Lengths: shorter than a tag, too small an output buffer. */
    CU_ASSERT_EQUAL(bkv_hpke_open(&r, aad, 7, ct, 15, pt, sizeof(pt), &pt_len), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_hpke_open(&r, aad, 7, ct, ct_len, pt, sizeof(msg) - 1, &pt_len),
                    BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_hpke_seal(&s, aad, 7, msg, sizeof(msg), bad, sizeof(msg) + 15, &ct_len),
                    BKV_ERR_LENGTH);
    /* The untouched message still opens at seq 0, then seq advances. */
    CU_ASSERT_EQUAL(bkv_hpke_open(&r, aad, 7, ct, ct_len, pt, sizeof(pt), &pt_len), 0);
    CU_ASSERT_EQUAL(pt_len, sizeof(msg));
    CU_ASSERT_EQUAL(memcmp(pt, msg, sizeof(msg)), 0);
    CU_ASSERT_EQUAL(r.seq[11], 1);
    /* Replaying it at seq 1 fails: wrong nonce. */
    CU_ASSERT_EQUAL(bkv_hpke_open(&r, aad, 7, ct, ct_len, pt, sizeof(pt), &pt_len),
                    BKV_ERR_DECRYPT);
    bkv_hpke_ctx_wipe(&s);
    bkv_hpke_ctx_wipe(&r);
}

static void test_wrong_sequence(void)
{
    struct vec v;
    struct bkv_hpke_ctx s, r;
    uint8_t ct1[64], ct2[64], pt[64];
    size_t l1 = 0, l2 = 0, pt_len = 0;

    fresh_pair(p256_128, &v, &s, &r);
    CU_ASSERT_EQUAL(bkv_hpke_seal(&s, NULL, 0, (const uint8_t *)"one", 3, ct1, 64, &l1), 0);
    CU_ASSERT_EQUAL(bkv_hpke_seal(&s, NULL, 0, (const uint8_t *)"two", 3, ct2, 64, &l2), 0);
    /* Out of order: the second message at seq 0 fails, and does not move seq. */
    CU_ASSERT_EQUAL(bkv_hpke_open(&r, NULL, 0, ct2, l2, pt, 64, &pt_len), BKV_ERR_DECRYPT);
    CU_ASSERT_EQUAL(bkv_hpke_open(&r, NULL, 0, ct1, l1, pt, 64, &pt_len), 0);
    CU_ASSERT_EQUAL(bkv_hpke_open(&r, NULL, 0, ct2, l2, pt, 64, &pt_len), 0);
    CU_ASSERT_EQUAL(memcmp(pt, "two", 3), 0);
    bkv_hpke_ctx_wipe(&s);
    bkv_hpke_ctx_wipe(&r);
}

static int is_wiped(const struct bkv_hpke_ctx *ctx)
{
    const uint8_t *p = (const uint8_t *)ctx;
    uint8_t acc = 0;

    for (size_t i = 0; i < sizeof(*ctx); i++)
        acc |= p[i];
    return acc == 0;
}

static void test_bad_enc(void)
{
    struct vec v;
    struct bkv_hpke_ctx r;
    uint8_t enc[66], dh[32], zero[65] = {0};

    load(0, &v);
    memset(dh, 0x11, sizeof(dh));
    memcpy(enc, v.enc, 65);
    enc[65] = 0;
    /* Wrong lengths. */
    CU_ASSERT_EQUAL(bkv_hpke_setup_base_r(p256_128, enc, 64, v.skRm, NULL, 0, &r), BKV_ERR_LENGTH);
    CU_ASSERT_TRUE(is_wiped(&r));
    CU_ASSERT_EQUAL(bkv_hpke_setup_base_r(p256_128, enc, 66, v.skRm, NULL, 0, &r), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_hpke_setup_base_r(p256_128, enc, 0, v.skRm, NULL, 0, &r), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_hpke_setup_base_r(p256_128, enc, 33, v.skRm, NULL, 0, &r), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_hpke_setup_base_r_dh(p256_128, enc, 64, v.pkRm, 65, dh, NULL, 0, &r),
                    BKV_ERR_LENGTH);
    /* Compressed and hybrid prefixes on a 65-byte string. */
    enc[0] = 0x02;
    CU_ASSERT_EQUAL(bkv_hpke_setup_base_r(p256_128, enc, 65, v.skRm, NULL, 0, &r), BKV_ERR_POINT);
    enc[0] = 0x06;
    CU_ASSERT_EQUAL(bkv_hpke_setup_base_r(p256_128, enc, 65, v.skRm, NULL, 0, &r), BKV_ERR_POINT);
    enc[0] = 0x07;
    CU_ASSERT_EQUAL(bkv_hpke_setup_base_r_dh(p256_128, enc, 65, v.pkRm, 65, dh, NULL, 0, &r),
                    BKV_ERR_POINT);
    CU_ASSERT_TRUE(is_wiped(&r));
    /* Off the curve. */
    enc[0] = 0x04;
    enc[64] ^= 0x01;
    CU_ASSERT_EQUAL(bkv_hpke_setup_base_r(p256_128, enc, 65, v.skRm, NULL, 0, &r), BKV_ERR_POINT);
    CU_ASSERT_EQUAL(bkv_hpke_setup_base_r_dh(p256_128, enc, 65, v.pkRm, 65, dh, NULL, 0, &r),
                    BKV_ERR_POINT);
    CU_ASSERT_EQUAL(bkv_hpke_enc_check(BKV_HPKE_KEM_P256_SHA256, enc, 65), BKV_ERR_POINT);
    /* All zero, and 04 || 0 || 0. */
    CU_ASSERT_EQUAL(bkv_hpke_setup_base_r(p256_128, zero, 65, v.skRm, NULL, 0, &r), BKV_ERR_POINT);
    zero[0] = 0x04;
    CU_ASSERT_EQUAL(bkv_hpke_setup_base_r(p256_128, zero, 65, v.skRm, NULL, 0, &r), BKV_ERR_POINT);
    CU_ASSERT_EQUAL(bkv_hpke_enc_check(BKV_HPKE_KEM_P256_SHA256, v.enc, 65), 0);
    /* The sender validates pkR the same way. */
    {
        uint8_t out[65];
        size_t out_len = 0;
        struct bkv_hpke_ctx s;
        v.pkRm[40] ^= 0x01;
        CU_ASSERT_EQUAL(
            bkv_hpke_setup_base_s(p256_128, v.pkRm, 65, NULL, 0, NULL, out, &out_len, &s),
            BKV_ERR_POINT);
        CU_ASSERT_TRUE(is_wiped(&s));
        CU_ASSERT_EQUAL(
            bkv_hpke_setup_base_s(p256_128, v.pkRm, 64, NULL, 0, NULL, out, &out_len, &s),
            BKV_ERR_LENGTH);
    }
}

static void test_bad_keys(void)
{
    static const uint8_t zero_sk[32];
    static const uint8_t order[32] = {
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17,
        0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
    };
    struct vec v;
    struct bkv_hpke_ctx r, s;
    uint8_t sk[32], pk[65], enc[65];
    size_t pk_len = 0, enc_len = 0;

    load(0, &v);
    CU_ASSERT_EQUAL(bkv_hpke_setup_base_r(p256_128, v.enc, 65, zero_sk, NULL, 0, &r),
                    BKV_ERR_SCALAR);
    CU_ASSERT_EQUAL(bkv_hpke_setup_base_r(p256_128, v.enc, 65, order, NULL, 0, &r), BKV_ERR_SCALAR);
    CU_ASSERT_EQUAL(bkv_hpke_setup_base_s(p256_128, v.pkRm, 65, NULL, 0, order, enc, &enc_len, &s),
                    BKV_ERR_SCALAR);
    CU_ASSERT_EQUAL(bkv_hpke_public_key(BKV_HPKE_KEM_P256_SHA256, zero_sk, pk, &pk_len),
                    BKV_ERR_SCALAR);
    /* DeriveKeyPair wants at least Nsk bytes of ikm. */
    CU_ASSERT_EQUAL(bkv_hpke_derive_key_pair(BKV_HPKE_KEM_P256_SHA256, v.ikmR, 31, sk, pk, &pk_len),
                    BKV_ERR_LENGTH);
}

static void test_unsupported(void)
{
    struct vec v;
    struct bkv_hpke_ctx ctx;
    uint8_t sk[32], pk[65], enc[65], ss[32] = {0}, ct[32], key[32] = {0}, nonce[12] = {0};
    size_t pk_len = 0, enc_len = 0;
    const struct bkv_hpke_suite bad[] = {
        {0x0011, 1, 1}, {0x0012, 1, 1}, {0x0021, 1, 1}, {0, 1, 1},      {0x0010, 2, 1},
        {0x0010, 3, 1}, {0x0010, 0, 1}, {0x0010, 1, 3}, {0x0010, 1, 0}, {0x0010, 1, 0xffff},
    };

    load(0, &v);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT_EQUAL(bkv_hpke_suite_check(bad[i]), BKV_ERR_UNSUPPORTED);
        CU_ASSERT_EQUAL(
            bkv_hpke_setup_base_s(bad[i], v.pkRm, 65, NULL, 0, NULL, enc, &enc_len, &ctx),
            BKV_ERR_UNSUPPORTED);
        CU_ASSERT_EQUAL(bkv_hpke_setup_base_r(bad[i], v.enc, 65, v.skRm, NULL, 0, &ctx),
                        BKV_ERR_UNSUPPORTED);
        CU_ASSERT_EQUAL(bkv_hpke_setup_base_r_dh(bad[i], v.enc, 65, v.pkRm, 65, ss, NULL, 0, &ctx),
                        BKV_ERR_UNSUPPORTED);
        CU_ASSERT_EQUAL(bkv_hpke_key_schedule(bad[i], v.ss, NULL, 0, &ctx), BKV_ERR_UNSUPPORTED);
    }
    CU_ASSERT_EQUAL(bkv_hpke_derive_key_pair(0x0011, v.ikmE, 32, sk, pk, &pk_len),
                    BKV_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(bkv_hpke_kem_encap(0x0011, v.pkRm, 65, NULL, ss, enc, &enc_len),
                    BKV_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(bkv_hpke_enc_check(0x0011, v.enc, 65), BKV_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(bkv_hpke_kem_enc_len(0x0011), 0);
    CU_ASSERT_EQUAL(bkv_hpke_aead_key_len(0x0003), 0);
    CU_ASSERT_EQUAL(bkv_hpke_aead_seal(0x0003, key, nonce, NULL, 0, NULL, 0, ct),
                    BKV_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(bkv_hpke_aead_open(0x0003, key, nonce, NULL, 0, ct, 16, NULL),
                    BKV_ERR_UNSUPPORTED);
}

static void test_sequence_limit(void)
{
    static const uint8_t near_limit[12] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                           0xff, 0xff, 0xff, 0xff, 0xff, 0xfe};
    static const uint8_t at_limit[12] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                         0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t carry[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff};
    struct vec v;
    struct bkv_hpke_ctx s, r;
    uint8_t ct[64], ct2[64], pt[64];
    size_t ct_len = 0, pt_len = 0;

    fresh_pair(p256_128, &v, &s, &r);
    /* seq = 2^96 - 2 is the last usable one; at 2^96 - 1 both sides refuse. */
    bkv_hpke_ctx_set_seq(&s, near_limit);
    bkv_hpke_ctx_set_seq(&r, near_limit);
    CU_ASSERT_EQUAL(bkv_hpke_seal(&s, NULL, 0, (const uint8_t *)"last", 4, ct, 64, &ct_len), 0);
    CU_ASSERT_EQUAL(memcmp(s.seq, at_limit, 12), 0);
    CU_ASSERT_EQUAL(bkv_hpke_seal(&s, NULL, 0, (const uint8_t *)"over", 4, ct2, 64, &ct_len),
                    BKV_ERR_LIMIT);
    CU_ASSERT_EQUAL(memcmp(s.seq, at_limit, 12), 0);
    CU_ASSERT_EQUAL(bkv_hpke_open(&r, NULL, 0, ct, 20, pt, 64, &pt_len), 0);
    CU_ASSERT_EQUAL(memcmp(pt, "last", 4), 0);
    CU_ASSERT_EQUAL(bkv_hpke_open(&r, NULL, 0, ct, 20, pt, 64, &pt_len), BKV_ERR_LIMIT);
    /* The counter carries across bytes. */
    bkv_hpke_ctx_set_seq(&s, carry);
    CU_ASSERT_EQUAL(bkv_hpke_seal(&s, NULL, 0, NULL, 0, ct, 64, &ct_len), 0);
    CU_ASSERT_EQUAL(ct_len, 16);
    CU_ASSERT_EQUAL(s.seq[10], 1);
    CU_ASSERT_EQUAL(s.seq[11], 0);
    bkv_hpke_ctx_wipe(&s);
    bkv_hpke_ctx_wipe(&r);
    CU_ASSERT_TRUE(is_wiped(&s));
}

static void test_round_trip_aes256_in_place(void)
{
    const struct bkv_hpke_suite suite = {BKV_HPKE_KEM_P256_SHA256, BKV_HPKE_KDF_HKDF_SHA256,
                                         BKV_HPKE_AEAD_AES_256_GCM};
    struct vec v;
    struct bkv_hpke_ctx s, r;
    uint8_t buf[300], orig[284], e1[32], e2[32];
    size_t len = 0;

    for (size_t i = 0; i < sizeof(orig); i++)
        orig[i] = (uint8_t)(i * 7);
    fresh_pair(suite, &v, &s, &r);
    CU_ASSERT_EQUAL(s.key_len, 32);
    CU_ASSERT_EQUAL(memcmp(s.key, r.key, 32), 0);
    memcpy(buf, orig, sizeof(orig));
    CU_ASSERT_EQUAL(bkv_hpke_seal(&s, orig, 3, buf, sizeof(orig), buf, sizeof(buf), &len), 0);
    CU_ASSERT_EQUAL(len, sizeof(orig) + 16);
    CU_ASSERT_EQUAL(bkv_hpke_open(&r, orig, 3, buf, len, buf, sizeof(buf), &len), 0);
    CU_ASSERT_EQUAL(len, sizeof(orig));
    CU_ASSERT_EQUAL(memcmp(buf, orig, sizeof(orig)), 0);
    /* Empty plaintext and empty aad. */
    CU_ASSERT_EQUAL(bkv_hpke_seal(&s, NULL, 0, NULL, 0, buf, 16, &len), 0);
    CU_ASSERT_EQUAL(bkv_hpke_open(&r, NULL, 0, buf, 16, NULL, 0, &len), 0);
    CU_ASSERT_EQUAL(len, 0);
    /* Exports agree; different contexts differ; L = 0 and the maximum work. */
    CU_ASSERT_EQUAL(bkv_hpke_export(&s, (const uint8_t *)"x", 1, e1, 32), 0);
    CU_ASSERT_EQUAL(bkv_hpke_export(&r, (const uint8_t *)"x", 1, e2, 32), 0);
    CU_ASSERT_EQUAL(memcmp(e1, e2, 32), 0);
    CU_ASSERT_EQUAL(bkv_hpke_export(&r, (const uint8_t *)"y", 1, e2, 32), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(e1, e2, 32), 0);
    CU_ASSERT_EQUAL(bkv_hpke_export(&r, NULL, 0, NULL, 0), 0);
    CU_ASSERT_EQUAL(bkv_hpke_export(&r, NULL, 0, e2, BKV_HPKE_MAX_EXPORT_LEN + 1), BKV_ERR_LENGTH);
    {
        static uint8_t big[BKV_HPKE_MAX_EXPORT_LEN];
        CU_ASSERT_EQUAL(bkv_hpke_export(&r, NULL, 0, big, sizeof(big)), 0);
    }
    bkv_hpke_ctx_wipe(&s);
    bkv_hpke_ctx_wipe(&r);
}

static void test_x25519(void)
{
    const struct bkv_hpke_suite suite = {BKV_HPKE_KEM_X25519_SHA256, BKV_HPKE_KDF_HKDF_SHA256,
                                         BKV_HPKE_AEAD_AES_128_GCM};
    uint8_t ikm[32], skR[32], pkR[65], enc[65], zero[32] = {0}, one[32] = {1}, ct[32], pt[32];
    size_t pk_len = 0, enc_len = 0, len = 0;
    struct bkv_hpke_ctx s, r;

    memset(ikm, 0x42, sizeof(ikm));
    CU_ASSERT_EQUAL(
        bkv_hpke_derive_key_pair(BKV_HPKE_KEM_X25519_SHA256, ikm, 32, skR, pkR, &pk_len), 0);
    CU_ASSERT_EQUAL(pk_len, 32);
    CU_ASSERT_EQUAL(bkv_hpke_setup_base_s(suite, pkR, 32, NULL, 0, NULL, enc, &enc_len, &s), 0);
    CU_ASSERT_EQUAL(enc_len, 32);
    CU_ASSERT_EQUAL(bkv_hpke_setup_base_r(suite, enc, 32, skR, NULL, 0, &r), 0);
    CU_ASSERT_EQUAL(bkv_hpke_seal(&s, NULL, 0, (const uint8_t *)"hi", 2, ct, 32, &len), 0);
    CU_ASSERT_EQUAL(bkv_hpke_open(&r, NULL, 0, ct, len, pt, 32, &len), 0);
    CU_ASSERT_EQUAL(len, 2);
    /* Small-order encs give an all-zero shared secret: rejected. */
    CU_ASSERT_EQUAL(bkv_hpke_setup_base_r(suite, zero, 32, skR, NULL, 0, &r), BKV_ERR_POINT);
    CU_ASSERT_EQUAL(bkv_hpke_setup_base_r(suite, one, 32, skR, NULL, 0, &r), BKV_ERR_POINT);
    CU_ASSERT_EQUAL(bkv_hpke_setup_base_s(suite, zero, 32, NULL, 0, NULL, enc, &enc_len, &s),
                    BKV_ERR_POINT);
    CU_ASSERT_EQUAL(bkv_hpke_setup_base_r_dh(suite, enc, 32, pkR, 32, zero, NULL, 0, &r),
                    BKV_ERR_POINT);
    CU_ASSERT_EQUAL(bkv_hpke_setup_base_r(suite, enc, 31, skR, NULL, 0, &r), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_hpke_setup_base_r(suite, enc, 65, skR, NULL, 0, &r), BKV_ERR_LENGTH);
    bkv_hpke_ctx_wipe(&s);
    bkv_hpke_ctx_wipe(&r);
}

static CU_TestInfo tests[] = {
    {"rfc9180 vectors (P-256, AES-128/256-GCM)", test_rfc9180_vectors},
    {"receiver setup with dh from elsewhere", test_receiver_dh_from_elsewhere},
    {"tampering", test_tampering},
    {"wrong sequence number", test_wrong_sequence},
    {"invalid enc and pkR", test_bad_enc},
    {"invalid private keys and ikm", test_bad_keys},
    {"unsupported ids", test_unsupported},
    {"sequence number limit", test_sequence_limit},
    {"AES-256-GCM round trip in place, exports", test_round_trip_aes256_in_place},
    {"X25519 round trip and small-order points", test_x25519},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return bkv_test_main("proto_hpke", tests, suite_init, suite_cleanup);
}
