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

/* Big-endian integers (I2OSP / OS2IP) of 2, 4 and 8 bytes. */
static inline void bkv_put_u16(uint8_t *out, uint16_t v)
{
    out[0] = (uint8_t)(v >> 8);
    out[1] = (uint8_t)v;
}

static inline uint16_t bkv_get_u16(const uint8_t *in)
{
    return (uint16_t)((uint16_t)in[0] << 8 | in[1]);
}

static inline void bkv_put_u32(uint8_t *out, uint32_t v)
{
    out[0] = (uint8_t)(v >> 24);
    out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8);
    out[3] = (uint8_t)v;
}

static inline uint32_t bkv_get_u32(const uint8_t *in)
{
    return (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
}

static inline void bkv_put_u64(uint8_t *out, uint64_t v)
{
    bkv_put_u32(out, (uint32_t)(v >> 32));
    bkv_put_u32(out + 4, (uint32_t)v);
}

static inline uint64_t bkv_get_u64(const uint8_t *in)
{
    return (uint64_t)bkv_get_u32(in) << 32 | bkv_get_u32(in + 4);
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
