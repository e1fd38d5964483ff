/*
 * The libuv HTTP/1.1 server of bkv-node and bkv-router (see http.h); the
 * client is http_client.c, what both share is http_common.c.
 *
 * Normal path: accept, read, feed llhttp; the request line and
 * headers go into a fixed arena of the exchange, the body into a buffer sized
 * by Content-Length; at message end the parser pauses, reading stops (bytes
 * already received wait in the connection), and the handler gets the
 * exchange. bkv_http_respond writes the answer; after the write the parser
 * resumes on the waiting bytes and reading starts again (keep-alive).
 * Failure modes: malformed HTTP 400, body above the limit 413 (from
 * Content-Length, before the body is read), headers above the limit 431,
 * a request not read within the timeout 408, chunked bodies or another
 * method 501; each is answered by this module, then the write side is shut
 * down and input is discarded for a short while (so the client sees the
 * answer rather than a reset) before the close. An idle connection is closed
 * silently after the idle timeout; a response the peer does not read is
 * abandoned after the same timeout.
 */
#include "http.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>

#include "http_internal.h"
#include "proto/err.h"

#define DEFAULT_MAX_HEADER (8 * 1024)
#define DEFAULT_IDLE_MS    30000u
#define DEFAULT_MAX_CONNS  1024u
#define LINGER_MS          2000u
#define LINGER_MAX_BYTES   (1024 * 1024)

static const struct {
    int status;
    const char *text;
} reasons[] = {
    {100, "Continue"},
    {200, "OK"},
    {204, "No Content"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {413, "Content Too Large"},
    {421, "Misdirected Request"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {507, "Insufficient Storage"},
};

static const char *reason_phrase(int status)
{
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].status == status)
            return reasons[i].text;
    return "Status";
}

enum sstate { S_READ, S_HANDLE, S_WRITE, S_LINGER };

struct bkv_http_exchange {
    struct head head;   /* first: the parser callbacks find it through parser->data */
    struct sconn *conn; /* NULL once the connection is gone */
    struct bkv_http_request req;
    uint8_t *body;
    size_t body_len, body_cap;
    char arena[];
};

struct sconn {
    struct bkv_http_server *s;
    struct sconn *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    llhttp_t parser;
    struct bkv_http_exchange *ex; /* being read, or with the handler */
    enum sstate state;
    int handles;      /* open libuv handles */
    int closing;      /* uv_close started */
    int keep_alive;   /* the current request allows another on this connection */
    int started;      /* a byte of the current request has arrived */
    int error_status; /* 413/431/501 decided in a callback */
    int peer_eof;     /* the client shut down its side */
    size_t head_bytes, lingered;
    char *pending; /* received, not yet parsed (pipelined) */
    size_t pending_len;
    char peer[64];
    char rbuf[READ_BUF];
};

struct bkv_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    struct bkv_http_server_config cfg;
    bkv_http_handler handler;
    void *data;
    struct sconn *conns;
    unsigned n_conns;
    int port, closing, listener_open;
    void (*close_cb)(void *data);
    void *close_data;
};

static void sconn_close(struct sconn *c);
static void sconn_feed(struct sconn *c, const char *data, size_t len);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_sconn_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static struct bkv_http_exchange *ex_new(struct sconn *c)
{
    size_t cap = c->s->cfg.max_header_bytes + 2 * BKV_HTTP_MAX_HEADERS + 16;
    struct bkv_http_exchange *ex = calloc(1, sizeof(*ex) + cap);

    if (ex == NULL)
        return NULL;
    ex->head.arena = ex->arena;
    ex->head.cap = cap;
    ex->conn = c;
    return ex;
}

static void ex_free(struct bkv_http_exchange *ex)
{
    if (ex == NULL)
        return;
    free(ex->body);
    free(ex);
}

static void server_maybe_done(struct bkv_http_server *s)
{
    if (!s->closing || s->listener_open || s->n_conns > 0)
        return;
    if (s->close_cb != NULL)
        s->close_cb(s->close_data);
    free(s);
}

static void sconn_handle_closed(uv_handle_t *h)
{
    struct sconn *c = h->data;
    struct bkv_http_server *s = c->s;

    if (--c->handles > 0)
        return;
    free(c->pending);
    free(c);
    s->n_conns--;
    server_maybe_done(s);
}

