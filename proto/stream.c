/*
 * The backup stream format (STREAM over AES-256-GCM); stream.h has the API,
 * docs/protocol.md the layout and the reasoning.
 *
 * Normal path: the header is built (seal) or checked (open), then HKDF-SHA256
 * turns K, the salt and the whole header into the file key and the nonce
 * prefix, and the key is set once in an EVP AES-256-GCM context; each chunk
 * then only sets its nonce, prefix || be32(index) || last flag, and runs GCM.
 * Failure modes: a header that is not ours gives BKV_ERR_FORMAT, another
 * version BKV_ERR_UNSUPPORTED, a cut header BKV_ERR_LENGTH; a chunk that does
 * not authenticate BKV_ERR_DECRYPT, unless it authenticates with the other
 * last flag, which means the stream was cut at a chunk boundary or extended
 * past its end (BKV_ERR_LENGTH); an index past 2^32 - 1 BKV_ERR_LIMIT;
 * OpenSSL failures BKV_ERR_CRYPTO with its error queue cleared. Derived keys
 * are wiped on every path, and plaintext is wiped when a chunk fails.
 */
#include "stream.h"

#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "err.h"
#include "kdf.h"
#include "util.h"

#define NONCE_LEN 12
#define OKM_LEN   (BKV_STREAM_KEY_LEN + BKV_STREAM_PREFIX_LEN)

static const uint8_t magic[4] = {'B', 'K', 'V', 'S'};
static const char label[] = "BKV-STREAM-v1";

/*
 * file key || nonce prefix = HKDF-Expand(HKDF-Extract(salt, K),
 * "BKV-STREAM-v1" || header, 39). The whole header is in info, so changing
 * any header byte (chunk size included) gives an unrelated key.
 */
static int derive(const uint8_t key[static BKV_STREAM_KEY_LEN],
                  const uint8_t header[static BKV_STREAM_HEADER_LEN], int sealing,
                  struct bkv_stream *s)
{
    uint8_t prk[BKV_HASH_LEN], okm[OKM_LEN];
    struct bkv_buf ikm = {key, BKV_STREAM_KEY_LEN};
    struct bkv_buf info[] = {{(const uint8_t *)label, sizeof(label) - 1},
                             {header, BKV_STREAM_HEADER_LEN}};
    EVP_CIPHER_CTX *c = NULL;
    int rc;

    rc = bkv_hkdf_extract(header + 6, BKV_STREAM_SALT_LEN, &ikm, 1, prk);
    if (rc != BKV_OK)
        goto out;
    rc = bkv_hkdf_expand(prk, sizeof(prk), info, 2, okm, sizeof(okm));
    if (rc != BKV_OK)
        goto out;
    c = EVP_CIPHER_CTX_new();
    if (c == NULL) {
        rc = BKV_ERR_NOMEM;
        goto out;
    }
    if (EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, okm, NULL, sealing) != 1) {
        rc = BKV_ERR_CRYPTO;
        goto out;
    }
    s->aead = c;
    c = NULL;
    memcpy(s->prefix, okm + BKV_STREAM_KEY_LEN, BKV_STREAM_PREFIX_LEN);
    s->chunk_len = (size_t)1 << header[5];
    s->sealing = sealing;
    rc = BKV_OK;
out:
    ERR_clear_error();
    EVP_CIPHER_CTX_free(c);
    bkv_wipe(prk, sizeof(prk));
    bkv_wipe(okm, sizeof(okm));
    return rc;
}

int bkv_stream_seal_init(struct bkv_stream *s, const uint8_t key[static BKV_STREAM_KEY_LEN],
                         const uint8_t salt[static BKV_STREAM_SALT_LEN], unsigned chunk_log2,
                         uint8_t header[static BKV_STREAM_HEADER_LEN])
{
    if (s == NULL)
        return BKV_ERR_INVALID;
    memset(s, 0, sizeof(*s));
    if (key == NULL || salt == NULL || header == NULL || chunk_log2 < BKV_STREAM_LOG2_MIN ||
        chunk_log2 > BKV_STREAM_LOG2_MAX)
        return BKV_ERR_INVALID;
    memcpy(header, magic, sizeof(magic));
    header[4] = BKV_STREAM_VERSION;
    header[5] = (uint8_t)chunk_log2;
    memcpy(header + 6, salt, BKV_STREAM_SALT_LEN);
    return derive(key, header, 1, s);
}

