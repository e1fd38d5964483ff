/*
 * Enrolling a new node's HSM into the realm without any realm key ever
 * leaving an HSM in the clear.
 *
 *  1. New node: bkv_hsm_enrol_request makes a transport P-256 key pair on
 *     the handle and returns the public key and its fingerprint, which
 *     bkv-admin prints. The pair are SESSION objects: they exist only in the
 *     process that holds the handle, die when it closes the handle (or
 *     exits), and are never visible to another process, even one that logs
 *     in with the same user PIN. (SoftHSM2 2.6.1 has no CKA_DERIVE_TEMPLATE,
 *     so a derivable token object would let any user-PIN holder derive the
 *     enrolment unwrapping key as an extractable key.) The same handle must
 *     therefore make the request and accept the blob: bkv-admin's
 *     "enrol join" is one process that does both. The handle never hands the
 *     key's object handle out; inside the process only hsm/ can reach it.
 *  2. Operator, on an existing member: bkv_hsm_enrol_approve with the SO PIN
 *     and the fingerprint the new node's operator read out. A different
 *     fingerprint is refused before anything is derived. As SO the HSM makes
 *     an ephemeral key pair and derives, by ECDH with the transport key, a
 *     trusted AES-256 wrapping key (CKA_TRUSTED can only be set by the SO);
 *     back as user it wraps the seal, MAC and HPKE keys with
 *     CKM_AES_KEY_WRAP_PAD, destroys the wrapping key, and returns the
 *     enrolment blob (codec.h).
 *  3. New node, same handle: bkv_hsm_enrol_accept with the pinned realm
 *     description derives the same AES key from the transport private key,
 *     unwraps the keys as token objects with the realm's protective
 *     attributes, and verifies the whole pinned description before it writes
 *     the realm marker: realm id, key ids and HPKE public key equal the
 *     blob's, the keys pass the key check values (realm.h), an HPKE round
 *     trip works, the blob's MAC check value matches, and the sealed OPAQUE
 *     secrets unseal to the pinned OPAQUE public key. Any failure destroys
 *     what it unwrapped.
 *
 * Threads: every function here takes the handle exclusively (approval logs
 * the token's user out for the SO step; other threads' operations wait).
 */
#ifndef BKV_HSM_ENROL_H
#define BKV_HSM_ENROL_H

#include <stddef.h>
#include <stdint.h>

#include "realm.h"

#define BKV_HSM_FINGERPRINT_LEN  32
#define BKV_HSM_FINGERPRINT_TEXT 80 /* 16 groups of 4 hex digits, spaces, NUL */

struct bkv_hsm;

/* A transport key as the new node shows it. */
struct bkv_hsm_transport {
    uint8_t pk[BKV_HPKE_P256_PK_LEN];
    uint8_t fingerprint[BKV_HSM_FINGERPRINT_LEN];
    char text[BKV_HSM_FINGERPRINT_TEXT]; /* "1a2b 3c4d ..." */
};

/* fp = SHA-256(pk), the 65-byte uncompressed point. Any thread. */
void bkv_hsm_fingerprint(const uint8_t pk[static BKV_HPKE_P256_PK_LEN],
                         uint8_t fp[static BKV_HSM_FINGERPRINT_LEN]);

/* Lowercase hex in groups of 4 separated by spaces, NUL-terminated. */
void bkv_hsm_fingerprint_format(const uint8_t fp[static BKV_HSM_FINGERPRINT_LEN],
                                char out[static BKV_HSM_FINGERPRINT_TEXT]);

/*
 * Parse a fingerprint typed by an operator: 64 hex digits, with any spaces
 * or colons between them. BKV_ERR_FORMAT otherwise.
 */
int bkv_hsm_fingerprint_parse(const char *text, uint8_t fp[static BKV_HSM_FINGERPRINT_LEN]);

/*
 * New node: the handle's transport key, created (as session objects) on the
 * first call and returned again on later ones, so the fingerprint can be
 * shown twice. It lives until bkv_hsm_enrol_accept succeeds or h is closed.
 * BKV_ERR_INVALID if the token already holds a realm.
 */
int bkv_hsm_enrol_request(struct bkv_hsm *h, struct bkv_hsm_transport *out);

/*
 * Existing member: wrap the realm keys to transport_pk if its fingerprint is
 * expected_fp. so_pin_file is checked like every PIN file. secrets (the
 * realm's sealed OPAQUE secrets blob, borrowed) is checked and copied into
 * the blob. On success *blob (length *blob_len) is owned by the caller
 * (free()); it holds no key in the clear. BKV_ERR_HSM_NOT_APPROVED for a
 * fingerprint mismatch, BKV_ERR_POINT for an invalid transport key,
 * BKV_ERR_HSM_NOT_ENROLLED without a realm, BKV_ERR_HSM_PIN for a wrong SO
 * PIN, BKV_ERR_PERMISSION for a PIN file others may read. The trusted
 * wrapping key is destroyed on every path.
 */
int bkv_hsm_enrol_approve(struct bkv_hsm *h, const char *so_pin_file,
                          const uint8_t transport_pk[static BKV_HPKE_P256_PK_LEN],
                          const uint8_t expected_fp[static BKV_HSM_FINGERPRINT_LEN],
                          const uint8_t *secrets, size_t secrets_len, uint8_t **blob,
                          size_t *blob_len);

/*
 * New node: take in an enrolment blob (borrowed) for the pinned realm
 * (borrowed; the operator's realm.bin), with the transport key that
 * bkv_hsm_enrol_request made on this same handle. On success the token
 * holds the realm, *out is a copy of *pinned, the transport key is
 * destroyed, and *secrets (length *secrets_len, owned by the caller, free())
 * is the sealed OPAQUE secrets blob for this node's disk.
 * BKV_ERR_HSM_NOT_APPROVED when the blob was made for another transport key
 * or is for another realm than pinned (realm id, key ids, HPKE public key),
 * BKV_ERR_DECRYPT when a key does not unwrap, BKV_ERR_MAC when a
 * verification fails (key check values, HPKE round trip, the blob's check
 * value, the OPAQUE public key), BKV_ERR_LENGTH / BKV_ERR_FORMAT /
 * BKV_ERR_UNSUPPORTED / BKV_ERR_POINT for a malformed blob, BKV_ERR_INVALID
 * when the token already holds a realm or the handle has no transport key.
 * On failure the token is as before (still not enrolled) and the handle
 * keeps its transport key.
 */
int bkv_hsm_enrol_accept(struct bkv_hsm *h, const struct bkv_hsm_realm *pinned, const uint8_t *blob,
                         size_t blob_len, struct bkv_hsm_realm *out, uint8_t **secrets,
                         size_t *secrets_len);

#endif
