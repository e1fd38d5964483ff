/*
 * The blocking HTTP/1.1 client of libbkv: one request per connection.
 *
 * Normal path: getaddrinfo(host, port), a non-blocking connect to each
 * address in turn until one succeeds, send the request with
 * "Connection: close", then read with poll() and feed llhttp until the
 * response is complete (Content-Length, chunked, or read to EOF). Every wait
 * is bounded by one deadline for the whole exchange.
 *
 * Failure modes: resolution, connect, send and receive errors and an early
 * close are BKV_ERR_IO; the deadline is BKV_ERR_LIMIT; llhttp's verdict on
 * bad bytes is BKV_ERR_FORMAT; a body above max_body (announced or actual)
 * or oversized headers are BKV_ERR_LENGTH. Each error writes one sentence
 * naming the server, for a person.
 */
#include "client/internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <llhttp.h>

#include "proto/err.h"

#define DEFAULT_TIMEOUT_MS 10000
#define FIELD_MAX          64   /* header names we care about are short */
#define VALUE_MAX          256  /* and so are their values */
#define REQUEST_HEAD_MAX   8192 /* our own request line and headers */

struct parse {
    size_t max_body;
    size_t header_bytes;
    int done;
    int too_large;
    int header_overflow;
    int status;
    char field[FIELD_MAX + 1];
    size_t field_len;
    int field_trunc;
    char value[VALUE_MAX + 1];
    size_t value_len;
    unsigned retry_after_s;
    char content_type[64];
    uint8_t *body;
    size_t body_len;
    size_t body_cap;
};

