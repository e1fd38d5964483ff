/*
 * bkv-router's request handling and forwarding (see router.h).
 *
 * Normal path: route by method and path, check the bearer token, the body
 * and the account's rate, then forward: one attempt goes to the believed
 * leader with a fresh proof; the node's 200 goes back unchanged and makes
 * that node the believed leader.
 * Failure modes: a 421 moves to the named leader if it is a configured node,
 * else to the next node (at once if a leader was named, after a backoff if
 * none was: an election); a connection failure or a timeout moves to the
 * next node, with a backoff once every node failed in a row; a 503 retries
 * the same node after a backoff. When the deadline has
 * passed the client gets 503 with Retry-After. A node's 400/403/413 passes
 * through with its text, 507 becomes 503, anything else 502. A client that
 * went away meanwhile costs nothing more than the forward already running.
 */
#include "router.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "node/http.h"
#include "proto/err.h"

#define VAULT_PATH     "/v1/vault"
#define KEYCONFIG_PATH "/v1/keyconfig"
#define LIVEZ_PATH     "/livez"
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000
#define RETRY_AFTER_S  "1"
#define NODE_MAX_BODY  (16 * 1024)
#define CONNECT_MS     1000
#define ADDR_MAX       300

/* --- rate limiter ------------------------------------------------------------ */

struct bucket {
    struct bucket *next;
    uint64_t last_ms;
    double tokens;
    char account[];
};

struct bkv_ratelimit {
    double per_ms, burst;
    struct bucket **slots;
    size_t n_slots, n, sweep_at;
    uint64_t seed;
};

int bkv_ratelimit_new(unsigned per_minute, unsigned burst, struct bkv_ratelimit **out)
{
    struct bkv_ratelimit *rl;

    *out = NULL;
    if (per_minute == 0 || burst == 0)
        return BKV_ERR_INVALID;
    rl = calloc(1, sizeof(*rl));
    if (rl == NULL)
        return BKV_ERR_NOMEM;
    rl->n_slots = 1024;
    rl->slots = calloc(rl->n_slots, sizeof(*rl->slots));
    if (rl->slots == NULL) {
        free(rl);
        return BKV_ERR_NOMEM;
    }
    rl->per_ms = per_minute / 60000.0;
    rl->burst = burst;
    rl->sweep_at = 1024;
    rl->seed = uv_hrtime() | 1;
    *out = rl;
    return BKV_OK;
}

static size_t slot_of(const struct bkv_ratelimit *rl, const char *account)
{
    uint64_t h = 1469598103934665603ull ^ rl->seed;

    for (const unsigned char *p = (const unsigned char *)account; *p != '\0'; p++)
        h = (h ^ *p) * 1099511628211ull;
    return (size_t)(h % rl->n_slots);
}

static double refill(const struct bkv_ratelimit *rl, const struct bucket *b, uint64_t now_ms)
{
    double t = b->tokens + (now_ms > b->last_ms ? (double)(now_ms - b->last_ms) * rl->per_ms : 0);

    return t > rl->burst ? rl->burst : t;
}

/* Forget the accounts whose bucket is full again: they are as good as new. */
static void sweep(struct bkv_ratelimit *rl, uint64_t now_ms)
{
    for (size_t i = 0; i < rl->n_slots; i++) {
        struct bucket **pp = &rl->slots[i];
        while (*pp != NULL) {
            struct bucket *b = *pp;
            if (refill(rl, b, now_ms) >= rl->burst) {
                *pp = b->next;
                free(b);
                rl->n--;
            } else {
                pp = &b->next;
            }
        }
    }
    rl->sweep_at = rl->n * 2 > 1024 ? rl->n * 2 : 1024;
}

/* Grow the table when it is twice as full as it has slots (after a sweep kept them all). */
static void grow(struct bkv_ratelimit *rl)
{
    size_t n_slots = rl->n_slots * 4;
    struct bucket **slots = calloc(n_slots, sizeof(*slots)), **old = rl->slots;
    size_t old_n = rl->n_slots;

    if (slots == NULL)
        return;
    rl->slots = slots;
    rl->n_slots = n_slots;
    for (size_t i = 0; i < old_n; i++)
        while (old[i] != NULL) {
            struct bucket *b = old[i];
            size_t s = slot_of(rl, b->account);
            old[i] = b->next;
            b->next = slots[s];
            slots[s] = b;
        }
    free(old);
}

