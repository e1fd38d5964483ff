/*
 * The libuv HTTP/1.1 client of bkv-node and bkv-router (see http.h); the
 * server is http.c, what both share is http_common.c.
 *
 * Normal path: per address a pool of connections; a request waits in
 * the pool's queue until a connection is idle, and a new connection is
 * opened while fewer are being opened than requests wait. The response is
 * parsed with llhttp; the connection goes back to the pool when both sides
 * allow keep-alive. Failure modes: connect failure or timeout, a reset or EOF
 * before the response ends (BKV_ERR_IO; if no connection to the address is
 * left, every queued request fails too), malformed response
 * (BKV_ERR_FORMAT), a body above the limit (BKV_ERR_LENGTH), the per-request
 * timeout (BKV_ERR_LIMIT; its connection is closed). Callbacks never run
 * inside bkv_http_client_request.
 */
#include "http.h"

#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>

#include "http_internal.h"
#include "proto/err.h"

#define DEFAULT_POOL_CONNS 16u
#define DEFAULT_CONNECT_MS 2000u
#define DEFAULT_POOL_IDLE  15000u
#define CLIENT_ARENA       (16 * 1024)

enum cstate { C_RESOLVING, C_CONNECTING, C_IDLE, C_BUSY };

struct creq {
    struct bkv_http_client *c;
    struct pool *pool;
    struct cconn *conn;
    struct creq *prev, *next; /* in the pool's queue */
    uv_timer_t timer;
    bkv_http_response_cb cb;
    void *data;
    int done, queued, head;
    size_t wire_len;
    char *wire;
};

/* Response being read; first member head for the shared callbacks. */
struct rx {
    struct head head;
    uint8_t *body;
    size_t body_len, body_cap;
    int complete, too_big, status;
    char arena[CLIENT_ARENA];
};

struct cconn {
    struct bkv_http_client *c;
    struct pool *pool;
    struct cconn *prev, *next;
    enum cstate state;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect;
    uv_getaddrinfo_t gai;
    llhttp_t parser;
    struct creq *req;
    struct rx *rx;
    int handles, closing, resolving, writing, got_bytes, connected, keep_alive, err;
    char rbuf[READ_BUF];
};

struct pool {
    struct pool *next;
    struct creq *q_head, *q_tail;
    size_t queued;
    struct cconn *conns;
    unsigned n_conns, n_opening;
    char host[256];
    unsigned port;
    char address[];
};

struct bkv_http_client {
    uv_loop_t *loop;
    struct bkv_http_client_config cfg;
    struct pool *pools;
    uv_timer_t anchor; /* keeps the final close callback asynchronous */
    size_t live;       /* handles and requests not yet released */
    int closing, in_cb;
    void (*close_cb)(void *data);
    void *close_data;
};

static void client_kick(struct bkv_http_client *c);
static void cconn_close(struct cconn *k, int err);
static void on_cconn_timer(uv_timer_t *t);

static void client_maybe_done(struct bkv_http_client *c)
{
    struct pool *p, *next;

    if (!c->closing || c->live > 0)
        return;
    for (p = c->pools; p != NULL; p = next) {
        next = p->next;
        free(p);
    }
    if (c->close_cb != NULL)
        c->close_cb(c->close_data);
    free(c);
}

static void creq_timer_closed(uv_handle_t *h)
{
    struct creq *r = h->data;
    struct bkv_http_client *c = r->c;

    free(r->wire);
    free(r);
    c->live--;
    client_maybe_done(c);
}

static void queue_remove(struct creq *r)
{
    struct pool *p = r->pool;

    if (!r->queued)
        return;
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        p->q_head = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    else
        p->q_tail = r->prev;
    r->prev = r->next = NULL;
    r->queued = 0;
    p->queued--;
}

/* The one place a request's callback runs; the request is released afterwards. */
static void creq_finish(struct creq *r, int err, const struct bkv_http_response *resp)
{
    if (r->done)
        return;
    r->done = 1;
    queue_remove(r);
    if (r->conn != NULL) {
        r->conn->req = NULL;
        r->conn = NULL;
    }
    uv_timer_stop(&r->timer);
    r->c->in_cb++;
    r->cb(r->data, err, err == 0 ? resp : NULL);
    r->c->in_cb--;
    uv_close((uv_handle_t *)&r->timer, creq_timer_closed);
}

