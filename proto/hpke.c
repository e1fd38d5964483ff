/*
 * RFC 9180 HPKE base mode, built by hand on OpenSSL 3.0 (OSSL_HPKE_* arrived
 * only in 3.2).
 *
 * Normal path: Encap/Decap (DHKEM over P-256 with group.c's scalar
 * multiplication and ECDH, or X25519 with EVP_PKEY), the labeled HKDF key schedule on kdf.h's
 * multi-part HKDF, then AES-GCM through EVP with nonce = base_nonce XOR seq. Failure modes: unknown
 * ids give BKV_ERR_UNSUPPORTED; a malformed or invalid public key or enc BKV_ERR_LENGTH /
 * BKV_ERR_POINT; a bad tag BKV_ERR_DECRYPT; the sequence-number limit BKV_ERR_LIMIT; unexpected
 * OpenSSL failures BKV_ERR_CRYPTO, with the OpenSSL error queue cleared. Secrets are wiped on every
 * path and a context whose setup failed is wiped.
 */
#include "hpke.h"

#include <limits.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "err.h"
#include "group.h"
#include "kdf.h"
#include "util.h"

#define KEM_SUITE_ID_LEN  5  /* "KEM" || I2OSP(kem, 2) */
#define HPKE_SUITE_ID_LEN 10 /* "HPKE" || kem || kdf || aead */
#define MAX_INPUT_PARTS   4  /* pieces of a labeled ikm or info */

static const uint8_t hpke_v1[] = {'H', 'P', 'K', 'E', '-', 'v', '1'};

static void kem_suite_id(uint16_t kem, uint8_t out[static KEM_SUITE_ID_LEN])
{
    memcpy(out, "KEM", 3);
    bkv_put_u16(out + 3, kem);
}

static void hpke_suite_id(struct bkv_hpke_suite s, uint8_t out[static HPKE_SUITE_ID_LEN])
{
    memcpy(out, "HPKE", 4);
    bkv_put_u16(out + 4, s.kem);
    bkv_put_u16(out + 6, s.kdf);
    bkv_put_u16(out + 8, s.aead);
}

/* LabeledExtract(salt, label, ikm) = Extract(salt, "HPKE-v1" || sid || label || ikm). */
static int labeled_extract(const uint8_t *sid, size_t sid_len, const uint8_t *salt, size_t salt_len,
                           const char *label, const struct bkv_buf *ikm, size_t count,
                           uint8_t prk[static BKV_HASH_LEN])
{
    struct bkv_buf parts[3 + MAX_INPUT_PARTS];

    if (count > MAX_INPUT_PARTS)
        return BKV_ERR_INVALID;
    parts[0] = (struct bkv_buf){hpke_v1, sizeof(hpke_v1)};
    parts[1] = (struct bkv_buf){sid, sid_len};
    parts[2] = (struct bkv_buf){(const uint8_t *)label, strlen(label)};
    for (size_t i = 0; i < count; i++)
        parts[3 + i] = ikm[i];
    return bkv_hkdf_extract(salt, salt_len, parts, 3 + count, prk);
}

/* LabeledExpand(prk, label, info, L) = Expand(prk, I2OSP(L,2) || "HPKE-v1" || sid || label || info,
 * L). */
static int labeled_expand(const uint8_t prk[static BKV_HASH_LEN], const uint8_t *sid,
                          size_t sid_len, const char *label, const struct bkv_buf *info,
                          size_t count, uint8_t *out, size_t len)
{
    uint8_t l2[2];
    struct bkv_buf parts[4 + MAX_INPUT_PARTS];

    if (count > MAX_INPUT_PARTS || len > BKV_HPKE_MAX_EXPORT_LEN)
        return BKV_ERR_INVALID;
    bkv_put_u16(l2, (uint16_t)len);
    parts[0] = (struct bkv_buf){l2, sizeof(l2)};
    parts[1] = (struct bkv_buf){hpke_v1, sizeof(hpke_v1)};
    parts[2] = (struct bkv_buf){sid, sid_len};
    parts[3] = (struct bkv_buf){(const uint8_t *)label, strlen(label)};
    for (size_t i = 0; i < count; i++)
        parts[4 + i] = info[i];
    return bkv_hkdf_expand(prk, BKV_HASH_LEN, parts, 4 + count, out, len);
}

