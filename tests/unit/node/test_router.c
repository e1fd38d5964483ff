/*
 * node/router: the per-account rate limiter, and the router in-process on
 * loopback between our HTTP client and fake vault nodes (our HTTP server),
 * all on one loop: authentication answers, routing, forwarding with a proof
 * the fake node verifies with bkv_router_proof_verify, following a 421 to the
 * named leader, skipping an unreachable node, retrying 503 until the
 * deadline, the status mapping, the rate limit, what the log may contain,
 * and a close with a request in flight.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "harness.h"
#include "node/http.h"
#include "node/router.h"
#include "node/token.h"
#include "proto/err.h"

#define DEADLINE_MS 10000
#define NOW         1700000000u

/* --- rate limiter ------------------------------------------------------------- */

static void test_ratelimit_bucket(void)
{
    struct bkv_ratelimit *rl;
    unsigned ra = 0;

    CU_ASSERT_EQUAL(bkv_ratelimit_new(0, 3, &rl), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_ratelimit_new(60, 0, &rl), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL_FATAL(bkv_ratelimit_new(60, 3, &rl), BKV_OK);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(bkv_ratelimit_take(rl, "alice", 1000, &ra), BKV_OK);
    CU_ASSERT_EQUAL(bkv_ratelimit_take(rl, "alice", 1000, &ra), BKV_ERR_LIMIT);
    CU_ASSERT_EQUAL(ra, 1);
    /* Another account has its own bucket. */
    CU_ASSERT_EQUAL(bkv_ratelimit_take(rl, "bob", 1000, &ra), BKV_OK);
    /* One token per second at 60/min: not yet at +999 ms, yes at +1000 ms, then no. */
    CU_ASSERT_EQUAL(bkv_ratelimit_take(rl, "alice", 1999, &ra), BKV_ERR_LIMIT);
    CU_ASSERT_EQUAL(bkv_ratelimit_take(rl, "alice", 2000, &ra), BKV_OK);
    CU_ASSERT_EQUAL(bkv_ratelimit_take(rl, "alice", 2000, &ra), BKV_ERR_LIMIT);
    /* Refused requests do not cost tokens: after 3 s, 3 more (the burst caps the refill). */
    CU_ASSERT_EQUAL(bkv_ratelimit_take(rl, "alice", 60000, &ra), BKV_OK);
    CU_ASSERT_EQUAL(bkv_ratelimit_take(rl, "alice", 60000, &ra), BKV_OK);
    CU_ASSERT_EQUAL(bkv_ratelimit_take(rl, "alice", 60000, &ra), BKV_OK);
    CU_ASSERT_EQUAL(bkv_ratelimit_take(rl, "alice", 60000, &ra), BKV_ERR_LIMIT);
    /* A clock that goes back does not refill. */
    CU_ASSERT_EQUAL(bkv_ratelimit_take(rl, "alice", 0, &ra), BKV_ERR_LIMIT);
    bkv_ratelimit_free(rl);

    /* 6 per minute: Retry-After is the 10 s until the next token. */
    CU_ASSERT_EQUAL_FATAL(bkv_ratelimit_new(6, 1, &rl), BKV_OK);
    CU_ASSERT_EQUAL(bkv_ratelimit_take(rl, "carol", 0, &ra), BKV_OK);
    CU_ASSERT_EQUAL(bkv_ratelimit_take(rl, "carol", 0, &ra), BKV_ERR_LIMIT);
    CU_ASSERT_EQUAL(ra, 10);
    CU_ASSERT_EQUAL(bkv_ratelimit_take(rl, "carol", 5000, &ra), BKV_ERR_LIMIT);
    CU_ASSERT_EQUAL(ra, 5);
    CU_ASSERT_EQUAL(bkv_ratelimit_take(rl, "carol", 10000, &ra), BKV_OK);
    bkv_ratelimit_free(rl);
}

static void test_ratelimit_memory(void)
{
    struct bkv_ratelimit *rl;
    char name[32];
    unsigned ra;
    int refused = 0;

    CU_ASSERT_EQUAL_FATAL(bkv_ratelimit_new(60, 5, &rl), BKV_OK);
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "old-%d", i);
        refused += bkv_ratelimit_take(rl, name, 0, &ra) != BKV_OK;
    }
    CU_ASSERT_EQUAL(refused, 0);
    CU_ASSERT_EQUAL(bkv_ratelimit_size(rl), 5000);
    /* Ten minutes later every old bucket is full again: new accounts push them out. */
    for (int i = 0; i < 3500; i++) {
        snprintf(name, sizeof(name), "new-%d", i);
        refused += bkv_ratelimit_take(rl, name, 600000, &ra) != BKV_OK;
    }
    CU_ASSERT_EQUAL(refused, 0);
    CU_ASSERT(bkv_ratelimit_size(rl) <= 3500);
    /* Buckets still draining are kept: new-0 is remembered with one token used. */
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(bkv_ratelimit_take(rl, "new-0", 600000, &ra), BKV_OK);
    CU_ASSERT_EQUAL(bkv_ratelimit_take(rl, "new-0", 600000, &ra), BKV_ERR_LIMIT);
    bkv_ratelimit_free(rl);
}