static void sconn_close(struct sconn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        c->s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (c->ex != NULL) {
        if (c->state == S_HANDLE)
            c->ex->conn = NULL; /* the handler still owns it: respond frees it */
        else
            ex_free(c->ex);
        c->ex = NULL;
    }
    uv_close((uv_handle_t *)&c->tcp, sconn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, sconn_handle_closed);
}

static void on_linger_timeout(uv_timer_t *t)
{
    sconn_close(t->data);
}

static void on_write_done(uv_write_t *req, int status);

static void sconn_write(struct sconn *c, struct wbuf *w)
{
    uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);

    w->owner = c;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write_done) != 0) {
        free(w);
        sconn_close(c);
    }
}

/* Status line, the caller's headers, Content-Length, Connection, body, into one buffer. */
static struct wbuf *build_response(int status, const struct bkv_http_header *hdrs, size_t n,
                                   const void *body, size_t body_len, int keep_alive)
{
    size_t cap = 128 + body_len;
    struct wbuf *w;
    int k;

    for (size_t i = 0; i < n; i++)
        cap += strlen(hdrs[i].name) + strlen(hdrs[i].value) + 4;
    w = malloc(sizeof(*w) + cap);
    if (w == NULL)
        return NULL;
    k = snprintf(w->data, cap, "HTTP/1.1 %d %s\r\n", status, reason_phrase(status));
    w->len = (size_t)k;
    for (size_t i = 0; i < n; i++) {
        k = snprintf(w->data + w->len, cap - w->len, "%s: %s\r\n", hdrs[i].name, hdrs[i].value);
        w->len += (size_t)k;
    }
    k = snprintf(w->data + w->len, cap - w->len, "Content-Length: %zu\r\nConnection: %s\r\n\r\n",
                 body_len, keep_alive ? "keep-alive" : "close");
    w->len += (size_t)k;
    if (body_len > 0)
        memcpy(w->data + w->len, body, body_len);
    w->len += body_len;
    return w;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    free(req);
}

