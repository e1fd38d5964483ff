/*
 * Enrolment, the existing member's side: approve a transport key and wrap
 * the realm keys to it.
 *
 * Normal path: validate the transport key and compare its SHA-256
 * fingerprint with the approved one (constant time) before touching the
 * HSM; read the SO PIN file; take the handle exclusively; check that the
 * OPAQUE secrets blob unseals under this realm. Then the SO ceremony: log
 * the user out, log the SO in, generate an ephemeral P-256 pair as public
 * session objects, C_DeriveKey(CKM_ECDH1_DERIVE) with the transport key into
 * an AES-256 key with CKA_TRUSTED and CKA_WRAP, read the ephemeral public
 * key, destroy the ephemeral pair, log the SO out and the user in again.
 * The wrapping key is a public SESSION object: the SO cannot create private
 * objects, and SoftHSM2 stores public token objects unencrypted in the token
 * directory, so a token key would sit on disk in the clear during the
 * ceremony. PKCS#11 destroys only private session objects at logout, so the
 * public session key survives into the user's login. At every C_Logout
 * the handle forgets its cached realm (hsm_logged_out): object handles may
 * be invalid afterwards, and another process could change the token while
 * no user is logged in. Only after a successful user login is the realm
 * found again, and it must then be the same description as before and pass
 * its key check values (hsm_realm_load with the old realm as expected);
 * otherwise the approval fails. C_WrapKey(CKM_AES_KEY_WRAP_PAD) wraps the
 * seal, MAC and HPKE keys; the blob is encoded and its check value computed with the realm
 * MAC key.
 * Failure modes: see enrol.h. The wrapping key is destroyed on every path
 * (as user, or as SO if the module refuses the user); a crash destroys it
 * with the session, and open also sweeps any key carrying its CKA_ID.
 * The SO PIN is wiped on every path.
 */
#include "enrol.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "internal.h"
#include "pinfile.h"
#include "proto/err.h"
#include "proto/util.h"
#include "secrets.h"

#define OP "approve enrolment on"

struct approval {
    uint8_t so_pin[BKV_HSM_PIN_MAX];
    size_t so_len;
    char wrap_label[48];
    CK_OBJECT_HANDLE wrap_key;
    uint8_t ephemeral_pk[BKV_HPKE_P256_PK_LEN];
};