void bkv_client_err(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || cap == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* strerror text starting in lower case, to sit inside a sentence. */
static void errno_text(int e, char *out, size_t cap)
{
    snprintf(out, cap, "%s", strerror(e));
    if (out[0] != '\0' && isupper((unsigned char)out[0]) && !isupper((unsigned char)out[1]))
        out[0] = (char)tolower((unsigned char)out[0]);
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining_ms(int64_t deadline)
{
    int64_t left = deadline - now_ms();

    if (left <= 0)
        return 0;
    return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

int bkv_client_http_split(const char *hostport, char host[static BKV_CLIENT_HTTP_HOST_MAX],
                          char port[static 8])
{
    const char *colon, *h;
    size_t hlen, plen;
    unsigned long pn;
    char *end;

    if (hostport == NULL)
        return BKV_ERR_INVALID;
    if (hostport[0] == '[') {
        const char *close = strchr(hostport, ']');

        if (close == NULL || close[1] != ':')
            return BKV_ERR_INVALID;
        h = hostport + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(hostport, ':');
        if (colon == NULL || memchr(hostport, ':', (size_t)(colon - hostport)) != NULL)
            return BKV_ERR_INVALID;
        h = hostport;
        hlen = (size_t)(colon - hostport);
    }
    plen = strlen(colon + 1);
    if (hlen == 0 || hlen >= BKV_CLIENT_HTTP_HOST_MAX || plen == 0 || plen > 5)
        return BKV_ERR_INVALID;
    for (size_t i = 0; i < hlen; i++)
        if (!isgraph((unsigned char)h[i]))
            return BKV_ERR_INVALID;
    for (size_t i = 0; i < plen; i++)
        if (!isdigit((unsigned char)colon[1 + i]))
            return BKV_ERR_INVALID;
    pn = strtoul(colon + 1, &end, 10);
    if (pn == 0 || pn > 65535)
        return BKV_ERR_INVALID;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    snprintf(port, 8, "%lu", pn);
    return BKV_OK;
}

/* --- llhttp callbacks ----------------------------------------------------- */

static int count_header(struct parse *p, size_t n)
{
    p->header_bytes += n;
    if (p->header_bytes > BKV_CLIENT_HTTP_MAX_HEADER_BYTES) {
        p->header_overflow = 1;
        return -1;
    }
    return 0;
}

static int on_status(llhttp_t *h, const char *at, size_t n)
{
    (void)at;
    return count_header(h->data, n);
}

static int on_header_field(llhttp_t *h, const char *at, size_t n)
{
    struct parse *p = h->data;
    size_t take;

    if (count_header(p, n) != 0)
        return -1;
    take = n < FIELD_MAX - p->field_len ? n : FIELD_MAX - p->field_len;
    if (take < n)
        p->field_trunc = 1;
    memcpy(p->field + p->field_len, at, take);
    p->field_len += take;
    p->field[p->field_len] = '\0';
    return 0;
}

static int on_header_value(llhttp_t *h, const char *at, size_t n)
{
    struct parse *p = h->data;
    size_t take;

    if (count_header(p, n) != 0)
        return -1;
    take = n < VALUE_MAX - p->value_len ? n : VALUE_MAX - p->value_len;
    memcpy(p->value + p->value_len, at, take);
    p->value_len += take;
    p->value[p->value_len] = '\0';
    return 0;
}

/* Retry-After as delta-seconds; an HTTP-date (or anything else) gives 0. */
static unsigned parse_retry_after(const char *v)
{
    unsigned long s = 0;

    while (*v == ' ' || *v == '\t')
        v++;
    if (!isdigit((unsigned char)*v))
        return 0;
    for (; isdigit((unsigned char)*v); v++) {
        s = s * 10 + (unsigned long)(*v - '0');
        if (s > 86400)
            return 86400; /* a day is plenty of hint */
    }
    while (*v == ' ' || *v == '\t')
        v++;
    return *v == '\0' ? (unsigned)s : 0;
}

static int on_header_value_complete(llhttp_t *h)
{
    struct parse *p = h->data;

    if (!p->field_trunc) {
        if (strcasecmp(p->field, "retry-after") == 0)
            p->retry_after_s = parse_retry_after(p->value);
        else if (strcasecmp(p->field, "content-type") == 0) {
            size_t n = strnlen(p->value, sizeof(p->content_type) - 1);

            memcpy(p->content_type, p->value, n);
            p->content_type[n] = '\0';
        }
    }
    p->field_len = 0;
    p->field[0] = '\0';
    p->field_trunc = 0;
    p->value_len = 0;
    p->value[0] = '\0';
    return 0;
}

static int on_headers_complete(llhttp_t *h)
{
    struct parse *p = h->data;

    p->status = (int)llhttp_get_status_code(h);
    if (p->status < 100 || p->status > 599)
        return -1; /* not an HTTP status (llhttp lets 0..999 through) */
    if ((h->flags & F_CONTENT_LENGTH) && h->content_length > p->max_body) {
        p->too_large = 1;
        return -1;
    }
    return 0;
}

static int on_body(llhttp_t *h, const char *at, size_t n)
{
    struct parse *p = h->data;

    if (n > p->max_body - p->body_len) {
        p->too_large = 1;
        return -1;
    }
    if (p->body_len + n + 1 > p->body_cap) {
        size_t cap = p->body_cap ? p->body_cap : 1024;
        uint8_t *nb;

        while (cap < p->body_len + n + 1)
            cap *= 2;
        nb = realloc(p->body, cap);
        if (nb == NULL)
            return -1;
        p->body = nb;
        p->body_cap = cap;
    }
    memcpy(p->body + p->body_len, at, n);
    p->body_len += n;
    p->body[p->body_len] = '\0';
    return 0;
}

static int on_message_complete(llhttp_t *h)
{
    struct parse *p = h->data;

    if (p->status >= 100 && p->status < 200) {
        /* An interim response (100 Continue and the like): wait for the real one. */
        p->status = 0;
        p->retry_after_s = 0;
        p->content_type[0] = '\0';
        p->body_len = 0;
        return 0;
    }
    p->done = 1;
    return HPE_PAUSED;
}

/* --- sockets -------------------------------------------------------------- */

/* Connect to one address before the deadline; 0 or an errno value. */
static int connect_one(const struct addrinfo *ai, int64_t deadline, int *fd_out)
{
    int fd, e = 0;
    socklen_t elen = sizeof(e);
    struct pollfd pfd;

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return errno;
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
        e = errno;
        goto fail;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        goto done;
    if (errno != EINPROGRESS) {
        e = errno;
        goto fail;
    }
    pfd.fd = fd;
    pfd.events = POLLOUT;
    for (;;) {
        int ms = remaining_ms(deadline), r;

        if (ms == 0) {
            e = ETIMEDOUT;
            goto fail;
        }
        r = poll(&pfd, 1, ms);
        if (r > 0)
            break;
        if (r < 0 && errno != EINTR) {
            e = errno;
            goto fail;
        }
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) != 0)
        e = errno;
    if (e != 0)
        goto fail;
done:
    *fd_out = fd;
    return 0;
fail:
    close(fd);
    return e;
}

/* Wait until fd is ready for events; 0, or ETIMEDOUT / an errno value. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    struct pollfd pfd = {.fd = fd, .events = events};

    for (;;) {
        int ms = remaining_ms(deadline), r;

        if (ms == 0)
            return ETIMEDOUT;
        r = poll(&pfd, 1, ms);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return errno;
    }
}

static int send_all(int fd, const uint8_t *buf, size_t len, int64_t deadline)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int e = wait_fd(fd, POLLOUT, deadline);

            if (e != 0)
                return e;
            continue;
        }
        return n < 0 ? errno : EPIPE;
    }
    return 0;
}

/* Header values go on the wire as given: refuse anything that could split a header. */
static int header_ok(const char *v)
{
    for (; v != NULL && *v != '\0'; v++)
        if ((unsigned char)*v < 0x20 || (unsigned char)*v == 0x7f)
            return 0;
    return 1;
}

static int build_head(const char *hostport, const struct bkv_client_http_request *req, char *out,
                      size_t cap, size_t *len)
{
    int n;

    if (!header_ok(req->method) || !header_ok(req->path) || !header_ok(req->authorization) ||
        !header_ok(req->content_type) || !header_ok(req->accept) || !header_ok(hostport) ||
        strchr(req->method, ' ') != NULL || strchr(req->path, ' ') != NULL)
        return BKV_ERR_INVALID;
    n = snprintf(out, cap,
                 "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: libbkv\r\nConnection: close\r\n"
                 "%s%s%s%s%s%s%s%s%s"
                 "Content-Length: %zu\r\n\r\n",
                 req->method, req->path, hostport, req->authorization ? "Authorization: " : "",
                 req->authorization ? req->authorization : "", req->authorization ? "\r\n" : "",
                 req->content_type ? "Content-Type: " : "",
                 req->content_type ? req->content_type : "", req->content_type ? "\r\n" : "",
                 req->accept ? "Accept: " : "", req->accept ? req->accept : "",
                 req->accept ? "\r\n" : "", req->body_len);
    if (n < 0 || (size_t)n >= cap)
        return BKV_ERR_INVALID;
    *len = (size_t)n;
    return BKV_OK;
}

int bkv_client_http_do(const char *hostport, const struct bkv_client_http_request *req,
                       size_t max_body, unsigned timeout_ms, struct bkv_client_http_response *resp,
                       char *err, size_t err_cap)
{
    char host[BKV_CLIENT_HTTP_HOST_MAX], port[8], head[REQUEST_HEAD_MAX], etext[128];
    struct addrinfo hints, *res = NULL;
    llhttp_settings_t settings;
    llhttp_t parser;
    struct parse p;
    size_t head_len = 0;
    int64_t deadline;
    int fd = -1, rc, e = 0, gai, eof = 0;
    const char *shown = hostport != NULL ? hostport : "(none)";

    memset(&p, 0, sizeof(p));
    if (hostport == NULL || req == NULL || resp == NULL || req->method == NULL ||
        req->path == NULL || (req->body == NULL && req->body_len > 0)) {
        bkv_client_err(err, err_cap, "internal error: bad HTTP request arguments");
        return BKV_ERR_INVALID;
    }
    if (bkv_client_http_split(hostport, host, port) != BKV_OK) {
        bkv_client_err(err, err_cap, "the router address \"%s\" is not host:port", hostport);
        return BKV_ERR_INVALID;
    }
    if (build_head(hostport, req, head, sizeof(head), &head_len) != BKV_OK) {
        bkv_client_err(err, err_cap, "internal error: an HTTP header value for %s is not valid",
                       shown);
        return BKV_ERR_INVALID;
    }
    deadline = now_ms() + (timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS);

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        bkv_client_err(err, err_cap, "cannot reach the router at %s: cannot resolve \"%s\" (%s)",
                       shown, host, gai_strerror(gai));
        rc = BKV_ERR_IO;
        goto out;
    }
    e = ECONNREFUSED;
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        e = connect_one(ai, deadline, &fd);
        if (e == 0 || e == ETIMEDOUT)
            break;
    }
    if (e != 0) {
        if (e == ETIMEDOUT) {
            bkv_client_err(err, err_cap,
                           "cannot reach the router at %s: no connection within %u ms", shown,
                           timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS);
            rc = BKV_ERR_LIMIT;
        } else {
            errno_text(e, etext, sizeof(etext));
            bkv_client_err(err, err_cap, "cannot reach the router at %s: %s", shown, etext);
            rc = BKV_ERR_IO;
        }
        goto out;
    }

    e = send_all(fd, (const uint8_t *)head, head_len, deadline);
    if (e == 0 && req->body_len > 0)
        e = send_all(fd, req->body, req->body_len, deadline);
    /*
     * A server may answer and close before reading the whole body (413 from
     * Content-Length): after a reset or broken pipe, still read its answer.
     */
    if (e != 0 && e != EPIPE && e != ECONNRESET)
        goto io_error;

    llhttp_settings_init(&settings);
    settings.on_status = on_status;
    settings.on_header_field = on_header_field;
    settings.on_header_value = on_header_value;
    settings.on_header_value_complete = on_header_value_complete;
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
    settings.on_message_complete = on_message_complete;
    llhttp_init(&parser, HTTP_RESPONSE, &settings);
    parser.data = &p;
    p.max_body = max_body;

    while (!p.done) {
        uint8_t buf[4096];
        ssize_t n;
        llhttp_errno_t perr;

        e = wait_fd(fd, POLLIN, deadline);
        if (e != 0)
            goto io_error;
        n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            e = errno;
            goto io_error;
        }
        if (n == 0) {
            eof = 1;
            perr = llhttp_finish(&parser);
        } else {
            perr = llhttp_execute(&parser, (const char *)buf, (size_t)n);
        }
        if (p.done)
            break;
        if (perr != HPE_OK) {
            if (p.too_large) {
                bkv_client_err(err, err_cap, "the router at %s sent a body larger than %zu bytes",
                               shown, max_body);
                rc = BKV_ERR_LENGTH;
            } else if (p.header_overflow) {
                bkv_client_err(err, err_cap, "the router at %s sent more than %d bytes of headers",
                               shown, BKV_CLIENT_HTTP_MAX_HEADER_BYTES);
                rc = BKV_ERR_LENGTH;
            } else if (perr == HPE_USER) {
                bkv_client_err(err, err_cap, "out of memory reading the answer from %s", shown);
                rc = BKV_ERR_NOMEM;
            } else if (eof && perr == HPE_INVALID_EOF_STATE) {
                bkv_client_err(
                    err, err_cap,
                    "the router at %s closed the connection before the answer was complete", shown);
                rc = BKV_ERR_IO;
            } else {
                bkv_client_err(err, err_cap, "the router at %s sent a malformed HTTP answer (%s)",
                               shown,
                               llhttp_get_error_reason(&parser) ? llhttp_get_error_reason(&parser)
                                                                : llhttp_errno_name(perr));
                rc = BKV_ERR_FORMAT;
            }
            goto out;
        }
        if (eof) {
            bkv_client_err(err, err_cap,
                           "the router at %s closed the connection before the answer was complete",
                           shown);
            rc = BKV_ERR_IO;
            goto out;
        }
    }

    memset(resp, 0, sizeof(*resp));
    resp->status = p.status;
    resp->retry_after_s = p.retry_after_s;
    memcpy(resp->content_type, p.content_type, sizeof(resp->content_type));
    if (p.body_len > 0) {
        resp->body = p.body;
        resp->body_len = p.body_len;
        p.body = NULL;
    }
    rc = BKV_OK;
    goto out;

io_error:
    if (e == ETIMEDOUT) {
        bkv_client_err(err, err_cap, "the router at %s did not answer within %u ms", shown,
                       timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS);
        rc = BKV_ERR_LIMIT;
    } else {
        errno_text(e, etext, sizeof(etext));
        bkv_client_err(err, err_cap, "lost the connection to the router at %s: %s", shown, etext);
        rc = BKV_ERR_IO;
    }
out:
    if (fd >= 0)
        close(fd);
    if (res != NULL)
        freeaddrinfo(res);
    free(p.body);
    return rc;
}

void bkv_client_http_response_free(struct bkv_client_http_response *resp)
{
    if (resp == NULL)
        return;
    free(resp->body);
    memset(resp, 0, sizeof(*resp));
}
