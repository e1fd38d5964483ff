/*
 * SHA-256 / HMAC / HKDF on OpenSSL 3.0's EVP interfaces. HKDF is written
 * directly on HMAC: OpenSSL's EVP_KDF "HKDF" takes a single contiguous info
 * (at most 32 KiB) and costs a provider fetch per call, while OPAQUE and HPKE
 * call Expand with short, multi-part labels many times per request.
 *
 * Failure modes: any OpenSSL failure becomes BKV_ERR_CRYPTO; intermediate
 * HMAC state is wiped on every path.
 */
#include "kdf.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/core_names.h>

#include "err.h"
#include "util.h"

int bkv_sha256(const struct bkv_buf *parts, size_t count, uint8_t out[static BKV_HASH_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int len = 0;
    int rc = BKV_ERR_CRYPTO;

    if (ctx == NULL)
        return BKV_ERR_NOMEM;
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        goto out;
    for (size_t i = 0; i < count; i++)
        if (parts[i].n > 0 && EVP_DigestUpdate(ctx, parts[i].p, parts[i].n) != 1)
            goto out;
    if (EVP_DigestFinal_ex(ctx, out, &len) != 1 || len != BKV_HASH_LEN)
        goto out;
    rc = BKV_OK;
out:
    EVP_MD_CTX_free(ctx);
    return rc;
}

static EVP_MAC *hmac_alg(void)
{
    /* Fetched once; EVP_MAC objects are reference counted and thread-safe. */
    static EVP_MAC *mac;
    EVP_MAC *m = __atomic_load_n(&mac, __ATOMIC_ACQUIRE);

    if (m == NULL) {
        EVP_MAC *fresh = EVP_MAC_fetch(NULL, "HMAC", NULL);
        EVP_MAC *expected = NULL;
        if (fresh == NULL)
            return NULL;
        if (__atomic_compare_exchange_n(&mac, &expected, fresh, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            m = fresh;
        else {
            EVP_MAC_free(fresh);
            m = expected;
        }
    }
    return m;
}

int bkv_hmac_sha256(const uint8_t *key, size_t key_len, const struct bkv_buf *parts, size_t count,
                    uint8_t out[static BKV_HASH_LEN])
{
    static const uint8_t empty_key[1];
    EVP_MAC *alg = hmac_alg();
    EVP_MAC_CTX *ctx;
    OSSL_PARAM params[2];
    size_t len = 0;
    int rc = BKV_ERR_CRYPTO;

    if (alg == NULL)
        return BKV_ERR_CRYPTO;
    ctx = EVP_MAC_CTX_new(alg);
    if (ctx == NULL)
        return BKV_ERR_NOMEM;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    /* OpenSSL rejects a NULL key; HMAC with an empty key is well defined. */
    if (EVP_MAC_init(ctx, key_len > 0 ? key : empty_key, key_len, params) != 1)
        goto out;
    for (size_t i = 0; i < count; i++)
        if (parts[i].n > 0 && EVP_MAC_update(ctx, parts[i].p, parts[i].n) != 1)
            goto out;
    if (EVP_MAC_final(ctx, out, &len, BKV_HASH_LEN) != 1 || len != BKV_HASH_LEN)
        goto out;
    rc = BKV_OK;
out:
    EVP_MAC_CTX_free(ctx); /* cleanses the key schedule */
    return rc;
}

int bkv_hkdf_extract(const uint8_t *salt, size_t salt_len, const struct bkv_buf *ikm, size_t count,
                     uint8_t prk[static BKV_HASH_LEN])
{
    static const uint8_t zeros[BKV_HASH_LEN];

    if (salt_len == 0) {
        salt = zeros;
        salt_len = sizeof(zeros);
    }
    return bkv_hmac_sha256(salt, salt_len, ikm, count, prk);
}

#define MAX_INFO_PARTS 14

int bkv_hkdf_expand(const uint8_t *prk, size_t prk_len, const struct bkv_buf *info, size_t count,
                    uint8_t *out, size_t out_len)
{
    uint8_t t[BKV_HASH_LEN];
    uint8_t ctr = 0;
    struct bkv_buf parts[MAX_INFO_PARTS + 2];
    size_t done = 0;
    int rc = BKV_OK;

    if (out_len > 255 * BKV_HASH_LEN || count > MAX_INFO_PARTS || prk_len < BKV_HASH_LEN)
        return BKV_ERR_INVALID;
    while (done < out_len) {
        size_t k = 0, take;
        if (ctr > 0)
            parts[k++] = (struct bkv_buf){t, sizeof(t)};
        for (size_t i = 0; i < count; i++)
            parts[k++] = info[i];
        ctr++;
        parts[k++] = (struct bkv_buf){&ctr, 1};
        rc = bkv_hmac_sha256(prk, prk_len, parts, k, t);
        if (rc != BKV_OK)
            break;
        take = out_len - done < sizeof(t) ? out_len - done : sizeof(t);
        memcpy(out + done, t, take);
        done += take;
    }
    bkv_wipe(t, sizeof(t));
    if (rc != BKV_OK)
        bkv_wipe(out, out_len);
    return rc;
}
