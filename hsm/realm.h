/*
 * The realm: the keys every HSM of a BKV cluster shares, created once on the
 * first node and copied to the others only by enrolment (enrol.h).
 *
 * In the token: the AES-256 seal key, the HMAC-SHA256 key for account ids
 * (32-byte generic secret) and the P-256 HPKE key pair, all token objects,
 * private, sensitive, extractable only under a trusted wrapping key
 * (CKA_WRAP_WITH_TRUSTED), not modifiable, not copyable, and limited by
 * CKA_ALLOWED_MECHANISMS to the one mechanism each is for; plus a realm
 * marker (a private data object, neither modifiable nor destroyable, whose
 * value is the realm description below). A token without the marker is
 * fresh ("not enrolled"); a marker with a missing key is an error naming
 * the key. The OPAQUE server secrets never live in the token: they are sealed
 * (seal.h) with AAD that binds the realm id and handed to the caller, who
 * stores the blob on disk (secrets.h loads it).
 *
 * Trust: whoever holds the user PIN (or the node's files) can add, destroy
 * or replace objects in the token, so the token's own marker proves nothing.
 * The realm description the operator pinned (realm.bin) is the reference:
 * bkv_hsm_realm_verify (and bkv_hsm_open with a pinned realm) checks that the
 * token's marker is that description byte for byte, and that the keys it
 * names pass the description's key check values, so a substituted seal or
 * MAC key, or a substituted HPKE key, is refused.
 *
 * Threads: bkv_hsm_realm_create and bkv_hsm_realm_verify take the handle
 * exclusively; the getter may run on any thread.
 */
#ifndef BKV_HSM_REALM_H
#define BKV_HSM_REALM_H

#include <stddef.h>
#include <stdint.h>

#include "proto/group.h"
#include "proto/hpke.h"

#define BKV_HSM_REALM_ID_LEN 16
#define BKV_HSM_KEY_ID_LEN   8
#define BKV_HSM_KCV_MAC_LEN  32 /* HMAC-SHA256 of a fixed label */
#define BKV_HSM_KCV_SEAL_LEN 53 /* a sealed blob (seal.h) of 16 fixed bytes */

struct bkv_hsm;

/*
 * The public description of a realm, which the operator may publish.
 * hpke_key_id[0] is the one-byte RFC 9458 key_id of the realm's key config.
 * The key check values are made at realm creation and reveal nothing about
 * the keys: mac_kcv = HMAC(MAC key, "BKV-REALM-KCV-MAC-v1"), and seal_kcv is
 * the seal (seal.h) of the 16 bytes "BKV-REALM-KCV-v1" with the AAD
 * "BKV-REALM-KCV-SEAL-v1" || realm_id. The HPKE key is checked against
 * hpke_pk itself.
 */
struct bkv_hsm_realm {
    uint8_t realm_id[BKV_HSM_REALM_ID_LEN];
    uint8_t seal_key_id[BKV_HSM_KEY_ID_LEN];
    uint8_t mac_key_id[BKV_HSM_KEY_ID_LEN];
    uint8_t hpke_key_id[BKV_HSM_KEY_ID_LEN];
    uint8_t hpke_pk[BKV_HPKE_P256_PK_LEN];   /* 04 || X || Y */
    uint8_t opaque_pk[BKV_P256_ELEMENT_LEN]; /* OPAQUE server public key, compressed */
    uint8_t mac_kcv[BKV_HSM_KCV_MAC_LEN];
    uint8_t seal_kcv[BKV_HSM_KCV_SEAL_LEN];
};

/*
 * Create a new realm in the fresh token of h: random realm and key ids, the
 * three keys, the OPAQUE server secrets, and last the marker. On success
 * *out describes the realm and *secrets (length *secrets_len, owned by the
 * caller, free() it) is the sealed OPAQUE secrets blob to be written to disk;
 * it holds nothing in the clear. BKV_ERR_INVALID if the token already holds
 * a realm; BKV_ERR_HSM for a PKCS#11 failure. On failure every object
 * created so far is destroyed and the token stays fresh.
 */
int bkv_hsm_realm_create(struct bkv_hsm *h, struct bkv_hsm_realm *out, uint8_t **secrets,
                         size_t *secrets_len);

/* Copy the realm description of h into *out; BKV_ERR_HSM_NOT_ENROLLED if none. */
int bkv_hsm_realm_get(struct bkv_hsm *h, struct bkv_hsm_realm *out);

/*
 * Check that the token of h holds exactly the pinned realm (borrowed; the
 * operator's realm.bin): the marker's description equals *pinned in every
 * byte, and the seal, MAC and HPKE keys it names pass pinned's key check
 * values (an unseal of seal_kcv, an HMAC equal to mac_kcv, an HPKE
 * decapsulation that matches a fresh software encapsulation to hpke_pk).
 * BKV_ERR_HSM_NOT_ENROLLED without a realm, BKV_ERR_INVALID when the token
 * holds another description (another realm, or a replaced marker),
 * BKV_ERR_MAC when a key fails its check value (a substituted key),
 * BKV_ERR_HSM for a PKCS#11 failure. The message says which.
 */
int bkv_hsm_realm_verify(struct bkv_hsm *h, const struct bkv_hsm_realm *pinned);

#endif
