/*
 * Enrolment, the new node's side: the transport key, and taking in the
 * enrolment blob. Also the fingerprint helpers and the blob check value.
 *
 * Normal path of accept: decode the blob (codec.c, total); take the handle
 * exclusively; refuse a token that already holds a realm; find our
 * transport key and refuse a blob made for another one; derive the unwrap
 * key (ECDH of our transport private key and the blob's ephemeral key, into
 * a session AES key); C_UnwrapKey each realm key as a token object with the
 * realm template; create the HPKE public key object; verify: the HSM's DH
 * for a fresh software HPKE encapsulation to the blob's public key gives the
 * same shared secret, the MAC check value over the blob matches, and the
 * sealed OPAQUE secrets unseal (into a locked page) under the new seal key;
 * only then write the realm marker and destroy the transport key.
 * Failure modes: see enrol.h. The session unwrap key is destroyed on every
 * path, and on failure every object created from the blob is destroyed, so
 * the token is left as it was (not enrolled, transport key kept).
 */
#include "enrol.h"

#include <stdlib.h>
#include <string.h>

#include "ckr.h"
#include "codec.h"
#include "internal.h"
#include "proto/err.h"
#include "proto/kdf.h"
#include "proto/opaque.h"
#include "proto/util.h"
#include "secrets.h"

#define CHECK_LABEL "BKV-ENROL-CHECK-v1"

/* --- fingerprints ---------------------------------------------------------- */

void bkv_hsm_fingerprint(const uint8_t pk[static BKV_HPKE_P256_PK_LEN],
                         uint8_t fp[static BKV_HSM_FINGERPRINT_LEN])
{
    struct bkv_buf part = {pk, BKV_HPKE_P256_PK_LEN};

    if (bkv_sha256(&part, 1, fp) != BKV_OK)
        memset(fp, 0, BKV_HSM_FINGERPRINT_LEN); /* never matches a real key's */
}

void bkv_hsm_fingerprint_format(const uint8_t fp[static BKV_HSM_FINGERPRINT_LEN],
                                char out[static BKV_HSM_FINGERPRINT_TEXT])
{
    char hex[2 * BKV_HSM_FINGERPRINT_LEN + 1];
    size_t n = 0;

    bkv_hex_encode(fp, BKV_HSM_FINGERPRINT_LEN, hex);
    for (size_t i = 0; i < 2 * BKV_HSM_FINGERPRINT_LEN; i++) {
        if (i > 0 && i % 4 == 0)
            out[n++] = ' ';
        out[n++] = hex[i];
    }
    out[n] = '\0';
}

int bkv_hsm_fingerprint_parse(const char *text, uint8_t fp[static BKV_HSM_FINGERPRINT_LEN])
{
    char hex[2 * BKV_HSM_FINGERPRINT_LEN + 1];
    size_t n = 0, len = 0;

    for (const char *p = text; *p != '\0'; p++) {
        if (*p == ' ' || *p == ':')
            continue;
        if (n == 2 * BKV_HSM_FINGERPRINT_LEN)
            return BKV_ERR_FORMAT;
        hex[n++] = *p;
    }
    hex[n] = '\0';
    if (n != 2 * BKV_HSM_FINGERPRINT_LEN ||
        bkv_hex_decode(hex, fp, BKV_HSM_FINGERPRINT_LEN, &len) != BKV_OK)
        return BKV_ERR_FORMAT;
    return len == BKV_HSM_FINGERPRINT_LEN ? BKV_OK : BKV_ERR_FORMAT;
}

int hsm_enrol_check(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE mac_key,
                    const uint8_t *body, size_t body_len, uint8_t out[static 32], const char *op)
{
    struct bkv_buf part = {body, body_len};
    uint8_t digest[BKV_HASH_LEN];

    if (bkv_sha256(&part, 1, digest) != BKV_OK)
        return hsm_fail(h, BKV_ERR_CRYPTO, op, "SHA-256 failed");
    return hsm_mac_with(h, s, mac_key, CHECK_LABEL, digest, sizeof(digest), out, op);
}

/* --- transport key ------------------------------------------------------------ */

