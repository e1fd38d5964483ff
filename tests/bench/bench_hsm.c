/*
 * bkv-bench hsm: what the HSM costs.
 *
 * Normal path: make a temporary node directory with its own SoftHSM2
 * configuration, PIN files, a token "bench" and a realm; then measure, each
 * as the median of 5 rounds of n operations: seal and unseal of a 200-byte
 * record (AES-256-GCM in the HSM), an account MAC (HMAC-SHA256 in the HSM),
 * the HPKE decapsulation DH in the HSM (CKM_ECDH1_DERIVE) and the whole
 * receiver setup (DH + HPKE key schedule); and the software baseline with
 * OpenSSL in the same process: AES-256-GCM through EVP, HMAC-SHA256, and a
 * P-256 ECDH with EVP_PKEY_derive. Failure modes: any set-up or operation
 * failure prints the hsm/ message and returns its code; the temporary
 * directory is removed on every path.
 */
#define _XOPEN_SOURCE 700
#include "bench_hsm.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "tests/bench/bench_util.h"
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "hsm/decap.h"
#include "hsm/mac.h"
#include "hsm/p11.h"
#include "hsm/realm.h"
#include "hsm/seal.h"
#include "hsm/token.h"
#include "proto/err.h"
#include "proto/hpke.h"

#define ROUNDS     5
#define RECORD_LEN 200

/* Everything a benchmark body needs; fail records the first error. */
struct bench {
    struct bkv_hsm *h;
    struct bkv_hsm_realm realm;
    uint8_t record[RECORD_LEN], sealed[RECORD_LEN + BKV_HSM_SEAL_OVERHEAD];
    size_t sealed_len;
    uint8_t enc[65];
    uint8_t key[32], iv[12];
    EVP_CIPHER *aes;
    EVP_PKEY *mine, *peer;
    int fail;
};

typedef void (*body_fn)(struct bench *b, int n);

/* Median microseconds per operation of fn over ROUNDS rounds of n. */
static double measure(body_fn fn, struct bench *b, int n)
{
    double per_op[ROUNDS];

    fn(b, n > 10 ? 10 : n);
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = bkv_bench_now_us();
        fn(b, n);
        per_op[r] = (bkv_bench_now_us() - t0) / n;
    }
    return bkv_bench_median(per_op, ROUNDS);
}

static void check(struct bench *b, int rc)
{
    if (rc != 0 && b->fail == 0) {
        fprintf(stderr, "bkv-bench hsm: %s\n", bkv_hsm_errmsg(b->h));
        b->fail = rc;
    }
}

/* --- in the HSM ---------------------------------------------------------------- */

static void hsm_seal(struct bench *b, int n)
{
    uint8_t out[sizeof(b->sealed)];
    size_t len;

    for (int i = 0; i < n; i++)
        check(b, bkv_hsm_seal(b->h, (const uint8_t *)"aad", 3, b->record, RECORD_LEN, out,
                              sizeof(out), &len));
}

static void hsm_unseal(struct bench *b, int n)
{
    uint8_t out[RECORD_LEN];
    size_t len;

    for (int i = 0; i < n; i++)
        check(b, bkv_hsm_unseal(b->h, (const uint8_t *)"aad", 3, b->sealed, b->sealed_len, out,
                                sizeof(out), &len));
}

static void hsm_mac(struct bench *b, int n)
{
    uint8_t mac[32];

    for (int i = 0; i < n; i++)
        check(b, bkv_hsm_account_mac(b->h, b->record, 32, mac));
}

static void hsm_dh(struct bench *b, int n)
{
    uint8_t dh[32];

    for (int i = 0; i < n; i++)
        check(b, bkv_hsm_hpke_dh(b->h, b->enc, sizeof(b->enc), dh));
}

static void hsm_setup_r(struct bench *b, int n)
{
    static const struct bkv_hpke_suite suite = {BKV_HPKE_KEM_P256_SHA256, BKV_HPKE_KDF_HKDF_SHA256,
                                                BKV_HPKE_AEAD_AES_128_GCM};
    struct bkv_hpke_ctx ctx;

    for (int i = 0; i < n; i++)
        check(b, bkv_hsm_hpke_setup_base_r(b->h, suite, b->enc, sizeof(b->enc), NULL, 0, &ctx));
    bkv_hpke_ctx_wipe(&ctx);
}

