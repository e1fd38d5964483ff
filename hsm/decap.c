/*
 * HPKE decapsulation inside the HSM.
 *
 * Normal path: validate enc (length, 04 prefix, on the curve, not the
 * identity) in software, C_DeriveKey(CKM_ECDH1_DERIVE, CKD_NULL, public data
 * = the 65-byte enc) with the private key into a session CKK_GENERIC_SECRET
 * of 32 bytes that is neither sensitive nor token, read its CKA_VALUE,
 * destroy it.
 * Failure modes: invalid enc gives BKV_ERR_LENGTH / BKV_ERR_POINT before the
 * HSM sees it; a PKCS#11 failure maps through ckr.c; a value of another
 * length is BKV_ERR_HSM. The derived object is destroyed and dh wiped on
 * every failure path. hsm_hpke_check proves that a key object belongs to a
 * public key by a fresh encapsulation and the HSM's decapsulation.
 */
#include "decap.h"

#include <string.h>

#include "internal.h"
#include "proto/err.h"
#include "proto/util.h"

int hsm_ecdh_x(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, const uint8_t *enc,
               size_t enc_len, uint8_t dh[static BKV_HPKE_DH_LEN], const char *op)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_GENERIC_SECRET;
    CK_ULONG len = BKV_HPKE_DH_LEN;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)},     {CKA_KEY_TYPE, &type, sizeof(type)},
        {CKA_VALUE_LEN, &len, sizeof(len)}, {CKA_TOKEN, &no, sizeof(no)},
        {CKA_SENSITIVE, &no, sizeof(no)},   {CKA_EXTRACTABLE, &yes, sizeof(yes)},
    };
    CK_ECDH1_DERIVE_PARAMS params;
    CK_MECHANISM mech = {CKM_ECDH1_DERIVE, &params, sizeof(params)};
    CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
    CK_ATTRIBUTE value = {CKA_VALUE, dh, BKV_HPKE_DH_LEN};
    CK_RV rv;
    int rc;

    rc = bkv_hpke_enc_check(BKV_HPKE_KEM_P256_SHA256, enc, enc_len);
    if (rc != BKV_OK)
        return hsm_fail(h, rc, op, "invalid HPKE enc (%s)", bkv_strerror(rc));
    memset(&params, 0, sizeof(params));
    params.kdf = CKD_NULL;
    params.pPublicData = (CK_BYTE *)enc;
    params.ulPublicDataLen = enc_len;
    rv = h->f->C_DeriveKey(s, &mech, key, tmpl, sizeof(tmpl) / sizeof(tmpl[0]), &obj);
    if (rv != CKR_OK)
        return hsm_fail_ckr(h, op, "C_DeriveKey(CKM_ECDH1_DERIVE)", rv);
    rv = h->f->C_GetAttributeValue(s, obj, &value, 1);
    if (rv != CKR_OK)
        rc = hsm_fail_ckr(h, op, "C_GetAttributeValue(CKA_VALUE)", rv);
    else if (value.ulValueLen != BKV_HPKE_DH_LEN)
        rc = hsm_fail(h, BKV_ERR_HSM, op, "ECDH gave %lu bytes", (unsigned long)value.ulValueLen);
    rv = h->f->C_DestroyObject(s, obj);
    if (rc == BKV_OK && rv != CKR_OK)
        rc = hsm_fail_ckr(h, op, "C_DestroyObject", rv);
    if (rc != BKV_OK)
        bkv_wipe(dh, BKV_HPKE_DH_LEN);
    return rc;
}

int hsm_hpke_check(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
                   const uint8_t pk[static BKV_HPKE_P256_PK_LEN], const char *what, const char *op)
{
    uint8_t ss[BKV_HPKE_SECRET_LEN], ss2[BKV_HPKE_SECRET_LEN], dh[BKV_HPKE_DH_LEN];
    uint8_t enc[BKV_HPKE_MAX_ENC_LEN];
    size_t enc_len = 0;
    int rc;

    rc = bkv_hpke_kem_encap(BKV_HPKE_KEM_P256_SHA256, pk, BKV_HPKE_P256_PK_LEN, NULL, ss, enc,
                            &enc_len);
    if (rc != BKV_OK) {
        rc = hsm_fail(h, rc, op, "HPKE encapsulation to the realm key: %s", bkv_strerror(rc));
        goto out;
    }
    rc = hsm_ecdh_x(h, s, key, enc, enc_len, dh, op);
    if (rc != BKV_OK)
        goto out;
    rc = bkv_hpke_kem_decap_dh(BKV_HPKE_KEM_P256_SHA256, enc, enc_len, pk, BKV_HPKE_P256_PK_LEN, dh,
                               ss2);
    if (rc != BKV_OK || !bkv_ct_equal(ss, ss2, sizeof(ss)))
        rc = hsm_fail(h, BKV_ERR_MAC, op, "%s", what);
out:
    bkv_wipe(ss, sizeof(ss));
    bkv_wipe(ss2, sizeof(ss2));
    bkv_wipe(dh, sizeof(dh));
    return rc;
}

int bkv_hsm_hpke_dh(struct bkv_hsm *h, const uint8_t *enc, size_t enc_len,
                    uint8_t dh[static BKV_HPKE_DH_LEN])
{
    CK_SESSION_HANDLE s;
    int rc;

    hsm_begin(h, &s);
    if (!h->has_realm)
        rc = hsm_fail(h, BKV_ERR_HSM_NOT_ENROLLED, "decapsulate with",
                      "the token holds no realm yet");
    else
        rc = hsm_ecdh_x(h, s, h->hpke_key, enc, enc_len, dh, "decapsulate with");
    hsm_end(h, s);
    return rc;
}

int bkv_hsm_ohttp_dh(void *arg, const uint8_t *enc, size_t enc_len, uint8_t dh[BKV_HPKE_DH_LEN])
{
    return bkv_hsm_hpke_dh(arg, enc, enc_len, dh);
}

int bkv_hsm_hpke_setup_base_r(struct bkv_hsm *h, struct bkv_hpke_suite suite, const uint8_t *enc,
                              size_t enc_len, const uint8_t *info, size_t info_len,
                              struct bkv_hpke_ctx *ctx)
{
    uint8_t dh[BKV_HPKE_DH_LEN], pk[BKV_HPKE_P256_PK_LEN];
    int rc;

    bkv_hpke_ctx_wipe(ctx);
    if (suite.kem != BKV_HPKE_KEM_P256_SHA256)
        return hsm_fail(h, BKV_ERR_UNSUPPORTED, "decapsulate with",
                        "the realm key is P-256, not KEM 0x%04x", suite.kem);
    rc = bkv_hsm_hpke_dh(h, enc, enc_len, dh);
    if (rc != BKV_OK)
        return rc;
    pthread_rwlock_rdlock(&h->role);
    memcpy(pk, h->realm.hpke_pk, sizeof(pk));
    pthread_rwlock_unlock(&h->role);
    rc = bkv_hpke_setup_base_r_dh(suite, enc, enc_len, pk, sizeof(pk), dh, info, info_len, ctx);
    bkv_wipe(dh, sizeof(dh));
    if (rc != BKV_OK)
        return hsm_fail(h, rc, "decapsulate with", "HPKE key schedule: %s", bkv_strerror(rc));
    return BKV_OK;
}
