/*
 * OPAQUE-3DH (RFC 9807) against Real Test Vectors 5 and 6 and Fake Test
 * Vector 3 (P-256, Identity KSF), every intermediate checked; then the
 * rejections: wrong password, tampered KE2/KE3, bad points and lengths, and
 * the Argon2id KSF in a full round trip.
 */
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "proto/err.h"
#include "proto/opaque.h"
#include "proto/util.h"

static json_t *root;

static int suite_init(void)
{
    root = bkv_test_vectors("rfc9807-opaque-p256.json");
    return 0;
}

static int suite_cleanup(void)
{
    json_decref(root);
    return 0;
}

/* 1 if buf equals the hex value obj[key]; records a CUnit failure if not. */
static int same(const json_t *obj, const char *key, const uint8_t *buf, size_t len)
{
    uint8_t want[512];
    size_t n = bkv_test_hex(obj, key, want, sizeof(want));
    int ok = n == len && memcmp(want, buf, len) == 0;

    if (!ok)
        printf("\n  mismatch in %s\n", key);
    CU_ASSERT_TRUE(ok);
    return ok;
}

struct fixture {
    uint8_t context[64], cid[64], sid[64], cred_id[64], password[128];
    size_t context_len, cid_len, sid_len, cred_id_len, password_len;
    uint8_t blind_reg[32], blind_login[32], env_nonce[32], client_nonce[32], client_seed[32];
    uint8_t masking_nonce[32], server_nonce[32], server_seed[32];
    struct bkv_opaque_config cfg;
    struct bkv_opaque_ids ids;
    struct bkv_opaque_server_keys keys;
};

static void load(const json_t *v, struct fixture *f)
{
    const json_t *in = json_object_get(v, "inputs");
    const json_t *cfg = json_object_get(v, "config");
    size_t n;

    memset(f, 0, sizeof(*f));
    f->context_len = bkv_test_hex(cfg, "Context", f->context, sizeof(f->context));
    f->cred_id_len = bkv_test_hex(in, "credential_identifier", f->cred_id, sizeof(f->cred_id));
    if (json_object_get(in, "password") != NULL)
        f->password_len = bkv_test_hex(in, "password", f->password, sizeof(f->password));
    if (json_object_get(in, "client_identity") != NULL) {
        f->cid_len = bkv_test_hex(in, "client_identity", f->cid, sizeof(f->cid));
        f->ids.client = f->cid;
        f->ids.client_len = f->cid_len;
    }
    if (json_object_get(in, "server_identity") != NULL) {
        f->sid_len = bkv_test_hex(in, "server_identity", f->sid, sizeof(f->sid));
        f->ids.server = f->sid;
        f->ids.server_len = f->sid_len;
    }
    n = bkv_test_hex(in, "oprf_seed", f->keys.oprf_seed, 32);
    n += bkv_test_hex(in, "server_private_key", f->keys.sk, 32);
    n += bkv_test_hex(in, "server_public_key", f->keys.pk, 33);
    n += bkv_test_hex(in, "masking_nonce", f->masking_nonce, 32);
    n += bkv_test_hex(in, "server_nonce", f->server_nonce, 32);
    n += bkv_test_hex(in, "server_keyshare_seed", f->server_seed, 32);
    CU_ASSERT_EQUAL(n, 32 * 5 + 33);
    if (json_object_get(in, "blind_registration") != NULL) {
        bkv_test_hex(in, "blind_registration", f->blind_reg, 32);
        bkv_test_hex(in, "blind_login", f->blind_login, 32);
        bkv_test_hex(in, "envelope_nonce", f->env_nonce, 32);
        bkv_test_hex(in, "client_nonce", f->client_nonce, 32);
        bkv_test_hex(in, "client_keyshare_seed", f->client_seed, 32);
    }
    f->cfg.context = f->context;
    f->cfg.context_len = f->context_len;
    f->cfg.ksf = BKV_KSF_IDENTITY_PARAMS;
}

