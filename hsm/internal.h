/*
 * hsm/ internals shared by its modules (and by tests that need raw PKCS#11
 * access to attack the keys). Nothing outside hsm/ and tests/unit/hsm/ may
 * include this header.
 */
#ifndef BKV_HSM_INTERNAL_H
#define BKV_HSM_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <p11-kit/pkcs11.h>

#include "module.h"
#include "p11.h"
#include "realm.h"

/* Object labels of the realm and enrolment objects. */
#define HSM_LABEL_MARKER    "bkv-realm"
#define HSM_LABEL_SEAL      "bkv-realm-seal"
#define HSM_LABEL_MAC       "bkv-realm-mac"
#define HSM_LABEL_HPKE      "bkv-realm-hpke"
#define HSM_LABEL_TRANSPORT "bkv-transport"  /* session objects only (enrol.c) */
#define HSM_ID_WRAPKEY      "bkv-enrol-wrap" /* CKA_ID of every enrolment wrapping key */

/* The realm's key check values (realm.h): labels and the fixed plaintext. */
#define HSM_KCV_MAC_LABEL      "BKV-REALM-KCV-MAC-v1"
#define HSM_KCV_SEAL_AAD_LABEL "BKV-REALM-KCV-SEAL-v1"
#define HSM_KCV_SEAL_AAD_LEN   (sizeof(HSM_KCV_SEAL_AAD_LABEL) - 1 + BKV_HSM_REALM_ID_LEN)
#define HSM_KCV_SEAL_PLAINTEXT "BKV-REALM-KCV-v1"
#define HSM_KCV_SEAL_PT_LEN    16

/* The kinds of realm keys, as numbered in the enrolment blob. */
enum hsm_key_kind {
    HSM_KEY_SEAL = 1, /* AES-256 */
    HSM_KEY_MAC = 2,  /* 32-byte generic secret, CKM_SHA256_HMAC */
    HSM_KEY_HPKE = 3, /* P-256 private key, CKM_ECDH1_DERIVE */
};

struct bkv_hsm {
    struct bkv_hsm_module *mod;
    CK_FUNCTION_LIST *f;
    CK_SLOT_ID slot;
    char label[BKV_HSM_LABEL_MAX + 1];
    char *pin_file;
    int lock_fd;
    /* Shared by operations, exclusive for login changes and realm changes. */
    pthread_rwlock_t role;
    /* Guards the pool and errmsg. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t nsessions;
    CK_SESSION_HANDLE sessions[BKV_HSM_MAX_SESSIONS];
    unsigned char busy[BKV_HSM_MAX_SESSIONS];
    int logged_in;
    /* Realm state: written only under the exclusive role. */
    int has_realm;
    struct bkv_hsm_realm realm;
    CK_OBJECT_HANDLE marker, seal_key, mac_key, hpke_key;
    /*
     * The enrolment transport key pair of a new node (enrol.c): SESSION
     * objects made by bkv_hsm_enrol_request, so they exist only in this
     * process and die with the pool's sessions (bkv_hsm_close) or at
     * C_Logout. Never handed out; exclusive role.
     */
    int has_transport;
    CK_OBJECT_HANDLE transport_pub, transport_priv;
    uint8_t transport_pk[BKV_HPKE_P256_PK_LEN];
    char errmsg[BKV_HSM_ERRMSG_LEN];
};

/*
 * Record "hsm: <op> token "<label>": <detail>" as h's message and return
 * code. op is a verb phrase such as "open", "unseal with".
 */
