/*
 * client/http.c: libbkv's blocking HTTP/1.1 client, against a tiny in-test
 * server that answers with canned bytes. What is sent (request line, Host,
 * Authorization, Content-Type, Content-Length, body), what is parsed
 * (Content-Length, chunked and read-to-EOF bodies, answers split into 1-byte
 * pieces, interim 100 responses, Retry-After, Content-Type), and how each
 * failure is reported: refused connections and early closes (IO), a server
 * that never answers (LIMIT), malformed HTTP (FORMAT), oversized bodies and
 * headers (LENGTH), and bad addresses or header values (INVALID).
 */
#include <stdlib.h>
#include <string.h>

#include "client/internal.h"
#include "fake_router.h"
#include "harness.h"
#include "proto/err.h"

/* What the handler answers, and what it saw. */
static struct {
    const char *head;
    const uint8_t *body;
    size_t body_len;
    size_t split;
    int hang;
    int close_only;
    struct fake_request last;
    uint8_t last_body[1024];
} canned;

static void handler(void *arg, const struct fake_request *req, struct fake_reply *reply)
{
    (void)arg;
    canned.last = *req;
    canned.last.body = NULL;
    memcpy(canned.last_body, req->body,
           req->body_len < sizeof(canned.last_body) ? req->body_len : sizeof(canned.last_body));
    if (canned.head != NULL)
        fake_reply_set(reply, canned.head, canned.body, canned.body_len);
    reply->split = canned.split;
    reply->hang = canned.hang;
    reply->close_only = canned.close_only;
}

static struct fake_router *server;

static int setup(void)
{
    server = fake_router_start(handler, NULL);
    return server == NULL;
}

static int teardown(void)
{
    fake_router_stop(server);
    return 0;
}

static void answer(const char *head, const char *body)
{
    memset(&canned, 0, sizeof(canned));
    canned.head = head;
    canned.body = (const uint8_t *)body;
    canned.body_len = body != NULL ? strlen(body) : 0;
}

static const struct bkv_client_http_request get_req = {.method = "GET", .path = "/v1/keyconfig"};

static int get(size_t max_body, unsigned timeout_ms, struct bkv_client_http_response *r, char *err,
               size_t cap)
{
    memset(r, 0, sizeof(*r));
    err[0] = '\0';
    return bkv_client_http_do(fake_router_addr(server), &get_req, max_body, timeout_ms, r, err,
                              cap);
}

static void test_post_sends_request(void)
{
    static const uint8_t body[] = {0x00, 0x01, 0xff, 0x0d, 0x0a, 'x'};
    struct bkv_client_http_request req = {.method = "POST",
                                          .path = "/v1/vault",
                                          .authorization = "Bearer bkv1.abc.def",
                                          .content_type = "message/bkv-request",
                                          .accept = "message/bkv-response",
                                          .body = body,
                                          .body_len = sizeof(body)};
    struct bkv_client_http_response r;
    char err[256], v[256];

    answer("HTTP/1.1 200 OK\r\nContent-Type: message/bkv-response\r\nContent-Length: 5\r\n\r\n",
           "hello");
    CU_ASSERT_EQUAL_FATAL(
        bkv_client_http_do(fake_router_addr(server), &req, 1024, 5000, &r, err, sizeof(err)),
        BKV_OK);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_EQUAL(r.body_len, 5);
    CU_ASSERT_EQUAL(memcmp(r.body, "hello", 5), 0);
    CU_ASSERT_STRING_EQUAL(r.content_type, "message/bkv-response");
    CU_ASSERT_EQUAL(r.retry_after_s, 0);
    bkv_client_http_response_free(&r);
    CU_ASSERT_PTR_NULL(r.body);

    CU_ASSERT_STRING_EQUAL(canned.last.method, "POST");
    CU_ASSERT_STRING_EQUAL(canned.last.path, "/v1/vault");
    CU_ASSERT_EQUAL(strncmp(canned.last.head, "POST /v1/vault HTTP/1.1\r\n", 25), 0);
    CU_ASSERT_TRUE(fake_header(&canned.last, "host", v, sizeof(v)));
    CU_ASSERT_STRING_EQUAL(v, fake_router_addr(server));
    CU_ASSERT_TRUE(fake_header(&canned.last, "authorization", v, sizeof(v)));
    CU_ASSERT_STRING_EQUAL(v, "Bearer bkv1.abc.def");
    CU_ASSERT_TRUE(fake_header(&canned.last, "content-type", v, sizeof(v)));
    CU_ASSERT_STRING_EQUAL(v, "message/bkv-request");
    CU_ASSERT_TRUE(fake_header(&canned.last, "content-length", v, sizeof(v)));
    CU_ASSERT_STRING_EQUAL(v, "6");
    CU_ASSERT_TRUE(fake_header(&canned.last, "connection", v, sizeof(v)));
    CU_ASSERT_STRING_EQUAL(v, "close");
    CU_ASSERT_EQUAL(canned.last.body_len, sizeof(body));
    CU_ASSERT_EQUAL(memcmp(canned.last_body, body, sizeof(body)), 0);
}

