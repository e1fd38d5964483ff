/*
 * The libuv HTTP/1.1 server and client of bkv-node and bkv-router (see http.h).
 *
 * Server, normal path: accept, read, feed llhttp; the request line and
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
 *
 * Client, normal path: per address a pool of connections; a request waits in
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

#include <ctype.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>

#include "proto/err.h"

#define DEFAULT_MAX_BODY   (64 * 1024)
#define DEFAULT_MAX_HEADER (8 * 1024)
#define DEFAULT_IDLE_MS    30000u
#define DEFAULT_MAX_CONNS  1024u
#define DEFAULT_POOL_CONNS 16u
#define DEFAULT_CONNECT_MS 2000u
#define DEFAULT_POOL_IDLE  15000u
#define LINGER_MS          2000u
#define LINGER_MAX_BYTES   (1024 * 1024)
#define READ_BUF           (16 * 1024)
#define CLIENT_ARENA       (16 * 1024)

/* --- shared: addresses, headers, the message arena ------------------------ */

int bkv_http_address_parse(const char *address, char *host, size_t host_cap, unsigned *port)
{
    const char *colon, *h = address;
    size_t hlen;
    unsigned long p;
    char *end;

    if (address == NULL)
        return BKV_ERR_INVALID;
    if (address[0] == '[') {
        const char *close = strchr(address, ']');
        if (close == NULL || close[1] != ':')
            return BKV_ERR_INVALID;
        h = address + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(address, ':');
        if (colon == NULL || memchr(address, ':', (size_t)(colon - address)) != NULL)
            return BKV_ERR_INVALID;
        hlen = (size_t)(colon - address);
    }
    if (hlen == 0 || hlen >= host_cap || !isdigit((unsigned char)colon[1]))
        return BKV_ERR_INVALID;
    p = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || p > 65535 || end - (colon + 1) > 5)
        return BKV_ERR_INVALID;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (unsigned)p;
    return BKV_OK;
}

const char *bkv_http_header_get(const struct bkv_http_header *headers, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(headers[i].name, name) == 0)
            return headers[i].value;
    return NULL;
}

/* tchar of RFC 9110 §5.6.2. */
static int is_token(const char *s)
{
    if (s == NULL || *s == '\0')
        return 0;
    for (; *s != '\0'; s++)
        if (!isalnum((unsigned char)*s) && strchr("!#$%&'*+-.^_`|~", *s) == NULL)
            return 0;
    return 1;
}

/* A header value or request target: printable, no CR/LF/NUL (space allowed only in values). */
static int is_clean(const char *s, int allow_space)
{
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f || (!allow_space && (ch == ' ' || ch == '\t')))
            return 0;
    }
    return 1;
}

/*
 * The head of one message as llhttp hands it over in pieces: every string is
 * copied NUL-terminated into a fixed arena, so pointers into it stay valid.
 */
struct head {
    char *arena;
    size_t cap, used;
    size_t url_off;
    size_t name_off[BKV_HTTP_MAX_HEADERS], value_off[BKV_HTTP_MAX_HEADERS];
    size_t n, cur_name, cur_value;
    int name_done; /* the current header's name has ended */
    int overflow;  /* arena or header count exceeded */
};

static int head_add(struct head *h, const char *at, size_t len)
{
    if (h->overflow || len >= h->cap - h->used) {
        h->overflow = 1;
        return -1;
    }
    memcpy(h->arena + h->used, at, len);
    h->used += len;
    return 0;
}

static int head_end_string(struct head *h)
{
    char nul = '\0';
    return head_add(h, &nul, 1);
}

static void head_reset(struct head *h)
{
    h->used = 0;
    h->n = 0;
    h->url_off = 0;
    h->overflow = 0;
    h->name_done = 0;
    h->cur_name = h->cur_value = 0;
}

static void head_export(const struct head *h, struct bkv_http_header *out, size_t *n)
{
    for (size_t i = 0; i < h->n; i++) {
        out[i].name = h->arena + h->name_off[i];
        out[i].value = h->arena + h->value_off[i];
    }
    *n = h->n;
}

/* Parser callbacks shared by both sides; parser->data points at a struct whose first member is
 * the head. */
static struct head *head_of(llhttp_t *p)
{
    return (struct head *)p->data;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    return head_add(head_of(p), at, len);
}

static int on_url_complete(llhttp_t *p)
{
    struct head *h = head_of(p);

    if (head_end_string(h) != 0)
        return -1;
    h->cur_name = h->used;
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    return head_add(head_of(p), at, len);
}

static int on_header_field_complete(llhttp_t *p)
{
    struct head *h = head_of(p);

    if (h->n >= BKV_HTTP_MAX_HEADERS) {
        h->overflow = 1;
        return -1;
    }
    if (h->used == h->cur_name)
        return 0; /* empty: refused when its value ends */
    if (head_end_string(h) != 0)
        return -1;
    h->name_done = 1;
    for (char *c = h->arena + h->cur_name; *c != '\0'; c++)
        *c = (char)tolower((unsigned char)*c);
    h->cur_value = h->used;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    return head_add(head_of(p), at, len);
}

static int on_header_value_complete(llhttp_t *p)
{
    struct head *h = head_of(p);

    if (!h->name_done) {
        llhttp_set_error_reason(p, "Empty header name");
        return HPE_USER;
    }
    if (head_end_string(h) != 0)
        return -1;
    h->name_done = 0;
    h->name_off[h->n] = h->cur_name;
    h->value_off[h->n] = h->cur_value;
    h->n++;
    h->cur_name = h->used;
    return 0;
}

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

/* A write request with its bytes. */
struct wbuf {
    uv_write_t req;
    void *owner;
    size_t len;
    char data[];
};

/* --- server ----------------------------------------------------------------- */

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
        if (!is_token(hdrs[i].name) || !is_clean(hdrs[i].value, 1) ||
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
    head_export(&ex->head, h, &ex->req.n_headers);
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
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
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

/* --- client ----------------------------------------------------------------- */

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

    head_reset(&rx->head);
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
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
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
    head_export(&rx->head, resp.headers, &resp.n_headers);
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
    if (address == NULL || !is_token(method) || path == NULL || path[0] == '\0' ||
        !is_clean(path, 0) || cb == NULL || (body_len > 0 && body == NULL) ||
        n_hdrs > BKV_HTTP_MAX_HEADERS || timeout_ms == 0)
        return BKV_ERR_INVALID;
    for (size_t i = 0; i < n_hdrs; i++)
        if (!is_token(hdrs[i].name) || !is_clean(hdrs[i].value, 1) ||
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
