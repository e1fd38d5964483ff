/*
 * hsm/seal, hsm/mac, hsm/secrets: AES-256-GCM sealing in the HSM (round
 * trips, wrong AAD, a flipped bit in every byte of every field, truncation,
 * unknown version, another realm's key), CKR_GENERAL_ERROR told apart from
 * an unhealthy token, account MACs (deterministic, separated by realm), the
 * OPAQUE secrets in locked memory (content, wipe, another realm's blob),
 * tokens without a realm, and several threads sealing, unsealing, MACing
 * and decapsulating at once.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "fixture.h"
#include "harness.h"
#include "hsm/decap.h"
#include "hsm/internal.h"
#include "hsm/mac.h"
#include "hsm/secrets.h"
#include "hsm/seal.h"
#include "proto/err.h"
#include "proto/group.h"
#include "proto/hpke.h"
#include "proto/util.h"

static struct fx fx;
static struct bkv_hsm *h1, *h2, *h3; /* realm A, realm B, no realm */
static struct bkv_hsm_realm r1, r2;
static uint8_t *secrets1, *secrets2;
static size_t secrets1_len, secrets2_len;

static int suite_init(void)
{
    if (fx_setup(&fx) != 0 || fx_token(&fx, "node-1") != 0 || fx_token(&fx, "node-2") != 0 ||
        fx_token(&fx, "node-3") != 0 || fx_open(&fx, "node-1", &h1) != 0 ||
        fx_open(&fx, "node-2", &h2) != 0 || fx_open(&fx, "node-3", &h3) != 0)
        return 1;
    if (bkv_hsm_realm_create(h1, &r1, &secrets1, &secrets1_len) != 0 ||
        bkv_hsm_realm_create(h2, &r2, &secrets2, &secrets2_len) != 0)
        return 1;
    return 0;
}

static int suite_cleanup(void)
{
    bkv_hsm_close(h1);
    bkv_hsm_close(h2);
    bkv_hsm_close(h3);
    free(secrets1);
    free(secrets2);
    fx_teardown(&fx);
    return 0;
}

static const uint8_t aad[] = "REGISTER|account-42|v1";

static void test_round_trip(void)
{
    static const size_t sizes[] = {0, 1, 16, 200, 4096};
    uint8_t pt[4096], blob[4096 + 64], blob2[4096 + 64], out[4096 + 64];
    size_t blob_len, blob2_len, out_len;

    RAND_bytes(pt, sizeof(pt));
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        CU_ASSERT_EQUAL(bkv_hsm_seal(h1, aad, sizeof(aad), pt, n, blob, sizeof(blob), &blob_len),
                        0);
        CU_ASSERT_EQUAL(blob_len, bkv_hsm_sealed_len(n));
        CU_ASSERT_EQUAL(blob[0], 1);
        CU_ASSERT_EQUAL(memcmp(blob + 1, r1.seal_key_id, 8), 0);
        CU_ASSERT_EQUAL(bkv_hsm_unseal(h1, aad, sizeof(aad), blob, blob_len, out, n, &out_len), 0);
        CU_ASSERT_EQUAL(out_len, n);
        CU_ASSERT_EQUAL(memcmp(out, pt, n), 0);
        /* Random IV: sealing the same record twice gives two different blobs. */
        CU_ASSERT_EQUAL(bkv_hsm_seal(h1, aad, sizeof(aad), pt, n, blob2, sizeof(blob2), &blob2_len),
                        0);
        CU_ASSERT(memcmp(blob, blob2, blob_len) != 0);
    }
    /* Empty AAD works and differs from a non-empty one. */
    CU_ASSERT_EQUAL(bkv_hsm_seal(h1, NULL, 0, pt, 200, blob, sizeof(blob), &blob_len), 0);
    CU_ASSERT_EQUAL(bkv_hsm_unseal(h1, NULL, 0, blob, blob_len, out, sizeof(out), &out_len), 0);
    CU_ASSERT_EQUAL(bkv_hsm_unseal(h1, aad, 1, blob, blob_len, out, sizeof(out), &out_len),
                    BKV_ERR_DECRYPT);
    /* Buffers too small. */
    CU_ASSERT_EQUAL(bkv_hsm_seal(h1, aad, sizeof(aad), pt, 200, blob, 236, &blob_len),
                    BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_hsm_seal(h1, aad, sizeof(aad), pt, 200, blob, sizeof(blob), &blob_len), 0);
    CU_ASSERT_EQUAL(bkv_hsm_unseal(h1, aad, sizeof(aad), blob, blob_len, out, 199, &out_len),
                    BKV_ERR_LENGTH);
}

