/*
 * node/http: the server and the client on loopback, in-process.
 *
 * Server tests run the server's loop on a thread of its own and talk to it
 * with plain blocking sockets (every read has a deadline), so the bytes on
 * the wire are exactly what a test wrote: keep-alive and pipelining, the
 * automatic 400/413/431/408/501 answers, 100-continue, half-close, the
 * connection cap, and a close with an exchange still at the handler.
 * Client tests run client and server on one loop in the test thread: many
 * concurrent requests over a bounded pool, and every error path (refused,
 * timeout, malformed, truncated, oversized, shutdown, bad arguments), the
 * latter against canned raw answers from a small libuv TCP server.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <uv.h>

#include "harness.h"
#include "node/http.h"
#include "proto/err.h"

#define DEADLINE_MS 10000

/* --- the server fixture ------------------------------------------------------ */

struct fx {
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t stop;
    int threaded;
    struct bkv_http_server *s;
    int port;
    atomic_int handled;
    atomic_int closed;
    atomic_int refused;                /* answers the server gave by itself (on_refused) */
    int handled_n;                     /* the same, for single-thread tests */
    struct bkv_http_exchange *held[8]; /* "/never": kept until the end */
    int n_held;
    char peers[64][64]; /* distinct client addresses seen (loop thread) */
    int n_peers;
};

struct later {
    uv_timer_t t;
    struct bkv_http_exchange *ex;
};

static void later_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_later(uv_timer_t *t)
{
    struct later *l = t->data;

    bkv_http_respond_text(l->ex, 200, NULL, 0, "slow");
    uv_close((uv_handle_t *)t, later_closed);
}

static void handler(struct bkv_http_exchange *ex, const struct bkv_http_request *req, void *data)
{
    struct fx *f = data;
    char body[8192];
    int n, seen = 0;

    atomic_fetch_add(&f->handled, 1);
    f->handled_n++;
    for (int i = 0; i < f->n_peers; i++)
        seen |= strcmp(f->peers[i], req->peer) == 0;
    if (!seen && f->n_peers < 64)
        snprintf(f->peers[f->n_peers++], 64, "%s", req->peer);
    if (strcmp(req->path, "/never") == 0 && f->n_held < 8) {
        f->held[f->n_held++] = ex;
        return;
    }
    if (strcmp(req->path, "/slow") == 0) {
        struct later *l = calloc(1, sizeof(*l));
        uv_timer_init(&f->loop, &l->t);
        l->t.data = l;
        l->ex = ex;
        uv_timer_start(&l->t, on_later, 50, 0);
        return;
    }
    if (strcmp(req->path, "/big") == 0) {
        static uint8_t big[100000];
        memset(big, 'b', sizeof(big));
        bkv_http_respond(ex, 200, NULL, 0, big, sizeof(big));
        return;
    }
    if (strcmp(req->path, "/hdr") == 0) {
        const char *v = bkv_http_header_get(req->headers, req->n_headers, "X-Test");
        const char *e = bkv_http_header_get(req->headers, req->n_headers, "x-empty");
        struct bkv_http_header h = {"X-Echo", v != NULL ? v : "(none)"};
        n = snprintf(body, sizeof(body), "%s|%s", v != NULL ? v : "(none)",
                     e != NULL ? (e[0] == '\0' ? "(empty)" : e) : "(none)");
        bkv_http_respond(ex, 200, &h, 1, body, (size_t)n);
        return;
    }
    if (strcmp(req->path, "/badhdr") == 0) {
        struct bkv_http_header h = {"X-Evil", "a\r\nSet-Cookie: x"};
        bkv_http_respond(ex, 200, &h, 1, "no", 2);
        return;
    }
    n = snprintf(body, sizeof(body), "%s %s ", req->method, req->path);
    if (req->body_len > 0 && req->body_len < sizeof(body) - (size_t)n) {
        memcpy(body + n, req->body, req->body_len);
        n += (int)req->body_len;
    }
    bkv_http_respond(ex, 200, NULL, 0, body, (size_t)n);
}

static void on_refused(void *data, int status, const char *peer)
{
    struct fx *f = data;

    if (status >= 400 && strncmp(peer, "127.0.0.1:", 10) == 0)
        atomic_fetch_add(&f->refused, 1);
}

static void on_server_closed(void *data)
{
    struct fx *f = data;

    atomic_store(&f->closed, 1);
    if (f->threaded)
        uv_close((uv_handle_t *)&f->stop, NULL);
}

static void on_stop(uv_async_t *a)
{
    struct fx *f = a->data;

    bkv_http_server_close(f->s, on_server_closed, f);
}

static void run_loop(void *arg)
{
    struct fx *f = arg;

    uv_run(&f->loop, UV_RUN_DEFAULT);
}