int bkv_stream_open_init(struct bkv_stream *s, const uint8_t key[static BKV_STREAM_KEY_LEN],
                         const uint8_t *header, size_t header_len)
{
    if (s == NULL)
        return BKV_ERR_INVALID;
    memset(s, 0, sizeof(*s));
    if (key == NULL || (header == NULL && header_len > 0))
        return BKV_ERR_INVALID;
    if (header_len < sizeof(magic) || memcmp(header, magic, sizeof(magic)) != 0)
        return BKV_ERR_FORMAT;
    /* The version before the length: another version may have another header. */
    if (header_len > 4 && header[4] != BKV_STREAM_VERSION)
        return BKV_ERR_UNSUPPORTED;
    if (header_len != BKV_STREAM_HEADER_LEN)
        return BKV_ERR_LENGTH;
    if (header[5] < BKV_STREAM_LOG2_MIN || header[5] > BKV_STREAM_LOG2_MAX)
        return BKV_ERR_FORMAT;
    return derive(key, header, 0, s);
}

static void make_nonce(const struct bkv_stream *s, uint32_t index, int last,
                       uint8_t nonce[static NONCE_LEN])
{
    memcpy(nonce, s->prefix, BKV_STREAM_PREFIX_LEN);
    nonce[7] = (uint8_t)(index >> 24);
    nonce[8] = (uint8_t)(index >> 16);
    nonce[9] = (uint8_t)(index >> 8);
    nonce[10] = (uint8_t)index;
    nonce[11] = last ? 1 : 0;
}

int bkv_stream_seal(struct bkv_stream *s, uint64_t index, int last, const uint8_t *pt,
                    size_t pt_len, uint8_t *ct)
{
    uint8_t nonce[NONCE_LEN], fin[16];
    int len = 0;
    int rc = BKV_ERR_CRYPTO;

    if (s == NULL || s->aead == NULL || !s->sealing || ct == NULL || (pt == NULL && pt_len > 0))
        return BKV_ERR_INVALID;
    if (index > BKV_STREAM_MAX_INDEX)
        return BKV_ERR_LIMIT;
    if (pt_len > s->chunk_len || (!last && pt_len != s->chunk_len))
        return BKV_ERR_LENGTH;
    make_nonce(s, (uint32_t)index, last, nonce);
    if (EVP_CipherInit_ex(s->aead, NULL, NULL, NULL, nonce, 1) != 1)
        goto out;
    if (pt_len > 0 &&
        (EVP_CipherUpdate(s->aead, ct, &len, pt, (int)pt_len) != 1 || (size_t)len != pt_len))
        goto out;
    if (EVP_CipherFinal_ex(s->aead, fin, &len) != 1 || len != 0)
        goto out;
    if (EVP_CIPHER_CTX_ctrl(s->aead, EVP_CTRL_AEAD_GET_TAG, BKV_STREAM_TAG_LEN, ct + pt_len) != 1)
        goto out;
    rc = BKV_OK;
out:
    if (rc != BKV_OK)
        ERR_clear_error();
    return rc;
}

/* One GCM open with the given flag: BKV_OK, BKV_ERR_DECRYPT or BKV_ERR_CRYPTO. */
static int open_once(struct bkv_stream *s, uint32_t index, int last, const uint8_t *ct, size_t n,
                     uint8_t *pt)
{
    uint8_t nonce[NONCE_LEN], tag[BKV_STREAM_TAG_LEN], fin[16];
    int len = 0;
    int rc = BKV_ERR_CRYPTO;

    make_nonce(s, index, last, nonce);
    memcpy(tag, ct + n, sizeof(tag));
    if (EVP_CipherInit_ex(s->aead, NULL, NULL, NULL, nonce, 0) != 1)
        goto out;
    if (EVP_CIPHER_CTX_ctrl(s->aead, EVP_CTRL_AEAD_SET_TAG, BKV_STREAM_TAG_LEN, tag) != 1)
        goto out;
    if (n > 0 && (EVP_CipherUpdate(s->aead, pt, &len, ct, (int)n) != 1 || (size_t)len != n))
        goto out;
    rc = EVP_CipherFinal_ex(s->aead, fin, &len) > 0 ? BKV_OK : BKV_ERR_DECRYPT;
out:
    if (rc != BKV_OK)
        ERR_clear_error();
    return rc;
}

int bkv_stream_open(struct bkv_stream *s, uint64_t index, int last, const uint8_t *ct,
                    size_t ct_len, uint8_t *pt)
{
    size_t n;
    int rc;

    if (s == NULL || s->aead == NULL || s->sealing || ct == NULL)
        return BKV_ERR_INVALID;
    if (index > BKV_STREAM_MAX_INDEX)
        return BKV_ERR_LIMIT;
    if (ct_len < BKV_STREAM_TAG_LEN)
        return BKV_ERR_LENGTH;
    n = ct_len - BKV_STREAM_TAG_LEN;
    if (pt == NULL && n > 0)
        return BKV_ERR_INVALID;
    if (n > s->chunk_len || (!last && n != s->chunk_len))
        return BKV_ERR_LENGTH;
    rc = open_once(s, (uint32_t)index, last, ct, n, pt);
    /*
     * Tell a stream cut at a chunk boundary (or extended past its final
     * chunk) from a damaged one: the chunk is authentic, only its place as
     * last or not disagrees with where the stream ended. Nothing of it is
     * released either way.
     */
    if (rc == BKV_ERR_DECRYPT && n == s->chunk_len &&
        open_once(s, (uint32_t)index, !last, ct, n, pt) == BKV_OK)
        rc = BKV_ERR_LENGTH;
    if (rc != BKV_OK)
        bkv_wipe(pt, n);
    return rc;
}

