/*
 * Whole-file I/O.
 *
 * Normal path of a write: open the target's directory (O_DIRECTORY), create
 * ".<name>.<12 random hex digits>.tmp" in it with
 * O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC (a new name until one is free, so
 * nothing planted there is ever opened), write, fchmod, fsync, then
 * renameat onto the name (linkat for an exclusive write, which fails if the
 * name exists in any form) and fsync the directory. Every step works
 * relative to the directory descriptor, so a directory swapped meanwhile
 * cannot redirect the write. A crash leaves the old file or the new one,
 * never a torn one (at worst a stray temporary file).
 * Failure modes: errors carry the path and errno text; a failure after the
 * content was synced keeps the temporary file and says so (n->kept).
 */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/err.h"

int bkv_file_read(const char *path, size_t max, uint8_t **out, size_t *out_len, char *err,
                  size_t err_cap)
{
    struct stat st;
    uint8_t *buf = NULL;
    size_t done = 0;
    int fd, rc = BKV_ERR_IO;

    *out = NULL;
    *out_len = 0;
    /* O_NONBLOCK: a FIFO at path must not hang us before the S_ISREG check. */
    fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, err_cap, "open %s: %s", path, strerror(errno));
        return BKV_ERR_IO;
    }
    if (fstat(fd, &st) != 0) {
        snprintf(err, err_cap, "stat %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, err_cap, "%s is not a regular file", path);
        goto out;
    }
    if ((size_t)st.st_size > max) {
        snprintf(err, err_cap, "%s: %lld bytes, at most %zu expected", path, (long long)st.st_size,
                 max);
        rc = BKV_ERR_LENGTH;
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        rc = BKV_ERR_NOMEM;
        goto out;
    }
    while (done < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, err_cap, "read %s: %s", path, n < 0 ? strerror(errno) : "short file");
            goto out;
        }
        done += (size_t)n;
    }
    buf[done] = 0; /* convenient for text files; not counted */
    *out = buf;
    *out_len = done;
    buf = NULL;
    rc = BKV_OK;
out:
    free(buf);
    close(fd);
    return rc;
}

/* Split path into n->name and an open descriptor of its directory. */
static int open_dir(struct bkv_file_new *n, const char *path, char *err, size_t err_cap)
{
    char dir[BKV_FILE_PATH_MAX];
    const char *slash = strrchr(path, '/');
    const char *name = slash != NULL ? slash + 1 : path;

    if (strlen(path) >= sizeof(n->path) || strlen(name) + 24 >= sizeof(n->tmp_name)) {
        snprintf(err, err_cap, "path too long: %.300s", path);
        return BKV_ERR_INVALID;
    }
    if (name[0] == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        snprintf(err, err_cap, "%s does not name a file", path);
        return BKV_ERR_INVALID;
    }
    snprintf(n->path, sizeof(n->path), "%s", path);
    snprintf(n->name, sizeof(n->name), "%s", name);
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    n->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (n->dfd < 0) {
        snprintf(err, err_cap, "open directory %s: %s", dir, strerror(errno));
        return BKV_ERR_IO;
    }
    return BKV_OK;
}

