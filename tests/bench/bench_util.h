/*
 * Timing helpers shared by BKV's benchmarks: a monotonic clock in
 * microseconds and the median of a small sample.
 */
#ifndef BKV_BENCH_UTIL_H
#define BKV_BENCH_UTIL_H

#include <stdlib.h>
#include <time.h>

static inline double bkv_bench_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static inline int bkv_bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..n-1]; sorts v in place. */
static inline double bkv_bench_median(double *v, size_t n)
{
    qsort(v, n, sizeof(v[0]), bkv_bench_cmp_double);
    return v[n / 2];
}

#endif
