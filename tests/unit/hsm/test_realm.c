/*
 * hsm/realm and hsm/codec: creating a realm in a fresh token, finding it
 * again on open, the realm description format and its total parser, a
 * missing realm key (BKV_ERR_HSM_NO_KEY naming the key), and the attacks of
 * a user-PIN holder: no PKCS#11 call may read, relax, copy or wrap a realm
 * key with a key the user controls, use a key for another mechanism, or
 * replace the marker or a key without bkv_hsm_realm_verify (and an open with
 * the pinned realm) refusing the token.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "harness.h"
#include "hsm/codec.h"
#include "hsm/internal.h"
#include "hsm/secrets.h"
#include "hsm/seal.h"
#include "proto/err.h"
#include "proto/hpke.h"

static struct fx fx;
static struct bkv_hsm *h1;
static struct bkv_hsm_realm r1;
static uint8_t *secrets1;
static size_t secrets1_len;

static int suite_init(void)
{
    if (fx_setup(&fx) != 0 || fx_token(&fx, "node-1") != 0 || fx_token(&fx, "node-3") != 0 ||
        fx_open(&fx, "node-1", &h1) != 0)
        return 1;
    if (bkv_hsm_realm_create(h1, &r1, &secrets1, &secrets1_len) != 0) {
        fprintf(stderr, "%s\n", bkv_hsm_errmsg(h1));
        return 1;
    }
    return 0;
}

static int suite_cleanup(void)
{
    bkv_hsm_close(h1);
    free(secrets1);
    fx_teardown(&fx);
    return 0;
}

static CK_BBOOL bool_attr(struct bkv_hsm *h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type)
{
    CK_BBOOL v = 2;
    CK_ATTRIBUTE a = {type, &v, sizeof(v)};
    CK_SESSION_HANDLE s;

    hsm_begin(h, &s);
    if (h->f->C_GetAttributeValue(s, o, &a, 1) != CKR_OK)
        v = 3;
    hsm_end(h, s);
    return v;
}

static void test_create(void)
{
    struct bkv_hsm_realm got;
    uint8_t *again = NULL;
    size_t again_len = 0;
    CK_OBJECT_HANDLE keys[3] = {h1->seal_key, h1->mac_key, h1->hpke_key};

    CU_ASSERT_EQUAL(bkv_hpke_enc_check(BKV_HPKE_KEM_P256_SHA256, r1.hpke_pk, 65), 0);
    CU_ASSERT_EQUAL(bkv_hsm_realm_get(h1, &got), 0);
    CU_ASSERT_EQUAL(memcmp(&got, &r1, sizeof(r1)), 0);
    /* The sealed OPAQUE secrets: 64 bytes of plaintext, sealed with the realm key. */
    CU_ASSERT_EQUAL(secrets1_len, bkv_hsm_sealed_len(64));
    CU_ASSERT_EQUAL(secrets1[0], BKV_HSM_SEAL_VERSION);
    CU_ASSERT_EQUAL(memcmp(secrets1 + 1, r1.seal_key_id, 8), 0);
    /* A second realm in the same token is refused. */
    CU_ASSERT_EQUAL(bkv_hsm_realm_create(h1, &got, &again, &again_len), BKV_ERR_INVALID);
    CU_ASSERT_PTR_NULL(again);
    printf("\n    %s", bkv_hsm_errmsg(h1));
    CU_ASSERT_PTR_NOT_NULL(strstr(bkv_hsm_errmsg(h1), "\"node-1\": the token already holds realm"));
    /* The protective attributes of each realm key. */
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(bool_attr(h1, keys[i], CKA_TOKEN), CK_TRUE);
        CU_ASSERT_EQUAL(bool_attr(h1, keys[i], CKA_PRIVATE), CK_TRUE);
        CU_ASSERT_EQUAL(bool_attr(h1, keys[i], CKA_SENSITIVE), CK_TRUE);
        CU_ASSERT_EQUAL(bool_attr(h1, keys[i], CKA_ALWAYS_SENSITIVE), CK_TRUE);
        CU_ASSERT_EQUAL(bool_attr(h1, keys[i], CKA_WRAP_WITH_TRUSTED), CK_TRUE);
        CU_ASSERT_EQUAL(bool_attr(h1, keys[i], CKA_COPYABLE), CK_FALSE);
        CU_ASSERT_EQUAL(bool_attr(h1, keys[i], CKA_MODIFIABLE), CK_FALSE);
    }
    CU_ASSERT_EQUAL(fx_count_label(h1, CKO_DATA, "bkv-realm"), 1);
    CU_ASSERT_EQUAL(bool_attr(h1, h1->marker, CKA_MODIFIABLE), CK_FALSE);
    CU_ASSERT_EQUAL(bool_attr(h1, h1->marker, CKA_DESTROYABLE), CK_FALSE);
    /* The key check values were made and verify. */
    CU_ASSERT_EQUAL(r1.seal_kcv[0], BKV_HSM_SEAL_VERSION);
    CU_ASSERT_EQUAL(memcmp(r1.seal_kcv + 1, r1.seal_key_id, 8), 0);
    CU_ASSERT_EQUAL(bkv_hsm_realm_verify(h1, &r1), 0);
}

