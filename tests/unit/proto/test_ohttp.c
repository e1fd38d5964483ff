/*
 * proto/ohttp: RFC 9458 encapsulation. The Appendix A example (X25519) byte
 * for byte with the "message/bhttp" labels; the same layout with BKV's P-256
 * suite; round trips on every server path (software key, DH callback, DH
 * computed elsewhere); key config codecs; and tampering, truncation, size,
 * key id, suite and label mismatches, which must fail and never crash.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "harness.h"
#include "proto/err.h"
#include "proto/hpke.h"
#include "proto/ohttp.h"
#include "proto/util.h"

static const struct bkv_ohttp_symmetric aes128 = {BKV_HPKE_KDF_HKDF_SHA256,
                                                  BKV_HPKE_AEAD_AES_128_GCM};
static const struct bkv_ohttp_symmetric aes256 = {BKV_HPKE_KDF_HKDF_SHA256,
                                                  BKV_HPKE_AEAD_AES_256_GCM};

/* ---- independent DH (OpenSSL directly), standing in for the HSM ---- */

static int x25519_dh(const uint8_t sk[32], const uint8_t *peer, uint8_t dh[32])
{
    EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, sk, 32);
    EVP_PKEY *pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, 32);
    EVP_PKEY_CTX *c = key != NULL ? EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL) : NULL;
    size_t len = 32;
    int ok = c != NULL && pub != NULL && EVP_PKEY_derive_init(c) == 1 &&
             EVP_PKEY_derive_set_peer(c, pub) == 1 && EVP_PKEY_derive(c, dh, &len) == 1 &&
             len == 32;

    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(key);
    return ok;
}

/* The HSM stand-in handed to bkv_ohttp_request_decap_cb. */
struct fake_hsm {
    uint16_t kem;
    const uint8_t *sk;
    int calls;
    int fail_with;
};

static int fake_hsm_dh(void *arg, const uint8_t *enc, size_t enc_len, uint8_t dh[BKV_HPKE_DH_LEN])
{
    struct fake_hsm *h = arg;

    h->calls++;
    if (h->fail_with != 0)
        return h->fail_with;
    if (h->kem == BKV_HPKE_KEM_X25519_SHA256)
        return enc_len == 32 && x25519_dh(h->sk, enc, dh) ? 0 : BKV_ERR_CRYPTO;
    return enc_len == 65 && bkv_test_p256_ecdh_x(h->sk, enc, dh) ? 0 : BKV_ERR_CRYPTO;
}

static int is_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint8_t acc = 0;

    for (size_t i = 0; i < n; i++)
        acc |= b[i];
    return acc == 0;
}

/* ---- (a) RFC 9458 Appendix A ---- */

static size_t hexf(const json_t *ex, const char *key, uint8_t *out, size_t cap)
{
    return bkv_test_hex(ex, key, out, cap);
}