/* 1 if all n bytes are zero; time depends only on n. */
static int all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;

    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

size_t bkv_hpke_kem_enc_len(uint16_t kem)
{
    switch (kem) {
    case BKV_HPKE_KEM_P256_SHA256:
        return BKV_HPKE_P256_PK_LEN;
    case BKV_HPKE_KEM_X25519_SHA256:
        return BKV_HPKE_X25519_PK_LEN;
    default:
        return 0;
    }
}

size_t bkv_hpke_aead_key_len(uint16_t aead)
{
    switch (aead) {
    case BKV_HPKE_AEAD_AES_128_GCM:
        return 16;
    case BKV_HPKE_AEAD_AES_256_GCM:
        return 32;
    default:
        return 0;
    }
}

static const EVP_CIPHER *aead_cipher(uint16_t aead)
{
    switch (aead) {
    case BKV_HPKE_AEAD_AES_128_GCM:
        return EVP_aes_128_gcm();
    case BKV_HPKE_AEAD_AES_256_GCM:
        return EVP_aes_256_gcm();
    default:
        return NULL;
    }
}

int bkv_hpke_suite_check(struct bkv_hpke_suite suite)
{
    if (bkv_hpke_kem_enc_len(suite.kem) == 0 || suite.kdf != BKV_HPKE_KDF_HKDF_SHA256 ||
        bkv_hpke_aead_key_len(suite.aead) == 0)
        return BKV_ERR_UNSUPPORTED;
    return BKV_OK;
}

/* ---- X25519 ---- */

static int x25519_public(const uint8_t sk[static BKV_HPKE_SK_LEN],
                         uint8_t pk[static BKV_HPKE_X25519_PK_LEN])
{
    EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, sk, BKV_HPKE_SK_LEN);
    size_t len = BKV_HPKE_X25519_PK_LEN;
    int rc = BKV_ERR_CRYPTO;

    if (key != NULL && EVP_PKEY_get_raw_public_key(key, pk, &len) == 1 &&
        len == BKV_HPKE_X25519_PK_LEN)
        rc = BKV_OK;
    ERR_clear_error();
    EVP_PKEY_free(key); /* cleanses the private key */
    return rc;
}

static int x25519_dh(const uint8_t sk[static BKV_HPKE_SK_LEN], const uint8_t *peer, size_t peer_len,
                     uint8_t dh[static BKV_HPKE_DH_LEN])
{
    EVP_PKEY *key = NULL, *pub = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    size_t len = BKV_HPKE_DH_LEN;
    int rc = BKV_ERR_LENGTH;

    if (peer_len != BKV_HPKE_X25519_PK_LEN)
        goto out;
    rc = BKV_ERR_CRYPTO;
    key = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, sk, BKV_HPKE_SK_LEN);
    pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, peer_len);
    if (key == NULL || pub == NULL)
        goto out;
    pctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    if (pctx == NULL || EVP_PKEY_derive_init(pctx) != 1)
        goto out;
    /* OpenSSL refuses an all-zero output (a small-order peer): a bad point. */
    rc = BKV_ERR_POINT;
    if (EVP_PKEY_derive_set_peer(pctx, pub) != 1 || EVP_PKEY_derive(pctx, dh, &len) != 1 ||
        len != BKV_HPKE_DH_LEN || all_zero(dh, BKV_HPKE_DH_LEN))
        goto out;
    rc = BKV_OK;
out:
    if (rc != BKV_OK)
        bkv_wipe(dh, BKV_HPKE_DH_LEN);
    ERR_clear_error();
    EVP_PKEY_CTX_free(pctx);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(key);
    return rc;
}

/* ---- DHKEM ---- */