static void cconn_handle_closed(uv_handle_t *h)
{
    struct cconn *k = h->data;
    struct bkv_http_client *c = k->c;
    struct pool *p = k->pool;
    int connected;

    if (--k->handles > 0 || k->resolving)
        return;
    if (k->req != NULL)
        creq_finish(k->req, k->err ? k->err : BKV_ERR_IO, NULL);
    if (k->prev != NULL)
        k->prev->next = k->next;
    else
        p->conns = k->next;
    if (k->next != NULL)
        k->next->prev = k->prev;
    p->n_conns--;
    if (!k->connected)
        p->n_opening--;
    connected = k->connected;
    free(k->rx->body);
    free(k->rx);
    free(k);
    c->live--;
    /* A connection that never came up: if none to this address is left, nothing will serve the
     * queue soon, so the waiting requests fail now and the caller can try elsewhere. */
    if (!connected && p->n_conns == p->n_opening)
        for (size_t n = p->queued; n > 0 && p->q_head != NULL; n--) /* not those queued by cbs */
            creq_finish(p->q_head, c->closing ? BKV_ERR_SHUTDOWN : BKV_ERR_IO, NULL);
    client_kick(c);
    client_maybe_done(c);
}

static void cconn_close(struct cconn *k, int err)
{
    if (k->closing)
        return;
    k->closing = 1;
    if (k->err == 0)
        k->err = err;
    uv_close((uv_handle_t *)&k->tcp, cconn_handle_closed);
    uv_close((uv_handle_t *)&k->timer, cconn_handle_closed);
}

static void on_cconn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct cconn *k = h->data;

    (void)suggested;
    *buf = uv_buf_init(k->rbuf, sizeof(k->rbuf));
}

static int c_on_message_begin(llhttp_t *p)
{
    struct rx *rx = p->data;

    http_head_reset(&rx->head);
    rx->body_len = 0;
    return 0;
}

static int c_on_headers_complete(llhttp_t *p)
{
    struct rx *rx = p->data;
    struct cconn *k = (struct cconn *)((char *)p - offsetof(struct cconn, parser));
    size_t max = k->c->cfg.max_body;

    rx->status = llhttp_get_status_code(p);
    if ((p->flags & F_CONTENT_LENGTH) != 0 && p->content_length > max) {
        rx->too_big = 1;
        return -1;
    }
    if (rx->status >= 200 && k->req != NULL && k->req->head)
        return 1;
    return 0;
}

static int c_on_body(llhttp_t *p, const char *at, size_t len)
{
    struct rx *rx = p->data;
    struct cconn *k = (struct cconn *)((char *)p - offsetof(struct cconn, parser));
    size_t max = k->c->cfg.max_body;

    if (len > max - rx->body_len) {
        rx->too_big = 1;
        return -1;
    }
    if (rx->body_len + len > rx->body_cap) {
        size_t cap = rx->body_cap ? rx->body_cap : 1024;
        uint8_t *b;
        while (cap < rx->body_len + len)
            cap *= 2;
        if (cap > max)
            cap = max;
        b = realloc(rx->body, cap);
        if (b == NULL)
            return -1;
        rx->body = b;
        rx->body_cap = cap;
    }
    memcpy(rx->body + rx->body_len, at, len);
    rx->body_len += len;
    return 0;
}

static int c_on_message_complete(llhttp_t *p)
{
    struct rx *rx = p->data;

    if (rx->status < 200)
        return 0; /* 1xx: the final response follows */
    rx->complete = 1;
    return HPE_PAUSED;
}

static const llhttp_settings_t client_settings = {
    .on_message_begin = c_on_message_begin,
    .on_header_field = http_on_header_field,
    .on_header_field_complete = http_on_header_field_complete,
    .on_header_value = http_on_header_value,
    .on_header_value_complete = http_on_header_value_complete,
    .on_headers_complete = c_on_headers_complete,
    .on_body = c_on_body,
    .on_message_complete = c_on_message_complete,
};

/* A complete response: the callback, then the connection goes back to the pool or closes. */
static void cconn_deliver(struct cconn *k)
{
    struct rx *rx = k->rx;
    struct bkv_http_response resp;
    struct creq *r = k->req;
    int reuse = llhttp_should_keep_alive(&k->parser) && !k->writing && k->keep_alive;

    memset(&resp, 0, sizeof(resp));
    resp.status = rx->status;
    http_head_export(&rx->head, resp.headers, &resp.n_headers);
    resp.body = rx->body;
    resp.body_len = rx->body_len;
    k->state = C_IDLE; /* not dispatched to before the callback returns: in_cb is set */
    if (!reuse)
        cconn_close(k, BKV_ERR_IO);
    else
        uv_timer_start(&k->timer, on_cconn_timer, k->c->cfg.idle_timeout_ms, 0);
    if (r != NULL)
        creq_finish(r, 0, &resp);
    free(rx->body);
    rx->body = NULL;
    rx->body_cap = rx->body_len = 0;
    client_kick(k->c);
}

