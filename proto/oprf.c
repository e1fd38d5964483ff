/*
 * RFC 9497 OPRF, mode 0, P256-SHA256, on h2c.c (HashToGroup, HashToScalar)
 * and group.c (validated decoding, constant-time scalar multiplication).
 *
 * Normal path: client Blind -> server BlindEvaluate -> client Finalize; the
 * server derives its key with DeriveKeyPair. Failure modes: inputs of 2^16-1
 * bytes or more give BKV_ERR_LENGTH, scalars outside [1, n-1] BKV_ERR_SCALAR,
 * bad element encodings (and a HashToGroup result at the identity)
 * BKV_ERR_POINT, 256 zero candidates in DeriveKeyPair BKV_ERR_DERIVE. Blinds,
 * their inverses and unblinded elements are wiped; outputs are zeroed on error.
 */
#include "oprf.h"

#include <string.h>

#include <openssl/err.h>

#include "err.h"
#include "h2c.h"
#include "kdf.h"
#include "util.h"

/* contextString = "OPRFV1-" || I2OSP(0, 1) || "-P256-SHA256" behind each prefix. */
static const char dst_derive[] = "DeriveKeyPairOPRFV1-\x00-P256-SHA256";
static const char dst_group[] = "HashToGroup-OPRFV1-\x00-P256-SHA256";

#define MAX_INPUT_LEN 65534 /* inputs must be shorter than 2^16 - 1 bytes */

int bkv_oprf_derive_key_pair(const uint8_t seed[static BKV_OPRF_SEED_LEN], const uint8_t *info,
                             size_t info_len, uint8_t sk[static BKV_P256_SCALAR_LEN], uint8_t *pk)
{
    uint8_t len[2], counter = 0;
    int rc = BKV_ERR_DERIVE;

    if (info == NULL && info_len > 0)
        return BKV_ERR_INVALID;
    if (info_len > 0xffff)
        return BKV_ERR_LENGTH;
    bkv_put_u16(len, (uint16_t)info_len);
    for (int i = 0; i <= 255; i++) {
        struct bkv_buf parts[] = {
            {seed, BKV_OPRF_SEED_LEN}, {len, 2}, {info, info_len}, {&counter, 1}};

        counter = (uint8_t)i;
        rc = bkv_hash_to_scalar(parts, 4, (const uint8_t *)dst_derive, sizeof(dst_derive) - 1, sk);
        if (rc != BKV_OK)
            goto out;
        /* The loop exits at the first non-zero candidate, as the RFC specifies;
         * a zero candidate has probability about 2^-256. */
        if (bkv_p256_scalar_check(sk) == BKV_OK)
            break;
        rc = BKV_ERR_DERIVE;
    }
    if (rc != BKV_OK)
        goto out;
    if (pk != NULL)
        rc = bkv_p256_mul_base(sk, pk);
out:
    if (rc != BKV_OK)
        bkv_wipe(sk, BKV_P256_SCALAR_LEN);
    return rc;
}

/*
 * Blind without handing the password-derived point to OpenSSL. H =
 * HashToGroup(input) is computed and kept in BKV's constant-time field code;
 * OpenSSL's BIGNUM-based point code would otherwise see H itself (its
 * decoders, on-curve checks and additions are not constant time). With a
 * fresh random r and R = r*G:
 *   S = H + R (constant-time affine addition)    -- uniformly random
 *   blinded = blind*S - blind*R = blind*H
 * Only S, R, blind*S and blind*R, all independent of the password, ever enter
 * OpenSSL, and the blind only through its constant-time scalar path.
 */
