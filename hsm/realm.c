/*
 * Realm keys in the token: templates, creation on the first node, locating
 * them when a handle opens, and checking them against a pinned description.
 *
 * Normal path of creation (exclusive role): random realm and key ids from
 * the HSM's RNG; C_GenerateKey for the AES-256 seal key and the 32-byte
 * HMAC key, C_GenerateKeyPair for the P-256 HPKE key, all with the realm
 * template (token, private, sensitive, extractable only under a trusted
 * wrapping key, not copyable, one allowed mechanism, not modifiable); the
 * key check values (an HMAC of a fixed label, a seal of a fixed plaintext);
 * then the OPAQUE secrets are generated and sealed (secrets.c); last, the
 * realm marker is written (not modifiable, not destroyable), which is the
 * commit point. Token-object creation is serialised per process
 * (softhsm#573).
 * Failure modes: a token that already holds a realm gives BKV_ERR_INVALID;
 * PKCS#11 failures map through ckr.c. Every object created before a failure
 * is destroyed, so the token stays fresh. Loading: no marker means "not
 * enrolled" (not an error here); a malformed marker BKV_ERR_FORMAT; a marker
 * whose key is missing BKV_ERR_HSM_NO_KEY naming the key; a key or marker
 * that exists twice BKV_ERR_HSM. Verifying against a pinned description:
 * another description BKV_ERR_INVALID, a key failing its check value
 * BKV_ERR_MAC.
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
    st->mech = kind == HSM_KEY_SEAL  ? CKM_AES_GCM
               : kind == HSM_KEY_MAC ? CKM_SHA256_HMAC
                                     : CKM_ECDH1_DERIVE;
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
    /* Wrapping is done BY a trusted key, so each key needs only its own use. */
    ADD(CKA_ALLOWED_MECHANISMS, &st->mech, sizeof(st->mech));
    /* Last: SoftHSM2 refuses every attribute that follows MODIFIABLE=false. */
    ADD(CKA_MODIFIABLE, &st->no, sizeof(CK_BBOOL));
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

/* --- loading and checking ------------------------------------------------- */

static int find_key(struct bkv_hsm *h, CK_SESSION_HANDLE s, const struct bkv_hsm_realm *r,
                    enum hsm_key_kind kind, const uint8_t *id, CK_OBJECT_HANDLE *out,
                    const char *op)
{
    char realm_hex[2 * BKV_HSM_REALM_ID_LEN + 1], id_hex[2 * BKV_HSM_KEY_ID_LEN + 1];
    CK_OBJECT_CLASS cls = kind == HSM_KEY_HPKE ? CKO_PRIVATE_KEY : CKO_SECRET_KEY;
    CK_ATTRIBUTE by_id[2] = {{CKA_CLASS, &cls, sizeof(cls)},
                             {CKA_ID, (void *)id, BKV_HSM_KEY_ID_LEN}};
    CK_OBJECT_HANDLE other;
    CK_ULONG count, n_label, n_id;
    CK_RV rv;

    rv = hsm_find_labelled(h, s, cls, kind_label(kind), id, BKV_HSM_KEY_ID_LEN, out, &count);
    if (rv == CKR_OK)
        rv = hsm_find_labelled(h, s, cls, kind_label(kind), NULL, 0, &other, &n_label);
    if (rv == CKR_OK)
        rv = hsm_find(h, s, by_id, 2, &other, &n_id);
    if (rv != CKR_OK)
        return hsm_fail_ckr(h, op, "C_FindObjects", rv);
    if (count == 1 && n_label == 1 && n_id == 1)
        return BKV_OK;
    bkv_hex_encode(r->realm_id, BKV_HSM_REALM_ID_LEN, realm_hex);
    bkv_hex_encode(id, BKV_HSM_KEY_ID_LEN, id_hex);
    if (count == 0)
        return hsm_fail(h, BKV_ERR_HSM_NO_KEY, op,
                        "realm %s: the %s (label \"%s\", id %s) is missing from the token",
                        realm_hex, kind_name(kind), kind_label(kind), id_hex);
    /* Someone added a key under the realm key's label or id: refuse to guess. */
    return hsm_fail(h, BKV_ERR_HSM, op,
                    "realm %s: the %s (label \"%s\", id %s) is not unique: the token holds %s "
                    "with its label and %s with its id",
                    realm_hex, kind_name(kind), kind_label(kind), id_hex,
                    n_label > 1 ? "two or more objects" : "one object",
                    n_id > 1 ? "two or more" : "one");
}

