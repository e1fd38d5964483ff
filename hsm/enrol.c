/*
 * Enrolment, the new node's side: the transport key, and taking in the
 * enrolment blob. Also the fingerprint helpers and the blob check value.
 *
 * The transport key pair are session objects on one of the handle's pooled
 * sessions (private key: private, sensitive, never extractable, derive only,
 * CKM_ECDH1_DERIVE only, not modifiable). Session objects live in the
 * process's memory, never in the token directory, so no other process can
 * use them, whatever PIN it holds.
 *
 * Normal path of accept: decode the blob (codec.c, total); take the handle
 * exclusively; refuse a token that already holds a realm; refuse a blob made
 * for another transport key than the handle's, or for another realm than
 * the pinned one; derive the unwrap key (ECDH of the transport private key
 * and the blob's ephemeral key, into a session AES key that can only
 * unwrap); C_UnwrapKey each realm key as a token object with the realm
 * template; create the HPKE public key object; verify: the blob's MAC check
 * value, the pinned key check values, an HPKE round trip to the pinned
 * public key, and the sealed OPAQUE secrets unseal (into a locked page) to
 * the pinned OPAQUE public key; only then write the realm marker (the
 * pinned description) and destroy the transport key.
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

static CK_RV make_transport(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE *pub,
                            CK_OBJECT_HANDLE *priv)
{
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_MECHANISM_TYPE ecdh = CKM_ECDH1_DERIVE;
    CK_ATTRIBUTE pub_t[] = {
        {CKA_EC_PARAMS, (void *)hsm_p256_oid, sizeof(hsm_p256_oid)},
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_PRIVATE, &no, sizeof(no)},
        {CKA_LABEL, HSM_LABEL_TRANSPORT, sizeof(HSM_LABEL_TRANSPORT) - 1},
        {CKA_MODIFIABLE, &no, sizeof(no)},
    };
    /* A session object: never in the token, so no other process can derive with it. */
    CK_ATTRIBUTE priv_t[] = {
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_SENSITIVE, &yes, sizeof(yes)},
        {CKA_EXTRACTABLE, &no, sizeof(no)},
        {CKA_COPYABLE, &no, sizeof(no)},
        {CKA_DERIVE, &yes, sizeof(yes)},
        {CKA_LABEL, HSM_LABEL_TRANSPORT, sizeof(HSM_LABEL_TRANSPORT) - 1},
        {CKA_ALLOWED_MECHANISMS, &ecdh, sizeof(ecdh)},
        {CKA_MODIFIABLE, &no, sizeof(no)}, /* last: see hsm_realm_key_template */
    };
    CK_MECHANISM mech = {CKM_EC_KEY_PAIR_GEN, NULL, 0};

    return h->f->C_GenerateKeyPair(s, &mech, pub_t, sizeof(pub_t) / sizeof(pub_t[0]), priv_t,
                                   sizeof(priv_t) / sizeof(priv_t[0]), pub, priv);
}

int bkv_hsm_enrol_request(struct bkv_hsm *h, struct bkv_hsm_transport *out)
{
    static const char *op = "make transport key on";
    CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE;
    CK_SESSION_HANDLE s;
    CK_RV rv;
    int rc = BKV_OK;

    hsm_begin_exclusive(h, &s);
    if (h->has_realm) {
        rc = hsm_fail(h, BKV_ERR_INVALID, op, "the token already holds a realm");
        goto out;
    }
    if (!h->has_transport) {
        rv = make_transport(h, s, &pub, &priv);
        if (rv == CKR_OK)
            rv = hsm_read_ec_point(h, s, pub, h->transport_pk);
        if (rv != CKR_OK) {
            rc = hsm_fail_ckr(h, op, "C_GenerateKeyPair(transport key, session)", rv);
            if (priv != CK_INVALID_HANDLE)
                h->f->C_DestroyObject(s, priv);
            if (pub != CK_INVALID_HANDLE)
                h->f->C_DestroyObject(s, pub);
            goto out;
        }
        h->transport_pub = pub;
        h->transport_priv = priv;
        h->has_transport = 1;
    }
    memcpy(out->pk, h->transport_pk, sizeof(out->pk));
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

static int derive_unwrap_key(struct bkv_hsm *h, CK_SESSION_HANDLE s,
                             const struct bkv_hsm_enrol_blob *b, struct accept *acc)
{
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE aes = CKK_AES;
    CK_MECHANISM_TYPE kwp = CKM_AES_KEY_WRAP_PAD;
    CK_ULONG len = 32;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &aes, sizeof(aes)},
        {CKA_VALUE_LEN, &len, sizeof(len)},
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_UNWRAP, &yes, sizeof(yes)},
        {CKA_WRAP, &no, sizeof(no)},
        {CKA_ENCRYPT, &no, sizeof(no)},
        {CKA_DECRYPT, &no, sizeof(no)},
        {CKA_SENSITIVE, &yes, sizeof(yes)},
        {CKA_EXTRACTABLE, &no, sizeof(no)},
        {CKA_ALLOWED_MECHANISMS, &kwp, sizeof(kwp)},
    };
    CK_ECDH1_DERIVE_PARAMS params;
    CK_MECHANISM mech = {CKM_ECDH1_DERIVE, &params, sizeof(params)};
    CK_RV rv;

    memset(&params, 0, sizeof(params));
    params.kdf = CKD_NULL;
    params.pPublicData = (CK_BYTE *)b->ephemeral_pk;
    params.ulPublicDataLen = BKV_HPKE_P256_PK_LEN;
    rv = h->f->C_DeriveKey(s, &mech, h->transport_priv, t, sizeof(t) / sizeof(t[0]),
                           &acc->unwrap_key);
    if (rv != CKR_OK)
        return hsm_fail_ckr(h, OP, "C_DeriveKey(unwrap key)", rv);
    return BKV_OK;
}