static int kem_public(uint16_t kem, const uint8_t sk[static BKV_HPKE_SK_LEN],
                      uint8_t pk[static BKV_HPKE_MAX_PK_LEN], size_t *pk_len)
{
    int rc;

    switch (kem) {
    case BKV_HPKE_KEM_P256_SHA256:
        rc = bkv_p256_mul_base_uncompressed(sk, pk);
        break;
    case BKV_HPKE_KEM_X25519_SHA256:
        rc = x25519_public(sk, pk);
        break;
    default:
        return BKV_ERR_UNSUPPORTED;
    }
    if (rc == BKV_OK)
        *pk_len = bkv_hpke_kem_enc_len(kem);
    return rc;
}

static int kem_dh(uint16_t kem, const uint8_t sk[static BKV_HPKE_SK_LEN], const uint8_t *peer,
                  size_t peer_len, uint8_t dh[static BKV_HPKE_DH_LEN])
{
    switch (kem) {
    case BKV_HPKE_KEM_P256_SHA256:
        return bkv_p256_ecdh(sk, peer, peer_len, dh); /* validates peer */
    case BKV_HPKE_KEM_X25519_SHA256:
        return x25519_dh(sk, peer, peer_len, dh);
    default:
        return BKV_ERR_UNSUPPORTED;
    }
}

static int kem_random_sk(uint16_t kem, uint8_t sk[static BKV_HPKE_SK_LEN])
{
    if (kem == BKV_HPKE_KEM_P256_SHA256)
        return bkv_p256_random_scalar(sk);
    /* Any 32 bytes are an X25519 private key; X25519 clamps them. */
    return RAND_priv_bytes(sk, BKV_HPKE_SK_LEN) == 1 ? BKV_OK : BKV_ERR_CRYPTO;
}

/* shared_secret = ExtractAndExpand(dh, enc || pkR). */
static int extract_and_expand(uint16_t kem, const uint8_t dh[static BKV_HPKE_DH_LEN],
                              const uint8_t *enc, size_t enc_len, const uint8_t *pkR,
                              size_t pkR_len, uint8_t shared_secret[static BKV_HPKE_SECRET_LEN])
{
    uint8_t sid[KEM_SUITE_ID_LEN];
    uint8_t prk[BKV_HASH_LEN];
    struct bkv_buf ikm = {dh, BKV_HPKE_DH_LEN};
    struct bkv_buf kem_context[2] = {{enc, enc_len}, {pkR, pkR_len}};
    int rc;

    kem_suite_id(kem, sid);
    rc = labeled_extract(sid, sizeof(sid), NULL, 0, "eae_prk", &ikm, 1, prk);
    if (rc == BKV_OK)
        rc = labeled_expand(prk, sid, sizeof(sid), "shared_secret", kem_context, 2, shared_secret,
                            BKV_HPKE_SECRET_LEN);
    bkv_wipe(prk, sizeof(prk));
    return rc;
}

