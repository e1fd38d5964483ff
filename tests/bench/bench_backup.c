/*
 * bkv-bench backup: the backup stream's throughput against the cipher alone.
 *
 * Normal path: one buffer of N MiB of random bytes is encrypted and decrypted
 * (1) in one direct EVP AES-256-GCM pass, the floor; (2) by the stream in
 * memory (bkv_stream_seal_buffer / open_buffer: 64 KiB chunks, a nonce and a
 * tag each); (3) by bkv_backup_encrypt / decrypt from a file in the page
 * cache to /dev/null, next to (4) a plain read/write copy of the same bytes
 * over the same descriptors. The rounds are interleaved so that every row
 * sees the same machine conditions; each figure is the median round.
 * Failure modes: any failure (allocation, temporary file, a round trip that
 * does not give the input back) prints the reason and returns its code.
 */
#include "tests/bench/bench_backup.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "client/bkv.h"
#include "proto/err.h"
#include "proto/stream.h"
#include "tests/bench/bench_util.h"

#define ROUNDS 5
#define COPY   65536

struct ctx {
    uint8_t key[BKV_KEY_LEN], salt[BKV_STREAM_SALT_LEN], iv[12], tag[16];
    uint8_t *pt, *ct, *back;
    size_t n, ct_cap, ct_len;
    int pt_fd, ct_fd, null_fd;
};

/* One GCM message over all of in, in pieces of at most 1 GiB (EVP takes int lengths). */
static int evp_pass(struct ctx *c, const uint8_t *in, uint8_t *out, int enc)
{
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    uint8_t fin[16];
    int len, rc = BKV_ERR_CRYPTO;

    if (x == NULL)
        return BKV_ERR_NOMEM;
    if (EVP_CipherInit_ex(x, EVP_aes_256_gcm(), NULL, c->key, c->iv, enc) != 1)
        goto out;
    if (!enc && EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_TAG, 16, c->tag) != 1)
        goto out;
    for (size_t off = 0; off < c->n;) {
        size_t k = c->n - off < ((size_t)1 << 30) ? c->n - off : (size_t)1 << 30;

        if (EVP_CipherUpdate(x, out + off, &len, in + off, (int)k) != 1)
            goto out;
        off += k;
    }
    if (EVP_CipherFinal_ex(x, fin, &len) != 1)
        goto out;
    if (enc && EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, 16, c->tag) != 1)
        goto out;
    rc = BKV_OK;
out:
    EVP_CIPHER_CTX_free(x);
    return rc;
}

static int rewind_fds(struct ctx *c)
{
    return lseek(c->pt_fd, 0, SEEK_SET) == 0 && lseek(c->ct_fd, 0, SEEK_SET) == 0 ? BKV_OK
                                                                                  : BKV_ERR_IO;
}

static int copy_fd(int in, int out)
{
    static uint8_t buf[COPY];
    ssize_t r;

    while ((r = read(in, buf, sizeof(buf))) > 0)
        if (write(out, buf, (size_t)r) != r)
            return BKV_ERR_IO;
    return r == 0 ? BKV_OK : BKV_ERR_IO;
}

enum op { EVP_ENC, EVP_DEC, MEM_ENC, MEM_DEC, FD_ENC, FD_DEC, FD_COPY, OPS };

static int run(struct ctx *c, enum op op)
{
    char err[256];
    size_t len;
    int rc;

    switch (op) {
    case EVP_ENC:
        return evp_pass(c, c->pt, c->ct, 1);
    case EVP_DEC:
        return evp_pass(c, c->ct, c->back, 0);
    case MEM_ENC:
        return bkv_stream_seal_buffer(c->key, c->salt, BKV_STREAM_LOG2_DEFAULT, c->pt, c->n, c->ct,
                                      c->ct_cap, &c->ct_len);
    case MEM_DEC:
        rc = bkv_stream_open_buffer(c->key, c->ct, c->ct_len, c->back, c->ct_cap, &len);
        return rc != BKV_OK ? rc : len == c->n ? BKV_OK : BKV_ERR_LENGTH;
    case FD_ENC:
        if ((rc = rewind_fds(c)) != BKV_OK)
            return rc;
        rc = bkv_backup_encrypt(c->key, c->pt_fd, c->null_fd, err, sizeof(err));
        if (rc != BKV_OK)
            fprintf(stderr, "bkv-bench: %s\n", err);
        return rc;
    case FD_DEC:
        if ((rc = rewind_fds(c)) != BKV_OK)
            return rc;
        rc = bkv_backup_decrypt(c->key, c->ct_fd, c->null_fd, err, sizeof(err));
        if (rc != BKV_OK)
            fprintf(stderr, "bkv-bench: %s\n", err);
        return rc;
    case FD_COPY:
        if ((rc = rewind_fds(c)) != BKV_OK)
            return rc;
        return copy_fd(c->pt_fd, c->null_fd);
    default:
        return BKV_ERR_INVALID;
    }
}