/* After a final answer: no more requests; discard input for a while, then close. */
static void sconn_linger(struct sconn *c)
{
    uv_shutdown_t *sd;

    if (c->closing)
        return;
    c->state = S_LINGER;
    sd = malloc(sizeof(*sd));
    if (c->peer_eof || sd == NULL || uv_shutdown(sd, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(sd);
        sconn_close(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_sconn_read); /* may be reading already */
    uv_timer_start(&c->timer, on_linger_timeout, LINGER_MS, 0);
}

/* An answer of this module's own; the connection ends after it. */
static void sconn_fail(struct sconn *c, int status, const char *text)
{
    char body[256];
    static const struct bkv_http_header ct = {"Content-Type", "text/plain; charset=utf-8"};
    struct wbuf *w;
    int n = snprintf(body, sizeof(body), "%s\n", text);

    if (c->closing || c->state == S_LINGER)
        return;
    if (c->s->cfg.on_refused != NULL)
        c->s->cfg.on_refused(c->s->data, status, c->peer);
    uv_timer_stop(&c->timer);
    ex_free(c->ex);
    c->ex = NULL;
    c->keep_alive = 0;
    c->state = S_WRITE;
    w = build_response(status, &ct, 1, body, (size_t)n, 0);
    if (w == NULL) {
        sconn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_linger_timeout, c->s->cfg.idle_timeout_ms, 0);
    sconn_write(c, w);
}

static void on_sconn_timer(uv_timer_t *t)
{
    struct sconn *c = t->data;

    if (c->state == S_READ && c->started)
        sconn_fail(c, 408, "request timeout: the request was not received in time");
    else
        sconn_close(c); /* idle keep-alive connection, or a response nobody reads */
}

static void sconn_resume(struct sconn *c)
{
    char *pending = c->pending;
    size_t len = c->pending_len;

    c->state = S_READ;
    c->started = 0;
    c->pending = NULL;
    c->pending_len = 0;
    uv_timer_start(&c->timer, on_sconn_timer, c->s->cfg.idle_timeout_ms, 0);
    llhttp_resume(&c->parser);
    if (len > 0)
        sconn_feed(c, pending, len);
    free(pending);
    if (!c->closing && c->state == S_READ &&
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_sconn_read) != 0)
        sconn_close(c);
}

static void on_write_done(uv_write_t *req, int status)
{
    struct wbuf *w = (struct wbuf *)req;
    struct sconn *c = w->owner;

    free(w);
    if (c == NULL || c->closing)
        return;
    if (status < 0) {
        sconn_close(c);
    } else if (c->state == S_WRITE) {
        uv_timer_stop(&c->timer);
        if (c->keep_alive && !c->s->closing)
            sconn_resume(c);
        else
            sconn_linger(c);
    }
}

static void on_continue_done(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

void bkv_http_respond(struct bkv_http_exchange *ex, int status, const struct bkv_http_header *hdrs,
                      size_t n_hdrs, const void *body, size_t body_len)
{
    struct sconn *c;
    struct wbuf *w;

    if (ex == NULL)
        return;
    c = ex->conn;
    if (c == NULL || c->ex != ex || c->state != S_HANDLE) {
        ex_free(ex);
        return;
    }
    for (size_t i = 0; i < n_hdrs; i++)
        if (!http_is_token(hdrs[i].name) || !http_is_clean(hdrs[i].value, 1) ||
            strcasecmp(hdrs[i].name, "content-length") == 0 ||
            strcasecmp(hdrs[i].name, "connection") == 0 ||
            strcasecmp(hdrs[i].name, "transfer-encoding") == 0) {
            status = 500, n_hdrs = 0, body = "internal error: bad response header\n";
            body_len = strlen(body);
            break;
        }
    if (status < 100 || status > 999)
        status = 500;
    if (c->s->closing)
        c->keep_alive = 0;
    /* Built before the exchange is freed: hdrs and body may point into the request. */
    w = build_response(status, hdrs, n_hdrs, body, body_len, c->keep_alive);
    c->ex = NULL;
    ex_free(ex);
    c->state = S_WRITE;
    if (w == NULL) {
        sconn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_sconn_timer, c->s->cfg.idle_timeout_ms, 0);
    sconn_write(c, w);
}

void bkv_http_respond_text(struct bkv_http_exchange *ex, int status,
                           const struct bkv_http_header *hdrs, size_t n_hdrs, const char *text)
{
    struct bkv_http_header all[BKV_HTTP_MAX_HEADERS];
    size_t n = 0, len = strlen(text);
    char *body = malloc(len + 2);

    all[n++] = (struct bkv_http_header){"Content-Type", "text/plain; charset=utf-8"};
    for (size_t i = 0; i < n_hdrs && n < BKV_HTTP_MAX_HEADERS; i++)
        all[n++] = hdrs[i];
    if (body == NULL) {
        bkv_http_respond(ex, status, all, n, text, len);
        return;
    }
    memcpy(body, text, len);
    body[len] = '\n';
    bkv_http_respond(ex, status, all, n, body, len + 1);
    free(body);
}

static int s_on_message_begin(llhttp_t *p)
{
    struct bkv_http_exchange *ex = p->data;
    struct sconn *c = ex->conn;

    c->started = 1;
    /* From the first byte, the whole request must arrive within the timeout. */
    uv_timer_start(&c->timer, on_sconn_timer, c->s->cfg.idle_timeout_ms, 0);
    return 0;
}

static int s_on_headers_complete(llhttp_t *p)
{
    struct bkv_http_exchange *ex = p->data;
    struct sconn *c = ex->conn;
    uint8_t m = llhttp_get_method(p);
    const char *expect;
    struct bkv_http_header *h = ex->req.headers;

    if (m != HTTP_GET && m != HTTP_POST && m != HTTP_PUT && m != HTTP_DELETE) {
        c->error_status = 501;
        return -1;
    }
    if ((p->flags & (F_CHUNKED | F_TRANSFER_ENCODING)) != 0) {
        c->error_status = 501;
        return -1;
    }
    if ((p->flags & F_CONTENT_LENGTH) != 0 && p->content_length > c->s->cfg.max_body) {
        c->error_status = 413;
        return -1;
    }
    if ((p->flags & F_CONTENT_LENGTH) != 0 && p->content_length > 0) {
        ex->body_cap = (size_t)p->content_length;
        ex->body = malloc(ex->body_cap);
        if (ex->body == NULL) {
            c->error_status = 503;
            return -1;
        }
    }
    ex->req.method = llhttp_method_name((llhttp_method_t)m);
    ex->req.path = ex->head.arena + ex->head.url_off;
    http_head_export(&ex->head, h, &ex->req.n_headers);
    if (llhttp_get_upgrade(p))
        c->keep_alive = 0; /* no upgrade: answer, then close */
    else
        c->keep_alive = 1;
    expect = bkv_http_header_get(h, ex->req.n_headers, "expect");
    if (expect != NULL && strcasecmp(expect, "100-continue") == 0 && ex->body_cap > 0 &&
        llhttp_get_http_minor(p) >= 1) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        uv_write_t *wr = malloc(sizeof(*wr));
        uv_buf_t b = uv_buf_init((char *)cont, sizeof(cont) - 1);
        if (wr != NULL && uv_write(wr, (uv_stream_t *)&c->tcp, &b, 1, on_continue_done) != 0)
            free(wr);
    }
    return 0;
}

static int s_on_body(llhttp_t *p, const char *at, size_t len)
{
    struct bkv_http_exchange *ex = p->data;

    if (len > ex->body_cap - ex->body_len)
        return -1; /* llhttp never gives more than Content-Length */
    memcpy(ex->body + ex->body_len, at, len);
    ex->body_len += len;
    return 0;
}

static int s_on_message_complete(llhttp_t *p)
{
    struct bkv_http_exchange *ex = p->data;
    struct sconn *c = ex->conn;

    if (!llhttp_should_keep_alive(p))
        c->keep_alive = 0;
    c->state = S_HANDLE;
    return HPE_PAUSED;
}

static const llhttp_settings_t server_settings = {
    .on_message_begin = s_on_message_begin,
    .on_url = http_on_url,
    .on_url_complete = http_on_url_complete,
    .on_header_field = http_on_header_field,
    .on_header_field_complete = http_on_header_field_complete,
    .on_header_value = http_on_header_value,
    .on_header_value_complete = http_on_header_value_complete,
    .on_headers_complete = s_on_headers_complete,
    .on_body = s_on_body,
    .on_message_complete = s_on_message_complete,
};

static void sconn_dispatch(struct sconn *c)
{
    struct bkv_http_exchange *ex = c->ex;

    uv_timer_stop(&c->timer);
    uv_read_stop((uv_stream_t *)&c->tcp);
    ex->req.body = ex->body;
    ex->req.body_len = ex->body_len;
    memcpy(ex->req.peer, c->peer, sizeof(ex->req.peer));
    c->s->handler(ex, &ex->req, c->s->data);
}

static void sconn_feed(struct sconn *c, const char *data, size_t len)
{
    enum llhttp_errno e;
    char text[256];

    if (c->ex == NULL) {
        c->ex = ex_new(c);
        if (c->ex == NULL) {
            sconn_close(c);
            return;
        }
        c->parser.data = c->ex;
        c->head_bytes = 0;
        c->error_status = 0;
    }
    e = llhttp_execute(&c->parser, data, len);
    if (e == HPE_PAUSED && c->state == S_HANDLE) {
        size_t used = (size_t)(llhttp_get_error_pos(&c->parser) - data);
        if (used < len) {
            c->pending = malloc(len - used);
            if (c->pending == NULL) {
                sconn_close(c);
                return;
            }
            memcpy(c->pending, data + used, len - used);
            c->pending_len = len - used;
        }
        sconn_dispatch(c);
        return;
    }
    if (e == HPE_OK) {
        /* Bytes llhttp consumes without a callback (whitespace) still count. */
        if (c->started && c->ex->req.method == NULL) {
            c->head_bytes += len;
            if (c->head_bytes > 2 * c->s->cfg.max_header_bytes + 1024)
                sconn_fail(c, 431, "request header fields too large");
        }
        return;
    }
    if (c->ex->head.overflow)
        c->error_status = 431;
    switch (c->error_status) {
    case 413:
        sconn_fail(c, 413, "content too large: the body is above this server's limit");
        break;
    case 431:
        sconn_fail(c, 431, "request header fields too large");
        break;
    case 501:
        sconn_fail(c, 501,
                   "not implemented: only GET, POST, PUT and DELETE with a Content-Length body");
        break;
    case 503:
        sconn_fail(c, 503, "service unavailable: out of memory");
        break;
    default:
        snprintf(text, sizeof(text), "bad request: malformed HTTP (%s: %s)", llhttp_errno_name(e),
                 llhttp_get_error_reason(&c->parser));
        sconn_fail(c, 400, text);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct sconn *c = h->data;

    (void)suggested;
    *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void on_sconn_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct sconn *c = stream->data;

    (void)buf;
    if (c->closing)
        return;
    if (c->state == S_LINGER) {
        c->lingered += nread > 0 ? (size_t)nread : 0;
        if (nread < 0 || c->lingered > LINGER_MAX_BYTES)
            sconn_close(c);
        return;
    }
    if (nread == UV_EOF && c->state == S_WRITE) {
        /* The client half-closed after its request: finish the answer, then close. */
        uv_read_stop(stream);
        c->keep_alive = 0;
        c->peer_eof = 1;
        return;
    }
    if (nread < 0) {
        /* EOF or reset: whatever was being read is abandoned. */
        sconn_close(c);
        return;
    }
    if (nread > 0 && c->state == S_READ)
        sconn_feed(c, c->rbuf, (size_t)nread);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct bkv_http_server *s = listener->data;
    struct sconn *c;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char ip[48];

    if (status < 0 || s->closing)
        return;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->s = s;
    c->tcp.data = c->timer.data = c;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->handles = 2;
    s->n_conns++;
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 || s->n_conns > s->cfg.max_connections) {
        sconn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    snprintf(c->peer, sizeof(c->peer), "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0 &&
        uv_ip_name((struct sockaddr *)&ss, ip, sizeof(ip)) == 0)
        snprintf(c->peer, sizeof(c->peer), ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip,
                 ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                : ((struct sockaddr_in *)&ss)->sin_port));
    llhttp_init(&c->parser, HTTP_REQUEST, &server_settings);
    c->state = S_READ;
    uv_timer_start(&c->timer, on_sconn_timer, s->cfg.idle_timeout_ms, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_sconn_read) != 0)
        sconn_close(c);
}

