/*
 * libFuzzer target: the HTTP/1.1 parsing of node/http.c (the server side of
 * bkv-router and bkv-node), of node/http_client.c (the client the router
 * uses to reach nodes) and of client/http.c (libbkv's blocking client).
 * Neither exposes a pure parsing function, so the input travels over real
 * loopback TCP into the real code:
 *
 *   's'  bytes a client sends to a node/http.c server (one write), then EOF;
 *   'S'  the same in 7-byte writes, each read on its own (llhttp callbacks
 *        split across reads);
 *   'r'  the response a node/http_client.c client gets to a POST (one write);
 *   'R'  the same in 7-byte writes;
 *   'h'  the response a node/http_client.c client gets to a HEAD;
 *   'c'  the response bkv_client_http_do (libbkv) gets to a GET;
 *   any other first byte: (byte % 6) picks one of these in this order.
 *
 * Server and node client run on one libuv loop on this thread; the fake
 * peer for libbkv's blocking client is a helper thread. Each input ends only
 * when every handle it opened is closed again, so inputs do not leak into
 * each other. Checks: the handler gets only what http.h promises (methods,
 * lower-case header names, bounded body), the server's answers are HTTP, and
 * a response handed to a caller is within its limits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client/internal.h"
#include "fuzz.h"
#include "node/http.h"
#include "proto/err.h"

#define MAX_BODY   4096
#define MAX_HEADER 2048
#define PIECE      7
#define WAIT_MS    5000 /* one input may not take longer than this on the loop */

static uv_loop_t loop;
static struct bkv_http_server *server;
static int server_port;
static int peer_fd = -1; /* plain listener: the fake node for node/http_client.c */
static uv_poll_t peer_watch, conn_watch;
static uv_timer_t cap_timer;
static int peer_port;
static uv_idle_t deferred_idle;
static struct bkv_http_exchange *deferred;
static const struct bkv_http_request *deferred_req;
static unsigned n_requests, addr_seq;
static int baseline; /* handles of the fixture itself */

/* --- helpers ------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void count_handle(uv_handle_t *h, void *arg)
{
    (void)h;
    (*(int *)arg)++;
}

static int handle_count(void)
{
    int n = 0;

    uv_walk(&loop, count_handle, &n);
    return n;
}

static void on_ready(uv_poll_t *p, int status, int events)
{
    (void)p, (void)status, (void)events; /* only wakes the loop: the caller reads */
}

static void on_cap(uv_timer_t *t)
{
    (void)t;
}

/* Wake the loop while fd (a socket of this target, not of the code under test) is readable. */
static void watch(uv_poll_t *p, int fd)
{
    FUZZ_CHECK(uv_poll_init_socket(&loop, p, fd) == 0);
    FUZZ_CHECK(uv_poll_start(p, UV_READABLE, on_ready) == 0);
}

/*
 * One round of the loop, blocking until something happens on its handles or
 * on a watched socket, 20 ms at most (a backstop: nothing should need it).
 */
static void spin(void)
{
    uv_timer_start(&cap_timer, on_cap, 20, 0);
    uv_run(&loop, UV_RUN_ONCE);
    uv_timer_stop(&cap_timer);
}

/* Run the loop until only the fixture's own handles are left. */
static void settle(void)
{
    int64_t end = now_ms() + WAIT_MS;

    while (handle_count() > baseline) {
        FUZZ_CHECK(now_ms() < end); /* a connection or request that never ends */
        spin();
    }
}

