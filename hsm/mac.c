/*
 * HMAC-SHA256 with a key that stays in the HSM.
 *
 * Normal path: C_SignInit(CKM_SHA256_HMAC) with the key object, then
 * C_SignUpdate for the domain label and for the data, and C_SignFinal.
 * Failure modes: a PKCS#11 failure maps through ckr.c (BKV_ERR_HSM in
 * practice); a signature of another length is BKV_ERR_HSM. A failed update
 * ends the operation by a final call so the pooled session is clean again.
 */
#include "mac.h"

#include <string.h>

#include "internal.h"
#include "proto/err.h"
#include "proto/util.h"

#define ACCOUNT_LABEL "BKV-ACCOUNT-ID-v1"

int hsm_mac_with(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, const char *label,
                 const uint8_t *data, size_t len, uint8_t out[static 32], const char *op)
{
    CK_MECHANISM mech = {CKM_SHA256_HMAC, NULL, 0};
    uint8_t scratch[64];
    CK_ULONG out_len = 32, scratch_len = sizeof(scratch);
    CK_RV rv;

    rv = h->f->C_SignInit(s, &mech, key);
    if (rv != CKR_OK)
        return hsm_fail_ckr(h, op, "C_SignInit", rv);
    rv = h->f->C_SignUpdate(s, (CK_BYTE *)label, strlen(label));
    if (rv == CKR_OK && len > 0)
        rv = h->f->C_SignUpdate(s, (CK_BYTE *)data, len);
    if (rv != CKR_OK) {
        /* An update error ends the operation in PKCS#11; make sure of it. */
        h->f->C_SignFinal(s, scratch, &scratch_len);
        return hsm_fail_ckr(h, op, "C_SignUpdate", rv);
    }
    rv = h->f->C_SignFinal(s, out, &out_len);
    if (rv != CKR_OK)
        return hsm_fail_ckr(h, op, "C_SignFinal", rv);
    if (out_len != 32) {
        bkv_wipe(out, 32);
        return hsm_fail(h, BKV_ERR_HSM, op, "HMAC of %lu bytes", (unsigned long)out_len);
    }
    return BKV_OK;
}

int bkv_hsm_account_mac(struct bkv_hsm *h, const uint8_t *account, size_t account_len,
                        uint8_t out[static BKV_HSM_MAC_LEN])
{
    CK_SESSION_HANDLE s;
    int rc;

    if (account_len > BKV_HSM_MAC_MAX_ACCOUNT)
        return hsm_fail(h, BKV_ERR_LENGTH, "compute account MAC with", "account id too long");
    hsm_begin(h, &s);
    if (!h->has_realm)
        rc = hsm_fail(h, BKV_ERR_HSM_NOT_ENROLLED, "compute account MAC with",
                      "the token holds no realm yet");
    else
        rc = hsm_mac_with(h, s, h->mac_key, ACCOUNT_LABEL, account, account_len, out,
                          "compute account MAC with");
    hsm_end(h, s);
    return rc;
}