static void test_tamper(void)
{
    uint8_t pt[200], blob[300], bad[300], out[300];
    size_t blob_len, out_len;
    int by_region[5] = {0}, total[5] = {0};
    static const char *names[5] = {"version", "key id", "iv", "ciphertext", "tag"};

    RAND_bytes(pt, sizeof(pt));
    CU_ASSERT_EQUAL_FATAL(
        bkv_hsm_seal(h1, aad, sizeof(aad), pt, sizeof(pt), blob, sizeof(blob), &blob_len), 0);
    /* Wrong AAD: one flipped bit, one byte more, one less. */
    {
        uint8_t other[sizeof(aad)];
        memcpy(other, aad, sizeof(aad));
        other[3] ^= 0x20;
        CU_ASSERT_EQUAL(
            bkv_hsm_unseal(h1, other, sizeof(other), blob, blob_len, out, sizeof(out), &out_len),
            BKV_ERR_DECRYPT);
        CU_ASSERT_EQUAL(
            bkv_hsm_unseal(h1, aad, sizeof(aad) - 1, blob, blob_len, out, sizeof(out), &out_len),
            BKV_ERR_DECRYPT);
        printf("\n    wrong AAD: %s", bkv_hsm_errmsg(h1));
    }
    /* A flipped bit in every byte: each field gives its own error. */
    for (size_t i = 0; i < blob_len; i++) {
        int region = i == 0 ? 0 : i < 9 ? 1 : i < 21 ? 2 : i < blob_len - 16 ? 3 : 4;
        int want = region == 0   ? BKV_ERR_UNSUPPORTED
                   : region == 1 ? BKV_ERR_HSM_NO_KEY
                                 : BKV_ERR_DECRYPT;
        memcpy(bad, blob, blob_len);
        bad[i] ^= (uint8_t)(1u << (i % 8));
        total[region]++;
        by_region[region] += bkv_hsm_unseal(h1, aad, sizeof(aad), bad, blob_len, out, sizeof(out),
                                            &out_len) == want &&
                             out_len == 0;
    }
    for (int r = 0; r < 5; r++) {
        printf("\n    flipped bit in %s: %d/%d refused with the expected code", names[r],
               by_region[r], total[r]);
        CU_ASSERT_EQUAL(by_region[r], total[r]);
    }
    /* Truncation: shorter than the overhead -> LENGTH, else the tag fails. */
    {
        int ok = 1;
        for (size_t n = 0; n < blob_len; n++) {
            int rc = bkv_hsm_unseal(h1, aad, sizeof(aad), blob, n, out, sizeof(out), &out_len);
            ok &= n < BKV_HSM_SEAL_OVERHEAD ? rc == BKV_ERR_LENGTH || (n == 0 && rc != 0)
                                            : rc == BKV_ERR_DECRYPT;
        }
        CU_ASSERT(ok);
        CU_ASSERT_EQUAL(bkv_hsm_unseal(h1, aad, sizeof(aad), blob, 20, out, sizeof(out), &out_len),
                        BKV_ERR_LENGTH);
    }
    /* Unknown version. */
    memcpy(bad, blob, blob_len);
    bad[0] = 2;
    CU_ASSERT_EQUAL(bkv_hsm_unseal(h1, aad, sizeof(aad), bad, blob_len, out, sizeof(out), &out_len),
                    BKV_ERR_UNSUPPORTED);
    printf("\n    %s", bkv_hsm_errmsg(h1));
}

