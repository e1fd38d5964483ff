/*
 * Whole-file I/O. Writes go to "<path>.tmp.<pid>", are fsync'd, renamed over
 * the target and the directory is fsync'd, so a crash leaves either the old
 * file or the new one, never a torn one. Errors carry the path and errno text.
 */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, err_cap, "open %s: %s", path, strerror(errno));
        return BKV_ERR_IO;
    }
    if (fstat(fd, &st) != 0) {
        snprintf(err, err_cap, "stat %s: %s", path, strerror(errno));
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

int bkv_file_write(const char *path, const uint8_t *data, size_t len, mode_t mode, int exclusive,
                   char *err, size_t err_cap)
{
    char tmp[4096], dir[4096];
    size_t done = 0;
    int fd, dfd, rc = BKV_ERR_IO;

    if (exclusive && access(path, F_OK) == 0) {
        snprintf(err, err_cap, "%s already exists; refusing to overwrite it", path);
        return BKV_ERR_INVALID;
    }
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= sizeof(tmp)) {
        snprintf(err, err_cap, "path too long: %s", path);
        return BKV_ERR_INVALID;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        snprintf(err, err_cap, "create %s: %s", tmp, strerror(errno));
        return BKV_ERR_IO;
    }
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, err_cap, "write %s: %s", tmp, strerror(errno));
            goto fail;
        }
        done += (size_t)n;
    }
    if (fchmod(fd, mode) != 0 || fsync(fd) != 0) {
        snprintf(err, err_cap, "sync %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        snprintf(err, err_cap, "close %s: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (exclusive ? link(tmp, path) != 0 : rename(tmp, path) != 0) {
        snprintf(err, err_cap, "%s %s: %s", exclusive ? "create" : "rename to", path,
                 strerror(errno));
        if (exclusive && errno == EEXIST)
            rc = BKV_ERR_INVALID;
        goto fail;
    }
    if (exclusive)
        unlink(tmp);
    snprintf(dir, sizeof(dir), "%s", path);
    dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return BKV_OK;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return rc;
}
