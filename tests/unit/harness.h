/*
 * Shared CUnit plumbing for BKV's unit suites: one call runs a suite and turns
 * its result into the process exit code CTest reads, helpers load the RFC
 * vector files and decode their hex fields, and a reference P-256 ECDH on
 * OpenSSL's EVP_PKEY interface checks proto/ independently of its own code.
 */
#ifndef BKV_TEST_HARNESS_H
#define BKV_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include <CUnit/CUnit.h>
#include <jansson.h>

/* Run one suite; returns 0 when every test passed. Call from main(). */
int bkv_test_main(const char *suite, CU_TestInfo *tests, CU_InitializeFunc init,
                  CU_CleanupFunc cleanup);

/* Parse tests/vectors/<file>; aborts the process if it cannot. Caller owns it. */
json_t *bkv_test_vectors(const char *file);

/*
 * Decode the hex string obj[key] into out (capacity cap) and return its length.
 * A missing key or bad hex fails the current test and returns 0.
 */
size_t bkv_test_hex(const json_t *obj, const char *key, uint8_t *out, size_t cap);

/* Decode a hex string into a fresh buffer (caller frees); *len gets its size. */
uint8_t *bkv_test_hex_alloc(const char *hex, size_t *len);

/*
 * Print "VECTORS <what>: <passed>/<total> passed" so that the test log shows
 * each vector set checked, and assert that all passed and total == expected.
 */
void bkv_test_vectors_report(const char *what, int passed, int total, int expected);

/*
 * dh = x(sk * peer) by OpenSSL's own ECDH (EVP_PKEY_derive), independently of
 * proto/: the stand-in for an HSM and the reference for group.c. peer is an
 * uncompressed point. Returns 1 on success, 0 if OpenSSL refused (a bad sk or
 * peer). Borrowed arguments; any thread.
 */
int bkv_test_p256_ecdh_x(const uint8_t sk[32], const uint8_t peer[65], uint8_t dh[32]);

#endif
