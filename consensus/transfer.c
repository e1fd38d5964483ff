/*
 * The snapshot image service (transfer.h): a server on its own threads and
 * a blocking client.
 *
 * Normal path, server: bkv_transfer_serve binds and listens (non-blocking
 * socket), then BKV_TRANSFER_MAX_CONNS worker threads each poll the listener
 * and a stop pipe, accept one connection, read the 40-byte request, open the
 * image named by the hash in it and sendfile() it after the header. Client:
 * resolve, connect and exchange under one deadline with poll(), stream the
 * body through a 64 KiB buffer into the destination file while hashing it,
 * check size and SHA-256, fsync.
 * Failure modes: a peer that stalls longer than BKV_TRANSFER_IO_MS (server)
 * or past the fetch's deadline (client) is dropped; a request of another
 * magic is dropped; an image that is missing or not a regular file is
 * answered "none". Stop writes to the stop pipe and shuts down the sockets
 * of the connections in progress, so every worker returns promptly.
 */
#define _GNU_SOURCE /* accept4, sendfile */
#include "consensus/transfer.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "consensus/image.h"
#include "proto/err.h"
#include "proto/util.h"

#define MAGIC       "BKV-IMG1"
#define REQ_LEN     40
#define HDR_LEN     16
#define NONE        UINT64_MAX
#define BUF_LEN     (64 * 1024)
#define CONN_MAX_MS (30 * 60 * 1000) /* a server drops any connection older than this */

struct worker {
    struct bkv_transfer_server *s;
    pthread_t thread;
    int started;
    int fd; /* the connection being served, -1 if none; under s->mu */
};

struct bkv_transfer_server {
    int lfd;
    int stop_pipe[2];
    unsigned port;
    char dir[4096];
    pthread_mutex_t mu;
    bool stopping; /* under mu */
    atomic_ulong served;
    struct worker workers[BKV_TRANSFER_MAX_CONNS];
};

static uint64_t now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* Split "host:port" or "[v6]:port" and resolve it; *res for freeaddrinfo. */
static int resolve(const char *address, int passive, struct addrinfo **res, char *err, size_t cap)
{
    char host[256];
    const char *colon;
    struct addrinfo hints;
    size_t hl;
    int rc;

    colon = address != NULL ? strrchr(address, ':') : NULL;
    if (colon == NULL || colon[1] == '\0' || (size_t)(colon - address) >= sizeof(host)) {
        snprintf(err, cap, "transfer: bad address \"%s\" (want host:port)",
                 address != NULL ? address : "");
        return BKV_ERR_INVALID;
    }
    hl = (size_t)(colon - address);
    memcpy(host, address, hl);
    host[hl] = '\0';
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    rc = getaddrinfo(host[0] != '\0' ? host : NULL, colon + 1, &hints, res);
    if (rc != 0) {
        snprintf(err, cap, "transfer: resolve %s: %s", address, gai_strerror(rc));
        return rc == EAI_SERVICE || rc == EAI_NONAME ? BKV_ERR_INVALID : BKV_ERR_IO;
    }
    return BKV_OK;
}

/* ---- server ---- */

static int send_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read exactly n bytes within BKV_TRANSFER_IO_MS in total (SO_RCVTIMEO bounds each call). */
static int recv_all(int fd, uint8_t *p, size_t n)
{
    uint64_t deadline = now_ms() + BKV_TRANSFER_IO_MS;

    while (n > 0) {
        ssize_t r = recv(fd, p, n, 0);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || now_ms() > deadline)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void serve_one(struct bkv_transfer_server *s, int fd)
{
    struct timeval tv = {BKV_TRANSFER_IO_MS / 1000, (BKV_TRANSFER_IO_MS % 1000) * 1000};
    uint8_t req[REQ_LEN], hdr[HDR_LEN];
    char path[sizeof(s->dir) + BKV_IMAGE_NAME_LEN + 2];
    struct stat st;
    uint64_t deadline = now_ms() + CONN_MAX_MS;
    off_t off = 0;
    int img = -1;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (recv_all(fd, req, sizeof(req)) != 0 || memcmp(req, MAGIC, 8) != 0)
        return;
    /* The name is the hex of the requested bytes: nothing else can be named. */
    if (bkv_image_path(s->dir, req + 8, path, sizeof(path)) == BKV_OK)
        img = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    memcpy(hdr, MAGIC, 8);
    if (img < 0 || fstat(img, &st) != 0 || !S_ISREG(st.st_mode)) {
        bkv_put_u64(hdr + 8, NONE);
        send_all(fd, hdr, sizeof(hdr));
        goto out;
    }
    bkv_put_u64(hdr + 8, (uint64_t)st.st_size);
    if (send_all(fd, hdr, sizeof(hdr)) != 0)
        goto out;
    while (off < st.st_size && now_ms() < deadline) {
        ssize_t w = sendfile(fd, img, &off, (size_t)(st.st_size - off));

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            goto out;
    }
    if (off == st.st_size)
        atomic_fetch_add(&s->served, 1);
out:
    if (img >= 0)
        close(img);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct bkv_transfer_server *s = w->s;
    sigset_t pipe_only;

    /* sendfile to a peer that left raises SIGPIPE: keep it off this thread (EPIPE instead). */
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, NULL);

    for (;;) {
        struct pollfd p[2] = {{s->lfd, POLLIN, 0}, {s->stop_pipe[0], POLLIN, 0}};
        int fd;

        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents != 0)
            break;
        if ((p[0].revents & POLLIN) == 0)
            continue;
        fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC); /* blocking socket */
        if (fd < 0)
            continue; /* another worker took it, or the peer left */
        pthread_mutex_lock(&s->mu);
        if (s->stopping) {
            pthread_mutex_unlock(&s->mu);
            close(fd);
            break;
        }
        w->fd = fd;
        pthread_mutex_unlock(&s->mu);
        serve_one(s, fd);
        pthread_mutex_lock(&s->mu);
        w->fd = -1;
        pthread_mutex_unlock(&s->mu);
        close(fd);
    }
    return NULL;
}