/* --- fake nodes ----------------------------------------------------------------- */

enum mode { LEADER, FOLLOWER, NOT_READY, STATUS, NEVER };

struct node {
    struct bkv_http_server *s;
    char addr[64];
    enum mode mode;
    const char *leader; /* FOLLOWER: the X-BKV-Leader it names */
    int not_ready;      /* NOT_READY: answer 503 this many times, then lead */
    int status;         /* STATUS: this status with the text "node says <status>" */
    uint8_t proof_key[32];
    int count, proof_ok;
    char account[300];
    struct bkv_http_exchange *held[4];
    int n_held;
};

static void node_handler(struct bkv_http_exchange *ex, const struct bkv_http_request *req,
                         void *data)
{
    struct node *n = data;
    const struct bkv_http_header *h = req->headers;
    size_t nh = req->n_headers;
    const char *account = bkv_http_header_get(h, nh, "x-bkv-account");
    char body[512], text[64];
    int len;

    n->count++;
    snprintf(n->account, sizeof(n->account), "%s", account != NULL ? account : "");
    if (bkv_router_proof_verify(n->proof_key, req->method, req->path, account,
                                bkv_http_header_get(h, nh, "x-bkv-router-time"),
                                bkv_http_header_get(h, nh, "x-bkv-router-proof"), req->body,
                                req->body_len, NOW) != BKV_OK) {
        bkv_http_respond_text(ex, 401, NULL, 0, "bad router proof");
        return;
    }
    n->proof_ok++;
    if (n->mode == NOT_READY && n->not_ready > 0) {
        n->not_ready--;
        bkv_http_respond_text(ex, 503, NULL, 0, "not ready");
        return;
    }
    switch (n->mode) {
    case FOLLOWER: {
        struct bkv_http_header l[2] = {{"X-BKV-Leader-Id", "9"}, {"X-BKV-Leader", n->leader}};
        bkv_http_respond_text(ex, 421, l, n->leader != NULL ? 2 : 1, "not the leader");
        return;
    }
    case STATUS:
        snprintf(text, sizeof(text), "node says %d", n->status);
        bkv_http_respond_text(ex, n->status, NULL, 0, text);
        return;
    case NEVER:
        if (n->n_held < 4) {
            n->held[n->n_held++] = ex;
            return;
        }
        break;
    default:
        break;
    }
    len = snprintf(body, sizeof(body), "resp:");
    memcpy(body + len, req->body, req->body_len < 400 ? req->body_len : 400);
    bkv_http_respond(ex, 200, NULL, 0, body,
                     (size_t)len + (req->body_len < 400 ? req->body_len : 400));
}

/* --- the fixture: nodes, router, client on one loop ---------------------------- */