int bkv_hpke_derive_key_pair(uint16_t kem, const uint8_t *ikm, size_t ikm_len,
                             uint8_t sk[static BKV_HPKE_SK_LEN],
                             uint8_t pk[static BKV_HPKE_MAX_PK_LEN], size_t *pk_len)
{
    uint8_t sid[KEM_SUITE_ID_LEN];
    uint8_t prk[BKV_HASH_LEN];
    struct bkv_buf in = {ikm, ikm_len};
    int rc;

    if (bkv_hpke_kem_enc_len(kem) == 0)
        return BKV_ERR_UNSUPPORTED;
    if (ikm == NULL || ikm_len < BKV_HPKE_SK_LEN)
        return BKV_ERR_LENGTH;
    kem_suite_id(kem, sid);
    rc = labeled_extract(sid, sizeof(sid), NULL, 0, "dkp_prk", &in, 1, prk);
    if (rc != BKV_OK)
        goto out;
    if (kem == BKV_HPKE_KEM_P256_SHA256) {
        /* Rejection sampling; the bitmask of P-256 is 0xff, so no masking. */
        rc = BKV_ERR_DERIVE;
        for (unsigned counter = 0; counter < 256; counter++) {
            uint8_t c = (uint8_t)counter;
            struct bkv_buf info = {&c, 1};
            int r =
                labeled_expand(prk, sid, sizeof(sid), "candidate", &info, 1, sk, BKV_HPKE_SK_LEN);
            if (r != BKV_OK) {
                rc = r;
                goto out;
            }
            if (bkv_p256_scalar_check(sk) == BKV_OK) {
                rc = BKV_OK;
                break;
            }
        }
    } else {
        rc = labeled_expand(prk, sid, sizeof(sid), "sk", NULL, 0, sk, BKV_HPKE_SK_LEN);
    }
    if (rc == BKV_OK)
        rc = kem_public(kem, sk, pk, pk_len);
out:
    bkv_wipe(prk, sizeof(prk));
    if (rc != BKV_OK)
        bkv_wipe(sk, BKV_HPKE_SK_LEN);
    return rc;
}

int bkv_hpke_public_key(uint16_t kem, const uint8_t sk[static BKV_HPKE_SK_LEN],
                        uint8_t pk[static BKV_HPKE_MAX_PK_LEN], size_t *pk_len)
{
    return kem_public(kem, sk, pk, pk_len);
}

int bkv_hpke_enc_check(uint16_t kem, const uint8_t *enc, size_t enc_len)
{
    switch (kem) {
    case BKV_HPKE_KEM_P256_SHA256:
        if (enc == NULL || enc_len != BKV_HPKE_P256_PK_LEN)
            return BKV_ERR_LENGTH;
        return bkv_p256_pubkey_check(enc, enc_len);
    case BKV_HPKE_KEM_X25519_SHA256:
        return enc != NULL && enc_len == BKV_HPKE_X25519_PK_LEN ? BKV_OK : BKV_ERR_LENGTH;
    default:
        return BKV_ERR_UNSUPPORTED;
    }
}

int bkv_hpke_kem_encap(uint16_t kem, const uint8_t *pkR, size_t pkR_len, const uint8_t *skE,
                       uint8_t shared_secret[static BKV_HPKE_SECRET_LEN],
                       uint8_t enc[static BKV_HPKE_MAX_ENC_LEN], size_t *enc_len)
{
    uint8_t sk[BKV_HPKE_SK_LEN];
    uint8_t dh[BKV_HPKE_DH_LEN];
    int rc;

    if (bkv_hpke_kem_enc_len(kem) == 0)
        return BKV_ERR_UNSUPPORTED;
    if (pkR == NULL || enc_len == NULL)
        return BKV_ERR_INVALID;
    if (skE != NULL) {
        memcpy(sk, skE, sizeof(sk));
        rc = BKV_OK;
    } else {
        rc = kem_random_sk(kem, sk);
    }
    if (rc == BKV_OK)
        rc = kem_dh(kem, sk, pkR, pkR_len, dh); /* validates pkR first */
    if (rc == BKV_OK)
        rc = kem_public(kem, sk, enc, enc_len);
    if (rc == BKV_OK)
        rc = extract_and_expand(kem, dh, enc, *enc_len, pkR, pkR_len, shared_secret);
    if (rc != BKV_OK)
        bkv_wipe(shared_secret, BKV_HPKE_SECRET_LEN);
    bkv_wipe(sk, sizeof(sk));
    bkv_wipe(dh, sizeof(dh));
    return rc;
}