static void test_rfc9458_example(void)
{
    json_t *root = bkv_test_vectors("rfc9458-ohttp.json");
    const json_t *ex = json_object_get(root, "example");
    uint8_t skR[32], skE[32], config[128], req[128], enc_v[32], info_v[64], encreq_v[256];
    uint8_t resp[16], secret_v[16], salt_v[64], prk_v[32], key_v[16], nonce_v[12], encres_v[64];
    uint8_t buf[256], out[256], list[130], pk[65], info[128], prk[32], key[32], nonce[12];
    size_t config_len, req_len, encreq_len, resp_len, encres_len, n = 0, m = 0, pk_len = 0;
    struct bkv_ohttp_key_config cfg, cfgs[2];
    struct bkv_ohttp_state cst, sst, sst2;
    struct bkv_hpke_suite suite = {BKV_HPKE_KEM_X25519_SHA256, BKV_HPKE_KDF_HKDF_SHA256,
                                   BKV_HPKE_AEAD_AES_128_GCM};
    struct fake_hsm hsm = {BKV_HPKE_KEM_X25519_SHA256, skR, 0, 0};
    int passed = 0, total = 0;

    CU_ASSERT_EQUAL(hexf(ex, "gateway_x25519_secret_key", skR, 32), 32);
    CU_ASSERT_EQUAL(hexf(ex, "client_ephemeral_secret_key", skE, 32), 32);
    CU_ASSERT_EQUAL(hexf(ex, "client_ephemeral_public_key_enc", enc_v, 32), 32);
    config_len = hexf(ex, "key_config", config, sizeof(config));
    req_len = hexf(ex, "request_bhttp", req, sizeof(req));
    CU_ASSERT_EQUAL(hexf(ex, "info", info_v, sizeof(info_v)), 29);
    encreq_len = hexf(ex, "encapsulated_request", encreq_v, sizeof(encreq_v));
    resp_len = hexf(ex, "response_bhttp", resp, sizeof(resp));
    CU_ASSERT_EQUAL(hexf(ex, "response_export_secret", secret_v, 16), 16);
    CU_ASSERT_EQUAL(hexf(ex, "response_salt", salt_v, sizeof(salt_v)), 48);
    CU_ASSERT_EQUAL(hexf(ex, "response_prk", prk_v, 32), 32);
    CU_ASSERT_EQUAL(hexf(ex, "response_aead_key", key_v, 16), 16);
    CU_ASSERT_EQUAL(hexf(ex, "response_aead_nonce", nonce_v, 12), 12);
    encres_len = hexf(ex, "encapsulated_response", encres_v, sizeof(encres_v));
    CU_ASSERT_EQUAL(encreq_len, 80);
    CU_ASSERT_EQUAL(encres_len, 35);

    /* 1: key config decode; 2: re-encode; 3: list form; 4: skR matches pk. */
    total += 4;
    passed += bkv_ohttp_key_config_decode(config, config_len, &cfg) == 0 && cfg.key_id == 1 &&
              cfg.kem == 0x0020 && cfg.pk_len == 32 && cfg.suite_count == 2 &&
              cfg.suites[0].kdf == 1 && cfg.suites[0].aead == 1 && cfg.suites[1].kdf == 1 &&
              cfg.suites[1].aead == 3;
    passed += bkv_ohttp_key_config_encode(&cfg, buf, sizeof(buf), &n) == 0 && n == config_len &&
              memcmp(buf, config, n) == 0;
    bkv_put_u16(list, (uint16_t)config_len);
    memcpy(list + 2, config, config_len);
    passed += bkv_ohttp_key_configs_decode(list, config_len + 2, cfgs, 2, &m) == 0 && m == 1 &&
              memcmp(&cfgs[0], &cfg, sizeof(cfg)) == 0 &&
              bkv_ohttp_key_configs_encode(cfgs, 1, buf, sizeof(buf), &n) == 0 &&
              n == config_len + 2 && memcmp(buf, list, n) == 0;
    passed += bkv_hpke_public_key(cfg.kem, skR, pk, &pk_len) == 0 && pk_len == 32 &&
              memcmp(pk, cfg.pk, 32) == 0;

    /* 5: info; 6: encapsulated request; 7: enc; 8: client's response secret. */
    total += 4;
    passed += bkv_ohttp_request_info(BKV_OHTTP_BHTTP_REQUEST_LABEL, 1, suite, info, sizeof(info),
                                     &n) == 0 &&
              n == 29 && memcmp(info, info_v, 29) == 0;
    passed += bkv_ohttp_request_encap(&cfg, aes128, &bkv_ohttp_bhttp_labels, skE, req, req_len, buf,
                                      sizeof(buf), &n, &cst) == 0 &&
              n == encreq_len && memcmp(buf, encreq_v, n) == 0;
    passed += cst.enc_len == 32 && memcmp(cst.enc, enc_v, 32) == 0 &&
              memcmp(buf + BKV_OHTTP_HEADER_LEN, enc_v, 32) == 0;
    passed += cst.secret_len == 16 && memcmp(cst.secret, secret_v, 16) == 0;

    /* 9: server decapsulation (software key); 10: its secret; 11: via a DH callback. */
    total += 3;
    passed += bkv_ohttp_request_decap(&cfg, &bkv_ohttp_bhttp_labels, skR, encreq_v, encreq_len, out,
                                      sizeof(out), &n, &sst) == 0 &&
              n == req_len && memcmp(out, req, n) == 0;
    passed += sst.secret_len == 16 && memcmp(sst.secret, secret_v, 16) == 0 && sst.enc_len == 32 &&
              memcmp(sst.enc, enc_v, 32) == 0;
    memset(out, 0, sizeof(out));
    passed += bkv_ohttp_request_decap_cb(&cfg, &bkv_ohttp_bhttp_labels, encreq_v, encreq_len,
                                         fake_hsm_dh, &hsm, out, sizeof(out), &n, &sst2) == 0 &&
              hsm.calls == 1 && n == req_len && memcmp(out, req, n) == 0 &&
              memcmp(&sst2, &sst, sizeof(sst)) == 0;

    /* 12: salt = enc || response_nonce; 13-15: prk, key, nonce. */
    total += 4;
    passed += sst.enc_len + sst.secret_len == 48 && memcmp(salt_v, sst.enc, 32) == 0 &&
              memcmp(salt_v + 32, encres_v, 16) == 0;
    CU_ASSERT_EQUAL(bkv_ohttp_response_derive(&sst, encres_v, prk, key, nonce), 0);
    passed += memcmp(prk, prk_v, 32) == 0;
    passed += memcmp(key, key_v, 16) == 0;
    passed += memcmp(nonce, nonce_v, 12) == 0;

    /* 16: encapsulated response; 17: client decapsulation of it. */
    total += 2;
    passed += bkv_ohttp_response_encap(&sst, encres_v, resp, resp_len, buf, sizeof(buf), &n) == 0 &&
              n == encres_len && memcmp(buf, encres_v, n) == 0;
    memset(out, 0, sizeof(out));
    passed += bkv_ohttp_response_decap(&cst, encres_v, encres_len, out, sizeof(out), &n) == 0 &&
              n == resp_len && memcmp(out, resp, n) == 0;

    bkv_test_vectors_report("rfc9458 appendix A example (X25519, message/bhttp)", passed, total,
                            17);

    /* The config offers (1, 3) = ChaCha20-Poly1305, which BKV does not implement. */
    CU_ASSERT_EQUAL(bkv_ohttp_request_encap(&cfg, (struct bkv_ohttp_symmetric){1, 3},
                                            &bkv_ohttp_bhttp_labels, NULL, req, req_len, buf,
                                            sizeof(buf), &n, &cst),
                    BKV_ERR_UNSUPPORTED);
    CU_ASSERT_TRUE(is_zero(&cst, sizeof(cst)));
    bkv_ohttp_state_wipe(&sst);
    bkv_ohttp_state_wipe(&sst2);
    bkv_ohttp_state_wipe(&cst);
    CU_ASSERT_TRUE(is_zero(&sst, sizeof(sst)));
    json_decref(root);
}

/* ---- P-256 fixtures ---- */

struct server {
    uint8_t sk[32];
    struct bkv_ohttp_key_config cfg;
};