struct fx {
    uv_loop_t loop;
    struct node nodes[3];
    const char *addrs[3];
    struct bkv_router_keys keys;
    struct bkv_router *router;
    struct bkv_http_client *client;
    char router_addr[64];
    FILE *log;
    int router_closed;
};

static uint64_t fixed_clock(void *arg)
{
    (void)arg;
    return NOW;
}

static void on_guard(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

static int run_until(uv_loop_t *loop, const int *flag, int want)
{
    uv_timer_t guard;
    int expired = 0;

    uv_timer_init(loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, on_guard, DEADLINE_MS, 0);
    while (*flag < want && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *flag >= want;
}

/* A loopback address where nothing listens. */
static void dead_address(char *out, size_t cap)
{
    struct sockaddr_in sa = {0};
    socklen_t sl = sizeof(sa);
    int s = socket(AF_INET, SOCK_STREAM, 0);

    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(s, (struct sockaddr *)&sa, sizeof(sa));
    getsockname(s, (struct sockaddr *)&sa, &sl);
    snprintf(out, cap, "127.0.0.1:%d", ntohs(sa.sin_port));
    close(s);
}

/* n_live nodes listen; with dead_first, addrs[0] is an address nobody listens on. */
static void fx_init(struct fx *f, int n_live, int dead_first, const struct bkv_router_config *extra)
{
    struct bkv_router_config cfg = {0};
    struct bkv_http_server_config sc = {.address = "127.0.0.1:0"};
    char err[256];
    static const uint8_t kc[] = "BKVK-test-keyconfig";

    memset(f, 0, sizeof(*f));
    CU_ASSERT_EQUAL_FATAL(uv_loop_init(&f->loop), 0);
    CU_ASSERT_EQUAL_FATAL(bkv_router_keys_generate(&f->keys), BKV_OK);
    for (int i = 0; i < 3; i++) {
        struct node *n = &f->nodes[i];
        memcpy(n->proof_key, f->keys.proof_key, 32);
        if (i < n_live + dead_first && !(dead_first && i == 0)) {
            CU_ASSERT_EQUAL_FATAL(
                bkv_http_server_start(&f->loop, &sc, node_handler, n, &n->s, err, sizeof(err)),
                BKV_OK);
            snprintf(n->addr, sizeof(n->addr), "127.0.0.1:%d", bkv_http_server_port(n->s));
        } else {
            dead_address(n->addr, sizeof(n->addr));
        }
        f->addrs[i] = n->addr;
    }
    if (extra != NULL)
        cfg = *extra;
    cfg.listen = "127.0.0.1:0";
    cfg.nodes = f->addrs;
    cfg.n_nodes = 3;
    cfg.keys = &f->keys;
    cfg.keyconfig = kc;
    cfg.keyconfig_len = sizeof(kc) - 1;
    if (cfg.deadline_ms == 0)
        cfg.deadline_ms = 1000;
    cfg.log_level = BKV_ROUTER_LOG_DEBUG;
    f->log = tmpfile();
    cfg.log = f->log;
    cfg.clock = fixed_clock;
    CU_ASSERT_EQUAL_FATAL(bkv_router_start(&f->loop, &cfg, &f->router, err, sizeof(err)), BKV_OK);
    snprintf(f->router_addr, sizeof(f->router_addr), "127.0.0.1:%d", bkv_router_port(f->router));
    CU_ASSERT_EQUAL_FATAL(bkv_http_client_new(&f->loop, NULL, &f->client), BKV_OK);
}

static void on_flag(void *data)
{
    (*(int *)data)++;
}

static void fx_done(struct fx *f)
{
    int closed = 0, want = 1;

    bkv_http_client_close(f->client, on_flag, &closed);
    if (f->router != NULL) {
        bkv_router_close(f->router, on_flag, &closed);
        want++;
    }
    for (int i = 0; i < 3; i++)
        if (f->nodes[i].s != NULL) {
            bkv_http_server_close(f->nodes[i].s, on_flag, &closed);
            want++;
        }
    CU_ASSERT(run_until(&f->loop, &closed, want));
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < f->nodes[i].n_held; j++)
            bkv_http_respond_text(f->nodes[i].held[j], 200, NULL, 0, "late");
    uv_run(&f->loop, UV_RUN_DEFAULT);
    CU_ASSERT_EQUAL(uv_loop_close(&f->loop), 0);
    fclose(f->log);
}

struct result {
    int done, err, status;
    char body[512];
    size_t body_len;
    char ctype[64], retry_after[16], allow[16];
    uint64_t ms;
};

static void on_result(void *data, int err, const struct bkv_http_response *resp)
{
    struct result *r = data;
    const char *v;

    r->err = err;
    if (resp != NULL) {
        r->status = resp->status;
        r->body_len = resp->body_len < sizeof(r->body) - 1 ? resp->body_len : sizeof(r->body) - 1;
        if (r->body_len > 0)
            memcpy(r->body, resp->body, r->body_len);
        r->body[r->body_len] = '\0';
        v = bkv_http_header_get(resp->headers, resp->n_headers, "content-type");
        snprintf(r->ctype, sizeof(r->ctype), "%s", v != NULL ? v : "");
        v = bkv_http_header_get(resp->headers, resp->n_headers, "retry-after");
        snprintf(r->retry_after, sizeof(r->retry_after), "%s", v != NULL ? v : "");
        v = bkv_http_header_get(resp->headers, resp->n_headers, "allow");
        snprintf(r->allow, sizeof(r->allow), "%s", v != NULL ? v : "");
    }
    r->done = 1;
}

/* One request to the router; auth may be NULL (no Authorization header). */
static struct result call(struct fx *f, const char *method, const char *path, const char *auth,
                          const char *body)
{
    struct result r;
    struct bkv_http_header h = {"Authorization", auth};
    uint64_t t0 = uv_hrtime();

    memset(&r, 0, sizeof(r));
    CU_ASSERT_EQUAL_FATAL(bkv_http_client_request(f->client, f->router_addr, method, path, &h,
                                                  auth != NULL, body, body ? strlen(body) : 0, 8000,
                                                  on_result, &r),
                          BKV_OK);
    CU_ASSERT(run_until(&f->loop, &r.done, 1));
    r.ms = (uv_hrtime() - t0) / 1000000;
    return r;
}

static void bearer(struct fx *f, const char *account, uint64_t expiry, char *out, size_t cap)
{
    char tok[BKV_TOKEN_MAX_LEN + 1];

    CU_ASSERT_EQUAL_FATAL(bkv_token_issue(f->keys.token_key, account, expiry, tok, sizeof(tok)),
                          BKV_OK);
    snprintf(out, cap, "Bearer %s", tok);
}

static int node_total(struct fx *f)
{
    return f->nodes[0].count + f->nodes[1].count + f->nodes[2].count;
}

static void test_client_answers(void)
{
    struct fx f;
    struct result r;
    char auth[600], other[600], expired[600], bad[600];
    uint8_t other_key[32] = {1};

    fx_init(&f, 3, 0, NULL);
    bearer(&f, "alice", NOW + 3600, auth, sizeof(auth));
    bearer(&f, "alice", NOW, expired, sizeof(expired));
    {
        char tok[BKV_TOKEN_MAX_LEN + 1];
        bkv_token_issue(other_key, "alice", NOW + 3600, tok, sizeof(tok));
        snprintf(other, sizeof(other), "Bearer %s", tok);
    }
    snprintf(bad, sizeof(bad), "%s", auth);
    /* The second-to-last character: a full 6 bits of the tag (the last one has 2 spare). */
    bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';

    r = call(&f, "POST", "/v1/vault", NULL, "env");
    CU_ASSERT_EQUAL(r.status, 401);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "missing token"));
    r = call(&f, "POST", "/v1/vault", "Basic YWxpY2U6eA==", "env");
    CU_ASSERT_EQUAL(r.status, 401);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "Bearer"));
    r = call(&f, "POST", "/v1/vault", "Bearer not-a-token", "env");
    CU_ASSERT_EQUAL(r.status, 401);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "malformed token"));
    r = call(&f, "POST", "/v1/vault", other, "env");
    CU_ASSERT_EQUAL(r.status, 401);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "bad token"));
    r = call(&f, "POST", "/v1/vault", bad, "env");
    CU_ASSERT_EQUAL(r.status, 401);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "bad token"));
    r = call(&f, "POST", "/v1/vault", expired, "env");
    CU_ASSERT_EQUAL(r.status, 401);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "expired token"));
    r = call(&f, "GET", "/v1/vault", auth, NULL);
    CU_ASSERT_EQUAL(r.status, 405);
    CU_ASSERT_STRING_EQUAL(r.allow, "POST");
    r = call(&f, "POST", "/v1/other", auth, "env");
    CU_ASSERT_EQUAL(r.status, 404);
    r = call(&f, "POST", "/v1/vault", auth, NULL);
    CU_ASSERT_EQUAL(r.status, 400);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "empty body"));
    r = call(&f, "GET", "/v1/keyconfig", NULL, NULL);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.body, "BKVK-test-keyconfig");
    CU_ASSERT_STRING_EQUAL(r.ctype, "application/bkv-keyconfig");
    r = call(&f, "POST", "/v1/keyconfig", NULL, "x");
    CU_ASSERT_EQUAL(r.status, 405);
    r = call(&f, "GET", "/livez", NULL, NULL);
    CU_ASSERT_EQUAL(r.status, 200);
    /* Nothing of the above reached a node. */
    CU_ASSERT_EQUAL(node_total(&f), 0);
    /* The first valid request does. */
    r = call(&f, "POST", "/v1/vault", auth, "envelope-bytes");
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_EQUAL(node_total(&f), 1);
    fx_done(&f);
}

