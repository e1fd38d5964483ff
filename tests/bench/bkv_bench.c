/*
 * bkv-bench: BKV's benchmarks. They print figures and a baseline measured in
 * the same run; they are never pass/fail timing tests.
 *
 *   bkv-bench crypto [--iterations N]
 *   bkv-bench hsm [--iterations N]
 *   bkv-bench raft [--seconds N]
 *   bkv-bench backup [--megabytes N]
 *
 * "crypto" measures, in one process: raw OpenSSL P-256 scalar multiplication
 * (the floor), the server's OPAQUE login (KE1 -> KE2, then KE3 check), the
 * server's and the client's registration, and opening one HPKE-sealed request
 * with a software key; each cost is also given as a multiple of the floor.
 * "hsm" (tests/bench/bench_hsm.c) measures sealing, account MACs and HPKE
 * decapsulation in a temporary SoftHSM2 token against the same operations in
 * software with OpenSSL. "raft" (tests/bench/bench_raft.c) measures
 * committed ATTEMPTs on a local 3-node cluster at 1, 16 and 256 proposals in
 * flight against bare libraft with entries of the same size. "backup"
 * (tests/bench/bench_backup.c) measures the backup stream's encrypt and
 * decrypt throughput, in memory and over file descriptors, against one direct
 * EVP AES-256-GCM pass over a buffer of the same size.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/bench/bench_util.h"

#include <openssl/ec.h>

#include "proto/err.h"
#include "proto/group.h"
#include "proto/hpke.h"
#include "proto/opaque.h"
#include "tests/bench/bench_backup.h"
#include "tests/bench/bench_hsm.h"
#include "tests/bench/bench_raft.h"
#include "tests/bench/bench_vault.h"

#define ROUNDS 5

static void die(const char *what, int rc)
{
    fprintf(stderr, "bkv-bench: %s: %s\n", what, bkv_strerror(rc));
    exit(1);
}

/* A benchmark body runs `n` operations. */
typedef void (*bench_fn)(void *arg, int n);

struct bench {
    const char *name;
    bench_fn fn;
    void *arg;
    double per_op[ROUNDS];
    double median;
};

/*
 * Run every benchmark once per round, round-robin, and keep each one's median
 * round. Interleaving means the floor and the protocol costs see the same
 * machine conditions, so their ratio is stable on a noisy virtual machine.
 */
static void measure_all(struct bench *b, int count, int n)
{
    for (int i = 0; i < count; i++)
        b[i].fn(b[i].arg, n > 10 ? 10 : n); /* warm caches and lazy initialisation */
    for (int r = 0; r < ROUNDS; r++)
        for (int i = 0; i < count; i++) {
            double t0 = bkv_bench_now_us();
            b[i].fn(b[i].arg, n);
            b[i].per_op[r] = (bkv_bench_now_us() - t0) / n;
        }
    for (int i = 0; i < count; i++) {
        b[i].median = bkv_bench_median(b[i].per_op, ROUNDS);
    }
}

/* --- the floor: one variable-base P-256 scalar multiplication in OpenSSL --- */

struct floor_arg {
    const EC_GROUP *g;
    EC_POINT *p, *r;
    BIGNUM *k;
    BN_CTX *bn;
};

static void bench_floor(void *arg, int n)
{
    struct floor_arg *a = arg;

    for (int i = 0; i < n; i++)
        if (EC_POINT_mul(a->g, a->r, NULL, a->p, a->k, a->bn) != 1)
            die("EC_POINT_mul", BKV_ERR_CRYPTO);
}

/* --- OPAQUE --- */

struct opaque_arg {
    struct bkv_opaque_config cfg;
    struct bkv_opaque_ids ids;
    struct bkv_opaque_server_keys keys;
    uint8_t record[BKV_OPAQUE_RECORD_LEN];
    uint8_t ke1[BKV_OPAQUE_KE1_LEN];
    uint8_t ke3[BKV_OPAQUE_KE3_LEN];
    uint8_t reg_request[BKV_OPAQUE_REG_REQUEST_LEN];
    struct bkv_opaque_login_server ls;
};

static const uint8_t account[] = "bench-account";
static const uint8_t password[] = "correct horse battery staple";