int bkv_hpke_kem_decap_dh(uint16_t kem, const uint8_t *enc, size_t enc_len, const uint8_t *pkR,
                          size_t pkR_len, const uint8_t dh[static BKV_HPKE_DH_LEN],
                          uint8_t shared_secret[static BKV_HPKE_SECRET_LEN])
{
    int rc = bkv_hpke_enc_check(kem, enc, enc_len);

    if (rc == BKV_OK)
        rc = bkv_hpke_enc_check(kem, pkR, pkR_len);
    /* For X25519 an all-zero output means a small-order enc (RFC 9180 §7.1.4). */
    if (rc == BKV_OK && kem == BKV_HPKE_KEM_X25519_SHA256 && all_zero(dh, BKV_HPKE_DH_LEN))
        rc = BKV_ERR_POINT;
    if (rc == BKV_OK)
        rc = extract_and_expand(kem, dh, enc, enc_len, pkR, pkR_len, shared_secret);
    if (rc != BKV_OK)
        bkv_wipe(shared_secret, BKV_HPKE_SECRET_LEN);
    return rc;
}

int bkv_hpke_kem_decap(uint16_t kem, const uint8_t *enc, size_t enc_len,
                       const uint8_t skR[static BKV_HPKE_SK_LEN],
                       uint8_t shared_secret[static BKV_HPKE_SECRET_LEN])
{
    uint8_t dh[BKV_HPKE_DH_LEN];
    uint8_t pkR[BKV_HPKE_MAX_PK_LEN];
    size_t pkR_len = 0;
    int rc = bkv_hpke_enc_check(kem, enc, enc_len);

    if (rc == BKV_OK)
        rc = kem_public(kem, skR, pkR, &pkR_len);
    if (rc == BKV_OK)
        rc = kem_dh(kem, skR, enc, enc_len, dh);
    if (rc == BKV_OK)
        rc = bkv_hpke_kem_decap_dh(kem, enc, enc_len, pkR, pkR_len, dh, shared_secret);
    if (rc != BKV_OK)
        bkv_wipe(shared_secret, BKV_HPKE_SECRET_LEN);
    bkv_wipe(dh, sizeof(dh));
    return rc;
}

int bkv_hpke_key_schedule(struct bkv_hpke_suite suite,
                          const uint8_t shared_secret[static BKV_HPKE_SECRET_LEN],
                          const uint8_t *info, size_t info_len, struct bkv_hpke_ctx *ctx)
{
    static const uint8_t mode_base = 0x00;
    uint8_t sid[HPKE_SUITE_ID_LEN];
    uint8_t psk_id_hash[BKV_HASH_LEN], info_hash[BKV_HASH_LEN], secret[BKV_HASH_LEN];
    struct bkv_buf in = {info, info_len};
    struct bkv_buf ksc[3] = {
        {&mode_base, 1}, {psk_id_hash, sizeof(psk_id_hash)}, {info_hash, sizeof(info_hash)}};
    int rc;

    if (ctx == NULL || (info == NULL && info_len > 0))
        return BKV_ERR_INVALID;
    memset(ctx, 0, sizeof(*ctx));
    rc = bkv_hpke_suite_check(suite);
    if (rc != BKV_OK)
        return rc;
    ctx->suite = suite;
    ctx->key_len = bkv_hpke_aead_key_len(suite.aead);
    hpke_suite_id(suite, sid);
    /* Base mode: psk and psk_id are empty. */
    rc = labeled_extract(sid, sizeof(sid), NULL, 0, "psk_id_hash", NULL, 0, psk_id_hash);
    if (rc != BKV_OK)
        goto out;
    rc = labeled_extract(sid, sizeof(sid), NULL, 0, "info_hash", &in, 1, info_hash);
    if (rc != BKV_OK)
        goto out;
    rc = labeled_extract(sid, sizeof(sid), shared_secret, BKV_HPKE_SECRET_LEN, "secret", NULL, 0,
                         secret);
    if (rc != BKV_OK)
        goto out;
    rc = labeled_expand(secret, sid, sizeof(sid), "key", ksc, 3, ctx->key, ctx->key_len);
    if (rc != BKV_OK)
        goto out;
    rc = labeled_expand(secret, sid, sizeof(sid), "base_nonce", ksc, 3, ctx->base_nonce,
                        BKV_HPKE_NONCE_LEN);
    if (rc != BKV_OK)
        goto out;
    rc = labeled_expand(secret, sid, sizeof(sid), "exp", ksc, 3, ctx->exporter_secret,
                        BKV_HPKE_SECRET_LEN);
out:
    bkv_wipe(secret, sizeof(secret));
    if (rc != BKV_OK)
        bkv_hpke_ctx_wipe(ctx);
    return rc;
}

