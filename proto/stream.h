/*
 * The backup stream: chunked AES-256-GCM in the STREAM construction (Hoang,
 * Reyhanitabar, Rogaway and Vizar, "Online Authenticated-Encryption and its
 * Nonce-Reuse Misuse-Resistance", CRYPTO 2015), keyed per file by HKDF-SHA256
 * from the backup key K and a random salt. docs/protocol.md, "The backup
 * stream", has the byte layout.
 *
 *   stream = header (38) || chunk_0 || ... || chunk_n
 *   header = "BKVS" || version 1 || log2(chunk size) || salt (32)
 *   chunk  = AES-256-GCM(file key, prefix || be32(i) || last, plaintext) || tag
 *
 * Every chunk but the last holds exactly one chunk size of plaintext; the last
 * holds 0 up to one chunk size, so an empty plaintext is one empty last chunk.
 *
 * This module is pure: no I/O, no randomness (the caller brings the salt).
 * The incremental API (init, then seal or open chunk i with its last flag) is
 * what client/backup.c runs over file descriptors; the whole-buffer functions
 * run the same rules over memory for tests, fuzzing and small inputs.
 *
 * A struct bkv_stream belongs to the caller and to one thread at a time; it
 * holds the file key inside an OpenSSL cipher context, so the caller must call
 * bkv_stream_free when done, also after an error. Functions are reentrant.
 */
#ifndef BKV_PROTO_STREAM_H
#define BKV_PROTO_STREAM_H

#include <stddef.h>
#include <stdint.h>

#define BKV_STREAM_KEY_LEN    32
#define BKV_STREAM_SALT_LEN   32
#define BKV_STREAM_HEADER_LEN 38 /* magic 4, version 1, log2 1, salt 32 */
#define BKV_STREAM_TAG_LEN    16
#define BKV_STREAM_PREFIX_LEN 7 /* nonce = prefix (7) || be32 counter || flag */
#define BKV_STREAM_VERSION    1

#define BKV_STREAM_LOG2_MIN     10 /* 1 KiB chunks */
#define BKV_STREAM_LOG2_MAX     24 /* 16 MiB chunks */
#define BKV_STREAM_LOG2_DEFAULT 16 /* 64 KiB chunks */
#define BKV_STREAM_CHUNK_MAX    ((size_t)1 << BKV_STREAM_LOG2_MAX)

/* The counter is 32 bits: chunk indexes 0 .. 2^32 - 1. */
#define BKV_STREAM_MAX_INDEX UINT32_MAX

struct evp_cipher_ctx_st; /* OpenSSL's EVP_CIPHER_CTX */

struct bkv_stream {
    struct evp_cipher_ctx_st *aead; /* AES-256-GCM with the file key set */
    uint8_t prefix[BKV_STREAM_PREFIX_LEN];
    size_t chunk_len; /* plaintext bytes in every chunk but the last */
    int sealing;      /* 1: seal only, 0: open only */
};

/*
 * Start sealing: derive the file key from key (borrowed) and salt (borrowed;
 * 32 fresh random bytes per stream, which the caller draws) and write the
 * stream header to header. chunk_log2 is in [BKV_STREAM_LOG2_MIN,
 * BKV_STREAM_LOG2_MAX], else BKV_ERR_INVALID. *s is overwritten: free a
 * stream before initialising it again. On failure *s needs no free but
 * freeing it is harmless.
 */
int bkv_stream_seal_init(struct bkv_stream *s, const uint8_t key[static BKV_STREAM_KEY_LEN],
                         const uint8_t salt[static BKV_STREAM_SALT_LEN], unsigned chunk_log2,
                         uint8_t header[static BKV_STREAM_HEADER_LEN]);

/*
 * Start opening a stream whose first header_len bytes (borrowed) are given;
 * header_len is BKV_STREAM_HEADER_LEN unless the stream ended earlier.
 * Checks, in this order: BKV_ERR_FORMAT if it does not start with the magic
 * (also for fewer than 4 bytes), BKV_ERR_UNSUPPORTED for another version,
 * BKV_ERR_LENGTH if header_len is not BKV_STREAM_HEADER_LEN (a stream cut
 * inside its header), BKV_ERR_FORMAT for a chunk size out of bounds. A wrong
 * key or a tampered header is not detectable here: it makes chunk 0 fail.
 */
