/*
 * hsm/decap: HPKE decapsulation with the private key inside the HSM. The
 * RFC 9180 DHKEM(P-256) vectors (both AEADs: key schedule, all 257
 * encryptions, the exports) run through the HSM's ECDH after the vector's
 * skRm is imported into the test token (TEST ONLY import); the HSM path
 * equals proto's software HPKE for the same key; the realm key serves RFC
 * 9458 requests through the bkv_ohttp_dh_fn callback; invalid enc values are
 * refused before the HSM sees them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "harness.h"
#include "hsm/decap.h"
#include "testonly.h"
#include "proto/err.h"
#include "proto/hpke.h"
#include "proto/ohttp.h"

#define MAXBUF 512

static struct fx fx;
static struct bkv_hsm *h;
static struct bkv_hsm_realm realm;
static json_t *root;

static int suite_init(void)
{
    uint8_t *secrets = NULL;
    size_t len;

    root = bkv_test_vectors("rfc9180-hpke-p256.json");
    if (fx_setup(&fx) != 0 || fx_token(&fx, "node-1") != 0 || fx_open(&fx, "node-1", &h) != 0 ||
        bkv_hsm_realm_create(h, &realm, &secrets, &len) != 0)
        return 1;
    free(secrets);
    return 0;
}

static int suite_cleanup(void)
{
    bkv_hsm_close(h);
    fx_teardown(&fx);
    json_decref(root);
    return 0;
}

static const char *aead_name(uint16_t aead)
{
    return aead == BKV_HPKE_AEAD_AES_128_GCM ? "aes128gcm" : "aes256gcm";
}

/* One vector through the HSM: receiver context from the HSM's dh. */
static void run_vector(const json_t *e)
{
    struct bkv_hpke_suite suite = {
        (uint16_t)json_integer_value(json_object_get(e, "kem_id")),
        (uint16_t)json_integer_value(json_object_get(e, "kdf_id")),
        (uint16_t)json_integer_value(json_object_get(e, "aead_id")),
    };
    uint8_t info[MAXBUF], skRm[32], pkRm[65], enc[65], ss[32], key[32], nonce[12], exp[32];
    uint8_t dh[32], ss_hsm[32];
    size_t info_len = bkv_test_hex(e, "info", info, sizeof(info));
    size_t key_len = bkv_test_hex(e, "key", key, sizeof(key));
    struct bkv_hpke_ctx r;
    unsigned long k = 0;
    const json_t *x;
    size_t i;
    int setup = 0, passed = 0, total = 0;
    char what[96];

    CU_ASSERT_EQUAL(bkv_test_hex(e, "skRm", skRm, 32), 32);
    CU_ASSERT_EQUAL(bkv_test_hex(e, "pkRm", pkRm, 65), 65);
    CU_ASSERT_EQUAL(bkv_test_hex(e, "enc", enc, 65), 65);
    CU_ASSERT_EQUAL(bkv_test_hex(e, "shared_secret", ss, 32), 32);
    CU_ASSERT_EQUAL(bkv_test_hex(e, "base_nonce", nonce, 12), 12);
    CU_ASSERT_EQUAL(bkv_test_hex(e, "exporter_secret", exp, 32), 32);
    CU_ASSERT_EQUAL_FATAL(bkv_hsm_testonly_import_p256_key(h, skRm, &k), 0);

    /* dh from the HSM -> shared secret -> key schedule. */
    setup += bkv_hsm_testonly_dh(h, k, enc, 65, dh) == 0;
    setup += bkv_hpke_kem_decap_dh(suite.kem, enc, 65, pkRm, 65, dh, ss_hsm) == 0 &&
             memcmp(ss_hsm, ss, 32) == 0;
    setup += bkv_hpke_setup_base_r_dh(suite, enc, 65, pkRm, 65, dh, info, info_len, &r) == 0 &&
             r.key_len == key_len && memcmp(r.key, key, key_len) == 0 &&
             memcmp(r.base_nonce, nonce, 12) == 0 && memcmp(r.exporter_secret, exp, 32) == 0;
    snprintf(what, sizeof(what), "rfc9180 %s via HSM ECDH: dh/shared secret/key schedule",
             aead_name(suite.aead));
    bkv_test_vectors_report(what, setup, 3, 3);

    json_array_foreach(json_object_get(e, "encryptions"), i, x)
    {
        uint8_t aad[64], pt[MAXBUF], ct[MAXBUF], out[MAXBUF];
        size_t aad_len = bkv_test_hex(x, "aad", aad, sizeof(aad));
        size_t pt_len = bkv_test_hex(x, "pt", pt, sizeof(pt));
        size_t ct_len = bkv_test_hex(x, "ct", ct, sizeof(ct));
        size_t out_len = 0;

        total++;
        passed += bkv_hpke_open(&r, aad, aad_len, ct, ct_len, out, sizeof(out), &out_len) == 0 &&
                  out_len == pt_len && memcmp(out, pt, pt_len) == 0;
    }
    snprintf(what, sizeof(what), "rfc9180 %s via HSM ECDH: encryptions opened",
             aead_name(suite.aead));
    bkv_test_vectors_report(what, passed, total, 257);

    passed = total = 0;
    json_array_foreach(json_object_get(e, "exports"), i, x)
    {
        uint8_t ectx[64], want[64], got[64];
        size_t ectx_len = bkv_test_hex(x, "exporter_context", ectx, sizeof(ectx));
        size_t want_len = bkv_test_hex(x, "exported_value", want, sizeof(want));

        total++;
        passed += bkv_hpke_export(&r, ectx, ectx_len, got, want_len) == 0 &&
                  memcmp(got, want, want_len) == 0;
    }
    snprintf(what, sizeof(what), "rfc9180 %s via HSM ECDH: exports", aead_name(suite.aead));
    bkv_test_vectors_report(what, passed, total, 3);

    /* The HSM and proto's software decapsulation agree for fresh encapsulations. */
    passed = 0;
    for (int n = 0; n < 20; n++) {
        uint8_t ss_s[32], ss_sw[32], e2[65];
        size_t e2_len;
        passed += bkv_hpke_kem_encap(suite.kem, pkRm, 65, NULL, ss_s, e2, &e2_len) == 0 &&
                  bkv_hsm_testonly_dh(h, k, e2, e2_len, dh) == 0 &&
                  bkv_hpke_kem_decap_dh(suite.kem, e2, e2_len, pkRm, 65, dh, ss_hsm) == 0 &&
                  bkv_hpke_kem_decap(suite.kem, e2, e2_len, skRm, ss_sw) == 0 &&
                  memcmp(ss_hsm, ss_sw, 32) == 0 && memcmp(ss_hsm, ss_s, 32) == 0;
    }
    snprintf(what, sizeof(what), "HSM decap == software decap (%s key)", aead_name(suite.aead));
    bkv_test_vectors_report(what, passed, 20, 20);
    bkv_hpke_ctx_wipe(&r);
    bkv_hsm_testonly_destroy_key(h, k);
}