static void fx_init(struct fx *f, const struct bkv_http_server_config *cfg_in, int threaded)
{
    struct bkv_http_server_config cfg = {0};
    char err[256];

    memset(f, 0, sizeof(*f));
    if (cfg_in != NULL)
        cfg = *cfg_in;
    cfg.address = "127.0.0.1:0";
    cfg.on_refused = on_refused;
    CU_ASSERT_EQUAL_FATAL(uv_loop_init(&f->loop), 0);
    CU_ASSERT_EQUAL_FATAL(
        bkv_http_server_start(&f->loop, &cfg, handler, f, &f->s, err, sizeof(err)), BKV_OK);
    f->port = bkv_http_server_port(f->s);
    CU_ASSERT(f->port > 0);
    f->threaded = threaded;
    if (threaded) {
        uv_async_init(&f->loop, &f->stop, on_stop);
        f->stop.data = f;
        CU_ASSERT_EQUAL_FATAL(uv_thread_create(&f->thread, run_loop, f), 0);
    }
}

static void fx_done(struct fx *f)
{
    if (f->threaded) {
        uv_async_send(&f->stop);
        uv_thread_join(&f->thread);
    } else {
        bkv_http_server_close(f->s, on_server_closed, f);
        uv_run(&f->loop, UV_RUN_DEFAULT);
    }
    CU_ASSERT_EQUAL(atomic_load(&f->closed), 1);
    /* An exchange kept by the handler is detached: respond only frees it. */
    for (int i = 0; i < f->n_held; i++)
        bkv_http_respond_text(f->held[i], 200, NULL, 0, "too late");
    CU_ASSERT_EQUAL(uv_loop_close(&f->loop), 0);
}

/* --- blocking sockets for the server tests ------------------------------------- */

