/*
 * TEST ONLY. Functions that exist so that unit tests can run the RFC 9180
 * vectors through the HSM path: they put a KNOWN private key into the token,
 * which defeats the point of an HSM. They live in the test fixture library
 * (tests/unit/hsm/), never in the production bkv_hsm library.
 */
#ifndef BKV_TEST_HSM_TESTONLY_H
#define BKV_TEST_HSM_TESTONLY_H

#include <stddef.h>
#include <stdint.h>

#include "proto/hpke.h"

struct bkv_hsm;

/*
 * TEST ONLY: C_CreateObject a P-256 private key with value sk (borrowed) as
 * a session object (derive only, sensitive) and return its handle in *key.
 * It disappears when the handle is closed, or by
 * bkv_hsm_testonly_destroy_key.
 */
int bkv_hsm_testonly_import_p256_key(struct bkv_hsm *h, const uint8_t sk[static 32],
                                     unsigned long *key);

/* TEST ONLY: dh = x(sk * enc) with an imported key, on the decapsulation path. */
int bkv_hsm_testonly_dh(struct bkv_hsm *h, unsigned long key, const uint8_t *enc, size_t enc_len,
                        uint8_t dh[static BKV_HPKE_DH_LEN]);

/* TEST ONLY: destroy an imported key. */
void bkv_hsm_testonly_destroy_key(struct bkv_hsm *h, unsigned long key);

#endif
