/*
 * proto/err, proto/util and proto/kdf: status strings, hex, constant-time
 * comparison, and HKDF/HMAC/SHA-256 against RFC 5869 and RFC 4231 vectors.
 */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "harness.h"
#include "proto/err.h"
#include "proto/kdf.h"
#include "proto/util.h"

static void test_strerror(void)
{
    for (int i = 0; i < BKV_ERR__COUNT; i++) {
        CU_ASSERT_PTR_NOT_NULL(bkv_strerror(i));
        CU_ASSERT_STRING_NOT_EQUAL(bkv_strerror(i), "unknown error");
    }
    CU_ASSERT_STRING_EQUAL(bkv_strerror(-1), "unknown error");
    CU_ASSERT_STRING_EQUAL(bkv_strerror(BKV_ERR__COUNT), "unknown error");
    CU_ASSERT_STRING_EQUAL(bkv_strerror(BKV_OK), "ok");
}

static void test_hex(void)
{
    uint8_t buf[4];
    size_t n = 0;
    char out[9];

    CU_ASSERT_EQUAL(bkv_hex_decode("00fFa5", buf, sizeof(buf), &n), BKV_OK);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_EQUAL(buf[1], 0xff);
    bkv_hex_encode(buf, 3, out);
    CU_ASSERT_STRING_EQUAL(out, "00ffa5");
    CU_ASSERT_EQUAL(bkv_hex_decode("abc", buf, sizeof(buf), &n), BKV_ERR_FORMAT);
    CU_ASSERT_EQUAL(bkv_hex_decode("zz", buf, sizeof(buf), &n), BKV_ERR_FORMAT);
    CU_ASSERT_EQUAL(bkv_hex_decode("0011223344", buf, sizeof(buf), &n), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_hex_decode("", buf, sizeof(buf), &n), BKV_OK);
    CU_ASSERT_EQUAL(n, 0);
}

static void test_ct_equal_and_wipe(void)
{
    uint8_t a[32], b[32];

    memset(a, 0x5a, sizeof(a));
    memcpy(b, a, sizeof(b));
    CU_ASSERT_TRUE(bkv_ct_equal(a, b, 32));
    b[31] ^= 1;
    CU_ASSERT_FALSE(bkv_ct_equal(a, b, 32));
    CU_ASSERT_TRUE(bkv_ct_equal(a, b, 31));
    bkv_wipe(a, sizeof(a));
    for (size_t i = 0; i < sizeof(a); i++)
        CU_ASSERT_EQUAL(a[i], 0);
    bkv_wipe(NULL, 10);
}

static void unhex(const char *hex, uint8_t *out, size_t *n)
{
    CU_ASSERT_EQUAL_FATAL(bkv_hex_decode(hex, out, 256, n), BKV_OK);
}

/* RFC 5869 A.1 and A.3 (A.3: empty salt and info). */
static void test_hkdf_rfc5869(void)
{
    uint8_t ikm[256], salt[256], info[256], prk[32], okm[42], want[256];
    size_t ikm_n, salt_n, info_n, n;

    unhex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", ikm, &ikm_n);
    unhex("000102030405060708090a0b0c", salt, &salt_n);
    unhex("f0f1f2f3f4f5f6f7f8f9", info, &info_n);
    CU_ASSERT_EQUAL(bkv_hkdf_extract(salt, salt_n, &(struct bkv_buf){ikm, ikm_n}, 1, prk), 0);
    unhex("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5", want, &n);
    CU_ASSERT_EQUAL(memcmp(prk, want, 32), 0);
    /* Info split in two parts gives the same as one part. */
    struct bkv_buf parts[] = {{info, 3}, {info + 3, info_n - 3}};
    CU_ASSERT_EQUAL(bkv_hkdf_expand(prk, 32, parts, 2, okm, 42), 0);
    unhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
          want, &n);
    CU_ASSERT_EQUAL(memcmp(okm, want, 42), 0);

    CU_ASSERT_EQUAL(bkv_hkdf_extract(NULL, 0, &(struct bkv_buf){ikm, ikm_n}, 1, prk), 0);
    unhex("19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04", want, &n);
    CU_ASSERT_EQUAL(memcmp(prk, want, 32), 0);
    CU_ASSERT_EQUAL(bkv_hkdf_expand(prk, 32, NULL, 0, okm, 42), 0);
    unhex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
          want, &n);
    CU_ASSERT_EQUAL(memcmp(okm, want, 42), 0);

    CU_ASSERT_EQUAL(bkv_hkdf_expand(prk, 32, NULL, 0, okm, 255 * 32 + 1), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_hkdf_expand(prk, 16, NULL, 0, okm, 32), BKV_ERR_INVALID);
}

