/*
 * Sealing records with the realm's AES-256 key inside the HSM (AES-256-GCM,
 * CKM_AES_GCM), for everything BKV keeps that must not be readable outside
 * an HSM of the realm: OPAQUE records, wrapped backup keys, the OPAQUE server
 * secrets.
 *
 * Sealed blob, version 1:
 *   version(1) = 0x01 || seal key id(8) || iv(12) || ciphertext || tag(16)
 * The IV is 12 random bytes from the HSM's RNG. The GCM AAD is
 *   "BKV-HSM-SEAL" || version || seal key id || caller's AAD
 * so the header cannot be swapped and the caller's context (record type,
 * account, version) is bound. The key id names the key, ready for rotation:
 * unseal finds the key by id.
 *
 * Threads: any number of threads may seal and unseal at once on one handle.
 */
#ifndef BKV_HSM_SEAL_H
#define BKV_HSM_SEAL_H

#include <stddef.h>
#include <stdint.h>

#define BKV_HSM_SEAL_VERSION       1
#define BKV_HSM_SEAL_IV_LEN        12
#define BKV_HSM_SEAL_TAG_LEN       16
#define BKV_HSM_SEAL_HEADER_LEN    (1 + 8 + BKV_HSM_SEAL_IV_LEN)
#define BKV_HSM_SEAL_OVERHEAD      (BKV_HSM_SEAL_HEADER_LEN + BKV_HSM_SEAL_TAG_LEN)
#define BKV_HSM_SEAL_MAX_PLAINTEXT (1u << 20)
#define BKV_HSM_SEAL_MAX_AAD       (1u << 16)

struct bkv_hsm;

/* The sealed size of a pt_len-byte plaintext: pt_len + 37. */
size_t bkv_hsm_sealed_len(size_t pt_len);

/*
 * Seal pt under the realm's seal key with aad. All inputs are borrowed; out
 * (capacity cap, at least bkv_hsm_sealed_len(pt_len), else BKV_ERR_LENGTH)
 * receives the blob and *out_len its size. BKV_ERR_HSM_NOT_ENROLLED without
 * a realm; BKV_ERR_LENGTH above BKV_HSM_SEAL_MAX_PLAINTEXT or
 * BKV_HSM_SEAL_MAX_AAD. out must not overlap pt. Any thread.
 */
int bkv_hsm_seal(struct bkv_hsm *h, const uint8_t *aad, size_t aad_len, const uint8_t *pt,
                 size_t pt_len, uint8_t *out, size_t cap, size_t *out_len);

/*
 * Open a sealed blob in (borrowed) with aad into out (capacity cap, at least
 * in_len - 37) and set *out_len. BKV_ERR_DECRYPT for a wrong AAD or any
 * altered byte (out is wiped), BKV_ERR_HSM_NO_KEY when the token has no seal
 * key with the blob's key id (sealed by another realm), BKV_ERR_UNSUPPORTED
 * for an unknown version, BKV_ERR_LENGTH when truncated or cap is short,
 * BKV_ERR_HSM_NOT_ENROLLED without a realm. Any thread.
 */
int bkv_hsm_unseal(struct bkv_hsm *h, const uint8_t *aad, size_t aad_len, const uint8_t *in,
                   size_t in_len, uint8_t *out, size_t cap, size_t *out_len);

#endif