/* Write the sealed stream once, through the descriptor path, as the decrypt input. */
static int setup_files(struct ctx *c)
{
    const char *tmp = getenv("TMPDIR");
    char path[PATH_MAX], err[256];
    int rc;

    for (int i = 0; i < 2; i++) {
        int *fd = i == 0 ? &c->pt_fd : &c->ct_fd;

        snprintf(path, sizeof(path), "%s/bkv-bench-backup-XXXXXX",
                 tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
        *fd = mkstemp(path);
        if (*fd < 0)
            return BKV_ERR_IO;
        unlink(path);
    }
    for (size_t off = 0; off < c->n;) {
        ssize_t w = write(c->pt_fd, c->pt + off, c->n - off);
        if (w <= 0)
            return BKV_ERR_IO;
        off += (size_t)w;
    }
    if (lseek(c->pt_fd, 0, SEEK_SET) != 0)
        return BKV_ERR_IO;
    rc = bkv_backup_encrypt(c->key, c->pt_fd, c->ct_fd, err, sizeof(err));
    if (rc != BKV_OK)
        fprintf(stderr, "bkv-bench: %s\n", err);
    c->null_fd = open("/dev/null", O_WRONLY);
    return rc != BKV_OK ? rc : c->null_fd < 0 ? BKV_ERR_IO : BKV_OK;
}

int bkv_bench_backup(int megabytes)
{
    static const char *const names[OPS] = {
        "baseline: one AES-256-GCM pass (EVP)", "", "stream in memory (proto/stream)", "",
        "bkv_backup_*: file -> /dev/null",      "", "plain copy: file -> /dev/null",
    };
    struct ctx c = {.pt_fd = -1, .ct_fd = -1, .null_fd = -1};
    double t[OPS][ROUNDS], med[OPS], mib;
    int rc = BKV_ERR_NOMEM;

    c.n = (size_t)megabytes << 20;
    mib = (double)c.n / (1 << 20);
    if ((rc = bkv_stream_sealed_len(c.n, BKV_STREAM_LOG2_DEFAULT, &c.ct_cap)) != BKV_OK)
        goto out;
    c.pt = malloc(c.n);
    c.ct = malloc(c.ct_cap);
    c.back = malloc(c.ct_cap);
    rc = BKV_ERR_NOMEM;
    if (c.pt == NULL || c.ct == NULL || c.back == NULL)
        goto out;
    rc = BKV_ERR_CRYPTO;
    if (RAND_bytes(c.key, sizeof(c.key)) != 1 || RAND_bytes(c.salt, sizeof(c.salt)) != 1 ||
        RAND_bytes(c.iv, sizeof(c.iv)) != 1 || RAND_bytes(c.pt, (int)c.n) != 1)
        goto out;
    if ((rc = setup_files(&c)) != BKV_OK)
        goto out;

    /* Warm up every path once, and check each gives the input back. */
    for (int op = 0; op < OPS; op++)
        if ((rc = run(&c, (enum op)op)) != BKV_OK)
            goto out;
    if (memcmp(c.back, c.pt, c.n) != 0) {
        rc = BKV_ERR_DECRYPT;
        goto out;
    }
    for (int r = 0; r < ROUNDS; r++)
        for (int op = 0; op < OPS; op++) {
            double t0 = bkv_bench_now_us();

            if ((rc = run(&c, (enum op)op)) != BKV_OK)
                goto out;
            t[op][r] = bkv_bench_now_us() - t0;
        }
    for (int op = 0; op < OPS; op++)
        med[op] = mib / (bkv_bench_median(t[op], ROUNDS) / 1e6);

    printf("bkv-bench backup: %d MiB, 64 KiB chunks, median of %d interleaved rounds, MiB/s\n",
           megabytes, ROUNDS);
    printf("%-38s %10s %8s %10s %8s\n", "", "encrypt", "", "decrypt", "");
    for (int op = EVP_ENC; op <= FD_DEC; op += 2)
        printf("%-38s %10.0f %7.3fx %10.0f %7.3fx\n", names[op], med[op], med[op] / med[EVP_ENC],
               med[op + 1], med[op + 1] / med[EVP_DEC]);
    printf("%-38s %10.0f %7.3fx\n", names[FD_COPY], med[FD_COPY], med[FD_COPY] / med[EVP_ENC]);
    printf("ratios are to the baseline pass in the same direction (copy: to encrypt)\n");
    rc = BKV_OK;
out:
    if (rc != BKV_OK)
        fprintf(stderr, "bkv-bench backup: %s\n", bkv_strerror(rc));
    if (c.pt_fd >= 0)
        close(c.pt_fd);
    if (c.ct_fd >= 0)
        close(c.ct_fd);
    if (c.null_fd >= 0)
        close(c.null_fd);
    free(c.pt);
    free(c.ct);
    free(c.back);
    return rc;
}