static int listen_loopback(int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    FUZZ_CHECK(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    FUZZ_CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    FUZZ_CHECK(listen(fd, 64) == 0);
    FUZZ_CHECK(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* accept(2) with the new socket non-blocking (accept4 would need _GNU_SOURCE). */
static int accept_nonblock(int lfd, int nonblock)
{
    int fd = accept(lfd, NULL, NULL);

    if (fd >= 0 && nonblock)
        FUZZ_CHECK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0);
    return fd;
}

/* Write all of buf to a non-blocking fd, running the loop while the socket is full. */
static void send_all(int fd, const uint8_t *buf, size_t len, size_t piece)
{
    int64_t end = now_ms() + WAIT_MS;

    while (len > 0) {
        size_t n = len < piece ? len : piece;
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);

        if (w > 0) {
            buf += w;
            len -= (size_t)w;
            if (piece < SIZE_MAX)
                uv_run(&loop, UV_RUN_NOWAIT); /* the peer reads this piece on its own */
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return; /* the peer is gone (it answered and closed): fine */
        FUZZ_CHECK(now_ms() < end);
        spin();
    }
}

/* --- node/http.c server ------------------------------------------------------- */

static void respond(struct bkv_http_exchange *ex, const struct bkv_http_request *req)
{
    struct bkv_http_header h[2];
    size_t n = 0;
    const char *echo = bkv_http_header_get(req->headers, req->n_headers, "x-echo");

    h[n++] = (struct bkv_http_header){"Content-Type", "application/octet-stream"};
    if (echo != NULL)
        h[n++] = (struct bkv_http_header){"X-Echo", echo}; /* respond must refuse a bad one */
    bkv_http_respond(ex, 200, h, n, req->body, req->body_len);
}

static void on_deferred(uv_idle_t *idle)
{
    struct bkv_http_exchange *ex = deferred;

    uv_idle_stop(idle);
    deferred = NULL;
    if (ex != NULL)
        respond(ex, deferred_req);
}

static void handler(struct bkv_http_exchange *ex, const struct bkv_http_request *req, void *data)
{
    unsigned sum = 0;

    (void)data;
    FUZZ_CHECK(req->method != NULL && req->path != NULL);
    FUZZ_CHECK(strcmp(req->method, "GET") == 0 || strcmp(req->method, "POST") == 0 ||
               strcmp(req->method, "PUT") == 0 || strcmp(req->method, "DELETE") == 0);
    FUZZ_CHECK(req->n_headers <= BKV_HTTP_MAX_HEADERS);
    for (size_t i = 0; i < req->n_headers; i++) {
        const char *name = req->headers[i].name;

        FUZZ_CHECK(name != NULL && name[0] != '\0' && req->headers[i].value != NULL);
        for (const char *c = name; *c != '\0'; c++)
            FUZZ_CHECK(!(*c >= 'A' && *c <= 'Z') && *c != ' ' && *c != ':');
    }
    FUZZ_CHECK(req->body_len <= MAX_BODY && (req->body_len == 0 || req->body != NULL));
    for (size_t i = 0; i < req->body_len; i++)
        sum += req->body[i]; /* every byte is readable */
    (void)sum;
    /* Every other request is answered later, from the loop, like the gateway does. */
    if (n_requests++ % 2 == 0) {
        respond(ex, req);
        return;
    }
    FUZZ_CHECK(deferred == NULL);
    deferred = ex;
    deferred_req = req;
    uv_idle_start(&deferred_idle, on_deferred);
}

/*
 * A connected socket to the server. This side closes first, so its ends stay
 * in TIME_WAIT for a minute: they are spread over the source addresses
 * 127.1.0.1 to 127.1.253.233, each with its own ephemeral ports, and the
 * port is picked at connect() (IP_BIND_ADDRESS_NO_PORT), where the kernel
 * skips a 4-tuple still in TIME_WAIT.
 */
static int connect_server(void)
{
    struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
    int one = 1;

    if (addr_seq == 0)
        addr_seq = (unsigned)getpid() * 7919u; /* fork mode: jobs start apart */
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    dst.sin_port = htons((uint16_t)server_port);
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        FUZZ_SETUP(fd < 0);
        addr_seq++;
        src.sin_addr.s_addr = htonl(0x7f010000u | ((addr_seq % 65000u) + 1));
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) == 0 &&
            connect(fd, (struct sockaddr *)&dst, sizeof(dst)) == 0)
            return fd;
        close(fd);
    }
    fprintf(stderr, "fuzz_http: cannot connect to the server on 127.0.0.1:%d\n", server_port);
    exit(2); /* the machine, not a finding */
}

static void fuzz_server(const uint8_t *in, size_t len, size_t piece)
{
    uint8_t buf[4096];
    size_t got = 0;
    char first[9];
    int fd = connect_server();
    int64_t end = now_ms() + WAIT_MS;

    watch(&conn_watch, fd); /* also makes fd non-blocking */

    uv_run(&loop, UV_RUN_NOWAIT); /* accept */
    send_all(fd, in, len, piece);
    shutdown(fd, SHUT_WR);
    /* Read the answers until the server closes. */
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof(buf), 0);

        if (r > 0) {
            if (got < sizeof(first))
                memcpy(first + got, buf,
                       (size_t)r < sizeof(first) - got ? (size_t)r : sizeof(first) - got);
            got += (size_t)r;
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            break;
        FUZZ_CHECK(now_ms() < end); /* the server never closed the connection */
        spin();
    }
    uv_close((uv_handle_t *)&conn_watch, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    close(fd);
    if (got > 0)
        FUZZ_CHECK(got >= sizeof(first) && memcmp(first, "HTTP/1.1 ", sizeof(first)) == 0);
    settle();
    FUZZ_CHECK(deferred == NULL);
}

