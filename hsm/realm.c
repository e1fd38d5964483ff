/*
 * Realm keys in the token: templates, creation on the first node, and
 * locating them when a handle opens.
 *
 * Normal path of creation (exclusive role): random realm and key ids from
 * the HSM's RNG; C_GenerateKey for the AES-256 seal key and the 32-byte
 * HMAC key, C_GenerateKeyPair for the P-256 HPKE key, all with the realm
 * template (token, private, sensitive, extractable only under a trusted
 * wrapping key, not copyable, not modifiable); then the OPAQUE secrets are
 * generated and sealed (secrets.c); last, the realm marker is written, which
 * is the commit point. Token-object creation is serialised per process
 * (softhsm#573).
 * Failure modes: a token that already holds a realm gives BKV_ERR_INVALID;
 * PKCS#11 failures map through ckr.c. Every object created before a failure
 * is destroyed, so the token stays fresh. Loading: no marker means "not
 * enrolled" (not an error here); a malformed marker BKV_ERR_FORMAT; a marker
 * whose key is missing BKV_ERR_HSM_NO_KEY naming the key.
 */
#include "realm.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "internal.h"
#include "proto/err.h"
#include "proto/util.h"

const uint8_t hsm_p256_oid[10] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};

static const char *kind_label(enum hsm_key_kind kind)
{
    return kind == HSM_KEY_SEAL  ? HSM_LABEL_SEAL
           : kind == HSM_KEY_MAC ? HSM_LABEL_MAC
                                 : HSM_LABEL_HPKE;
}

static const char *kind_name(enum hsm_key_kind kind)
{
    return kind == HSM_KEY_SEAL ? "seal key" : kind == HSM_KEY_MAC ? "MAC key" : "HPKE private key";
}

CK_ULONG hsm_realm_key_template(enum hsm_key_kind kind, enum hsm_tmpl_use use, const uint8_t *id,
                                struct hsm_tmpl_store *st, CK_ATTRIBUTE *t, CK_ULONG cap)
{
    const char *label = kind_label(kind);
    CK_ULONG n = 0;

#define ADD(type, ptr, len)                                                                        \
    do {                                                                                           \
        if (n < cap)                                                                               \
            t[n] = (CK_ATTRIBUTE){(type), (void *)(ptr), (len)};                                   \
        n++;                                                                                       \
    } while (0)
    st->yes = CK_TRUE;
    st->no = CK_FALSE;
    st->value_len = 32;
    st->cls = kind == HSM_KEY_HPKE ? CKO_PRIVATE_KEY : CKO_SECRET_KEY;
    st->type = kind == HSM_KEY_SEAL ? CKK_AES : kind == HSM_KEY_MAC ? CKK_GENERIC_SECRET : CKK_EC;
    if (use != HSM_TMPL_GENERATE_PAIR) {
        ADD(CKA_CLASS, &st->cls, sizeof(st->cls));
        ADD(CKA_KEY_TYPE, &st->type, sizeof(st->type));
    }
    ADD(CKA_TOKEN, &st->yes, sizeof(CK_BBOOL));
    ADD(CKA_PRIVATE, &st->yes, sizeof(CK_BBOOL));
    ADD(CKA_SENSITIVE, &st->yes, sizeof(CK_BBOOL));
    ADD(CKA_EXTRACTABLE, &st->yes, sizeof(CK_BBOOL));
    ADD(CKA_WRAP_WITH_TRUSTED, &st->yes, sizeof(CK_BBOOL));
    ADD(CKA_COPYABLE, &st->no, sizeof(CK_BBOOL));
    /* SoftHSM2 2.6.1 refuses CKA_MODIFIABLE in an unwrap template
     * (CKR_ATTRIBUTE_READ_ONLY); the sensitive attributes stay read-only
     * there anyway. */
    if (use != HSM_TMPL_UNWRAP)
        ADD(CKA_MODIFIABLE, &st->no, sizeof(CK_BBOOL));
    ADD(CKA_LABEL, label, strlen(label));
    ADD(CKA_ID, id, BKV_HSM_KEY_ID_LEN);
    switch (kind) {
    case HSM_KEY_SEAL:
        ADD(CKA_ENCRYPT, &st->yes, sizeof(CK_BBOOL));
        ADD(CKA_DECRYPT, &st->yes, sizeof(CK_BBOOL));
        break;
    case HSM_KEY_MAC:
        ADD(CKA_SIGN, &st->yes, sizeof(CK_BBOOL));
        ADD(CKA_VERIFY, &st->yes, sizeof(CK_BBOOL));
        break;
    case HSM_KEY_HPKE:
        ADD(CKA_DERIVE, &st->yes, sizeof(CK_BBOOL));
        break;
    }
#undef ADD
    return n;
}

