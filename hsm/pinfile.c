/*
 * Reading a PIN from a file.
 *
 * Normal path: open without following a symlink and without blocking (a
 * FIFO must not hang us), fstat the open descriptor (so the checks apply to
 * the file actually read), require a regular file
 * owned by our effective uid with no group/other permission bits, read at
 * most cap + 2 bytes, strip one trailing newline.
 * Failure modes: see pinfile.h. The PIN never appears in a message, and
 * every buffer that held it is wiped on every path.
 */
#include "pinfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/err.h"
#include "proto/util.h"

int bkv_hsm_pin_read(const char *path, uint8_t *pin, size_t cap, size_t *pin_len, char *err,
                     size_t err_cap)
{
    uint8_t buf[BKV_HSM_PIN_MAX + 2];
    size_t len = 0;
    struct stat st;
    int fd = -1, rc;

    *pin_len = 0;
    if (path == NULL || path[0] == '\0') {
        snprintf(err, err_cap, "no PIN file configured");
        return BKV_ERR_INVALID;
    }
    /* O_NONBLOCK: a FIFO planted at path must not hang us before the S_ISREG check. */
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(err, err_cap, "cannot open PIN file %s: %s", path, strerror(errno));
        return BKV_ERR_IO;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, err_cap, "PIN file %s is not a regular file", path);
        rc = BKV_ERR_IO;
        goto out;
    }
    if (st.st_uid != geteuid()) {
        snprintf(err, err_cap, "PIN file %s is owned by uid %lu, not by this process (uid %lu)",
                 path, (unsigned long)st.st_uid, (unsigned long)geteuid());
        rc = BKV_ERR_PERMISSION;
        goto out;
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        snprintf(err, err_cap,
                 "PIN file %s has mode %04o, so other users may read it: run chmod 600 %s", path,
                 (unsigned)(st.st_mode & 07777), path);
        rc = BKV_ERR_PERMISSION;
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, err_cap, "cannot read PIN file %s: %s", path, strerror(errno));
            rc = BKV_ERR_IO;
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == sizeof(buf))
            break;
    }
    if (len > 0 && buf[len - 1] == '\n')
        len--;
    if (len == 0) {
        snprintf(err, err_cap, "PIN file %s is empty", path);
        rc = BKV_ERR_INVALID;
        goto out;
    }
    if (len > cap || len > BKV_HSM_PIN_MAX) {
        snprintf(err, err_cap, "PIN file %s holds more than %zu bytes", path,
                 cap < BKV_HSM_PIN_MAX ? cap : (size_t)BKV_HSM_PIN_MAX);
        rc = BKV_ERR_LENGTH;
        goto out;
    }
    memcpy(pin, buf, len);
    *pin_len = len;
    rc = BKV_OK;
out:
    bkv_wipe(buf, sizeof(buf));
    close(fd);
    return rc;
}