static CK_RV find_transport(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE *pub,
                            CK_OBJECT_HANDLE *priv, int *found)
{
    CK_ULONG n_pub, n_priv;
    CK_RV rv;

    *found = 0;
    rv = hsm_find_labelled(h, s, CKO_PUBLIC_KEY, HSM_LABEL_TRANSPORT, NULL, 0, pub, &n_pub);
    if (rv == CKR_OK)
        rv = hsm_find_labelled(h, s, CKO_PRIVATE_KEY, HSM_LABEL_TRANSPORT, NULL, 0, priv, &n_priv);
    if (rv == CKR_OK)
        *found = n_pub == 1 && n_priv == 1;
    return rv;
}

static CK_RV make_transport(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE *pub,
                            CK_OBJECT_HANDLE *priv)
{
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE pub_t[] = {
        {CKA_EC_PARAMS, (void *)hsm_p256_oid, sizeof(hsm_p256_oid)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &no, sizeof(no)},
        {CKA_LABEL, HSM_LABEL_TRANSPORT, sizeof(HSM_LABEL_TRANSPORT) - 1},
    };
    CK_ATTRIBUTE priv_t[] = {
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_SENSITIVE, &yes, sizeof(yes)},
        {CKA_EXTRACTABLE, &no, sizeof(no)},
        {CKA_DERIVE, &yes, sizeof(yes)},
        {CKA_LABEL, HSM_LABEL_TRANSPORT, sizeof(HSM_LABEL_TRANSPORT) - 1},
    };
    CK_MECHANISM mech = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_RV rv;

    hsm_create_lock(h);
    rv = h->f->C_GenerateKeyPair(s, &mech, pub_t, 4, priv_t, 6, pub, priv);
    hsm_create_unlock(h);
    return rv;
}

int bkv_hsm_enrol_request(struct bkv_hsm *h, struct bkv_hsm_transport *out)
{
    static const char *op = "make transport key on";
    CK_OBJECT_HANDLE pub, priv;
    CK_SESSION_HANDLE s;
    CK_RV rv;
    int found, rc = BKV_OK;

    hsm_begin_exclusive(h, &s);
    if (h->has_realm) {
        rc = hsm_fail(h, BKV_ERR_INVALID, op, "the token already holds a realm");
        goto out;
    }
    rv = find_transport(h, s, &pub, &priv, &found);
    if (rv == CKR_OK && !found)
        rv = make_transport(h, s, &pub, &priv);
    if (rv == CKR_OK)
        rv = hsm_read_ec_point(h, s, pub, out->pk);
    if (rv != CKR_OK) {
        rc = hsm_fail_ckr(h, op, found ? "C_GetAttributeValue" : "C_GenerateKeyPair", rv);
        goto out;
    }
    bkv_hsm_fingerprint(out->pk, out->fingerprint);
    bkv_hsm_fingerprint_format(out->fingerprint, out->text);
out:
    hsm_end_exclusive(h, s);
    return rc;
}

/* --- accept ------------------------------------------------------------------- */

#define OP "enrol"

/* What accept created, destroyed again on failure. */
struct accept {
    CK_OBJECT_HANDLE unwrap_key;
    CK_OBJECT_HANDLE keys[BKV_HSM_ENROL_KEYS];
    CK_OBJECT_HANDLE hpke_pub;
};

static int derive_unwrap_key(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE transport,
                             const struct bkv_hsm_enrol_blob *b, struct accept *acc)
{
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE aes = CKK_AES;
    CK_ULONG len = 32;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},     {CKA_KEY_TYPE, &aes, sizeof(aes)},
        {CKA_VALUE_LEN, &len, sizeof(len)}, {CKA_TOKEN, &no, sizeof(no)},
        {CKA_UNWRAP, &yes, sizeof(yes)},    {CKA_WRAP, &no, sizeof(no)},
        {CKA_SENSITIVE, &yes, sizeof(yes)}, {CKA_EXTRACTABLE, &no, sizeof(no)},
    };
    CK_ECDH1_DERIVE_PARAMS params;
    CK_MECHANISM mech = {CKM_ECDH1_DERIVE, &params, sizeof(params)};
    CK_RV rv;

    memset(&params, 0, sizeof(params));
    params.kdf = CKD_NULL;
    params.pPublicData = (CK_BYTE *)b->ephemeral_pk;
    params.ulPublicDataLen = BKV_HPKE_P256_PK_LEN;
    rv = h->f->C_DeriveKey(s, &mech, transport, t, sizeof(t) / sizeof(t[0]), &acc->unwrap_key);
    if (rv != CKR_OK)
        return hsm_fail_ckr(h, OP, "C_DeriveKey(unwrap key)", rv);
    return BKV_OK;
}

