/*
 * SHA-256 / HMAC / HKDF on OpenSSL 3.0's EVP digest interface, with SHA-256
 * fetched once. HMAC (RFC 2104) and HKDF are written directly on the digest:
 * OpenSSL's EVP_MAC and EVP_KDF "HKDF" cost a provider fetch and a parameter
 * parse per call (and HKDF takes a single contiguous info of at most 32 KiB),
 * while OPAQUE and HPKE MAC and Expand short, multi-part inputs many times per
 * request.
 *
 * Failure modes: any OpenSSL failure becomes BKV_ERR_CRYPTO (a failed
 * allocation of a digest context BKV_ERR_NOMEM); the padded HMAC key and the
 * inner hash are wiped on every path.
 */
#include "kdf.h"

#include <string.h>

#include <openssl/evp.h>

#include "err.h"
#include "util.h"

/*
 * SHA-256 fetched once from the default provider. EVP_sha256() would be
 * fetched again by every EVP_DigestInit_ex; a fetched EVP_MD is reference
 * counted, immutable and safe to share between threads. It is never freed.
 */
static const EVP_MD *sha256_md(void)
{
    static EVP_MD *md;
    EVP_MD *m = __atomic_load_n(&md, __ATOMIC_ACQUIRE);

    if (m == NULL) {
        EVP_MD *fresh = EVP_MD_fetch(NULL, "SHA256", NULL);
        EVP_MD *expected = NULL;
        if (fresh == NULL)
            return NULL;
        if (__atomic_compare_exchange_n(&md, &expected, fresh, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            m = fresh;
        else {
            EVP_MD_free(fresh);
            m = expected;
        }
    }
    return m;
}

/* out = SHA-256(prefix || parts[0] || ...) on ctx; prefix may be NULL with length 0. */
static int digest(EVP_MD_CTX *ctx, const uint8_t *prefix, size_t prefix_len,
                  const struct bkv_buf *parts, size_t count, uint8_t out[static BKV_HASH_LEN])
{
    const EVP_MD *md = sha256_md();
    unsigned int len = 0;

    if (md == NULL || EVP_DigestInit_ex(ctx, md, NULL) != 1)
        return BKV_ERR_CRYPTO;
    if (prefix_len > 0 && EVP_DigestUpdate(ctx, prefix, prefix_len) != 1)
        return BKV_ERR_CRYPTO;
    for (size_t i = 0; i < count; i++)
        if (parts[i].n > 0 && EVP_DigestUpdate(ctx, parts[i].p, parts[i].n) != 1)
            return BKV_ERR_CRYPTO;
    if (EVP_DigestFinal_ex(ctx, out, &len) != 1 || len != BKV_HASH_LEN)
        return BKV_ERR_CRYPTO;
    return BKV_OK;
}

int bkv_sha256(const struct bkv_buf *parts, size_t count, uint8_t out[static BKV_HASH_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc;

    if (ctx == NULL)
        return BKV_ERR_NOMEM;
    rc = digest(ctx, NULL, 0, parts, count, out);
    EVP_MD_CTX_free(ctx);
    return rc;
}

#define HMAC_BLOCK 64 /* SHA-256's block size */

/*
 * RFC 2104 on one EVP_MD_CTX: H((K0 ^ opad) || H((K0 ^ ipad) || text)),
 * where K0 is the key, or SHA-256(key) for a key longer than a block, padded
 * with zeros to a block. Cheaper than an EVP_MAC_CTX per call, which costs a
 * provider fetch and a parameter parse on every init.
 */
int bkv_hmac_sha256(const uint8_t *key, size_t key_len, const struct bkv_buf *parts, size_t count,
                    uint8_t out[static BKV_HASH_LEN])
{
    uint8_t k0[HMAC_BLOCK], pad[HMAC_BLOCK], inner[BKV_HASH_LEN];
    EVP_MD_CTX *ctx = NULL;
    int rc = BKV_OK;

    memset(k0, 0, sizeof(k0));
    if (key_len > HMAC_BLOCK)
        rc = bkv_sha256(&(struct bkv_buf){key, key_len}, 1, k0);
    else if (key_len > 0)
        memcpy(k0, key, key_len);
    if (rc != BKV_OK)
        goto out;
    rc = BKV_ERR_NOMEM;
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        goto out;
    for (size_t i = 0; i < HMAC_BLOCK; i++)
        pad[i] = k0[i] ^ 0x36;
    rc = digest(ctx, pad, sizeof(pad), parts, count, inner);
    if (rc != BKV_OK)
        goto out;
    for (size_t i = 0; i < HMAC_BLOCK; i++)
        pad[i] = k0[i] ^ 0x5c;
    rc = digest(ctx, pad, sizeof(pad), &(struct bkv_buf){inner, sizeof(inner)}, 1, out);
out:
    EVP_MD_CTX_free(ctx); /* the provider cleanses the hash state */
    bkv_wipe(k0, sizeof(k0));
    bkv_wipe(pad, sizeof(pad));
    bkv_wipe(inner, sizeof(inner));
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