static void test_forward_and_follow(void)
{
    struct fx f;
    struct result r;
    char auth[600], line[1024], *tok;
    int saw_ok = 0, leaked = 0, warned = 0;

    fx_init(&f, 3, 0, NULL);
    f.nodes[0].mode = FOLLOWER;
    f.nodes[0].leader = f.nodes[2].addr;
    f.nodes[1].mode = FOLLOWER;
    f.nodes[1].leader = f.nodes[2].addr;
    bearer(&f, "alice@example.org", NOW + 3600, auth, sizeof(auth));
    r = call(&f, "POST", "/v1/vault", auth, "SECRET-ENVELOPE-1");
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.body, "resp:SECRET-ENVELOPE-1");
    CU_ASSERT_STRING_EQUAL(r.ctype, "message/bkv-response");
    CU_ASSERT_EQUAL(f.nodes[0].count, 1);
    CU_ASSERT_EQUAL(f.nodes[2].count, 1);
    CU_ASSERT_EQUAL(f.nodes[2].proof_ok, 1);
    CU_ASSERT_STRING_EQUAL(f.nodes[2].account, "alice@example.org");
    /* The router remembers the leader: the next request goes straight there. */
    r = call(&f, "POST", "/v1/vault", auth, "SECRET-ENVELOPE-2");
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_EQUAL(f.nodes[0].count, 1);
    CU_ASSERT_EQUAL(f.nodes[2].count, 2);
    /* Leadership moves to node 1: node 2 now names it. */
    f.nodes[2].mode = FOLLOWER;
    f.nodes[2].leader = f.nodes[1].addr;
    f.nodes[1].mode = LEADER;
    r = call(&f, "POST", "/v1/vault", auth, "SECRET-ENVELOPE-3");
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_EQUAL(f.nodes[1].count, 1);
    /* A leader the router does not know (not among its nodes): try the others. */
    f.nodes[1].mode = FOLLOWER;
    f.nodes[1].leader = "10.9.9.9:1";
    f.nodes[2].mode = FOLLOWER;
    f.nodes[2].leader = "10.9.9.9:1";
    f.nodes[0].mode = LEADER;
    r = call(&f, "POST", "/v1/vault", auth, "SECRET-ENVELOPE-4");
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_EQUAL(f.nodes[0].proof_ok, 2);
    CU_ASSERT_EQUAL(f.nodes[2].count, 4); /* asked in turn, after node 1 */
    /* Node 0 hands over again to the unknown address: the others are asked in turn. */
    f.nodes[0].mode = FOLLOWER;
    f.nodes[0].leader = "10.9.9.9:1";
    f.nodes[2].mode = LEADER;
    r = call(&f, "POST", "/v1/vault", auth, "SECRET-ENVELOPE-5");
    CU_ASSERT_EQUAL(r.status, 200);
    /* The log: one line per request with the account and status; no token, no body byte. */
    tok = strchr(auth, ' ') + 1;
    fflush(f.log);
    rewind(f.log);
    while (fgets(line, sizeof(line), f.log) != NULL) {
        if (strstr(line, "account=alice@example.org status=200") != NULL)
            saw_ok++;
        if (strstr(line, "names a leader whose gateway address is not among --node") != NULL)
            warned++;
        if (strstr(line, "SECRET") != NULL || strstr(line, tok) != NULL ||
            strstr(line, tok + strlen(tok) - 20) != NULL || strstr(line, "ENVELOPE") != NULL)
            leaked++;
    }
    CU_ASSERT_EQUAL(saw_ok, 5);
    CU_ASSERT_EQUAL(warned, 1); /* said once, not per request */
    CU_ASSERT_EQUAL(leaked, 0);
    fx_done(&f);
}