void bkv_stream_free(struct bkv_stream *s)
{
    if (s == NULL)
        return;
    EVP_CIPHER_CTX_free(s->aead); /* cleanses the key schedule */
    bkv_wipe(s, sizeof(*s));
    s->aead = NULL;
}

int bkv_stream_sealed_len(size_t pt_len, unsigned chunk_log2, size_t *out)
{
    size_t chunk, chunks, total;

    if (out == NULL || chunk_log2 < BKV_STREAM_LOG2_MIN || chunk_log2 > BKV_STREAM_LOG2_MAX)
        return BKV_ERR_INVALID;
    chunk = (size_t)1 << chunk_log2;
    chunks = pt_len == 0 ? 1 : (pt_len - 1) / chunk + 1;
    if ((uint64_t)chunks - 1 > BKV_STREAM_MAX_INDEX)
        return BKV_ERR_LIMIT;
    if (chunks > (SIZE_MAX - BKV_STREAM_HEADER_LEN) / BKV_STREAM_TAG_LEN)
        return BKV_ERR_LIMIT;
    total = BKV_STREAM_HEADER_LEN + chunks * BKV_STREAM_TAG_LEN;
    if (pt_len > SIZE_MAX - total)
        return BKV_ERR_LIMIT;
    *out = total + pt_len;
    return BKV_OK;
}

int bkv_stream_seal_buffer(const uint8_t key[static BKV_STREAM_KEY_LEN],
                           const uint8_t salt[static BKV_STREAM_SALT_LEN], unsigned chunk_log2,
                           const uint8_t *pt, size_t pt_len, uint8_t *out, size_t cap,
                           size_t *out_len)
{
    struct bkv_stream s = {0};
    size_t need, off = 0, pos = BKV_STREAM_HEADER_LEN;
    uint64_t index = 0;
    int rc;

    if (out == NULL || out_len == NULL || (pt == NULL && pt_len > 0))
        return BKV_ERR_INVALID;
    rc = bkv_stream_sealed_len(pt_len, chunk_log2, &need);
    if (rc != BKV_OK)
        return rc;
    if (cap < need)
        return BKV_ERR_LENGTH;
    rc = bkv_stream_seal_init(&s, key, salt, chunk_log2, out);
    if (rc != BKV_OK)
        goto out;
    do {
        size_t n = pt_len - off < s.chunk_len ? pt_len - off : s.chunk_len;
        int last = off + n == pt_len;

        rc = bkv_stream_seal(&s, index++, last, pt + off, n, out + pos);
        if (rc != BKV_OK)
            goto out;
        off += n;
        pos += n + BKV_STREAM_TAG_LEN;
    } while (off < pt_len);
    *out_len = pos;
out:
    bkv_stream_free(&s);
    return rc;
}

int bkv_stream_open_buffer(const uint8_t key[static BKV_STREAM_KEY_LEN], const uint8_t *in,
                           size_t in_len, uint8_t *out, size_t cap, size_t *out_len)
{
    struct bkv_stream s = {0};
    size_t pos, off = 0, piece;
    uint64_t index = 0;
    int last, rc;

    if (key == NULL || (in == NULL && in_len > 0) || out_len == NULL || (out == NULL && cap > 0))
        return BKV_ERR_INVALID;
    if (in_len > BKV_STREAM_HEADER_LEN + BKV_STREAM_TAG_LEN &&
        cap < in_len - BKV_STREAM_HEADER_LEN - BKV_STREAM_TAG_LEN)
        return BKV_ERR_INVALID;
    rc = bkv_stream_open_init(&s, key, in,
                              in_len < BKV_STREAM_HEADER_LEN ? in_len : BKV_STREAM_HEADER_LEN);
    if (rc != BKV_OK)
        goto out;
    pos = BKV_STREAM_HEADER_LEN;
    piece = s.chunk_len + BKV_STREAM_TAG_LEN;
    do {
        size_t left = in_len - pos;
        size_t n;

        /* A chunk is last exactly when nothing follows it. */
        last = left <= piece;
        n = last ? left : piece;
        rc = bkv_stream_open(&s, index++, last, in + pos, n, out != NULL ? out + off : NULL);
        if (rc != BKV_OK)
            goto out;
        pos += n;
        off += n - BKV_STREAM_TAG_LEN;
    } while (!last);
    *out_len = off;
out:
    if (rc != BKV_OK && out != NULL)
        bkv_wipe(out, off);
    bkv_stream_free(&s);
    return rc;
}
