/*
 * RFC 9497 OPRF, mode 0 (modeOPRF), suite P256-SHA256.
 *
 * contextString = "OPRFV1-" || 0x00 || "-P256-SHA256". Elements are 33-byte
 * compressed points, scalars 32 bytes big-endian. Every function validates its
 * inputs (element encodings, scalar ranges, input length < 2^16-1) and wipes
 * its secret intermediates. All functions are reentrant, any thread.
 */
#ifndef BKV_PROTO_OPRF_H
#define BKV_PROTO_OPRF_H

#include <stddef.h>
#include <stdint.h>

#include "group.h"

#define BKV_OPRF_SEED_LEN   32
#define BKV_OPRF_OUTPUT_LEN 32

/*
 * DeriveKeyPair(seed, info): sk (scalar) and pk = sk*G (compressed).
 * pk may be NULL when only the private key is wanted.
 */
int bkv_oprf_derive_key_pair(const uint8_t seed[static BKV_OPRF_SEED_LEN], const uint8_t *info,
                             size_t info_len, uint8_t sk[static BKV_P256_SCALAR_LEN], uint8_t *pk);

/*
 * Blind(input): blinded = blind * HashToGroup(input). When blind_in is NULL a
 * fresh random blind is drawn; tests pass the vector's blind. The blind used
 * is written to blind_out (the caller keeps it secret and wipes it).
 */
int bkv_oprf_blind(const uint8_t *input, size_t input_len, const uint8_t *blind_in,
                   uint8_t blind_out[static BKV_P256_SCALAR_LEN],
                   uint8_t blinded[static BKV_P256_ELEMENT_LEN]);

/* BlindEvaluate: evaluated = sk * blinded, after validating blinded. */
int bkv_oprf_blind_evaluate(const uint8_t sk[static BKV_P256_SCALAR_LEN],
                            const uint8_t blinded[static BKV_P256_ELEMENT_LEN],
                            uint8_t evaluated[static BKV_P256_ELEMENT_LEN]);

/* Finalize: output = H(len||input||len||unblind(evaluated)||"Finalize"). */
int bkv_oprf_finalize(const uint8_t *input, size_t input_len,
                      const uint8_t blind[static BKV_P256_SCALAR_LEN],
                      const uint8_t evaluated[static BKV_P256_ELEMENT_LEN],
                      uint8_t output[static BKV_OPRF_OUTPUT_LEN]);

#endif