int bkv_ratelimit_take(struct bkv_ratelimit *rl, const char *account, uint64_t now_ms,
                       unsigned *retry_after_s)
{
    size_t s = slot_of(rl, account), len;
    struct bucket *b;
    double wait_ms;

    *retry_after_s = 0;
    for (b = rl->slots[s]; b != NULL; b = b->next)
        if (strcmp(b->account, account) == 0)
            break;
    if (b == NULL) {
        if (rl->n >= rl->sweep_at) {
            sweep(rl, now_ms);
            if (rl->n > 2 * rl->n_slots)
                grow(rl);
            s = slot_of(rl, account);
        }
        len = strlen(account);
        b = malloc(sizeof(*b) + len + 1);
        if (b == NULL)
            return BKV_ERR_NOMEM;
        memcpy(b->account, account, len + 1);
        b->tokens = rl->burst;
        b->last_ms = now_ms;
        b->next = rl->slots[s];
        rl->slots[s] = b;
        rl->n++;
    }
    b->tokens = refill(rl, b, now_ms);
    if (now_ms > b->last_ms)
        b->last_ms = now_ms;
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return BKV_OK;
    }
    wait_ms = (1.0 - b->tokens) / rl->per_ms;
    *retry_after_s = (unsigned)((wait_ms + 999.0) / 1000.0);
    if (*retry_after_s == 0)
        *retry_after_s = 1;
    return BKV_ERR_LIMIT;
}

size_t bkv_ratelimit_size(const struct bkv_ratelimit *rl)
{
    return rl->n;
}

void bkv_ratelimit_free(struct bkv_ratelimit *rl)
{
    if (rl == NULL)
        return;
    for (size_t i = 0; i < rl->n_slots; i++)
        while (rl->slots[i] != NULL) {
            struct bucket *b = rl->slots[i];
            rl->slots[i] = b->next;
            free(b);
        }
    free(rl->slots);
    free(rl);
}

/* --- the router ---------------------------------------------------------------- */

struct fwd;

struct bkv_router {
    uv_loop_t *loop;
    struct bkv_http_server *server;
    struct bkv_http_client *client;
    struct bkv_ratelimit *rl;
    struct bkv_router_keys keys;
    char nodes[BKV_ROUTER_MAX_NODES][ADDR_MAX];
    size_t n_nodes;
    int leader; /* index of the believed leader, -1 if unknown */
    int next_guess;
    uint8_t *keyconfig;
    size_t keyconfig_len;
    size_t max_body;
    unsigned deadline_ms;
    enum bkv_router_log_level level;
    FILE *log;
    uint64_t (*clock)(void *arg);
    void *clock_arg;
    struct fwd *fwds;
    int closing, pending_closes;
    int warned_leader; /* the unknown-leader warning was logged once */
    void (*close_cb)(void *data);
    void *close_data;
};

/* One client request being forwarded. */
struct fwd {
    struct bkv_router *r;
    struct fwd *prev, *next;
    struct bkv_http_exchange *ex;
    const struct bkv_http_request *req; /* valid until bkv_http_respond(ex) */
    char account[BKV_MSG_ACCOUNT_MAX + 1];
    char peer[64];
    uint64_t start_ms, deadline;
    uv_timer_t timer;
    int target, attempts, failed_in_row, hops, backoff_ms, in_flight;
};

static void logf_(struct bkv_router *r, enum bkv_router_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void logf_(struct bkv_router *r, enum bkv_router_log_level level, const char *fmt, ...)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    char stamp[32];
    struct tm tm;
    time_t now = time(NULL);
    va_list ap;

    if (level > r->level)
        return;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(r->log, "%s bkv-router %s: ", stamp, names[level]);
    va_start(ap, fmt);
    vfprintf(r->log, fmt, ap);
    va_end(ap);
    fputc('\n', r->log);
    fflush(r->log);
}