static void test_rfc9180_vectors(void)
{
    const json_t *vectors = json_object_get(root, "vectors");

    CU_ASSERT_EQUAL_FATAL(json_array_size(vectors), 2);
    for (size_t i = 0; i < json_array_size(vectors); i++)
        run_vector(json_array_get(vectors, i));
}

static void test_realm_key(void)
{
    static const uint16_t aeads[2] = {BKV_HPKE_AEAD_AES_128_GCM, BKV_HPKE_AEAD_AES_256_GCM};
    static const uint8_t info[] = "bkv test info";

    for (int a = 0; a < 2; a++) {
        struct bkv_hpke_suite suite = {BKV_HPKE_KEM_P256_SHA256, BKV_HPKE_KDF_HKDF_SHA256,
                                       aeads[a]};
        struct bkv_hpke_ctx s, r;
        uint8_t enc[65], ct[64], pt[64];
        size_t enc_len, ct_len, pt_len;

        CU_ASSERT_EQUAL_FATAL(bkv_hpke_setup_base_s(suite, realm.hpke_pk, 65, info, sizeof(info),
                                                    NULL, enc, &enc_len, &s),
                              0);
        CU_ASSERT_EQUAL_FATAL(
            bkv_hsm_hpke_setup_base_r(h, suite, enc, enc_len, info, sizeof(info), &r), 0);
        CU_ASSERT_EQUAL(s.key_len, r.key_len);
        CU_ASSERT_EQUAL(memcmp(s.key, r.key, s.key_len), 0);
        CU_ASSERT_EQUAL(memcmp(s.base_nonce, r.base_nonce, 12), 0);
        CU_ASSERT_EQUAL(memcmp(s.exporter_secret, r.exporter_secret, 32), 0);
        CU_ASSERT_EQUAL(
            bkv_hpke_seal(&s, NULL, 0, (const uint8_t *)"hello", 5, ct, sizeof(ct), &ct_len), 0);
        CU_ASSERT_EQUAL(bkv_hpke_open(&r, NULL, 0, ct, ct_len, pt, sizeof(pt), &pt_len), 0);
        CU_ASSERT_EQUAL(pt_len, 5);
        bkv_hpke_ctx_wipe(&s);
        bkv_hpke_ctx_wipe(&r);
    }
    /* Only the realm's KEM. */
    {
        struct bkv_hpke_suite x = {BKV_HPKE_KEM_X25519_SHA256, 1, 1};
        struct bkv_hpke_ctx r;
        CU_ASSERT_EQUAL(bkv_hsm_hpke_setup_base_r(h, x, realm.hpke_pk, 32, NULL, 0, &r),
                        BKV_ERR_UNSUPPORTED);
    }
}