/* The checks every SetupBase* starts with, before its KEM step. */
static int setup_begin(struct bkv_hpke_suite suite, const struct bkv_hpke_ctx *ctx)
{
    return ctx == NULL ? BKV_ERR_INVALID : bkv_hpke_suite_check(suite);
}

/*
 * The tail every SetupBase* shares: the key schedule from ss once the checks
 * and the KEM step (their result in rc) succeeded; on any failure ctx is
 * wiped (a NULL ctx is left alone). ss is wiped either way.
 */
static int setup_finish(int rc, struct bkv_hpke_suite suite, uint8_t ss[static BKV_HPKE_SECRET_LEN],
                        const uint8_t *info, size_t info_len, struct bkv_hpke_ctx *ctx)
{
    if (rc == BKV_OK)
        rc = bkv_hpke_key_schedule(suite, ss, info, info_len, ctx);
    if (rc != BKV_OK)
        bkv_hpke_ctx_wipe(ctx);
    bkv_wipe(ss, BKV_HPKE_SECRET_LEN);
    return rc;
}

int bkv_hpke_setup_base_s(struct bkv_hpke_suite suite, const uint8_t *pkR, size_t pkR_len,
                          const uint8_t *info, size_t info_len, const uint8_t *skE,
                          uint8_t enc[static BKV_HPKE_MAX_ENC_LEN], size_t *enc_len,
                          struct bkv_hpke_ctx *ctx)
{
    uint8_t ss[BKV_HPKE_SECRET_LEN];
    int rc = setup_begin(suite, ctx);

    if (rc == BKV_OK)
        rc = bkv_hpke_kem_encap(suite.kem, pkR, pkR_len, skE, ss, enc, enc_len);
    return setup_finish(rc, suite, ss, info, info_len, ctx);
}

int bkv_hpke_setup_base_r_dh(struct bkv_hpke_suite suite, const uint8_t *enc, size_t enc_len,
                             const uint8_t *pkR, size_t pkR_len,
                             const uint8_t dh[static BKV_HPKE_DH_LEN], const uint8_t *info,
                             size_t info_len, struct bkv_hpke_ctx *ctx)
{
    uint8_t ss[BKV_HPKE_SECRET_LEN];
    int rc = setup_begin(suite, ctx);

    if (rc == BKV_OK)
        rc = bkv_hpke_kem_decap_dh(suite.kem, enc, enc_len, pkR, pkR_len, dh, ss);
    return setup_finish(rc, suite, ss, info, info_len, ctx);
}

int bkv_hpke_setup_base_r(struct bkv_hpke_suite suite, const uint8_t *enc, size_t enc_len,
                          const uint8_t skR[static BKV_HPKE_SK_LEN], const uint8_t *info,
                          size_t info_len, struct bkv_hpke_ctx *ctx)
{
    uint8_t ss[BKV_HPKE_SECRET_LEN];
    int rc = setup_begin(suite, ctx);

    if (rc == BKV_OK)
        rc = bkv_hpke_kem_decap(suite.kem, enc, enc_len, skR, ss);
    return setup_finish(rc, suite, ss, info, info_len, ctx);
}

/* ---- AEAD ---- */

