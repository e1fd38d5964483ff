/*
 * HPKE decapsulation with the realm's P-256 private key inside the HSM.
 *
 * DHKEM(P-256)'s dh is the x-coordinate of skR * pkE, which is exactly what
 * CKM_ECDH1_DERIVE (kdf CKD_NULL) returns. The HSM computes it into a
 * short-lived session secret, we read it, destroy the object and hand dh to
 * proto/hpke.h's key schedule. Only dh, never skR, leaves the HSM.
 *
 * Threads: any number of threads at once on one handle.
 */
#ifndef BKV_HSM_DECAP_H
#define BKV_HSM_DECAP_H

#include <stddef.h>
#include <stdint.h>

#include "proto/hpke.h"

struct bkv_hsm;

/*
 * dh = x(skR * enc) with the realm's HPKE private key. enc (borrowed) is
 * validated first with bkv_hpke_enc_check (BKV_ERR_LENGTH / BKV_ERR_POINT).
 * BKV_ERR_HSM_NOT_ENROLLED without a realm. The caller wipes dh.
 */
int bkv_hsm_hpke_dh(struct bkv_hsm *h, const uint8_t *enc, size_t enc_len,
                    uint8_t dh[static BKV_HPKE_DH_LEN]);

/*
 * bkv_hsm_hpke_dh with the signature of bkv_ohttp_dh_fn (proto/ohttp.h):
 * pass it with arg = the struct bkv_hsm * to bkv_ohttp_request_decap_cb.
 */
int bkv_hsm_ohttp_dh(void *arg, const uint8_t *enc, size_t enc_len, uint8_t dh[BKV_HPKE_DH_LEN]);

/*
 * SetupBaseR(enc, skR in the HSM, info) for suite (kem must be P-256):
 * dh from the HSM, then proto's key schedule with the realm's public key.
 * ctx is written (and wiped on failure); the caller owns and wipes it.
 */
int bkv_hsm_hpke_setup_base_r(struct bkv_hsm *h, struct bkv_hpke_suite suite, const uint8_t *enc,
                              size_t enc_len, const uint8_t *info, size_t info_len,
                              struct bkv_hpke_ctx *ctx);

#endif