static int unwrap_keys(struct bkv_hsm *h, CK_SESSION_HANDLE s, const struct bkv_hsm_enrol_blob *b,
                       struct accept *acc)
{
    static const char *what[3] = {"the wrapped seal key does not unwrap",
                                  "the wrapped MAC key does not unwrap",
                                  "the wrapped HPKE key does not unwrap"};
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
    return hsm_fail_decrypt(h, s, acc->unwrap_key, rv, OP, "C_UnwrapKey", what[i - 1]);
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
        {CKA_MODIFIABLE, &no, sizeof(no)},
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

/* Before any key moves: our transport key, and the pinned realm's ids and public key. */
static int blob_matches(struct bkv_hsm *h, const struct bkv_hsm_enrol_blob *b,
                        const struct bkv_hsm_realm *pinned)
{
    static const char *kind[3] = {"seal key", "MAC key", "HPKE key"};
    const uint8_t *ids[3] = {pinned->seal_key_id, pinned->mac_key_id, pinned->hpke_key_id};
    uint8_t fp[BKV_HSM_FINGERPRINT_LEN];
    char ours[BKV_HSM_FINGERPRINT_TEXT], theirs[BKV_HSM_FINGERPRINT_TEXT];
    char have[2 * BKV_HSM_REALM_ID_LEN + 1], want[2 * BKV_HSM_REALM_ID_LEN + 1];

    if (!h->has_transport)
        return hsm_fail(h, BKV_ERR_INVALID, OP,
                        "this handle has no transport key: the blob must be accepted by the "
                        "same process that made the request (bkv-admin enrol join)");
    if (!bkv_ct_equal(h->transport_pk, b->transport_pk, BKV_HPKE_P256_PK_LEN)) {
        bkv_hsm_fingerprint(h->transport_pk, fp);
        bkv_hsm_fingerprint_format(fp, ours);
        bkv_hsm_fingerprint(b->transport_pk, fp);
        bkv_hsm_fingerprint_format(fp, theirs);
        return hsm_fail(h, BKV_ERR_HSM_NOT_APPROVED, OP,
                        "the blob was made for transport key %s, but this one is %s", theirs, ours);
    }
    if (!bkv_ct_equal(b->realm_id, pinned->realm_id, BKV_HSM_REALM_ID_LEN)) {
        bkv_hex_encode(b->realm_id, BKV_HSM_REALM_ID_LEN, have);
        bkv_hex_encode(pinned->realm_id, BKV_HSM_REALM_ID_LEN, want);
        return hsm_fail(h, BKV_ERR_HSM_NOT_APPROVED, OP,
                        "the blob is for realm %s, not the pinned realm %s", have, want);
    }
    if (!bkv_ct_equal(b->hpke_pk, pinned->hpke_pk, BKV_HPKE_P256_PK_LEN))
        return hsm_fail(h, BKV_ERR_HSM_NOT_APPROVED, OP,
                        "the blob's HPKE public key is not the pinned realm's");
    for (int i = 0; i < BKV_HSM_ENROL_KEYS; i++)
        if (!bkv_ct_equal(b->keys[i].id, ids[i], BKV_HSM_KEY_ID_LEN))
            return hsm_fail(h, BKV_ERR_HSM_NOT_APPROVED, OP,
                            "the blob's %s id is not the pinned realm's", kind[i]);
    return BKV_OK;
}

/* Everything the pinned description says, checked on the unwrapped keys. */
static int verify(struct bkv_hsm *h, CK_SESSION_HANDLE s, const uint8_t *blob, size_t blob_len,
                  const struct bkv_hsm_enrol_blob *b, const struct bkv_hsm_realm *pinned,
                  const struct accept *acc)
{
    struct bkv_opaque_server_keys *keys = NULL;
    uint8_t check[32];
    int rc;

    rc = hsm_enrol_check(h, s, acc->keys[HSM_KEY_MAC - 1], blob, blob_len - BKV_HSM_ENROL_CHECK_LEN,
                         check, OP);
    if (rc != BKV_OK)
        return rc;
    if (!bkv_ct_equal(check, b->check, sizeof(check)))
        return hsm_fail(h, BKV_ERR_MAC, OP,
                        "verification failed: the blob's check value does not match (altered "
                        "blob or wrong MAC key)");
    rc = hsm_realm_check(h, s, pinned, acc->keys[HSM_KEY_SEAL - 1], acc->keys[HSM_KEY_MAC - 1],
                         acc->keys[HSM_KEY_HPKE - 1], OP);
    if (rc != BKV_OK)
        return rc;
    if (b->secrets_len < 1 + BKV_HSM_KEY_ID_LEN ||
        memcmp(b->secrets + 1, pinned->seal_key_id, BKV_HSM_KEY_ID_LEN) != 0)
        return hsm_fail(h, BKV_ERR_MAC, OP,
                        "verification failed: the OPAQUE secrets are not sealed with the realm's "
                        "seal key");
    rc = hsm_opaque_load_with(h, s, acc->keys[HSM_KEY_SEAL - 1], pinned->realm_id, b->secrets,
                              b->secrets_len, &keys, OP);
    if (rc != BKV_OK)
        return rc;
    if (!bkv_ct_equal(keys->pk, pinned->opaque_pk, BKV_P256_ELEMENT_LEN))
        rc = hsm_fail(h, BKV_ERR_MAC, OP,
                      "verification failed: the sealed OPAQUE secrets do not belong to the "
                      "pinned OPAQUE public key");
    bkv_hsm_opaque_free(keys);
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

int bkv_hsm_enrol_accept(struct bkv_hsm *h, const struct bkv_hsm_realm *pinned, const uint8_t *blob,
                         size_t blob_len, struct bkv_hsm_realm *out, uint8_t **secrets,
                         size_t *secrets_len)
{
    struct accept acc = {CK_INVALID_HANDLE,
                         {CK_INVALID_HANDLE, CK_INVALID_HANDLE, CK_INVALID_HANDLE},
                         CK_INVALID_HANDLE};
    struct hsm_realm_objects keys;
    struct bkv_hsm_enrol_blob b;
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
    if ((rc = blob_matches(h, &b, pinned)) != BKV_OK ||
        (rc = derive_unwrap_key(h, s, &b, &acc)) != BKV_OK ||
        (rc = unwrap_keys(h, s, &b, &acc)) != BKV_OK ||
        (rc = create_hpke_public(h, s, &b, &acc)) != BKV_OK ||
        (rc = verify(h, s, blob, blob_len, &b, pinned, &acc)) != BKV_OK)
        goto out;
    copy = malloc(b.secrets_len);
    if (copy == NULL) {
        rc = hsm_fail(h, BKV_ERR_NOMEM, OP, "out of memory");
        goto out;
    }
    memcpy(copy, b.secrets, b.secrets_len);
    keys.seal = acc.keys[HSM_KEY_SEAL - 1];
    keys.mac = acc.keys[HSM_KEY_MAC - 1];
    keys.hpke = acc.keys[HSM_KEY_HPKE - 1];
    rc = hsm_realm_commit(h, s, pinned, &keys, OP);
    if (rc != BKV_OK)
        goto out;
    /* Enrolled: the transport key has served its purpose. */
    h->f->C_DestroyObject(s, h->transport_priv);
    h->f->C_DestroyObject(s, h->transport_pub);
    h->has_transport = 0;
    h->transport_priv = h->transport_pub = CK_INVALID_HANDLE;
    *out = *pinned;
    *secrets = copy;
    *secrets_len = b.secrets_len;
    copy = NULL;
out:
    undo(h, s, &acc, rc != BKV_OK);
    hsm_end_exclusive(h, s);
    free(copy);
    return rc;
}