static int raw_connect(int port)
{
    struct sockaddr_in sa = {0};
    struct timeval tv = {DEADLINE_MS / 1000, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void raw_send(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        CU_ASSERT_FATAL(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

static void raw_puts(int fd, const char *s)
{
    raw_send(fd, s, strlen(s));
}

/*
 * Read one response (head, then Content-Length bytes of body) into buf, NUL-
 * terminated; returns its length, 0 on EOF before any byte, -1 on timeout or
 * a read error. A response without Content-Length ends at EOF.
 */
static long raw_response(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    long want = -1;

    for (;;) {
        char *end;
        ssize_t n;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (end != NULL && want < 0) {
            const char *cl = strstr(buf, "Content-Length: ");
            want = (long)(end + 4 - buf) + (cl != NULL && cl < end ? atol(cl + 16) : 1L << 30);
        }
        if (want >= 0 && (long)len >= want)
            return want;
        if (len + 1 >= cap)
            return (long)len;
        /* one byte at a time past the head so that pipelined answers are not merged */
        n = recv(fd, buf + len,
                 want >= 0 && (size_t)(want - (long)len) < cap - 1 - len
                     ? (size_t)(want - (long)len)
                 : want >= 0 ? cap - 1 - len
                             : 1,
                 0);
        if (n == 0)
            return (long)len;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        len += (size_t)n;
    }
}

/* Read until EOF; 1 if EOF came within the deadline, 0 on timeout, -1 on a reset. */
static int raw_eof(int fd)
{
    char b[4096];

    for (;;) {
        ssize_t n = recv(fd, b, sizeof(b), 0);
        if (n == 0)
            return 1;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == ECONNRESET ? -1 : 0;
    }
}

static int starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* --- server tests ---------------------------------------------------------- */

static void test_keep_alive_and_pipelining(void)
{
    struct fx f;
    char buf[8192];
    int fd;

    fx_init(&f, NULL, 1);
    fd = raw_connect(f.port);
    for (int i = 0; i < 3; i++) {
        raw_puts(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
        CU_ASSERT(raw_response(fd, buf, sizeof(buf)) > 0);
        CU_ASSERT(starts(buf, "HTTP/1.1 200 OK\r\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(buf, "Connection: keep-alive\r\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\r\n\r\nPOST /echo hello"));
    }
    /* Two requests in one write: answered in order, the second after the first. */
    raw_puts(fd, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\n"
                 "Content-Length: 3\r\n\r\nxyz");
    CU_ASSERT(raw_response(fd, buf, sizeof(buf)) > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\r\n\r\nGET /a "));
    CU_ASSERT(raw_response(fd, buf, sizeof(buf)) > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\r\n\r\nPOST /b xyz"));
    /* Headers: lower-cased names, case-insensitive lookup, empty values. */
    raw_puts(fd, "GET /hdr HTTP/1.1\r\nX-TEST: v1\r\nX-Empty:\r\nHost: x\r\n\r\n");
    CU_ASSERT(raw_response(fd, buf, sizeof(buf)) > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "X-Echo: v1\r\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\r\n\r\nv1|(empty)"));
    /* A response header with CR/LF is never written as given. */
    raw_puts(fd, "GET /badhdr HTTP/1.1\r\nHost: x\r\n\r\n");
    CU_ASSERT(raw_response(fd, buf, sizeof(buf)) > 0);
    CU_ASSERT(starts(buf, "HTTP/1.1 500 "));
    CU_ASSERT_PTR_NULL(strstr(buf, "Set-Cookie"));
    /* An answer that comes later (timer) on the same connection. */
    raw_puts(fd, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    CU_ASSERT(raw_response(fd, buf, sizeof(buf)) > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\r\n\r\nslow\n"));
    /* Connection: close is honoured: the answer says close, then EOF. */
    raw_puts(fd, "GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CU_ASSERT(raw_response(fd, buf, sizeof(buf)) > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "Connection: close\r\n"));
    CU_ASSERT_EQUAL(raw_eof(fd), 1);
    close(fd);
    /* HTTP/1.0 without keep-alive: one answer, then close. */
    fd = raw_connect(f.port);
    raw_puts(fd, "GET /old HTTP/1.0\r\n\r\n");
    CU_ASSERT(raw_response(fd, buf, sizeof(buf)) > 0);
    CU_ASSERT(starts(buf, "HTTP/1.1 200 OK"));
    CU_ASSERT_EQUAL(raw_eof(fd), 1);
    close(fd);
    fx_done(&f);
    CU_ASSERT_EQUAL(atomic_load(&f.handled), 10);
    CU_ASSERT_EQUAL(f.n_peers, 2);
}

static int answers; /* expect_answer calls, to compare with on_refused */

/* Send raw bytes on a fresh connection; expect status, then the connection closes. */
static void expect_answer(struct fx *f, const char *bytes, size_t len, const char *status_line,
                          const char *text)
{
    char buf[8192];
    int fd = raw_connect(f->port);

    answers++;
    raw_send(fd, bytes, len);
    CU_ASSERT(raw_response(fd, buf, sizeof(buf)) > 0);
    if (!starts(buf, status_line))
        fprintf(stderr, "for %.40s: want %s, got: %.60s\n", bytes, status_line, buf);
    CU_ASSERT(starts(buf, status_line));
    if (text != NULL && strstr(buf, text) == NULL)
        fprintf(stderr, "for %.40s: want text %s, got: %s\n", bytes, text, buf);
    if (text != NULL)
        CU_ASSERT_PTR_NOT_NULL(strstr(buf, text));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "Connection: close\r\n"));
    CU_ASSERT_EQUAL(raw_eof(fd), 1);
    close(fd);
}

#define ANSWER(f, s, status, text) expect_answer(f, s, strlen(s), status, text)

static void test_bad_requests(void)
{
    struct bkv_http_server_config cfg = {.max_body = 1000, .max_header_bytes = 2048};
    struct fx f;
    char *flood;
    size_t off = 0;

    fx_init(&f, &cfg, 1);
    ANSWER(&f, "GARBAGE\r\n\r\n", "HTTP/1.1 400 ", "malformed HTTP");
    ANSWER(&f, "GET / HTTX/1.1\r\n\r\n", "HTTP/1.1 400 ", NULL);
    ANSWER(&f, "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", "HTTP/1.1 400 ", NULL);
    ANSWER(&f, "GET / HTTP/1.1\r\nX : x\r\n\r\n", "HTTP/1.1 400 ", NULL);
    ANSWER(&f, "GET / HTTP/1.1\r\n: x\r\n\r\n", "HTTP/1.1 400 ", "malformed HTTP");
    ANSWER(&f, "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "HTTP/1.1 400 ",
           NULL);
    ANSWER(&f, "POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", "HTTP/1.1 400 ", NULL);
    /* Above max_body by Content-Length: refused before a byte of the body is sent. */
    ANSWER(&f, "POST / HTTP/1.1\r\nContent-Length: 1001\r\n\r\n", "HTTP/1.1 413 ", "too large");
    ANSWER(&f, "POST / HTTP/1.1\r\nContent-Length: 99999999999999\r\n\r\n", "HTTP/1.1 413 ", NULL);
    ANSWER(&f, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
           "HTTP/1.1 501 ", NULL);
    ANSWER(&f, "OPTIONS / HTTP/1.1\r\n\r\n", "HTTP/1.1 501 ", NULL);
    ANSWER(&f, "CONNECT x:1 HTTP/1.1\r\n\r\n", "HTTP/1.1 501 ", NULL);
    /* Header floods: too many headers, one huge header, an endless header section. */
    flood = malloc(1 << 20);
    off = (size_t)sprintf(flood, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 40; i++)
        off += (size_t)sprintf(flood + off, "X-%d: y\r\n", i);
    off += (size_t)sprintf(flood + off, "\r\n");
    expect_answer(&f, flood, off, "HTTP/1.1 431 ", NULL);
    off = (size_t)sprintf(flood, "GET / HTTP/1.1\r\nX-Big: ");
    memset(flood + off, 'a', 4000);
    off += 4000;
    off += (size_t)sprintf(flood + off, "\r\n\r\n");
    expect_answer(&f, flood, off, "HTTP/1.1 431 ", NULL);
    off = (size_t)sprintf(flood, "GET /");
    memset(flood + off, 'a', 5000);
    off += 5000;
    off += (size_t)sprintf(flood + off, " HTTP/1.1\r\n\r\n");
    expect_answer(&f, flood, off, "HTTP/1.1 431 ", NULL);
    free(flood);
    fx_done(&f);
    CU_ASSERT_EQUAL(atomic_load(&f.handled), 0);
    CU_ASSERT(answers >= 15);
    CU_ASSERT_EQUAL(atomic_load(&f.refused), answers);
}

static void test_oversized_body_not_read(void)
{
    struct bkv_http_server_config cfg = {.max_body = 4096};
    struct fx f;
    char buf[8192], chunk[65536];
    int fd;
    long n;

    fx_init(&f, &cfg, 1);
    /* The 413 arrives while the client is still sending its 10 MB body; no reset. */
    fd = raw_connect(f.port);
    raw_puts(fd, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n");
    memset(chunk, 'z', sizeof(chunk));
    raw_send(fd, chunk, sizeof(chunk));
    n = raw_response(fd, buf, sizeof(buf));
    CU_ASSERT(n > 0);
    CU_ASSERT(starts(buf, "HTTP/1.1 413 "));
    close(fd);
    /* 100-continue: accepted bodies are asked for, then answered. */
    fd = raw_connect(f.port);
    raw_puts(fd,
             "POST /c HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    n = recv(fd, buf, 25, MSG_WAITALL);
    CU_ASSERT_EQUAL(n, 25);
    buf[n > 0 ? n : 0] = '\0';
    CU_ASSERT_STRING_EQUAL(buf, "HTTP/1.1 100 Continue\r\n\r\n");
    raw_puts(fd, "body");
    CU_ASSERT(raw_response(fd, buf, sizeof(buf)) > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\r\n\r\nPOST /c body"));
    /* A request followed by a half-close still gets its whole answer. */
    raw_puts(fd, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
    shutdown(fd, SHUT_WR);
    n = raw_response(fd, buf, sizeof(buf));
    CU_ASSERT(n > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "Content-Length: 100000\r\n"));
    close(fd);
    fx_done(&f);
    CU_ASSERT_EQUAL(atomic_load(&f.handled), 2);
}

static void test_timeouts(void)
{
    struct bkv_http_server_config cfg = {.idle_timeout_ms = 300};
    struct fx f;
    char buf[8192];
    int fd;
    uint64_t t0;

    fx_init(&f, &cfg, 1);
    /* A request that never completes: 408 after the timeout. */
    t0 = uv_hrtime();
    fd = raw_connect(f.port);
    raw_puts(fd, "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
    CU_ASSERT(raw_response(fd, buf, sizeof(buf)) > 0);
    CU_ASSERT(starts(buf, "HTTP/1.1 408 "));
    CU_ASSERT((uv_hrtime() - t0) / 1000000 >= 290);
    CU_ASSERT_EQUAL(raw_eof(fd), 1);
    close(fd);
    /* Trickling bytes does not extend the deadline of one request. */
    t0 = uv_hrtime();
    fd = raw_connect(f.port);
    raw_puts(fd, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 50; i++) {
        struct timespec nap = {0, 20 * 1000 * 1000};
        if (send(fd, "X-A: b\r\n", 8, MSG_NOSIGNAL) < 0)
            break; /* closed by the server: fine */
        nanosleep(&nap, NULL);
    }
    CU_ASSERT(raw_response(fd, buf, sizeof(buf)) > 0);
    CU_ASSERT(starts(buf, "HTTP/1.1 408 "));
    close(fd);
    /* An idle connection is closed silently. */
    fd = raw_connect(f.port);
    CU_ASSERT_EQUAL(raw_eof(fd), 1);
    close(fd);
    fx_done(&f);
}

static void test_connection_cap(void)
{
    struct bkv_http_server_config cfg = {.max_connections = 3};
    struct fx f;
    char buf[8192];
    int fd, fd2, fd3, fd4;

    fx_init(&f, &cfg, 1);
    /* The connection cap: the fourth is closed at once, the first three work. */
    fd = raw_connect(f.port);
    fd2 = raw_connect(f.port);
    fd3 = raw_connect(f.port);
    raw_puts(fd3, "GET /3 HTTP/1.1\r\n\r\n"); /* the three are accepted before the fourth */
    CU_ASSERT(raw_response(fd3, buf, sizeof(buf)) > 0);
    fd4 = raw_connect(f.port);
    CU_ASSERT_NOT_EQUAL(raw_eof(fd4), 0);
    raw_puts(fd, "GET /1 HTTP/1.1\r\n\r\n");
    CU_ASSERT(raw_response(fd, buf, sizeof(buf)) > 0);
    CU_ASSERT(starts(buf, "HTTP/1.1 200 "));
    close(fd);
    close(fd2);
    close(fd3);
    close(fd4);
    fx_done(&f);
}

/* Closing the server with a request at the handler and others mid-read. */
static void test_close_with_exchange(void)
{
    struct fx f;
    int fd, fd2;

    fx_init(&f, NULL, 1);
    fd = raw_connect(f.port);
    raw_puts(fd, "GET /never HTTP/1.1\r\n\r\n");
    fd2 = raw_connect(f.port);
    raw_puts(fd2, "GET /partial HTTP/1.1\r\n");
    for (int i = 0; i < DEADLINE_MS && atomic_load(&f.handled) == 0; i++) {
        struct timespec nap = {0, 1000 * 1000};
        nanosleep(&nap, NULL);
    }
    CU_ASSERT_EQUAL(atomic_load(&f.handled), 1);
    fx_done(&f); /* responds to the held exchange after the close: only frees it */
    CU_ASSERT_NOT_EQUAL(raw_eof(fd), 0);
    CU_ASSERT_NOT_EQUAL(raw_eof(fd2), 0);
    close(fd);
    close(fd2);
}

/* --- client tests ------------------------------------------------------------ */

struct result {
    int done, err, status;
    char body[256];
    size_t body_len;
    char hdr[64];
};

static void on_response(void *data, int err, const struct bkv_http_response *resp)
{
    struct result *r = data;

    r->done++;
    r->err = err;
    if (resp != NULL) {
        const char *h = bkv_http_header_get(resp->headers, resp->n_headers, "x-echo");
        r->status = resp->status;
        r->body_len = resp->body_len;
        if (resp->body_len > 0)
            memcpy(r->body, resp->body, resp->body_len < 255 ? resp->body_len : 255);
        r->body[resp->body_len < 255 ? resp->body_len : 255] = '\0';
        snprintf(r->hdr, sizeof(r->hdr), "%s", h != NULL ? h : "");
    }
}

static void on_guard(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Run the loop until *count reaches want or the deadline passes; returns 1 if reached. */
static int run_until(uv_loop_t *loop, int *count, int want)
{
    uv_timer_t guard;
    int expired = 0;

    uv_timer_init(loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, on_guard, DEADLINE_MS, 0);
    while (*count < want && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *count >= want;
}

struct many {
    int done, ok;
};

struct one {
    struct many *m;
    int i;
};

static void on_many(void *data, int err, const struct bkv_http_response *resp)
{
    struct one *o = data;
    char want[64];
    int n = snprintf(want, sizeof(want), "POST /m/%d body-%d", o->i, o->i);

    if (err == 0 && resp->status == 200 && resp->body_len == (size_t)n &&
        memcmp(resp->body, want, (size_t)n) == 0)
        o->m->ok++;
    o->m->done++;
}

static void on_closed_flag(void *data)
{
    *(int *)data = 1;
}

static void client_done(uv_loop_t *loop, struct bkv_http_client *c)
{
    int closed = 0;

    bkv_http_client_close(c, on_closed_flag, &closed);
    CU_ASSERT(run_until(loop, &closed, 1));
}

static void test_client_many(void)
{
    enum { N = 300 };
    struct fx f;
    struct bkv_http_client *c;
    struct bkv_http_client_config cc = {.max_conns_per_address = 4, .max_body = 200000};
    static struct one ones[N];
    struct many m = {0};
    struct result r = {0};
    char addr[64], path[32], body[32];
    struct bkv_http_header h = {"X-Test", "abc"};

    fx_init(&f, NULL, 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", f.port);
    CU_ASSERT_EQUAL_FATAL(bkv_http_client_new(&f.loop, &cc, &c), BKV_OK);
    for (int i = 0; i < N; i++) {
        ones[i] = (struct one){&m, i};
        snprintf(path, sizeof(path), "/m/%d", i);
        snprintf(body, sizeof(body), "body-%d", i);
        CU_ASSERT_EQUAL(bkv_http_client_request(c, addr, "POST", path, NULL, 0, body, strlen(body),
                                                5000, on_many, &ones[i]),
                        BKV_OK);
    }
    CU_ASSERT_EQUAL(m.done, 0); /* never called back from inside the request call */
    CU_ASSERT(run_until(&f.loop, &m.done, N));
    CU_ASSERT_EQUAL(m.ok, N);
    /* The pool bounded the connections and reused them. */
    CU_ASSERT(f.n_peers >= 1 && f.n_peers <= 4);
    /* Headers both ways, a large body, a late answer, all on the same pool. */
    CU_ASSERT_EQUAL(
        bkv_http_client_request(c, addr, "GET", "/hdr", &h, 1, NULL, 0, 5000, on_response, &r),
        BKV_OK);
    CU_ASSERT(run_until(&f.loop, &r.done, 1));
    CU_ASSERT_EQUAL(r.err, 0);
    CU_ASSERT_STRING_EQUAL(r.hdr, "abc");
    memset(&r, 0, sizeof(r));
    CU_ASSERT_EQUAL(
        bkv_http_client_request(c, addr, "GET", "/big", NULL, 0, NULL, 0, 5000, on_response, &r),
        BKV_OK);
    CU_ASSERT(run_until(&f.loop, &r.done, 1));
    CU_ASSERT_EQUAL(r.err, 0);
    CU_ASSERT_EQUAL(r.body_len, 100000);
    memset(&r, 0, sizeof(r));
    CU_ASSERT_EQUAL(
        bkv_http_client_request(c, addr, "GET", "/slow", NULL, 0, NULL, 0, 5000, on_response, &r),
        BKV_OK);
    CU_ASSERT(run_until(&f.loop, &r.done, 1));
    CU_ASSERT_STRING_EQUAL(r.body, "slow\n");
    CU_ASSERT(f.n_peers <= 4);
    client_done(&f.loop, c);
    fx_done(&f);
}

/* A raw TCP server on the loop: answers each connection's first read with canned bytes. */
struct raw {
    uv_tcp_t tcp;
    const char *reply;
    size_t reply_len;
    int close_after, port;
};

struct raw_conn {
    uv_tcp_t tcp;
    struct raw *r;
    char buf[4096];
    int answered;
};

static void raw_conn_closed(uv_handle_t *h)
{
    free(h->data);
}

static void raw_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    struct raw_conn *rc = h->data;

    (void)s;
    *b = uv_buf_init(rc->buf, sizeof(rc->buf));
}

static void raw_written(uv_write_t *w, int status)
{
    struct raw_conn *rc = w->data;

    (void)status;
    if (rc->r->close_after && !uv_is_closing((uv_handle_t *)&rc->tcp))
        uv_close((uv_handle_t *)&rc->tcp, raw_conn_closed);
    free(w);
}

static void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct raw_conn *rc = s->data;

    (void)b;
    if (n < 0) {
        if (!uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, raw_conn_closed);
        return;
    }
    if (n > 0 && !rc->answered) {
        uv_write_t *w = malloc(sizeof(*w));
        uv_buf_t out = uv_buf_init((char *)rc->r->reply, (unsigned)rc->r->reply_len);
        rc->answered = 1;
        w->data = rc;
        if (rc->r->reply_len == 0) {
            free(w);
            uv_close((uv_handle_t *)s, raw_conn_closed);
            return;
        }
        uv_write(w, s, &out, 1, raw_written);
    }
}

static void raw_accept(uv_stream_t *server, int status)
{
    struct raw *r = server->data;
    struct raw_conn *rc = calloc(1, sizeof(*rc));

    (void)status;
    rc->r = r;
    uv_tcp_init(server->loop, &rc->tcp);
    rc->tcp.data = rc;
    uv_accept(server, (uv_stream_t *)&rc->tcp);
    uv_read_start((uv_stream_t *)&rc->tcp, raw_alloc, raw_read);
}

static void raw_start(uv_loop_t *loop, struct raw *r)
{
    struct sockaddr_in sa;
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    uv_ip4_addr("127.0.0.1", 0, &sa);
    uv_tcp_init(loop, &r->tcp);
    r->tcp.data = r;
    CU_ASSERT_EQUAL_FATAL(uv_tcp_bind(&r->tcp, (struct sockaddr *)&sa, 0), 0);
    CU_ASSERT_EQUAL_FATAL(uv_listen((uv_stream_t *)&r->tcp, 16, raw_accept), 0);
    uv_tcp_getsockname(&r->tcp, (struct sockaddr *)&ss, &len);
    r->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, h->type == UV_TCP && h->data != NULL && ((struct raw_conn *)h->data)->r != NULL
                        ? raw_conn_closed
                        : NULL);
}

/* One request to a raw server answering reply; returns the result. */
static struct result raw_exchange(const char *reply, size_t reply_len, int close_after,
                                  size_t max_body)
{
    uv_loop_t loop;
    struct raw r = {.reply = reply, .reply_len = reply_len, .close_after = close_after};
    struct bkv_http_client *c;
    struct bkv_http_client_config cc = {.max_body = max_body};
    struct result res = {0};
    char addr[64];

    uv_loop_init(&loop);
    raw_start(&loop, &r);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", r.port);
    bkv_http_client_new(&loop, &cc, &c);
    CU_ASSERT_EQUAL(
        bkv_http_client_request(c, addr, "POST", "/x", NULL, 0, "q", 1, 2000, on_response, &res),
        BKV_OK);
    CU_ASSERT(run_until(&loop, &res.done, 1));
    client_done(&loop, c);
    r.tcp.data = NULL;
    uv_walk(&loop, close_walk, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CU_ASSERT_EQUAL(uv_loop_close(&loop), 0);
    CU_ASSERT_EQUAL(res.done, 1);
    return res;
}

#define RAW(s, close_after, max) raw_exchange(s, sizeof(s) - 1, close_after, max)

static void test_client_errors(void)
{
    struct result r;

    r = RAW("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, 0);
    CU_ASSERT_EQUAL(r.err, 0);
    CU_ASSERT_STRING_EQUAL(r.body, "ok");
    r = RAW("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 421 Misdirected\r\nX-Echo: n2\r\n"
            "Content-Length: 0\r\n\r\n",
            0, 0);
    CU_ASSERT_EQUAL(r.err, 0);
    CU_ASSERT_EQUAL(r.status, 421);
    CU_ASSERT_STRING_EQUAL(r.hdr, "n2");
    r = RAW("HTTP/1.0 200 OK\r\n\r\nuntil eof", 1, 0);
    CU_ASSERT_EQUAL(r.err, 0);
    CU_ASSERT_STRING_EQUAL(r.body, "until eof");
    r = RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 0, 0);
    CU_ASSERT_EQUAL(r.err, 0);
    CU_ASSERT_STRING_EQUAL(r.body, "abc");
    r = RAW("this is not HTTP\r\n\r\n", 0, 0);
    CU_ASSERT_EQUAL(r.err, BKV_ERR_FORMAT);
    r = RAW("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 1, 0);
    CU_ASSERT_EQUAL(r.err, BKV_ERR_IO);
    r = RAW("", 1, 0); /* closed without a byte */
    CU_ASSERT_EQUAL(r.err, BKV_ERR_IO);
    r = RAW("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", 0, 50);
    CU_ASSERT_EQUAL(r.err, BKV_ERR_LENGTH);
    r = RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n"
            "0123456789012345678901234567890123456789012345678901234567890123\r\n0\r\n\r\n",
            0, 50);
    CU_ASSERT_EQUAL(r.err, BKV_ERR_LENGTH);
    r = RAW("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", 0, 0); /* stalls: timeout */
    CU_ASSERT_EQUAL(r.err, BKV_ERR_LIMIT);
}

static void test_client_refused_timeout_shutdown(void)
{
    struct fx f;
    struct bkv_http_client *c;
    struct result r1 = {0}, r2 = {0}, r3 = {0}, r4 = {0};
    struct bkv_http_header crlf = {"X-A", "b\r\nc"}, host = {"Host", "h"};
    char addr[64], dead[64];
    int sock, closed = 0;
    struct sockaddr_in sa = {0};
    socklen_t sl = sizeof(sa);
    uint64_t t0;

    fx_init(&f, NULL, 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", f.port);
    /* A port with nothing listening: bind one, note it, close it. */
    sock = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(sock, (struct sockaddr *)&sa, sizeof(sa));
    getsockname(sock, (struct sockaddr *)&sa, &sl);
    snprintf(dead, sizeof(dead), "127.0.0.1:%d", ntohs(sa.sin_port));
    close(sock);
    CU_ASSERT_EQUAL_FATAL(bkv_http_client_new(&f.loop, NULL, &c), BKV_OK);
    /* Refused: fails fast, well before the request's timeout; both queued requests fail. */
    t0 = uv_hrtime();
    CU_ASSERT_EQUAL(
        bkv_http_client_request(c, dead, "GET", "/", NULL, 0, NULL, 0, 8000, on_response, &r1),
        BKV_OK);
    CU_ASSERT_EQUAL(
        bkv_http_client_request(c, dead, "GET", "/", NULL, 0, NULL, 0, 8000, on_response, &r2),
        BKV_OK);
    CU_ASSERT(run_until(&f.loop, &r2.done, 1));
    CU_ASSERT(run_until(&f.loop, &r1.done, 1));
    CU_ASSERT_EQUAL(r1.err, BKV_ERR_IO);
    CU_ASSERT_EQUAL(r2.err, BKV_ERR_IO);
    CU_ASSERT((uv_hrtime() - t0) / 1000000 < 4000);
    /* The handler never answers: the request times out. */
    memset(&r1, 0, sizeof(r1));
    t0 = uv_hrtime();
    CU_ASSERT_EQUAL(
        bkv_http_client_request(c, addr, "GET", "/never", NULL, 0, NULL, 0, 200, on_response, &r1),
        BKV_OK);
    CU_ASSERT(run_until(&f.loop, &r1.done, 1));
    CU_ASSERT_EQUAL(r1.err, BKV_ERR_LIMIT);
    CU_ASSERT((uv_hrtime() - t0) / 1000000 >= 190);
    /* Bad arguments: refused at once, no callback. */
    CU_ASSERT_EQUAL(
        bkv_http_client_request(c, "nocolon", "GET", "/", NULL, 0, NULL, 0, 100, on_response, &r3),
        BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_http_client_request(c, "127.0.0.1:0", "GET", "/", NULL, 0, NULL, 0, 100,
                                            on_response, &r3),
                    BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(
        bkv_http_client_request(c, addr, "G T", "/", NULL, 0, NULL, 0, 100, on_response, &r3),
        BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(
        bkv_http_client_request(c, addr, "GET", "/a b", NULL, 0, NULL, 0, 100, on_response, &r3),
        BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(
        bkv_http_client_request(c, addr, "GET", "/", &crlf, 1, NULL, 0, 100, on_response, &r3),
        BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(
        bkv_http_client_request(c, addr, "GET", "/", &host, 1, NULL, 0, 100, on_response, &r3),
        BKV_ERR_INVALID);
    /* Close with requests in flight and queued: each fails once with SHUTDOWN. */
    CU_ASSERT_EQUAL(
        bkv_http_client_request(c, addr, "GET", "/never", NULL, 0, NULL, 0, 5000, on_response, &r3),
        BKV_OK);
    CU_ASSERT_EQUAL(
        bkv_http_client_request(c, dead, "GET", "/", NULL, 0, NULL, 0, 5000, on_response, &r4),
        BKV_OK);
    CU_ASSERT(run_until(&f.loop, &f.handled_n, 2)); /* the second /never is at the handler */
    bkv_http_client_close(c, on_closed_flag, &closed);
    CU_ASSERT_EQUAL(
        bkv_http_client_request(c, addr, "GET", "/", NULL, 0, NULL, 0, 100, on_response, &r1),
        BKV_ERR_SHUTDOWN);
    CU_ASSERT(run_until(&f.loop, &closed, 1));
    CU_ASSERT_EQUAL(r3.done, 1);
    CU_ASSERT_EQUAL(r3.err, BKV_ERR_SHUTDOWN);
    CU_ASSERT_EQUAL(r4.done, 1);
    CU_ASSERT(r4.err == BKV_ERR_SHUTDOWN || r4.err == BKV_ERR_IO);
    fx_done(&f); /* the held exchanges of /never are answered (freed) there */
}

static void test_address_parse(void)
{
    char host[64];
    unsigned port = 0;

    CU_ASSERT_EQUAL(bkv_http_address_parse("127.0.0.1:8080", host, sizeof(host), &port), 0);
    CU_ASSERT_STRING_EQUAL(host, "127.0.0.1");
    CU_ASSERT_EQUAL(port, 8080);
    CU_ASSERT_EQUAL(bkv_http_address_parse("[::1]:80", host, sizeof(host), &port), 0);
    CU_ASSERT_STRING_EQUAL(host, "::1");
    CU_ASSERT_EQUAL(bkv_http_address_parse("node-1:7001", host, sizeof(host), &port), 0);
    CU_ASSERT_STRING_EQUAL(host, "node-1");
    CU_ASSERT_NOT_EQUAL(bkv_http_address_parse("::1:80", host, sizeof(host), &port), 0);
    CU_ASSERT_NOT_EQUAL(bkv_http_address_parse("host", host, sizeof(host), &port), 0);
    CU_ASSERT_NOT_EQUAL(bkv_http_address_parse(":80", host, sizeof(host), &port), 0);
    CU_ASSERT_NOT_EQUAL(bkv_http_address_parse("h:", host, sizeof(host), &port), 0);
    CU_ASSERT_NOT_EQUAL(bkv_http_address_parse("h:65536", host, sizeof(host), &port), 0);
    CU_ASSERT_NOT_EQUAL(bkv_http_address_parse("h:-1", host, sizeof(host), &port), 0);
    CU_ASSERT_NOT_EQUAL(bkv_http_address_parse("h:80x", host, sizeof(host), &port), 0);
    CU_ASSERT_NOT_EQUAL(bkv_http_address_parse("[::1]80", host, sizeof(host), &port), 0);
}

static CU_TestInfo tests[] = {
    {"address parsing", test_address_parse},
    {"server: keep-alive, pipelining, headers, Connection: close", test_keep_alive_and_pipelining},
    {"server: broken HTTP 400, 413 by Content-Length, 501, header floods 431", test_bad_requests},
    {"server: 413 while the body is still coming, 100-continue, half-close",
     test_oversized_body_not_read},
    {"server: 408, idle close", test_timeouts},
    {"server: connection cap", test_connection_cap},
    {"server: close with an exchange at the handler", test_close_with_exchange},
    {"client: 300 concurrent requests over a pool of 4", test_client_many},
    {"client: malformed, truncated, oversized, stalled answers", test_client_errors},
    {"client: refused, timeout, bad arguments, shutdown", test_client_refused_timeout_shutdown},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    return bkv_test_main("node_http", tests, NULL, NULL);
}