static void make_server(struct server *s, uint8_t key_id, uint8_t seed)
{
    uint8_t ikm[32];

    memset(ikm, seed, sizeof(ikm));
    memset(s, 0, sizeof(*s));
    s->cfg.key_id = key_id;
    s->cfg.kem = BKV_HPKE_KEM_P256_SHA256;
    CU_ASSERT_EQUAL_FATAL(bkv_hpke_derive_key_pair(BKV_HPKE_KEM_P256_SHA256, ikm, sizeof(ikm),
                                                   s->sk, s->cfg.pk, &s->cfg.pk_len),
                          0);
    s->cfg.suite_count = 2;
    s->cfg.suites[0] = aes128;
    s->cfg.suites[1] = aes256;
}

/* ---- (b) layout with BKV's suite ---- */

static void test_p256_layout(void)
{
    static const uint8_t msg[] = "a BKV message of some length";
    static const uint8_t answer[] = "an answer";
    struct server s;
    uint8_t config[BKV_OHTTP_KEY_CONFIG_MAX_LEN], req[256], res[128], info[64], pt[256];
    size_t n = 0, rn = 0, info_len = 0;
    struct bkv_ohttp_state cst, sst;
    const struct bkv_ohttp_symmetric *syms[2] = {&aes128, &aes256};

    make_server(&s, 0x2a, 7);
    CU_ASSERT_EQUAL(bkv_ohttp_key_config_encode(&s.cfg, config, sizeof(config), &n), 0);
    CU_ASSERT_EQUAL(n, 1 + 2 + 65 + 2 + 8);
    CU_ASSERT_EQUAL(config[0], 0x2a);
    CU_ASSERT_EQUAL(bkv_get_u16(config + 1), 0x0010);
    CU_ASSERT_EQUAL(config[3], 0x04);
    CU_ASSERT_EQUAL(bkv_get_u16(config + 68), 8);

    for (int i = 0; i < 2; i++) {
        const struct bkv_ohttp_symmetric *sym = syms[i];
        struct bkv_hpke_suite suite = {BKV_HPKE_KEM_P256_SHA256, sym->kdf, sym->aead};
        size_t nonce_len = sym->aead == BKV_HPKE_AEAD_AES_128_GCM ? 16 : 32;
        const uint8_t hdr[7] = {0x2a, 0x00, 0x10, 0x00, 0x01, 0x00, (uint8_t)sym->aead};

        CU_ASSERT_EQUAL(bkv_ohttp_request_encap(&s.cfg, *sym, &bkv_ohttp_bkv_labels, NULL, msg,
                                                sizeof(msg), req, sizeof(req), &n, &cst),
                        0);
        /* hdr || enc (65, uncompressed) || ct (plaintext + 16). */
        CU_ASSERT_EQUAL(memcmp(req, hdr, 7), 0);
        CU_ASSERT_EQUAL(n, 7 + 65 + sizeof(msg) + 16);
        CU_ASSERT_EQUAL(n, bkv_ohttp_request_len(BKV_HPKE_KEM_P256_SHA256, sizeof(msg)));
        CU_ASSERT_EQUAL(req[7], 0x04);
        CU_ASSERT_EQUAL(cst.enc_len, 65);
        CU_ASSERT_EQUAL(memcmp(cst.enc, req + 7, 65), 0);
        CU_ASSERT_EQUAL(cst.secret_len, nonce_len);
        /* info = BKV's label || 0x00 || hdr. */
        CU_ASSERT_EQUAL(
            bkv_ohttp_request_info(BKV_OHTTP_REQUEST_LABEL, 0x2a, suite, info, 64, &info_len), 0);
        CU_ASSERT_EQUAL(info_len, strlen(BKV_OHTTP_REQUEST_LABEL) + 1 + 7);
        CU_ASSERT_EQUAL(memcmp(info, "message/bkv-v1 request\0", 23), 0);
        CU_ASSERT_EQUAL(memcmp(info + 23, hdr, 7), 0);

        CU_ASSERT_EQUAL(bkv_ohttp_request_decap(&s.cfg, &bkv_ohttp_bkv_labels, s.sk, req, n, pt,
                                                sizeof(pt), &rn, &sst),
                        0);
        CU_ASSERT_EQUAL(rn, sizeof(msg));
        CU_ASSERT_EQUAL(memcmp(&cst, &sst, sizeof(cst)), 0);
        /* response_nonce (max(Nn, Nk)) || ct (plaintext + 16); salt = 65 + nonce. */
        CU_ASSERT_EQUAL(
            bkv_ohttp_response_encap(&sst, NULL, answer, sizeof(answer), res, sizeof(res), &n), 0);
        CU_ASSERT_EQUAL(n, nonce_len + sizeof(answer) + 16);
        CU_ASSERT_EQUAL(n, bkv_ohttp_response_len(sym->aead, sizeof(answer)));
        CU_ASSERT_EQUAL(sst.enc_len + sst.secret_len, 65 + nonce_len);
        CU_ASSERT_EQUAL(bkv_ohttp_response_decap(&cst, res, n, pt, sizeof(pt), &rn), 0);
        CU_ASSERT_EQUAL(rn, sizeof(answer));
        CU_ASSERT_EQUAL(memcmp(pt, answer, rn), 0);
        bkv_ohttp_state_wipe(&cst);
        bkv_ohttp_state_wipe(&sst);
    }
}

/* ---- (c) round trips on every server path ---- */