/* --- in software (OpenSSL) ----------------------------------------------------- */

static void sw_seal(struct bench *b, int n)
{
    uint8_t out[RECORD_LEN + 16];
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len;

    for (int i = 0; i < n && ctx != NULL; i++) {
        RAND_bytes(b->iv, sizeof(b->iv));
        if (EVP_EncryptInit_ex2(ctx, b->aes, b->key, b->iv, NULL) != 1 ||
            EVP_EncryptUpdate(ctx, NULL, &len, (const uint8_t *)"aad", 3) != 1 ||
            EVP_EncryptUpdate(ctx, out, &len, b->record, RECORD_LEN) != 1 ||
            EVP_EncryptFinal_ex(ctx, out + len, &len) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, out + RECORD_LEN) != 1)
            b->fail = BKV_ERR_CRYPTO;
    }
    EVP_CIPHER_CTX_free(ctx);
}

static void sw_unseal(struct bench *b, int n)
{
    uint8_t ct[RECORD_LEN + 16], out[RECORD_LEN];
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len;

    /* One sealed record to open n times. */
    if (ctx == NULL || EVP_EncryptInit_ex2(ctx, b->aes, b->key, b->iv, NULL) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &len, (const uint8_t *)"aad", 3) != 1 ||
        EVP_EncryptUpdate(ctx, ct, &len, b->record, RECORD_LEN) != 1 ||
        EVP_EncryptFinal_ex(ctx, ct + len, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, ct + RECORD_LEN) != 1)
        b->fail = BKV_ERR_CRYPTO;
    for (int i = 0; i < n && ctx != NULL; i++)
        if (EVP_DecryptInit_ex2(ctx, b->aes, b->key, b->iv, NULL) != 1 ||
            EVP_DecryptUpdate(ctx, NULL, &len, (const uint8_t *)"aad", 3) != 1 ||
            EVP_DecryptUpdate(ctx, out, &len, ct, RECORD_LEN) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, ct + RECORD_LEN) != 1 ||
            EVP_DecryptFinal_ex(ctx, out + len, &len) != 1)
            b->fail = BKV_ERR_CRYPTO;
    EVP_CIPHER_CTX_free(ctx);
}

static void sw_mac(struct bench *b, int n)
{
    uint8_t mac[32];
    unsigned len;

    for (int i = 0; i < n; i++)
        if (HMAC(EVP_sha256(), b->key, 32, b->record, 32, mac, &len) == NULL)
            b->fail = BKV_ERR_CRYPTO;
}

static void sw_dh(struct bench *b, int n)
{
    uint8_t dh[32];

    for (int i = 0; i < n; i++) {
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, b->mine, NULL);
        size_t len = sizeof(dh);
        if (ctx == NULL || EVP_PKEY_derive_init(ctx) != 1 ||
            EVP_PKEY_derive_set_peer(ctx, b->peer) != 1 || EVP_PKEY_derive(ctx, dh, &len) != 1)
            b->fail = BKV_ERR_CRYPTO;
        EVP_PKEY_CTX_free(ctx);
    }
}