CK_RV hsm_read_ec_point(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub,
                        uint8_t pk[static BKV_HPKE_P256_PK_LEN])
{
    uint8_t der[BKV_HPKE_P256_PK_LEN + 2];
    CK_ATTRIBUTE a = {CKA_EC_POINT, der, sizeof(der)};
    CK_RV rv = h->f->C_GetAttributeValue(s, pub, &a, 1);

    if (rv != CKR_OK)
        return rv;
    /* DER OCTET STRING: 04 41 || 04 X Y. Some modules return the raw point. */
    if (a.ulValueLen == sizeof(der) && der[0] == 0x04 && der[1] == BKV_HPKE_P256_PK_LEN)
        memcpy(pk, der + 2, BKV_HPKE_P256_PK_LEN);
    else if (a.ulValueLen == BKV_HPKE_P256_PK_LEN && der[0] == 0x04)
        memcpy(pk, der, BKV_HPKE_P256_PK_LEN);
    else
        return CKR_ATTRIBUTE_VALUE_INVALID;
    return CKR_OK;
}

/* --- loading --------------------------------------------------------------- */

static int find_key(struct bkv_hsm *h, CK_SESSION_HANDLE s, const struct bkv_hsm_realm *r,
                    enum hsm_key_kind kind, const uint8_t *id, CK_OBJECT_HANDLE *out,
                    const char *op)
{
    char realm_hex[2 * BKV_HSM_REALM_ID_LEN + 1], id_hex[2 * BKV_HSM_KEY_ID_LEN + 1];
    CK_OBJECT_CLASS cls = kind == HSM_KEY_HPKE ? CKO_PRIVATE_KEY : CKO_SECRET_KEY;
    CK_ULONG count;
    CK_RV rv;

    rv = hsm_find_labelled(h, s, cls, kind_label(kind), id, BKV_HSM_KEY_ID_LEN, out, &count);
    if (rv != CKR_OK)
        return hsm_fail_ckr(h, op, "C_FindObjects", rv);
    if (count == 1)
        return BKV_OK;
    bkv_hex_encode(r->realm_id, BKV_HSM_REALM_ID_LEN, realm_hex);
    bkv_hex_encode(id, BKV_HSM_KEY_ID_LEN, id_hex);
    if (count == 0)
        return hsm_fail(h, BKV_ERR_HSM_NO_KEY, op,
                        "realm %s: the %s (label \"%s\", id %s) is missing from the token",
                        realm_hex, kind_name(kind), kind_label(kind), id_hex);
    return hsm_fail(h, BKV_ERR_HSM, op, "realm %s: the %s (label \"%s\", id %s) exists twice",
                    realm_hex, kind_name(kind), kind_label(kind), id_hex);
}