static void test_reopen(void)
{
    struct bkv_hsm_config cfg = fx_config(&fx, "node-1");
    struct bkv_hsm_realm got;
    char err[512];

    bkv_hsm_close(h1);
    h1 = NULL;
    cfg.require_realm = 1;
    cfg.realm = &r1;
    CU_ASSERT_EQUAL_FATAL(bkv_hsm_open(&cfg, &h1, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(bkv_hsm_realm_get(h1, &got), 0);
    CU_ASSERT_EQUAL(memcmp(&got, &r1, sizeof(r1)), 0);
}

/* 1 if the n bytes at needle occur in hay. */
static int contains(const uint8_t *hay, size_t len, const uint8_t *needle, size_t n)
{
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(hay + i, needle, n) == 0)
            return 1;
    return 0;
}

static void test_secrets_never_in_clear(void)
{
    struct bkv_opaque_server_keys *keys = NULL;

    CU_ASSERT_EQUAL_FATAL(bkv_hsm_opaque_load(h1, secrets1, secrets1_len, &keys), 0);
    CU_ASSERT_FALSE(contains(secrets1, secrets1_len, keys->oprf_seed, 8));
    CU_ASSERT_FALSE(contains(secrets1, secrets1_len, keys->sk, 8));
    CU_ASSERT_EQUAL(memcmp(keys->pk, r1.opaque_pk, sizeof(r1.opaque_pk)), 0);
    bkv_hsm_opaque_free(keys);
}

static void test_attack(void)
{
    int tried = 0, succeeded = fx_attack_keys(h1, &r1, &tried);

    printf("\n    %d extraction and substitution attempts on the realm, %d succeeded", tried,
           succeeded);
    CU_ASSERT_EQUAL(succeeded, 0);
    CU_ASSERT(tried >= 60);
}

/* Open label with pinned; returns the code and prints the message. */
static int open_pinned(const char *label, const struct bkv_hsm_realm *pinned, struct bkv_hsm **h,
                       char *err, size_t cap)
{
    struct bkv_hsm_config cfg = fx_config(&fx, label);
    int rc;

    cfg.realm = pinned;
    rc = bkv_hsm_open(&cfg, h, err, cap);
    printf("\n    open with the pinned realm -> %s%s%s", bkv_strerror(rc), rc ? ": " : "",
           rc ? err : "");
    return rc;
}

/*
 * Finding 2 (/tmp/poc/poc2.c) on a token of its own: a user-PIN holder
 * imports a seal key of known value and tries to make the node use it.
 */
static void test_substitution(void)
{
    static const uint8_t known[32] = {0x41};
    struct bkv_hsm *h3 = NULL;
    struct bkv_hsm_realm r3, other;
    uint8_t *s3 = NULL, new_id[8] = {9, 9, 9, 9, 9, 9, 9, 9};
    size_t s3_len = 0;
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE k, mk;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY, dc = CKO_DATA;
    CK_KEY_TYPE aes = CKK_AES;
    CK_BBOOL yes = CK_TRUE;
    uint8_t v[BKV_HSM_REALM_ENCODED_LEN];
    char err[512];

    CU_ASSERT_EQUAL_FATAL(fx_token(&fx, "node-4"), 0);
    CU_ASSERT_EQUAL_FATAL(fx_open(&fx, "node-4", &h3), 0);
    CU_ASSERT_EQUAL_FATAL(bkv_hsm_realm_create(h3, &r3, &s3, &s3_len), 0);
    free(s3);
    bkv_hsm_close(h3);
    h3 = NULL;
    /* The seal key replaced by a known one with the same label and id. */
    {
        struct bkv_hsm_config cfg = fx_config(&fx, "node-4");
        CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls},
                            {CKA_KEY_TYPE, &aes, sizeof aes},
                            {CKA_TOKEN, &yes, 1},
                            {CKA_PRIVATE, &yes, 1},
                            {CKA_SENSITIVE, &yes, 1},
                            {CKA_WRAP_WITH_TRUSTED, &yes, 1},
                            {CKA_ENCRYPT, &yes, 1},
                            {CKA_DECRYPT, &yes, 1},
                            {CKA_LABEL, "bkv-realm-seal", 14},
                            {CKA_ID, r3.seal_key_id, 8},
                            {CKA_VALUE, (void *)known, 32}};
        CU_ASSERT_EQUAL_FATAL(bkv_hsm_open(&cfg, &h3, err, sizeof(err)), 0);
        hsm_begin(h3, &s);
        CU_ASSERT_EQUAL(h3->f->C_DestroyObject(s, h3->seal_key), CKR_OK);
        CU_ASSERT_EQUAL(h3->f->C_CreateObject(s, t, sizeof(t) / sizeof(t[0]), &k), CKR_OK);
        /* The PoC's next steps are refused outright now. */
        bkv_hsm_realm_encode(&r3, v);
        {
            CK_ATTRIBUTE va = {CKA_VALUE, v, sizeof v};
            CU_ASSERT_NOT_EQUAL(h3->f->C_SetAttributeValue(s, h3->marker, &va, 1), CKR_OK);
        }
        CU_ASSERT_NOT_EQUAL(h3->f->C_DestroyObject(s, h3->marker), CKR_OK);
        hsm_end(h3, s);
        bkv_hsm_close(h3);
        h3 = NULL;
        /* Unpinned, the open cannot tell; pinned, the seal key check value fails. */
        CU_ASSERT_EQUAL(fx_open(&fx, "node-4", &h3), 0);
        bkv_hsm_close(h3);
        h3 = NULL;
        cfg.realm = &r3;
        CU_ASSERT_EQUAL(bkv_hsm_open(&cfg, &h3, err, sizeof(err)), BKV_ERR_MAC);
        printf("\n    seal key replaced -> %s", err);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "seal key in the token fails the realm's key check"));
        CU_ASSERT_PTR_NULL(h3);
    }
    /* A second marker naming the known key: refused even without a pinned realm. */
    CU_ASSERT_EQUAL_FATAL(fx_open(&fx, "node-4", &h3), 0);
    other = r3;
    memcpy(other.seal_key_id, new_id, 8);
    memcpy(other.seal_kcv + 1, new_id, 8);
    bkv_hsm_realm_encode(&other, v);
    {
        CK_ATTRIBUTE mt[] = {{CKA_CLASS, &dc, sizeof dc},
                             {CKA_TOKEN, &yes, 1},
                             {CKA_PRIVATE, &yes, 1},
                             {CKA_LABEL, "bkv-realm", 9},
                             {CKA_VALUE, v, sizeof v}};
        hsm_begin(h3, &s);
        CU_ASSERT_EQUAL(h3->f->C_CreateObject(s, mt, 5, &mk), CKR_OK);
        hsm_end(h3, s);
    }
    bkv_hsm_close(h3);
    h3 = NULL;
    {
        struct bkv_hsm_config cfg = fx_config(&fx, "node-4");
        CU_ASSERT_EQUAL(bkv_hsm_open(&cfg, &h3, err, sizeof(err)), BKV_ERR_HSM);
        printf("\n    second marker -> %s", err);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "two realm markers"));
    }
    /* A token holding another realm (what a replaced marker looks like) is refused. */
    CU_ASSERT_EQUAL_FATAL(fx_token(&fx, "node-5"), 0);
    CU_ASSERT_EQUAL_FATAL(fx_open(&fx, "node-5", &h3), 0);
    CU_ASSERT_EQUAL_FATAL(bkv_hsm_realm_create(h3, &r3, &s3, &s3_len), 0);
    free(s3);
    bkv_hsm_close(h3);
    h3 = NULL;
    CU_ASSERT_EQUAL(open_pinned("node-5", &r1, &h3, err, sizeof(err)), BKV_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not the pinned realm"));
    CU_ASSERT_PTR_NULL(h3);
    CU_ASSERT_EQUAL(open_pinned("node-5", &r3, &h3, err, sizeof(err)), 0);
    bkv_hsm_close(h3);
}