int bkv_stream_open_init(struct bkv_stream *s, const uint8_t key[static BKV_STREAM_KEY_LEN],
                         const uint8_t *header, size_t header_len);

/*
 * Seal chunk index: ct (pt_len + BKV_STREAM_TAG_LEN bytes, written; it may
 * not overlap pt) gets the ciphertext and tag. A chunk that is not last must
 * hold exactly s->chunk_len bytes, a last chunk at most that (else
 * BKV_ERR_LENGTH). index > BKV_STREAM_MAX_INDEX gives BKV_ERR_LIMIT. The
 * caller numbers chunks 0, 1, 2 ... and marks exactly the final one last.
 */
int bkv_stream_seal(struct bkv_stream *s, uint64_t index, int last, const uint8_t *pt,
                    size_t pt_len, uint8_t *ct);

/*
 * Open chunk index from ct (ct_len bytes, borrowed) into pt (ct_len -
 * BKV_STREAM_TAG_LEN bytes, written; it may not overlap ct). last says whether
 * the caller found the stream to end right after this chunk.
 *   BKV_OK             the chunk is authentic, at this index, with this flag;
 *   BKV_ERR_LENGTH     ct_len impossible for the flag (a non-last chunk must be
 *                      exactly chunk_len + tag, a last one at least a tag), or
 *                      the chunk is authentic at this index but with the other
 *                      flag: with last = 1 the stream was cut at a chunk
 *                      boundary, with last = 0 data follows the final chunk;
 *   BKV_ERR_DECRYPT    anything else: a wrong key, a changed header or
 *                      ciphertext, a chunk moved, repeated or cut mid-chunk;
 *   BKV_ERR_LIMIT      index > BKV_STREAM_MAX_INDEX.
 * On any failure pt is wiped.
 */
int bkv_stream_open(struct bkv_stream *s, uint64_t index, int last, const uint8_t *ct,
                    size_t ct_len, uint8_t *pt);

/* Free the cipher context (which cleanses the key) and wipe *s. NULL is fine. */
void bkv_stream_free(struct bkv_stream *s);

/*
 * *out = the sealed size of pt_len bytes with chunks of 2^chunk_log2 bytes:
 * header + pt_len + one tag per chunk, at least one chunk. BKV_ERR_LIMIT if
 * that does not fit in size_t or needs more than 2^32 chunks.
 */
int bkv_stream_sealed_len(size_t pt_len, unsigned chunk_log2, size_t *out);

/*
 * Whole-buffer seal: out (cap bytes, written) gets the complete stream and
 * *out_len its size; BKV_ERR_LENGTH if cap is too small. Same key and salt
 * rules as bkv_stream_seal_init.
 */
int bkv_stream_seal_buffer(const uint8_t key[static BKV_STREAM_KEY_LEN],
                           const uint8_t salt[static BKV_STREAM_SALT_LEN], unsigned chunk_log2,
                           const uint8_t *pt, size_t pt_len, uint8_t *out, size_t cap,
                           size_t *out_len);

/*
 * Whole-buffer open of in (in_len bytes, borrowed), with the same splitting
 * rule as a reader that looks ahead: a chunk is last when nothing follows it.
 * out (cap bytes, written; cap must be at least in_len - header - tag, else
 * BKV_ERR_INVALID, so in_len always does) gets the plaintext and *out_len its
 * size, only on BKV_OK; on failure what was written to out is wiped. Codes as bkv_stream_open_init
 * and bkv_stream_open; a stream with no chunk, or whose last piece is shorter
 * than a tag, gives BKV_ERR_LENGTH.
 */
int bkv_stream_open_buffer(const uint8_t key[static BKV_STREAM_KEY_LEN], const uint8_t *in,
                           size_t in_len, uint8_t *out, size_t cap, size_t *out_len);

#endif
