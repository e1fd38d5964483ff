/*
 * proto/msg: the inner request and response codecs (every refusal), the
 * realm key config codec, and the wrap and release AEAD layers around K.
 */
#include <string.h>

#include "harness.h"
#include "proto/err.h"
#include "proto/hpke.h"
#include "proto/msg.h"

static const uint8_t account[] = "alice@example.org";
#define ACC_LEN (sizeof(account) - 1)

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 13);
}

static void test_request_round_trip(void)
{
    static const enum bkv_msg_type types[] = {BKV_MSG_REG_INIT, BKV_MSG_REG_FINISH,
                                              BKV_MSG_LOGIN_INIT, BKV_MSG_LOGIN_FINISH,
                                              BKV_MSG_DELETE};
    uint8_t payload[512], enc[BKV_MSG_REQUEST_LEN];
    fill(payload, sizeof(payload), 3);
    for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
        struct bkv_msg_request m = {.type = types[t],
                                    .account = account,
                                    .account_len = ACC_LEN,
                                    .payload = payload,
                                    .payload_len = bkv_msg_request_payload_len(types[t])};
        fill(m.request_id, sizeof(m.request_id), (uint8_t)t);
        CU_ASSERT_EQUAL_FATAL(bkv_msg_request_encode(&m, enc), BKV_OK);
        struct bkv_msg_request d;
        CU_ASSERT_EQUAL_FATAL(bkv_msg_request_decode(enc, sizeof(enc), &d), BKV_OK);
        CU_ASSERT_EQUAL(d.type, types[t]);
        CU_ASSERT_EQUAL(memcmp(d.request_id, m.request_id, 16), 0);
        CU_ASSERT_EQUAL(d.account_len, ACC_LEN);
        CU_ASSERT_EQUAL(memcmp(d.account, account, ACC_LEN), 0);
        CU_ASSERT_EQUAL(d.payload_len, m.payload_len);
        if (d.payload_len > 0)
            CU_ASSERT_EQUAL(memcmp(d.payload, payload, d.payload_len), 0);
        /* A wrong payload length is refused at encode. */
        m.payload_len++;
        CU_ASSERT_EQUAL(bkv_msg_request_encode(&m, enc), BKV_ERR_LENGTH);
    }
}

