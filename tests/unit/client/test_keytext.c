/*
 * client/keytext: the backup key and its text. The check group is compared
 * with an independent bit-serial CRC-16/CCITT-FALSE (itself checked against
 * the catalogue's check value) and with a fixed vector computed outside C
 * (Python's binascii.crc_hqx with initial value 0xffff). Exhaustively, for a
 * few keys, every single wrong digit and every swap of two neighbouring
 * digits must be caught; parsing takes either case, spaces and dashes, and
 * names each kind of error.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "client/bkv.h"
#include "harness.h"
#include "proto/err.h"

#define TEXT_LEN 85 /* 68 digits, 15 single spaces and one double space */

/* CRC-16/CCITT-FALSE as polynomial division over the message bits, one at a time. */
static unsigned reference_crc(const uint8_t *p, size_t n)
{
    unsigned reg = 0xffff;

    for (size_t i = 0; i < 8 * n; i++) {
        unsigned in = (p[i / 8] >> (7 - i % 8)) & 1u;
        unsigned top = (reg >> 15) & 1u;

        reg = (reg << 1) & 0xffff;
        if (top ^ in)
            reg ^= 0x1021;
    }
    return reg;
}

static void fixed_keys(uint8_t keys[4][BKV_KEY_LEN])
{
    for (int i = 0; i < BKV_KEY_LEN; i++) {
        keys[0][i] = 0x00;
        keys[1][i] = 0xff;
        keys[2][i] = (uint8_t)i;
        keys[3][i] = (uint8_t)(0x9e * i + 0x37); /* varied digits, many unequal neighbours */
    }
}

/* Positions in text of its hex digits, in order. */
static size_t digit_positions(const char *text, size_t pos[80])
{
    size_t n = 0;

    for (size_t i = 0; text[i] != '\0' && n < 80; i++)
        if (isxdigit((unsigned char)text[i]))
            pos[n++] = i;
    return n;
}

static void test_reference_crc(void)
{
    CU_ASSERT_EQUAL(reference_crc((const uint8_t *)"123456789", 9), 0x29b1);
}

static void test_format_vector(void)
{
    uint8_t key[BKV_KEY_LEN], back[BKV_KEY_LEN];
    char text[BKV_KEY_TEXT_MAX];

    for (int i = 0; i < BKV_KEY_LEN; i++)
        key[i] = (uint8_t)i;
    CU_ASSERT_EQUAL_FATAL(bkv_key_format(key, text, sizeof(text)), BKV_OK);
    CU_ASSERT_STRING_EQUAL(text, "0001 0203 0405 0607 0809 0a0b 0c0d 0e0f 1011 1213 1415 1617 "
                                 "1819 1a1b 1c1d 1e1f  23b3");
    CU_ASSERT_EQUAL(strlen(text), TEXT_LEN);
    CU_ASSERT_EQUAL(bkv_key_parse(text, back), BKV_OK);
    CU_ASSERT_EQUAL(memcmp(key, back, BKV_KEY_LEN), 0);

    memset(key, 0, sizeof(key));
    CU_ASSERT_EQUAL(bkv_key_format(key, text, sizeof(text)), BKV_OK);
    CU_ASSERT_STRING_EQUAL(text + TEXT_LEN - 4, "f14c");
    memset(key, 0xff, sizeof(key));
    CU_ASSERT_EQUAL(bkv_key_format(key, text, sizeof(text)), BKV_OK);
    CU_ASSERT_STRING_EQUAL(text + TEXT_LEN - 4, "75f8");
}