/* As SO: ephemeral pair, the trusted wrapping key, the ephemeral public key. */
static int derive_as_so(struct bkv_hsm *h, CK_SESSION_HANDLE s, struct approval *a,
                        const uint8_t *transport_pk)
{
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE aes = CKK_AES;
    CK_ULONG len = 32;
    CK_ATTRIBUTE pub_t[] = {
        {CKA_EC_PARAMS, (void *)hsm_p256_oid, sizeof(hsm_p256_oid)},
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_PRIVATE, &no, sizeof(no)},
    };
    CK_ATTRIBUTE priv_t[] = {
        {CKA_TOKEN, &no, sizeof(no)},       {CKA_PRIVATE, &no, sizeof(no)},
        {CKA_SENSITIVE, &yes, sizeof(yes)}, {CKA_EXTRACTABLE, &no, sizeof(no)},
        {CKA_DERIVE, &yes, sizeof(yes)},
    };
    CK_ATTRIBUTE wrap_t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &aes, sizeof(aes)},
        {CKA_VALUE_LEN, &len, sizeof(len)},
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_PRIVATE, &no, sizeof(no)},
        {CKA_TRUSTED, &yes, sizeof(yes)},
        {CKA_WRAP, &yes, sizeof(yes)},
        {CKA_UNWRAP, &no, sizeof(no)},
        {CKA_ENCRYPT, &no, sizeof(no)},
        {CKA_DECRYPT, &no, sizeof(no)},
        {CKA_SENSITIVE, &yes, sizeof(yes)},
        {CKA_EXTRACTABLE, &no, sizeof(no)},
        {CKA_LABEL, a->wrap_label, strlen(a->wrap_label)},
        {CKA_ID, HSM_ID_WRAPKEY, sizeof(HSM_ID_WRAPKEY) - 1},
    };
    CK_MECHANISM gen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_ECDH1_DERIVE_PARAMS params;
    CK_MECHANISM ecdh = {CKM_ECDH1_DERIVE, &params, sizeof(params)};
    CK_OBJECT_HANDLE eph_pub = CK_INVALID_HANDLE, eph_priv = CK_INVALID_HANDLE;
    CK_OBJECT_HANDLE wk = CK_INVALID_HANDLE;
    CK_RV rv;
    int rc = BKV_OK;

    rv = h->f->C_GenerateKeyPair(s, &gen, pub_t, 3, priv_t, 5, &eph_pub, &eph_priv);
    if (rv != CKR_OK)
        return hsm_fail_ckr(h, OP, "C_GenerateKeyPair(ephemeral, as SO)", rv);
    memset(&params, 0, sizeof(params));
    params.kdf = CKD_NULL;
    params.pPublicData = (CK_BYTE *)transport_pk;
    params.ulPublicDataLen = BKV_HPKE_P256_PK_LEN;
    hsm_create_lock(h);
    rv = h->f->C_DeriveKey(s, &ecdh, eph_priv, wrap_t, sizeof(wrap_t) / sizeof(wrap_t[0]), &wk);
    hsm_create_unlock(h);
    if (rv != CKR_OK) {
        rc = hsm_fail_ckr(h, OP, "C_DeriveKey(trusted wrapping key, as SO)", rv);
        goto out;
    }
    rv = hsm_read_ec_point(h, s, eph_pub, a->ephemeral_pk);
    if (rv != CKR_OK) {
        rc = hsm_fail_ckr(h, OP, "C_GetAttributeValue(ephemeral CKA_EC_POINT)", rv);
        h->f->C_DestroyObject(s, wk);
    }
out:
    h->f->C_DestroyObject(s, eph_priv);
    h->f->C_DestroyObject(s, eph_pub);
    return rc;
}

/* C_Logout on s and forget what it invalidates. */
static void logout(struct bkv_hsm *h, CK_SESSION_HANDLE s)
{
    h->f->C_Logout(s);
    hsm_logged_out(h);
}

/* Log the user in again and find the same realm as before (expected). */
static int back_to_user(struct bkv_hsm *h, CK_SESSION_HANDLE s,
                        const struct bkv_hsm_realm *expected)
{
    int rc = hsm_login_user(h, s, OP);

    if (rc == BKV_OK)
        rc = hsm_realm_load(h, s, expected, OP);
    return rc;
}

/*
 * The SO step. Always ends with the user logged in again (if the user PIN
 * file still allows it) and the same realm located and checked again.
 */
static int so_step(struct bkv_hsm *h, CK_SESSION_HANDLE s, struct approval *a,
                   const uint8_t *transport_pk)
{
    struct bkv_hsm_realm before = h->realm;
    CK_RV rv;
    int rc, rc2;

    rv = h->f->C_Logout(s);
    hsm_logged_out(h);
    if (rv != CKR_OK && rv != CKR_USER_NOT_LOGGED_IN) {
        rc = hsm_fail_ckr(h, OP, "C_Logout(user)", rv);
        back_to_user(h, s, &before);
        return rc;
    }
    rv = h->f->C_Login(s, CKU_SO, a->so_pin, a->so_len);
    if (rv != CKR_OK) {
        rc = hsm_fail_ckr(h, OP, "C_Login(SO)", rv);
    } else {
        rc = derive_as_so(h, s, a, transport_pk);
        logout(h, s);
    }
    rc2 = back_to_user(h, s, &before);
    return rc != BKV_OK ? rc : rc2;
}