static void bench_login_server(void *arg, int n)
{
    struct opaque_arg *a = arg;
    uint8_t ke2[BKV_OPAQUE_KE2_LEN], session[BKV_OPAQUE_KEY_LEN];
    int rc;

    for (int i = 0; i < n; i++) {
        rc = bkv_opaque_login_respond(&a->cfg, &a->keys, a->record, sizeof(a->record), account,
                                      sizeof(account) - 1, &a->ids, a->ke1, sizeof(a->ke1), NULL,
                                      &a->ls, ke2, NULL);
        if (rc != BKV_OK)
            die("login_respond", rc);
        /* KE3 check: a mismatching KE3 costs the same constant-time compare. */
        rc = bkv_opaque_login_verify(&a->ls, a->ke3, sizeof(a->ke3), session);
        if (rc != BKV_OK && rc != BKV_ERR_MAC)
            die("login_verify", rc);
    }
}

static void bench_reg_server(void *arg, int n)
{
    struct opaque_arg *a = arg;
    uint8_t response[BKV_OPAQUE_REG_RESPONSE_LEN];

    for (int i = 0; i < n; i++) {
        int rc = bkv_opaque_reg_respond(&a->keys, account, sizeof(account) - 1, a->reg_request,
                                        sizeof(a->reg_request), response, NULL);
        if (rc != BKV_OK)
            die("reg_respond", rc);
    }
}

static void bench_reg_client(void *arg, int n)
{
    struct opaque_arg *a = arg;
    struct bkv_opaque_reg_client st;
    uint8_t request[BKV_OPAQUE_REG_REQUEST_LEN], response[BKV_OPAQUE_REG_RESPONSE_LEN];
    uint8_t record[BKV_OPAQUE_RECORD_LEN], export_key[BKV_OPAQUE_KEY_LEN];
    int rc;

    for (int i = 0; i < n; i++) {
        if ((rc = bkv_opaque_reg_start(password, sizeof(password) - 1, NULL, &st, request)) ||
            (rc = bkv_opaque_reg_respond(&a->keys, account, sizeof(account) - 1, request,
                                         sizeof(request), response, NULL)) ||
            (rc = bkv_opaque_reg_finish(&a->cfg, password, sizeof(password) - 1, &st, &a->ids, NULL,
                                        response, sizeof(response), record, export_key, NULL)))
            die("registration", rc);
    }
}

/* --- HPKE: open one sealed request with the realm key in software --- */

struct hpke_arg {
    struct bkv_hpke_suite suite;
    uint8_t sk[BKV_HPKE_SK_LEN];
    uint8_t enc[BKV_HPKE_MAX_ENC_LEN];
    size_t enc_len;
    uint8_t ct[512 + BKV_HPKE_TAG_LEN];
    size_t ct_len;
};

static void bench_hpke_open(void *arg, int n)
{
    struct hpke_arg *a = arg;
    struct bkv_hpke_ctx ctx;
    uint8_t pt[512];
    size_t pt_len;
    int rc;

    for (int i = 0; i < n; i++) {
        if ((rc = bkv_hpke_setup_base_r(a->suite, a->enc, a->enc_len, a->sk,
                                        (const uint8_t *)"bench", 5, &ctx)) ||
            (rc = bkv_hpke_open(&ctx, NULL, 0, a->ct, a->ct_len, pt, sizeof(pt), &pt_len)))
            die("hpke open", rc);
        bkv_hpke_ctx_wipe(&ctx);
    }
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bkv-bench crypto|hsm [--iterations N]\n"
            "       bkv-bench raft [--seconds N]\n"
            "       bkv-bench backup [--megabytes N]\n"
            "       bkv-bench vault --cluster DIR [--seconds N] [--levels 1,4,16]\n"
            "\n"
            "Print figures with a baseline measured in the same run; never fail on speed.\n"
            "\n"
            "crypto: BKV's protocol crypto against one OpenSSL P-256 scalar mult\n"
            "  floor          one OpenSSL P-256 variable-base scalar multiplication\n"
            "  login server   OPAQUE KE1 -> KE2 plus the KE3 check (the vault's cost)\n"
            "  reg server     OPAQUE registration response\n"
            "  reg client     OPAQUE registration, both sides, Identity KSF\n"
            "  hpke open      HPKE SetupBaseR + Open of a 300-byte request\n"
            "  Each figure is the median of %d interleaved rounds of N operations.\n"
            "\n"
            "hsm: the realm keys in a temporary SoftHSM2 token against OpenSSL in software\n"
            "  seal and unseal of a 200-byte record (AES-256-GCM), account HMAC-SHA256,\n"
            "  HPKE decapsulation (P-256 ECDH)\n"
            "\n"
            "vault: full registrations and recoveries through a running cluster's router\n"
            "  (scripts/cluster.sh up --dir DIR; give the router --rate/--burst high enough),\n"
            "  N seconds per level (default 5), with libbkv in 1, 4, 16 client threads; the\n"
            "  baseline is the crypto ceiling: 1 / (server CPU per login) x cores\n"
            "\n"
            "backup: the backup stream against one direct AES-256-GCM pass (EVP) over\n"
            "  N MiB (default 256, at most 1024): in memory, and over file descriptors\n"
            "  from a file in the page cache to /dev/null next to a plain copy\n"
            "\n"
            "N defaults to 400.\n",
            ROUNDS);
}