/* A description that differs from the token's in any field is refused. */
static void test_pinned_fields(void)
{
    struct bkv_hsm_realm bad;
    int refused = 0, n = 0;
    size_t fields[] = {
        offsetof(struct bkv_hsm_realm, realm_id),    offsetof(struct bkv_hsm_realm, hpke_pk) + 10,
        offsetof(struct bkv_hsm_realm, seal_key_id), offsetof(struct bkv_hsm_realm, mac_key_id),
        offsetof(struct bkv_hsm_realm, hpke_key_id), offsetof(struct bkv_hsm_realm, opaque_pk) + 5,
        offsetof(struct bkv_hsm_realm, mac_kcv),     offsetof(struct bkv_hsm_realm, seal_kcv) + 30};

    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        bad = r1;
        ((uint8_t *)&bad)[fields[i]] ^= 1;
        n++;
        refused += bkv_hsm_realm_verify(h1, &bad) == BKV_ERR_INVALID;
    }
    printf("\n    %d altered descriptions, %d refused: %s", n, refused, bkv_hsm_errmsg(h1));
    CU_ASSERT_EQUAL(refused, n);
    CU_ASSERT_EQUAL(bkv_hsm_realm_verify(h1, &r1), 0);
}

static void test_missing_key(void)
{
    struct bkv_hsm *h3 = NULL;
    struct bkv_hsm_realm r3;
    uint8_t *s3 = NULL;
    size_t s3_len = 0;
    CK_SESSION_HANDLE s;
    char err[512];
    struct bkv_hsm_config cfg = fx_config(&fx, "node-3");

    CU_ASSERT_EQUAL_FATAL(fx_open(&fx, "node-3", &h3), 0);
    CU_ASSERT_EQUAL_FATAL(bkv_hsm_realm_create(h3, &r3, &s3, &s3_len), 0);
    CU_ASSERT(memcmp(r3.realm_id, r1.realm_id, 16) != 0);
    hsm_begin(h3, &s);
    CU_ASSERT_EQUAL(h3->f->C_DestroyObject(s, h3->mac_key), CKR_OK);
    hsm_end(h3, s);
    bkv_hsm_close(h3);
    h3 = NULL;
    CU_ASSERT_EQUAL(bkv_hsm_open(&cfg, &h3, err, sizeof(err)), BKV_ERR_HSM_NO_KEY);
    printf("\n    %s", err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "hsm: open token \"node-3\": realm "));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "the MAC key (label \"bkv-realm-mac\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "is missing"));
    CU_ASSERT_PTR_NULL(h3);
    free(s3);
}