static void test_unreachable_and_retry(void)
{
    struct fx f;
    struct result r;
    char auth[600];

    /* Node 0 is down: the router moves on to node 1. */
    fx_init(&f, 2, 1, NULL);
    bearer(&f, "bob", NOW + 3600, auth, sizeof(auth));
    r = call(&f, "POST", "/v1/vault", auth, "e1");
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_EQUAL(f.nodes[1].count, 1);
    /* The leader is not ready twice (503): retried on it after backoffs. */
    f.nodes[1].mode = NOT_READY;
    f.nodes[1].not_ready = 2;
    r = call(&f, "POST", "/v1/vault", auth, "e2");
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_EQUAL(f.nodes[1].count, 4);
    CU_ASSERT_EQUAL(f.nodes[2].count, 0);
    /* Never ready: 503 with Retry-After once the deadline (1 s) has passed. */
    f.nodes[1].not_ready = 1000;
    r = call(&f, "POST", "/v1/vault", auth, "e3");
    CU_ASSERT_EQUAL(r.status, 503);
    CU_ASSERT_STRING_EQUAL(r.retry_after, "1");
    CU_ASSERT(r.ms >= 980 && r.ms < 5000);
    fx_done(&f);

    /* No node at all: 503 + Retry-After after the deadline, not before. */
    fx_init(&f, 0, 1, NULL);
    bearer(&f, "bob", NOW + 3600, auth, sizeof(auth));
    r = call(&f, "POST", "/v1/vault", auth, "e4");
    CU_ASSERT_EQUAL(r.status, 503);
    CU_ASSERT_STRING_EQUAL(r.retry_after, "1");
    CU_ASSERT(r.ms >= 980 && r.ms < 5000);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "no vault leader"));
    fx_done(&f);
}