/* --- set-up ---------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int write_pin(const char *path, const char *pin)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    ssize_t n;

    if (fd < 0)
        return -1;
    n = write(fd, pin, strlen(pin));
    close(fd);
    return n == (ssize_t)strlen(pin) ? 0 : -1;
}

static int setup(struct bench *b, char *dir)
{
    char node[300], conf[400], so[300], user[300], err[BKV_HSM_ERRMSG_LEN];
    struct bkv_hsm_config cfg;
    uint8_t *secrets = NULL, ss[32];
    size_t secrets_len, enc_len;
    int rc;

    snprintf(node, sizeof(node), "%s/node", dir);
    snprintf(so, sizeof(so), "%s/so.pin", dir);
    snprintf(user, sizeof(user), "%s/user.pin", dir);
    if ((rc = bkv_hsm_node_dir_create(node, conf, sizeof(conf), err, sizeof(err))) != 0)
        goto fail;
    if (write_pin(so, "bench-so-pin") != 0 || write_pin(user, "bench-user-pin") != 0) {
        snprintf(err, sizeof(err), "cannot write PIN files in %s", dir);
        rc = BKV_ERR_IO;
        goto fail;
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.token_label = "bench";
    cfg.pin_file = user;
    cfg.softhsm_conf = conf;
    if ((rc = bkv_hsm_token_init(&cfg, so, err, sizeof(err))) != 0 ||
        (rc = bkv_hsm_open(&cfg, &b->h, err, sizeof(err))) != 0)
        goto fail;
    rc = bkv_hsm_realm_create(b->h, &b->realm, &secrets, &secrets_len);
    free(secrets);
    if (rc != 0) {
        snprintf(err, sizeof(err), "%s", bkv_hsm_errmsg(b->h));
        goto fail;
    }
    RAND_bytes(b->record, sizeof(b->record));
    RAND_bytes(b->key, sizeof(b->key));
    RAND_bytes(b->iv, sizeof(b->iv));
    rc = bkv_hsm_seal(b->h, (const uint8_t *)"aad", 3, b->record, RECORD_LEN, b->sealed,
                      sizeof(b->sealed), &b->sealed_len);
    if (rc == 0)
        rc = bkv_hpke_kem_encap(BKV_HPKE_KEM_P256_SHA256, b->realm.hpke_pk, 65, NULL, ss, b->enc,
                                &enc_len);
    b->aes = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    b->mine = EVP_EC_gen("P-256");
    b->peer = EVP_EC_gen("P-256");
    if (rc == 0 && (b->aes == NULL || b->mine == NULL || b->peer == NULL))
        rc = BKV_ERR_CRYPTO;
    if (rc != 0) {
        snprintf(err, sizeof(err), "set-up of the operations failed");
        goto fail;
    }
    return 0;
fail:
    fprintf(stderr, "bkv-bench hsm: %s\n", err);
    return rc;
}

static void row(const char *name, double us, double base_us)
{
    if (base_us > 0)
        printf("%-40s %9.1f us/op %9.0f ops/s %8.1fx software\n", name, us, 1e6 / us, us / base_us);
    else
        printf("%-40s %9.1f us/op %9.0f ops/s\n", name, us, 1e6 / us);
}

int bkv_bench_hsm(int iterations)
{
    char dir[] = "/tmp/bkv-bench-hsm-XXXXXX";
    struct bench b;
    double seal, unseal, mac, dh, setup_r, s_seal, s_unseal, s_mac, s_dh;
    int n = iterations > 0 ? iterations : 1, rc;

    memset(&b, 0, sizeof(b));
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "bkv-bench hsm: cannot create a temporary directory\n");
        return BKV_ERR_IO;
    }
    rc = setup(&b, dir);
    if (rc != 0)
        goto out;
    seal = measure(hsm_seal, &b, n);
    unseal = measure(hsm_unseal, &b, n);
    mac = measure(hsm_mac, &b, n);
    dh = measure(hsm_dh, &b, n);
    setup_r = measure(hsm_setup_r, &b, n);
    s_seal = measure(sw_seal, &b, n);
    s_unseal = measure(sw_unseal, &b, n);
    s_mac = measure(sw_mac, &b, n);
    s_dh = measure(sw_dh, &b, n);
    if (b.fail != 0) {
        rc = b.fail;
        fprintf(stderr, "bkv-bench hsm: an operation failed: %s\n", bkv_strerror(rc));
        goto out;
    }
    printf("bkv-bench hsm: SoftHSM2 through PKCS#11 vs OpenSSL in process; %d operations x %d "
           "rounds, median round, one thread\n",
           n, ROUNDS);
    row("HSM seal, 200-byte record (AES-256-GCM)", seal, s_seal);
    row("HSM unseal, 200-byte record", unseal, s_unseal);
    row("HSM account MAC (HMAC-SHA256)", mac, s_mac);
    row("HSM HPKE decap DH (CKM_ECDH1_DERIVE)", dh, s_dh);
    row("HSM HPKE SetupBaseR (DH + key schedule)", setup_r, s_dh);
    row("software AES-256-GCM seal, 200 bytes", s_seal, 0);
    row("software AES-256-GCM open, 200 bytes", s_unseal, 0);
    row("software HMAC-SHA256", s_mac, 0);
    row("software P-256 ECDH (EVP_PKEY_derive)", s_dh, 0);
out:
    EVP_PKEY_free(b.mine);
    EVP_PKEY_free(b.peer);
    EVP_CIPHER_free(b.aes);
    bkv_hsm_close(b.h);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
