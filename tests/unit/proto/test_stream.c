/*
 * proto/stream: the backup stream format. The layout and derivation are
 * checked byte for byte against an independent construction from
 * docs/protocol.md (OpenSSL's own HKDF and AES-256-GCM); round trips at the
 * sizes around chunk boundaries; and every attack the format must catch:
 * truncation at every length, reordered, repeated and dropped chunks, every
 * single bit flipped, a wrong key, header tampering and swapping, trailing
 * data, other versions, and the counter limit.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "harness.h"
#include "proto/err.h"
#include "proto/stream.h"

#define LOG2  BKV_STREAM_LOG2_MIN /* 1 KiB chunks keep exhaustive tests small */
#define CHUNK ((size_t)1 << LOG2)
#define PIECE (CHUNK + BKV_STREAM_TAG_LEN)
#define HDR   BKV_STREAM_HEADER_LEN

static uint8_t key[32], salt[32];

static int suite_init(void)
{
    for (int i = 0; i < 32; i++) {
        key[i] = (uint8_t)(0x80 + i);
        salt[i] = (uint8_t)(0x11 * (i % 16) + i / 16);
    }
    return 0;
}

static uint8_t *pattern(size_t n, unsigned seed)
{
    uint8_t *p = malloc(n > 0 ? n : 1);
    uint32_t x = 2463534242u + seed;

    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
    return p;
}

/* Seal n pattern bytes with chunk_log2; returns the stream (caller frees). */
static uint8_t *seal(size_t n, unsigned log2, size_t *len, uint8_t **pt_out)
{
    uint8_t *pt = pattern(n, (unsigned)n);
    size_t want = 0;
    uint8_t *out;

    CU_ASSERT_EQUAL_FATAL(bkv_stream_sealed_len(n, log2, &want), BKV_OK);
    out = malloc(want);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_EQUAL_FATAL(bkv_stream_seal_buffer(key, salt, log2, pt, n, out, want, len), BKV_OK);
    CU_ASSERT_EQUAL(*len, want);
    if (pt_out != NULL)
        *pt_out = pt;
    else
        free(pt);
    return out;
}

/* Open in[0..n) with the module key; returns the code, out freed inside. */
static int open_rc(const uint8_t *in, size_t n)
{
    uint8_t *out = malloc(n > 0 ? n : 1);
    size_t out_len = 0;
    int rc;

    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    rc = bkv_stream_open_buffer(key, in, n, out, n, &out_len);
    free(out);
    return rc;
}

static void test_sealed_len(void)
{
    size_t n = 0;

    CU_ASSERT_EQUAL(bkv_stream_sealed_len(0, LOG2, &n), BKV_OK);
    CU_ASSERT_EQUAL(n, HDR + 16);
    CU_ASSERT_EQUAL(bkv_stream_sealed_len(CHUNK, LOG2, &n), BKV_OK);
    CU_ASSERT_EQUAL(n, HDR + CHUNK + 16);
    CU_ASSERT_EQUAL(bkv_stream_sealed_len(CHUNK + 1, LOG2, &n), BKV_OK);
    CU_ASSERT_EQUAL(n, HDR + CHUNK + 1 + 32);
    /* 2^32 chunks is the most a stream can have. */
    CU_ASSERT_EQUAL(bkv_stream_sealed_len(((size_t)1 << 32) * CHUNK, LOG2, &n), BKV_OK);
    CU_ASSERT_EQUAL(bkv_stream_sealed_len(((size_t)1 << 32) * CHUNK + 1, LOG2, &n), BKV_ERR_LIMIT);
    CU_ASSERT_EQUAL(bkv_stream_sealed_len(SIZE_MAX, BKV_STREAM_LOG2_MAX, &n), BKV_ERR_LIMIT);
    CU_ASSERT_EQUAL(bkv_stream_sealed_len(1, LOG2 - 1, &n), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_stream_sealed_len(1, BKV_STREAM_LOG2_MAX + 1, &n), BKV_ERR_INVALID);
}

/*
 * The construction as docs/protocol.md states it, built on OpenSSL directly:
 * HKDF-SHA256(salt, K, "BKV-STREAM-v1" || header) -> key (32) || prefix (7),
 * chunk i = AES-256-GCM(key, prefix || be32(i) || last, no AAD).
 */