int bkv_oprf_blind(const uint8_t *input, size_t input_len, const uint8_t *blind_in,
                   uint8_t blind_out[static BKV_P256_SCALAR_LEN],
                   uint8_t blinded[static BKV_P256_ELEMENT_LEN])
{
    const EC_GROUP *g = bkv_p256_group();
    struct bkv_buf msg = {input, input_len};
    uint8_t h[BKV_P256_UNCOMPRESSED_LEN], r[BKV_P256_SCALAR_LEN];
    uint8_t rg[BKV_P256_UNCOMPRESSED_LEN], masked[BKV_P256_UNCOMPRESSED_LEN];
    BN_CTX *bn = NULL;
    BIGNUM *s = NULL;
    EC_POINT *sp = NULL, *rp = NULL, *t1 = NULL, *t2 = NULL;
    int rc;

    if (input == NULL && input_len > 0)
        return BKV_ERR_INVALID;
    if (input_len > MAX_INPUT_LEN)
        return BKV_ERR_LENGTH;
    if (g == NULL)
        return BKV_ERR_NOMEM;
    if (blind_in != NULL) {
        rc = bkv_p256_scalar_check(blind_in);
        if (rc != BKV_OK)
            return rc;
        memmove(blind_out, blind_in, BKV_P256_SCALAR_LEN);
    } else {
        rc = bkv_p256_random_scalar(blind_out);
        if (rc != BKV_OK)
            return rc;
    }
    /* HashToGroup (an identity result is BKV_ERR_POINT), then the mask. */
    if ((rc = bkv_hash_to_curve(&msg, 1, (const uint8_t *)dst_group, sizeof(dst_group) - 1, h)) !=
            BKV_OK ||
        (rc = bkv_p256_random_scalar(r)) != BKV_OK ||
        (rc = bkv_p256_mul_base_uncompressed(r, rg)) != BKV_OK ||
        (rc = bkv_h2c_point_add(h, rg, masked)) != BKV_OK ||
        (rc = bkv_p256_scalar_to_bn(blind_out, &s)) != BKV_OK)
        goto out;
    rc = BKV_ERR_NOMEM;
    bn = BN_CTX_secure_new();
    sp = EC_POINT_new(g);
    rp = EC_POINT_new(g);
    t1 = EC_POINT_new(g);
    t2 = EC_POINT_new(g);
    if (bn == NULL || sp == NULL || rp == NULL || t1 == NULL || t2 == NULL)
        goto out;
    if ((rc = bkv_p256_pubkey_decode(masked, sizeof(masked), sp, bn)) != BKV_OK ||
        (rc = bkv_p256_pubkey_decode(rg, sizeof(rg), rp, bn)) != BKV_OK)
        goto out;
    /* Single-scalar multiplications only: OpenSSL's constant-time path. */
    rc = BKV_ERR_CRYPTO;
    if (EC_POINT_mul(g, t1, NULL, sp, s, bn) != 1 || EC_POINT_mul(g, t2, NULL, rp, s, bn) != 1 ||
        EC_POINT_invert(g, t2, bn) != 1 || EC_POINT_add(g, t1, t1, t2, bn) != 1)
        goto out;
    rc = bkv_p256_element_encode(t1, blinded, bn);
out:
    if (rc != BKV_OK) {
        bkv_wipe(blind_out, BKV_P256_SCALAR_LEN);
        bkv_wipe(blinded, BKV_P256_ELEMENT_LEN);
    }
    ERR_clear_error();
    bkv_wipe(h, sizeof(h));
    bkv_wipe(r, sizeof(r));
    bkv_wipe(masked, sizeof(masked));
    EC_POINT_clear_free(t2);
    EC_POINT_clear_free(t1);
    EC_POINT_clear_free(rp);
    EC_POINT_clear_free(sp);
    BN_clear_free(s);
    BN_CTX_free(bn);
    return rc;
}

int bkv_oprf_blind_evaluate(const uint8_t sk[static BKV_P256_SCALAR_LEN],
                            const uint8_t blinded[static BKV_P256_ELEMENT_LEN],
                            uint8_t evaluated[static BKV_P256_ELEMENT_LEN])
{
    /* bkv_p256_mul checks the scalar range and decodes (validates) the element. */
    int rc = bkv_p256_mul(sk, blinded, evaluated);

    if (rc != BKV_OK)
        bkv_wipe(evaluated, BKV_P256_ELEMENT_LEN);
    return rc;
}

int bkv_oprf_finalize(const uint8_t *input, size_t input_len,
                      const uint8_t blind[static BKV_P256_SCALAR_LEN],
                      const uint8_t evaluated[static BKV_P256_ELEMENT_LEN],
                      uint8_t output[static BKV_OPRF_OUTPUT_LEN])
{
    static const uint8_t finalize[] = {'F', 'i', 'n', 'a', 'l', 'i', 'z', 'e'};
    uint8_t inv[BKV_P256_SCALAR_LEN], unblinded[BKV_P256_ELEMENT_LEN];
    uint8_t in_len[2], el_len[2];
    int rc;

    if (input == NULL && input_len > 0)
        return BKV_ERR_INVALID;
    if (input_len > MAX_INPUT_LEN)
        return BKV_ERR_LENGTH;
    /* bkv_p256_scalar_invert rejects a blind outside [1, n-1]. */
    rc = bkv_p256_scalar_invert(blind, inv);
    if (rc != BKV_OK)
        goto out;
    rc = bkv_p256_mul(inv, evaluated, unblinded);
    if (rc != BKV_OK)
        goto out;
    bkv_put_u16(in_len, (uint16_t)input_len);
    bkv_put_u16(el_len, BKV_P256_ELEMENT_LEN);
    {
        struct bkv_buf parts[] = {{in_len, 2},
                                  {input, input_len},
                                  {el_len, 2},
                                  {unblinded, BKV_P256_ELEMENT_LEN},
                                  {finalize, sizeof(finalize)}};
        rc = bkv_sha256(parts, 5, output);
    }
out:
    if (rc != BKV_OK)
        bkv_wipe(output, BKV_OPRF_OUTPUT_LEN);
    bkv_wipe(inv, sizeof(inv));
    bkv_wipe(unblinded, sizeof(unblinded));
    return rc;
}