static void round_trip(const struct server *s, struct bkv_ohttp_symmetric sym, size_t req_len,
                       size_t resp_len, int path)
{
    uint8_t *msg = malloc(req_len + 1), *req = malloc(req_len + 128), *pt = malloc(req_len + 1);
    uint8_t *ans = malloc(resp_len + 1), *res = malloc(resp_len + 64), *pt2 = malloc(resp_len + 1);
    struct bkv_ohttp_state cst, sst;
    struct bkv_ohttp_request parsed;
    struct fake_hsm hsm = {BKV_HPKE_KEM_P256_SHA256, s->sk, 0, 0};
    uint8_t dh[32];
    size_t n = 0, rn = 0;
    int rc;

    CU_ASSERT_FATAL(msg && req && pt && ans && res && pt2);
    for (size_t i = 0; i < req_len; i++)
        msg[i] = (uint8_t)(i * 31 + 1);
    for (size_t i = 0; i < resp_len; i++)
        ans[i] = (uint8_t)(i * 17 + 3);
    CU_ASSERT_EQUAL(bkv_ohttp_request_encap(&s->cfg, sym, &bkv_ohttp_bkv_labels, NULL, msg, req_len,
                                            req, req_len + 128, &n, &cst),
                    0);
    switch (path) {
    case 0:
        rc = bkv_ohttp_request_decap(&s->cfg, &bkv_ohttp_bkv_labels, s->sk, req, n, pt, req_len + 1,
                                     &rn, &sst);
        break;
    case 1:
        rc = bkv_ohttp_request_decap_cb(&s->cfg, &bkv_ohttp_bkv_labels, req, n, fake_hsm_dh, &hsm,
                                        pt, req_len + 1, &rn, &sst);
        CU_ASSERT_EQUAL(hsm.calls, 1);
        break;
    default:
        /* Two steps, as with an HSM on a worker thread. */
        rc = bkv_ohttp_request_parse(&s->cfg, req, n, &parsed);
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_EQUAL(parsed.enc_len, 65);
        CU_ASSERT_EQUAL(parsed.ct_len, req_len + 16);
        CU_ASSERT_FATAL(bkv_test_p256_ecdh_x(s->sk, parsed.enc, dh));
        rc = bkv_ohttp_request_open_dh(&s->cfg, &bkv_ohttp_bkv_labels, &parsed, dh, pt, req_len + 1,
                                       &rn, &sst);
        break;
    }
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(rn, req_len);
    CU_ASSERT_EQUAL(memcmp(pt, msg, req_len), 0);
    CU_ASSERT_EQUAL(bkv_ohttp_response_encap(&sst, NULL, ans, resp_len, res, resp_len + 64, &n), 0);
    CU_ASSERT_EQUAL(bkv_ohttp_response_decap(&cst, res, n, pt2, resp_len + 1, &rn), 0);
    CU_ASSERT_EQUAL(rn, resp_len);
    CU_ASSERT_EQUAL(memcmp(pt2, ans, resp_len), 0);
    bkv_ohttp_state_wipe(&cst);
    bkv_ohttp_state_wipe(&sst);
    free(msg);
    free(req);
    free(pt);
    free(ans);
    free(res);
    free(pt2);
}

static void test_p256_round_trips(void)
{
    static const size_t sizes[] = {0, 1, 15, 16, 17, 300, 4096};
    struct server s;

    make_server(&s, 1, 9);
    for (int path = 0; path < 3; path++)
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            round_trip(&s, aes128, sizes[i], sizes[(i + 3) % 7], path);
            round_trip(&s, aes256, sizes[i], sizes[(i + 5) % 7], path);
        }
}

/* ---- (d) failures ---- */

static int request_error_ok(int rc)
{
    return rc == BKV_ERR_DECRYPT || rc == BKV_ERR_POINT || rc == BKV_ERR_UNSUPPORTED ||
           rc == BKV_ERR_LENGTH;
}

static void test_request_tampering(void)
{
    static const uint8_t msg[] = "REG_INIT for account 42";
    struct server s;
    struct bkv_ohttp_state cst, sst;
    uint8_t req[256], bad[256], pt[256];
    size_t n = 0, rn = 0;
    int ok = 1;

    make_server(&s, 3, 11);
    CU_ASSERT_EQUAL(bkv_ohttp_request_encap(&s.cfg, aes128, &bkv_ohttp_bkv_labels, NULL, msg,
                                            sizeof(msg), req, sizeof(req), &n, &cst),
                    0);
    /* Every byte, two ways: low bit and all bits. */
    for (size_t i = 0; i < n; i++)
        for (int how = 0; how < 2; how++) {
            int rc;
            memcpy(bad, req, n);
            bad[i] ^= how == 0 ? 0x01 : 0xff;
            rc = bkv_ohttp_request_decap(&s.cfg, &bkv_ohttp_bkv_labels, s.sk, bad, n, pt,
                                         sizeof(pt), &rn, &sst);
            ok &= rc != 0 && request_error_ok(rc) && is_zero(&sst, sizeof(sst));
            if (i < 7)
                ok &= rc == BKV_ERR_UNSUPPORTED;
            else if (i >= 7 + 65)
                ok &= rc == BKV_ERR_DECRYPT;
        }
    CU_ASSERT_TRUE(ok);
    /* Every truncation. */
    ok = 1;
    for (size_t len = 0; len < n; len++) {
        int rc = bkv_ohttp_request_decap(&s.cfg, &bkv_ohttp_bkv_labels, s.sk, req, len, pt,
                                         sizeof(pt), &rn, &sst);
        ok &= len < 7 + 65 + 16 ? rc == BKV_ERR_LENGTH : rc == BKV_ERR_DECRYPT;
    }
    CU_ASSERT_TRUE(ok);
    /* A trailing byte changes the ciphertext. */
    memcpy(bad, req, n);
    bad[n] = 0;
    CU_ASSERT_EQUAL(bkv_ohttp_request_decap(&s.cfg, &bkv_ohttp_bkv_labels, s.sk, bad, n + 1, pt,
                                            sizeof(pt), &rn, &sst),
                    BKV_ERR_DECRYPT);
    /* Output buffer too small. */
    CU_ASSERT_EQUAL(bkv_ohttp_request_decap(&s.cfg, &bkv_ohttp_bkv_labels, s.sk, req, n, pt,
                                            sizeof(msg) - 1, &rn, &sst),
                    BKV_ERR_LENGTH);
    /* The untouched request still opens. */
    CU_ASSERT_EQUAL(bkv_ohttp_request_decap(&s.cfg, &bkv_ohttp_bkv_labels, s.sk, req, n, pt,
                                            sizeof(pt), &rn, &sst),
                    0);
    bkv_ohttp_state_wipe(&cst);
    bkv_ohttp_state_wipe(&sst);
}