static void test_ohttp_callback(void)
{
    struct bkv_ohttp_key_config cfg;
    struct bkv_ohttp_symmetric sym = {BKV_HPKE_KDF_HKDF_SHA256, BKV_HPKE_AEAD_AES_128_GCM};
    struct bkv_ohttp_state cs, ss;
    static const uint8_t req[] = "LOGIN_INIT ...", resp[] = "KE2 ...";
    uint8_t enc_req[256], got[256], enc_resp[256], got2[256];
    size_t enc_req_len, got_len, enc_resp_len, got2_len;

    memset(&cfg, 0, sizeof(cfg));
    cfg.key_id = realm.hpke_key_id[0];
    cfg.kem = BKV_HPKE_KEM_P256_SHA256;
    cfg.pk_len = 65;
    memcpy(cfg.pk, realm.hpke_pk, 65);
    cfg.suite_count = 1;
    cfg.suites[0] = sym;
    CU_ASSERT_EQUAL_FATAL(bkv_ohttp_request_encap(&cfg, sym, &bkv_ohttp_bkv_labels, NULL, req,
                                                  sizeof(req), enc_req, sizeof(enc_req),
                                                  &enc_req_len, &cs),
                          0);
    CU_ASSERT_EQUAL_FATAL(bkv_ohttp_request_decap_cb(&cfg, &bkv_ohttp_bkv_labels, enc_req,
                                                     enc_req_len, bkv_hsm_ohttp_dh, h, got,
                                                     sizeof(got), &got_len, &ss),
                          0);
    CU_ASSERT_EQUAL(got_len, sizeof(req));
    CU_ASSERT_EQUAL(memcmp(got, req, sizeof(req)), 0);
    CU_ASSERT_EQUAL(bkv_ohttp_response_encap(&ss, NULL, resp, sizeof(resp), enc_resp,
                                             sizeof(enc_resp), &enc_resp_len),
                    0);
    CU_ASSERT_EQUAL(
        bkv_ohttp_response_decap(&cs, enc_resp, enc_resp_len, got2, sizeof(got2), &got2_len), 0);
    CU_ASSERT_EQUAL(got2_len, sizeof(resp));
    /* A flipped bit in the HPKE ciphertext is refused after the HSM step. */
    enc_req[enc_req_len - 1] ^= 1;
    CU_ASSERT_EQUAL(bkv_ohttp_request_decap_cb(&cfg, &bkv_ohttp_bkv_labels, enc_req, enc_req_len,
                                               bkv_hsm_ohttp_dh, h, got, sizeof(got), &got_len,
                                               &ss),
                    BKV_ERR_DECRYPT);
    bkv_ohttp_state_wipe(&cs);
    bkv_ohttp_state_wipe(&ss);
}

static void test_invalid_enc(void)
{
    uint8_t enc[66], dh[32];

    memcpy(enc, realm.hpke_pk, 65);
    CU_ASSERT_EQUAL(bkv_hsm_hpke_dh(h, enc, 64, dh), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_hsm_hpke_dh(h, enc, 66, dh), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_hsm_hpke_dh(h, enc, 33, dh), BKV_ERR_LENGTH); /* compressed */
    enc[0] = 0x06;                                                    /* hybrid */
    CU_ASSERT_EQUAL(bkv_hsm_hpke_dh(h, enc, 65, dh), BKV_ERR_POINT);
    enc[0] = 0x04;
    enc[64] ^= 1; /* off the curve */
    CU_ASSERT_EQUAL(bkv_hsm_hpke_dh(h, enc, 65, dh), BKV_ERR_POINT);
    printf("\n    %s", bkv_hsm_errmsg(h));
    memset(enc + 1, 0, 64); /* (0, 0) is not on P-256 */
    CU_ASSERT_EQUAL(bkv_hsm_hpke_dh(h, enc, 65, dh), BKV_ERR_POINT);
    /* A valid point still works afterwards (no operation left active). */
    CU_ASSERT_EQUAL(bkv_hsm_hpke_dh(h, realm.hpke_pk, 65, dh), 0);
}

static CU_TestInfo tests[] = {
    {"RFC 9180 P-256 vectors through the HSM", test_rfc9180_vectors},
    {"realm key: HSM receiver == software sender", test_realm_key},
    {"RFC 9458 request via the bkv_ohttp_dh_fn callback", test_ohttp_callback},
    {"invalid enc refused before the HSM", test_invalid_enc},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return bkv_test_main("hsm_decap", tests, suite_init, suite_cleanup);
}