static int run_real_vector(const json_t *v)
{
    const json_t *mid = json_object_get(v, "intermediates");
    const json_t *out = json_object_get(v, "outputs");
    struct fixture f;
    struct bkv_opaque_client_rand crand;
    struct bkv_opaque_server_rand srand;
    struct bkv_opaque_reg_client reg;
    struct bkv_opaque_login_client lc;
    struct bkv_opaque_login_server ls;
    struct bkv_opaque_trace st, ct;
    uint8_t request[33], response[66], record[129], export_reg[32], export_login[32];
    uint8_t ke1[98], ke2[259], ke3[32], client_sk_key[32], server_sk_key[32];
    int ok = 1;

    load(v, &f);
    crand =
        (struct bkv_opaque_client_rand){f.blind_reg, f.env_nonce, f.client_nonce, f.client_seed};
    srand = (struct bkv_opaque_server_rand){f.masking_nonce, f.server_nonce, f.server_seed};

    CU_ASSERT_EQUAL_FATAL(bkv_opaque_reg_start(f.password, f.password_len, &crand, &reg, request),
                          BKV_OK);
    ok &= same(out, "registration_request", request, 33);
    CU_ASSERT_EQUAL_FATAL(
        bkv_opaque_reg_respond(&f.keys, f.cred_id, f.cred_id_len, request, 33, response, &st),
        BKV_OK);
    ok &= same(out, "registration_response", response, 66);
    ok &= same(mid, "oprf_key", st.oprf_key, 32);
    CU_ASSERT_EQUAL_FATAL(bkv_opaque_reg_finish(&f.cfg, f.password, f.password_len, &reg, &f.ids,
                                                &crand, response, 66, record, export_reg, &ct),
                          BKV_OK);
    ok &= same(out, "registration_upload", record, 129);
    ok &= same(out, "export_key", export_reg, 32);
    ok &= same(mid, "randomized_password", ct.randomized_password, 32);
    ok &= same(mid, "masking_key", ct.masking_key, 32);
    ok &= same(mid, "auth_key", ct.auth_key, 32);
    ok &= same(mid, "envelope", ct.envelope, 64);
    ok &= same(mid, "client_public_key", ct.client_public_key, 33);

    crand.blind = f.blind_login;
    CU_ASSERT_EQUAL_FATAL(bkv_opaque_login_start(f.password, f.password_len, &crand, &lc, ke1),
                          BKV_OK);
    ok &= same(out, "KE1", ke1, 98);
    memset(&st, 0, sizeof(st));
    CU_ASSERT_EQUAL_FATAL(bkv_opaque_login_respond(&f.cfg, &f.keys, record, 129, f.cred_id,
                                                   f.cred_id_len, &f.ids, ke1, 98, &srand, &ls, ke2,
                                                   &st),
                          BKV_OK);
    ok &= same(out, "KE2", ke2, 259);
    ok &= same(mid, "oprf_key", st.oprf_key, 32);
    ok &= same(mid, "handshake_secret", st.handshake_secret, 32);
    ok &= same(mid, "server_mac_key", st.server_mac_key, 32);
    ok &= same(mid, "client_mac_key", st.client_mac_key, 32);
    memset(&ct, 0, sizeof(ct));
    CU_ASSERT_EQUAL_FATAL(bkv_opaque_login_finish(&f.cfg, &lc, f.password, f.password_len, &f.ids,
                                                  ke2, 259, ke3, client_sk_key, export_login, &ct),
                          BKV_OK);
    ok &= same(out, "KE3", ke3, 32);
    ok &= same(out, "session_key", client_sk_key, 32);
    ok &= same(out, "export_key", export_login, 32);
    ok &= same(mid, "randomized_password", ct.randomized_password, 32);
    ok &= same(mid, "masking_key", ct.masking_key, 32);
    ok &= same(mid, "auth_key", ct.auth_key, 32);
    ok &= same(mid, "envelope", ct.envelope, 64);
    ok &= same(mid, "client_public_key", ct.client_public_key, 33);
    ok &= same(mid, "handshake_secret", ct.handshake_secret, 32);
    ok &= same(mid, "server_mac_key", ct.server_mac_key, 32);
    ok &= same(mid, "client_mac_key", ct.client_mac_key, 32);
    CU_ASSERT_EQUAL_FATAL(bkv_opaque_login_verify(&ls, ke3, 32, server_sk_key), BKV_OK);
    ok &= same(out, "session_key", server_sk_key, 32);
    return ok;
}