int bkv_file_new_open(struct bkv_file_new *n, const char *path, mode_t mode, int exclusive,
                      char *err, size_t err_cap)
{
    static const char hex[] = "0123456789abcdef";
    struct stat st;
    int rc;

    memset(n, 0, sizeof(*n));
    n->dfd = n->fd = -1;
    n->mode = mode;
    n->exclusive = exclusive;
    rc = open_dir(n, path, err, err_cap);
    if (rc != BKV_OK)
        return rc;
    if (exclusive && fstatat(n->dfd, n->name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        snprintf(err, err_cap, "%s already exists; refusing to overwrite it", path);
        rc = BKV_ERR_INVALID;
        goto fail;
    }
    for (int attempt = 0; attempt < 16; attempt++) {
        uint8_t r[6];
        char suffix[13];

        if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
            snprintf(err, err_cap, "getrandom: %s", strerror(errno));
            rc = BKV_ERR_IO;
            goto fail;
        }
        for (size_t i = 0; i < sizeof(r); i++) {
            suffix[2 * i] = hex[r[i] >> 4];
            suffix[2 * i + 1] = hex[r[i] & 15];
        }
        suffix[12] = '\0';
        if (snprintf(n->tmp_name, sizeof(n->tmp_name), ".%s.%s.tmp", n->name, suffix) >=
            (int)sizeof(n->tmp_name)) {
            errno = ENAMETOOLONG;
            break;
        }
        n->fd =
            openat(n->dfd, n->tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (n->fd >= 0 || errno != EEXIST)
            break;
    }
    if (snprintf(n->tmp, sizeof(n->tmp), "%.*s%s", (int)(strlen(path) - strlen(n->name)), path,
                 n->tmp_name) >= (int)sizeof(n->tmp))
        n->tmp[0] = '\0';
    if (n->fd < 0) {
        snprintf(err, err_cap, "create a temporary file next to %s: %s", path, strerror(errno));
        rc = BKV_ERR_IO;
        goto fail;
    }
    return BKV_OK;
fail:
    close(n->dfd);
    n->dfd = -1;
    return rc;
}

void bkv_file_new_abort(struct bkv_file_new *n)
{
    if (n->fd >= 0) {
        close(n->fd);
        unlinkat(n->dfd, n->tmp_name, 0);
    }
    if (n->dfd >= 0)
        close(n->dfd);
    n->fd = n->dfd = -1;
}

int bkv_file_new_commit(struct bkv_file_new *n, const uint8_t *data, size_t len, char *err,
                        size_t err_cap)
{
    size_t done = 0;
    int rc = BKV_ERR_IO, fd = n->fd;

    n->kept = 0;
    n->fd = -1;
    while (done < len) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            snprintf(err, err_cap, "write %s: %s", n->tmp, strerror(errno));
            goto fail;
        }
        done += (size_t)w;
    }
    if (fchmod(fd, n->mode) != 0 || fsync(fd) != 0) {
        snprintf(err, err_cap, "sync %s: %s", n->tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        snprintf(err, err_cap, "close %s: %s", n->tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    /* The content is safe in the temporary file from here on. */
    if (n->exclusive ? linkat(n->dfd, n->tmp_name, n->dfd, n->name, 0) != 0
                     : renameat(n->dfd, n->tmp_name, n->dfd, n->name) != 0) {
        snprintf(err, err_cap, "%s %s: %s", n->exclusive ? "create" : "rename to", n->path,
                 strerror(errno));
        if (n->exclusive && errno == EEXIST)
            rc = BKV_ERR_INVALID;
        n->kept = 1;
        goto out;
    }
    if (n->exclusive)
        unlinkat(n->dfd, n->tmp_name, 0);
    if (fsync(n->dfd) != 0) {
        snprintf(err, err_cap, "sync the directory of %s: %s", n->path, strerror(errno));
        goto out;
    }
    rc = BKV_OK;
    goto out;
fail:
    if (fd >= 0)
        close(fd);
    unlinkat(n->dfd, n->tmp_name, 0);
out:
    close(n->dfd);
    n->dfd = -1;
    return rc;
}

int bkv_file_write(const char *path, const uint8_t *data, size_t len, mode_t mode, int exclusive,
                   char *err, size_t err_cap)
{
    struct bkv_file_new n;
    int rc = bkv_file_new_open(&n, path, mode, exclusive, err, err_cap);

    if (rc != BKV_OK)
        return rc;
    rc = bkv_file_new_commit(&n, data, len, err, err_cap);
    /* The caller still has the data: do not leave a second copy behind. */
    if (rc != BKV_OK && n.kept && n.tmp[0] != '\0')
        unlink(n.tmp);
    return rc;
}

int bkv_no_core_dumps(void)
{
    struct rlimit none = {0, 0};

    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0 && setrlimit(RLIMIT_CORE, &none) == 0;
}