static void reference_derive(const uint8_t *header, uint8_t okm[39])
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    uint8_t info[13 + HDR];
    size_t len = 39;

    memcpy(info, "BKV-STREAM-v1", 13);
    memcpy(info + 13, header, HDR);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(EVP_PKEY_derive_init(c), 1);
    CU_ASSERT_EQUAL(EVP_PKEY_CTX_set_hkdf_md(c, EVP_sha256()), 1);
    CU_ASSERT_EQUAL(EVP_PKEY_CTX_set1_hkdf_salt(c, header + 6, 32), 1);
    CU_ASSERT_EQUAL(EVP_PKEY_CTX_set1_hkdf_key(c, key, 32), 1);
    CU_ASSERT_EQUAL(EVP_PKEY_CTX_add1_hkdf_info(c, info, sizeof(info)), 1);
    CU_ASSERT_EQUAL(EVP_PKEY_derive(c, okm, &len), 1);
    CU_ASSERT_EQUAL(len, 39);
    EVP_PKEY_CTX_free(c);
}

static void reference_chunk(const uint8_t okm[39], uint32_t i, int last, const uint8_t *pt,
                            size_t n, uint8_t *ct)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    uint8_t nonce[12], fin[16];
    int len = 0;

    memcpy(nonce, okm + 32, 7);
    nonce[7] = (uint8_t)(i >> 24);
    nonce[8] = (uint8_t)(i >> 16);
    nonce[9] = (uint8_t)(i >> 8);
    nonce[10] = (uint8_t)i;
    nonce[11] = (uint8_t)last;
    CU_ASSERT_EQUAL(EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, okm, nonce), 1);
    if (n > 0)
        CU_ASSERT_EQUAL(EVP_EncryptUpdate(c, ct, &len, pt, (int)n), 1);
    CU_ASSERT_EQUAL(EVP_EncryptFinal_ex(c, fin, &len), 1);
    CU_ASSERT_EQUAL(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, ct + n), 1);
    EVP_CIPHER_CTX_free(c);
}

static void test_matches_spec(void)
{
    static const size_t sizes[] = {0, 1, CHUNK, 2 * CHUNK + 7};

    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t n = sizes[s], len, off = 0, pos = HDR;
        uint8_t *pt, *st = seal(n, LOG2, &len, &pt);
        uint8_t *ref = malloc(len), okm[39];
        uint32_t i = 0;

        CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
        /* header: "BKVS" || 1 || log2 || salt */
        CU_ASSERT_EQUAL(memcmp(st, "BKVS", 4), 0);
        CU_ASSERT_EQUAL(st[4], 1);
        CU_ASSERT_EQUAL(st[5], LOG2);
        CU_ASSERT_EQUAL(memcmp(st + 6, salt, 32), 0);
        memcpy(ref, st, HDR);
        reference_derive(st, okm);
        do {
            size_t k = n - off < CHUNK ? n - off : CHUNK;
            reference_chunk(okm, i++, off + k == n, pt + off, k, ref + pos);
            off += k;
            pos += k + 16;
        } while (off < n);
        CU_ASSERT_EQUAL(pos, len);
        CU_ASSERT_EQUAL(memcmp(ref, st, len), 0);
        free(ref);
        free(st);
        free(pt);
    }
}

static void test_round_trip(void)
{
    static const size_t sizes[] = {0,         1,         CHUNK - 1, CHUNK,
                                   CHUNK + 1, 2 * CHUNK, 3 * CHUNK, 5 * CHUNK + 17};

    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t n = sizes[s], len, out_len = 12345;
        uint8_t *pt, *st = seal(n, LOG2, &len, &pt);
        uint8_t *out = malloc(len);

        CU_ASSERT_PTR_NOT_NULL_FATAL(out);
        CU_ASSERT_EQUAL(len, HDR + n + 16 * (n == 0 ? 1 : (n + CHUNK - 1) / CHUNK));
        CU_ASSERT_EQUAL(bkv_stream_open_buffer(key, st, len, out, len, &out_len), BKV_OK);
        CU_ASSERT_EQUAL(out_len, n);
        CU_ASSERT(n == 0 || memcmp(out, pt, n) == 0);
        free(out);
        free(st);
        free(pt);
    }
    /* The default chunk size, several chunks. */
    {
        size_t n = 3 * ((size_t)1 << BKV_STREAM_LOG2_DEFAULT) + 999, len, out_len = 0;
        uint8_t *pt, *st = seal(n, BKV_STREAM_LOG2_DEFAULT, &len, &pt);
        uint8_t *out = malloc(len);

        CU_ASSERT_EQUAL(st[5], 16);
        CU_ASSERT_EQUAL(bkv_stream_open_buffer(key, st, len, out, len, &out_len), BKV_OK);
        CU_ASSERT_EQUAL(out_len, n);
        CU_ASSERT_EQUAL(memcmp(out, pt, n), 0);
        free(out);
        free(st);
        free(pt);
    }
}