static int unwrap_keys(struct bkv_hsm *h, CK_SESSION_HANDLE s, const struct bkv_hsm_enrol_blob *b,
                       struct accept *acc)
{
    static const char *what[3] = {"seal key", "MAC key", "HPKE key"};
    CK_MECHANISM mech = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
    CK_RV rv = CKR_OK;
    int i;

    hsm_create_lock(h);
    for (i = 0; i < BKV_HSM_ENROL_KEYS && rv == CKR_OK; i++) {
        struct hsm_tmpl_store st;
        CK_ATTRIBUTE t[20];
        CK_ULONG n = hsm_realm_key_template((enum hsm_key_kind)b->keys[i].kind, HSM_TMPL_UNWRAP,
                                            b->keys[i].id, &st, t, 20);
        rv = n > 20 ? CKR_TEMPLATE_INCOMPLETE
                    : h->f->C_UnwrapKey(s, &mech, acc->unwrap_key, (CK_BYTE *)b->keys[i].data,
                                        b->keys[i].len, t, n, &acc->keys[i]);
    }
    hsm_create_unlock(h);
    if (rv == CKR_OK)
        return BKV_OK;
    /* SoftHSM2 reports a failed RFC 5649 integrity check as CKR_GENERAL_ERROR. */
    return hsm_fail(
        h,
        rv == CKR_GENERAL_ERROR || rv == CKR_WRAPPED_KEY_INVALID || rv == CKR_ENCRYPTED_DATA_INVALID
            ? BKV_ERR_DECRYPT
            : bkv_hsm_ckr_to_err(rv),
        OP, "the wrapped %s does not unwrap (C_UnwrapKey: %s)", what[i - 1], bkv_hsm_ckr_name(rv));
}

static int create_hpke_public(struct bkv_hsm *h, CK_SESSION_HANDLE s,
                              const struct bkv_hsm_enrol_blob *b, struct accept *acc)
{
    uint8_t der[2 + BKV_HPKE_P256_PK_LEN] = {0x04, BKV_HPKE_P256_PK_LEN};
    CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
    CK_KEY_TYPE ec = CKK_EC;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &ec, sizeof(ec)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &no, sizeof(no)},
        {CKA_EC_PARAMS, (void *)hsm_p256_oid, sizeof(hsm_p256_oid)},
        {CKA_EC_POINT, der, sizeof(der)},
        {CKA_LABEL, HSM_LABEL_HPKE, sizeof(HSM_LABEL_HPKE) - 1},
        {CKA_ID, (void *)b->keys[HSM_KEY_HPKE - 1].id, BKV_HSM_KEY_ID_LEN},
    };
    CK_RV rv;

    memcpy(der + 2, b->hpke_pk, BKV_HPKE_P256_PK_LEN);
    hsm_create_lock(h);
    rv = h->f->C_CreateObject(s, t, sizeof(t) / sizeof(t[0]), &acc->hpke_pub);
    hsm_create_unlock(h);
    if (rv != CKR_OK)
        return hsm_fail_ckr(h, OP, "C_CreateObject(HPKE public key)", rv);
    return BKV_OK;
}