/* Blocking name resolution: only at start-up. */
static int resolve_listen(const char *address, struct sockaddr_storage *ss, char *err,
                          size_t err_cap)
{
    char host[256], port_s[8];
    unsigned port;
    struct addrinfo hints = {0}, *res = NULL;
    int rc;

    if (bkv_http_address_parse(address, host, sizeof(host), &port) != BKV_OK) {
        snprintf(err, err_cap, "listen address \"%.200s\" is not host:port", address);
        return BKV_ERR_INVALID;
    }
    snprintf(port_s, sizeof(port_s), "%u", port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host, port_s, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, err_cap, "cannot resolve \"%.200s\": %s", host, gai_strerror(rc));
        return BKV_ERR_INVALID;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return BKV_OK;
}

int bkv_http_server_start(uv_loop_t *loop, const struct bkv_http_server_config *cfg,
                          bkv_http_handler handler, void *data, struct bkv_http_server **out,
                          char *err, size_t err_cap)
{
    struct bkv_http_server *s;
    struct sockaddr_storage ss;
    int len = sizeof(ss), rc;

    *out = NULL;
    if (cfg == NULL || handler == NULL || cfg->address == NULL) {
        snprintf(err, err_cap, "no listen address or handler");
        return BKV_ERR_INVALID;
    }
    rc = resolve_listen(cfg->address, &ss, err, err_cap);
    if (rc != BKV_OK)
        return rc;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return BKV_ERR_NOMEM;
    s->loop = loop;
    s->cfg = *cfg;
    s->cfg.max_body = cfg->max_body ? cfg->max_body : DEFAULT_MAX_BODY;
    s->cfg.max_header_bytes = cfg->max_header_bytes ? cfg->max_header_bytes : DEFAULT_MAX_HEADER;
    s->cfg.idle_timeout_ms = cfg->idle_timeout_ms ? cfg->idle_timeout_ms : DEFAULT_IDLE_MS;
    s->cfg.max_connections = cfg->max_connections ? cfg->max_connections : DEFAULT_MAX_CONNS;
    s->handler = handler;
    s->data = data;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->listener_open = 1;
    rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
    if (rc == 0)
        rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
    if (rc != 0) {
        snprintf(err, err_cap, "listen on %.200s: %s", cfg->address, uv_strerror(rc));
        bkv_http_server_close(s, NULL, NULL);
        return BKV_ERR_IO;
    }
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    *out = s;
    return BKV_OK;
}

int bkv_http_server_port(const struct bkv_http_server *s)
{
    return s->port;
}

static void on_listener_closed(uv_handle_t *h)
{
    struct bkv_http_server *s = h->data;

    s->listener_open = 0;
    server_maybe_done(s);
}

void bkv_http_server_close(struct bkv_http_server *s, void (*cb)(void *data), void *data)
{
    if (s == NULL || s->closing)
        return;
    s->closing = 1;
    s->close_cb = cb;
    s->close_data = data;
    while (s->conns != NULL)
        sconn_close(s->conns);
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}