/* A fresh salt gives an unrelated stream for the same key and plaintext. */
static void test_salt_separates_files(void)
{
    uint8_t pt[100] = {0}, a[HDR + 116], b[HDR + 116], salt2[32];
    size_t la, lb;

    memcpy(salt2, salt, 32);
    salt2[31] ^= 1;
    CU_ASSERT_EQUAL(bkv_stream_seal_buffer(key, salt, LOG2, pt, 100, a, sizeof(a), &la), BKV_OK);
    CU_ASSERT_EQUAL(bkv_stream_seal_buffer(key, salt2, LOG2, pt, 100, b, sizeof(b), &lb), BKV_OK);
    CU_ASSERT_EQUAL(la, lb);
    CU_ASSERT_NOT_EQUAL(memcmp(a + HDR, b + HDR, la - HDR), 0);
}

static void test_truncation(void)
{
    size_t len, boundaries = 0;
    uint8_t *st = seal(3 * CHUNK + 100, LOG2, &len, NULL); /* 4 chunks */
    int bad = 0;

    CU_ASSERT_EQUAL(open_rc(st, len), BKV_OK);
    for (size_t cut = 0; cut < len; cut++) {
        int rc = open_rc(st, cut);

        if (rc == BKV_OK)
            bad++;
        if (cut < 4)
            CU_ASSERT_EQUAL(rc, BKV_ERR_FORMAT);
        if (cut >= 4 && cut <= HDR)
            CU_ASSERT_EQUAL(rc, BKV_ERR_LENGTH); /* cut in the header, or no chunk at all */
        if (cut > HDR && (cut - HDR) % PIECE == 0) {
            /* Cut exactly after a chunk: the missing final chunk is named. */
            CU_ASSERT_EQUAL(rc, BKV_ERR_LENGTH);
            boundaries++;
        }
        if (cut > HDR && (cut - HDR) % PIECE != 0)
            CU_ASSERT(rc == BKV_ERR_DECRYPT || rc == BKV_ERR_LENGTH);
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(boundaries, 3);
    free(st);
}

/* Build a stream from chunks of src (all full-size) in the given order. */
static size_t rearrange(const uint8_t *src, const int *order, int count, uint8_t *dst)
{
    memcpy(dst, src, HDR);
    for (int i = 0; i < count; i++)
        memcpy(dst + HDR + (size_t)i * PIECE, src + HDR + (size_t)order[i] * PIECE, PIECE);
    return HDR + (size_t)count * PIECE;
}

static void test_reorder_repeat_drop(void)
{
    size_t len;
    uint8_t *st = seal(4 * CHUNK, LOG2, &len, NULL); /* 4 full chunks, the last one final */
    uint8_t *x = malloc(HDR + 6 * PIECE);
    static const int swap01[] = {1, 0, 2, 3}, swap12[] = {0, 2, 1, 3}, final_early[] = {0, 1, 3, 2},
                     dup1[] = {0, 1, 1, 2, 3}, drop1[] = {0, 2, 3}, drop_final[] = {0, 1, 2},
                     replay0[] = {0, 0, 1, 2, 3}, dup_final[] = {0, 1, 2, 3, 3};

    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    CU_ASSERT_EQUAL(len, HDR + 4 * PIECE);
    CU_ASSERT_EQUAL(open_rc(x, rearrange(st, (int[]){0, 1, 2, 3}, 4, x)), BKV_OK);
    CU_ASSERT_EQUAL(open_rc(x, rearrange(st, swap01, 4, x)), BKV_ERR_DECRYPT);
    CU_ASSERT_EQUAL(open_rc(x, rearrange(st, swap12, 4, x)), BKV_ERR_DECRYPT);
    CU_ASSERT_EQUAL(open_rc(x, rearrange(st, final_early, 4, x)), BKV_ERR_DECRYPT);
    CU_ASSERT_EQUAL(open_rc(x, rearrange(st, dup1, 5, x)), BKV_ERR_DECRYPT);
    CU_ASSERT_EQUAL(open_rc(x, rearrange(st, replay0, 5, x)), BKV_ERR_DECRYPT);
    CU_ASSERT_EQUAL(open_rc(x, rearrange(st, drop1, 3, x)), BKV_ERR_DECRYPT);
    /* Without its final chunk the stream is cut short... */
    CU_ASSERT_EQUAL(open_rc(x, rearrange(st, drop_final, 3, x)), BKV_ERR_LENGTH);
    /* ...and with the final chunk twice, data follows the end. */
    CU_ASSERT_EQUAL(open_rc(x, rearrange(st, dup_final, 5, x)), BKV_ERR_LENGTH);
    free(x);
    free(st);
}

static void test_every_bit_flip(void)
{
    size_t len, flips = 0;
    uint8_t *st = seal(2 * CHUNK + 10, LOG2, &len, NULL);
    int ok = 0, body_not_decrypt = 0;

    for (size_t byte = 0; byte < len; byte++)
        for (int bit = 0; bit < 8; bit++) {
            int rc;

            st[byte] ^= (uint8_t)(1u << bit);
            rc = open_rc(st, len);
            st[byte] ^= (uint8_t)(1u << bit);
            flips++;
            if (rc == BKV_OK)
                ok++;
            if (byte >= HDR && rc != BKV_ERR_DECRYPT)
                body_not_decrypt++;
            if (byte < 4)
                CU_ASSERT_EQUAL(rc, BKV_ERR_FORMAT);
            if (byte == 4)
                CU_ASSERT_EQUAL(rc, BKV_ERR_UNSUPPORTED);
            if (byte >= 6 && byte < HDR)
                CU_ASSERT_EQUAL(rc, BKV_ERR_DECRYPT); /* salt */
        }
    CU_ASSERT_EQUAL(flips, 8 * len);
    CU_ASSERT_EQUAL(ok, 0);
    CU_ASSERT_EQUAL(body_not_decrypt, 0);
    CU_ASSERT_EQUAL(open_rc(st, len), BKV_OK);
    free(st);
}

static void test_wrong_key(void)
{
    size_t len, out_len;
    uint8_t *st = seal(CHUNK + 5, LOG2, &len, NULL);
    uint8_t *out = malloc(len), k2[32];
    int bad = 0;

    for (int bit = 0; bit < 256; bit++) {
        memcpy(k2, key, 32);
        k2[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        if (bkv_stream_open_buffer(k2, st, len, out, len, &out_len) != BKV_ERR_DECRYPT)
            bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    free(out);
    free(st);
}

static void test_header_tampering(void)
{
    size_t len, len2;
    uint8_t *st = seal(2 * CHUNK + 3, LOG2, &len, NULL);
    uint8_t *other = seal(2 * CHUNK + 3, LOG2, &len2, NULL);
    uint8_t *x = malloc(len);

    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    /* Another chunk size in range: the key changes with it. */
    for (unsigned l = BKV_STREAM_LOG2_MIN; l <= BKV_STREAM_LOG2_MAX; l++) {
        memcpy(x, st, len);
        x[5] = (uint8_t)l;
        CU_ASSERT_EQUAL(open_rc(x, len), l == LOG2 ? BKV_OK : BKV_ERR_DECRYPT);
    }
    /* Out of bounds. */
    memcpy(x, st, len);
    x[5] = BKV_STREAM_LOG2_MIN - 1;
    CU_ASSERT_EQUAL(open_rc(x, len), BKV_ERR_FORMAT);
    x[5] = BKV_STREAM_LOG2_MAX + 1;
    CU_ASSERT_EQUAL(open_rc(x, len), BKV_ERR_FORMAT);
    x[5] = 255;
    CU_ASSERT_EQUAL(open_rc(x, len), BKV_ERR_FORMAT);
    /* Unknown versions. */
    memcpy(x, st, len);
    x[4] = 0;
    CU_ASSERT_EQUAL(open_rc(x, len), BKV_ERR_UNSUPPORTED);
    x[4] = 2;
    CU_ASSERT_EQUAL(open_rc(x, len), BKV_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(open_rc(x, 5), BKV_ERR_UNSUPPORTED); /* even when cut after the version */
    /* Not ours. */
    memcpy(x, st, len);
    memcpy(x, "BKVK", 4);
    CU_ASSERT_EQUAL(open_rc(x, len), BKV_ERR_FORMAT);
    CU_ASSERT_EQUAL(open_rc((const uint8_t *)"", 0), BKV_ERR_FORMAT);
    /* The header of one stream (another salt) on the chunks of another. */
    {
        uint8_t salt2[32];
        size_t l3;
        uint8_t *pt = pattern(2 * CHUNK + 3, 2 * CHUNK + 3);

        memcpy(salt2, salt, 32);
        salt2[0] ^= 0x80;
        CU_ASSERT_EQUAL(
            bkv_stream_seal_buffer(key, salt2, LOG2, pt, 2 * CHUNK + 3, other, len2, &l3), BKV_OK);
        CU_ASSERT_EQUAL(l3, len);
        memcpy(x, other, HDR);
        memcpy(x + HDR, st + HDR, len - HDR);
        CU_ASSERT_EQUAL(open_rc(x, len), BKV_ERR_DECRYPT);
        free(pt);
    }
    free(x);
    free(other);
    free(st);
}

static void test_trailing_data(void)
{
    size_t len, len_full;
    uint8_t *st = seal(CHUNK + 40, LOG2, &len, NULL);       /* a short final chunk */
    uint8_t *full = seal(2 * CHUNK, LOG2, &len_full, NULL); /* a full final chunk */
    uint8_t *x = malloc(2 * len_full + 64);

    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    for (size_t extra = 1; extra <= 2 * PIECE; extra += (extra < 40 ? 1 : 97)) {
        memcpy(x, st, len);
        memset(x + len, 0, extra);
        CU_ASSERT_NOT_EQUAL(open_rc(x, len + extra), BKV_OK);
        memcpy(x, full, len_full);
        memset(x + len_full, 0, extra);
        /* After a full final chunk it is named as data past the end. */
        CU_ASSERT_EQUAL(open_rc(x, len_full + extra), BKV_ERR_LENGTH);
    }
    /* A whole second stream appended. */
    memcpy(x, full, len_full);
    memcpy(x + len_full, full, len_full);
    CU_ASSERT_EQUAL(open_rc(x, 2 * len_full), BKV_ERR_LENGTH);
    free(x);
    free(full);
    free(st);
}

/* The incremental API directly: flags, indexes, lengths, the counter limit. */
static void test_incremental(void)
{
    struct bkv_stream s, o;
    uint8_t header[HDR], pt[CHUNK], ct[PIECE], back[CHUNK];

    memset(pt, 0x33, sizeof(pt));
    CU_ASSERT_EQUAL(bkv_stream_seal_init(&s, key, salt, LOG2 - 1, header), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_stream_seal_init(&s, key, salt, BKV_STREAM_LOG2_MAX + 1, header),
                    BKV_ERR_INVALID);
    CU_ASSERT_EQUAL_FATAL(bkv_stream_seal_init(&s, key, salt, LOG2, header), BKV_OK);
    CU_ASSERT_EQUAL(s.chunk_len, CHUNK);
    CU_ASSERT_EQUAL(bkv_stream_open_init(&o, key, header, HDR + 1), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL_FATAL(bkv_stream_open_init(&o, key, header, HDR), BKV_OK);

    /* Lengths: a non-last chunk is exactly one chunk, a last one at most that. */
    CU_ASSERT_EQUAL(bkv_stream_seal(&s, 0, 0, pt, CHUNK - 1, ct), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_stream_seal(&s, 0, 1, pt, CHUNK + 1, ct), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_stream_open(&o, 0, 0, ct, PIECE - 1, back), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_stream_open(&o, 0, 1, ct, 15, back), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(bkv_stream_open(&o, 0, 1, ct, PIECE + 1, back), BKV_ERR_LENGTH);
    /* Directions are not mixed up. */
    CU_ASSERT_EQUAL(bkv_stream_seal(&o, 0, 1, pt, 10, ct), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_stream_open(&s, 0, 1, ct, 26, back), BKV_ERR_INVALID);

    /* Index and flag are bound: only the exact pair opens, the flag alone is named. */
    CU_ASSERT_EQUAL(bkv_stream_seal(&s, 7, 0, pt, CHUNK, ct), BKV_OK);
    CU_ASSERT_EQUAL(bkv_stream_open(&o, 7, 0, ct, PIECE, back), BKV_OK);
    CU_ASSERT_EQUAL(memcmp(back, pt, CHUNK), 0);
    CU_ASSERT_EQUAL(bkv_stream_open(&o, 6, 0, ct, PIECE, back), BKV_ERR_DECRYPT);
    CU_ASSERT_EQUAL(bkv_stream_open(&o, 8, 0, ct, PIECE, back), BKV_ERR_DECRYPT);
    CU_ASSERT_EQUAL(bkv_stream_open(&o, 7 + ((uint64_t)1 << 32), 0, ct, PIECE, back),
                    BKV_ERR_LIMIT);
    memset(back, 0xaa, sizeof(back));
    CU_ASSERT_EQUAL(bkv_stream_open(&o, 7, 1, ct, PIECE, back), BKV_ERR_LENGTH); /* cut here */
    for (size_t i = 0; i < CHUNK; i++)
        CU_ASSERT_EQUAL_FATAL(back[i], 0); /* nothing of a refused chunk is left */
    CU_ASSERT_EQUAL(bkv_stream_seal(&s, 7, 1, pt, CHUNK, ct), BKV_OK);
    CU_ASSERT_EQUAL(bkv_stream_open(&o, 7, 0, ct, PIECE, back), BKV_ERR_LENGTH); /* data follows */
    CU_ASSERT_EQUAL(bkv_stream_open(&o, 7, 1, ct, PIECE, back), BKV_OK);

    /* The 32-bit counter: the last index works, the next is refused. */
    CU_ASSERT_EQUAL(bkv_stream_seal(&s, BKV_STREAM_MAX_INDEX, 1, pt, 5, ct), BKV_OK);
    CU_ASSERT_EQUAL(bkv_stream_open(&o, BKV_STREAM_MAX_INDEX, 1, ct, 21, back), BKV_OK);
    CU_ASSERT_EQUAL(bkv_stream_open(&o, 0, 1, ct, 21, back), BKV_ERR_DECRYPT);
    CU_ASSERT_EQUAL(bkv_stream_seal(&s, (uint64_t)BKV_STREAM_MAX_INDEX + 1, 1, pt, 5, ct),
                    BKV_ERR_LIMIT);
    CU_ASSERT_EQUAL(bkv_stream_seal(&s, UINT64_MAX, 0, pt, CHUNK, ct), BKV_ERR_LIMIT);

    /* An empty final chunk after full ones is also a valid ending. */
    CU_ASSERT_EQUAL(bkv_stream_seal(&s, 1, 1, NULL, 0, ct), BKV_OK);
    CU_ASSERT_EQUAL(bkv_stream_open(&o, 1, 1, ct, 16, NULL), BKV_OK);

    bkv_stream_free(&s);
    bkv_stream_free(&o);
    CU_ASSERT_PTR_NULL(s.aead);
    bkv_stream_free(&s); /* twice is harmless */
    bkv_stream_free(NULL);
}

static void test_buffer_bounds(void)
{
    size_t len, out_len;
    uint8_t *st = seal(CHUNK + 1, LOG2, &len, NULL);
    uint8_t small[10];

    CU_ASSERT_EQUAL(bkv_stream_seal_buffer(key, salt, LOG2, small, 10, small, 10, &out_len),
                    BKV_ERR_LENGTH);
    /* out smaller than the plaintext could be */
    CU_ASSERT_EQUAL(bkv_stream_open_buffer(key, st, len, small, sizeof(small), &out_len),
                    BKV_ERR_INVALID);
    free(st);
}

static CU_TestInfo tests[] = {
    {"sealed length and its limits", test_sealed_len},
    {"layout and derivation match an independent construction", test_matches_spec},
    {"round trip at 0, 1, chunk-1, chunk, chunk+1 and several chunks", test_round_trip},
    {"a fresh salt gives an unrelated stream", test_salt_separates_files},
    {"truncation at every length is refused", test_truncation},
    {"reordered, repeated and dropped chunks are refused", test_reorder_repeat_drop},
    {"every single bit flip is refused", test_every_bit_flip},
    {"every one-bit change of the key is refused", test_wrong_key},
    {"header tampering, swapping and other versions", test_header_tampering},
    {"data after the final chunk is refused", test_trailing_data},
    {"incremental API: flags, indexes, lengths, counter limit", test_incremental},
    {"whole-buffer bounds", test_buffer_bounds},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return bkv_test_main("proto_stream", tests, suite_init, NULL);
}