int hsm_fail(struct bkv_hsm *h, int code, const char *op, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* hsm_fail for a PKCS#11 call: "<call>: CKR_..." with the code mapped. */
int hsm_fail_ckr(struct bkv_hsm *h, const char *op, const char *call, CK_RV rv);

/* Shared use: take the role shared and a session from the pool. */
void hsm_begin(struct bkv_hsm *h, CK_SESSION_HANDLE *s);
void hsm_end(struct bkv_hsm *h, CK_SESSION_HANDLE s);

/* Exclusive use: take the role exclusively (waits for running operations). */
void hsm_begin_exclusive(struct bkv_hsm *h, CK_SESSION_HANDLE *s);
void hsm_end_exclusive(struct bkv_hsm *h, CK_SESSION_HANDLE s);

/*
 * Find objects matching tmpl; *out gets the first, *count how many there are
 * (counting stops at 2, enough to spot duplicates).
 */
CK_RV hsm_find(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_ATTRIBUTE *tmpl, CK_ULONG n,
               CK_OBJECT_HANDLE *out, CK_ULONG *count);

/* Find one object by class, label and (optional) id. */
CK_RV hsm_find_labelled(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls,
                        const char *label, const uint8_t *id, size_t id_len, CK_OBJECT_HANDLE *out,
                        CK_ULONG *count);

/*
 * The lock file of label under cfg (p11.c): in the real path of
 * cfg->lock_dir, else of the directory of cfg->softhsm_conf, so that every
 * spelling of the same directory gives the same file. The directory must
 * exist, be ours and not be writable by group or others. BKV_ERR_INVALID
 * when neither is configured, BKV_ERR_IO when the directory cannot be
 * resolved, BKV_ERR_PERMISSION when others may write it, BKV_ERR_LENGTH if
 * too long; why (capacity why_cap) gets the reason.
 */
int hsm_lock_file(const struct bkv_hsm_config *cfg, const char *label, char *path, size_t cap,
                  char *why, size_t why_cap);

/* Read the user PIN file again and C_Login as user (exclusive role held). */
int hsm_login_user(struct bkv_hsm *h, CK_SESSION_HANDLE s, const char *op);

/*
 * Forget everything a C_Logout invalidates: the login, the realm's cached
 * object handles (has_realm = 0) and the private session objects (the
 * transport key). Call at every C_Logout (exclusive role held).
 */
void hsm_logged_out(struct bkv_hsm *h);

/*
 * The code for a CKR_GENERAL_ERROR (or another failure) of a C_Decrypt or
 * C_UnwrapKey with key: SoftHSM2 reports a bad GCM tag or RFC 5649 check as
 * CKR_GENERAL_ERROR, but so does a broken token. The session and the key are
 * probed (C_GetSessionInfo, C_GetAttributeValue(CKA_CLASS)); only if both
 * answer is the data blamed (BKV_ERR_DECRYPT, message "<what> (<call>:
 * CKR_...)"); otherwise BKV_ERR_HSM with a message saying the token is
 * unhealthy. Other codes map through ckr.c.
 */
int hsm_fail_decrypt(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, CK_RV rv,
                     const char *op, const char *call, const char *what);

/* C_GenerateRandom into out. */
CK_RV hsm_random(struct bkv_hsm *h, CK_SESSION_HANDLE s, uint8_t *out, size_t n);

/* Serialise token-object creation in this process (softhsm#573). */
void hsm_create_lock(struct bkv_hsm *h);
void hsm_create_unlock(struct bkv_hsm *h);

/*
 * Realm internals (realm.c).
 *
 * hsm_realm_find reads the token without changing h: *found = 0 without a
 * marker; else the decoded marker and the key objects it names, each found
 * by class, label and id, and each the only object of its class with that
 * label and the only one with that id (BKV_ERR_HSM_NO_KEY when missing,
 * BKV_ERR_HSM when duplicated, BKV_ERR_HSM for two markers).
 * hsm_realm_load does that and fills h's realm state (exclusive role or
 * before h is shared); with expected (borrowed) non-NULL the marker must be
 * that description and the keys must pass its check values, as after a
 * re-login. hsm_realm_check runs the three key check values of r on the
 * given key objects. hsm_realm_commit checks that the keys are found as
 * above, then writes the marker for realm (neither modifiable nor
 * destroyable: the commit point of realm creation and enrolment) and sets
 * h's state.
 */
struct hsm_realm_objects {
    CK_OBJECT_HANDLE marker, seal, mac, hpke;
};
int hsm_realm_find(struct bkv_hsm *h, CK_SESSION_HANDLE s, int *found, struct bkv_hsm_realm *r,
                   struct hsm_realm_objects *o, const char *op);
int hsm_realm_load(struct bkv_hsm *h, CK_SESSION_HANDLE s, const struct bkv_hsm_realm *expected,
                   const char *op);
int hsm_realm_check(struct bkv_hsm *h, CK_SESSION_HANDLE s, const struct bkv_hsm_realm *r,
                    CK_OBJECT_HANDLE seal, CK_OBJECT_HANDLE mac, CK_OBJECT_HANDLE hpke,
                    const char *op);
int hsm_realm_verify_locked(struct bkv_hsm *h, CK_SESSION_HANDLE s,
                            const struct bkv_hsm_realm *pinned, const char *op);
int hsm_realm_commit(struct bkv_hsm *h, CK_SESSION_HANDLE s, const struct bkv_hsm_realm *realm,
                     const struct hsm_realm_objects *keys, const char *op);

/* The seal check value's AAD: HSM_KCV_SEAL_AAD_LABEL || realm_id. */
void hsm_kcv_seal_aad(const uint8_t realm_id[static BKV_HSM_REALM_ID_LEN],
                      uint8_t aad[static HSM_KCV_SEAL_AAD_LEN]);

/*
 * The attribute template that every realm key of kind gets when it is
 * generated or unwrapped: token, private, sensitive, extractable only with a
 * trusted wrapping key, not copyable, label and id, the usage of its kind,
 * CKA_ALLOWED_MECHANISMS with the one mechanism of its kind (CKM_AES_GCM,
 * CKM_SHA256_HMAC, CKM_ECDH1_DERIVE), and, last, not modifiable: SoftHSM2
 * applies a template in order and refuses any attribute after
 * CKA_MODIFIABLE=false (CKR_ATTRIBUTE_READ_ONLY). The attributes point into
 * st and id (both must outlive the template). Returns the attribute count
 * (at most cap are written).
 */
enum hsm_tmpl_use {
    HSM_TMPL_GENERATE,      /* C_GenerateKey: with class and key type */
    HSM_TMPL_GENERATE_PAIR, /* C_GenerateKeyPair's private template: no class */
    HSM_TMPL_UNWRAP,        /* C_UnwrapKey: with class and key type */
};
struct hsm_tmpl_store {
    CK_OBJECT_CLASS cls;
    CK_KEY_TYPE type;
    CK_ULONG value_len;
    CK_MECHANISM_TYPE mech;
    CK_BBOOL yes, no;
};
CK_ULONG hsm_realm_key_template(enum hsm_key_kind kind, enum hsm_tmpl_use use, const uint8_t *id,
                                struct hsm_tmpl_store *st, CK_ATTRIBUTE *tmpl, CK_ULONG cap);

/* The DER OID of P-256 for CKA_EC_PARAMS. */
extern const uint8_t hsm_p256_oid[10];

/* Read an EC public key object's CKA_EC_POINT (DER 04 41 || point) as 65 bytes. */
CK_RV hsm_read_ec_point(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub,
                        uint8_t pk[static BKV_HPKE_P256_PK_LEN]);

/*
 * Seal and unseal with an explicit key object (seal.c): the realm's blob
 * format, usable for a key that is not (yet) the handle's realm key, as
 * enrolment needs.
 */
int hsm_seal_with(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
                  const uint8_t key_id[static BKV_HSM_KEY_ID_LEN], const uint8_t *aad,
                  size_t aad_len, const uint8_t *pt, size_t pt_len, uint8_t *out, size_t cap,
                  size_t *out_len, const char *op);
int hsm_unseal_with(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
                    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t in_len,
                    uint8_t *out, size_t cap, size_t *out_len, const char *op);

/*
 * The seal key named by a blob's key id: the realm's (cached) or another
 * one the token holds; BKV_ERR_HSM_NO_KEY with a message otherwise. The
 * realm must be loaded. Shared role held.
 */
int hsm_seal_key_by_id(struct bkv_hsm *h, CK_SESSION_HANDLE s, const uint8_t *id,
                       CK_OBJECT_HANDLE *key, const char *op);

/* HMAC-SHA256 in the HSM over label || data with key (mac.c). */
int hsm_mac_with(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, const char *label,
                 const uint8_t *data, size_t len, uint8_t out[static 32], const char *op);

/* dh = x(sk * enc) with the private key object key, enc validated (decap.c). */
int hsm_ecdh_x(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, const uint8_t *enc,
               size_t enc_len, uint8_t dh[static BKV_HPKE_DH_LEN], const char *op);

/*
 * Check that the private key object key belongs to pk (decap.c): a fresh
 * software DHKEM encapsulation to pk and the HSM's decapsulation with key
 * give the same shared secret. BKV_ERR_MAC (message naming what) if not.
 */
int hsm_hpke_check(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
                   const uint8_t pk[static BKV_HPKE_P256_PK_LEN], const char *what, const char *op);

/* The OPAQUE secrets' sealing AAD (secrets.c): label || realm_id. */
#define HSM_OPAQUE_AAD_LABEL     "BKV-OPAQUE-SERVER-SECRETS-v1"
#define HSM_OPAQUE_AAD_LEN       (sizeof(HSM_OPAQUE_AAD_LABEL) - 1 + BKV_HSM_REALM_ID_LEN)
#define HSM_OPAQUE_PLAINTEXT_LEN 64 /* oprf_seed(32) || ake_sk(32) */
void hsm_opaque_aad(const uint8_t realm_id[static BKV_HSM_REALM_ID_LEN],
                    uint8_t aad[static HSM_OPAQUE_AAD_LEN]);

/*
 * Generate the OPAQUE secrets with the HSM's RNG and seal them with the seal
 * key object into a fresh blob (caller frees); pk gets the AKE public key.
 */
int hsm_opaque_generate(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE seal_key,
                        const uint8_t seal_key_id[static BKV_HSM_KEY_ID_LEN],
                        const uint8_t realm_id[static BKV_HSM_REALM_ID_LEN], uint8_t **blob,
                        size_t *blob_len, uint8_t pk[static BKV_P256_ELEMENT_LEN], const char *op);

/*
 * Unseal a secrets blob with an explicit key object into keys (caller's
 * memory, e.g. a locked page) and complete the public key. scratch (at least
 * HSM_OPAQUE_SCRATCH_LEN bytes, in the same kind of memory) receives the
 * plaintext on its way and is wiped.
 */
#define HSM_OPAQUE_SCRATCH_LEN (HSM_OPAQUE_PLAINTEXT_LEN + 16)
struct bkv_opaque_server_keys;
int hsm_opaque_unseal(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE seal_key,
                      const uint8_t realm_id[static BKV_HSM_REALM_ID_LEN], const uint8_t *blob,
                      size_t blob_len, struct bkv_opaque_server_keys *keys, uint8_t *scratch,
                      const char *op);

/*
 * The enrolment blob's check value (enrol.c): HMAC(mac_key,
 * "BKV-ENROL-CHECK-v1" || SHA-256(body[0..body_len))) into out.
 */
int hsm_enrol_check(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE mac_key,
                    const uint8_t *body, size_t body_len, uint8_t out[static 32], const char *op);

/*
 * hsm_opaque_unseal into a fresh locked page (secrets.c); *out is released
 * with bkv_hsm_opaque_free.
 */
int hsm_opaque_load_with(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE seal_key,
                         const uint8_t realm_id[static BKV_HSM_REALM_ID_LEN], const uint8_t *blob,
                         size_t blob_len, struct bkv_opaque_server_keys **out, const char *op);

#endif