static void test_other_realm(void)
{
    uint8_t pt[64] = "a record of realm B", blob[128], out[128];
    size_t blob_len, out_len;
    char want[17];

    CU_ASSERT_EQUAL_FATAL(
        bkv_hsm_seal(h2, aad, sizeof(aad), pt, sizeof(pt), blob, sizeof(blob), &blob_len), 0);
    CU_ASSERT_EQUAL(
        bkv_hsm_unseal(h1, aad, sizeof(aad), blob, blob_len, out, sizeof(out), &out_len),
        BKV_ERR_HSM_NO_KEY);
    printf("\n    %s", bkv_hsm_errmsg(h1));
    bkv_hex_encode(r2.seal_key_id, 8, want);
    CU_ASSERT_PTR_NOT_NULL(strstr(bkv_hsm_errmsg(h1), "\"node-1\": no seal key with id "));
    CU_ASSERT_PTR_NOT_NULL(strstr(bkv_hsm_errmsg(h1), want));
    /* Even with realm A's key id written over it, B's blob does not open. */
    memcpy(blob + 1, r1.seal_key_id, 8);
    CU_ASSERT_EQUAL(
        bkv_hsm_unseal(h1, aad, sizeof(aad), blob, blob_len, out, sizeof(out), &out_len),
        BKV_ERR_DECRYPT);
}

/*
 * Finding 5: CKR_GENERAL_ERROR after C_Decrypt blames the data only when the
 * token still answers; otherwise it is an HSM failure.
 */
static void test_general_error_probe(void)
{
    CK_SESSION_HANDLE s;
    int healthy, no_key, no_session;

    hsm_begin(h1, &s);
    healthy = hsm_fail_decrypt(h1, s, h1->seal_key, CKR_GENERAL_ERROR, "unseal with", "C_Decrypt",
                               "sealed blob does not authenticate");
    no_key = hsm_fail_decrypt(h1, s, (CK_OBJECT_HANDLE)0x7fffff, CKR_GENERAL_ERROR, "unseal with",
                              "C_Decrypt", "sealed blob does not authenticate");
    printf("\n    %s", bkv_hsm_errmsg(h1));
    CU_ASSERT_PTR_NOT_NULL(strstr(bkv_hsm_errmsg(h1), "the HSM is unhealthy, not the data"));
    no_session = hsm_fail_decrypt(h1, (CK_SESSION_HANDLE)0x7fffff, h1->seal_key, CKR_GENERAL_ERROR,
                                  "unseal with", "C_Decrypt", "x");
    hsm_end(h1, s);
    CU_ASSERT_EQUAL(healthy, BKV_ERR_DECRYPT);
    CU_ASSERT_EQUAL(no_key, BKV_ERR_HSM);
    CU_ASSERT_EQUAL(no_session, BKV_ERR_HSM);
    /* Other codes keep their mapping. */
    hsm_begin(h1, &s);
    CU_ASSERT_EQUAL(
        hsm_fail_decrypt(h1, s, h1->seal_key, CKR_ENCRYPTED_DATA_INVALID, "op", "c", "x"),
        BKV_ERR_DECRYPT);
    CU_ASSERT_EQUAL(hsm_fail_decrypt(h1, s, h1->seal_key, CKR_DEVICE_REMOVED, "op", "c", "x"),
                    BKV_ERR_HSM_TOKEN);
    hsm_end(h1, s);
}

static void test_mac(void)
{
    static const uint8_t a[] = "alice@example", b[] = "bob@example";
    uint8_t m1[32], m2[32], m3[32], m4[32];

    CU_ASSERT_EQUAL(bkv_hsm_account_mac(h1, a, sizeof(a), m1), 0);
    CU_ASSERT_EQUAL(bkv_hsm_account_mac(h1, a, sizeof(a), m2), 0);
    CU_ASSERT_EQUAL(memcmp(m1, m2, 32), 0); /* deterministic */
    CU_ASSERT_EQUAL(bkv_hsm_account_mac(h1, b, sizeof(b), m3), 0);
    CU_ASSERT(memcmp(m1, m3, 32) != 0); /* per account */
    CU_ASSERT_EQUAL(bkv_hsm_account_mac(h2, a, sizeof(a), m4), 0);
    CU_ASSERT(memcmp(m1, m4, 32) != 0); /* per realm */
    CU_ASSERT_EQUAL(bkv_hsm_account_mac(h1, NULL, 0, m2), 0);
    CU_ASSERT_EQUAL(bkv_hsm_account_mac(h1, a, BKV_HSM_MAC_MAX_ACCOUNT + 1, m2), BKV_ERR_LENGTH);
}

