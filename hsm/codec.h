/*
 * Byte formats of hsm/: the public realm description and the enrolment blob.
 * Both are versioned and length-checked; the decoders are total (every
 * length is checked before a byte is read, every point is validated) and
 * reject trailing bytes. All functions are reentrant; any thread.
 *
 * Realm description, version 2 (228 bytes):
 *   "BKVR" || 0x02 || realm_id(16) || seal_key_id(8) || mac_key_id(8) ||
 *   hpke_key_id(8) || hpke_pk(65, 04||X||Y) || opaque_pk(33, compressed) ||
 *   mac_kcv(32) || seal_kcv(53, a sealed blob whose key id is seal_key_id)
 * (version 1, without the key check values, is no longer accepted).
 *
 * Enrolment blob, version 1:
 *   "BKVE" || 0x01 || realm_id(16) || ephemeral_pk(65) || transport_pk(65) ||
 *   hpke_pk(65) || key_count(1) = 3 ||
 *   3 x { kind(1) || key_id(8) || len(2) || wrapped(len) }   kinds 1, 2, 3 in order
 *   secrets_len(2) || sealed OPAQUE secrets(secrets_len) || check(32)
 * kinds: 1 seal key (AES-256), 2 MAC key, 3 HPKE private key; each wrapped
 * with CKM_AES_KEY_WRAP_PAD (RFC 5649). check = HMAC(realm MAC key,
 * "BKV-ENROL-CHECK-v1" || SHA-256(every byte before check)).
 */
#ifndef BKV_HSM_CODEC_H
#define BKV_HSM_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "realm.h"

#define BKV_HSM_REALM_VERSION 2
#define BKV_HSM_REALM_ENCODED_LEN                                                                  \
    (4 + 1 + 16 + 8 + 8 + 8 + 65 + 33 + BKV_HSM_KCV_MAC_LEN + BKV_HSM_KCV_SEAL_LEN)

#define BKV_HSM_ENROL_VERSION     1
#define BKV_HSM_ENROL_KEYS        3
#define BKV_HSM_WRAPPED_MAX       256  /* longest wrapped key accepted */
#define BKV_HSM_ENROL_SECRETS_MAX 1024 /* longest sealed-secrets field accepted */
#define BKV_HSM_ENROL_CHECK_LEN   32
#define BKV_HSM_ENROL_MAX_LEN                                                                      \
    (4 + 1 + 16 + 3 * 65 + 1 + BKV_HSM_ENROL_KEYS * (1 + 8 + 2 + BKV_HSM_WRAPPED_MAX) + 2 +        \
     BKV_HSM_ENROL_SECRETS_MAX + BKV_HSM_ENROL_CHECK_LEN)

/* One wrapped key; data points into the blob it was decoded from. */
struct bkv_hsm_wrapped {
    uint8_t kind; /* 1 seal, 2 MAC, 3 HPKE */
    uint8_t id[BKV_HSM_KEY_ID_LEN];
    size_t len;
    const uint8_t *data;
};

/* A decoded (or to-be-encoded) enrolment blob; pointers are borrowed. */
struct bkv_hsm_enrol_blob {
    uint8_t realm_id[BKV_HSM_REALM_ID_LEN];
    uint8_t ephemeral_pk[65];
    uint8_t transport_pk[65];
    uint8_t hpke_pk[65];
    struct bkv_hsm_wrapped keys[BKV_HSM_ENROL_KEYS];
    const uint8_t *secrets;
    size_t secrets_len;
    uint8_t check[BKV_HSM_ENROL_CHECK_LEN];
};

/* Encode r into out; never fails for a struct that decode produced. */
void bkv_hsm_realm_encode(const struct bkv_hsm_realm *r,
                          uint8_t out[static BKV_HSM_REALM_ENCODED_LEN]);

/*
 * Decode a realm description: BKV_ERR_LENGTH unless len is exactly
 * BKV_HSM_REALM_ENCODED_LEN, BKV_ERR_FORMAT for a wrong magic or a seal
 * check value that is not a version-1 sealed blob of the seal key id,
 * BKV_ERR_UNSUPPORTED for another version, BKV_ERR_POINT for an invalid
 * public key. r is written only on success.
 */
int bkv_hsm_realm_decode(const uint8_t *in, size_t len, struct bkv_hsm_realm *r);

/* The encoded size of b (0 if a field is out of range). */
size_t bkv_hsm_enrol_blob_len(const struct bkv_hsm_enrol_blob *b);

/*
 * Encode b into out (capacity cap) and set *out_len. The check value is the
 * last BKV_HSM_ENROL_CHECK_LEN bytes. BKV_ERR_LENGTH if cap is short or a
 * field is out of range, BKV_ERR_FORMAT for kinds not 1, 2, 3 in order.
 */
int bkv_hsm_enrol_blob_encode(const struct bkv_hsm_enrol_blob *b, uint8_t *out, size_t cap,
                              size_t *out_len);

/*
 * Decode an enrolment blob; b's pointers then point into in (borrowed; it
 * must outlive b). BKV_ERR_LENGTH when truncated, oversized or with trailing
 * bytes, BKV_ERR_FORMAT for a wrong magic, key count or kind order,
 * BKV_ERR_UNSUPPORTED for another version, BKV_ERR_POINT for an invalid
 * public key.
 */
int bkv_hsm_enrol_blob_decode(const uint8_t *in, size_t len, struct bkv_hsm_enrol_blob *b);

#endif
