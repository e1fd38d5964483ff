/*
 * Small helpers shared by every layer: constant-time comparison, wiping,
 * big-endian integer encoding and hex.
 */
#ifndef BKV_PROTO_UTIL_H
#define BKV_PROTO_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* 1 if the n bytes at a and b are equal, else 0; time depends only on n. */
int bkv_ct_equal(const void *a, const void *b, size_t n);

/* Overwrite n bytes at p with zeros in a way the compiler keeps. NULL is fine. */
void bkv_wipe(void *p, size_t n);

/* Big-endian I2OSP for 1- and 2-byte lengths. */
static inline void bkv_put_u16(uint8_t *out, uint16_t v)
{
    out[0] = (uint8_t)(v >> 8);
    out[1] = (uint8_t)v;
}

static inline uint16_t bkv_get_u16(const uint8_t *in)
{
    return (uint16_t)((uint16_t)in[0] << 8 | in[1]);
}

/*
 * Decode hex (upper or lower case, no separators) into out. Returns
 * BKV_ERR_FORMAT on a bad digit or odd length, BKV_ERR_LENGTH if it does not
 * fit in cap. *out_len receives the number of bytes.
 */
int bkv_hex_decode(const char *hex, uint8_t *out, size_t cap, size_t *out_len);

/* Encode n bytes as lowercase hex into out, which must hold 2n+1 chars. */
void bkv_hex_encode(const uint8_t *in, size_t n, char *out);

#endif
