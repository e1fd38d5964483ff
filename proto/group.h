/*
 * The P-256 group as OPRF, OPAQUE and HPKE use it, on byte strings.
 *
 * Scalars are 32 bytes big-endian and valid only in [1, n-1]. Elements travel
 * compressed (33 bytes, 02/03 || X) for OPRF and OPAQUE, and uncompressed
 * (65 bytes, 04 || X || Y) for HPKE. Every decoder is total: it checks the
 * length and the prefix itself before OpenSSL sees the bytes (OpenSSL would
 * accept a lone 00 byte as the identity, and hybrid 06/07 encodings), and it
 * rejects the identity. Scalar multiplication with a secret scalar goes
 * through OpenSSL's constant-time single-scalar paths only.
 *
 * All functions are reentrant and may run on any thread.
 */
#ifndef BKV_PROTO_GROUP_H
#define BKV_PROTO_GROUP_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/bn.h>
#include <openssl/ec.h>

#define BKV_P256_SCALAR_LEN       32
#define BKV_P256_ELEMENT_LEN      33
#define BKV_P256_UNCOMPRESSED_LEN 65

/* The shared P-256 group, created once; never free it. NULL only on OOM. */
const EC_GROUP *bkv_p256_group(void);

/* The group order n, shared like the group. */
const BIGNUM *bkv_p256_order(void);

/* BKV_OK if 0 < k < n, else BKV_ERR_SCALAR. Constant time in k. */
int bkv_p256_scalar_check(const uint8_t k[static BKV_P256_SCALAR_LEN]);

/*
 * A new BIGNUM holding k, flagged BN_FLG_CONSTTIME, after the range check.
 * The caller owns *out and frees it with BN_clear_free.
 */
int bkv_p256_scalar_to_bn(const uint8_t k[static BKV_P256_SCALAR_LEN], BIGNUM **out);

/*
 * Decode a compressed element into out (allocated by the caller). Variable
 * time in the point (the square root), as OpenSSL's decoder is: for public
 * points, which all of BKV's elements on the wire are.
 */
int bkv_p256_element_decode(const uint8_t *in, size_t len, EC_POINT *out, BN_CTX *bn);

/* Decode an uncompressed (04 || X || Y) public key into out. */
int bkv_p256_pubkey_decode(const uint8_t *in, size_t len, EC_POINT *out, BN_CTX *bn);

/* The same checks without keeping the point: BKV_OK or the decoder's error. */
int bkv_p256_element_check(const uint8_t *in, size_t len);
int bkv_p256_pubkey_check(const uint8_t *in, size_t len);

/* Encode p compressed / uncompressed; BKV_ERR_POINT for the identity. */
int bkv_p256_element_encode(const EC_POINT *p, uint8_t out[static BKV_P256_ELEMENT_LEN],
                            BN_CTX *bn);
int bkv_p256_pubkey_encode(const EC_POINT *p, uint8_t out[static BKV_P256_UNCOMPRESSED_LEN],
                           BN_CTX *bn);

/*
 * out = k * element (compressed in, compressed out). k is range-checked
 * (BKV_ERR_SCALAR) before element is decoded (BKV_ERR_POINT); out is written
 * only on success.
 */
int bkv_p256_mul(const uint8_t k[static BKV_P256_SCALAR_LEN],
                 const uint8_t element[static BKV_P256_ELEMENT_LEN],
                 uint8_t out[static BKV_P256_ELEMENT_LEN]);

/*
 * out1 = k1 * element and out2 = k2 * element with one decode of element:
 * the results and error codes of bkv_p256_mul(k1, ...) then
 * bkv_p256_mul(k2, ...), but cheaper. Both outputs are zeroed on failure;
 * they may alias element.
 */
int bkv_p256_mul2(const uint8_t k1[static BKV_P256_SCALAR_LEN],
                  const uint8_t k2[static BKV_P256_SCALAR_LEN],
                  const uint8_t element[static BKV_P256_ELEMENT_LEN],
                  uint8_t out1[static BKV_P256_ELEMENT_LEN],
                  uint8_t out2[static BKV_P256_ELEMENT_LEN]);

/* out = k * G, compressed. */
int bkv_p256_mul_base(const uint8_t k[static BKV_P256_SCALAR_LEN],
                      uint8_t out[static BKV_P256_ELEMENT_LEN]);

/* out = k * G, uncompressed (04 || X || Y): an HPKE public key. */
int bkv_p256_mul_base_uncompressed(const uint8_t k[static BKV_P256_SCALAR_LEN],
                                   uint8_t out[static BKV_P256_UNCOMPRESSED_LEN]);

/*
 * ECDH: dh = X(k * peer), the 32-byte big-endian x-coordinate, for an
 * uncompressed peer key. The peer is validated first (BKV_ERR_LENGTH,
 * BKV_ERR_POINT), then k (BKV_ERR_SCALAR). dh is zeroed on failure.
 */
int bkv_p256_ecdh(const uint8_t k[static BKV_P256_SCALAR_LEN], const uint8_t *peer, size_t peer_len,
                  uint8_t dh[static BKV_P256_SCALAR_LEN]);

/* A uniformly random scalar in [1, n-1] from the private DRBG. */
int bkv_p256_random_scalar(uint8_t out[static BKV_P256_SCALAR_LEN]);

/* out = k^-1 mod n, by Fermat's little theorem in constant time. */
int bkv_p256_scalar_invert(const uint8_t k[static BKV_P256_SCALAR_LEN],
                           uint8_t out[static BKV_P256_SCALAR_LEN]);

#endif
