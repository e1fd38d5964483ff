/*
 * bkv-bench vault (bench_vault.c): full registrations and recoveries through
 * a running cluster's router, at the given concurrency levels, with the
 * crypto ceiling (login_us: the server's CPU per login) as the baseline.
 */
#ifndef BKV_BENCH_VAULT_H
#define BKV_BENCH_VAULT_H

#include <stddef.h>

int bkv_bench_vault(const char *cluster_dir, int seconds, const int *levels, size_t n_levels,
                    double login_us);

#endif
