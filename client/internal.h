/*
 * libbkv's internal interfaces, not for apps: the small blocking HTTP/1.1
 * client (client/http.c) that vault.c uses to reach a BKV router, and the
 * error-sentence helper every client module uses.
 *
 * One request per TCP connection ("Connection: close"): resolve host:port,
 * connect with a deadline, send the whole request, read and parse the
 * response with llhttp until it is complete. The whole exchange, connect
 * included, is bounded by one timeout. Any thread; no global state.
 */
#ifndef BKV_CLIENT_INTERNAL_H
#define BKV_CLIENT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#define BKV_CLIENT_HTTP_MAX_HEADER_BYTES (16 * 1024) /* status line and headers */
#define BKV_CLIENT_HTTP_HOST_MAX         256

struct bkv_client_http_request {
    const char *method;        /* "GET", "POST" */
    const char *path;          /* "/v1/vault" */
    const char *authorization; /* the whole header value ("Bearer ..."), or NULL */
    const char *content_type;  /* of the body; NULL without a body */
    const char *accept;        /* NULL: no Accept header */
    const uint8_t *body;       /* borrowed for the call; may be NULL when body_len is 0 */
    size_t body_len;
};

struct bkv_client_http_response {
    int status;             /* 100..599 */
    uint8_t *body;          /* owned; NUL-terminated after body_len; NULL when empty */
    size_t body_len;        /* at most the caller's max_body */
    unsigned retry_after_s; /* Retry-After in delta-seconds; 0 if absent or a date */
    char content_type[64];  /* "" if absent; truncated if longer */
};

/*
 * Split "host:port" or "[v6-address]:port" into host and port (both
 * NUL-terminated, host at most BKV_CLIENT_HTTP_HOST_MAX bytes). BKV_ERR_INVALID
 * when the text is not of that form or the port is not 1..65535.
 */
int bkv_client_http_split(const char *hostport, char host[static BKV_CLIENT_HTTP_HOST_MAX],
                          char port[static 8]);

/*
 * One exchange with the server at hostport (what a person typed, used in err
 * and as the Host header). resp is written only on success (the caller frees
 * it with bkv_client_http_response_free); any HTTP status is a success here.
 * Errors, with a sentence in err naming hostport:
 *   BKV_ERR_INVALID  bad hostport or request (for instance CR/LF in a header value)
 *   BKV_ERR_IO       name resolution, connect (refused, unreachable), send or
 *                    receive failed, or the server closed before a full response
 *   BKV_ERR_LIMIT    timeout_ms passed (0: 10000)
 *   BKV_ERR_FORMAT   the response is not valid HTTP/1.x
 *   BKV_ERR_LENGTH   the body exceeds max_body or the headers exceed
 *                    BKV_CLIENT_HTTP_MAX_HEADER_BYTES
 *   BKV_ERR_NOMEM
 * req is borrowed for the call.
 */
int bkv_client_http_do(const char *hostport, const struct bkv_client_http_request *req,
                       size_t max_body, unsigned timeout_ms, struct bkv_client_http_response *resp,
                       char *err, size_t err_cap);

/* snprintf into err (capacity cap) when err is not NULL: the sentence for a person. */
void bkv_client_err(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Free the body and reset resp. NULL is fine. */
void bkv_client_http_response_free(struct bkv_client_http_response *resp);

#endif
