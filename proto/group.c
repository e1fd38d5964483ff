/*
 * P-256 on OpenSSL 3.0's EC_POINT/BIGNUM interfaces, wrapped so that every
 * caller works on fixed-size byte strings.
 *
 * Normal path: decode (length, prefix, on-curve and non-identity checks; a
 * compressed point is decompressed by p256.c, which is much faster than
 * OpenSSL's generic BN_mod_sqrt), one single-scalar EC_POINT_mul per scalar
 * with a BN_FLG_CONSTTIME scalar (OpenSSL's ladder or ecp_nistz256, both
 * constant time), encode. One decoded point may serve several scalars.
 * Failure modes: malformed input gives BKV_ERR_POINT / BKV_ERR_SCALAR /
 * BKV_ERR_LENGTH and the OpenSSL error queue is cleared so expected failures
 * do not leak into later calls; allocation failures give BKV_ERR_NOMEM.
 */
#include "group.h"

#include <pthread.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/rand.h>

#include "err.h"
#include "p256.h"
#include "util.h"

static EC_GROUP *p256;
static BIGNUM *order_minus_2;
static pthread_once_t p256_once = PTHREAD_ONCE_INIT;

static void p256_init(void)
{
    p256 = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    if (p256 == NULL)
        return;
    order_minus_2 = BN_dup(EC_GROUP_get0_order(p256));
    if (order_minus_2 == NULL || !BN_sub_word(order_minus_2, 2)) {
        BN_free(order_minus_2);
        order_minus_2 = NULL;
        EC_GROUP_free(p256);
        p256 = NULL;
    }
}

const EC_GROUP *bkv_p256_group(void)
{
    pthread_once(&p256_once, p256_init);
    return p256;
}

const BIGNUM *bkv_p256_order(void)
{
    const EC_GROUP *g = bkv_p256_group();
    return g != NULL ? EC_GROUP_get0_order(g) : NULL;
}

/* The order n of P-256, big-endian, for the constant-time range check. */
static const uint8_t order_be[32] = {
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
};

int bkv_p256_scalar_check(const uint8_t k[static BKV_P256_SCALAR_LEN])
{
    /* Compute k - n byte by byte from the right; borrow out means k < n. */
    unsigned borrow = 0, nonzero = 0;

    for (int i = 31; i >= 0; i--) {
        unsigned d = (unsigned)k[i] - order_be[i] - borrow;
        borrow = (d >> 8) & 1;
        nonzero |= k[i];
    }
    return (borrow & (nonzero != 0)) ? BKV_OK : BKV_ERR_SCALAR;
}

int bkv_p256_scalar_to_bn(const uint8_t k[static BKV_P256_SCALAR_LEN], BIGNUM **out)
{
    BIGNUM *bn;
    int rc = bkv_p256_scalar_check(k);

    *out = NULL;
    if (rc != BKV_OK)
        return rc;
    bn = BN_secure_new();
    if (bn == NULL)
        return BKV_ERR_NOMEM;
    BN_set_flags(bn, BN_FLG_CONSTTIME);
    if (BN_bin2bn(k, BKV_P256_SCALAR_LEN, bn) == NULL) {
        BN_clear_free(bn);
        return BKV_ERR_NOMEM;
    }
    *out = bn;
    return BKV_OK;
}

static int decode(const uint8_t *in, size_t len, EC_POINT *out, BN_CTX *bn)
{
    const EC_GROUP *g = bkv_p256_group();

    if (g == NULL)
        return BKV_ERR_NOMEM;
    if (EC_POINT_oct2point(g, out, in, len, bn) != 1 || EC_POINT_is_at_infinity(g, out)) {
        ERR_clear_error();
        return BKV_ERR_POINT;
    }
    return BKV_OK;
}

int bkv_p256_element_decode(const uint8_t *in, size_t len, EC_POINT *out, BN_CTX *bn)
{
    uint8_t full[BKV_P256_UNCOMPRESSED_LEN];
    int rc;

    if (len != BKV_P256_ELEMENT_LEN)
        return BKV_ERR_LENGTH;
    /* Our square root instead of OpenSSL's generic BN_mod_sqrt; OpenSSL then
     * checks the uncompressed point again. */
    rc = bkv_p256_decompress(in, full);
    if (rc == BKV_OK)
        rc = decode(full, sizeof(full), out, bn);
    return rc;
}

int bkv_p256_pubkey_decode(const uint8_t *in, size_t len, EC_POINT *out, BN_CTX *bn)
{
    if (len != BKV_P256_UNCOMPRESSED_LEN)
        return BKV_ERR_LENGTH;
    if (in[0] != 0x04)
        return BKV_ERR_POINT;
    return decode(in, len, out, bn);
}