static void test_request_refusals(void)
{
    uint8_t ke1[BKV_OPAQUE_KE1_LEN], enc[BKV_MSG_REQUEST_LEN], bad[BKV_MSG_REQUEST_LEN];
    fill(ke1, sizeof(ke1), 9);
    struct bkv_msg_request m = {.type = BKV_MSG_LOGIN_INIT,
                                .account = account,
                                .account_len = ACC_LEN,
                                .payload = ke1,
                                .payload_len = sizeof(ke1)};
    struct bkv_msg_request d;
    CU_ASSERT_EQUAL_FATAL(bkv_msg_request_encode(&m, enc), BKV_OK);

    CU_ASSERT_EQUAL(bkv_msg_request_decode(enc, sizeof(enc) - 1, &d), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_msg_request_decode(enc, 0, &d), BKV_ERR_LENGTH);
    memcpy(bad, enc, sizeof(bad));
    bad[0] = 2;
    CU_ASSERT_EQUAL(bkv_msg_request_decode(bad, sizeof(bad), &d), BKV_ERR_UNSUPPORTED);
    memcpy(bad, enc, sizeof(bad));
    bad[1] = 0;
    CU_ASSERT_EQUAL(bkv_msg_request_decode(bad, sizeof(bad), &d), BKV_ERR_UNSUPPORTED);
    bad[1] = 6;
    CU_ASSERT_EQUAL(bkv_msg_request_decode(bad, sizeof(bad), &d), BKV_ERR_UNSUPPORTED);
    memcpy(bad, enc, sizeof(bad));
    bad[3] = 1;
    CU_ASSERT_EQUAL(bkv_msg_request_decode(bad, sizeof(bad), &d), BKV_ERR_FORMAT);
    /* Padding that is not zero, anywhere after the payload. */
    size_t used = 22 + ACC_LEN + sizeof(ke1);
    for (size_t i = used; i < sizeof(bad); i++) {
        memcpy(bad, enc, sizeof(bad));
        bad[i] = 0x80;
        if (bkv_msg_request_decode(bad, sizeof(bad), &d) != BKV_ERR_FORMAT) {
            CU_FAIL("non-zero padding accepted");
            break;
        }
    }
    /* An account with a forbidden byte, an empty one, a too long one. */
    memcpy(bad, enc, sizeof(bad));
    bad[22] = '/';
    CU_ASSERT_EQUAL(bkv_msg_request_decode(bad, sizeof(bad), &d), BKV_ERR_FORMAT);
    memcpy(bad, enc, sizeof(bad));
    bad[20] = 0;
    bad[21] = 0;
    CU_ASSERT_EQUAL(bkv_msg_request_decode(bad, sizeof(bad), &d), BKV_ERR_FORMAT);
    bad[20] = 1;
    bad[21] = 1; /* 257 */
    CU_ASSERT_EQUAL(bkv_msg_request_decode(bad, sizeof(bad), &d), BKV_ERR_FORMAT);
    /* A longer account length swallows payload bytes: the account check or padding refuses. */
    memcpy(bad, enc, sizeof(bad));
    bad[21] = (uint8_t)(ACC_LEN + 1);
    CU_ASSERT_NOT_EQUAL(bkv_msg_request_decode(bad, sizeof(bad), &d), BKV_OK);

    /* Encoder refusals. */
    m.account_len = 0;
    CU_ASSERT_EQUAL(bkv_msg_request_encode(&m, enc), BKV_ERR_INVALID);
    m.account_len = ACC_LEN;
    m.type = (enum bkv_msg_type)9;
    CU_ASSERT_EQUAL(bkv_msg_request_encode(&m, enc), BKV_ERR_INVALID);
    CU_ASSERT_FALSE(bkv_msg_account_valid((const uint8_t *)"a b", 3));
    CU_ASSERT_TRUE(bkv_msg_account_valid((const uint8_t *)"A-z_0.9@x+y", 11));
}

static void test_response(void)
{
    uint8_t payload[300], enc[BKV_MSG_RESPONSE_LEN];
    fill(payload, sizeof(payload), 1);
    struct bkv_msg_response m = {.type = BKV_MSG_LOGIN_INIT,
                                 .status = BKV_MSG_OK,
                                 .attempts_left = 7,
                                 .max_attempts = 10,
                                 .payload = payload,
                                 .payload_len = BKV_MSG_SESSION_ID_LEN + BKV_OPAQUE_KE2_LEN};
    fill(m.request_id, 16, 4);
    CU_ASSERT_EQUAL_FATAL(bkv_msg_response_encode(&m, enc), BKV_OK);
    struct bkv_msg_response d;
    CU_ASSERT_EQUAL_FATAL(bkv_msg_response_decode(enc, sizeof(enc), &d), BKV_OK);
    CU_ASSERT_EQUAL(d.status, BKV_MSG_OK);
    CU_ASSERT_EQUAL(d.attempts_left, 7);
    CU_ASSERT_EQUAL(d.max_attempts, 10);
    CU_ASSERT_EQUAL(d.payload_len, m.payload_len);
    CU_ASSERT_EQUAL(memcmp(d.payload, payload, d.payload_len), 0);

    /* Every non-OK status carries no payload, and the same total size. */
    m.status = BKV_MSG_DESTROYED;
    CU_ASSERT_EQUAL(bkv_msg_response_encode(&m, enc), BKV_ERR_LENGTH);
    m.payload_len = 0;
    CU_ASSERT_EQUAL_FATAL(bkv_msg_response_encode(&m, enc), BKV_OK);
    CU_ASSERT_EQUAL_FATAL(bkv_msg_response_decode(enc, sizeof(enc), &d), BKV_OK);
    CU_ASSERT_EQUAL(d.status, BKV_MSG_DESTROYED);
    CU_ASSERT_PTR_NULL(d.payload);
    enc[2] = 8;
    CU_ASSERT_EQUAL(bkv_msg_response_decode(enc, sizeof(enc), &d), BKV_ERR_UNSUPPORTED);
    enc[2] = BKV_MSG_DESTROYED;
    enc[100] = 1;
    CU_ASSERT_EQUAL(bkv_msg_response_decode(enc, sizeof(enc), &d), BKV_ERR_FORMAT);
    CU_ASSERT_EQUAL(bkv_msg_response_decode(enc, sizeof(enc) + 0 - 1, &d), BKV_ERR_LENGTH);
    CU_ASSERT_STRING_EQUAL(bkv_msg_status_name(BKV_MSG_REPLAYED), "REPLAYED");
    CU_ASSERT_STRING_EQUAL(bkv_msg_type_name(BKV_MSG_LOGIN_FINISH), "LOGIN_FINISH");
}