/* Destroy the wrapping key: as user if the module lets us, else as SO. */
static void destroy_wrap_key(struct bkv_hsm *h, CK_SESSION_HANDLE s, struct approval *a,
                             const struct bkv_hsm_realm *expected)
{
    CK_ULONG count;
    CK_RV rv;

    rv = hsm_find_labelled(h, s, CKO_SECRET_KEY, a->wrap_label, NULL, 0, &a->wrap_key, &count);
    if (rv != CKR_OK || count == 0)
        return;
    if (h->f->C_DestroyObject(s, a->wrap_key) == CKR_OK)
        return;
    logout(h, s);
    if (h->f->C_Login(s, CKU_SO, a->so_pin, a->so_len) == CKR_OK) {
        if (hsm_find_labelled(h, s, CKO_SECRET_KEY, a->wrap_label, NULL, 0, &a->wrap_key, &count) ==
                CKR_OK &&
            count > 0)
            h->f->C_DestroyObject(s, a->wrap_key);
        logout(h, s);
    }
    back_to_user(h, s, expected);
}

static int wrap_keys(struct bkv_hsm *h, CK_SESSION_HANDLE s, struct approval *a,
                     struct bkv_hsm_enrol_blob *b, uint8_t wrapped[][BKV_HSM_WRAPPED_MAX])
{
    static const char *what[3] = {"seal key", "MAC key", "HPKE key"};
    CK_MECHANISM mech = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
    CK_OBJECT_HANDLE keys[3] = {h->seal_key, h->mac_key, h->hpke_key};
    const uint8_t *ids[3] = {h->realm.seal_key_id, h->realm.mac_key_id, h->realm.hpke_key_id};
    CK_ULONG count;
    CK_RV rv;

    rv = hsm_find_labelled(h, s, CKO_SECRET_KEY, a->wrap_label, NULL, 0, &a->wrap_key, &count);
    if (rv != CKR_OK || count != 1)
        return rv != CKR_OK ? hsm_fail_ckr(h, OP, "C_FindObjects(wrapping key)", rv)
                            : hsm_fail(h, BKV_ERR_HSM, OP, "the wrapping key cannot be found");
    for (int i = 0; i < 3; i++) {
        CK_ULONG len = BKV_HSM_WRAPPED_MAX;
        char call[64];

        rv = h->f->C_WrapKey(s, &mech, a->wrap_key, keys[i], wrapped[i], &len);
        if (rv != CKR_OK) {
            snprintf(call, sizeof(call), "C_WrapKey(%s)", what[i]);
            return hsm_fail_ckr(h, OP, call, rv);
        }
        b->keys[i].kind = (uint8_t)(i + 1);
        memcpy(b->keys[i].id, ids[i], BKV_HSM_KEY_ID_LEN);
        b->keys[i].data = wrapped[i];
        b->keys[i].len = len;
    }
    return BKV_OK;
}

/* Check the secrets blob and the transport key before the SO step. */
static int preflight(struct bkv_hsm *h, CK_SESSION_HANDLE s, const uint8_t *secrets,
                     size_t secrets_len)
{
    struct bkv_opaque_server_keys *keys = NULL;
    int rc;

    if (!h->has_realm)
        return hsm_fail(h, BKV_ERR_HSM_NOT_ENROLLED, OP, "the token holds no realm");
    if (secrets_len < 1 + BKV_HSM_KEY_ID_LEN ||
        memcmp(secrets + 1, h->realm.seal_key_id, BKV_HSM_KEY_ID_LEN) != 0)
        return hsm_fail(h, BKV_ERR_INVALID, OP,
                        "the OPAQUE secrets blob is not sealed with this realm's seal key");
    rc =
        hsm_opaque_load_with(h, s, h->seal_key, h->realm.realm_id, secrets, secrets_len, &keys, OP);
    bkv_hsm_opaque_free(keys);
    return rc;
}