static void test_status_mapping(void)
{
    static const struct {
        int node, client;
        const char *text;
    } map[] = {{400, 400, "node says 400"}, {403, 403, "node says 403"},
               {413, 413, "node says 413"}, {507, 503, "cannot store"},
               {500, 502, "bad gateway"},   {404, 502, "bad gateway"}};
    struct fx f;
    struct result r;
    char auth[600];

    fx_init(&f, 3, 0, NULL);
    bearer(&f, "carol", NOW + 3600, auth, sizeof(auth));
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        f.nodes[0].mode = STATUS;
        f.nodes[0].status = map[i].node;
        r = call(&f, "POST", "/v1/vault", auth, "env");
        CU_ASSERT_EQUAL(r.status, map[i].client);
        CU_ASSERT_PTR_NOT_NULL(strstr(r.body, map[i].text));
        if (map[i].node == 507)
            CU_ASSERT_STRING_EQUAL(r.retry_after, "1");
    }
    /* A node with another proof key refuses the router: 502, and it is not retried. */
    f.nodes[0].mode = LEADER;
    f.nodes[0].proof_key[0] ^= 1;
    f.nodes[0].count = 0;
    r = call(&f, "POST", "/v1/vault", auth, "env");
    CU_ASSERT_EQUAL(r.status, 502);
    CU_ASSERT_EQUAL(f.nodes[0].count, 1);
    CU_ASSERT_EQUAL(f.nodes[0].proof_ok, 6);
    fx_done(&f);
}

