/*
 * The backup key K and the text a person writes down (client/bkv.h).
 *
 * Normal path: K is 32 bytes from OpenSSL's private DRBG; its text is the 64
 * hex digits of K in 16 groups of 4, then two spaces and a 17th group of 4
 * check digits, the CRC-16/CCITT-FALSE of K. Parsing skips spaces, tabs,
 * line breaks and dashes, takes either case, and checks the CRC.
 * Failure modes: BKV_ERR_CRYPTO when the DRBG fails, BKV_ERR_LENGTH for an
 * output buffer that is too small or the wrong number of digits,
 * BKV_ERR_FORMAT for any other character, BKV_ERR_MAC for check digits that
 * do not match (a typo). The digits are converted without branching or
 * indexing on their values, and every copy of the key or its digits is wiped.
 */
#include <string.h>

#include <openssl/rand.h>

#include "client/bkv.h"
#include "proto/err.h"
#include "proto/util.h"

#define KEY_GROUPS   16
#define GROUP_DIGITS 4
#define CHECK_LEN    2                                  /* bytes of CRC */
#define TEXT_DIGITS  (2 * (BKV_KEY_LEN + CHECK_LEN))    /* 68 */
#define TEXT_LEN     (TEXT_DIGITS + KEY_GROUPS - 1 + 2) /* 16 single spaces, one double */
#define CRC16_POLY   0x1021
#define CRC16_INIT   0xffff

/*
 * CRC-16/CCITT-FALSE (also catalogued as CRC-16/IBM-3740): polynomial 0x1021,
 * initial value 0xffff, bits taken most significant first, no final XOR;
 * "123456789" gives 0x29b1. Taking bits most significant first makes the
 * digit order of the text the bit order of the code, so a wrong digit is an
 * error burst of at most 4 bits and two swapped neighbours one of at most 8,
 * and a CRC of degree 16 detects every burst of up to 16 bits. Branch-free,
 * since K is secret.
 */
static uint16_t crc16(const uint8_t *p, size_t n)
{
    uint16_t crc = CRC16_INIT;

    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)(p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)((crc << 1) ^ (CRC16_POLY & -(crc >> 15)));
    }
    return crc;
}

/* '0'..'9', 'a'..'f' for v in 0..15, without a table lookup or branch. */
static char hex_digit(unsigned v)
{
    /* (9 - v) >> 8 is all ones exactly when v > 9 (v < 256). */
    unsigned letter = ((9u - v) >> 8) & 1u;

    return (char)('0' + v + (letter * ('a' - '0' - 10)));
}

/* 0..15 for a hex digit of either case, -1 for anything else; branch-free. */
static int hex_value(unsigned char c)
{
    int x = c, lower = c | 0x20;
    /* In [lo, hi] exactly when (lo - 1 - x) and (x - hi - 1) are both negative. */
    int is_dec = (int)(((unsigned)(('0' - 1 - x) & (x - '9' - 1))) >> 31);
    int is_let = (int)(((unsigned)(('a' - 1 - lower) & (lower - 'f' - 1))) >> 31);
    int v = ((x - '0') & -is_dec) | ((lower - 'a' + 10) & -is_let);

    return v | -(1 - (is_dec | is_let));
}

static int is_separator(char c)
{
    return c == ' ' || c == '-' || c == '\t' || c == '\n' || c == '\r';
}

int bkv_key_generate(uint8_t key[BKV_KEY_LEN])
{
    if (key == NULL)
        return BKV_ERR_INVALID;
    if (RAND_priv_bytes(key, BKV_KEY_LEN) != 1) {
        bkv_wipe(key, BKV_KEY_LEN);
        return BKV_ERR_CRYPTO;
    }
    return BKV_OK;
}

int bkv_key_format(const uint8_t key[BKV_KEY_LEN], char *out, size_t cap)
{
    uint8_t code[BKV_KEY_LEN + CHECK_LEN];
    uint16_t crc;
    size_t pos = 0;

    if (key == NULL || out == NULL)
        return BKV_ERR_INVALID;
    if (cap < TEXT_LEN + 1) {
        if (cap > 0)
            out[0] = '\0';
        return BKV_ERR_LENGTH;
    }
    memcpy(code, key, BKV_KEY_LEN);
    crc = crc16(key, BKV_KEY_LEN);
    code[BKV_KEY_LEN] = (uint8_t)(crc >> 8);
    code[BKV_KEY_LEN + 1] = (uint8_t)crc;
    for (size_t d = 0; d < TEXT_DIGITS; d++) {
        if (d > 0 && d % GROUP_DIGITS == 0) {
            out[pos++] = ' ';
            if (d == 2 * BKV_KEY_LEN)
                out[pos++] = ' '; /* set the check group apart */
        }
        out[pos++] = hex_digit(d % 2 == 0 ? code[d / 2] >> 4 : code[d / 2] & 0x0f);
    }
    out[pos] = '\0';
    bkv_wipe(code, sizeof(code));
    return BKV_OK;
}

int bkv_key_parse(const char *text, uint8_t key[BKV_KEY_LEN])
{
    uint8_t code[BKV_KEY_LEN + CHECK_LEN] = {0};
    uint8_t want[CHECK_LEN] = {0};
    uint16_t crc;
    size_t digits = 0;
    int rc;

    if (key == NULL)
        return BKV_ERR_INVALID;
    rc = BKV_ERR_INVALID;
    if (text == NULL)
        goto out;
    for (const char *c = text; *c != '\0'; c++) {
        int v = hex_value((unsigned char)*c);

        if (v < 0) {
            if (is_separator(*c))
                continue;
            rc = BKV_ERR_FORMAT;
            goto out;
        }
        if (digits < TEXT_DIGITS)
            code[digits / 2] |= (uint8_t)(digits % 2 == 0 ? v << 4 : v);
        digits++;
    }
    rc = BKV_ERR_LENGTH;
    if (digits != TEXT_DIGITS)
        goto out;
    crc = crc16(code, BKV_KEY_LEN);
    want[0] = (uint8_t)(crc >> 8);
    want[1] = (uint8_t)crc;
    rc = BKV_ERR_MAC;
    if (!bkv_ct_equal(want, code + BKV_KEY_LEN, CHECK_LEN))
        goto out;
    memcpy(key, code, BKV_KEY_LEN);
    rc = BKV_OK;
out:
    if (rc != BKV_OK)
        bkv_wipe(key, BKV_KEY_LEN);
    bkv_wipe(code, sizeof(code));
    bkv_wipe(want, sizeof(want));
    return rc;
}