static void report(const char *name, double us, double floor_us)
{
    printf("%-34s %10.1f us/op %10.0f ops/s %8.2fx floor\n", name, us, 1e6 / us, us / floor_us);
}

/* OPAQUE set-up: one registered account, one KE1 and its KE3. */
static void opaque_setup(struct opaque_arg *o)
{
    struct bkv_opaque_login_client lc;
    uint8_t ke2[BKV_OPAQUE_KE2_LEN], session[32], export_key[32];
    int rc;

    o->cfg.context = (const uint8_t *)"BKV bench";
    o->cfg.context_len = 9;
    o->cfg.ksf = BKV_KSF_IDENTITY_PARAMS;
    o->ids.client = account;
    o->ids.client_len = sizeof(account) - 1;
    if ((rc = bkv_opaque_server_setup(&o->keys)))
        die("server setup", rc);
    {
        struct bkv_opaque_reg_client st;
        uint8_t response[BKV_OPAQUE_REG_RESPONSE_LEN];
        if ((rc =
                 bkv_opaque_reg_start(password, sizeof(password) - 1, NULL, &st, o->reg_request)) ||
            (rc = bkv_opaque_reg_respond(&o->keys, account, sizeof(account) - 1, o->reg_request,
                                         sizeof(o->reg_request), response, NULL)) ||
            (rc = bkv_opaque_reg_finish(&o->cfg, password, sizeof(password) - 1, &st, &o->ids, NULL,
                                        response, sizeof(response), o->record, export_key, NULL)))
            die("registration", rc);
    }
    if ((rc = bkv_opaque_login_start(password, sizeof(password) - 1, NULL, &lc, o->ke1)) ||
        (rc = bkv_opaque_login_respond(&o->cfg, &o->keys, o->record, sizeof(o->record), account,
                                       sizeof(account) - 1, &o->ids, o->ke1, sizeof(o->ke1), NULL,
                                       &o->ls, ke2, NULL)) ||
        (rc = bkv_opaque_login_finish(&o->cfg, &lc, password, sizeof(password) - 1, &o->ids, ke2,
                                      sizeof(ke2), o->ke3, session, export_key, NULL)))
        die("login", rc);
}

/* The server's CPU cost of one login (KE2 + KE3), in microseconds: the vault benchmark's ceiling.
 */
static double server_login_us(void)
{
    struct opaque_arg *o = calloc(1, sizeof(*o));
    struct bench b[] = {{"OPAQUE login, server", bench_login_server, o, {0}, 0}};
    if (o == NULL)
        die("calloc", BKV_ERR_NOMEM);
    opaque_setup(o);
    measure_all(b, 1, 200);
    free(o);
    return b[0].median;
}