/* The three checks before commit; fills opaque_pk from the unsealed secrets. */
static int verify(struct bkv_hsm *h, CK_SESSION_HANDLE s, const uint8_t *blob, size_t blob_len,
                  const struct bkv_hsm_enrol_blob *b, const struct accept *acc,
                  uint8_t opaque_pk[static BKV_P256_ELEMENT_LEN])
{
    uint8_t ss[BKV_HPKE_SECRET_LEN], ss2[BKV_HPKE_SECRET_LEN], dh[BKV_HPKE_DH_LEN];
    uint8_t enc[BKV_HPKE_MAX_ENC_LEN], check[32];
    struct bkv_opaque_server_keys *keys = NULL;
    size_t enc_len = 0;
    int rc;

    rc = bkv_hpke_kem_encap(BKV_HPKE_KEM_P256_SHA256, b->hpke_pk, BKV_HPKE_P256_PK_LEN, NULL, ss,
                            enc, &enc_len);
    if (rc != BKV_OK) {
        rc = hsm_fail(h, rc, OP, "HPKE encapsulation to the realm key: %s", bkv_strerror(rc));
        goto out;
    }
    rc = hsm_ecdh_x(h, s, acc->keys[HSM_KEY_HPKE - 1], enc, enc_len, dh, OP);
    if (rc != BKV_OK)
        goto out;
    rc = bkv_hpke_kem_decap_dh(BKV_HPKE_KEM_P256_SHA256, enc, enc_len, b->hpke_pk,
                               BKV_HPKE_P256_PK_LEN, dh, ss2);
    if (rc != BKV_OK || !bkv_ct_equal(ss, ss2, sizeof(ss))) {
        rc = hsm_fail(h, BKV_ERR_MAC, OP,
                      "verification failed: the unwrapped HPKE key does not match the realm's "
                      "public key");
        goto out;
    }
    rc = hsm_enrol_check(h, s, acc->keys[HSM_KEY_MAC - 1], blob, blob_len - BKV_HSM_ENROL_CHECK_LEN,
                         check, OP);
    if (rc != BKV_OK)
        goto out;
    if (!bkv_ct_equal(check, b->check, sizeof(check))) {
        rc = hsm_fail(h, BKV_ERR_MAC, OP,
                      "verification failed: the blob's check value does not match (altered "
                      "blob or wrong MAC key)");
        goto out;
    }
    if (b->secrets_len < 1 + BKV_HSM_KEY_ID_LEN ||
        memcmp(b->secrets + 1, b->keys[HSM_KEY_SEAL - 1].id, BKV_HSM_KEY_ID_LEN) != 0) {
        rc = hsm_fail(h, BKV_ERR_MAC, OP,
                      "verification failed: the OPAQUE secrets are not sealed with the realm's "
                      "seal key");
        goto out;
    }
    rc = hsm_opaque_load_with(h, s, acc->keys[HSM_KEY_SEAL - 1], b->realm_id, b->secrets,
                              b->secrets_len, &keys, OP);
    if (rc != BKV_OK)
        goto out;
    memcpy(opaque_pk, keys->pk, BKV_P256_ELEMENT_LEN);
out:
    bkv_hsm_opaque_free(keys);
    bkv_wipe(ss, sizeof(ss));
    bkv_wipe(ss2, sizeof(ss2));
    bkv_wipe(dh, sizeof(dh));
    return rc;
}

static void undo(struct bkv_hsm *h, CK_SESSION_HANDLE s, struct accept *acc, int failed)
{
    if (failed) {
        if (acc->hpke_pub != CK_INVALID_HANDLE)
            h->f->C_DestroyObject(s, acc->hpke_pub);
        for (int i = BKV_HSM_ENROL_KEYS - 1; i >= 0; i--)
            if (acc->keys[i] != CK_INVALID_HANDLE)
                h->f->C_DestroyObject(s, acc->keys[i]);
    }
    if (acc->unwrap_key != CK_INVALID_HANDLE)
        h->f->C_DestroyObject(s, acc->unwrap_key);
}

