/*
 * `bkv-bench vault --cluster DIR`: full registrations and recoveries through
 * a running cluster's router (scripts/cluster.sh up --dir DIR), with libbkv,
 * at several concurrency levels. Each client thread has its own account and
 * token (minted with DIR/router/router.key). It prints operations per second
 * and p50/p99 latency per level, and as the baseline measured in the same run
 * the crypto ceiling: the server's CPU cost of one OPAQUE login (KE2 + KE3)
 * on this machine, times its cores — what the cluster could not exceed even
 * if Raft, HTTP, the HSM and the client's KSF cost nothing.
 */
#include "tests/bench/bench_vault.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/bkv.h"
#include "node/token.h"
#include "proto/err.h"
#include "proto/util.h"
#include "tests/bench/bench_util.h"

#define MAX_THREADS 32
#define MAX_SAMPLES 100000

struct env {
    char router[128];
    char keyconfig[1024];
    uint8_t token_key[BKV_TOKEN_KEY_LEN];
    uint8_t *kc;
    size_t kc_len;
};

struct worker {
    pthread_t th;
    const struct env *env;
    int id, level, recover; /* recover 0: registrations, 1: recoveries */
    double seconds;
    double *lat; /* ms */
    size_t n, errors;
    char first_error[256];
};

static int read_env(const char *dir, struct env *e)
{
    char path[1200], line[1200];
    snprintf(path, sizeof(path), "%s/cluster.env", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "BKV_ROUTER=", 11) == 0)
            snprintf(e->router, sizeof(e->router), "%.127s", line + 11);
        else if (strncmp(line, "BKV_KEYCONFIG=", 14) == 0)
            snprintf(e->keyconfig, sizeof(e->keyconfig), "%.1023s", line + 14);
    }
    fclose(f);
    snprintf(path, sizeof(path), "%s/router/router.key", dir);
    struct bkv_router_keys keys;
    char err[256];
    if (e->router[0] == '\0' || e->keyconfig[0] == '\0' ||
        bkv_router_key_load(path, &keys, err, sizeof(err)) != BKV_OK)
        return -1;
    memcpy(e->token_key, keys.token_key, sizeof(e->token_key));
    bkv_router_keys_wipe(&keys);
    f = fopen(e->keyconfig, "rb");
    if (f == NULL)
        return -1;
    e->kc = malloc(4096);
    e->kc_len = e->kc != NULL ? fread(e->kc, 1, 4096, f) : 0;
    fclose(f);
    return e->kc_len > 0 ? 0 : -1;
}

static void *run_worker(void *arg)
{
    struct worker *w = arg;
    char account[64], token[512];
    uint8_t key[BKV_KEY_LEN], got[BKV_KEY_LEN];
    static const uint8_t pw[] = "bench password";
    struct bkv_result res;
    struct bkv_client *c = NULL;
    /* A fresh account per thread and level: the router limits requests per account. */
    snprintf(account, sizeof(account), "bench-%c%d-%d-%ld", w->recover ? 'r' : 'g', w->level, w->id,
             (long)getpid());
    if (bkv_token_issue(w->env->token_key, account, (uint64_t)time(NULL) + 3600, token,
                        sizeof(token)) != BKV_OK)
        return NULL;
    struct bkv_client_config cfg = {.router = w->env->router,
                                    .token = token,
                                    .account = account,
                                    .keyconfig = w->env->kc,
                                    .keyconfig_len = w->env->kc_len};
    char err[256];
    if (bkv_client_new(&cfg, &c, err, sizeof(err)) != BKV_OK) {
        snprintf(w->first_error, sizeof(w->first_error), "%s", err);
        return NULL;
    }
    bkv_key_generate(key);
    if (w->recover && bkv_register(c, pw, sizeof(pw) - 1, key, &res) != BKV_OK) {
        snprintf(w->first_error, sizeof(w->first_error), "%s", res.message);
        bkv_client_free(c);
        return NULL;
    }
    double end = bkv_bench_now_us() + w->seconds * 1e6;
    while (bkv_bench_now_us() < end && w->n < MAX_SAMPLES) {
        double t0 = bkv_bench_now_us();
        int rc = w->recover ? bkv_recover(c, pw, sizeof(pw) - 1, got, &res)
                            : bkv_register(c, pw, sizeof(pw) - 1, key, &res);
        if (rc == BKV_OK && (!w->recover || memcmp(got, key, sizeof(key)) == 0)) {
            w->lat[w->n++] = (bkv_bench_now_us() - t0) / 1e3;
        } else {
            if (w->errors++ == 0)
                snprintf(w->first_error, sizeof(w->first_error), "%s", res.message);
        }
    }
    bkv_wipe(key, sizeof(key));
    bkv_wipe(got, sizeof(got));
    bkv_client_free(c);
    return NULL;
}