static void test_get_without_body(void)
{
    struct bkv_client_http_response r;
    char err[256], v[64];

    answer("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", "abc");
    CU_ASSERT_EQUAL_FATAL(get(1024, 5000, &r, err, sizeof(err)), BKV_OK);
    CU_ASSERT_STRING_EQUAL(canned.last.method, "GET");
    CU_ASSERT_STRING_EQUAL(canned.last.path, "/v1/keyconfig");
    CU_ASSERT_FALSE(fake_header(&canned.last, "authorization", v, sizeof(v)));
    CU_ASSERT_EQUAL(canned.last.body_len, 0);
    CU_ASSERT_STRING_EQUAL(r.content_type, "");
    bkv_client_http_response_free(&r);
}

static void test_split_into_bytes(void)
{
    struct bkv_client_http_response r;
    char err[256];

    answer("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Type: text/plain\r\n"
           "Content-Length: 10\r\n\r\n",
           "no leader\n");
    canned.split = 1;
    CU_ASSERT_EQUAL_FATAL(get(1024, 5000, &r, err, sizeof(err)), BKV_OK);
    CU_ASSERT_EQUAL(r.status, 503);
    CU_ASSERT_EQUAL(r.retry_after_s, 7);
    CU_ASSERT_STRING_EQUAL(r.content_type, "text/plain");
    CU_ASSERT_EQUAL(r.body_len, 10);
    CU_ASSERT_STRING_EQUAL((const char *)r.body, "no leader\n");
    bkv_client_http_response_free(&r);
}

static void test_retry_after_forms(void)
{
    struct bkv_client_http_response r;
    char err[256];

    answer("HTTP/1.1 429 Too Many Requests\r\nretry-after:  12 \r\nContent-Length: 0\r\n\r\n",
           NULL);
    CU_ASSERT_EQUAL_FATAL(get(1024, 5000, &r, err, sizeof(err)), BKV_OK);
    CU_ASSERT_EQUAL(r.status, 429);
    CU_ASSERT_EQUAL(r.retry_after_s, 12);
    CU_ASSERT_PTR_NULL(r.body);
    bkv_client_http_response_free(&r);

    /* An HTTP-date is not a number of seconds: no hint rather than a wrong one. */
    answer("HTTP/1.1 429 Too Many Requests\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n"
           "Content-Length: 0\r\n\r\n",
           NULL);
    CU_ASSERT_EQUAL_FATAL(get(1024, 5000, &r, err, sizeof(err)), BKV_OK);
    CU_ASSERT_EQUAL(r.retry_after_s, 0);
    bkv_client_http_response_free(&r);

    answer("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 5x\r\nContent-Length: 0\r\n\r\n", NULL);
    CU_ASSERT_EQUAL_FATAL(get(1024, 5000, &r, err, sizeof(err)), BKV_OK);
    CU_ASSERT_EQUAL(r.retry_after_s, 0);
    bkv_client_http_response_free(&r);
}

