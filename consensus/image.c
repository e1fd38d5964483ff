/*
 * Snapshot image descriptors and image files (image.h).
 *
 * Normal path: the FSM encodes a descriptor for an image it wrote and
 * digested (bkv_image_digest), and decodes one that libraft hands it back;
 * images are named by their hash (bkv_image_path), checked before use
 * (bkv_image_verify: size, then SHA-256 read in 64 KiB blocks) and pruned to
 * the ones the node still needs (bkv_image_gc).
 * Failure modes: a descriptor of another magic, version or length, or of size
 * 0, is BKV_ERR_FORMAT; an unreadable file is BKV_ERR_IO and a file of the
 * wrong size or hash BKV_ERR_FORMAT, both with the path in err. OpenSSL
 * failures are BKV_ERR_CRYPTO.
 */
#include "consensus/image.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "proto/err.h"
#include "proto/util.h"

#define MAGIC      "BKV-SNAP"
#define READ_BLOCK (64 * 1024)

void bkv_image_desc_encode(const struct bkv_image_desc *d, uint8_t out[static BKV_IMAGE_DESC_LEN])
{
    memcpy(out, MAGIC, 8);
    bkv_put_u32(out + 8, BKV_IMAGE_VERSION);
    bkv_put_u32(out + 12, 0);
    bkv_put_u64(out + 16, d->index);
    bkv_put_u64(out + 24, d->size);
    memcpy(out + 32, d->sha256, 32);
}

int bkv_image_desc_decode(const uint8_t *p, size_t len, struct bkv_image_desc *d)
{
    if (p == NULL || d == NULL || len != BKV_IMAGE_DESC_LEN || memcmp(p, MAGIC, 8) != 0 ||
        bkv_get_u32(p + 8) != BKV_IMAGE_VERSION || bkv_get_u32(p + 12) != 0)
        return BKV_ERR_FORMAT;
    d->index = bkv_get_u64(p + 16);
    d->size = bkv_get_u64(p + 24);
    if (d->size == 0 || d->size > INT64_MAX)
        return BKV_ERR_FORMAT;
    memcpy(d->sha256, p + 32, 32);
    return BKV_OK;
}

void bkv_image_name(const uint8_t sha256[static 32], char out[static BKV_IMAGE_NAME_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";

    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[sha256[i] >> 4];
        out[2 * i + 1] = hex[sha256[i] & 15];
    }
    memcpy(out + 64, ".db", 4);
}

int bkv_image_path(const char *dir, const uint8_t sha256[static 32], char *out, size_t cap)
{
    char name[BKV_IMAGE_NAME_LEN + 1];
    int n;

    bkv_image_name(sha256, name);
    n = snprintf(out, cap, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= cap ? BKV_ERR_LENGTH : BKV_OK;
}

int bkv_image_digest(const char *path, uint64_t *size, uint8_t sha256[static 32], char *err,
                     size_t err_cap)
{
    EVP_MD_CTX *ctx = NULL;
    uint8_t *buf = NULL;
    uint64_t total = 0;
    int fd = -1, rv = BKV_ERR_CRYPTO;

    buf = malloc(READ_BLOCK);
    ctx = EVP_MD_CTX_new();
    if (buf == NULL || ctx == NULL) {
        rv = BKV_ERR_NOMEM;
        goto out;
    }
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        goto out;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        snprintf(err, err_cap, "image %s: %s", path, strerror(errno));
        rv = BKV_ERR_IO;
        goto out;
    }
    for (;;) {
        ssize_t got = read(fd, buf, READ_BLOCK);

        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            snprintf(err, err_cap, "image %s: read: %s", path, strerror(errno));
            rv = BKV_ERR_IO;
            goto out;
        }
        if (got == 0)
            break;
        if (EVP_DigestUpdate(ctx, buf, (size_t)got) != 1)
            goto out;
        total += (uint64_t)got;
    }
    if (EVP_DigestFinal_ex(ctx, sha256, NULL) != 1)
        goto out;
    *size = total;
    rv = BKV_OK;
out:
    if (rv == BKV_ERR_CRYPTO)
        snprintf(err, err_cap, "image %s: SHA-256 failed", path);
    if (fd >= 0)
        close(fd);
    EVP_MD_CTX_free(ctx);
    free(buf);
    return rv;
}

int bkv_image_verify(const char *path, const struct bkv_image_desc *d, char *err, size_t err_cap)
{
    uint8_t h[32];
    uint64_t size = 0;
    off_t end;
    int fd, rv;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        snprintf(err, err_cap, "image %s: %s", path, strerror(errno));
        return BKV_ERR_IO;
    }
    end = lseek(fd, 0, SEEK_END);
    close(fd);
    if (end < 0 || (uint64_t)end != d->size) {
        snprintf(err, err_cap, "image %s: %lld bytes, the descriptor says %llu", path,
                 (long long)end, (unsigned long long)d->size);
        return BKV_ERR_FORMAT;
    }
    rv = bkv_image_digest(path, &size, h, err, err_cap);
    if (rv != BKV_OK)
        return rv;
    if (size != d->size || CRYPTO_memcmp(h, d->sha256, 32) != 0) {
        snprintf(err, err_cap, "image %s: SHA-256 or size does not match its descriptor", path);
        return BKV_ERR_FORMAT;
    }
    return BKV_OK;
}

int bkv_image_sync(const char *path)
{
    int fd, rv;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return BKV_ERR_IO;
    rv = fsync(fd);
    close(fd);
    if (rv != 0)
        return errno == ENOSPC ? BKV_ERR_NOSPACE : BKV_ERR_IO;
    return bkv_image_sync_dir(path);
}

int bkv_image_sync_dir(const char *path)
{
    char dir[4200];
    const char *slash = strrchr(path, '/');
    int fd, rv;

    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash == path ? 1 : slash - path), path);
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return BKV_ERR_IO;
    rv = fsync(fd);
    close(fd);
    return rv == 0 ? BKV_OK : BKV_ERR_IO;
}

/* A name of the form <64 lowercase hex>.db; its hash in h. */
static int image_name_hash(const char *name, uint8_t h[32])
{
    if (strlen(name) != BKV_IMAGE_NAME_LEN || strcmp(name + 64, ".db") != 0)
        return 0;
    for (int i = 0; i < 64; i++) {
        char c = name[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;

        if (v < 0)
            return 0;
        if (i % 2 == 0)
            h[i / 2] = (uint8_t)(v << 4);
        else
            h[i / 2] |= (uint8_t)v;
    }
    return 1;
}

int bkv_image_gc(const char *dir, const uint8_t (*keep)[32], size_t n_keep)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int removed = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        uint8_t h[32];
        int kept = 0;

        if (!image_name_hash(e->d_name, h))
            continue;
        for (size_t i = 0; i < n_keep && !kept; i++)
            kept = memcmp(keep[i], h, 32) == 0;
        if (!kept && unlinkat(dirfd(d), e->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}