static void test_format_random_keys(void)
{
    uint8_t key[BKV_KEY_LEN], back[BKV_KEY_LEN];
    char text[BKV_KEY_TEXT_MAX], want[8], hex[3];
    int bad = 0;

    for (int r = 0; r < 500; r++) {
        CU_ASSERT_EQUAL_FATAL(bkv_key_generate(key), BKV_OK);
        CU_ASSERT_EQUAL_FATAL(bkv_key_format(key, text, sizeof(text)), BKV_OK);
        snprintf(want, sizeof(want), "%04x", reference_crc(key, BKV_KEY_LEN));
        if (strlen(text) != TEXT_LEN || strcmp(text + TEXT_LEN - 4, want) != 0 ||
            memcmp(text + TEXT_LEN - 6, "  ", 2) != 0)
            bad++;
        /* Group g, byte pair: "xxxx " at 5g. */
        for (int i = 0; i < BKV_KEY_LEN; i++) {
            snprintf(hex, sizeof(hex), "%02x", key[i]);
            if (memcmp(text + 5 * (i / 2) + 2 * (i % 2), hex, 2) != 0)
                bad++;
        }
        if (bkv_key_parse(text, back) != BKV_OK || memcmp(key, back, BKV_KEY_LEN) != 0)
            bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
}

static void test_format_cap(void)
{
    uint8_t key[BKV_KEY_LEN] = {1};
    char text[BKV_KEY_TEXT_MAX];

    memset(text, 'x', sizeof(text));
    CU_ASSERT_EQUAL(bkv_key_format(key, text, TEXT_LEN), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(text[0], '\0'); /* nothing of the key is left in a short buffer */
    CU_ASSERT_EQUAL(text[1], 'x');
    CU_ASSERT_EQUAL(bkv_key_format(key, text, TEXT_LEN + 1), BKV_OK);
    CU_ASSERT_EQUAL(strlen(text), TEXT_LEN);
    CU_ASSERT_EQUAL(bkv_key_format(key, text, 0), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_key_format(NULL, text, sizeof(text)), BKV_ERR_INVALID);
}

static void test_generate(void)
{
    uint8_t a[BKV_KEY_LEN] = {0}, b[BKV_KEY_LEN] = {0}, zero[BKV_KEY_LEN] = {0};

    CU_ASSERT_EQUAL(bkv_key_generate(a), BKV_OK);
    CU_ASSERT_EQUAL(bkv_key_generate(b), BKV_OK);
    CU_ASSERT_NOT_EQUAL(memcmp(a, b, BKV_KEY_LEN), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(a, zero, BKV_KEY_LEN), 0);
    CU_ASSERT_EQUAL(bkv_key_generate(NULL), BKV_ERR_INVALID);
}

static void test_parse_lenient(void)
{
    uint8_t key[BKV_KEY_LEN], back[BKV_KEY_LEN];
    char text[BKV_KEY_TEXT_MAX], other[2 * BKV_KEY_TEXT_MAX];
    size_t pos[80], n;

    for (int i = 0; i < BKV_KEY_LEN; i++)
        key[i] = (uint8_t)(0xa5 ^ (i * 29));
    CU_ASSERT_EQUAL_FATAL(bkv_key_format(key, text, sizeof(text)), BKV_OK);
    n = digit_positions(text, pos);
    CU_ASSERT_EQUAL_FATAL(n, 68);

    /* Upper case, no separators. */
    for (size_t i = 0; i < n; i++)
        other[i] = (char)toupper((unsigned char)text[pos[i]]);
    other[n] = '\0';
    memset(back, 0, sizeof(back));
    CU_ASSERT_EQUAL(bkv_key_parse(other, back), BKV_OK);
    CU_ASSERT_EQUAL(memcmp(key, back, BKV_KEY_LEN), 0);

    /* Dashes between groups, mixed case, spaces around, a line break at the end. */
    {
        size_t o = 0;

        other[o++] = ' ';
        for (size_t i = 0; i < n; i++) {
            if (i > 0 && i % 4 == 0)
                other[o++] = '-';
            other[o++] = i % 3 ? (char)toupper((unsigned char)text[pos[i]]) : text[pos[i]];
        }
        other[o++] = ' ';
        other[o++] = '\n';
        other[o] = '\0';
    }
    memset(back, 0, sizeof(back));
    CU_ASSERT_EQUAL(bkv_key_parse(other, back), BKV_OK);
    CU_ASSERT_EQUAL(memcmp(key, back, BKV_KEY_LEN), 0);

    /* Groups of another size. */
    {
        size_t o = 0;

        for (size_t i = 0; i < n; i++) {
            if (i > 0 && i % 8 == 0)
                other[o++] = ' ';
            other[o++] = text[pos[i]];
        }
        other[o] = '\0';
    }
    CU_ASSERT_EQUAL(bkv_key_parse(other, back), BKV_OK);
}

static void test_parse_errors(void)
{
    uint8_t key[BKV_KEY_LEN], back[BKV_KEY_LEN];
    char text[BKV_KEY_TEXT_MAX], bad[2 * BKV_KEY_TEXT_MAX];
    size_t pos[80];

    for (int i = 0; i < BKV_KEY_LEN; i++)
        key[i] = (uint8_t)(i * 3 + 1);
    CU_ASSERT_EQUAL_FATAL(bkv_key_format(key, text, sizeof(text)), BKV_OK);
    CU_ASSERT_EQUAL_FATAL(digit_positions(text, pos), 68);

#define EXPECT(str, code)                                                                          \
    do {                                                                                           \
        memset(back, 0xaa, sizeof(back));                                                          \
        CU_ASSERT_EQUAL(bkv_key_parse(str, back), code);                                           \
        for (int i_ = 0; i_ < BKV_KEY_LEN; i_++)                                                   \
            CU_ASSERT_EQUAL_FATAL(back[i_], 0); /* wiped */                                        \
    } while (0)

    /* A character that is neither a digit, a space nor a dash. */
    strcpy(bad, text);
    bad[pos[10]] = 'g';
    EXPECT(bad, BKV_ERR_FORMAT);
    strcpy(bad, text);
    bad[4] = ',';
    EXPECT(bad, BKV_ERR_FORMAT);
    strcpy(bad, text);
    bad[4] = '_';
    EXPECT(bad, BKV_ERR_FORMAT);
    snprintf(bad, sizeof(bad), "0x%s", text);
    EXPECT(bad, BKV_ERR_FORMAT);
    /* The wrong number of digits. */
    EXPECT("", BKV_ERR_LENGTH);
    EXPECT("   ", BKV_ERR_LENGTH);
    strcpy(bad, text);
    bad[pos[63] + 1] = '\0'; /* the 64 key digits without the check group */
    EXPECT(bad, BKV_ERR_LENGTH);
    strcpy(bad, text);
    bad[pos[66] + 1] = '\0'; /* one check digit missing */
    EXPECT(bad, BKV_ERR_LENGTH);
    snprintf(bad, sizeof(bad), "%s0", text);
    EXPECT(bad, BKV_ERR_LENGTH);
    snprintf(bad, sizeof(bad), "%s %s", text, text);
    EXPECT(bad, BKV_ERR_LENGTH);
    /* Check digits that do not match. */
    strcpy(bad, text);
    bad[pos[67]] = bad[pos[67]] == '0' ? '1' : '0';
    EXPECT(bad, BKV_ERR_MAC);
    /* NULL arguments. */
    EXPECT(NULL, BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_key_parse(text, NULL), BKV_ERR_INVALID);
#undef EXPECT
}

static char other_digit(char d, int k)
{
    static const char hex[] = "0123456789abcdef";
    int v = (int)(strchr(hex, d) - hex);

    return hex[(v + k) % 16];
}

/* Every wrong digit, at each of the 68 places and with each of the 15 other values. */
static void test_every_single_digit_error(void)
{
    uint8_t keys[4][BKV_KEY_LEN], back[BKV_KEY_LEN];
    char text[BKV_KEY_TEXT_MAX], bad[BKV_KEY_TEXT_MAX];
    size_t pos[80];
    int tried = 0, missed = 0;

    fixed_keys(keys);
    for (int k = 0; k < 4; k++) {
        CU_ASSERT_EQUAL_FATAL(bkv_key_format(keys[k], text, sizeof(text)), BKV_OK);
        CU_ASSERT_EQUAL_FATAL(digit_positions(text, pos), 68);
        for (size_t d = 0; d < 68; d++)
            for (int delta = 1; delta < 16; delta++) {
                strcpy(bad, text);
                bad[pos[d]] = other_digit(text[pos[d]], delta);
                tried++;
                if (bkv_key_parse(bad, back) != BKV_ERR_MAC)
                    missed++;
            }
    }
    CU_ASSERT_EQUAL(tried, 4 * 68 * 15);
    CU_ASSERT_EQUAL(missed, 0);
}

/* Every swap of two neighbouring digits, across group borders and into the check group. */
static void test_every_adjacent_swap(void)
{
    uint8_t keys[4][BKV_KEY_LEN], back[BKV_KEY_LEN];
    char text[BKV_KEY_TEXT_MAX], bad[BKV_KEY_TEXT_MAX];
    size_t pos[80];
    int swaps = 0, missed = 0;

    fixed_keys(keys);
    for (int k = 0; k < 4; k++) {
        CU_ASSERT_EQUAL_FATAL(bkv_key_format(keys[k], text, sizeof(text)), BKV_OK);
        CU_ASSERT_EQUAL_FATAL(digit_positions(text, pos), 68);
        for (size_t d = 0; d + 1 < 68; d++) {
            int rc;

            strcpy(bad, text);
            bad[pos[d]] = text[pos[d + 1]];
            bad[pos[d + 1]] = text[pos[d]];
            rc = bkv_key_parse(bad, back);
            if (text[pos[d]] == text[pos[d + 1]]) {
                CU_ASSERT_EQUAL(rc, BKV_OK); /* no change at all */
                continue;
            }
            swaps++;
            if (rc != BKV_ERR_MAC)
                missed++;
        }
    }
    printf("\n    %d swaps that change the text ", swaps);
    CU_ASSERT(swaps > 100); /* keys 2 and 3 have mostly unequal neighbours */
    CU_ASSERT_EQUAL(missed, 0);
}

static CU_TestInfo tests[] = {
    {"reference CRC-16/CCITT-FALSE check value", test_reference_crc},
    {"format: fixed vectors", test_format_vector},
    {"format: 500 random keys against the reference CRC", test_format_random_keys},
    {"format: output buffer size", test_format_cap},
    {"generate: random, distinct", test_generate},
    {"parse: case, spaces, dashes, grouping", test_parse_lenient},
    {"parse: each kind of error, key wiped", test_parse_errors},
    {"every single-digit error is caught", test_every_single_digit_error},
    {"every adjacent-digit swap is caught", test_every_adjacent_swap},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return bkv_test_main("client_keytext", tests, NULL, NULL);
}
