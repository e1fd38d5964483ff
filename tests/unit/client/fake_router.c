/*
 * The client suites' tiny HTTP server (fake_router.h). One thread polls the
 * listening socket and a wake-up pipe; each accepted connection is read up
 * to the end of its Content-Length body, answered with the handler's bytes,
 * and closed. Stopping writes to the pipe and joins the thread: no sleeps.
 */
#include "fake_router.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

struct fake_router {
    int listen_fd;
    int wake[2];
    pthread_t thread;
    fake_handler handler;
    void *arg;
    char addr[32];
    pthread_mutex_t lock;
    unsigned count;
};

int fake_header(const struct fake_request *req, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    const char *line = strstr(req->head, "\r\n");

    while (line != NULL && line[2] != '\r') {
        const char *start = line + 2, *end = strstr(start, "\r\n");

        if (end == NULL)
            break;
        if ((size_t)(end - start) > nlen && strncasecmp(start, name, nlen) == 0 &&
            start[nlen] == ':') {
            const char *v = start + nlen + 1;
            size_t n;

            while (*v == ' ')
                v++;
            n = (size_t)(end - v);
            if (n >= cap)
                n = cap - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return 1;
        }
        line = end;
    }
    return 0;
}

void fake_reply_set(struct fake_reply *r, const char *head, const uint8_t *body, size_t body_len)
{
    size_t hlen = strlen(head);

    r->bytes = malloc(hlen + body_len + 1);
    if (r->bytes == NULL)
        abort();
    memcpy(r->bytes, head, hlen);
    if (body_len > 0)
        memcpy(r->bytes + hlen, body, body_len);
    r->len = hlen + body_len;
}

void fake_closed_addr(char *out, size_t cap)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        abort();
    snprintf(out, cap, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    close(fd); /* bound but never listening: connects are refused */
}

/* Read one request from fd into req (body malloc'd); 0 on success. */
#define READ_MAX (65536 + 8192)

static int read_request(int fd, struct fake_request *req)
{
    char *buf = malloc(READ_MAX), *end, cl[32];
    size_t n = 0, head_len, clen = 0;
    int rc = -1;

    memset(req, 0, sizeof(*req));
    if (buf == NULL)
        return -1;
    for (;;) {
        ssize_t r = recv(fd, buf + n, READ_MAX - 1 - n, 0);

        if (r <= 0)
            goto out;
        n += (size_t)r;
        buf[n] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (end != NULL)
            break;
        if (n == READ_MAX - 1)
            goto out;
    }
    head_len = (size_t)(end - buf) + 4;
    if (head_len >= sizeof(req->head))
        goto out;
    memcpy(req->head, buf, head_len);
    req->head[head_len] = '\0';
    sscanf(req->head, "%15s %255s", req->method, req->path);
    if (fake_header(req, "content-length", cl, sizeof(cl)))
        clen = strtoul(cl, NULL, 10);
    if (clen > READ_MAX - head_len - 1)
        goto out;
    while (n < head_len + clen) {
        ssize_t r = recv(fd, buf + n, READ_MAX - 1 - n, 0);

        if (r <= 0)
            goto out;
        n += (size_t)r;
    }
    req->body = malloc(clen + 1);
    if (req->body == NULL)
        goto out;
    memcpy(req->body, buf + head_len, clen);
    req->body_len = clen;
    rc = 0;
out:
    free(buf);
    return rc;
}

static void write_all(int fd, const uint8_t *p, size_t len, size_t split)
{
    while (len > 0) {
        size_t chunk = split > 0 && split < len ? split : len;
        ssize_t w = send(fd, p, chunk, MSG_NOSIGNAL);

        if (w <= 0)
            return;
        p += w;
        len -= (size_t)w;
    }
}

/* Wait until the client closes its side (or the server is stopped). */
static void wait_client_close(struct fake_router *f, int fd)
{
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = f->wake[0], .events = POLLIN}};
    char b[256];

    for (;;) {
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            return;
        if (p[1].revents)
            return;
        if (p[0].revents && recv(fd, b, sizeof(b), 0) <= 0)
            return;
    }
}

static void *serve(void *arg)
{
    struct fake_router *f = arg;

    for (;;) {
        struct pollfd p[2] = {{.fd = f->listen_fd, .events = POLLIN},
                              {.fd = f->wake[0], .events = POLLIN}};
        struct fake_request req;
        struct fake_reply reply;
        int fd;

        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        if (p[1].revents)
            return NULL;
        fd = accept(f->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        memset(&reply, 0, sizeof(reply));
        if (read_request(fd, &req) == 0) {
            f->handler(f->arg, &req, &reply);
            pthread_mutex_lock(&f->lock);
            f->count++;
            pthread_mutex_unlock(&f->lock);
            if (reply.hang)
                wait_client_close(f, fd);
            else if (!reply.close_only)
                write_all(fd, reply.bytes, reply.len, reply.split);
        }
        free(req.body);
        free(reply.bytes);
        close(fd);
    }
}

struct fake_router *fake_router_start(fake_handler handler, void *arg)
{
    struct fake_router *f = calloc(1, sizeof(*f));
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int one = 1;

    if (f == NULL)
        return NULL;
    f->handler = handler;
    f->arg = arg;
    pthread_mutex_init(&f->lock, NULL);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (f->listen_fd < 0 || pipe(f->wake) != 0)
        abort();
    setsockopt(f->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(f->listen_fd, 8) != 0 ||
        getsockname(f->listen_fd, (struct sockaddr *)&sa, &len) != 0)
        abort();
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
    if (pthread_create(&f->thread, NULL, serve, f) != 0)
        abort();
    return f;
}

const char *fake_router_addr(const struct fake_router *f)
{
    return f->addr;
}

unsigned fake_router_count(struct fake_router *f)
{
    unsigned n;

    pthread_mutex_lock(&f->lock);
    n = f->count;
    pthread_mutex_unlock(&f->lock);
    return n;
}

void fake_router_stop(struct fake_router *f)
{
    if (f == NULL)
        return;
    if (write(f->wake[1], "x", 1) != 1)
        abort();
    pthread_join(f->thread, NULL);
    close(f->listen_fd);
    close(f->wake[0]);
    close(f->wake[1]);
    pthread_mutex_destroy(&f->lock);
    free(f);
}