/* Decode into a scratch point and drop it: validation only. */
static int check(const uint8_t *in, size_t len,
                 int (*dec)(const uint8_t *, size_t, EC_POINT *, BN_CTX *))
{
    const EC_GROUP *g = bkv_p256_group();
    EC_POINT *p;
    int rc;

    if (g == NULL)
        return BKV_ERR_NOMEM;
    p = EC_POINT_new(g);
    if (p == NULL)
        return BKV_ERR_NOMEM;
    rc = dec(in, len, p, NULL);
    ERR_clear_error();
    EC_POINT_free(p);
    return rc;
}

int bkv_p256_element_check(const uint8_t *in, size_t len)
{
    return check(in, len, bkv_p256_element_decode);
}

int bkv_p256_pubkey_check(const uint8_t *in, size_t len)
{
    return check(in, len, bkv_p256_pubkey_decode);
}

static int encode(const EC_POINT *p, point_conversion_form_t form, uint8_t *out, size_t len,
                  BN_CTX *bn)
{
    const EC_GROUP *g = bkv_p256_group();

    if (g == NULL)
        return BKV_ERR_NOMEM;
    if (EC_POINT_is_at_infinity(g, p))
        return BKV_ERR_POINT;
    if (EC_POINT_point2oct(g, p, form, out, len, bn) != len) {
        ERR_clear_error();
        return BKV_ERR_CRYPTO;
    }
    return BKV_OK;
}

int bkv_p256_element_encode(const EC_POINT *p, uint8_t out[static BKV_P256_ELEMENT_LEN], BN_CTX *bn)
{
    return encode(p, POINT_CONVERSION_COMPRESSED, out, BKV_P256_ELEMENT_LEN, bn);
}

int bkv_p256_pubkey_encode(const EC_POINT *p, uint8_t out[static BKV_P256_UNCOMPRESSED_LEN],
                           BN_CTX *bn)
{
    return encode(p, POINT_CONVERSION_UNCOMPRESSED, out, BKV_P256_UNCOMPRESSED_LEN, bn);
}

/* How a point travels: 02/03 || X, 04 || X || Y, or X alone (ECDH output). */
enum form { FORM_COMPRESSED, FORM_UNCOMPRESSED, FORM_X };

static int output(const EC_POINT *r, enum form form, uint8_t *out, BN_CTX *bn)
{
    uint8_t full[BKV_P256_UNCOMPRESSED_LEN];
    int rc;

    if (form == FORM_COMPRESSED)
        return bkv_p256_element_encode(r, out, bn);
    rc = bkv_p256_pubkey_encode(r, full, bn);
    if (rc == BKV_OK)
        memcpy(out, form == FORM_X ? full + 1 : full,
               form == FORM_X ? BKV_P256_SCALAR_LEN : BKV_P256_UNCOMPRESSED_LEN);
    bkv_wipe(full, sizeof(full));
    return rc;
}

/*
 * out[i] = k[i] * P for i < count, each written in out_form, where P is G
 * (in NULL) or the point in (in_form, in_len), which is decoded and validated
 * once, before any scalar. Each scalar is range-checked just before its own
 * multiplication; out[i] is written only once its product succeeded. Every
 * multiplication is a single-scalar EC_POINT_mul with a BN_FLG_CONSTTIME
 * scalar, OpenSSL's constant-time path.
 */
static int mul(const uint8_t *in, size_t in_len, enum form in_form, size_t count,
               const uint8_t *const k[], uint8_t *const out[], enum form out_form)
{
    const EC_GROUP *g = bkv_p256_group();
    BN_CTX *bn = NULL;
    BIGNUM *s = NULL;
    EC_POINT *p = NULL, *r = NULL;
    int rc = BKV_ERR_NOMEM;

    if (g == NULL)
        return BKV_ERR_NOMEM;
    bn = BN_CTX_secure_new();
    r = EC_POINT_new(g);
    if (bn == NULL || r == NULL)
        goto out;
    if (in != NULL) {
        p = EC_POINT_new(g);
        if (p == NULL)
            goto out;
        rc = in_form == FORM_COMPRESSED ? bkv_p256_element_decode(in, in_len, p, bn)
                                        : bkv_p256_pubkey_decode(in, in_len, p, bn);
        if (rc != BKV_OK)
            goto out;
    }
    for (size_t i = 0; i < count; i++) {
        rc = bkv_p256_scalar_to_bn(k[i], &s);
        if (rc != BKV_OK)
            goto out;
        if (EC_POINT_mul(g, r, p == NULL ? s : NULL, p, p != NULL ? s : NULL, bn) != 1) {
            rc = BKV_ERR_CRYPTO;
            goto out;
        }
        BN_clear_free(s);
        s = NULL;
        rc = output(r, out_form, out[i], bn);
        if (rc != BKV_OK)
            goto out;
    }
    rc = BKV_OK;
out:
    ERR_clear_error();
    EC_POINT_clear_free(r);
    EC_POINT_free(p);
    BN_clear_free(s);
    BN_CTX_free(bn);
    return rc;
}