static void test_response_tampering(void)
{
    static const uint8_t msg[] = "LOGIN_INIT";
    static const uint8_t answer[] = "KE2 goes here";
    const struct bkv_ohttp_symmetric *syms[2] = {&aes128, &aes256};
    struct server s;

    make_server(&s, 4, 12);
    for (int k = 0; k < 2; k++) {
        struct bkv_ohttp_state cst, sst, other_c, other_s;
        uint8_t req[256], req2[256], res[128], bad[128], pt[256];
        size_t n = 0, n2 = 0, rn = 0, rlen = 0;
        int ok = 1;

        CU_ASSERT_EQUAL(bkv_ohttp_request_encap(&s.cfg, *syms[k], &bkv_ohttp_bkv_labels, NULL, msg,
                                                sizeof(msg), req, sizeof(req), &n, &cst),
                        0);
        CU_ASSERT_EQUAL(bkv_ohttp_request_decap(&s.cfg, &bkv_ohttp_bkv_labels, s.sk, req, n, pt,
                                                sizeof(pt), &rn, &sst),
                        0);
        CU_ASSERT_EQUAL(
            bkv_ohttp_response_encap(&sst, NULL, answer, sizeof(answer), res, sizeof(res), &rlen),
            0);
        for (size_t i = 0; i < rlen; i++)
            for (int how = 0; how < 2; how++) {
                memcpy(bad, res, rlen);
                bad[i] ^= how == 0 ? 0x01 : 0xff;
                ok &= bkv_ohttp_response_decap(&cst, bad, rlen, pt, sizeof(pt), &rn) ==
                      BKV_ERR_DECRYPT;
            }
        CU_ASSERT_TRUE(ok);
        ok = 1;
        for (size_t len = 0; len < rlen; len++) {
            int rc = bkv_ohttp_response_decap(&cst, res, len, pt, sizeof(pt), &rn);
            ok &= len < cst.secret_len + 16 ? rc == BKV_ERR_LENGTH : rc == BKV_ERR_DECRYPT;
        }
        CU_ASSERT_TRUE(ok);
        /* Another request's state cannot open this response, and vice versa. */
        CU_ASSERT_EQUAL(bkv_ohttp_request_encap(&s.cfg, *syms[k], &bkv_ohttp_bkv_labels, NULL, msg,
                                                sizeof(msg), req2, sizeof(req2), &n2, &other_c),
                        0);
        CU_ASSERT_EQUAL(bkv_ohttp_request_decap(&s.cfg, &bkv_ohttp_bkv_labels, s.sk, req2, n2, pt,
                                                sizeof(pt), &rn, &other_s),
                        0);
        CU_ASSERT_EQUAL(bkv_ohttp_response_decap(&other_c, res, rlen, pt, sizeof(pt), &rn),
                        BKV_ERR_DECRYPT);
        CU_ASSERT_EQUAL(bkv_ohttp_response_decap(&cst, res, rlen, pt, sizeof(pt), &rn), 0);
        CU_ASSERT_EQUAL(rn, sizeof(answer));
        /* Small output buffer; wiped states are refused. */
        CU_ASSERT_EQUAL(bkv_ohttp_response_decap(&cst, res, rlen, pt, sizeof(answer) - 1, &rn),
                        BKV_ERR_LENGTH);
        bkv_ohttp_state_wipe(&sst);
        CU_ASSERT_EQUAL(
            bkv_ohttp_response_encap(&sst, NULL, answer, sizeof(answer), res, sizeof(res), &rlen),
            BKV_ERR_INVALID);
        bkv_ohttp_state_wipe(&cst);
        CU_ASSERT_EQUAL(bkv_ohttp_response_decap(&cst, res, rlen, pt, sizeof(pt), &rn),
                        BKV_ERR_INVALID);
        bkv_ohttp_state_wipe(&other_c);
        bkv_ohttp_state_wipe(&other_s);
    }
}