int bkv_transfer_serve(const char *address, const char *image_dir, struct bkv_transfer_server **out,
                       char *err, size_t err_cap)
{
    struct bkv_transfer_server *s;
    struct addrinfo *res = NULL, *ai;
    struct sockaddr_storage sa;
    socklen_t sl = sizeof(sa);
    int rv, one = 1;

    *out = NULL;
    if (image_dir == NULL || strlen(image_dir) >= sizeof(s->dir))
        return BKV_ERR_INVALID;
    rv = resolve(address, 1, &res, err, err_cap);
    if (rv != BKV_OK)
        return rv;
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        freeaddrinfo(res);
        return BKV_ERR_NOMEM;
    }
    s->lfd = -1;
    s->stop_pipe[0] = s->stop_pipe[1] = -1;
    snprintf(s->dir, sizeof(s->dir), "%s", image_dir);
    pthread_mutex_init(&s->mu, NULL);
    rv = BKV_ERR_IO;
    for (ai = res; ai != NULL && s->lfd < 0; ai = ai->ai_next) {
        s->lfd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s->lfd < 0)
            continue;
        setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(s->lfd, ai->ai_addr, ai->ai_addrlen) != 0 ||
            listen(s->lfd, 2 * BKV_TRANSFER_MAX_CONNS) != 0) {
            snprintf(err, err_cap, "transfer: listen on %s: %s", address, strerror(errno));
            close(s->lfd);
            s->lfd = -1;
        }
    }
    freeaddrinfo(res);
    if (s->lfd < 0)
        goto fail;
    if (getsockname(s->lfd, (struct sockaddr *)&sa, &sl) == 0)
        s->port = sa.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&sa)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&sa)->sin_port);
    if (pipe2(s->stop_pipe, O_CLOEXEC) != 0) {
        snprintf(err, err_cap, "transfer: pipe: %s", strerror(errno));
        goto fail;
    }
    for (int i = 0; i < BKV_TRANSFER_MAX_CONNS; i++) {
        s->workers[i].s = s;
        s->workers[i].fd = -1;
        if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]) != 0) {
            snprintf(err, err_cap, "transfer: cannot start a thread");
            rv = BKV_ERR_NOMEM;
            goto fail;
        }
        s->workers[i].started = 1;
    }
    *out = s;
    return BKV_OK;
fail:
    bkv_transfer_stop(s);
    return rv;
}

unsigned bkv_transfer_port(const struct bkv_transfer_server *s)
{
    return s != NULL ? s->port : 0;
}

unsigned long bkv_transfer_served(const struct bkv_transfer_server *s)
{
    return s != NULL ? atomic_load(&((struct bkv_transfer_server *)s)->served) : 0;
}