int hsm_realm_load(struct bkv_hsm *h, CK_SESSION_HANDLE s, const char *op)
{
    uint8_t value[BKV_HSM_REALM_ENCODED_LEN + 1];
    CK_ATTRIBUTE a = {CKA_VALUE, value, sizeof(value)};
    CK_OBJECT_HANDLE marker, seal, mac, hpke;
    struct bkv_hsm_realm r;
    CK_ULONG count;
    CK_RV rv;
    int rc;

    h->has_realm = 0;
    rv = hsm_find_labelled(h, s, CKO_DATA, HSM_LABEL_MARKER, NULL, 0, &marker, &count);
    if (rv != CKR_OK)
        return hsm_fail_ckr(h, op, "C_FindObjects", rv);
    if (count == 0)
        return BKV_OK;
    if (count > 1)
        return hsm_fail(h, BKV_ERR_HSM, op, "the token holds two realm markers");
    rv = h->f->C_GetAttributeValue(s, marker, &a, 1);
    if (rv != CKR_OK)
        return hsm_fail_ckr(h, op, "C_GetAttributeValue(realm marker)", rv);
    rc = bkv_hsm_realm_decode(value, a.ulValueLen, &r);
    if (rc != BKV_OK)
        return hsm_fail(h, rc == BKV_ERR_UNSUPPORTED ? rc : BKV_ERR_FORMAT, op,
                        "the realm marker is malformed (%s)", bkv_strerror(rc));
    if ((rc = find_key(h, s, &r, HSM_KEY_SEAL, r.seal_key_id, &seal, op)) != BKV_OK ||
        (rc = find_key(h, s, &r, HSM_KEY_MAC, r.mac_key_id, &mac, op)) != BKV_OK ||
        (rc = find_key(h, s, &r, HSM_KEY_HPKE, r.hpke_key_id, &hpke, op)) != BKV_OK)
        return rc;
    h->realm = r;
    h->marker = marker;
    h->seal_key = seal;
    h->mac_key = mac;
    h->hpke_key = hpke;
    h->has_realm = 1;
    return BKV_OK;
}

int hsm_realm_commit(struct bkv_hsm *h, CK_SESSION_HANDLE s, const struct bkv_hsm_realm *realm,
                     const char *op)
{
    uint8_t value[BKV_HSM_REALM_ENCODED_LEN];
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_LABEL, HSM_LABEL_MARKER, sizeof(HSM_LABEL_MARKER) - 1},
        {CKA_APPLICATION, "bkv", 3},
        {CKA_VALUE, value, sizeof(value)},
    };
    CK_OBJECT_HANDLE obj;
    CK_RV rv;
    int rc;

    bkv_hsm_realm_encode(realm, value);
    hsm_create_lock(h);
    rv = h->f->C_CreateObject(s, t, sizeof(t) / sizeof(t[0]), &obj);
    hsm_create_unlock(h);
    if (rv != CKR_OK)
        return hsm_fail_ckr(h, op, "C_CreateObject(realm marker)", rv);
    rc = hsm_realm_load(h, s, op);
    if (rc != BKV_OK || !h->has_realm) {
        h->f->C_DestroyObject(s, obj);
        h->has_realm = 0;
        if (rc == BKV_OK)
            rc = hsm_fail(h, BKV_ERR_HSM, op, "the new realm marker cannot be found");
    }
    return rc;
}

/* --- creation -------------------------------------------------------------- */

static CK_RV generate_secret(struct bkv_hsm *h, CK_SESSION_HANDLE s, enum hsm_key_kind kind,
                             const uint8_t *id, CK_OBJECT_HANDLE *out)
{
    CK_MECHANISM mech = {kind == HSM_KEY_SEAL ? CKM_AES_KEY_GEN : CKM_GENERIC_SECRET_KEY_GEN, NULL,
                         0};
    struct hsm_tmpl_store st;
    CK_ATTRIBUTE t[20];
    CK_ULONG n = hsm_realm_key_template(kind, HSM_TMPL_GENERATE, id, &st, t, 19);

    if (n > 19)
        return CKR_TEMPLATE_INCOMPLETE;
    t[n++] = (CK_ATTRIBUTE){CKA_VALUE_LEN, &st.value_len, sizeof(st.value_len)};
    return h->f->C_GenerateKey(s, &mech, t, n, out);
}

static CK_RV generate_hpke(struct bkv_hsm *h, CK_SESSION_HANDLE s, const uint8_t *id,
                           CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv)
{
    CK_MECHANISM mech = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE pt[] = {
        {CKA_EC_PARAMS, (void *)hsm_p256_oid, sizeof(hsm_p256_oid)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &no, sizeof(no)},
        {CKA_LABEL, HSM_LABEL_HPKE, sizeof(HSM_LABEL_HPKE) - 1},
        {CKA_ID, (void *)id, BKV_HSM_KEY_ID_LEN},
    };
    struct hsm_tmpl_store st;
    CK_ATTRIBUTE t[20];
    CK_ULONG n = hsm_realm_key_template(HSM_KEY_HPKE, HSM_TMPL_GENERATE_PAIR, id, &st, t, 20);

    if (n > 20)
        return CKR_TEMPLATE_INCOMPLETE;
    return h->f->C_GenerateKeyPair(s, &mech, pt, sizeof(pt) / sizeof(pt[0]), t, n, pub, priv);
}