int bkv_hpke_aead_seal(uint16_t aead, const uint8_t *key,
                       const uint8_t nonce[static BKV_HPKE_NONCE_LEN], const uint8_t *aad,
                       size_t aad_len, const uint8_t *pt, size_t pt_len, uint8_t *ct)
{
    const EVP_CIPHER *cipher = aead_cipher(aead);
    EVP_CIPHER_CTX *c = NULL;
    uint8_t fin[16];
    int len = 0;
    int rc = BKV_ERR_INVALID;

    if (cipher == NULL)
        return BKV_ERR_UNSUPPORTED;
    if (key == NULL || ct == NULL || (pt == NULL && pt_len > 0) || (aad == NULL && aad_len > 0))
        return BKV_ERR_INVALID;
    if (pt_len > INT_MAX || aad_len > INT_MAX)
        return BKV_ERR_LENGTH;
    c = EVP_CIPHER_CTX_new();
    if (c == NULL)
        return BKV_ERR_NOMEM;
    rc = BKV_ERR_CRYPTO;
    if (EVP_EncryptInit_ex(c, cipher, NULL, key, nonce) != 1)
        goto out;
    if (aad_len > 0 && EVP_EncryptUpdate(c, NULL, &len, aad, (int)aad_len) != 1)
        goto out;
    if (pt_len > 0 &&
        (EVP_EncryptUpdate(c, ct, &len, pt, (int)pt_len) != 1 || (size_t)len != pt_len))
        goto out;
    if (EVP_EncryptFinal_ex(c, fin, &len) != 1 || len != 0)
        goto out;
    if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, BKV_HPKE_TAG_LEN, ct + pt_len) != 1)
        goto out;
    rc = BKV_OK;
out:
    ERR_clear_error();
    EVP_CIPHER_CTX_free(c); /* cleanses the key schedule */
    return rc;
}

int bkv_hpke_aead_open(uint16_t aead, const uint8_t *key,
                       const uint8_t nonce[static BKV_HPKE_NONCE_LEN], const uint8_t *aad,
                       size_t aad_len, const uint8_t *ct, size_t ct_len, uint8_t *pt)
{
    const EVP_CIPHER *cipher = aead_cipher(aead);
    EVP_CIPHER_CTX *c = NULL;
    uint8_t tag[BKV_HPKE_TAG_LEN];
    uint8_t fin[16];
    size_t n;
    int len = 0;
    int rc;

    if (cipher == NULL)
        return BKV_ERR_UNSUPPORTED;
    if (key == NULL || ct == NULL || (aad == NULL && aad_len > 0))
        return BKV_ERR_INVALID;
    if (ct_len < BKV_HPKE_TAG_LEN)
        return BKV_ERR_LENGTH;
    n = ct_len - BKV_HPKE_TAG_LEN;
    if (n > INT_MAX || aad_len > INT_MAX)
        return BKV_ERR_LENGTH;
    if (pt == NULL && n > 0)
        return BKV_ERR_INVALID;
    /* Copy the tag first: with pt == ct the plaintext overwrites only ct[0..n). */
    memcpy(tag, ct + n, sizeof(tag));
    c = EVP_CIPHER_CTX_new();
    if (c == NULL)
        return BKV_ERR_NOMEM;
    rc = BKV_ERR_CRYPTO;
    if (EVP_DecryptInit_ex(c, cipher, NULL, key, nonce) != 1)
        goto out;
    if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, BKV_HPKE_TAG_LEN, tag) != 1)
        goto out;
    if (aad_len > 0 && EVP_DecryptUpdate(c, NULL, &len, aad, (int)aad_len) != 1)
        goto out;
    if (n > 0 && (EVP_DecryptUpdate(c, pt, &len, ct, (int)n) != 1 || (size_t)len != n))
        goto out;
    rc = EVP_DecryptFinal_ex(c, fin, &len) > 0 ? BKV_OK : BKV_ERR_DECRYPT;
out:
    if (rc != BKV_OK && n > 0)
        bkv_wipe(pt, n);
    ERR_clear_error();
    EVP_CIPHER_CTX_free(c);
    return rc;
}

/* ---- context ---- */

static int seq_at_limit(const uint8_t seq[static BKV_HPKE_NONCE_LEN])
{
    /* RFC 9180 §5.2: seq may not reach 2^(8*Nn) - 1. */
    for (size_t i = 0; i < BKV_HPKE_NONCE_LEN; i++)
        if (seq[i] != 0xff)
            return 0;
    return 1;
}