int bkv_router_log_level_parse(const char *name)
{
    static const char *names[] = {"error", "warn", "info", "debug"};

    for (int i = 0; i < 4; i++)
        if (name != NULL && strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

static uint64_t unix_now(struct bkv_router *r)
{
    return r->clock != NULL ? r->clock(r->clock_arg) : (uint64_t)time(NULL);
}

/* The request's path as it may appear in a log line: a known one, or a placeholder. */
static const char *log_path(const char *path)
{
    if (strcmp(path, VAULT_PATH) == 0)
        return VAULT_PATH;
    if (strcmp(path, KEYCONFIG_PATH) == 0)
        return KEYCONFIG_PATH;
    if (strcmp(path, LIVEZ_PATH) == 0)
        return LIVEZ_PATH;
    return "(other)";
}

static void answer(struct bkv_http_exchange *ex, const struct bkv_http_request *req,
                   struct bkv_router *r, const char *account, int status,
                   const struct bkv_http_header *hdrs, size_t n, const char *text)
{
    logf_(r, BKV_ROUTER_LOG_INFO, "peer=%s method=%s path=%s account=%s status=%d", req->peer,
          req->method, log_path(req->path), account != NULL ? account : "-", status);
    bkv_http_respond_text(ex, status, hdrs, n, text);
}

static void router_maybe_done(struct bkv_router *r);

static void fwd_timer_closed(uv_handle_t *h)
{
    struct fwd *f = h->data;
    struct bkv_router *r = f->r;

    free(f);
    r->pending_closes--;
    router_maybe_done(r);
}

/* The single exit of a forward: log, answer, release. */
static void fwd_finish(struct fwd *f, int status, const struct bkv_http_header *hdrs, size_t n,
                       const void *body, size_t len, int text)
{
    struct bkv_router *r = f->r;
    const char *node = f->attempts > 0 ? r->nodes[f->target] : "-";

    logf_(r, BKV_ROUTER_LOG_INFO,
          "peer=%s method=POST path=" VAULT_PATH " account=%s status=%d node=%s attempts=%d "
          "ms=%" PRIu64,
          f->peer, f->account, status, node, f->attempts, uv_now(r->loop) - f->start_ms);
    if (text)
        bkv_http_respond_text(f->ex, status, hdrs, n, body);
    else
        bkv_http_respond(f->ex, status, hdrs, n, body, len);
    f->ex = NULL;
    f->req = NULL;
    if (f->prev != NULL)
        f->prev->next = f->next;
    else
        r->fwds = f->next;
    if (f->next != NULL)
        f->next->prev = f->prev;
    uv_timer_stop(&f->timer);
    r->pending_closes++;
    uv_close((uv_handle_t *)&f->timer, fwd_timer_closed);
}

static void fwd_unavailable(struct fwd *f, const char *why)
{
    static const struct bkv_http_header ra = {"Retry-After", RETRY_AFTER_S};

    fwd_finish(f, 503, &ra, 1, why, 0, 1);
}

static void fwd_attempt(struct fwd *f);

static void on_backoff(uv_timer_t *t)
{
    fwd_attempt(t->data);
}

/* Wait before the next attempt, or give up if the deadline would pass. */
static void fwd_backoff(struct fwd *f)
{
    uint64_t now = uv_now(f->r->loop), wait;

    if (now >= f->deadline) {
        fwd_unavailable(f, "service unavailable: no vault leader answered in time; retry later");
        return;
    }
    wait = (uint64_t)f->backoff_ms + (uv_hrtime() % (uint64_t)(f->backoff_ms / 4 + 1));
    if (wait > f->deadline - now)
        wait = f->deadline - now;
    f->failed_in_row = 0; /* after the wait, a new round over the nodes */
    f->backoff_ms = f->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : f->backoff_ms * 2;
    uv_timer_start(&f->timer, on_backoff, wait, 0);
}

/*
 * The node at f->target cannot serve (unreachable, or not the leader and the
 * one it names is unknown here): try the next now, backing off after a full
 * round of such nodes.
 */
static void fwd_next_node(struct fwd *f)
{
    struct bkv_router *r = f->r;

    if (r->leader == f->target)
        r->leader = -1;
    f->target = (f->target + 1) % (int)r->n_nodes;
    r->next_guess = f->target;
    if (++f->failed_in_row >= (int)r->n_nodes)
        fwd_backoff(f);
    else
        fwd_attempt(f);
}

static int node_index(struct bkv_router *r, const char *address)
{
    for (size_t i = 0; address != NULL && i < r->n_nodes; i++)
        if (strcmp(r->nodes[i], address) == 0)
            return (int)i;
    return -1;
}

/* The node's text for the client: printable ASCII only, one line, bounded. */
static void node_text(const struct bkv_http_response *resp, int status, char *out, size_t cap)
{
    size_t n = 0;

    for (size_t i = 0; i < resp->body_len && n + 1 < cap && n < 200; i++) {
        uint8_t c = resp->body[i];
        if (c == '\n' || c == '\r')
            break;
        out[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[n] = '\0';
    if (n == 0)
        snprintf(out, cap, "the vault refused the request (%d)", status);
}

static void on_node_response(void *data, int err, const struct bkv_http_response *resp)
{
    static const struct bkv_http_header ok = {"Content-Type", "message/bkv-response"};
    struct fwd *f = data;
    struct bkv_router *r = f->r;
    const char *leader;
    char text[256];
    int idx;

    f->in_flight = 0;
    if (err == BKV_ERR_SHUTDOWN || r->closing) {
        fwd_unavailable(f, "service unavailable: the router is shutting down; retry");
        return;
    }
    if (err != 0) {
        logf_(r, BKV_ROUTER_LOG_DEBUG, "account=%s node=%s attempt=%d failed: %s", f->account,
              r->nodes[f->target], f->attempts, bkv_strerror(err));
        if (uv_now(r->loop) >= f->deadline)
            fwd_unavailable(f,
                            "service unavailable: no vault leader answered in time; retry later");
        else
            fwd_next_node(f);
        return;
    }
    logf_(r, BKV_ROUTER_LOG_DEBUG, "account=%s node=%s attempt=%d status=%d", f->account,
          r->nodes[f->target], f->attempts, resp->status);
    switch (resp->status) {
    case 200:
        r->leader = f->target;
        fwd_finish(f, 200, &ok, 1, resp->body, resp->body_len, 0);
        return;
    case 421:
        leader = bkv_http_header_get(resp->headers, resp->n_headers, "x-bkv-leader");
        idx = node_index(r, leader);
        if (idx >= 0 && idx != f->target && ++f->hops <= (int)r->n_nodes) {
            r->leader = f->target = idx;
            fwd_attempt(f);
            return;
        }
        if (leader != NULL && idx < 0) {
            /* Named, but not by an address given with --node: ask the next node. */
            if (!r->warned_leader)
                logf_(r, BKV_ROUTER_LOG_WARN,
                      "node %s names a leader whose gateway address is not among --node; "
                      "trying the nodes in turn (give --node the gateway addresses of the "
                      "nodes' [member] lists)",
                      r->nodes[f->target]);
            r->warned_leader = 1;
            fwd_next_node(f);
            return;
        }
        r->leader = -1; /* no leader known: an election; wait, then ask the next node */
        f->target = (f->target + 1) % (int)r->n_nodes;
        fwd_backoff(f);
        return;
    case 503:
        fwd_backoff(f);
        return;
    case 400:
    case 403:
    case 413:
        node_text(resp, resp->status, text, sizeof(text));
        fwd_finish(f, resp->status, NULL, 0, text, 0, 1);
        return;
    case 507:
        fwd_unavailable(f, "service unavailable: the vault cannot store now; retry later");
        return;
    case 401:
        logf_(r, BKV_ROUTER_LOG_ERROR,
              "node %s refused this router's proof: check that it has the router-proof.key of "
              "this router.key, and the clocks",
              r->nodes[f->target]);
        fwd_finish(f, 502, NULL, 0, "bad gateway: the vault refused the router", 0, 1);
        return;
    default:
        logf_(r, BKV_ROUTER_LOG_WARN, "node %s answered %d", r->nodes[f->target], resp->status);
        fwd_finish(f, 502, NULL, 0, "bad gateway: a vault node failed", 0, 1);
        return;
    }
}

static void fwd_attempt(struct fwd *f)
{
    struct bkv_router *r = f->r;
    char time_str[BKV_ROUTER_TIME_MAX_LEN + 1], proof[BKV_ROUTER_PROOF_HEX_LEN + 1];
    struct bkv_http_header h[4];
    uint64_t now = uv_now(r->loop);
    int rc;

    if (now >= f->deadline) {
        fwd_unavailable(f, "service unavailable: no vault leader answered in time; retry later");
        return;
    }
    snprintf(time_str, sizeof(time_str), "%" PRIu64, unix_now(r));
    rc = bkv_router_proof_compute(r->keys.proof_key, "POST", VAULT_PATH, f->account, time_str,
                                  f->req->body, f->req->body_len, proof);
    if (rc != BKV_OK) {
        fwd_finish(f, 500, NULL, 0, "internal error", 0, 1);
        return;
    }
    h[0] = (struct bkv_http_header){"Content-Type", "message/bkv-request"};
    h[1] = (struct bkv_http_header){"X-BKV-Account", f->account};
    h[2] = (struct bkv_http_header){"X-BKV-Router-Time", time_str};
    h[3] = (struct bkv_http_header){"X-BKV-Router-Proof", proof};
    f->attempts++;
    rc = bkv_http_client_request(r->client, r->nodes[f->target], "POST", VAULT_PATH, h, 4,
                                 f->req->body, f->req->body_len, (unsigned)(f->deadline - now),
                                 on_node_response, f);
    if (rc != BKV_OK) {
        fwd_finish(f, rc == BKV_ERR_SHUTDOWN ? 503 : 500, NULL, 0,
                   "service unavailable: cannot forward now", 0, 1);
        return;
    }
    f->in_flight = 1;
}

/* Authorization: Bearer <token>; the token's bytes are never logged or echoed. */
static int authenticate(struct bkv_router *r, const struct bkv_http_request *req, char *account,
                        const char **why)
{
    const char *h = bkv_http_header_get(req->headers, req->n_headers, "authorization");
    size_t len;
    int rc;

    if (h == NULL) {
        *why = "missing token: send Authorization: Bearer <account token>";
        return BKV_ERR_INVALID;
    }
    if (strncasecmp(h, "Bearer ", 7) != 0) {
        *why = "unsupported authorization: send Authorization: Bearer <account token>";
        return BKV_ERR_INVALID;
    }
    h += 7;
    while (*h == ' ')
        h++;
    len = strlen(h);
    while (len > 0 && (h[len - 1] == ' ' || h[len - 1] == '\t'))
        len--;
    rc = bkv_token_verify(r->keys.token_key, h, len, unix_now(r), account, NULL);
    switch (rc) {
    case BKV_OK:
        return BKV_OK;
    case BKV_ERR_LIMIT:
        *why = "expired token: ask for a new account token";
        break;
    case BKV_ERR_MAC:
        *why = "bad token: it was not issued for this service";
        break;
    default:
        *why = "malformed token: expected bkv1.<payload>.<tag>";
    }
    return rc;
}

static void handle(struct bkv_http_exchange *ex, const struct bkv_http_request *req, void *data)
{
    static const struct bkv_http_header allow_post = {"Allow", "POST"},
                                        allow_get = {"Allow", "GET"},
                                        www = {"WWW-Authenticate",
                                               "Bearer realm=\"bkv\", error=\"invalid_token\""};
    struct bkv_router *r = data;
    char account[BKV_MSG_ACCOUNT_MAX + 1], ra_s[16];
    const char *why = NULL;
    unsigned retry_after = 0;
    struct bkv_http_header ra = {"Retry-After", ra_s};
    struct fwd *f;
    int rc;

    if (r->closing) {
        answer(ex, req, r, NULL, 503, NULL, 0, "service unavailable: shutting down");
        return;
    }
    if (strcmp(req->path, LIVEZ_PATH) == 0 || strcmp(req->path, KEYCONFIG_PATH) == 0) {
        if (strcmp(req->method, "GET") != 0) {
            answer(ex, req, r, NULL, 405, &allow_get, 1, "method not allowed: use GET");
        } else if (strcmp(req->path, LIVEZ_PATH) == 0) {
            answer(ex, req, r, NULL, 200, NULL, 0, "ok");
        } else if (r->keyconfig == NULL) {
            answer(ex, req, r, NULL, 404, NULL, 0, "not found: this router serves no key config");
        } else {
            static const struct bkv_http_header ct = {"Content-Type", "application/bkv-keyconfig"};
            logf_(r, BKV_ROUTER_LOG_INFO, "peer=%s method=GET path=%s account=- status=200",
                  req->peer, KEYCONFIG_PATH);
            bkv_http_respond(ex, 200, &ct, 1, r->keyconfig, r->keyconfig_len);
        }
        return;
    }
    if (strcmp(req->path, VAULT_PATH) != 0) {
        answer(ex, req, r, NULL, 404, NULL, 0, "not found: the vault is at POST /v1/vault");
        return;
    }
    if (strcmp(req->method, "POST") != 0) {
        answer(ex, req, r, NULL, 405, &allow_post, 1, "method not allowed: use POST");
        return;
    }
    rc = authenticate(r, req, account, &why);
    if (rc != BKV_OK) {
        answer(ex, req, r, NULL, 401, &www, 1, why);
        return;
    }
    if (req->body_len == 0) {
        answer(ex, req, r, account, 400, NULL, 0,
               "bad request: empty body; expected an "
               "encapsulated request (message/bkv-request)");
        return;
    }
    rc = bkv_ratelimit_take(r->rl, account, uv_now(r->loop), &retry_after);
    if (rc == BKV_ERR_LIMIT) {
        snprintf(ra_s, sizeof(ra_s), "%u", retry_after);
        answer(ex, req, r, account, 429, &ra, 1,
               "too many requests for this account: wait for Retry-After seconds");
        return;
    }
    f = calloc(1, sizeof(*f));
    if (f == NULL) {
        answer(ex, req, r, account, 503, NULL, 0, "service unavailable: out of memory");
        return;
    }
    f->r = r;
    f->ex = ex;
    f->req = req;
    memcpy(f->account, account, sizeof(f->account));
    snprintf(f->peer, sizeof(f->peer), "%s", req->peer);
    f->start_ms = uv_now(r->loop);
    f->deadline = f->start_ms + r->deadline_ms;
    f->target = r->leader >= 0 ? r->leader : r->next_guess;
    f->backoff_ms = BACKOFF_MIN_MS;
    uv_timer_init(r->loop, &f->timer);
    f->timer.data = f;
    f->next = r->fwds;
    if (r->fwds != NULL)
        r->fwds->prev = f;
    r->fwds = f;
    fwd_attempt(f);
}

/* The HTTP layer answered by itself (broken HTTP, body too large...): one log line too. */
static void on_refused(void *data, int status, const char *peer)
{
    logf_(data, BKV_ROUTER_LOG_INFO, "peer=%s status=%d (refused by the HTTP layer)", peer, status);
}

int bkv_router_start(uv_loop_t *loop, const struct bkv_router_config *cfg, struct bkv_router **out,
                     char *err, size_t err_cap)
{
    struct bkv_router *r;
    struct bkv_http_server_config scfg = {0};
    struct bkv_http_client_config ccfg = {0};
    char host[256];
    unsigned port;
    int rc;

    *out = NULL;
    if (cfg->n_nodes == 0 || cfg->n_nodes > BKV_ROUTER_MAX_NODES || cfg->keys == NULL) {
        snprintf(err, err_cap, "give 1 to %d vault nodes and the router keys",
                 BKV_ROUTER_MAX_NODES);
        return BKV_ERR_INVALID;
    }
    for (size_t i = 0; i < cfg->n_nodes; i++)
        if (strlen(cfg->nodes[i]) >= ADDR_MAX ||
            bkv_http_address_parse(cfg->nodes[i], host, sizeof(host), &port) != BKV_OK ||
            port == 0) {
            snprintf(err, err_cap, "node address \"%.200s\" is not host:port", cfg->nodes[i]);
            return BKV_ERR_INVALID;
        }
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return BKV_ERR_NOMEM;
    r->loop = loop;
    r->keys = *cfg->keys;
    r->n_nodes = cfg->n_nodes;
    for (size_t i = 0; i < cfg->n_nodes; i++)
        snprintf(r->nodes[i], ADDR_MAX, "%s", cfg->nodes[i]);
    r->leader = -1;
    r->max_body = cfg->max_body ? cfg->max_body : BKV_ROUTER_DEFAULT_MAX_BODY;
    r->deadline_ms = cfg->deadline_ms ? cfg->deadline_ms : BKV_ROUTER_DEFAULT_DEADLINE;
    r->level = cfg->log_level;
    r->log = cfg->log != NULL ? cfg->log : stderr;
    r->clock = cfg->clock;
    r->clock_arg = cfg->clock_arg;
    rc = bkv_ratelimit_new(cfg->rate_per_min ? cfg->rate_per_min : BKV_ROUTER_DEFAULT_RATE,
                           cfg->burst ? cfg->burst : BKV_ROUTER_DEFAULT_BURST, &r->rl);
    if (rc == BKV_OK && cfg->keyconfig != NULL) {
        r->keyconfig = malloc(cfg->keyconfig_len);
        if (r->keyconfig == NULL)
            rc = BKV_ERR_NOMEM;
        else
            memcpy(r->keyconfig, cfg->keyconfig, cfg->keyconfig_len);
        r->keyconfig_len = cfg->keyconfig_len;
    }
    ccfg.max_body = NODE_MAX_BODY;
    ccfg.max_conns_per_address = 64;
    ccfg.connect_timeout_ms = CONNECT_MS;
    if (rc == BKV_OK)
        rc = bkv_http_client_new(loop, &ccfg, &r->client);
    if (rc != BKV_OK) {
        snprintf(err, err_cap, "%s", bkv_strerror(rc));
        goto fail;
    }
    scfg.address = cfg->listen;
    scfg.max_body = r->max_body;
    scfg.on_refused = on_refused;
    rc = bkv_http_server_start(loop, &scfg, handle, r, &r->server, err, err_cap);
    if (rc != BKV_OK)
        goto fail;
    *out = r;
    return BKV_OK;
fail:
    /* Nothing is running yet but the client's anchor handle: close it and free the rest now. */
    if (r->client != NULL)
        bkv_http_client_close(r->client, NULL, NULL);
    bkv_ratelimit_free(r->rl);
    free(r->keyconfig);
    OPENSSL_cleanse(&r->keys, sizeof(r->keys));
    free(r);
    return rc;
}

int bkv_router_port(const struct bkv_router *r)
{
    return bkv_http_server_port(r->server);
}

static void router_maybe_done(struct bkv_router *r)
{
    if (!r->closing || r->server != NULL || r->client != NULL || r->pending_closes > 0 ||
        r->fwds != NULL)
        return;
    bkv_ratelimit_free(r->rl);
    free(r->keyconfig);
    OPENSSL_cleanse(&r->keys, sizeof(r->keys));
    if (r->close_cb != NULL)
        r->close_cb(r->close_data);
    free(r);
}

static void on_client_closed(void *data)
{
    struct bkv_router *r = data;

    r->client = NULL;
    router_maybe_done(r);
}

static void on_server_closed(void *data)
{
    struct bkv_router *r = data;
    struct fwd *f, *next;

    r->server = NULL;
    /* Exchanges are detached now. Forwards waiting for a backoff end here; those in flight end
     * when the client's close fails their requests with BKV_ERR_SHUTDOWN. */
    for (f = r->fwds; f != NULL; f = next) {
        next = f->next;
        if (!f->in_flight)
            fwd_unavailable(f, "service unavailable: the router is shutting down; retry");
    }
    bkv_http_client_close(r->client, on_client_closed, r);
}

void bkv_router_close(struct bkv_router *r, void (*cb)(void *data), void *data)
{
    if (r == NULL || r->closing)
        return;
    r->closing = 1;
    r->close_cb = cb;
    r->close_data = data;
    bkv_http_server_close(r->server, on_server_closed, r);
}