int hsm_realm_find(struct bkv_hsm *h, CK_SESSION_HANDLE s, int *found, struct bkv_hsm_realm *r,
                   struct hsm_realm_objects *o, const char *op)
{
    uint8_t value[BKV_HSM_REALM_ENCODED_LEN + 1];
    CK_ATTRIBUTE a = {CKA_VALUE, value, sizeof(value)};
    CK_ULONG count;
    CK_RV rv;
    int rc;

    *found = 0;
    rv = hsm_find_labelled(h, s, CKO_DATA, HSM_LABEL_MARKER, NULL, 0, &o->marker, &count);
    if (rv != CKR_OK)
        return hsm_fail_ckr(h, op, "C_FindObjects", rv);
    if (count == 0)
        return BKV_OK;
    if (count > 1)
        return hsm_fail(h, BKV_ERR_HSM, op,
                        "the token holds two realm markers (\"%s\"): one was added by someone "
                        "else; re-provision the token",
                        HSM_LABEL_MARKER);
    rv = h->f->C_GetAttributeValue(s, o->marker, &a, 1);
    if (rv != CKR_OK)
        return hsm_fail_ckr(h, op, "C_GetAttributeValue(realm marker)", rv);
    rc = bkv_hsm_realm_decode(value, a.ulValueLen, r);
    if (rc != BKV_OK)
        return hsm_fail(h, rc == BKV_ERR_UNSUPPORTED ? rc : BKV_ERR_FORMAT, op,
                        "the realm marker is malformed (%s)", bkv_strerror(rc));
    if ((rc = find_key(h, s, r, HSM_KEY_SEAL, r->seal_key_id, &o->seal, op)) != BKV_OK ||
        (rc = find_key(h, s, r, HSM_KEY_MAC, r->mac_key_id, &o->mac, op)) != BKV_OK ||
        (rc = find_key(h, s, r, HSM_KEY_HPKE, r->hpke_key_id, &o->hpke, op)) != BKV_OK)
        return rc;
    *found = 1;
    return BKV_OK;
}

void hsm_kcv_seal_aad(const uint8_t realm_id[static BKV_HSM_REALM_ID_LEN],
                      uint8_t aad[static HSM_KCV_SEAL_AAD_LEN])
{
    memcpy(aad, HSM_KCV_SEAL_AAD_LABEL, sizeof(HSM_KCV_SEAL_AAD_LABEL) - 1);
    memcpy(aad + sizeof(HSM_KCV_SEAL_AAD_LABEL) - 1, realm_id, BKV_HSM_REALM_ID_LEN);
}

int hsm_realm_check(struct bkv_hsm *h, CK_SESSION_HANDLE s, const struct bkv_hsm_realm *r,
                    CK_OBJECT_HANDLE seal, CK_OBJECT_HANDLE mac, CK_OBJECT_HANDLE hpke,
                    const char *op)
{
    uint8_t kcv[BKV_HSM_KCV_MAC_LEN], aad[HSM_KCV_SEAL_AAD_LEN], pt[BKV_HSM_KCV_SEAL_LEN];
    size_t pt_len = 0;
    int rc;

    rc = hsm_mac_with(h, s, mac, HSM_KCV_MAC_LABEL, NULL, 0, kcv, op);
    if (rc != BKV_OK)
        return rc;
    if (!bkv_ct_equal(kcv, r->mac_kcv, sizeof(kcv)))
        return hsm_fail(h, BKV_ERR_MAC, op,
                        "the account MAC key in the token fails the realm's key check value: it "
                        "is not the realm's key (substituted?)");
    hsm_kcv_seal_aad(r->realm_id, aad);
    rc = hsm_unseal_with(h, s, seal, aad, sizeof(aad), r->seal_kcv, sizeof(r->seal_kcv), pt,
                         sizeof(pt), &pt_len, op);
    if (rc == BKV_ERR_DECRYPT ||
        (rc == BKV_OK && (pt_len != HSM_KCV_SEAL_PT_LEN ||
                          memcmp(pt, HSM_KCV_SEAL_PLAINTEXT, HSM_KCV_SEAL_PT_LEN) != 0)))
        rc = hsm_fail(h, BKV_ERR_MAC, op,
                      "the seal key in the token fails the realm's key check value: it is not "
                      "the realm's key (substituted?)");
    bkv_wipe(pt, sizeof(pt));
    if (rc != BKV_OK)
        return rc;
    return hsm_hpke_check(h, s, hpke, r->hpke_pk,
                          "the HPKE private key in the token does not match the realm's public "
                          "key (substituted?)",
                          op);
}

