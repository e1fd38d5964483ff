/*
 * bkv_backup_encrypt / bkv_backup_decrypt: the backup stream (proto/stream.c)
 * over file descriptors, in constant memory (one chunk of plaintext and one of
 * ciphertext, 64 KiB each, whatever the size of the backup).
 *
 * Normal path: encrypt writes the header, then reads one full chunk at a time
 * plus one byte (short reads, EINTR and non-blocking descriptors are
 * handled): that byte ahead tells whether the chunk is the last one. Decrypt
 * reads the header, then one sealed chunk at a time with the same one-byte
 * look-ahead, and writes each chunk's plaintext only once it authenticates.
 * Failure modes: a read or write error is BKV_ERR_IO; a header that is not
 * ours BKV_ERR_FORMAT or BKV_ERR_UNSUPPORTED; a stream cut short, or with
 * data after its end, BKV_ERR_LENGTH; a wrong key or any alteration
 * BKV_ERR_DECRYPT. Each comes with a sentence for a person in err. After a
 * decrypt failure the output already holds the chunks before the bad one, so
 * the caller must discard it. Plaintext buffers are wiped before they are
 * freed. Writing to a pipe whose reader has gone raises SIGPIPE unless the
 * caller ignores that signal, in which case the call returns BKV_ERR_IO.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "client/bkv.h"
#include "client/internal.h"
#include "proto/err.h"
#include "proto/stream.h"
#include "proto/util.h"

#define CHUNK_LOG2 BKV_STREAM_LOG2_DEFAULT

static const char *errno_text(int e, char *buf, size_t cap)
{
    if (strerror_r(e, buf, cap) != 0)
        snprintf(buf, cap, "error %d", e);
    return buf;
}

/* Wait until fd is ready for events, for a descriptor that said EAGAIN. */
static int wait_ready(int fd, short events)
{
    struct pollfd p = {.fd = fd, .events = events};

    while (poll(&p, 1, -1) < 0)
        if (errno != EINTR)
            return -1;
    return 0;
}

/*
 * Read until n bytes are in or the input ends: *got is the count, short only
 * at the end of input. On error errno is kept and BKV_ERR_IO returned.
 */
static int read_full(int fd, uint8_t *p, size_t n, size_t *got)
{
    size_t off = 0;

    while (off < n) {
        ssize_t r = read(fd, p + off, n - off);

        if (r > 0)
            off += (size_t)r;
        else if (r == 0)
            break;
        else if (errno == EINTR)
            continue;
        else if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait_ready(fd, POLLIN) == 0)
            continue;
        else {
            *got = off;
            return BKV_ERR_IO;
        }
    }
    *got = off;
    return BKV_OK;
}