static void on_cconn_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct cconn *k = stream->data;
    enum llhttp_errno e;

    (void)buf;
    if (k->closing)
        return;
    if (k->state != C_BUSY || k->req == NULL) {
        cconn_close(k, BKV_ERR_IO); /* EOF or stray bytes on an idle connection */
        return;
    }
    if (nread < 0) {
        if (nread == UV_EOF && k->got_bytes && llhttp_message_needs_eof(&k->parser)) {
            enum llhttp_errno e = llhttp_finish(&k->parser);
            if ((e != HPE_OK && e != HPE_PAUSED) || !k->rx->complete) {
                cconn_close(k, BKV_ERR_IO);
                return;
            }
            k->keep_alive = 0;
            cconn_deliver(k);
            return;
        }
        cconn_close(k, BKV_ERR_IO);
        return;
    }
    if (nread == 0)
        return;
    k->got_bytes = 1;
    e = llhttp_execute(&k->parser, k->rbuf, (size_t)nread);
    if (e == HPE_PAUSED && k->rx->complete) {
        /* Bytes after the response on a connection with one request in flight: not HTTP. */
        if (llhttp_get_error_pos(&k->parser) != k->rbuf + nread)
            k->keep_alive = 0;
        llhttp_resume(&k->parser);
        cconn_deliver(k);
    } else if (e != HPE_OK) {
        cconn_close(k, k->rx->too_big ? BKV_ERR_LENGTH : BKV_ERR_FORMAT);
    }
}

static void on_creq_write(uv_write_t *req, int status)
{
    struct wbuf *w = (struct wbuf *)req;
    struct cconn *k = w->owner;

    free(w);
    k->writing = 0;
    if (status < 0 && !k->closing)
        cconn_close(k, BKV_ERR_IO);
}

/* Start r on the idle connection k. */
static void cconn_assign(struct cconn *k, struct creq *r)
{
    struct wbuf *w = malloc(sizeof(*w) + r->wire_len);
    uv_buf_t b;

    queue_remove(r);
    uv_timer_stop(&k->timer);
    k->req = r;
    r->conn = k;
    k->state = C_BUSY;
    k->got_bytes = 0;
    k->keep_alive = 1;
    if (w == NULL) {
        cconn_close(k, BKV_ERR_NOMEM);
        return;
    }
    memset(k->rx, 0, offsetof(struct rx, arena));
    k->rx->head.arena = k->rx->arena;
    k->rx->head.cap = sizeof(k->rx->arena);
    llhttp_init(&k->parser, HTTP_RESPONSE, &client_settings);
    k->parser.data = k->rx;
    memcpy(w->data, r->wire, r->wire_len);
    w->len = r->wire_len;
    w->owner = k;
    b = uv_buf_init(w->data, (unsigned)w->len);
    k->writing = 1;
    if (uv_write(&w->req, (uv_stream_t *)&k->tcp, &b, 1, on_creq_write) != 0) {
        free(w);
        k->writing = 0;
        cconn_close(k, BKV_ERR_IO);
    }
}

/* Connecting took too long, or an idle pooled connection reached its idle timeout. */
static void on_cconn_timer(uv_timer_t *t)
{
    cconn_close(t->data, BKV_ERR_IO);
}

static void on_connected(uv_connect_t *req, int status)
{
    struct cconn *k = req->data;

    if (k->closing)
        return;
    if (status < 0) {
        cconn_close(k, BKV_ERR_IO);
        return;
    }
    uv_timer_start(&k->timer, on_cconn_timer, k->c->cfg.idle_timeout_ms, 0);
    k->connected = 1;
    k->pool->n_opening--;
    k->state = C_IDLE;
    uv_tcp_nodelay(&k->tcp, 1);
    if (uv_read_start((uv_stream_t *)&k->tcp, on_cconn_alloc, on_cconn_read) != 0) {
        cconn_close(k, BKV_ERR_IO);
        return;
    }
    client_kick(k->c);
}