static void test_realm_codec(void)
{
    uint8_t enc[BKV_HSM_REALM_ENCODED_LEN], bad[BKV_HSM_REALM_ENCODED_LEN + 1];
    struct bkv_hsm_realm got;
    int ok = 1;

    bkv_hsm_realm_encode(&r1, enc);
    CU_ASSERT_EQUAL(memcmp(enc, "BKVR\x02", 5), 0);
    CU_ASSERT_EQUAL(sizeof(enc), 228);
    CU_ASSERT_EQUAL(bkv_hsm_realm_decode(enc, sizeof(enc), &got), 0);
    CU_ASSERT_EQUAL(memcmp(&got, &r1, sizeof(r1)), 0);
    for (size_t n = 0; n < sizeof(enc); n++)
        ok &= bkv_hsm_realm_decode(enc, n, &got) == BKV_ERR_LENGTH;
    CU_ASSERT(ok);
    memcpy(bad, enc, sizeof(enc));
    bad[sizeof(enc)] = 0;
    CU_ASSERT_EQUAL(bkv_hsm_realm_decode(bad, sizeof(bad), &got), BKV_ERR_LENGTH);
    bad[0] = 'X';
    CU_ASSERT_EQUAL(bkv_hsm_realm_decode(bad, sizeof(enc), &got), BKV_ERR_FORMAT);
    memcpy(bad, enc, sizeof(enc));
    bad[4] = 1; /* version 1 had no key check values */
    CU_ASSERT_EQUAL(bkv_hsm_realm_decode(bad, sizeof(enc), &got), BKV_ERR_UNSUPPORTED);
    memcpy(bad, enc, sizeof(enc));
    bad[sizeof(enc) - 53] = 2; /* the seal check value's version */
    CU_ASSERT_EQUAL(bkv_hsm_realm_decode(bad, sizeof(enc), &got), BKV_ERR_FORMAT);
    memcpy(bad, enc, sizeof(enc));
    bad[sizeof(enc) - 52] ^= 1; /* its key id is not the seal key id */
    CU_ASSERT_EQUAL(bkv_hsm_realm_decode(bad, sizeof(enc), &got), BKV_ERR_FORMAT);
    memcpy(bad, enc, sizeof(enc));
    bad[5 + 16 + 24] = 0x02; /* hpke_pk prefix */
    CU_ASSERT_EQUAL(bkv_hsm_realm_decode(bad, sizeof(enc), &got), BKV_ERR_POINT);
    memcpy(bad, enc, sizeof(enc));
    bad[5 + 16 + 24 + 64] ^= 1; /* last byte of Y: off the curve */
    CU_ASSERT_EQUAL(bkv_hsm_realm_decode(bad, sizeof(enc), &got), BKV_ERR_POINT);
    memcpy(bad, enc, sizeof(enc));
    bad[5 + 16 + 24 + 65] = 0x05; /* opaque_pk prefix */
    CU_ASSERT_EQUAL(bkv_hsm_realm_decode(bad, sizeof(enc), &got), BKV_ERR_POINT);
}

static CU_TestInfo tests[] = {
    {"create a realm: keys, attributes, sealed secrets", test_create},
    {"reopen finds the realm", test_reopen},
    {"OPAQUE secrets never in the clear", test_secrets_never_in_clear},
    {"no PKCS#11 call extracts, misuses or substitutes a realm key", test_attack},
    {"a substituted seal key or marker is refused", test_substitution},
    {"every field of the pinned description is compared", test_pinned_fields},
    {"missing realm key -> BKV_ERR_HSM_NO_KEY", test_missing_key},
    {"realm description format", test_realm_codec},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return bkv_test_main("hsm_realm", tests, suite_init, suite_cleanup);
}