static int write_full(int fd, const uint8_t *p, size_t n)
{
    size_t off = 0;

    while (off < n) {
        ssize_t w = write(fd, p + off, n - off);

        if (w > 0) {
            off += (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_ready(fd, POLLOUT) != 0)
                return BKV_ERR_IO;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else {
            if (w == 0)
                errno = EIO;
            return BKV_ERR_IO;
        }
    }
    return BKV_OK;
}

int bkv_backup_encrypt(const uint8_t key[BKV_KEY_LEN], int in_fd, int out_fd, char *err,
                       size_t err_cap)
{
    struct bkv_stream s = {0};
    uint8_t salt[BKV_STREAM_SALT_LEN], header[BKV_STREAM_HEADER_LEN];
    uint8_t *pt = NULL, *ct = NULL;
    size_t chunk = 0, have = 0, got, n;
    uint64_t index = 0;
    char why[128];
    int last, rc;

    if (key == NULL || in_fd < 0 || out_fd < 0) {
        bkv_client_err(err, err_cap, "encrypt: no key, or no input or output to work on");
        return BKV_ERR_INVALID;
    }
    if (RAND_bytes(salt, sizeof(salt)) != 1) {
        bkv_client_err(err, err_cap, "encrypt: the system could not provide random numbers");
        return BKV_ERR_CRYPTO;
    }
    rc = bkv_stream_seal_init(&s, key, salt, CHUNK_LOG2, header);
    if (rc != BKV_OK) {
        bkv_client_err(err, err_cap, "encrypt: could not set up the cipher (%s)", bkv_strerror(rc));
        goto out;
    }
    chunk = s.chunk_len;
    pt = malloc(chunk + 1); /* a chunk and the first byte of the next */
    ct = malloc(chunk + BKV_STREAM_TAG_LEN);
    if (pt == NULL || ct == NULL) {
        rc = BKV_ERR_NOMEM;
        bkv_client_err(err, err_cap, "encrypt: out of memory");
        goto out;
    }
    if (write_full(out_fd, header, sizeof(header)) != BKV_OK)
        goto write_failed;
    for (;;) {
        if (read_full(in_fd, pt + have, chunk + 1 - have, &got) != BKV_OK)
            goto read_failed;
        have += got;
        /* A chunk is the last one exactly when nothing follows it. */
        last = have <= chunk;
        n = last ? have : chunk;
        rc = bkv_stream_seal(&s, index, last, pt, n, ct);
        if (rc == BKV_ERR_LIMIT) {
            bkv_client_err(err, err_cap,
                           "encrypt: the input is too large for one backup (2^32 chunks)");
            goto out;
        }
        if (rc != BKV_OK) {
            bkv_client_err(err, err_cap, "encrypt: the cipher failed (%s)", bkv_strerror(rc));
            goto out;
        }
        if (write_full(out_fd, ct, n + BKV_STREAM_TAG_LEN) != BKV_OK)
            goto write_failed;
        if (last)
            break;
        index++;
        pt[0] = pt[chunk]; /* the look-ahead byte starts the next chunk */
        have = 1;
    }
    rc = BKV_OK;
    goto out;

read_failed:
    rc = BKV_ERR_IO;
    bkv_client_err(err, err_cap, "encrypt: could not read the input: %s",
                   errno_text(errno, why, sizeof(why)));
    goto out;
write_failed:
    rc = BKV_ERR_IO;
    bkv_client_err(err, err_cap, "encrypt: could not write the encrypted backup: %s",
                   errno_text(errno, why, sizeof(why)));
out:
    bkv_wipe(pt, chunk + 1); /* NULL when set-up failed */
    free(pt);
    free(ct);
    bkv_stream_free(&s);
    return rc;
}

/* The sentence for a header that bkv_stream_open_init refused. */
static void say_header(char *err, size_t cap, int rc, const uint8_t *header, size_t got)
{
    if (rc == BKV_ERR_FORMAT && got == 0)
        bkv_client_err(err, cap, "decrypt: the input is empty; it is not a BKV backup");
    else if (rc == BKV_ERR_FORMAT && got >= 4 && memcmp(header, "BKVS", 4) == 0)
        bkv_client_err(err, cap,
                       "decrypt: the backup header is damaged (its chunk size is impossible)");
    else if (rc == BKV_ERR_FORMAT)
        bkv_client_err(err, cap,
                       "decrypt: this is not a BKV backup (it does not start with \"BKVS\")");
    else if (rc == BKV_ERR_UNSUPPORTED)
        bkv_client_err(
            err, cap,
            "decrypt: this backup has format version %u, which this version of BKV cannot "
            "read; use a newer bkv",
            (unsigned)header[4]);
    else if (rc == BKV_ERR_LENGTH)
        bkv_client_err(err, cap, "decrypt: the backup was cut short inside its header");
    else
        bkv_client_err(err, cap, "decrypt: could not set up the cipher (%s)", bkv_strerror(rc));
}

int bkv_backup_decrypt(const uint8_t key[BKV_KEY_LEN], int in_fd, int out_fd, char *err,
                       size_t err_cap)
{
    struct bkv_stream s = {0};
    uint8_t header[BKV_STREAM_HEADER_LEN];
    uint8_t *pt = NULL, *ct = NULL;
    size_t chunk = 0, piece, have = 0, got, n;
    uint64_t index = 0, offset = BKV_STREAM_HEADER_LEN;
    char why[128];
    int last, rc;

    if (key == NULL || in_fd < 0 || out_fd < 0) {
        bkv_client_err(err, err_cap, "decrypt: no key, or no input or output to work on");
        return BKV_ERR_INVALID;
    }
    if (read_full(in_fd, header, sizeof(header), &got) != BKV_OK)
        goto read_failed;
    rc = bkv_stream_open_init(&s, key, header, got);
    if (rc != BKV_OK) {
        say_header(err, err_cap, rc, header, got);
        goto out;
    }
    chunk = s.chunk_len;
    piece = chunk + BKV_STREAM_TAG_LEN;
    pt = malloc(chunk);
    ct = malloc(piece + 1); /* a sealed chunk and the first byte of the next */
    if (pt == NULL || ct == NULL) {
        rc = BKV_ERR_NOMEM;
        bkv_client_err(err, err_cap, "decrypt: out of memory");
        goto out;
    }
    for (;;) {
        if (read_full(in_fd, ct + have, piece + 1 - have, &got) != BKV_OK)
            goto read_failed;
        have += got;
        /* A chunk is the last one exactly when nothing follows it. */
        last = have <= piece;
        n = last ? have : piece;
        rc = bkv_stream_open(&s, index, last, ct, n, pt);
        if (rc == BKV_ERR_LENGTH && last) {
            bkv_client_err(
                err, err_cap,
                "decrypt: the backup was cut short (it ends after %llu bytes, before its final "
                "chunk); discard any output",
                (unsigned long long)(offset + n));
            goto out;
        }
        if (rc == BKV_ERR_LENGTH) {
            bkv_client_err(
                err, err_cap,
                "decrypt: the backup has extra data after its end (from byte %llu); the file was "
                "altered or joined to another; discard any output",
                (unsigned long long)(offset + n));
            goto out;
        }
        if (rc == BKV_ERR_DECRYPT && index == 0) {
            bkv_client_err(err, err_cap,
                           "decrypt: the key does not fit this backup, or the file was altered");
            goto out;
        }
        if (rc == BKV_ERR_DECRYPT) {
            bkv_client_err(
                err, err_cap,
                "decrypt: the backup was altered or cut short: chunk %llu (from byte %llu) does "
                "not authenticate; discard the output written so far",
                (unsigned long long)index, (unsigned long long)offset);
            goto out;
        }
        if (rc == BKV_ERR_LIMIT) {
            bkv_client_err(err, err_cap,
                           "decrypt: the backup is longer than the format allows (2^32 chunks)");
            goto out;
        }
        if (rc != BKV_OK) {
            bkv_client_err(err, err_cap, "decrypt: the cipher failed (%s)", bkv_strerror(rc));
            goto out;
        }
        if (write_full(out_fd, pt, n - BKV_STREAM_TAG_LEN) != BKV_OK)
            goto write_failed;
        if (last)
            break;
        index++;
        offset += piece;
        ct[0] = ct[piece]; /* the look-ahead byte starts the next chunk */
        have = 1;
    }
    rc = BKV_OK;
    goto out;

read_failed:
    rc = BKV_ERR_IO;
    bkv_client_err(err, err_cap, "decrypt: could not read the backup: %s",
                   errno_text(errno, why, sizeof(why)));
    goto out;
write_failed:
    rc = BKV_ERR_IO;
    bkv_client_err(err, err_cap, "decrypt: could not write the decrypted output: %s",
                   errno_text(errno, why, sizeof(why)));
out:
    bkv_wipe(pt, chunk);
    free(pt);
    free(ct);
    bkv_stream_free(&s);
    return rc;
}