static int run_crypto(int n)
{
    struct floor_arg f = {0};
    struct opaque_arg *o = calloc(1, sizeof(*o));
    struct hpke_arg h = {
        .suite = {BKV_HPKE_KEM_P256_SHA256, BKV_HPKE_KDF_HKDF_SHA256, BKV_HPKE_AEAD_AES_128_GCM}};
    struct bkv_hpke_ctx ctx;
    uint8_t k[32], pt[300] = {0};
    uint8_t pk[BKV_HPKE_MAX_PK_LEN], ikm[32] = {1};
    size_t pk_len;
    int rc;

    if (o == NULL)
        die("calloc", BKV_ERR_NOMEM);
    /* Floor set-up: a random point and a random constant-time scalar. */
    f.g = bkv_p256_group();
    f.p = EC_POINT_new(f.g);
    f.r = EC_POINT_new(f.g);
    f.bn = BN_CTX_new();
    if (bkv_p256_random_scalar(k) || bkv_p256_scalar_to_bn(k, &f.k) ||
        EC_POINT_mul(f.g, f.p, f.k, NULL, NULL, f.bn) != 1)
        die("floor set-up", BKV_ERR_CRYPTO);

    opaque_setup(o);

    /* HPKE set-up: a realm-like key pair and one sealed 300-byte request. */
    if ((rc = bkv_hpke_derive_key_pair(h.suite.kem, ikm, sizeof(ikm), h.sk, pk, &pk_len)) ||
        (rc = bkv_hpke_setup_base_s(h.suite, pk, pk_len, (const uint8_t *)"bench", 5, NULL, h.enc,
                                    &h.enc_len, &ctx)) ||
        (rc = bkv_hpke_seal(&ctx, NULL, 0, pt, sizeof(pt), h.ct, sizeof(h.ct), &h.ct_len)))
        die("hpke set-up", rc);
    bkv_hpke_ctx_wipe(&ctx);

    struct bench b[] = {
        {"floor: P-256 scalar mult (OpenSSL)", bench_floor, &f, {0}, 0},
        {"OPAQUE login, server (KE2 + KE3)", bench_login_server, o, {0}, 0},
        {"OPAQUE registration, server", bench_reg_server, o, {0}, 0},
        {"OPAQUE registration, both sides", bench_reg_client, o, {0}, 0},
        {"HPKE open, 300-byte request", bench_hpke_open, &h, {0}, 0},
    };
    int count = (int)(sizeof(b) / sizeof(b[0]));
    double floor_us, login_us;

    measure_all(b, count, n);
    floor_us = b[0].median;
    login_us = b[1].median;
    printf("bkv-bench crypto: %d operations x %d interleaved rounds, median round\n", n, ROUNDS);
    for (int i = 0; i < count; i++)
        report(b[i].name, b[i].median, floor_us);
    printf("target: server login < 7.00x floor (about 5 scalar mults); measured %.2fx: %s\n",
           login_us / floor_us, login_us / floor_us < 7.0 ? "within target" : "ABOVE target");

    BN_clear_free(f.k);
    EC_POINT_free(f.p);
    EC_POINT_free(f.r);
    BN_CTX_free(f.bn);
    bkv_opaque_login_server_wipe(&o->ls);
    free(o);
    return 0;
}

int main(int argc, char **argv)
{
    int n = 0;  /* 0: each benchmark's default */
    int mb = 0; /* backup: MiB, 0: the default */
    const char *cluster = NULL;
    int levels[8] = {1, 4, 16};
    size_t n_levels = 3;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (int i = 2; i < argc; i++) {
        if ((strcmp(argv[i], "--iterations") == 0 || strcmp(argv[i], "--seconds") == 0) &&
            i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end != '\0' || v < 1 || v > 1000000) {
                fprintf(stderr, "bkv-bench: %s takes a number from 1 to 1000000\n", argv[i - 1]);
                return 2;
            }
            n = (int)v;
        } else if (strcmp(argv[i], "--megabytes") == 0 && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end != '\0' || v < 1 || v > 1024) {
                fprintf(stderr, "bkv-bench: --megabytes takes a number from 1 to 1024\n");
                return 2;
            }
            mb = (int)v;
        } else if (strcmp(argv[i], "--cluster") == 0 && i + 1 < argc) {
            cluster = argv[++i];
        } else if (strcmp(argv[i], "--levels") == 0 && i + 1 < argc) {
            char *p = argv[++i], *end;
            for (n_levels = 0; n_levels < 8 && *p != '\0'; p = *end == ',' ? end + 1 : end) {
                long v = strtol(p, &end, 10);
                if (end == p || v < 1 || v > 32 || (*end != ',' && *end != '\0')) {
                    fprintf(stderr,
                            "bkv-bench: --levels takes numbers 1..32 separated by commas\n");
                    return 2;
                }
                levels[n_levels++] = (int)v;
            }
        } else if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "bkv-bench: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (strcmp(argv[1], "crypto") == 0)
        return run_crypto(n > 0 ? n : 400);
    if (strcmp(argv[1], "hsm") == 0)
        return bkv_bench_hsm(n > 0 ? n : 400) == 0 ? 0 : 1;
    if (strcmp(argv[1], "raft") == 0)
        return bkv_bench_raft(n > 0 ? n : 3) == 0 ? 0 : 1;
    if (strcmp(argv[1], "backup") == 0)
        return bkv_bench_backup(mb > 0 ? mb : 256) == 0 ? 0 : 1;
    if (strcmp(argv[1], "vault") == 0)
        return bkv_bench_vault(cluster, n > 0 ? n : 5, levels, n_levels, server_login_us()) == 0
                   ? 0
                   : 1;
    fprintf(stderr, "bkv-bench: unknown benchmark '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