static long vm_locked_kb(void)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");

    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return kb;
}

static void test_secrets(void)
{
    static const uint8_t zero[sizeof(struct bkv_opaque_server_keys)];
    struct bkv_opaque_server_keys *k = NULL, *k2 = NULL;
    uint8_t pk[33], bad[256];
    long before = vm_locked_kb();

    CU_ASSERT_EQUAL_FATAL(bkv_hsm_opaque_load(h1, secrets1, secrets1_len, &k), 0);
#ifndef __SANITIZE_ADDRESS__
    /* AddressSanitizer turns mlock into a no-op; elsewhere the page is locked. */
    CU_ASSERT(vm_locked_kb() >= before + 4);
#endif
    CU_ASSERT(memcmp(k, zero, sizeof(*k)) != 0);
    CU_ASSERT_EQUAL(bkv_p256_scalar_check(k->sk), 0);
    CU_ASSERT_EQUAL(bkv_p256_mul_base(k->sk, pk), 0);
    CU_ASSERT_EQUAL(memcmp(pk, k->pk, 33), 0);
    CU_ASSERT_EQUAL(memcmp(k->pk, r1.opaque_pk, 33), 0);
    CU_ASSERT_EQUAL(bkv_hsm_opaque_load(h1, secrets1, secrets1_len, &k2), 0);
    CU_ASSERT_EQUAL(memcmp(k, k2, sizeof(*k)), 0);
    bkv_hsm_opaque_free(k2);
    /* Wipe zeroes the secrets in place; free unlocks and unmaps. */
    bkv_hsm_opaque_wipe(k);
    CU_ASSERT_EQUAL(memcmp(k, zero, sizeof(*k)), 0);
    bkv_hsm_opaque_free(k);
    CU_ASSERT_EQUAL(vm_locked_kb(), before);
    /* Another realm's secrets, an altered blob, a short one. */
    CU_ASSERT_EQUAL(bkv_hsm_opaque_load(h1, secrets2, secrets2_len, &k), BKV_ERR_HSM_NO_KEY);
    CU_ASSERT_PTR_NULL(k);
    memcpy(bad, secrets1, secrets1_len);
    bad[30] ^= 1;
    CU_ASSERT_EQUAL(bkv_hsm_opaque_load(h1, bad, secrets1_len, &k), BKV_ERR_DECRYPT);
    CU_ASSERT_EQUAL(bkv_hsm_opaque_load(h1, bad, 5, &k), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(vm_locked_kb(), before);
    /* The same plaintext sealed under another AAD (not the secrets' AAD) is refused. */
    {
        uint8_t pt[64] = {0}, blob[128];
        size_t len;
        CU_ASSERT_EQUAL(bkv_hsm_seal(h1, NULL, 0, pt, 64, blob, sizeof(blob), &len), 0);
        CU_ASSERT_EQUAL(bkv_hsm_opaque_load(h1, blob, len, &k), BKV_ERR_DECRYPT);
    }
}

static void test_not_enrolled(void)
{
    uint8_t buf[128] = {0}, mac[32], dh[32];
    size_t len;
    struct bkv_opaque_server_keys *k = NULL;

    CU_ASSERT_EQUAL(bkv_hsm_seal(h3, NULL, 0, buf, 10, buf + 20, 100, &len),
                    BKV_ERR_HSM_NOT_ENROLLED);
    CU_ASSERT_PTR_NOT_NULL(strstr(bkv_hsm_errmsg(h3), "\"node-3\": the token holds no realm"));
    CU_ASSERT_EQUAL(bkv_hsm_unseal(h3, NULL, 0, secrets1, secrets1_len, buf, sizeof(buf), &len),
                    BKV_ERR_HSM_NOT_ENROLLED);
    CU_ASSERT_EQUAL(bkv_hsm_account_mac(h3, buf, 4, mac), BKV_ERR_HSM_NOT_ENROLLED);
    CU_ASSERT_EQUAL(bkv_hsm_hpke_dh(h3, r1.hpke_pk, 65, dh), BKV_ERR_HSM_NOT_ENROLLED);
    CU_ASSERT_EQUAL(bkv_hsm_opaque_load(h3, secrets1, secrets1_len, &k), BKV_ERR_HSM_NOT_ENROLLED);
}

/* --- concurrency ------------------------------------------------------------- */

#define THREADS    4
#define ITERATIONS 150

struct worker {
    pthread_t tid;
    int index, errors, wrong, done;
    uint8_t expected_mac[32];
};

static const uint8_t shared_account[] = "account-shared";

static void *work(void *arg)
{
    struct worker *w = arg;

    for (int i = 0; i < ITERATIONS; i++) {
        uint8_t rec[200], blob[300], out[300], mac[32], ss[32], ss2[32], enc[65], dh[32];
        uint8_t my_aad[16] = {0};
        size_t blob_len, out_len, enc_len;

        RAND_bytes(rec, sizeof(rec));
        snprintf((char *)my_aad, sizeof(my_aad), "t%d-i%d", w->index, i);
        if (bkv_hsm_seal(h1, my_aad, sizeof(my_aad), rec, sizeof(rec), blob, sizeof(blob),
                         &blob_len) != 0 ||
            bkv_hsm_unseal(h1, my_aad, sizeof(my_aad), blob, blob_len, out, sizeof(out),
                           &out_len) != 0) {
            w->errors++;
            continue;
        }
        w->wrong += out_len != sizeof(rec) || memcmp(out, rec, sizeof(rec)) != 0;
        if (bkv_hsm_account_mac(h1, shared_account, sizeof(shared_account), mac) != 0) {
            w->errors++;
            continue;
        }
        w->wrong += memcmp(mac, w->expected_mac, 32) != 0;
        if (bkv_hpke_kem_encap(BKV_HPKE_KEM_P256_SHA256, r1.hpke_pk, 65, NULL, ss, enc, &enc_len) !=
                0 ||
            bkv_hsm_hpke_dh(h1, enc, enc_len, dh) != 0 ||
            bkv_hpke_kem_decap_dh(BKV_HPKE_KEM_P256_SHA256, enc, enc_len, r1.hpke_pk, 65, dh,
                                  ss2) != 0) {
            w->errors++;
            continue;
        }
        w->wrong += memcmp(ss, ss2, 32) != 0;
        w->done++;
    }
    return NULL;
}

static void test_threads(void)
{
    struct worker w[THREADS];
    uint8_t mac[32];
    int errors = 0, wrong = 0, done = 0;

    CU_ASSERT_EQUAL_FATAL(bkv_hsm_account_mac(h1, shared_account, sizeof(shared_account), mac), 0);
    for (int i = 0; i < THREADS; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].index = i;
        memcpy(w[i].expected_mac, mac, 32);
        CU_ASSERT_EQUAL_FATAL(pthread_create(&w[i].tid, NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(w[i].tid, NULL);
        errors += w[i].errors;
        wrong += w[i].wrong;
        done += w[i].done;
    }
    printf("\n    %d threads x %d rounds of seal+unseal+MAC+HPKE decap: %d done, %d errors, "
           "%d wrong results",
           THREADS, ITERATIONS, done, errors, wrong);
    if (errors)
        printf("\n    last error: %s", bkv_hsm_errmsg(h1));
    CU_ASSERT_EQUAL(errors, 0);
    CU_ASSERT_EQUAL(wrong, 0);
    CU_ASSERT_EQUAL(done, THREADS * ITERATIONS);
}

static CU_TestInfo tests[] = {
    {"seal/unseal round trips", test_round_trip},
    {"wrong AAD, flipped bits, truncation, version", test_tamper},
    {"another realm's blob -> BKV_ERR_HSM_NO_KEY", test_other_realm},
    {"CKR_GENERAL_ERROR: altered data or an unhealthy HSM", test_general_error_probe},
    {"account MACs", test_mac},
    {"OPAQUE secrets in locked memory", test_secrets},
    {"token without a realm -> BKV_ERR_HSM_NOT_ENROLLED", test_not_enrolled},
    {"threads seal, unseal, MAC and decapsulate at once", test_threads},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return bkv_test_main("hsm_seal", tests, suite_init, suite_cleanup);
}
