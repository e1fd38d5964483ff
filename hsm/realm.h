/*
 * The realm: the keys every HSM of a BKV cluster shares, created once on the
 * first node and copied to the others only by enrolment (enrol.h).
 *
 * In the token: the AES-256 seal key, the HMAC-SHA256 key for account ids
 * (32-byte generic secret) and the P-256 HPKE key pair, all token objects,
 * private, sensitive and extractable only under a trusted wrapping key
 * (CKA_WRAP_WITH_TRUSTED), plus a realm marker (a private data object whose
 * value is the realm description below). A token without the marker is
 * fresh ("not enrolled"); a marker with a missing key is an error naming
 * the key. The OPAQUE server secrets never live in the token: they are sealed
 * (seal.h) with AAD that binds the realm id and handed to the caller, who
 * stores the blob on disk (secrets.h loads it).
 *
 * Threads: bkv_hsm_realm_create takes the handle exclusively; the getter may
 * run on any thread.
 */
#ifndef BKV_HSM_REALM_H
#define BKV_HSM_REALM_H

#include <stddef.h>
#include <stdint.h>

#include "proto/group.h"
#include "proto/hpke.h"

#define BKV_HSM_REALM_ID_LEN 16
#define BKV_HSM_KEY_ID_LEN   8

struct bkv_hsm;

/*
 * The public description of a realm, which the operator may publish.
 * hpke_key_id[0] is the one-byte RFC 9458 key_id of the realm's key config.
 */
struct bkv_hsm_realm {
    uint8_t realm_id[BKV_HSM_REALM_ID_LEN];
    uint8_t seal_key_id[BKV_HSM_KEY_ID_LEN];
    uint8_t mac_key_id[BKV_HSM_KEY_ID_LEN];
    uint8_t hpke_key_id[BKV_HSM_KEY_ID_LEN];
    uint8_t hpke_pk[BKV_HPKE_P256_PK_LEN];   /* 04 || X || Y */
    uint8_t opaque_pk[BKV_P256_ELEMENT_LEN]; /* OPAQUE server public key, compressed */
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

#endif
