/*
 * The backup-stream benchmark of bkv-bench: encrypt and decrypt throughput of
 * the backup stream, in memory (proto/stream) and over file descriptors
 * (bkv_backup_encrypt / decrypt), next to one direct EVP AES-256-GCM pass over
 * a buffer of the same size as the baseline. Figures, never a pass/fail test.
 */
#ifndef BKV_BENCH_BACKUP_H
#define BKV_BENCH_BACKUP_H

/*
 * Time each operation over `megabytes` MiB (median of 5 interleaved rounds)
 * and print one table to stdout. Uses one temporary file under $TMPDIR (or
 * /tmp), unlinked at once. Returns 0, or a BKV_ERR_* code after printing the
 * reason to stderr. Main thread only.
 */
int bkv_bench_backup(int megabytes);

#endif
