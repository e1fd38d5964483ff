/*
 * The shared libuv HTTP/1.1 layer of bkv-node and bkv-router (llhttp parser).
 *
 * Server: accepts connections on host:port, parses requests with llhttp
 * (persistent connections, one request at a time per connection, pipelined
 * bytes wait), and hands each complete request to the handler on the loop
 * thread. The handler (or anything later, on the loop thread) answers with
 * exactly one bkv_http_respond() per exchange. If the client goes away first,
 * respond still must be called and just frees the exchange.
 * The server answers by itself, and closes the connection:
 *   400 for malformed HTTP (the text names the llhttp error), 413 for a body
 *   above max_body (also from Content-Length before reading it), 431 for
 *   headers above max_header_bytes, 408 on a read timeout, 501 for chunked
 *   request bodies or an unsupported method; connections above
 *   max_connections are closed at accept.
 * Error bodies are short text/plain lines; no request byte is ever logged.
 * After such an answer (or Connection: close) the write side is shut down
 * and input is discarded for up to 2 s, so the client reads the answer
 * instead of a reset. Expect: 100-continue is answered for accepted bodies.
 * llhttp is built in strict mode (router.cmake): "Name : value" and header
 * names with spaces are 400, as RFC 9112 requires of a server.
 *
 * Client: keeps persistent connections per address (host:port), sends one
 * request per connection at a time, opens more connections as needed up to
 * a cap, and calls back once per request with the response or an error
 * (BKV_ERR_IO connect/read/write failure, BKV_ERR_LIMIT timeout,
 * BKV_ERR_FORMAT malformed response, BKV_ERR_LENGTH response body above
 * max_body, BKV_ERR_SHUTDOWN client closed). The callback never runs inside
 * bkv_http_client_request itself. When a connection attempt fails and no
 * connection to that address is left, every request queued for it fails at
 * once with BKV_ERR_IO (the caller can try another address without waiting
 * for its timeout). A request that failed on a reused connection before any
 * response byte arrived is NOT retried here: the caller decides.
 *
 * Everything runs on the loop thread.
 */
#ifndef BKV_NODE_HTTP_H
#define BKV_NODE_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define BKV_HTTP_MAX_HEADERS 32

struct bkv_http_header {
    const char *name; /* in requests and responses received: lower-cased */
    const char *value;
};

struct bkv_http_request {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* the request target as sent */
    struct bkv_http_header headers[BKV_HTTP_MAX_HEADERS];
    size_t n_headers;
    const uint8_t *body;
    size_t body_len;
    char peer[64]; /* "ip:port" of the client, for logs */
};

/*
 * Split "host:port" or "[v6addr]:port" into host (capacity host_cap, NUL-
 * terminated) and port (0..65535). BKV_ERR_INVALID if it is not of that form.
 */
int bkv_http_address_parse(const char *address, char *host, size_t host_cap, unsigned *port);

/* Case-insensitive lookup; NULL if absent. */
const char *bkv_http_header_get(const struct bkv_http_header *headers, size_t n, const char *name);

struct bkv_http_server_config {
    const char *address;      /* host:port to listen on (IPv4 or [IPv6]) */
    size_t max_body;          /* 0: 64 KiB */
    size_t max_header_bytes;  /* 0: 8 KiB */
    unsigned idle_timeout_ms; /* 0: 30000; also bounds reading one request */
    unsigned max_connections; /* 0: 1024 */
    /*
     * Optional: told (on the loop thread, with the handler's data) each time
     * the server answers by itself (400/408/413/431/501), for a log line.
     * peer is "ip:port"; no request byte is passed.
     */
    void (*on_refused)(void *data, int status, const char *peer);
};

struct bkv_http_server;
struct bkv_http_exchange;

/* req and everything it points to stay valid until bkv_http_respond(ex). */
typedef void (*bkv_http_handler)(struct bkv_http_exchange *ex, const struct bkv_http_request *req,
                                 void *data);

int bkv_http_server_start(uv_loop_t *loop, const struct bkv_http_server_config *cfg,
                          bkv_http_handler handler, void *data, struct bkv_http_server **out,
                          char *err, size_t err_cap);
/* The bound port (useful with port 0). */
int bkv_http_server_port(const struct bkv_http_server *s);
/*
 * Stop accepting, close every connection; cb on the loop when all is
 * released (s is freed then). An exchange still with the handler is
 * detached: bkv_http_respond on it only frees it, and must still be called.
 */
void bkv_http_server_close(struct bkv_http_server *s, void (*cb)(void *data), void *data);

/*
 * Answer ex: status, extra headers (Content-Length, Date-free; Connection is
 * managed here), body (copied). Exactly once per exchange.
 */
void bkv_http_respond(struct bkv_http_exchange *ex, int status, const struct bkv_http_header *hdrs,
                      size_t n_hdrs, const void *body, size_t body_len);
/* Shorthand: a text/plain body "<text>\n". */
void bkv_http_respond_text(struct bkv_http_exchange *ex, int status,
                           const struct bkv_http_header *hdrs, size_t n_hdrs, const char *text);

struct bkv_http_response {
    int status;
    struct bkv_http_header headers[BKV_HTTP_MAX_HEADERS];
    size_t n_headers;
    const uint8_t *body;
    size_t body_len;
};

struct bkv_http_client;
/* resp is valid only during the callback; NULL when err != 0. */
typedef void (*bkv_http_response_cb)(void *data, int err, const struct bkv_http_response *resp);

struct bkv_http_client_config {
    size_t max_body;                /* largest response body accepted; 0: 64 KiB */
    unsigned max_conns_per_address; /* 0: 16 */
    unsigned connect_timeout_ms;    /* 0: 2000 */
    unsigned idle_timeout_ms;       /* 0: 15000; an idle pooled connection is closed after it
                                       (keep it below the server's idle timeout) */
};

int bkv_http_client_new(uv_loop_t *loop, const struct bkv_http_client_config *cfg,
                        struct bkv_http_client **out);
/*
 * Send one request; strings, headers and body are copied. cb is called
 * exactly once, later, on the loop thread; not at all if this returns
 * non-zero: BKV_ERR_INVALID (address not host:port with a non-zero port,
 * method not a token, path or header with CR/LF/space where not allowed,
 * Host/Content-Length/Transfer-Encoding/Connection among hdrs, timeout_ms 0),
 * BKV_ERR_SHUTDOWN after bkv_http_client_close, BKV_ERR_NOMEM. timeout_ms
 * bounds the whole request: waiting for a connection, connecting, sending
 * and receiving.
 */
int bkv_http_client_request(struct bkv_http_client *c, const char *address, const char *method,
                            const char *path, const struct bkv_http_header *hdrs, size_t n_hdrs,
                            const void *body, size_t body_len, unsigned timeout_ms,
                            bkv_http_response_cb cb, void *data);
/* Fail pending requests with BKV_ERR_SHUTDOWN, close everything; cb when released. */
void bkv_http_client_close(struct bkv_http_client *c, void (*cb)(void *data), void *data);

#endif