static void test_real_vectors(void)
{
    const json_t *vs = json_object_get(root, "real_vectors");
    int passed = 0, total = 0;

    for (size_t i = 0; i < json_array_size(vs); i++, total++) {
        const json_t *v = json_array_get(vs, i);
        int ok = run_real_vector(v);
        printf("\n  %s: %s", json_string_value(json_object_get(v, "name")), ok ? "ok" : "FAILED");
        passed += ok;
    }
    bkv_test_vectors_report("rfc9807 opaque-3dh real vectors (5, 6)", passed, total, 2);
}

static void test_fake_vector(void)
{
    const json_t *vs = json_object_get(root, "fake_vectors");
    int passed = 0, total = 0;

    for (size_t i = 0; i < json_array_size(vs); i++, total++) {
        const json_t *v = json_array_get(vs, i);
        const json_t *in = json_object_get(v, "inputs");
        struct fixture f;
        struct bkv_opaque_server_rand srand;
        struct bkv_opaque_login_server ls;
        uint8_t record[129] = {0}, ke1[98], ke2[259];
        int ok;

        load(v, &f);
        srand = (struct bkv_opaque_server_rand){f.masking_nonce, f.server_nonce, f.server_seed};
        CU_ASSERT_EQUAL(bkv_test_hex(in, "client_public_key", record, 33), 33);
        CU_ASSERT_EQUAL(bkv_test_hex(in, "masking_key", record + 33, 32), 32);
        CU_ASSERT_EQUAL(bkv_test_hex(in, "KE1", ke1, sizeof(ke1)), 98);
        CU_ASSERT_EQUAL_FATAL(bkv_opaque_login_respond(&f.cfg, &f.keys, record, 129, f.cred_id,
                                                       f.cred_id_len, &f.ids, ke1, 98, &srand, &ls,
                                                       ke2, NULL),
                              BKV_OK);
        ok = same(json_object_get(v, "outputs"), "KE2", ke2, 259);
        printf("\n  %s: %s", json_string_value(json_object_get(v, "name")), ok ? "ok" : "FAILED");
        passed += ok;
        bkv_opaque_login_server_wipe(&ls);
    }
    bkv_test_vectors_report("rfc9807 opaque-3dh fake vector (3)", passed, total, 1);
}

/* A registered account with random server keys, for the negative tests. */
struct account {
    struct bkv_opaque_config cfg;
    struct bkv_opaque_ids ids;
    struct bkv_opaque_server_keys keys;
    uint8_t record[129];
    uint8_t export_key[32];
};

static const uint8_t account_id[] = "account-0001";
static const uint8_t good_pw[] = "correct horse battery staple";
static const uint8_t bad_pw[] = "correct horse battery stapler";

