/*
 * AES-256-GCM sealing inside the HSM.
 *
 * Normal path (seal): take a session, draw the IV with C_GenerateRandom,
 * build the GCM AAD (label || version || key id || caller AAD), C_EncryptInit
 * with a 48-byte CK_GCM_PARAMS (SoftHSM2 wants the ulIvBits layout) and a
 * 128-bit tag, C_Encrypt in one part, write the header in front.
 * Unseal parses the header first (version, length), finds the key by id
 * (the cached realm key, else a search of the token), then C_DecryptInit /
 * C_Decrypt into a buffer large enough for SoftHSM2's size check.
 * Failure modes: see seal.h. SoftHSM2 reports a bad GCM tag as
 * CKR_GENERAL_ERROR (crypto.md §8); after C_Decrypt that code means
 * BKV_ERR_DECRYPT only if the session and the key still answer a probe
 * (hsm_fail_decrypt), else BKV_ERR_HSM; CKR_ENCRYPTED_DATA_INVALID means
 * BKV_ERR_DECRYPT. Plaintext buffers are wiped on failure.
 */
#include "seal.h"

#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "proto/err.h"
#include "proto/util.h"

#define SEAL_LABEL     "BKV-HSM-SEAL"
#define SEAL_LABEL_LEN (sizeof(SEAL_LABEL) - 1)
#define AAD_STACK      256

size_t bkv_hsm_sealed_len(size_t pt_len)
{
    return pt_len + BKV_HSM_SEAL_OVERHEAD;
}

/* The GCM AAD into buf (AAD_STACK bytes) or a fresh allocation (*heap). */
static uint8_t *gcm_aad(const uint8_t *header, const uint8_t *aad, size_t aad_len, uint8_t *buf,
                        uint8_t **heap, size_t *len)
{
    uint8_t *p = buf;

    *len = SEAL_LABEL_LEN + 1 + BKV_HSM_KEY_ID_LEN + aad_len;
    *heap = NULL;
    if (*len > AAD_STACK) {
        p = *heap = malloc(*len);
        if (p == NULL)
            return NULL;
    }
    memcpy(p, SEAL_LABEL, SEAL_LABEL_LEN);
    memcpy(p + SEAL_LABEL_LEN, header, 1 + BKV_HSM_KEY_ID_LEN);
    if (aad_len > 0)
        memcpy(p + SEAL_LABEL_LEN + 1 + BKV_HSM_KEY_ID_LEN, aad, aad_len);
    return p;
}

/* The 48-byte CK_GCM_PARAMS (with ulIvBits) that SoftHSM2 expects. */
static void gcm_params(CK_GCM_PARAMS *gcm, CK_BYTE *iv, CK_BYTE *aad, CK_ULONG aad_len)
{
    memset(gcm, 0, sizeof(*gcm));
    gcm->pIv = iv;
    gcm->ulIvLen = BKV_HSM_SEAL_IV_LEN;
    gcm->ulIvBits = BKV_HSM_SEAL_IV_LEN * 8;
    gcm->pAAD = aad;
    gcm->ulAADLen = aad_len;
    gcm->ulTagBits = BKV_HSM_SEAL_TAG_LEN * 8;
}

/* Version and length of a sealed blob, before any byte of it is used. */
static int check_blob(struct bkv_hsm *h, const uint8_t *in, size_t in_len, size_t aad_len,
                      const char *op)
{
    if (in_len < 1)
        return hsm_fail(h, BKV_ERR_LENGTH, op, "empty sealed blob");
    if (in[0] != BKV_HSM_SEAL_VERSION)
        return hsm_fail(h, BKV_ERR_UNSUPPORTED, op,
                        "sealed blob version %u is not supported (expected %u)", in[0],
                        BKV_HSM_SEAL_VERSION);
    if (in_len < BKV_HSM_SEAL_OVERHEAD)
        return hsm_fail(h, BKV_ERR_LENGTH, op,
                        "sealed blob of %zu bytes is truncated (at least %d)", in_len,
                        BKV_HSM_SEAL_OVERHEAD);
    if (in_len - BKV_HSM_SEAL_OVERHEAD > BKV_HSM_SEAL_MAX_PLAINTEXT ||
        aad_len > BKV_HSM_SEAL_MAX_AAD)
        return hsm_fail(h, BKV_ERR_LENGTH, op, "sealed blob or AAD too long");
    return BKV_OK;
}