int bkv_hsm_enrol_approve(struct bkv_hsm *h, const char *so_pin_file,
                          const uint8_t transport_pk[static BKV_HPKE_P256_PK_LEN],
                          const uint8_t expected_fp[static BKV_HSM_FINGERPRINT_LEN],
                          const uint8_t *secrets, size_t secrets_len, uint8_t **blob,
                          size_t *blob_len)
{
    uint8_t fp[BKV_HSM_FINGERPRINT_LEN], suffix[8], wrapped[3][BKV_HSM_WRAPPED_MAX];
    char have[BKV_HSM_FINGERPRINT_TEXT], want[BKV_HSM_FINGERPRINT_TEXT], why[BKV_HSM_ERRMSG_LEN];
    char hex[17];
    struct approval a;
    struct bkv_hsm_enrol_blob b;
    struct bkv_hsm_realm realm;
    uint8_t *out = NULL;
    size_t len = 0;
    CK_SESSION_HANDLE s;
    CK_RV rv;
    int rc;

    *blob = NULL;
    *blob_len = 0;
    memset(&a, 0, sizeof(a));
    rc = bkv_hpke_enc_check(BKV_HPKE_KEM_P256_SHA256, transport_pk, BKV_HPKE_P256_PK_LEN);
    if (rc != BKV_OK)
        return hsm_fail(h, rc, OP, "the transport public key is invalid (%s)", bkv_strerror(rc));
    bkv_hsm_fingerprint(transport_pk, fp);
    if (!bkv_ct_equal(fp, expected_fp, sizeof(fp))) {
        bkv_hsm_fingerprint_format(fp, have);
        bkv_hsm_fingerprint_format(expected_fp, want);
        return hsm_fail(h, BKV_ERR_HSM_NOT_APPROVED, OP,
                        "the transport key's fingerprint is %s, not the approved %s", have, want);
    }
    rc = bkv_hsm_pin_read(so_pin_file, a.so_pin, sizeof(a.so_pin), &a.so_len, why, sizeof(why));
    if (rc != BKV_OK)
        return hsm_fail(h, rc, OP, "SO %s", why);

    hsm_begin_exclusive(h, &s);
    rc = preflight(h, s, secrets, secrets_len);
    if (rc != BKV_OK)
        goto out;
    realm = h->realm;
    rv = hsm_random(h, s, suffix, sizeof(suffix));
    if (rv != CKR_OK) {
        rc = hsm_fail_ckr(h, OP, "C_GenerateRandom", rv);
        goto out;
    }
    bkv_hex_encode(suffix, sizeof(suffix), hex);
    snprintf(a.wrap_label, sizeof(a.wrap_label), "bkv-enrol-wrap-%s", hex);
    rc = so_step(h, s, &a, transport_pk);
    if (rc != BKV_OK)
        goto out;
    memset(&b, 0, sizeof(b));
    rc = wrap_keys(h, s, &a, &b, wrapped);
    if (rc != BKV_OK)
        goto out;
    memcpy(b.realm_id, h->realm.realm_id, BKV_HSM_REALM_ID_LEN);
    memcpy(b.ephemeral_pk, a.ephemeral_pk, BKV_HPKE_P256_PK_LEN);
    memcpy(b.transport_pk, transport_pk, BKV_HPKE_P256_PK_LEN);
    memcpy(b.hpke_pk, h->realm.hpke_pk, BKV_HPKE_P256_PK_LEN);
    b.secrets = secrets;
    b.secrets_len = secrets_len;
    len = bkv_hsm_enrol_blob_len(&b);
    out = len > 0 ? malloc(len) : NULL;
    if (out == NULL) {
        rc = hsm_fail(h, len > 0 ? BKV_ERR_NOMEM : BKV_ERR_LENGTH, OP,
                      "cannot build the enrolment blob");
        goto out;
    }
    rc = bkv_hsm_enrol_blob_encode(&b, out, len, &len);
    if (rc == BKV_OK)
        rc = hsm_enrol_check(h, s, h->mac_key, out, len - BKV_HSM_ENROL_CHECK_LEN,
                             out + len - BKV_HSM_ENROL_CHECK_LEN, OP);
    else
        hsm_fail(h, rc, OP, "cannot encode the enrolment blob");
    if (rc != BKV_OK)
        goto out;
    *blob = out;
    *blob_len = len;
    out = NULL;
out:
    if (a.wrap_label[0] != '\0')
        destroy_wrap_key(h, s, &a, &realm);
    hsm_end_exclusive(h, s);
    free(out);
    bkv_wipe(&a, sizeof(a));
    return rc;
}