void bkv_transfer_stop(struct bkv_transfer_server *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    for (int i = 0; i < BKV_TRANSFER_MAX_CONNS; i++)
        if (s->workers[i].fd >= 0)
            shutdown(s->workers[i].fd, SHUT_RDWR);
    pthread_mutex_unlock(&s->mu);
    if (s->stop_pipe[1] >= 0) {
        ssize_t w;
        do
            w = write(s->stop_pipe[1], "x", 1);
        while (w < 0 && errno == EINTR);
    }
    for (int i = 0; i < BKV_TRANSFER_MAX_CONNS; i++)
        if (s->workers[i].started)
            pthread_join(s->workers[i].thread, NULL);
    if (s->lfd >= 0)
        close(s->lfd);
    if (s->stop_pipe[0] >= 0)
        close(s->stop_pipe[0]);
    if (s->stop_pipe[1] >= 0)
        close(s->stop_pipe[1]);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- client ---- */

/* Wait until fd is ready for events or the deadline: 0, or -1 on timeout/error. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = now_ms();
        struct pollfd p = {fd, events, 0};
        int rc;

        if (now >= deadline)
            return -1;
        rc = poll(&p, 1, (int)(deadline - now > 1000000 ? 1000000 : deadline - now));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return -1;
        if (rc > 0)
            return 0;
    }
}

static int connect_to(const char *address, uint64_t deadline, char *err, size_t cap)
{
    struct addrinfo *res = NULL, *ai;
    int fd = -1, rv;

    rv = resolve(address, 0, &res, err, cap);
    if (rv != BKV_OK)
        return -1;
    snprintf(err, cap, "transfer: %s: no address", address);
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);

        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        if (errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline) == 0 &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
            break;
        snprintf(err, cap, "transfer: connect %s: %s", address,
                 soerr != 0             ? strerror(soerr)
                 : errno == EINPROGRESS ? "timed out"
                                        : strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int io_all(int fd, uint8_t *p, size_t n, int sending, uint64_t deadline)
{
    while (n > 0) {
        ssize_t r;

        if (wait_fd(fd, sending ? POLLOUT : POLLIN, deadline) != 0)
            return -1;
        r = sending ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int bkv_transfer_fetch(const char *address, const uint8_t sha256[static 32], uint64_t size,
                       const char *dest, unsigned timeout_ms, char *err, size_t err_cap)
{
    uint64_t deadline = now_ms() + timeout_ms, left = size, got_size;
    uint8_t req[REQ_LEN], hdr[HDR_LEN], h[32], *buf = NULL;
    EVP_MD_CTX *ctx = NULL;
    int sock = -1, out = -1, rv = BKV_ERR_IO;

    if (address == NULL || dest == NULL || size == 0) {
        snprintf(err, err_cap, "transfer: fetch: bad arguments");
        return BKV_ERR_INVALID;
    }
    buf = malloc(BUF_LEN);
    ctx = EVP_MD_CTX_new();
    if (buf == NULL || ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        snprintf(err, err_cap, "transfer: fetch: out of memory");
        rv = BKV_ERR_NOMEM;
        goto out;
    }
    out = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        snprintf(err, err_cap, "transfer: create %s: %s", dest, strerror(errno));
        rv = errno == ENOSPC ? BKV_ERR_NOSPACE : BKV_ERR_IO;
        goto out;
    }
    sock = connect_to(address, deadline, err, err_cap);
    if (sock < 0)
        goto out;
    memcpy(req, MAGIC, 8);
    memcpy(req + 8, sha256, 32);
    if (io_all(sock, req, sizeof(req), 1, deadline) != 0 ||
        io_all(sock, hdr, sizeof(hdr), 0, deadline) != 0 || memcmp(hdr, MAGIC, 8) != 0) {
        snprintf(err, err_cap, "transfer: %s: no answer", address);
        goto out;
    }
    got_size = bkv_get_u64(hdr + 8);
    if (got_size == NONE) {
        snprintf(err, err_cap, "transfer: %s: has no such image", address);
        goto out;
    }
    if (got_size != size) {
        snprintf(err, err_cap, "transfer: %s: image of %llu bytes, want %llu", address,
                 (unsigned long long)got_size, (unsigned long long)size);
        rv = BKV_ERR_FORMAT;
        goto out;
    }
    while (left > 0) {
        size_t want = left < BUF_LEN ? (size_t)left : BUF_LEN;
        ssize_t r;

        if (wait_fd(sock, POLLIN, deadline) != 0) {
            snprintf(err, err_cap, "transfer: %s: timed out with %llu of %llu bytes", address,
                     (unsigned long long)(size - left), (unsigned long long)size);
            goto out;
        }
        r = recv(sock, buf, want, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0) {
            snprintf(err, err_cap, "transfer: %s: connection lost after %llu of %llu bytes",
                     address, (unsigned long long)(size - left), (unsigned long long)size);
            goto out;
        }
        if (EVP_DigestUpdate(ctx, buf, (size_t)r) != 1) {
            rv = BKV_ERR_CRYPTO;
            goto out;
        }
        if (write_all(out, buf, (size_t)r) != 0) {
            snprintf(err, err_cap, "transfer: write %s: %s", dest, strerror(errno));
            rv = errno == ENOSPC ? BKV_ERR_NOSPACE : BKV_ERR_IO;
            goto out;
        }
        left -= (uint64_t)r;
    }
    if (EVP_DigestFinal_ex(ctx, h, NULL) != 1) {
        rv = BKV_ERR_CRYPTO;
        goto out;
    }
    if (CRYPTO_memcmp(h, sha256, 32) != 0) {
        snprintf(err, err_cap, "transfer: %s: the image does not match its SHA-256", address);
        rv = BKV_ERR_FORMAT;
        goto out;
    }
    if (fsync(out) != 0) {
        snprintf(err, err_cap, "transfer: fsync %s: %s", dest, strerror(errno));
        rv = errno == ENOSPC ? BKV_ERR_NOSPACE : BKV_ERR_IO;
        goto out;
    }
    rv = BKV_OK;
out:
    if (out >= 0 && close(out) != 0 && rv == BKV_OK) {
        snprintf(err, err_cap, "transfer: close %s: %s", dest, strerror(errno));
        rv = BKV_ERR_IO;
    }
    if (rv != BKV_OK && out >= 0)
        unlink(dest);
    if (rv == BKV_ERR_CRYPTO)
        snprintf(err, err_cap, "transfer: SHA-256 failed");
    if (sock >= 0)
        close(sock);
    EVP_MD_CTX_free(ctx);
    free(buf);
    return rv;
}