static void level(const struct env *e, int recover, int threads, double seconds)
{
    struct worker w[MAX_THREADS];
    double *all = malloc(sizeof(double) * MAX_SAMPLES * (size_t)threads);
    size_t total = 0, errors = 0;
    if (all == NULL)
        return;
    memset(w, 0, sizeof(w));
    double t0 = bkv_bench_now_us();
    for (int i = 0; i < threads; i++) {
        w[i] = (struct worker){
            .env = e, .id = i, .level = threads, .recover = recover, .seconds = seconds};
        w[i].lat = malloc(sizeof(double) * MAX_SAMPLES);
        if (w[i].lat != NULL)
            pthread_create(&w[i].th, NULL, run_worker, &w[i]);
    }
    for (int i = 0; i < threads; i++)
        if (w[i].lat != NULL)
            pthread_join(w[i].th, NULL);
    double wall = (bkv_bench_now_us() - t0) / 1e6;
    const char *first_error = NULL;
    for (int i = 0; i < threads; i++) {
        if (w[i].lat == NULL)
            continue;
        memcpy(all + total, w[i].lat, sizeof(double) * w[i].n);
        total += w[i].n;
        errors += w[i].errors;
        if (first_error == NULL && w[i].first_error[0] != '\0')
            first_error = w[i].first_error;
        free(w[i].lat);
    }
    if (total > 0) {
        qsort(all, total, sizeof(double), bkv_bench_cmp_double);
        printf("  %-13s %3d clients  %8.1f ops/s  p50 %7.1f ms  p99 %7.1f ms  (%zu ops, %zu "
               "errors)\n",
               recover ? "recoveries" : "registrations", threads, (double)total / wall,
               all[total / 2], all[(size_t)((double)total * 0.99)], total, errors);
    } else {
        printf("  %-13s %3d clients  no operation completed%s%s\n",
               recover ? "recoveries" : "registrations", threads, first_error ? ": " : "",
               first_error ? first_error : "");
    }
    free(all);
}

int bkv_bench_vault(const char *dir, int seconds, const int *levels, size_t n_levels,
                    double login_us)
{
    struct env e;
    memset(&e, 0, sizeof(e));
    if (dir == NULL || read_env(dir, &e) != 0) {
        fprintf(stderr,
                "bkv-bench vault: cannot read %s/cluster.env and %s/router/router.key; "
                "start a cluster with scripts/cluster.sh up --dir DIR first\n",
                dir ? dir : "(no --cluster)", dir ? dir : "DIR");
        free(e.kc);
        return -1;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    printf("bkv-bench vault: through the router at %s, %d s per level\n", e.router, seconds);
    printf("baseline, measured now: the server's OPAQUE login costs %.1f us of CPU; the crypto "
           "ceiling of this %ld-core machine is %.0f logins/s\n",
           login_us, cores, login_us > 0 ? 1e6 / login_us * (double)cores : 0.0);
    for (size_t i = 0; i < n_levels; i++)
        level(&e, 0, levels[i], seconds);
    for (size_t i = 0; i < n_levels; i++)
        level(&e, 1, levels[i], seconds);
    printf("(every operation is a full protocol run: two envelopes, two Raft commits for a "
           "recovery, the client's Argon2id with the key config's parameters, HSM calls)\n");
    bkv_wipe(e.token_key, sizeof(e.token_key));
    free(e.kc);
    return 0;
}