/* RFC 4231 test case 2 (HMAC-SHA256) and FIPS 180 "abc". */
static void test_hmac_sha256(void)
{
    uint8_t mac[32], want[256];
    size_t n;
    struct bkv_buf msg[] = {{(const uint8_t *)"what do ya want ", 16},
                            {(const uint8_t *)"for nothing?", 12}};

    CU_ASSERT_EQUAL(bkv_hmac_sha256((const uint8_t *)"Jefe", 4, msg, 2, mac), 0);
    unhex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", want, &n);
    CU_ASSERT_EQUAL(memcmp(mac, want, 32), 0);
    CU_ASSERT_EQUAL(bkv_sha256(&(struct bkv_buf){(const uint8_t *)"abc", 3}, 1, mac), 0);
    unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", want, &n);
    CU_ASSERT_EQUAL(memcmp(mac, want, 32), 0);
}

/* RFC 4231 test cases 6 and 7: a 131-byte key, hashed first. */
static void test_hmac_sha256_long_key(void)
{
    static const struct {
        const char *msg, *mac;
    } cases[] = {
        {"Test Using Larger Than Block-Size Key - Hash Key First",
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
        {"This is a test using a larger than block-size key and a larger than block-size data. "
         "The key needs to be hashed before being used by the HMAC algorithm.",
         "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
    };
    uint8_t key[131], mac[32], want[256];
    size_t n;

    memset(key, 0xaa, sizeof(key));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct bkv_buf msg = {(const uint8_t *)cases[i].msg, strlen(cases[i].msg)};

        CU_ASSERT_EQUAL(bkv_hmac_sha256(key, sizeof(key), &msg, 1, mac), 0);
        unhex(cases[i].mac, want, &n);
        CU_ASSERT_EQUAL(memcmp(mac, want, 32), 0);
    }
}

/* Every key length around the block size, and the empty key, against OpenSSL's HMAC(). */
static void test_hmac_sha256_key_lengths(void)
{
    uint8_t key[200], msg[100], mac[32], want[32];
    unsigned int want_len = 0;
    int bad = 0;

    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)(i * 7 + 1);
    memset(msg, 0x5a, sizeof(msg));
    for (size_t len = 0; len <= sizeof(key); len++) {
        struct bkv_buf parts[] = {{msg, 10}, {NULL, 0}, {msg + 10, sizeof(msg) - 10}};
        static const uint8_t one[1];

        CU_ASSERT_EQUAL_FATAL(bkv_hmac_sha256(len > 0 ? key : NULL, len, parts, 3, mac), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(
            HMAC(EVP_sha256(), len > 0 ? key : one, (int)len, msg, sizeof(msg), want, &want_len));
        if (want_len != 32 || memcmp(mac, want, 32) != 0)
            bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
}

static CU_TestInfo tests[] = {
    {"strerror covers every code", test_strerror},
    {"hex decode/encode and its errors", test_hex},
    {"constant-time compare and wipe", test_ct_equal_and_wipe},
    {"HKDF-SHA256 RFC 5869 vectors", test_hkdf_rfc5869},
    {"HMAC-SHA256 RFC 4231 and SHA-256", test_hmac_sha256},
    {"HMAC-SHA256 RFC 4231 long keys", test_hmac_sha256_long_key},
    {"HMAC-SHA256 key lengths 0..200 against OpenSSL", test_hmac_sha256_key_lengths},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return bkv_test_main("proto_util", tests, NULL, NULL);
}