static void account_register(struct account *a, struct bkv_ksf ksf)
{
    struct bkv_opaque_reg_client reg;
    uint8_t request[33], response[66];

    memset(a, 0, sizeof(*a));
    a->cfg.context = (const uint8_t *)"BKV test";
    a->cfg.context_len = 8;
    a->cfg.ksf = ksf;
    a->ids.client = account_id;
    a->ids.client_len = sizeof(account_id) - 1;
    CU_ASSERT_EQUAL_FATAL(bkv_opaque_server_setup(&a->keys), BKV_OK);
    CU_ASSERT_EQUAL_FATAL(bkv_opaque_reg_start(good_pw, sizeof(good_pw) - 1, NULL, &reg, request),
                          BKV_OK);
    CU_ASSERT_EQUAL_FATAL(bkv_opaque_reg_respond(&a->keys, account_id, sizeof(account_id) - 1,
                                                 request, 33, response, NULL),
                          BKV_OK);
    CU_ASSERT_EQUAL_FATAL(bkv_opaque_reg_finish(&a->cfg, good_pw, sizeof(good_pw) - 1, &reg,
                                                &a->ids, NULL, response, 66, a->record,
                                                a->export_key, NULL),
                          BKV_OK);
}

/* One login attempt; returns the client's result, fills ke2 and the states. */
static int account_login(const struct account *a, const uint8_t *pw, size_t pw_len,
                         const uint8_t *record, uint8_t ke3[32], uint8_t export_key[32],
                         struct bkv_opaque_login_server *ls, uint8_t ke2_out[259],
                         void (*tamper)(uint8_t *ke2, size_t i), size_t tamper_at)
{
    struct bkv_opaque_login_client lc;
    uint8_t ke1[98], ke2[259], session[32];
    int rc;

    CU_ASSERT_EQUAL_FATAL(bkv_opaque_login_start(pw, pw_len, NULL, &lc, ke1), BKV_OK);
    rc = bkv_opaque_login_respond(&a->cfg, &a->keys, record, 129, account_id,
                                  sizeof(account_id) - 1, &a->ids, ke1, 98, NULL, ls, ke2, NULL);
    CU_ASSERT_EQUAL_FATAL(rc, BKV_OK);
    if (tamper != NULL)
        tamper(ke2, tamper_at);
    if (ke2_out != NULL)
        memcpy(ke2_out, ke2, 259);
    return bkv_opaque_login_finish(&a->cfg, &lc, pw, pw_len, &a->ids, ke2, 259, ke3, session,
                                   export_key, NULL);
}

static void flip(uint8_t *buf, size_t i)
{
    buf[i] ^= 0x01;
}

static void test_round_trip_and_wrong_password(void)
{
    struct account a;
    struct bkv_opaque_login_server ls;
    uint8_t ke3[32], export_key[32], session[32], zero[32] = {0};

    account_register(&a, BKV_KSF_IDENTITY_PARAMS);
    CU_ASSERT_EQUAL(account_login(&a, good_pw, sizeof(good_pw) - 1, a.record, ke3, export_key, &ls,
                                  NULL, NULL, 0),
                    BKV_OK);
    CU_ASSERT_EQUAL(memcmp(export_key, a.export_key, 32), 0);
    CU_ASSERT_EQUAL(bkv_opaque_login_verify(&ls, ke3, 32, session), BKV_OK);

    /* A wrong password fails envelope recovery and yields no key material. */
    memset(export_key, 0xAA, 32);
    CU_ASSERT_EQUAL(account_login(&a, bad_pw, sizeof(bad_pw) - 1, a.record, ke3, export_key, &ls,
                                  NULL, NULL, 0),
                    BKV_ERR_ENVELOPE);
    CU_ASSERT_EQUAL(memcmp(export_key, zero, 32), 0);
    CU_ASSERT_EQUAL(memcmp(ke3, zero, 32), 0);
}