/* --- node/http_client.c client ------------------------------------------------ */

struct call {
    int done, err, head;
};

static void on_response(void *data, int err, const struct bkv_http_response *resp)
{
    struct call *c = data;

    c->done = 1;
    c->err = err;
    if (err != 0) {
        FUZZ_CHECK(resp == NULL);
        return;
    }
    FUZZ_CHECK(resp != NULL);
    FUZZ_CHECK(resp->status >= 100 && resp->status <= 999);
    FUZZ_CHECK(resp->n_headers <= BKV_HTTP_MAX_HEADERS);
    FUZZ_CHECK(resp->body_len <= MAX_BODY && (resp->body_len == 0 || resp->body != NULL));
    if (c->head)
        FUZZ_CHECK(resp->body_len == 0);
    for (size_t i = 0; i < resp->n_headers; i++) {
        FUZZ_CHECK(resp->headers[i].name != NULL && resp->headers[i].value != NULL);
        for (const char *p = resp->headers[i].name; *p != '\0'; p++)
            FUZZ_CHECK(!(*p >= 'A' && *p <= 'Z'));
    }
}

static void on_client_closed(void *data)
{
    *(int *)data = 1;
}

static void fuzz_node_client(const uint8_t *in, size_t len, size_t piece, int head)
{
    static const struct bkv_http_client_config ccfg = {MAX_BODY, 1, 2000, 1000};
    static const struct bkv_http_header hdr = {"X-BKV-Account", "alice@example.com"};
    struct bkv_http_client *cl;
    struct call call = {.head = head};
    char address[32];
    int fd = -1, closed = 0, shut = 0;
    size_t sent = 0;
    int64_t end = now_ms() + WAIT_MS;

    snprintf(address, sizeof(address), "127.0.0.1:%d", peer_port);
    FUZZ_CHECK(bkv_http_client_new(&loop, &ccfg, &cl) == BKV_OK);
    FUZZ_CHECK(bkv_http_client_request(cl, address, head ? "HEAD" : "POST", "/v1/vault", &hdr, 1,
                                       "x", 1, WAIT_MS / 2, on_response, &call) == BKV_OK);
    while (!call.done) {
        FUZZ_CHECK(now_ms() < end);
        if (fd < 0) {
            fd = accept_nonblock(peer_fd, 1);
            if (fd >= 0) {
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                watch(&conn_watch, fd);
            }
        }
        if (fd >= 0 && !shut) {
            size_t n = len - sent < piece ? len - sent : piece;
            ssize_t w = n > 0 ? send(fd, in + sent, n, MSG_NOSIGNAL) : 0;

            if (w > 0)
                sent += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                sent = len; /* the client hung up */
            if (sent == len) {
                shutdown(fd, SHUT_WR); /* EOF ends a body without a length */
                shut = 1;
            }
        }
        if (fd >= 0) {
            uint8_t sink[4096];

            while (recv(fd, sink, sizeof(sink), 0) > 0)
                ; /* the request: not ours to check */
        }
        if (piece < SIZE_MAX && fd >= 0 && !shut)
            uv_run(&loop, UV_RUN_NOWAIT);
        else
            spin();
    }
    /* The fake node always ends its answer: waiting for the timeout would be a hang. */
    FUZZ_CHECK(call.err != BKV_ERR_LIMIT);
    bkv_http_client_close(cl, on_client_closed, &closed);
    while (!closed) {
        FUZZ_CHECK(now_ms() < end);
        spin();
    }
    if (fd >= 0) {
        uv_close((uv_handle_t *)&conn_watch, NULL);
        uv_run(&loop, UV_RUN_NOWAIT);
        close(fd);
    }
    settle();
}

/* --- client/http.c (libbkv) --------------------------------------------------- */

