/*
 * The per-token lock file.
 *
 * Normal path: open (create, mode 0600, no symlink), flock(LOCK_EX|LOCK_NB),
 * then replace the content with our pid. Release empties the file and closes
 * it, which drops the lock; a crashed holder's lock is dropped by the kernel.
 * Failure modes: EWOULDBLOCK gives BKV_ERR_HSM_LOCKED with the pid found in
 * the file ("unknown" while the holder has not written it yet); any other
 * failure BKV_ERR_IO.
 */
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "proto/err.h"

int bkv_hsm_lock_path(const char *dir, const char *label, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n;
    int w = snprintf(out, cap, "%s/bkv-token-", dir);

    if (w < 0 || (size_t)w >= cap)
        return BKV_ERR_LENGTH;
    n = (size_t)w;
    for (const char *p = label; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        int safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '.' || c == '_' || c == '-';
        if (n + (safe ? 1 : 3) >= cap)
            return BKV_ERR_LENGTH;
        if (safe) {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    if (n + sizeof(".lock") > cap)
        return BKV_ERR_LENGTH;
    memcpy(out + n, ".lock", sizeof(".lock"));
    return BKV_OK;
}

/* The pid written by the current holder, or 0 if none can be read. */
static long holder_pid(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    char *end;
    long pid;

    if (n <= 0)
        return 0;
    buf[n] = '\0';
    pid = strtol(buf, &end, 10);
    return (end != buf && pid > 0) ? pid : 0;
}

int bkv_hsm_lock_acquire(const char *path, int *fd_out, char *err, size_t err_cap)
{
    char pid[32];
    int fd, n;

    *fd_out = -1;
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        snprintf(err, err_cap, "cannot open lock file %s: %s", path, strerror(errno));
        return BKV_ERR_IO;
    }
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EINTR)
            continue;
        if (errno == EWOULDBLOCK) {
            long holder = holder_pid(fd);
            if (holder > 0)
                snprintf(err, err_cap, "token is in use by process %ld (lock file %s)", holder,
                         path);
            else
                snprintf(err, err_cap, "token is in use by another process (lock file %s)", path);
            close(fd);
            return BKV_ERR_HSM_LOCKED;
        }
        snprintf(err, err_cap, "cannot lock %s: %s", path, strerror(errno));
        close(fd);
        return BKV_ERR_IO;
    }
    n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        snprintf(err, err_cap, "cannot write lock file %s: %s", path, strerror(errno));
        close(fd);
        return BKV_ERR_IO;
    }
    *fd_out = fd;
    return BKV_OK;
}

void bkv_hsm_lock_release(int fd)
{
    if (fd < 0)
        return;
    if (ftruncate(fd, 0) != 0) {
        /* Nothing to do: the lock itself is dropped by close. */
    }
    close(fd);
}