int bkv_p256_mul(const uint8_t k[static BKV_P256_SCALAR_LEN],
                 const uint8_t element[static BKV_P256_ELEMENT_LEN],
                 uint8_t out[static BKV_P256_ELEMENT_LEN])
{
    /* The scalar is checked before the element is decoded. */
    int rc = bkv_p256_scalar_check(k);

    if (rc == BKV_OK)
        rc = mul(element, BKV_P256_ELEMENT_LEN, FORM_COMPRESSED, 1, &k, &out, FORM_COMPRESSED);
    return rc;
}

int bkv_p256_mul2(const uint8_t k1[static BKV_P256_SCALAR_LEN],
                  const uint8_t k2[static BKV_P256_SCALAR_LEN],
                  const uint8_t element[static BKV_P256_ELEMENT_LEN],
                  uint8_t out1[static BKV_P256_ELEMENT_LEN],
                  uint8_t out2[static BKV_P256_ELEMENT_LEN])
{
    const uint8_t *k[2] = {k1, k2};
    uint8_t *out[2] = {out1, out2};
    /* k1, then the element, then k2: the order of two bkv_p256_mul calls. */
    int rc = bkv_p256_scalar_check(k1);

    if (rc == BKV_OK)
        rc = mul(element, BKV_P256_ELEMENT_LEN, FORM_COMPRESSED, 2, k, out, FORM_COMPRESSED);
    if (rc != BKV_OK) {
        bkv_wipe(out1, BKV_P256_ELEMENT_LEN);
        bkv_wipe(out2, BKV_P256_ELEMENT_LEN);
    }
    return rc;
}

int bkv_p256_mul_base(const uint8_t k[static BKV_P256_SCALAR_LEN],
                      uint8_t out[static BKV_P256_ELEMENT_LEN])
{
    return mul(NULL, 0, FORM_COMPRESSED, 1, &k, &out, FORM_COMPRESSED);
}

int bkv_p256_mul_base_uncompressed(const uint8_t k[static BKV_P256_SCALAR_LEN],
                                   uint8_t out[static BKV_P256_UNCOMPRESSED_LEN])
{
    return mul(NULL, 0, FORM_UNCOMPRESSED, 1, &k, &out, FORM_UNCOMPRESSED);
}

int bkv_p256_ecdh(const uint8_t k[static BKV_P256_SCALAR_LEN], const uint8_t *peer, size_t peer_len,
                  uint8_t dh[static BKV_P256_SCALAR_LEN])
{
    int rc = mul(peer, peer_len, FORM_UNCOMPRESSED, 1, &k, &dh, FORM_X);

    if (rc != BKV_OK)
        bkv_wipe(dh, BKV_P256_SCALAR_LEN);
    return rc;
}

int bkv_p256_random_scalar(uint8_t out[static BKV_P256_SCALAR_LEN])
{
    /* Rejection sampling; each draw succeeds with probability ~1 - 2^-32. */
    for (int tries = 0; tries < 64; tries++) {
        if (RAND_priv_bytes(out, BKV_P256_SCALAR_LEN) != 1)
            return BKV_ERR_CRYPTO;
        if (bkv_p256_scalar_check(out) == BKV_OK)
            return BKV_OK;
    }
    bkv_wipe(out, BKV_P256_SCALAR_LEN);
    return BKV_ERR_CRYPTO;
}

int bkv_p256_scalar_invert(const uint8_t k[static BKV_P256_SCALAR_LEN],
                           uint8_t out[static BKV_P256_SCALAR_LEN])
{
    const BIGNUM *n = bkv_p256_order();
    BN_CTX *bn = NULL;
    BIGNUM *s = NULL, *r = NULL;
    int rc;

    if (n == NULL)
        return BKV_ERR_NOMEM;
    rc = bkv_p256_scalar_to_bn(k, &s);
    if (rc != BKV_OK)
        return rc;
    rc = BKV_ERR_NOMEM;
    bn = BN_CTX_secure_new();
    r = BN_secure_new();
    if (bn == NULL || r == NULL)
        goto out;
    BN_set_flags(r, BN_FLG_CONSTTIME);
    rc = BKV_ERR_CRYPTO;
    if (BN_mod_exp_mont_consttime(r, s, order_minus_2, n, bn, NULL) != 1)
        goto out;
    if (BN_bn2binpad(r, out, BKV_P256_SCALAR_LEN) != BKV_P256_SCALAR_LEN)
        goto out;
    rc = BKV_OK;
out:
    ERR_clear_error();
    BN_clear_free(r);
    BN_clear_free(s);
    BN_CTX_free(bn);
    return rc;
}