static void test_chunked_and_eof_bodies(void)
{
    struct bkv_client_http_response r;
    char err[256];

    answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
           "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n");
    CU_ASSERT_EQUAL_FATAL(get(1024, 5000, &r, err, sizeof(err)), BKV_OK);
    CU_ASSERT_EQUAL(r.body_len, 7);
    CU_ASSERT_STRING_EQUAL((const char *)r.body, "abcdefg");
    bkv_client_http_response_free(&r);

    /* No length: the body runs to the end of the connection. */
    answer("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", "until the end");
    CU_ASSERT_EQUAL_FATAL(get(1024, 5000, &r, err, sizeof(err)), BKV_OK);
    CU_ASSERT_STRING_EQUAL((const char *)r.body, "until the end");
    bkv_client_http_response_free(&r);

    /* An interim 100 Continue is skipped. */
    answer("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n", "ok");
    CU_ASSERT_EQUAL_FATAL(get(1024, 5000, &r, err, sizeof(err)), BKV_OK);
    CU_ASSERT_EQUAL(r.status, 201);
    CU_ASSERT_STRING_EQUAL((const char *)r.body, "ok");
    bkv_client_http_response_free(&r);
}

static void test_body_limits(void)
{
    struct bkv_client_http_response r;
    char err[256];

    /* Announced too large: refused before reading the body. */
    answer("HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n", "0123456789abcdefg");
    CU_ASSERT_EQUAL(get(16, 5000, &r, err, sizeof(err)), BKV_ERR_LENGTH);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "larger than 16 bytes"));
    /* Exactly the limit is fine. */
    answer("HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n", "0123456789abcdef");
    CU_ASSERT_EQUAL_FATAL(get(16, 5000, &r, err, sizeof(err)), BKV_OK);
    bkv_client_http_response_free(&r);
    /* Chunked past the limit. */
    answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
           "a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n");
    CU_ASSERT_EQUAL(get(16, 5000, &r, err, sizeof(err)), BKV_ERR_LENGTH);
    /* To EOF past the limit. */
    answer("HTTP/1.1 200 OK\r\n\r\n", "0123456789abcdefghij");
    CU_ASSERT_EQUAL(get(16, 5000, &r, err, sizeof(err)), BKV_ERR_LENGTH);
}

static void test_oversized_headers(void)
{
    struct bkv_client_http_response r;
    char err[256];
    size_t n = BKV_CLIENT_HTTP_MAX_HEADER_BYTES + 100;
    char *head = malloc(n + 200);

    CU_ASSERT_PTR_NOT_NULL_FATAL(head);
    strcpy(head, "HTTP/1.1 200 OK\r\nX-Big: ");
    memset(head + strlen(head), 'a', n);
    strcpy(head + strlen("HTTP/1.1 200 OK\r\nX-Big: ") + n, "\r\nContent-Length: 0\r\n\r\n");
    answer(head, NULL);
    CU_ASSERT_EQUAL(get(1024, 5000, &r, err, sizeof(err)), BKV_ERR_LENGTH);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "headers"));
    free(head);
}

static void test_malformed(void)
{
    static const char *bad[] = {
        "HTPT/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n",
    };
    struct bkv_client_http_response r;
    char err[256];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        answer(bad[i], NULL);
        CU_ASSERT_EQUAL(get(1024, 5000, &r, err, sizeof(err)), BKV_ERR_FORMAT);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "malformed HTTP answer"));
    }
}

static void test_early_close(void)
{
    struct bkv_client_http_response r;
    char err[256];

    /* Closed without a byte. */
    answer(NULL, NULL);
    canned.close_only = 1;
    CU_ASSERT_EQUAL(get(1024, 5000, &r, err, sizeof(err)), BKV_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "closed the connection"));
    /* Closed in the middle of the body. */
    answer("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", "only ten b");
    CU_ASSERT_EQUAL(get(1024, 5000, &r, err, sizeof(err)), BKV_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "before the answer was complete"));
    /* Closed in the middle of the headers. */
    answer("HTTP/1.1 200 OK\r\nContent-Le", NULL);
    CU_ASSERT_EQUAL(get(1024, 5000, &r, err, sizeof(err)), BKV_ERR_IO);
}