static int transport_matches(struct bkv_hsm *h, CK_SESSION_HANDLE s,
                             const struct bkv_hsm_enrol_blob *b, CK_OBJECT_HANDLE *pub,
                             CK_OBJECT_HANDLE *priv)
{
    uint8_t ours[BKV_HPKE_P256_PK_LEN], fp[BKV_HSM_FINGERPRINT_LEN];
    char ours_text[BKV_HSM_FINGERPRINT_TEXT], theirs_text[BKV_HSM_FINGERPRINT_TEXT];
    int found;
    CK_RV rv;

    rv = find_transport(h, s, pub, priv, &found);
    if (rv != CKR_OK)
        return hsm_fail_ckr(h, OP, "C_FindObjects(transport key)", rv);
    if (!found)
        return hsm_fail(h, BKV_ERR_INVALID, OP,
                        "the token has no transport key: make the enrolment request first");
    rv = hsm_read_ec_point(h, s, *pub, ours);
    if (rv != CKR_OK)
        return hsm_fail_ckr(h, OP, "C_GetAttributeValue(transport CKA_EC_POINT)", rv);
    if (memcmp(ours, b->transport_pk, sizeof(ours)) == 0)
        return BKV_OK;
    bkv_hsm_fingerprint(ours, fp);
    bkv_hsm_fingerprint_format(fp, ours_text);
    bkv_hsm_fingerprint(b->transport_pk, fp);
    bkv_hsm_fingerprint_format(fp, theirs_text);
    return hsm_fail(h, BKV_ERR_HSM_NOT_APPROVED, OP,
                    "the blob was made for transport key %s, but this token's is %s", theirs_text,
                    ours_text);
}

int bkv_hsm_enrol_accept(struct bkv_hsm *h, const uint8_t *blob, size_t blob_len,
                         struct bkv_hsm_realm *out, uint8_t **secrets, size_t *secrets_len)
{
    struct accept acc = {CK_INVALID_HANDLE,
                         {CK_INVALID_HANDLE, CK_INVALID_HANDLE, CK_INVALID_HANDLE},
                         CK_INVALID_HANDLE};
    CK_OBJECT_HANDLE transport_pub = CK_INVALID_HANDLE, transport_priv = CK_INVALID_HANDLE;
    struct bkv_hsm_enrol_blob b;
    struct bkv_hsm_realm r;
    uint8_t *copy = NULL;
    CK_SESSION_HANDLE s;
    int rc;

    *secrets = NULL;
    *secrets_len = 0;
    rc = bkv_hsm_enrol_blob_decode(blob, blob_len, &b);
    if (rc != BKV_OK)
        return hsm_fail(h, rc, OP, "the enrolment blob is malformed (%s)", bkv_strerror(rc));
    hsm_begin_exclusive(h, &s);
    if (h->has_realm) {
        rc = hsm_fail(h, BKV_ERR_INVALID, OP, "the token already holds a realm");
        goto out;
    }
    if ((rc = transport_matches(h, s, &b, &transport_pub, &transport_priv)) != BKV_OK ||
        (rc = derive_unwrap_key(h, s, transport_priv, &b, &acc)) != BKV_OK ||
        (rc = unwrap_keys(h, s, &b, &acc)) != BKV_OK ||
        (rc = create_hpke_public(h, s, &b, &acc)) != BKV_OK ||
        (rc = verify(h, s, blob, blob_len, &b, &acc, r.opaque_pk)) != BKV_OK)
        goto out;
    copy = malloc(b.secrets_len);
    if (copy == NULL) {
        rc = hsm_fail(h, BKV_ERR_NOMEM, OP, "out of memory");
        goto out;
    }
    memcpy(copy, b.secrets, b.secrets_len);
    memcpy(r.realm_id, b.realm_id, BKV_HSM_REALM_ID_LEN);
    memcpy(r.seal_key_id, b.keys[HSM_KEY_SEAL - 1].id, BKV_HSM_KEY_ID_LEN);
    memcpy(r.mac_key_id, b.keys[HSM_KEY_MAC - 1].id, BKV_HSM_KEY_ID_LEN);
    memcpy(r.hpke_key_id, b.keys[HSM_KEY_HPKE - 1].id, BKV_HSM_KEY_ID_LEN);
    memcpy(r.hpke_pk, b.hpke_pk, BKV_HPKE_P256_PK_LEN);
    rc = hsm_realm_commit(h, s, &r, OP);
    if (rc != BKV_OK)
        goto out;
    /* Enrolled: the transport key has served its purpose. */
    h->f->C_DestroyObject(s, transport_priv);
    h->f->C_DestroyObject(s, transport_pub);
    *out = r;
    *secrets = copy;
    *secrets_len = b.secrets_len;
    copy = NULL;
out:
    undo(h, s, &acc, rc != BKV_OK);
    hsm_end_exclusive(h, s);
    free(copy);
    return rc;
}