static void test_sizes(void)
{
    const size_t max_pt = BKV_OHTTP_MAX_REQUEST_LEN - 7 - 65 - 16;
    struct server s;
    struct bkv_ohttp_state cst, sst;
    uint8_t *msg = calloc(1, BKV_OHTTP_MAX_REQUEST_LEN + 8);
    uint8_t *req = calloc(1, BKV_OHTTP_MAX_REQUEST_LEN + 8);
    uint8_t *pt = calloc(1, BKV_OHTTP_MAX_REQUEST_LEN + 8);
    size_t n = 0, rn = 0;

    CU_ASSERT_FATAL(msg && req && pt);
    make_server(&s, 5, 13);
    /* The largest request round-trips; one byte more is refused on both sides. */
    CU_ASSERT_EQUAL(bkv_ohttp_request_encap(&s.cfg, aes128, &bkv_ohttp_bkv_labels, NULL, msg,
                                            max_pt, req, BKV_OHTTP_MAX_REQUEST_LEN + 8, &n, &cst),
                    0);
    CU_ASSERT_EQUAL(n, BKV_OHTTP_MAX_REQUEST_LEN);
    CU_ASSERT_EQUAL(bkv_ohttp_request_decap(&s.cfg, &bkv_ohttp_bkv_labels, s.sk, req, n, pt,
                                            BKV_OHTTP_MAX_REQUEST_LEN, &rn, &sst),
                    0);
    CU_ASSERT_EQUAL(rn, max_pt);
    CU_ASSERT_EQUAL(bkv_ohttp_request_encap(&s.cfg, aes128, &bkv_ohttp_bkv_labels, NULL, msg,
                                            max_pt + 1, req, BKV_OHTTP_MAX_REQUEST_LEN + 8, &n,
                                            &cst),
                    BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_ohttp_request_decap(&s.cfg, &bkv_ohttp_bkv_labels, s.sk, req,
                                            BKV_OHTTP_MAX_REQUEST_LEN + 1, pt,
                                            BKV_OHTTP_MAX_REQUEST_LEN, &rn, &sst),
                    BKV_ERR_LENGTH);
    /* Output buffer too small for the client. */
    CU_ASSERT_EQUAL(bkv_ohttp_request_encap(&s.cfg, aes128, &bkv_ohttp_bkv_labels, NULL, msg, 10,
                                            req, 7 + 65 + 10 + 15, &n, &cst),
                    BKV_ERR_LENGTH);
    /* Oversized response. */
    CU_ASSERT_EQUAL(bkv_ohttp_request_encap(&s.cfg, aes128, &bkv_ohttp_bkv_labels, NULL, msg, 10,
                                            req, 200, &n, &cst),
                    0);
    CU_ASSERT_EQUAL(
        bkv_ohttp_request_decap(&s.cfg, &bkv_ohttp_bkv_labels, s.sk, req, n, pt, 200, &rn, &sst),
        0);
    CU_ASSERT_EQUAL(bkv_ohttp_response_encap(&sst, NULL, msg, BKV_OHTTP_MAX_RESPONSE_LEN - 31, req,
                                             BKV_OHTTP_MAX_REQUEST_LEN + 8, &n),
                    BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_ohttp_response_encap(&sst, NULL, msg, BKV_OHTTP_MAX_RESPONSE_LEN - 32, req,
                                             BKV_OHTTP_MAX_REQUEST_LEN + 8, &n),
                    0);
    CU_ASSERT_EQUAL(n, BKV_OHTTP_MAX_RESPONSE_LEN);
    CU_ASSERT_EQUAL(bkv_ohttp_response_decap(&cst, req, n, pt, BKV_OHTTP_MAX_REQUEST_LEN, &rn), 0);
    CU_ASSERT_EQUAL(bkv_ohttp_response_decap(&cst, req, BKV_OHTTP_MAX_RESPONSE_LEN + 1, pt,
                                             BKV_OHTTP_MAX_REQUEST_LEN, &rn),
                    BKV_ERR_LENGTH);
    bkv_ohttp_state_wipe(&cst);
    bkv_ohttp_state_wipe(&sst);
    free(msg);
    free(req);
    free(pt);
}

