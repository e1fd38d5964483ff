/*
 * TEST ONLY helpers (see testonly.h): import a known P-256 private key and
 * run the HSM's ECDH decapsulation step with it.
 *
 * Normal path: C_CreateObject(CKO_PRIVATE_KEY, CKK_EC, P-256 OID, CKA_VALUE)
 * as a session object; hsm_ecdh_x exactly as bkv_hsm_hpke_dh uses it.
 * Failure modes: PKCS#11 failures map through ckr.c.
 */
#include "testonly.h"

#include "hsm/internal.h"
#include "proto/err.h"

int bkv_hsm_testonly_import_p256_key(struct bkv_hsm *h, const uint8_t sk[static 32],
                                     unsigned long *key)
{
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_KEY_TYPE ec = CKK_EC;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &ec, sizeof(ec)},
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_SENSITIVE, &yes, sizeof(yes)},
        {CKA_DERIVE, &yes, sizeof(yes)},
        {CKA_EC_PARAMS, (void *)hsm_p256_oid, sizeof(hsm_p256_oid)},
        {CKA_VALUE, (void *)sk, 32},
    };
    CK_OBJECT_HANDLE obj;
    CK_SESSION_HANDLE s;
    CK_RV rv;

    hsm_begin(h, &s);
    rv = h->f->C_CreateObject(s, t, sizeof(t) / sizeof(t[0]), &obj);
    hsm_end(h, s);
    if (rv != CKR_OK)
        return hsm_fail_ckr(h, "import test key into", "C_CreateObject", rv);
    *key = obj;
    return BKV_OK;
}

int bkv_hsm_testonly_dh(struct bkv_hsm *h, unsigned long key, const uint8_t *enc, size_t enc_len,
                        uint8_t dh[static BKV_HPKE_DH_LEN])
{
    CK_SESSION_HANDLE s;
    int rc;

    hsm_begin(h, &s);
    rc = hsm_ecdh_x(h, s, key, enc, enc_len, dh, "decapsulate with test key on");
    hsm_end(h, s);
    return rc;
}

void bkv_hsm_testonly_destroy_key(struct bkv_hsm *h, unsigned long key)
{
    CK_SESSION_HANDLE s;

    hsm_begin(h, &s);
    h->f->C_DestroyObject(s, key);
    hsm_end(h, s);
}