int hsm_seal_with(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
                  const uint8_t key_id[static BKV_HSM_KEY_ID_LEN], const uint8_t *aad,
                  size_t aad_len, const uint8_t *pt, size_t pt_len, uint8_t *out, size_t cap,
                  size_t *out_len, const char *op)
{
    uint8_t aad_buf[AAD_STACK], *heap = NULL, *full_aad;
    CK_GCM_PARAMS gcm;
    CK_MECHANISM mech = {CKM_AES_GCM, &gcm, sizeof(gcm)};
    CK_ULONG ct_len;
    size_t full_len;
    CK_RV rv;
    int rc;

    *out_len = 0;
    if (pt_len > BKV_HSM_SEAL_MAX_PLAINTEXT || aad_len > BKV_HSM_SEAL_MAX_AAD)
        return hsm_fail(h, BKV_ERR_LENGTH, op, "plaintext or AAD too long");
    if (cap < bkv_hsm_sealed_len(pt_len))
        return hsm_fail(h, BKV_ERR_LENGTH, op, "output buffer too small");
    out[0] = BKV_HSM_SEAL_VERSION;
    memcpy(out + 1, key_id, BKV_HSM_KEY_ID_LEN);
    rv = hsm_random(h, s, out + 1 + BKV_HSM_KEY_ID_LEN, BKV_HSM_SEAL_IV_LEN);
    if (rv != CKR_OK)
        return hsm_fail_ckr(h, op, "C_GenerateRandom", rv);
    full_aad = gcm_aad(out, aad, aad_len, aad_buf, &heap, &full_len);
    if (full_aad == NULL)
        return hsm_fail(h, BKV_ERR_NOMEM, op, "out of memory");
    gcm_params(&gcm, out + 1 + BKV_HSM_KEY_ID_LEN, full_aad, full_len);
    rv = h->f->C_EncryptInit(s, &mech, key);
    if (rv != CKR_OK) {
        rc = hsm_fail_ckr(h, op, "C_EncryptInit", rv);
        goto out;
    }
    ct_len = cap - BKV_HSM_SEAL_HEADER_LEN;
    rv = h->f->C_Encrypt(s, (CK_BYTE *)pt, pt_len, out + BKV_HSM_SEAL_HEADER_LEN, &ct_len);
    if (rv != CKR_OK || ct_len != pt_len + BKV_HSM_SEAL_TAG_LEN) {
        rc = rv != CKR_OK ? hsm_fail_ckr(h, op, "C_Encrypt", rv)
                          : hsm_fail(h, BKV_ERR_HSM, op, "C_Encrypt returned %lu bytes for %zu",
                                     (unsigned long)ct_len, pt_len);
        bkv_wipe(out, cap);
        goto out;
    }
    *out_len = BKV_HSM_SEAL_HEADER_LEN + ct_len;
    rc = BKV_OK;
out:
    free(heap);
    return rc;
}

int hsm_unseal_with(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
                    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t in_len,
                    uint8_t *out, size_t cap, size_t *out_len, const char *op)
{
    uint8_t aad_buf[AAD_STACK], *heap = NULL, *full_aad, *tmp = NULL, *dst;
    size_t full_len, body_len, pt_len;
    CK_GCM_PARAMS gcm;
    CK_MECHANISM mech = {CKM_AES_GCM, &gcm, sizeof(gcm)};
    CK_ULONG got;
    CK_RV rv;
    int rc;

    *out_len = 0;
    rc = check_blob(h, in, in_len, aad_len, op);
    if (rc != BKV_OK)
        return rc;
    body_len = in_len - BKV_HSM_SEAL_HEADER_LEN;
    pt_len = in_len - BKV_HSM_SEAL_OVERHEAD;
    if (cap < pt_len)
        return hsm_fail(h, BKV_ERR_LENGTH, op, "output buffer too small");
    full_aad = gcm_aad(in, aad, aad_len, aad_buf, &heap, &full_len);
    if (full_aad == NULL)
        return hsm_fail(h, BKV_ERR_NOMEM, op, "out of memory");
    /* SoftHSM2 may insist on room for ciphertext + tag; never hand it less. */
    dst = out;
    if (cap < body_len) {
        dst = tmp = malloc(body_len);
        if (tmp == NULL) {
            rc = hsm_fail(h, BKV_ERR_NOMEM, op, "out of memory");
            goto out;
        }
    }
    gcm_params(&gcm, (CK_BYTE *)in + 1 + BKV_HSM_KEY_ID_LEN, full_aad, full_len);
    rv = h->f->C_DecryptInit(s, &mech, key);
    if (rv != CKR_OK) {
        rc = hsm_fail_ckr(h, op, "C_DecryptInit", rv);
        goto out;
    }
    got = body_len;
    rv = h->f->C_Decrypt(s, (CK_BYTE *)in + BKV_HSM_SEAL_HEADER_LEN, body_len, dst, &got);
    if (rv != CKR_OK) {
        rc = hsm_fail_decrypt(h, s, key, rv, op, "C_Decrypt",
                              "sealed blob does not authenticate (wrong AAD or altered bytes)");
        goto out;
    }
    if (got != pt_len) {
        rc = hsm_fail(h, BKV_ERR_HSM, op, "C_Decrypt returned %lu bytes, expected %zu",
                      (unsigned long)got, pt_len);
        goto out;
    }
    if (tmp != NULL)
        memcpy(out, tmp, pt_len);
    *out_len = pt_len;
    rc = BKV_OK;
out:
    if (rc != BKV_OK)
        bkv_wipe(dst, dst == out ? cap : body_len);
    if (tmp != NULL) {
        bkv_wipe(tmp, body_len);
        free(tmp);
    }
    free(heap);
    return rc;
}