static void cconn_connect(struct cconn *k, const struct sockaddr *sa)
{
    int rc;

    k->state = C_CONNECTING;
    k->connect.data = k;
    rc = uv_tcp_connect(&k->connect, &k->tcp, sa, on_connected);
    if (rc != 0)
        cconn_close(k, BKV_ERR_IO);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct cconn *k = req->data;

    k->resolving = 0;
    if (k->closing) {
        uv_freeaddrinfo(res);
        if (k->handles == 0) {
            k->handles = 1; /* both handles closed while resolving: finish the release now */
            cconn_handle_closed((uv_handle_t *)&k->tcp);
        }
        return;
    }
    if (status < 0 || res == NULL)
        cconn_close(k, BKV_ERR_IO);
    else
        cconn_connect(k, res->ai_addr);
    uv_freeaddrinfo(res);
}

static int pool_open(struct pool *p, struct bkv_http_client *c)
{
    struct cconn *k = calloc(1, sizeof(*k));
    struct sockaddr_storage ss;
    struct addrinfo hints = {0};
    char port_s[8];

    if (k != NULL)
        k->rx = calloc(1, sizeof(*k->rx));
    if (k == NULL || k->rx == NULL) {
        if (k != NULL)
            free(k);
        return BKV_ERR_NOMEM;
    }
    k->c = c;
    k->pool = p;
    k->tcp.data = k->timer.data = k->gai.data = k;
    uv_tcp_init(c->loop, &k->tcp);
    uv_timer_init(c->loop, &k->timer);
    k->handles = 2;
    c->live++;
    p->n_conns++;
    p->n_opening++;
    k->next = p->conns;
    if (p->conns != NULL)
        p->conns->prev = k;
    p->conns = k;
    uv_timer_start(&k->timer, on_cconn_timer, c->cfg.connect_timeout_ms, 0);
    if (uv_ip4_addr(p->host, (int)p->port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(p->host, (int)p->port, (struct sockaddr_in6 *)&ss) == 0) {
        cconn_connect(k, (struct sockaddr *)&ss);
        return BKV_OK;
    }
    k->state = C_RESOLVING;
    k->resolving = 1;
    snprintf(port_s, sizeof(port_s), "%u", p->port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (uv_getaddrinfo(c->loop, &k->gai, on_resolved, p->host, port_s, &hints) != 0) {
        k->resolving = 0;
        cconn_close(k, BKV_ERR_IO);
    }
    return BKV_OK;
}

static void pool_dispatch(struct pool *p, struct bkv_http_client *c)
{
    while (p->q_head != NULL) {
        struct cconn *idle = NULL;
        for (struct cconn *k = p->conns; k != NULL; k = k->next)
            if (!k->closing && k->state == C_IDLE && k->req == NULL) {
                idle = k;
                break;
            }
        if (idle != NULL) {
            cconn_assign(idle, p->q_head);
            continue;
        }
        if (p->n_opening >= p->queued || p->n_conns >= c->cfg.max_conns_per_address)
            break;
        if (pool_open(p, c) != BKV_OK)
            break;
    }
}

static void client_kick(struct bkv_http_client *c)
{
    if (c->closing || c->in_cb > 0)
        return;
    for (struct pool *p = c->pools; p != NULL; p = p->next)
        pool_dispatch(p, c);
}

static void on_creq_timeout(uv_timer_t *t)
{
    struct creq *r = t->data;
    struct cconn *k = r->conn;

    if (k != NULL) {
        k->req = NULL; /* the answer may still come: this connection cannot be reused */
        r->conn = NULL;
        cconn_close(k, BKV_ERR_LIMIT);
    }
    creq_finish(r, BKV_ERR_LIMIT, NULL);
    client_kick(r->c);
}

int bkv_http_client_new(uv_loop_t *loop, const struct bkv_http_client_config *cfg,
                        struct bkv_http_client **out)
{
    struct bkv_http_client *c = calloc(1, sizeof(*c));

    *out = NULL;
    if (c == NULL)
        return BKV_ERR_NOMEM;
    c->loop = loop;
    if (cfg != NULL)
        c->cfg = *cfg;
    if (c->cfg.max_body == 0)
        c->cfg.max_body = DEFAULT_MAX_BODY;
    if (c->cfg.max_conns_per_address == 0)
        c->cfg.max_conns_per_address = DEFAULT_POOL_CONNS;
    if (c->cfg.connect_timeout_ms == 0)
        c->cfg.connect_timeout_ms = DEFAULT_CONNECT_MS;
    if (c->cfg.idle_timeout_ms == 0)
        c->cfg.idle_timeout_ms = DEFAULT_POOL_IDLE;
    uv_timer_init(loop, &c->anchor);
    c->anchor.data = c;
    c->live = 1;
    *out = c;
    return BKV_OK;
}

static struct pool *pool_get(struct bkv_http_client *c, const char *address)
{
    struct pool *p;
    size_t len = strlen(address);

    for (p = c->pools; p != NULL; p = p->next)
        if (strcmp(p->address, address) == 0)
            return p;
    p = calloc(1, sizeof(*p) + len + 1);
    if (p == NULL)
        return NULL;
    memcpy(p->address, address, len + 1);
    if (bkv_http_address_parse(address, p->host, sizeof(p->host), &p->port) != BKV_OK ||
        p->port == 0) {
        free(p);
        return NULL;
    }
    p->next = c->pools;
    c->pools = p;
    return p;
}

static char *build_request(const char *address, const char *method, const char *path,
                           const struct bkv_http_header *hdrs, size_t n, const void *body,
                           size_t body_len, size_t *out_len)
{
    size_t cap = strlen(method) + strlen(path) + strlen(address) + 96 + body_len, len;
    char *w;

    for (size_t i = 0; i < n; i++)
        cap += strlen(hdrs[i].name) + strlen(hdrs[i].value) + 4;
    w = malloc(cap);
    if (w == NULL)
        return NULL;
    len = (size_t)snprintf(w, cap, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, address);
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(w + len, cap - len, "%s: %s\r\n", hdrs[i].name, hdrs[i].value);
    len += (size_t)snprintf(w + len, cap - len, "Content-Length: %zu\r\n\r\n", body_len);
    if (body_len > 0)
        memcpy(w + len, body, body_len);
    *out_len = len + body_len;
    return w;
}

int bkv_http_client_request(struct bkv_http_client *c, const char *address, const char *method,
                            const char *path, const struct bkv_http_header *hdrs, size_t n_hdrs,
                            const void *body, size_t body_len, unsigned timeout_ms,
                            bkv_http_response_cb cb, void *data)
{
    struct pool *p;
    struct creq *r;

    if (c->closing)
        return BKV_ERR_SHUTDOWN;
    if (address == NULL || !http_is_token(method) || path == NULL || path[0] == '\0' ||
        !http_is_clean(path, 0) || cb == NULL || (body_len > 0 && body == NULL) ||
        n_hdrs > BKV_HTTP_MAX_HEADERS || timeout_ms == 0)
        return BKV_ERR_INVALID;
    for (size_t i = 0; i < n_hdrs; i++)
        if (!http_is_token(hdrs[i].name) || !http_is_clean(hdrs[i].value, 1) ||
            strcasecmp(hdrs[i].name, "host") == 0 ||
            strcasecmp(hdrs[i].name, "content-length") == 0 ||
            strcasecmp(hdrs[i].name, "transfer-encoding") == 0 ||
            strcasecmp(hdrs[i].name, "connection") == 0)
            return BKV_ERR_INVALID;
    p = pool_get(c, address);
    if (p == NULL)
        return BKV_ERR_INVALID;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return BKV_ERR_NOMEM;
    r->wire = build_request(address, method, path, hdrs, n_hdrs, body, body_len, &r->wire_len);
    if (r->wire == NULL) {
        free(r);
        return BKV_ERR_NOMEM;
    }
    r->c = c;
    r->pool = p;
    r->cb = cb;
    r->data = data;
    r->head = strcmp(method, "HEAD") == 0;
    uv_timer_init(c->loop, &r->timer);
    r->timer.data = r;
    c->live++;
    uv_timer_start(&r->timer, on_creq_timeout, timeout_ms, 0);
    r->queued = 1;
    r->prev = p->q_tail;
    if (p->q_tail != NULL)
        p->q_tail->next = r;
    else
        p->q_head = r;
    p->q_tail = r;
    p->queued++;
    client_kick(c);
    return BKV_OK;
}

static void on_anchor_closed(uv_handle_t *h)
{
    struct bkv_http_client *c = h->data;

    c->live--;
    client_maybe_done(c);
}

void bkv_http_client_close(struct bkv_http_client *c, void (*cb)(void *data), void *data)
{
    if (c == NULL || c->closing)
        return;
    c->closing = 1;
    c->close_cb = cb;
    c->close_data = data;
    for (struct pool *p = c->pools; p != NULL; p = p->next) {
        while (p->q_head != NULL)
            creq_finish(p->q_head, BKV_ERR_SHUTDOWN, NULL);
        for (struct cconn *k = p->conns; k != NULL; k = k->next)
            cconn_close(k, BKV_ERR_SHUTDOWN);
    }
    uv_close((uv_handle_t *)&c->anchor, on_anchor_closed);
}