int bkv_hsm_realm_create(struct bkv_hsm *h, struct bkv_hsm_realm *out, uint8_t **secrets,
                         size_t *secrets_len)
{
    static const char *op = "create realm on";
    CK_OBJECT_HANDLE made[4] = {CK_INVALID_HANDLE, CK_INVALID_HANDLE, CK_INVALID_HANDLE,
                                CK_INVALID_HANDLE};
    struct bkv_hsm_realm r;
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    CK_SESSION_HANDLE s;
    const char *call = NULL;
    CK_RV rv;
    int rc;

    *secrets = NULL;
    *secrets_len = 0;
    hsm_begin_exclusive(h, &s);
    if (h->has_realm) {
        char hex[2 * BKV_HSM_REALM_ID_LEN + 1];
        bkv_hex_encode(h->realm.realm_id, BKV_HSM_REALM_ID_LEN, hex);
        rc = hsm_fail(h, BKV_ERR_INVALID, op, "the token already holds realm %s", hex);
        goto out;
    }
    memset(&r, 0, sizeof(r));
    rv = hsm_random(h, s, r.realm_id, sizeof(r.realm_id));
    if (rv == CKR_OK)
        rv = hsm_random(h, s, r.seal_key_id, sizeof(r.seal_key_id));
    if (rv == CKR_OK)
        rv = hsm_random(h, s, r.mac_key_id, sizeof(r.mac_key_id));
    if (rv == CKR_OK)
        rv = hsm_random(h, s, r.hpke_key_id, sizeof(r.hpke_key_id));
    if (rv != CKR_OK) {
        rc = hsm_fail_ckr(h, op, "C_GenerateRandom", rv);
        goto out;
    }
    hsm_create_lock(h);
    call = "C_GenerateKey(seal key)";
    rv = generate_secret(h, s, HSM_KEY_SEAL, r.seal_key_id, &made[0]);
    if (rv == CKR_OK) {
        call = "C_GenerateKey(MAC key)";
        rv = generate_secret(h, s, HSM_KEY_MAC, r.mac_key_id, &made[1]);
    }
    if (rv == CKR_OK) {
        call = "C_GenerateKeyPair(HPKE key)";
        rv = generate_hpke(h, s, r.hpke_key_id, &made[2], &made[3]);
    }
    hsm_create_unlock(h);
    if (rv != CKR_OK) {
        rc = hsm_fail_ckr(h, op, call, rv);
        goto out;
    }
    rv = hsm_read_ec_point(h, s, made[2], r.hpke_pk);
    if (rv != CKR_OK) {
        rc = hsm_fail_ckr(h, op, "C_GetAttributeValue(CKA_EC_POINT)", rv);
        goto out;
    }
    rc = hsm_opaque_generate(h, s, made[0], r.seal_key_id, r.realm_id, &blob, &blob_len,
                             r.opaque_pk, op);
    if (rc != BKV_OK)
        goto out;
    rc = hsm_realm_commit(h, s, &r, op);
    if (rc != BKV_OK)
        goto out;
    *out = r;
    *secrets = blob;
    *secrets_len = blob_len;
    blob = NULL;
out:
    if (rc != BKV_OK && !h->has_realm)
        for (int i = 3; i >= 0; i--)
            if (made[i] != CK_INVALID_HANDLE)
                h->f->C_DestroyObject(s, made[i]);
    free(blob);
    hsm_end_exclusive(h, s);
    return rc;
}

int bkv_hsm_realm_get(struct bkv_hsm *h, struct bkv_hsm_realm *out)
{
    int rc = BKV_OK;

    pthread_rwlock_rdlock(&h->role);
    if (h->has_realm)
        *out = h->realm;
    else
        rc = hsm_fail(h, BKV_ERR_HSM_NOT_ENROLLED, "describe realm of",
                      "the token holds no realm yet");
    pthread_rwlock_unlock(&h->role);
    return rc;
}