/* The fake router for libbkv's blocking client: one connection per job. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fd, port;
    const uint8_t *data;
    size_t len;
    int job, done;
} fake = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, -1, 0, NULL, 0, 0, 0};

static void *fake_router(void *arg)
{
    (void)arg;
    for (;;) {
        uint8_t sink[4096];
        int c;

        pthread_mutex_lock(&fake.mu);
        while (!fake.job)
            pthread_cond_wait(&fake.cv, &fake.mu);
        fake.job = 0;
        pthread_mutex_unlock(&fake.mu);

        c = accept_nonblock(fake.fd, 0);
        if (c >= 0) {
            size_t off = 0;

            while (off < fake.len) {
                ssize_t w = send(c, fake.data + off, fake.len - off, MSG_NOSIGNAL);
                if (w <= 0)
                    break;
                off += (size_t)w;
            }
            shutdown(c, SHUT_WR);
            while (recv(c, sink, sizeof(sink), 0) > 0)
                ; /* until the client closes */
            close(c);
        }
        pthread_mutex_lock(&fake.mu);
        fake.done = 1;
        pthread_cond_signal(&fake.cv);
        pthread_mutex_unlock(&fake.mu);
    }
    return NULL;
}

static void fuzz_libbkv_client(const uint8_t *in, size_t len)
{
    static const struct bkv_client_http_request req = {
        .method = "GET", .path = "/v1/keyconfig", .accept = "application/octet-stream"};
    struct bkv_client_http_response resp;
    char address[32], err[256];
    int rc;

    snprintf(address, sizeof(address), "127.0.0.1:%d", fake.port);
    pthread_mutex_lock(&fake.mu);
    fake.data = in;
    fake.len = len;
    fake.done = 0;
    fake.job = 1;
    pthread_cond_signal(&fake.cv);
    pthread_mutex_unlock(&fake.mu);

    memset(&resp, 0, sizeof(resp));
    rc = bkv_client_http_do(address, &req, MAX_BODY, WAIT_MS, &resp, err, sizeof(err));

    pthread_mutex_lock(&fake.mu);
    while (!fake.done)
        pthread_cond_wait(&fake.cv, &fake.mu);
    pthread_mutex_unlock(&fake.mu);

    FUZZ_CHECK(rc != BKV_ERR_LIMIT); /* the fake router always ends its answer */
    if (rc != BKV_OK)
        return;
    FUZZ_CHECK(resp.status >= 100 && resp.status <= 599);
    FUZZ_CHECK(resp.body_len <= MAX_BODY);
    FUZZ_CHECK(resp.body_len == 0 || (resp.body != NULL && resp.body[resp.body_len] == '\0'));
    FUZZ_CHECK(memchr(resp.content_type, '\0', sizeof(resp.content_type)) != NULL);
    bkv_client_http_response_free(&resp);
}

/* --- entry ---------------------------------------------------------------------- */

static void setup(void)
{
    static const struct bkv_http_server_config scfg = {"127.0.0.1:0", MAX_BODY, MAX_HEADER,
                                                       2000,          64,       NULL};
    char err[256];
    pthread_t t;

    FUZZ_SETUP(uv_loop_init(&loop));
    FUZZ_SETUP(bkv_http_server_start(&loop, &scfg, handler, NULL, &server, err, sizeof(err)));
    server_port = bkv_http_server_port(server);
    FUZZ_SETUP(uv_idle_init(&loop, &deferred_idle));
    FUZZ_SETUP(uv_timer_init(&loop, &cap_timer));
    peer_fd = listen_loopback(&peer_port);
    watch(&peer_watch, peer_fd);
    fake.fd = listen_loopback(&fake.port);
    FUZZ_SETUP(pthread_create(&t, NULL, fake_router, NULL));
    FUZZ_SETUP(pthread_detach(t));
    baseline = handle_count();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char modes[] = "sSrRhc";
    static int ready;
    const char *m;
    char mode;

    if (!ready) {
        setup();
        ready = 1;
    }
    if (size < 1)
        return 0;
    m = memchr(modes, data[0], sizeof(modes) - 1);
    mode = m != NULL ? *m : modes[data[0] % (sizeof(modes) - 1)];
    data++;
    size--;
    switch (mode) {
    case 's':
        fuzz_server(data, size, SIZE_MAX);
        break;
    case 'S':
        fuzz_server(data, size, PIECE);
        break;
    case 'r':
        fuzz_node_client(data, size, SIZE_MAX, 0);
        break;
    case 'R':
        fuzz_node_client(data, size, PIECE, 0);
        break;
    case 'h':
        fuzz_node_client(data, size, SIZE_MAX, 1);
        break;
    default:
        fuzz_libbkv_client(data, size);
    }
    return 0;
}