static void test_rate_limit(void)
{
    /* One request a minute after the burst: no refill can happen during the test. */
    struct bkv_router_config extra = {.rate_per_min = 1, .burst = 3};
    struct fx f;
    struct result r;
    char auth[600], auth2[600];

    fx_init(&f, 3, 0, &extra);
    bearer(&f, "dave", NOW + 3600, auth, sizeof(auth));
    bearer(&f, "erin", NOW + 3600, auth2, sizeof(auth2));
    for (int i = 0; i < 3; i++) {
        r = call(&f, "POST", "/v1/vault", auth, "env");
        CU_ASSERT_EQUAL(r.status, 200);
    }
    r = call(&f, "POST", "/v1/vault", auth, "env");
    CU_ASSERT_EQUAL(r.status, 429);
    CU_ASSERT(atoi(r.retry_after) >= 55 && atoi(r.retry_after) <= 60);
    CU_ASSERT_EQUAL(node_total(&f), 3);
    r = call(&f, "POST", "/v1/vault", auth2, "env");
    CU_ASSERT_EQUAL(r.status, 200);
    fx_done(&f);
}

static void test_close_in_flight(void)
{
    struct fx f;
    struct result r;
    char auth[600];
    struct bkv_http_header h;
    int closed = 0;

    fx_init(&f, 3, 0, NULL);
    f.nodes[0].mode = NEVER;
    bearer(&f, "frank", NOW + 3600, auth, sizeof(auth));
    h = (struct bkv_http_header){"Authorization", auth};
    memset(&r, 0, sizeof(r));
    CU_ASSERT_EQUAL(bkv_http_client_request(f.client, f.router_addr, "POST", "/v1/vault", &h, 1,
                                            "env", 3, 8000, on_result, &r),
                    BKV_OK);
    CU_ASSERT(run_until(&f.loop, &f.nodes[0].count, 1));
    bkv_router_close(f.router, on_flag, &closed);
    f.router = NULL;
    CU_ASSERT(run_until(&f.loop, &closed, 1));
    CU_ASSERT(run_until(&f.loop, &r.done, 1));
    CU_ASSERT(r.err != 0 || r.status == 503);
    fx_done(&f);
}

static CU_TestInfo tests[] = {
    {"rate limiter: burst, refill, Retry-After, accounts apart", test_ratelimit_bucket},
    {"rate limiter: full buckets are forgotten", test_ratelimit_memory},
    {"router: 401 texts, 404, 405, 400, key config, livez", test_client_answers},
    {"router: forward with proof, follow 421, log hygiene", test_forward_and_follow},
    {"router: unreachable node, 503 retries, deadline", test_unreachable_and_retry},
    {"router: node status mapping and a refused proof", test_status_mapping},
    {"router: per-account rate limit 429", test_rate_limit},
    {"router: close with a request in flight", test_close_in_flight},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    return bkv_test_main("node_router", tests, NULL, NULL);
}
