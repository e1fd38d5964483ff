/*
 * The HSM benchmark of bkv-bench: sealing, account MACs and HPKE
 * decapsulation in SoftHSM2 through hsm/, next to the same operations in
 * software with OpenSSL as the baseline. Figures, never a pass/fail test.
 */
#ifndef BKV_BENCH_HSM_H
#define BKV_BENCH_HSM_H

/*
 * Set up a temporary SoftHSM2 node directory, token and realm (under /tmp,
 * removed afterwards), time each operation over `iterations` operations per
 * round (median of 5 rounds) and print one table to stdout. Returns 0, or a
 * BKV_ERR_* code after printing the reason to stderr. SoftHSM2's
 * configuration is per process: call it in a process that has no other HSM
 * handle open. Main thread only.
 */
int bkv_bench_hsm(int iterations);

#endif