static void test_key_id_suite_labels(void)
{
    static const uint8_t msg[] = "DELETE";
    struct server s, s2;
    struct bkv_ohttp_state cst, sst;
    struct bkv_ohttp_key_config only128;
    struct bkv_ohttp_request parsed;
    struct fake_hsm hsm;
    uint8_t req[256], bad[256], pt[256];
    size_t n = 0, rn = 0;

    make_server(&s, 6, 14);
    make_server(&s2, 7, 14); /* same key, other key id */
    CU_ASSERT_EQUAL(bkv_ohttp_request_encap(&s.cfg, aes256, &bkv_ohttp_bkv_labels, NULL, msg,
                                            sizeof(msg), req, sizeof(req), &n, &cst),
                    0);
    /* Wrong key id. */
    CU_ASSERT_EQUAL(bkv_ohttp_request_decap(&s2.cfg, &bkv_ohttp_bkv_labels, s2.sk, req, n, pt,
                                            sizeof(pt), &rn, &sst),
                    BKV_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(bkv_ohttp_request_parse(&s2.cfg, req, n, &parsed), BKV_ERR_UNSUPPORTED);
    /* A suite the server's config does not offer. */
    only128 = s.cfg;
    only128.suite_count = 1;
    CU_ASSERT_EQUAL(bkv_ohttp_request_decap(&only128, &bkv_ohttp_bkv_labels, s.sk, req, n, pt,
                                            sizeof(pt), &rn, &sst),
                    BKV_ERR_UNSUPPORTED);
    /* Ids nobody supports, or a KEM other than the config's. */
    memcpy(bad, req, n);
    bkv_put_u16(bad + 5, 0x0003);
    CU_ASSERT_EQUAL(bkv_ohttp_request_parse(&s.cfg, bad, n, &parsed), BKV_ERR_UNSUPPORTED);
    memcpy(bad, req, n);
    bkv_put_u16(bad + 3, 0x0002);
    CU_ASSERT_EQUAL(bkv_ohttp_request_parse(&s.cfg, bad, n, &parsed), BKV_ERR_UNSUPPORTED);
    memcpy(bad, req, n);
    bkv_put_u16(bad + 1, 0x0020);
    CU_ASSERT_EQUAL(bkv_ohttp_request_parse(&s.cfg, bad, n, &parsed), BKV_ERR_UNSUPPORTED);
    /* Client side: a suite not offered by the config. */
    CU_ASSERT_EQUAL(bkv_ohttp_request_encap(&only128, aes256, &bkv_ohttp_bkv_labels, NULL, msg,
                                            sizeof(msg), bad, sizeof(bad), &n, &sst),
                    BKV_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(bkv_ohttp_request_encap(&s.cfg, (struct bkv_ohttp_symmetric){2, 1},
                                            &bkv_ohttp_bkv_labels, NULL, msg, sizeof(msg), bad,
                                            sizeof(bad), &n, &sst),
                    BKV_ERR_UNSUPPORTED);
    /* The RFC's labels and BKV's do not interoperate, in either direction. */
    CU_ASSERT_EQUAL(bkv_ohttp_request_encap(&s.cfg, aes128, &bkv_ohttp_bkv_labels, NULL, msg,
                                            sizeof(msg), req, sizeof(req), &n, &cst),
                    0);
    CU_ASSERT_EQUAL(bkv_ohttp_request_decap(&s.cfg, &bkv_ohttp_bhttp_labels, s.sk, req, n, pt,
                                            sizeof(pt), &rn, &sst),
                    BKV_ERR_DECRYPT);
    CU_ASSERT_TRUE(is_zero(&sst, sizeof(sst)));
    CU_ASSERT_EQUAL(bkv_ohttp_request_encap(&s.cfg, aes128, &bkv_ohttp_bhttp_labels, NULL, msg,
                                            sizeof(msg), req, sizeof(req), &n, &cst),
                    0);
    CU_ASSERT_EQUAL(bkv_ohttp_request_decap(&s.cfg, &bkv_ohttp_bkv_labels, s.sk, req, n, pt,
                                            sizeof(pt), &rn, &sst),
                    BKV_ERR_DECRYPT);
    /* Same request labels, different response labels: the response does not open. */
    {
        const struct bkv_ohttp_labels mixed = {BKV_OHTTP_BHTTP_REQUEST_LABEL,
                                               BKV_OHTTP_RESPONSE_LABEL};
        uint8_t res[64];
        size_t rl = 0;
        CU_ASSERT_EQUAL(
            bkv_ohttp_request_decap(&s.cfg, &mixed, s.sk, req, n, pt, sizeof(pt), &rn, &sst), 0);
        CU_ASSERT_EQUAL(
            bkv_ohttp_response_encap(&sst, NULL, msg, sizeof(msg), res, sizeof(res), &rl), 0);
        CU_ASSERT_EQUAL(bkv_ohttp_response_decap(&cst, res, rl, pt, sizeof(pt), &rn),
                        BKV_ERR_DECRYPT);
    }
    /* The wrong private key, and a DH callback that fails or lies. */
    CU_ASSERT_EQUAL(bkv_ohttp_request_encap(&s.cfg, aes128, &bkv_ohttp_bkv_labels, NULL, msg,
                                            sizeof(msg), req, sizeof(req), &n, &cst),
                    0);
    {
        struct server other;
        make_server(&other, 6, 15);
        CU_ASSERT_EQUAL(bkv_ohttp_request_decap(&s.cfg, &bkv_ohttp_bkv_labels, other.sk, req, n, pt,
                                                sizeof(pt), &rn, &sst),
                        BKV_ERR_DECRYPT);
        hsm = (struct fake_hsm){BKV_HPKE_KEM_P256_SHA256, other.sk, 0, 0};
        CU_ASSERT_EQUAL(bkv_ohttp_request_decap_cb(&s.cfg, &bkv_ohttp_bkv_labels, req, n,
                                                   fake_hsm_dh, &hsm, pt, sizeof(pt), &rn, &sst),
                        BKV_ERR_DECRYPT);
    }
    hsm = (struct fake_hsm){BKV_HPKE_KEM_P256_SHA256, s.sk, 0, BKV_ERR_CRYPTO};
    CU_ASSERT_EQUAL(bkv_ohttp_request_decap_cb(&s.cfg, &bkv_ohttp_bkv_labels, req, n, fake_hsm_dh,
                                               &hsm, pt, sizeof(pt), &rn, &sst),
                    BKV_ERR_CRYPTO);
    CU_ASSERT_TRUE(is_zero(&sst, sizeof(sst)));
    /* The callback is not called for a request that fails its checks. */
    hsm = (struct fake_hsm){BKV_HPKE_KEM_P256_SHA256, s.sk, 0, 0};
    memcpy(bad, req, n);
    bad[7 + 10] ^= 0x01; /* enc off the curve */
    CU_ASSERT_EQUAL(bkv_ohttp_request_decap_cb(&s.cfg, &bkv_ohttp_bkv_labels, bad, n, fake_hsm_dh,
                                               &hsm, pt, sizeof(pt), &rn, &sst),
                    BKV_ERR_POINT);
    CU_ASSERT_EQUAL(hsm.calls, 0);
    bkv_ohttp_state_wipe(&cst);
    bkv_ohttp_state_wipe(&sst);
}

static void test_key_config_codec(void)
{
    struct server s;
    struct bkv_ohttp_key_config cfg, cfgs[3];
    uint8_t enc[BKV_OHTTP_KEY_CONFIG_MAX_LEN + 8], bad[512], list[512];
    size_t n = 0, m = 0, count = 0;
    int ok = 1;

    make_server(&s, 9, 16);
    CU_ASSERT_EQUAL(bkv_ohttp_key_config_encode(&s.cfg, enc, sizeof(enc), &n), 0);
    CU_ASSERT_EQUAL(bkv_ohttp_key_config_decode(enc, n, &cfg), 0);
    CU_ASSERT_EQUAL(memcmp(&cfg, &s.cfg, sizeof(cfg)), 0);
    /* Every truncation is a length error; a trailing byte is a format error. */
    for (size_t len = 0; len < n; len++)
        ok &= bkv_ohttp_key_config_decode(enc, len, &cfg) == BKV_ERR_LENGTH;
    CU_ASSERT_TRUE(ok);
    memcpy(bad, enc, n);
    bad[n] = 0;
    CU_ASSERT_EQUAL(bkv_ohttp_key_config_decode(bad, n + 1, &cfg), BKV_ERR_FORMAT);
    /* sym_len 0, not a multiple of 4, and more suites than we keep. */
    memcpy(bad, enc, 70);
    bkv_put_u16(bad + 68, 0);
    CU_ASSERT_EQUAL(bkv_ohttp_key_config_decode(bad, 70, &cfg), BKV_ERR_FORMAT);
    memcpy(bad, enc, n);
    bkv_put_u16(bad + 68, 6);
    CU_ASSERT_EQUAL(bkv_ohttp_key_config_decode(bad, 76, &cfg), BKV_ERR_FORMAT);
    bkv_put_u16(bad + 68, 4 * (BKV_OHTTP_MAX_SUITES + 1));
    for (size_t i = 0; i < BKV_OHTTP_MAX_SUITES + 1; i++) {
        bkv_put_u16(bad + 70 + 4 * i, 1);
        bkv_put_u16(bad + 72 + 4 * i, 1);
    }
    CU_ASSERT_EQUAL(bkv_ohttp_key_config_decode(bad, 70 + 4 * (BKV_OHTTP_MAX_SUITES + 1), &cfg),
                    BKV_ERR_LIMIT);
    /* Unknown KEM, invalid public keys. */
    memcpy(bad, enc, n);
    bkv_put_u16(bad + 1, 0x0011);
    CU_ASSERT_EQUAL(bkv_ohttp_key_config_decode(bad, n, &cfg), BKV_ERR_UNSUPPORTED);
    memcpy(bad, enc, n);
    bad[3] = 0x02;
    CU_ASSERT_EQUAL(bkv_ohttp_key_config_decode(bad, n, &cfg), BKV_ERR_POINT);
    memcpy(bad, enc, n);
    bad[50] ^= 0x01;
    CU_ASSERT_EQUAL(bkv_ohttp_key_config_decode(bad, n, &cfg), BKV_ERR_POINT);
    /* The encoder refuses what the decoder would. */
    cfg = s.cfg;
    cfg.suite_count = 0;
    CU_ASSERT_EQUAL(bkv_ohttp_key_config_encode(&cfg, enc, sizeof(enc), &m), BKV_ERR_FORMAT);
    cfg = s.cfg;
    cfg.pk_len = 64;
    CU_ASSERT_EQUAL(bkv_ohttp_key_config_encode(&cfg, enc, sizeof(enc), &m), BKV_ERR_LENGTH);
    cfg = s.cfg;
    cfg.kem = 0x0011;
    CU_ASSERT_EQUAL(bkv_ohttp_key_config_encode(&cfg, enc, sizeof(enc), &m), BKV_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(bkv_ohttp_key_config_encode(&s.cfg, enc, n - 1, &m), BKV_ERR_LENGTH);

    /* application/ohttp-keys: two configs, one with an unknown KEM in between. */
    cfgs[0] = s.cfg;
    cfgs[1] = s.cfg;
    cfgs[1].key_id = 10;
    CU_ASSERT_EQUAL(bkv_ohttp_key_configs_encode(cfgs, 2, list, sizeof(list), &m), 0);
    CU_ASSERT_EQUAL(m, 2 * (2 + n));
    CU_ASSERT_EQUAL(bkv_ohttp_key_configs_decode(list, m, cfgs, 3, &count), 0);
    CU_ASSERT_EQUAL(count, 2);
    CU_ASSERT_EQUAL(cfgs[1].key_id, 10);
    memcpy(bad, list, 2 + n);
    bkv_put_u16(bad + 2 + n, 5);
    memcpy(bad + 4 + n, "\x0b\x00\x99\x00\x00", 5); /* kem 0x0099, length-valid */
    memcpy(bad + 9 + n, list + 2 + n, 2 + n);
    CU_ASSERT_EQUAL(bkv_ohttp_key_configs_decode(bad, 2 * (2 + n) + 7, cfgs, 3, &count), 0);
    CU_ASSERT_EQUAL(count, 2);
    CU_ASSERT_EQUAL(bkv_ohttp_key_configs_decode(bad + 2 + n, 7, cfgs, 3, &count),
                    BKV_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(count, 0);
    /* Capacity, trailing bytes, truncation at every length, an empty list. */
    CU_ASSERT_EQUAL(bkv_ohttp_key_configs_decode(list, m, cfgs, 1, &count), BKV_ERR_LIMIT);
    memcpy(bad, list, m);
    bad[m] = 0;
    CU_ASSERT_EQUAL(bkv_ohttp_key_configs_decode(bad, m + 1, cfgs, 3, &count), BKV_ERR_LENGTH);
    ok = 1;
    for (size_t len = 0; len < m; len++) {
        int rc = bkv_ohttp_key_configs_decode(list, len, cfgs, 3, &count);
        /* Exactly one whole config is a valid list. */
        ok &= len == 2 + n ? rc == 0 : rc == BKV_ERR_LENGTH;
    }
    CU_ASSERT_TRUE(ok);
    /* A malformed entry rejects the whole list. */
    memcpy(bad, list, m);
    bad[2 + n + 2 + 3] = 0x02;
    CU_ASSERT_EQUAL(bkv_ohttp_key_configs_decode(bad, m, cfgs, 3, &count), BKV_ERR_POINT);
    CU_ASSERT_EQUAL(count, 0);
}

static CU_TestInfo tests[] = {
    {"rfc9458 appendix A example, byte for byte", test_rfc9458_example},
    {"layout with BKV's P-256 suite", test_p256_layout},
    {"P-256 round trips, AES-128/256-GCM, all server paths", test_p256_round_trips},
    {"request tampering and truncation", test_request_tampering},
    {"response tampering, truncation and state mix-ups", test_response_tampering},
    {"size limits", test_sizes},
    {"key id, suites, labels and DH callback failures", test_key_id_suite_labels},
    {"key config codecs", test_key_config_codec},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return bkv_test_main("proto_ohttp", tests, NULL, NULL);
}