static void seq_increment(uint8_t seq[static BKV_HPKE_NONCE_LEN])
{
    for (size_t i = BKV_HPKE_NONCE_LEN; i-- > 0;)
        if (++seq[i] != 0)
            break;
}

static void compute_nonce(const struct bkv_hpke_ctx *ctx, uint8_t nonce[static BKV_HPKE_NONCE_LEN])
{
    for (size_t i = 0; i < BKV_HPKE_NONCE_LEN; i++)
        nonce[i] = ctx->base_nonce[i] ^ ctx->seq[i];
}

int bkv_hpke_seal(struct bkv_hpke_ctx *ctx, const uint8_t *aad, size_t aad_len, const uint8_t *pt,
                  size_t pt_len, uint8_t *ct, size_t ct_cap, size_t *ct_len)
{
    uint8_t nonce[BKV_HPKE_NONCE_LEN];
    int rc;

    if (ctx == NULL || ct == NULL || ct_len == NULL)
        return BKV_ERR_INVALID;
    if (pt_len > SIZE_MAX - BKV_HPKE_TAG_LEN || ct_cap < pt_len + BKV_HPKE_TAG_LEN)
        return BKV_ERR_LENGTH;
    if (seq_at_limit(ctx->seq))
        return BKV_ERR_LIMIT;
    compute_nonce(ctx, nonce);
    rc = bkv_hpke_aead_seal(ctx->suite.aead, ctx->key, nonce, aad, aad_len, pt, pt_len, ct);
    if (rc == BKV_OK) {
        *ct_len = pt_len + BKV_HPKE_TAG_LEN;
        seq_increment(ctx->seq);
    }
    return rc;
}

int bkv_hpke_open(struct bkv_hpke_ctx *ctx, const uint8_t *aad, size_t aad_len, const uint8_t *ct,
                  size_t ct_len, uint8_t *pt, size_t pt_cap, size_t *pt_len)
{
    uint8_t nonce[BKV_HPKE_NONCE_LEN];
    int rc;

    if (ctx == NULL || ct == NULL || pt_len == NULL)
        return BKV_ERR_INVALID;
    if (ct_len < BKV_HPKE_TAG_LEN || pt_cap < ct_len - BKV_HPKE_TAG_LEN)
        return BKV_ERR_LENGTH;
    if (seq_at_limit(ctx->seq))
        return BKV_ERR_LIMIT;
    compute_nonce(ctx, nonce);
    rc = bkv_hpke_aead_open(ctx->suite.aead, ctx->key, nonce, aad, aad_len, ct, ct_len, pt);
    if (rc == BKV_OK) {
        *pt_len = ct_len - BKV_HPKE_TAG_LEN;
        seq_increment(ctx->seq);
    }
    return rc;
}

int bkv_hpke_export(const struct bkv_hpke_ctx *ctx, const uint8_t *exporter_context,
                    size_t context_len, uint8_t *out, size_t out_len)
{
    uint8_t sid[HPKE_SUITE_ID_LEN];
    struct bkv_buf in = {exporter_context, context_len};

    if (ctx == NULL || (exporter_context == NULL && context_len > 0) ||
        (out == NULL && out_len > 0))
        return BKV_ERR_INVALID;
    if (out_len > BKV_HPKE_MAX_EXPORT_LEN)
        return BKV_ERR_LENGTH;
    hpke_suite_id(ctx->suite, sid);
    return labeled_expand(ctx->exporter_secret, sid, sizeof(sid), "sec", &in, 1, out, out_len);
}

void bkv_hpke_ctx_wipe(struct bkv_hpke_ctx *ctx)
{
    bkv_wipe(ctx, ctx != NULL ? sizeof(*ctx) : 0);
}

void bkv_hpke_ctx_set_seq(struct bkv_hpke_ctx *ctx, const uint8_t seq[static BKV_HPKE_NONCE_LEN])
{
    memcpy(ctx->seq, seq, BKV_HPKE_NONCE_LEN);
}