static int make_keyconfig(struct bkv_keyconfig *kc)
{
    uint8_t sk[32], pk[65];
    size_t pk_len = 0;
    memset(kc, 0, sizeof(*kc));
    fill(kc->realm_id, 16, 77);
    kc->ksf = BKV_KSF_ARGON2ID_DEFAULT;
    fill(sk, sizeof(sk), 5);
    int rc = bkv_hpke_public_key(0x0010, sk, pk, &pk_len);
    if (rc != BKV_OK)
        return rc;
    kc->ohttp.key_id = 7;
    kc->ohttp.kem = 0x0010;
    kc->ohttp.pk_len = pk_len;
    memcpy(kc->ohttp.pk, pk, pk_len);
    kc->ohttp.suite_count = 2;
    kc->ohttp.suites[0] = (struct bkv_ohttp_symmetric){0x0001, 0x0002};
    kc->ohttp.suites[1] = (struct bkv_ohttp_symmetric){0x0001, 0x0001};
    return BKV_OK;
}

static void test_keyconfig(void)
{
    struct bkv_keyconfig kc, d;
    uint8_t enc[BKV_KEYCONFIG_MAX_LEN], bad[BKV_KEYCONFIG_MAX_LEN], fp[32], fp2[32];
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(make_keyconfig(&kc), BKV_OK);
    CU_ASSERT_EQUAL_FATAL(bkv_keyconfig_encode(&kc, enc, sizeof(enc), &len), BKV_OK);
    CU_ASSERT_EQUAL_FATAL(bkv_keyconfig_decode(enc, len, &d), BKV_OK);
    CU_ASSERT_EQUAL(memcmp(d.realm_id, kc.realm_id, 16), 0);
    CU_ASSERT_EQUAL(d.ksf.kind, BKV_KSF_ARGON2ID);
    CU_ASSERT_EQUAL(d.ksf.memory_kib, 1u << 16);
    CU_ASSERT_EQUAL(d.ohttp.key_id, 7);
    CU_ASSERT_EQUAL(d.ohttp.suite_count, 2);
    CU_ASSERT_EQUAL(memcmp(d.ohttp.pk, kc.ohttp.pk, 65), 0);

    CU_ASSERT_EQUAL(bkv_keyconfig_fingerprint(enc, len, fp), BKV_OK);
    enc[10] ^= 1;
    CU_ASSERT_EQUAL(bkv_keyconfig_fingerprint(enc, len, fp2), BKV_OK);
    CU_ASSERT_NOT_EQUAL(memcmp(fp, fp2, 32), 0);
    enc[10] ^= 1;

    /* Every truncation and a trailing byte are refused. */
    int accepted = 0;
    for (size_t l = 0; l < len; l++)
        accepted += bkv_keyconfig_decode(enc, l, &d) == BKV_OK;
    CU_ASSERT_EQUAL(accepted, 0);
    memcpy(bad, enc, len);
    bad[len] = 0;
    CU_ASSERT_EQUAL(bkv_keyconfig_decode(bad, len + 1, &d), BKV_ERR_LENGTH);
    memcpy(bad, enc, len);
    bad[0] = 'X';
    CU_ASSERT_EQUAL(bkv_keyconfig_decode(bad, len, &d), BKV_ERR_FORMAT);
    memcpy(bad, enc, len);
    bad[4] = 2;
    CU_ASSERT_EQUAL(bkv_keyconfig_decode(bad, len, &d), BKV_ERR_UNSUPPORTED);
    memcpy(bad, enc, len);
    bad[24] = 9;
    CU_ASSERT_EQUAL(bkv_keyconfig_decode(bad, len, &d), BKV_ERR_UNSUPPORTED);
    memcpy(bad, enc, len);
    bad[28 + 3] = 0; /* t = 0 */
    CU_ASSERT_EQUAL(bkv_keyconfig_decode(bad, len, &d), BKV_ERR_FORMAT);
    /* A public key that is not on the curve. */
    memcpy(bad, enc, len);
    bad[42 + 3 + 10] ^= 0x40;
    CU_ASSERT_NOT_EQUAL(bkv_keyconfig_decode(bad, len, &d), BKV_OK);

    uint8_t ctx[BKV_MSG_CONTEXT_LEN];
    struct bkv_opaque_config oc;
    bkv_keyconfig_opaque(&kc, ctx, &oc);
    CU_ASSERT_EQUAL(oc.context_len, 13 + 16);
    CU_ASSERT_EQUAL(memcmp(oc.context, "BKV-OPAQUE-v1", 13), 0);
    CU_ASSERT_EQUAL(memcmp(oc.context + 13, kc.realm_id, 16), 0);
}