static void test_timeout(void)
{
    struct bkv_client_http_response r;
    char err[256];

    /* The server holds the connection without answering until the client gives up. */
    answer(NULL, NULL);
    canned.hang = 1;
    CU_ASSERT_EQUAL(get(1024, 200, &r, err, sizeof(err)), BKV_ERR_LIMIT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "did not answer within 200 ms"));
}

static void test_connection_refused(void)
{
    struct bkv_client_http_response r;
    char addr[64], err[256];
    int rc;

    fake_closed_addr(addr, sizeof(addr));
    rc = bkv_client_http_do(addr, &get_req, 1024, 2000, &r, err, sizeof(err));
    CU_ASSERT_EQUAL(rc, BKV_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot reach the router at "));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, addr));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "connection refused"));

    rc = bkv_client_http_do("no-such-host.invalid:443", &get_req, 1024, 2000, &r, err, sizeof(err));
    CU_ASSERT_EQUAL(rc, BKV_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot resolve"));
}

static void test_split_addresses(void)
{
    char host[BKV_CLIENT_HTTP_HOST_MAX], port[8];
    static const char *bad[] = {"localhost",  "localhost:", ":80",    "host:0",
                                "host:65536", "host:8x",    "a:b:80", "[::1]80",
                                "[::1]",      "ho st:80",   "[]:80",  "host:123456"};

    CU_ASSERT_EQUAL(bkv_client_http_split("127.0.0.1:8443", host, port), BKV_OK);
    CU_ASSERT_STRING_EQUAL(host, "127.0.0.1");
    CU_ASSERT_STRING_EQUAL(port, "8443");
    CU_ASSERT_EQUAL(bkv_client_http_split("[::1]:65535", host, port), BKV_OK);
    CU_ASSERT_STRING_EQUAL(host, "::1");
    CU_ASSERT_STRING_EQUAL(port, "65535");
    CU_ASSERT_EQUAL(bkv_client_http_split("router.example:1", host, port), BKV_OK);
    CU_ASSERT_STRING_EQUAL(host, "router.example");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CU_ASSERT_EQUAL(bkv_client_http_split(bad[i], host, port), BKV_ERR_INVALID);
}

static void test_refuses_header_injection(void)
{
    struct bkv_client_http_request req = {
        .method = "GET", .path = "/v1/keyconfig", .authorization = "Bearer x\r\nX-Evil: 1"};
    struct bkv_client_http_response r;
    char err[256];
    unsigned before = fake_router_count(server);

    CU_ASSERT_EQUAL(
        bkv_client_http_do(fake_router_addr(server), &req, 1024, 2000, &r, err, sizeof(err)),
        BKV_ERR_INVALID);
    req.authorization = NULL;
    req.path = "/v1/keyconfig HTTP/1.0\r\n";
    CU_ASSERT_EQUAL(
        bkv_client_http_do(fake_router_addr(server), &req, 1024, 2000, &r, err, sizeof(err)),
        BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(fake_router_count(server), before); /* nothing was sent */
    CU_ASSERT_EQUAL(
        bkv_client_http_do("not an address", &get_req, 1024, 2000, &r, err, sizeof(err)),
        BKV_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not host:port"));
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"POST sends line, headers and body", test_post_sends_request},
        {"GET sends no body", test_get_without_body},
        {"answer split into 1-byte pieces", test_split_into_bytes},
        {"Retry-After forms", test_retry_after_forms},
        {"chunked, to-EOF and interim answers", test_chunked_and_eof_bodies},
        {"body size limits", test_body_limits},
        {"oversized headers", test_oversized_headers},
        {"malformed answers", test_malformed},
        {"early close", test_early_close},
        {"timeout", test_timeout},
        {"connection refused, unknown host", test_connection_refused},
        {"host:port parsing", test_split_addresses},
        {"header injection refused", test_refuses_header_injection},
        CU_TEST_INFO_NULL,
    };

    return bkv_test_main("client_http", tests, setup, teardown);
}