int bkv_hsm_seal(struct bkv_hsm *h, const uint8_t *aad, size_t aad_len, const uint8_t *pt,
                 size_t pt_len, uint8_t *out, size_t cap, size_t *out_len)
{
    CK_SESSION_HANDLE s;
    int rc;

    *out_len = 0;
    hsm_begin(h, &s);
    if (!h->has_realm)
        rc = hsm_fail(h, BKV_ERR_HSM_NOT_ENROLLED, "seal with", "the token holds no realm yet");
    else
        rc = hsm_seal_with(h, s, h->seal_key, h->realm.seal_key_id, aad, aad_len, pt, pt_len, out,
                           cap, out_len, "seal with");
    hsm_end(h, s);
    return rc;
}

/* The seal key named by id: the realm's, or another one the token holds. */
int hsm_seal_key_by_id(struct bkv_hsm *h, CK_SESSION_HANDLE s, const uint8_t *id,
                       CK_OBJECT_HANDLE *key, const char *op)
{
    char want[2 * BKV_HSM_KEY_ID_LEN + 1], have[2 * BKV_HSM_KEY_ID_LEN + 1];
    char realm[2 * BKV_HSM_REALM_ID_LEN + 1];
    CK_ULONG count;
    CK_RV rv;

    if (memcmp(id, h->realm.seal_key_id, BKV_HSM_KEY_ID_LEN) == 0) {
        *key = h->seal_key;
        return BKV_OK;
    }
    rv = hsm_find_labelled(h, s, CKO_SECRET_KEY, HSM_LABEL_SEAL, id, BKV_HSM_KEY_ID_LEN, key,
                           &count);
    if (rv != CKR_OK)
        return hsm_fail_ckr(h, op, "C_FindObjects", rv);
    if (count == 1)
        return BKV_OK;
    bkv_hex_encode(id, BKV_HSM_KEY_ID_LEN, want);
    bkv_hex_encode(h->realm.seal_key_id, BKV_HSM_KEY_ID_LEN, have);
    bkv_hex_encode(h->realm.realm_id, BKV_HSM_REALM_ID_LEN, realm);
    return hsm_fail(h, BKV_ERR_HSM_NO_KEY, op,
                    "no seal key with id %s: the blob was sealed by another realm or a retired "
                    "key (this token holds realm %s, seal key %s)",
                    want, realm, have);
}

int bkv_hsm_unseal(struct bkv_hsm *h, const uint8_t *aad, size_t aad_len, const uint8_t *in,
                   size_t in_len, uint8_t *out, size_t cap, size_t *out_len)
{
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE key;
    int rc;

    *out_len = 0;
    rc = check_blob(h, in, in_len, aad_len, "unseal with");
    if (rc != BKV_OK)
        return rc;
    hsm_begin(h, &s);
    if (!h->has_realm) {
        rc = hsm_fail(h, BKV_ERR_HSM_NOT_ENROLLED, "unseal with", "the token holds no realm yet");
        goto out;
    }
    rc = hsm_seal_key_by_id(h, s, in + 1, &key, "unseal with");
    if (rc != BKV_OK)
        goto out;
    rc = hsm_unseal_with(h, s, key, aad, aad_len, in, in_len, out, cap, out_len, "unseal with");
out:
    hsm_end(h, s);
    return rc;
}