static void test_wrap_and_release(void)
{
    uint8_t export_key[32], other[32], key[32], out[32], wrapped[BKV_MSG_WRAPPED_LEN];
    uint8_t w2[BKV_MSG_WRAPPED_LEN], sk[32], sid[16], release[BKV_MSG_RELEASE_LEN];
    fill(export_key, 32, 1);
    fill(other, 32, 2);
    fill(key, 32, 3);
    fill(sk, 32, 4);
    fill(sid, 16, 5);
    CU_ASSERT_EQUAL_FATAL(bkv_msg_wrap_key(export_key, account, ACC_LEN, key, wrapped), BKV_OK);
    CU_ASSERT_EQUAL_FATAL(bkv_msg_unwrap_key(export_key, account, ACC_LEN, wrapped, out), BKV_OK);
    CU_ASSERT_EQUAL(memcmp(out, key, 32), 0);
    /* A wrong export key or account, or any flipped bit, is refused and out wiped. */
    CU_ASSERT_EQUAL(bkv_msg_unwrap_key(other, account, ACC_LEN, wrapped, out), BKV_ERR_DECRYPT);
    CU_ASSERT_EQUAL(bkv_msg_unwrap_key(export_key, (const uint8_t *)"bob", 3, wrapped, out),
                    BKV_ERR_DECRYPT);
    int accepted = 0;
    for (size_t i = 0; i < sizeof(wrapped) * 8; i++) {
        memcpy(w2, wrapped, sizeof(w2));
        w2[i / 8] ^= (uint8_t)(1u << (i % 8));
        accepted += bkv_msg_unwrap_key(export_key, account, ACC_LEN, w2, out) == BKV_OK;
    }
    CU_ASSERT_EQUAL(accepted, 0);

    CU_ASSERT_EQUAL_FATAL(bkv_msg_release_seal(sk, sid, wrapped, release), BKV_OK);
    CU_ASSERT_EQUAL_FATAL(bkv_msg_release_open(sk, sid, release, w2), BKV_OK);
    CU_ASSERT_EQUAL(memcmp(w2, wrapped, sizeof(w2)), 0);
    sid[0] ^= 1;
    CU_ASSERT_EQUAL(bkv_msg_release_open(sk, sid, release, w2), BKV_ERR_DECRYPT);
    sid[0] ^= 1;
    CU_ASSERT_EQUAL(bkv_msg_release_open(other, sid, release, w2), BKV_ERR_DECRYPT);
}

static CU_TestInfo tests[] = {
    {"request round trip for every type", test_request_round_trip},
    {"request decoder refuses every malformation", test_request_refusals},
    {"response round trip and refusals", test_response},
    {"key config round trip, fingerprint and refusals", test_keyconfig},
    {"wrap and release layers", test_wrap_and_release},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return bkv_test_main("proto_msg", tests, NULL, NULL);
}