/* Compare the token's description with pinned, naming both realm ids if they differ. */
static int same_description(struct bkv_hsm *h, const struct bkv_hsm_realm *have,
                            const struct bkv_hsm_realm *pinned, const char *op)
{
    uint8_t a[BKV_HSM_REALM_ENCODED_LEN], b[BKV_HSM_REALM_ENCODED_LEN];
    char have_hex[2 * BKV_HSM_REALM_ID_LEN + 1], want_hex[2 * BKV_HSM_REALM_ID_LEN + 1];

    bkv_hsm_realm_encode(have, a);
    bkv_hsm_realm_encode(pinned, b);
    if (bkv_ct_equal(a, b, sizeof(a)))
        return BKV_OK;
    bkv_hex_encode(have->realm_id, BKV_HSM_REALM_ID_LEN, have_hex);
    bkv_hex_encode(pinned->realm_id, BKV_HSM_REALM_ID_LEN, want_hex);
    if (memcmp(have->realm_id, pinned->realm_id, BKV_HSM_REALM_ID_LEN) != 0)
        return hsm_fail(h, BKV_ERR_INVALID, op, "the token holds realm %s, not the pinned realm %s",
                        have_hex, want_hex);
    return hsm_fail(h, BKV_ERR_INVALID, op,
                    "the token's description of realm %s differs from the pinned one (its "
                    "realm marker was replaced?)",
                    have_hex);
}

int hsm_realm_load(struct bkv_hsm *h, CK_SESSION_HANDLE s, const struct bkv_hsm_realm *expected,
                   const char *op)
{
    struct hsm_realm_objects o;
    struct bkv_hsm_realm r;
    int found, rc;

    h->has_realm = 0;
    rc = hsm_realm_find(h, s, &found, &r, &o, op);
    if (rc != BKV_OK)
        return rc;
    if (!found) {
        if (expected != NULL)
            return hsm_fail(h, BKV_ERR_HSM_NOT_ENROLLED, op, "the realm marker is gone");
        return BKV_OK;
    }
    if (expected != NULL && ((rc = same_description(h, &r, expected, op)) != BKV_OK ||
                             (rc = hsm_realm_check(h, s, &r, o.seal, o.mac, o.hpke, op)) != BKV_OK))
        return rc;
    h->realm = r;
    h->marker = o.marker;
    h->seal_key = o.seal;
    h->mac_key = o.mac;
    h->hpke_key = o.hpke;
    h->has_realm = 1;
    return BKV_OK;
}

int hsm_realm_verify_locked(struct bkv_hsm *h, CK_SESSION_HANDLE s,
                            const struct bkv_hsm_realm *pinned, const char *op)
{
    int rc;

    if (!h->has_realm)
        return hsm_fail(h, BKV_ERR_HSM_NOT_ENROLLED, op, "the token holds no realm yet");
    rc = same_description(h, &h->realm, pinned, op);
    if (rc == BKV_OK)
        rc = hsm_realm_check(h, s, &h->realm, h->seal_key, h->mac_key, h->hpke_key, op);
    return rc;
}

int bkv_hsm_realm_verify(struct bkv_hsm *h, const struct bkv_hsm_realm *pinned)
{
    CK_SESSION_HANDLE s;
    int rc;

    hsm_begin_exclusive(h, &s);
    rc = hsm_realm_verify_locked(h, s, pinned, "verify realm of");
    hsm_end_exclusive(h, s);
    return rc;
}