/* A server login state verifies exactly once, and a wiped or zeroed one never. */
static void test_server_state_single_use(void)
{
    struct account a;
    struct bkv_opaque_login_server ls;
    uint8_t ke3[32], export_key[32], session[32], zero[32] = {0};

    account_register(&a, BKV_KSF_IDENTITY_PARAMS);
    CU_ASSERT_EQUAL_FATAL(account_login(&a, good_pw, sizeof(good_pw) - 1, a.record, ke3, export_key,
                                        &ls, NULL, NULL, 0),
                          BKV_OK);
    CU_ASSERT_EQUAL(bkv_opaque_login_verify(&ls, ke3, 32, session), BKV_OK);
    /* The same, valid KE3 again: the state is spent. */
    CU_ASSERT_EQUAL(bkv_opaque_login_verify(&ls, ke3, 32, session), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(memcmp(session, zero, 32), 0);
    /* A zeroed state must not accept a KE3 of zeros (its expected MAC is zeros too). */
    memset(&ls, 0, sizeof(ls));
    CU_ASSERT_EQUAL(bkv_opaque_login_verify(&ls, zero, 32, session), BKV_ERR_INVALID);
    /* A failed verify spends the state as well. */
    CU_ASSERT_EQUAL_FATAL(account_login(&a, good_pw, sizeof(good_pw) - 1, a.record, ke3, export_key,
                                        &ls, NULL, NULL, 0),
                          BKV_OK);
    ke3[0] ^= 1;
    CU_ASSERT_EQUAL(bkv_opaque_login_verify(&ls, ke3, 32, session), BKV_ERR_MAC);
    ke3[0] ^= 1;
    CU_ASSERT_EQUAL(bkv_opaque_login_verify(&ls, ke3, 32, session), BKV_ERR_INVALID);
    /* A failed login_respond leaves an unarmed state. */
    {
        uint8_t bad_ke1[98] = {0}, ke2[259];
        CU_ASSERT_EQUAL(bkv_opaque_login_respond(&a.cfg, &a.keys, a.record, 129, account_id,
                                                 sizeof(account_id) - 1, &a.ids, bad_ke1, 98, NULL,
                                                 &ls, ke2, NULL),
                        BKV_ERR_POINT);
        CU_ASSERT_EQUAL(bkv_opaque_login_verify(&ls, zero, 32, session), BKV_ERR_INVALID);
    }
}

/* Bad arguments at the API boundary are refused, not dereferenced. */
static void test_null_arguments(void)
{
    struct account a;
    struct bkv_opaque_login_server ls;
    struct bkv_opaque_config no_context = {NULL, 5, BKV_KSF_IDENTITY_PARAMS};
    uint8_t ke1[98] = {0}, ke2[259], response[66];

    account_register(&a, BKV_KSF_IDENTITY_PARAMS);
    CU_ASSERT_EQUAL(bkv_opaque_login_respond(NULL, &a.keys, a.record, 129, account_id, 12, &a.ids,
                                             ke1, 98, NULL, &ls, ke2, NULL),
                    BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_opaque_login_respond(&no_context, &a.keys, a.record, 129, account_id, 12,
                                             &a.ids, ke1, 98, NULL, &ls, ke2, NULL),
                    BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_opaque_login_respond(&a.cfg, &a.keys, a.record, 129, NULL, 12, &a.ids, ke1,
                                             98, NULL, &ls, ke2, NULL),
                    BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_opaque_login_respond(&a.cfg, &a.keys, NULL, 129, account_id, 12, &a.ids,
                                             ke1, 98, NULL, &ls, ke2, NULL),
                    BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_opaque_reg_respond(&a.keys, NULL, 3, ke1, 33, response, NULL),
                    BKV_ERR_INVALID);
}

static void test_tampered_ke2(void)
{
    struct account a;
    struct bkv_opaque_login_server ls;
    uint8_t ke3[32], export_key[32], zero[32] = {0};
    int envelope = 0, mac = 0, point = 0;

    account_register(&a, BKV_KSF_IDENTITY_PARAMS);
    /* Every single-bit change to KE2 makes the client refuse it. */
    for (size_t i = 0; i < 259; i++) {
        int rc = account_login(&a, good_pw, sizeof(good_pw) - 1, a.record, ke3, export_key, &ls,
                               NULL, flip, i);
        CU_ASSERT_NOT_EQUAL(rc, BKV_OK);
        /* No key material leaves a failed login. */
        CU_ASSERT_TRUE(bkv_ct_equal(export_key, zero, 32) && bkv_ct_equal(ke3, zero, 32));
        envelope += rc == BKV_ERR_ENVELOPE;
        mac += rc == BKV_ERR_MAC;
        point += rc == BKV_ERR_POINT;
        bkv_opaque_login_server_wipe(&ls);
    }
    /* Bytes inside the masked credential response break the envelope; the AKE part the MAC. */
    CU_ASSERT_TRUE(envelope >= 97);
    CU_ASSERT_TRUE(mac >= 32 + 32);
    CU_ASSERT_EQUAL(envelope + mac + point, 259);
}

static void test_tampered_ke3(void)
{
    struct account a;
    struct bkv_opaque_login_server ls;
    uint8_t ke3[32], export_key[32], session[32];

    account_register(&a, BKV_KSF_IDENTITY_PARAMS);
    for (size_t i = 0; i < 32 * 8; i += 7) {
        CU_ASSERT_EQUAL_FATAL(account_login(&a, good_pw, sizeof(good_pw) - 1, a.record, ke3,
                                            export_key, &ls, NULL, NULL, 0),
                              BKV_OK);
        ke3[i / 8] ^= (uint8_t)(1u << (i % 8));
        CU_ASSERT_EQUAL(bkv_opaque_login_verify(&ls, ke3, 32, session), BKV_ERR_MAC);
    }
    CU_ASSERT_EQUAL_FATAL(account_login(&a, good_pw, sizeof(good_pw) - 1, a.record, ke3, export_key,
                                        &ls, NULL, NULL, 0),
                          BKV_OK);
    CU_ASSERT_EQUAL(bkv_opaque_login_verify(&ls, ke3, 31, session), BKV_ERR_LENGTH);
}

static void test_identity_mismatch(void)
{
    struct account a;
    struct bkv_opaque_login_client lc;
    struct bkv_opaque_login_server ls;
    struct bkv_opaque_ids other = {(const uint8_t *)"account-0002", 12, NULL, 0};
    uint8_t ke1[98], ke2[259], ke3[32], session[32], export_key[32];

    account_register(&a, BKV_KSF_IDENTITY_PARAMS);
    /* The server answers for account-0001's record, the client believes it is account-0002. */
    CU_ASSERT_EQUAL_FATAL(bkv_opaque_login_start(good_pw, sizeof(good_pw) - 1, NULL, &lc, ke1),
                          BKV_OK);
    CU_ASSERT_EQUAL_FATAL(bkv_opaque_login_respond(&a.cfg, &a.keys, a.record, 129, account_id,
                                                   sizeof(account_id) - 1, &a.ids, ke1, 98, NULL,
                                                   &ls, ke2, NULL),
                          BKV_OK);
    CU_ASSERT_EQUAL(bkv_opaque_login_finish(&a.cfg, &lc, good_pw, sizeof(good_pw) - 1, &other, ke2,
                                            259, ke3, session, export_key, NULL),
                    BKV_ERR_ENVELOPE);
}

static void test_fake_record_behaviour(void)
{
    struct account a;
    struct bkv_opaque_login_server ls;
    uint8_t secret[32] = {7}, fake1[129], fake2[129], other[129], zero[64] = {0};
    uint8_t ke3[32], export_key[32];

    account_register(&a, BKV_KSF_IDENTITY_PARAMS);
    CU_ASSERT_EQUAL(bkv_opaque_fake_record(secret, (const uint8_t *)"ghost", 5, fake1), BKV_OK);
    CU_ASSERT_EQUAL(bkv_opaque_fake_record(secret, (const uint8_t *)"ghost", 5, fake2), BKV_OK);
    CU_ASSERT_EQUAL(bkv_opaque_fake_record(secret, (const uint8_t *)"ghost2", 6, other), BKV_OK);
    CU_ASSERT_EQUAL(memcmp(fake1, fake2, 129), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(fake1, other, 65), 0);
    CU_ASSERT_EQUAL(memcmp(fake1 + 65, zero, 64), 0);
    CU_ASSERT_EQUAL(bkv_opaque_fake_record(NULL, NULL, 0, other), BKV_OK);
    CU_ASSERT_NOT_EQUAL(memcmp(fake1, other, 65), 0);
    /* A KE2 built on a fake record (fixed size by type) makes the client fail at the envelope. */
    CU_ASSERT_EQUAL(
        account_login(&a, good_pw, sizeof(good_pw) - 1, fake1, ke3, export_key, &ls, NULL, NULL, 0),
        BKV_ERR_ENVELOPE);
}

static void test_bad_inputs(void)
{
    struct account a;
    struct bkv_opaque_login_client lc;
    struct bkv_opaque_login_server ls;
    struct bkv_opaque_reg_client reg;
    uint8_t ke1[98], bad[98], ke2[259], response[66], record[129], export_key[32], ke3[32],
        session[32];
    /* x = 1: x^3 - 3x + b is not a square mod p, so no point has this x. */
    static const uint8_t not_on_curve_x[33] = {[0] = 0x02, [32] = 0x01};

    account_register(&a, BKV_KSF_IDENTITY_PARAMS);
    CU_ASSERT_EQUAL_FATAL(bkv_opaque_login_start(good_pw, sizeof(good_pw) - 1, NULL, &lc, ke1),
                          BKV_OK);
    /* Wrong lengths. */
    CU_ASSERT_EQUAL(bkv_opaque_login_respond(&a.cfg, &a.keys, a.record, 129, account_id, 12, &a.ids,
                                             ke1, 97, NULL, &ls, ke2, NULL),
                    BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_opaque_login_respond(&a.cfg, &a.keys, a.record, 128, account_id, 12, &a.ids,
                                             ke1, 98, NULL, &ls, ke2, NULL),
                    BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_opaque_reg_respond(&a.keys, account_id, 12, ke1, 34, response, NULL),
                    BKV_ERR_LENGTH);
    /* A bad blinded element, a bad client keyshare, the identity point. */
    memcpy(bad, ke1, 98);
    bad[0] = 0x04;
    CU_ASSERT_EQUAL(bkv_opaque_login_respond(&a.cfg, &a.keys, a.record, 129, account_id, 12, &a.ids,
                                             bad, 98, NULL, &ls, ke2, NULL),
                    BKV_ERR_POINT);
    memcpy(bad, ke1, 98);
    memcpy(bad + 65, not_on_curve_x, 33);
    CU_ASSERT_EQUAL(bkv_opaque_login_respond(&a.cfg, &a.keys, a.record, 129, account_id, 12, &a.ids,
                                             bad, 98, NULL, &ls, ke2, NULL),
                    BKV_ERR_POINT);
    memcpy(bad, ke1, 98);
    memset(bad + 65, 0, 33);
    CU_ASSERT_EQUAL(bkv_opaque_login_respond(&a.cfg, &a.keys, a.record, 129, account_id, 12, &a.ids,
                                             bad, 98, NULL, &ls, ke2, NULL),
                    BKV_ERR_POINT);
    /* A record whose client key is not a point. */
    memcpy(record, a.record, 129);
    record[0] = 0x05;
    CU_ASSERT_EQUAL(bkv_opaque_login_respond(&a.cfg, &a.keys, record, 129, account_id, 12, &a.ids,
                                             ke1, 98, NULL, &ls, ke2, NULL),
                    BKV_ERR_POINT);
    CU_ASSERT_EQUAL(bkv_opaque_login_finish(&a.cfg, &lc, good_pw, sizeof(good_pw) - 1, &a.ids, ke2,
                                            258, ke3, session, export_key, NULL),
                    BKV_ERR_LENGTH);
    /* Registration: a response whose server key is not a point. */
    CU_ASSERT_EQUAL_FATAL(bkv_opaque_reg_start(good_pw, sizeof(good_pw) - 1, NULL, &reg, ke1),
                          BKV_OK);
    CU_ASSERT_EQUAL_FATAL(bkv_opaque_reg_respond(&a.keys, account_id, 12, ke1, 33, response, NULL),
                          BKV_OK);
    response[33] = 0x00;
    CU_ASSERT_EQUAL(bkv_opaque_reg_finish(&a.cfg, good_pw, sizeof(good_pw) - 1, &reg, &a.ids, NULL,
                                          response, 66, record, export_key, NULL),
                    BKV_ERR_POINT);
    CU_ASSERT_EQUAL(bkv_opaque_reg_finish(&a.cfg, good_pw, sizeof(good_pw) - 1, &reg, &a.ids, NULL,
                                          response, 65, record, export_key, NULL),
                    BKV_ERR_LENGTH);
}

static void test_argon2id(void)
{
    struct account a;
    struct bkv_opaque_login_server ls;
    struct bkv_ksf small = {BKV_KSF_ARGON2ID, 1, 1024, 1};
    struct bkv_ksf bad = {BKV_KSF_ARGON2ID, 0, 1024, 1};
    uint8_t in[32] = {1}, out1[32], out2[32], ke3[32], export_key[32], session[32];
    struct bkv_ksf def = BKV_KSF_ARGON2ID_DEFAULT;

    CU_ASSERT_EQUAL(bkv_ksf_stretch(&small, in, out1), BKV_OK);
    CU_ASSERT_EQUAL(bkv_ksf_stretch(&small, in, out2), BKV_OK);
    CU_ASSERT_EQUAL(memcmp(out1, out2, 32), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(out1, in, 32), 0);
    CU_ASSERT_EQUAL(bkv_ksf_stretch(&bad, in, out1), BKV_ERR_INVALID);
    /* The production default: t=3, 64 MiB, p=4. */
    CU_ASSERT_EQUAL(bkv_ksf_stretch(&def, in, out2), BKV_OK);
    CU_ASSERT_NOT_EQUAL(memcmp(out1, out2, 32), 0);

    account_register(&a, small);
    CU_ASSERT_EQUAL(account_login(&a, good_pw, sizeof(good_pw) - 1, a.record, ke3, export_key, &ls,
                                  NULL, NULL, 0),
                    BKV_OK);
    CU_ASSERT_EQUAL(bkv_opaque_login_verify(&ls, ke3, 32, session), BKV_OK);
    CU_ASSERT_EQUAL(memcmp(export_key, a.export_key, 32), 0);
    CU_ASSERT_EQUAL(account_login(&a, bad_pw, sizeof(bad_pw) - 1, a.record, ke3, export_key, &ls,
                                  NULL, NULL, 0),
                    BKV_ERR_ENVELOPE);
    /* A client using another KSF than the one registered cannot open the envelope. */
    a.cfg.ksf = BKV_KSF_IDENTITY_PARAMS;
    CU_ASSERT_EQUAL(account_login(&a, good_pw, sizeof(good_pw) - 1, a.record, ke3, export_key, &ls,
                                  NULL, NULL, 0),
                    BKV_ERR_ENVELOPE);
}

static CU_TestInfo tests[] = {
    {"RFC 9807 real vectors 5 and 6, all intermediates", test_real_vectors},
    {"RFC 9807 fake vector 3", test_fake_vector},
    {"round trip; wrong password fails envelope recovery", test_round_trip_and_wrong_password},
    {"a server login state verifies once, never when unarmed", test_server_state_single_use},
    {"NULL arguments are refused", test_null_arguments},
    {"every tampered KE2 byte is refused", test_tampered_ke2},
    {"tampered KE3 fails the server MAC check", test_tampered_ke3},
    {"client identity is bound", test_identity_mismatch},
    {"fake records", test_fake_record_behaviour},
    {"bad lengths and points are rejected", test_bad_inputs},
    {"Argon2id KSF", test_argon2id},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return bkv_test_main("proto_opaque", tests, suite_init, suite_cleanup);
}
