/*
 * Shared helpers. bkv_ct_equal and bkv_wipe delegate to OpenSSL's
 * CRYPTO_memcmp and OPENSSL_cleanse, which are written so that the compiler
 * can neither short-circuit the comparison nor drop the wipe.
 */
#include "util.h"

#include <string.h>

#include <openssl/crypto.h>

#include "err.h"

int bkv_ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

void bkv_wipe(void *p, size_t n)
{
    if (p != NULL && n > 0)
        OPENSSL_cleanse(p, n);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int bkv_hex_decode(const char *hex, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t n = strlen(hex);

    if (n % 2 != 0)
        return BKV_ERR_FORMAT;
    if (n / 2 > cap)
        return BKV_ERR_LENGTH;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(hex[2 * i]);
        int lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return BKV_ERR_FORMAT;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    *out_len = n / 2;
    return BKV_OK;
}

void bkv_hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xf];
    }
    out[2 * n] = '\0';
}