int hsm_realm_commit(struct bkv_hsm *h, CK_SESSION_HANDLE s, const struct bkv_hsm_realm *realm,
                     const struct hsm_realm_objects *keys, const char *op)
{
    uint8_t value[BKV_HSM_REALM_ENCODED_LEN];
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_LABEL, HSM_LABEL_MARKER, sizeof(HSM_LABEL_MARKER) - 1},
        {CKA_APPLICATION, "bkv", 3},
        {CKA_VALUE, value, sizeof(value)},
        {CKA_DESTROYABLE, &no, sizeof(no)},
        {CKA_MODIFIABLE, &no, sizeof(no)}, /* last, as in hsm_realm_key_template */
    };
    struct hsm_realm_objects o;
    CK_OBJECT_HANDLE obj;
    CK_ULONG count;
    CK_RV rv;
    int rc;

    /* Before the marker exists: the keys must be found exactly as a later open finds them. */
    if ((rc = find_key(h, s, realm, HSM_KEY_SEAL, realm->seal_key_id, &o.seal, op)) != BKV_OK ||
        (rc = find_key(h, s, realm, HSM_KEY_MAC, realm->mac_key_id, &o.mac, op)) != BKV_OK ||
        (rc = find_key(h, s, realm, HSM_KEY_HPKE, realm->hpke_key_id, &o.hpke, op)) != BKV_OK)
        return rc;
    if (o.seal != keys->seal || o.mac != keys->mac || o.hpke != keys->hpke)
        return hsm_fail(h, BKV_ERR_HSM, op, "the new realm keys are not the ones found by label");
    rv = hsm_find_labelled(h, s, CKO_DATA, HSM_LABEL_MARKER, NULL, 0, &obj, &count);
    if (rv != CKR_OK)
        return hsm_fail_ckr(h, op, "C_FindObjects", rv);
    if (count != 0)
        return hsm_fail(h, BKV_ERR_HSM, op, "a realm marker appeared in the token meanwhile");
    bkv_hsm_realm_encode(realm, value);
    hsm_create_lock(h);
    rv = h->f->C_CreateObject(s, t, sizeof(t) / sizeof(t[0]), &obj);
    hsm_create_unlock(h);
    if (rv != CKR_OK)
        return hsm_fail_ckr(h, op, "C_CreateObject(realm marker)", rv);
    /* Committed: the marker cannot be destroyed, so nothing may fail from here on. */
    h->realm = *realm;
    h->marker = obj;
    h->seal_key = keys->seal;
    h->mac_key = keys->mac;
    h->hpke_key = keys->hpke;
    h->has_realm = 1;
    return BKV_OK;
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
    /* CKA_MODIFIABLE stays last. */
    t[n] = t[n - 1];
    t[n - 1] = (CK_ATTRIBUTE){CKA_VALUE_LEN, &st.value_len, sizeof(st.value_len)};
    n++;
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
        {CKA_MODIFIABLE, &no, sizeof(no)},
    };
    struct hsm_tmpl_store st;
    CK_ATTRIBUTE t[20];
    CK_ULONG n = hsm_realm_key_template(HSM_KEY_HPKE, HSM_TMPL_GENERATE_PAIR, id, &st, t, 20);

    if (n > 20)
        return CKR_TEMPLATE_INCOMPLETE;
    return h->f->C_GenerateKeyPair(s, &mech, pt, sizeof(pt) / sizeof(pt[0]), t, n, pub, priv);
}

/* The key check values of r from the new seal and MAC keys. */
static int make_kcvs(struct bkv_hsm *h, CK_SESSION_HANDLE s, struct bkv_hsm_realm *r,
                     CK_OBJECT_HANDLE seal, CK_OBJECT_HANDLE mac, const char *op)
{
    uint8_t aad[HSM_KCV_SEAL_AAD_LEN];
    size_t len = 0;
    int rc;

    rc = hsm_mac_with(h, s, mac, HSM_KCV_MAC_LABEL, NULL, 0, r->mac_kcv, op);
    if (rc != BKV_OK)
        return rc;
    hsm_kcv_seal_aad(r->realm_id, aad);
    rc = hsm_seal_with(h, s, seal, r->seal_key_id, aad, sizeof(aad),
                       (const uint8_t *)HSM_KCV_SEAL_PLAINTEXT, HSM_KCV_SEAL_PT_LEN, r->seal_kcv,
                       sizeof(r->seal_kcv), &len, op);
    if (rc == BKV_OK && len != sizeof(r->seal_kcv))
        rc = hsm_fail(h, BKV_ERR_HSM, op, "the seal check value has %zu bytes", len);
    return rc;
}

int bkv_hsm_realm_create(struct bkv_hsm *h, struct bkv_hsm_realm *out, uint8_t **secrets,
                         size_t *secrets_len)
{
    static const char *op = "create realm on";
    CK_OBJECT_HANDLE made[4] = {CK_INVALID_HANDLE, CK_INVALID_HANDLE, CK_INVALID_HANDLE,
                                CK_INVALID_HANDLE};
    struct hsm_realm_objects keys;
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
    rc = make_kcvs(h, s, &r, made[0], made[1], op);
    if (rc != BKV_OK)
        goto out;
    rc = hsm_opaque_generate(h, s, made[0], r.seal_key_id, r.realm_id, &blob, &blob_len,
                             r.opaque_pk, op);
    if (rc != BKV_OK)
        goto out;
    /* Check the new keys exactly as an open with this description will. */
    rc = hsm_realm_check(h, s, &r, made[0], made[1], made[3], op);
    if (rc != BKV_OK)
        goto out;
    keys.seal = made[0];
    keys.mac = made[1];
    keys.hpke = made[3];
    rc = hsm_realm_commit(h, s, &r, &keys, op);
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
