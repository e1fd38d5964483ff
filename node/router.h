/*
 * bkv-router's logic: the front end between clients and the vault nodes.
 *
 * Client side (HTTP/1.1, node/http.h):
 *   POST /v1/vault      Authorization: Bearer <account token>, body = an
 *                       encapsulated request, forwarded unchanged;
 *   GET  /v1/keyconfig  the realm key config file, if one was given;
 *   GET  /livez         200 "ok" while the router runs.
 * Answers: 401 for a missing, malformed, bad or expired token; 404 and 405
 * for other paths and methods; 400 for an empty body; 413 above max_body
 * (from the HTTP layer); 429 with Retry-After above the per-account rate;
 * then whatever the forwarding gives: the node's 200 body unchanged
 * (message/bkv-response), the node's 400/403/413 with its text, 502 when a
 * node failed in a way a retry cannot fix, 503 with Retry-After when no
 * leader answered within the deadline or the leader's disk is full (507).
 *
 * Node side: every request goes to the node the router believes leads (the
 * first node at start), over the HTTP client's persistent connections, with
 * X-BKV-Account, X-BKV-Router-Time and X-BKV-Router-Proof (token.h). A 421
 * names the leader's gateway address in X-BKV-Leader: if that address is one
 * of the configured nodes the router goes there at once (and remembers it);
 * if it names another address, the router asks the next node at once; a 421
 * naming no leader (an election) waits a backoff first. An unreachable node
 * or a failed connection also moves on to the next node at once; after a
 * full round of nodes that could not serve, and after a 503 (retried on the
 * same node), the router backs off (50 ms doubling to 1 s); all within
 * deadline_ms.
 *
 * The router holds the token key and the proof key, never a key that opens
 * an envelope, and logs one line per request (peer, method, known path or
 * "(other)", account once authenticated, status, node, attempts, latency):
 * never a token, a header value or a body byte.
 *
 * Threads: everything on the loop thread; the rate limiter is a plain data
 * structure for one thread at a time.
 */
#ifndef BKV_NODE_ROUTER_H
#define BKV_NODE_ROUTER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "node/token.h"

#define BKV_ROUTER_DEFAULT_RATE     60   /* requests per minute per account */
#define BKV_ROUTER_DEFAULT_BURST    20   /* requests an idle account may send at once */
#define BKV_ROUTER_DEFAULT_MAX_BODY 4096 /* bytes of an encapsulated request */
#define BKV_ROUTER_DEFAULT_DEADLINE 5000 /* ms to find a leader for one request */
#define BKV_ROUTER_MAX_NODES        16

enum bkv_router_log_level {
    BKV_ROUTER_LOG_ERROR = 0,
    BKV_ROUTER_LOG_WARN = 1,
    BKV_ROUTER_LOG_INFO = 2,  /* one line per request */
    BKV_ROUTER_LOG_DEBUG = 3, /* also every attempt to a node */
};

struct bkv_router_config {
    const char *listen;                 /* host:port */
    const char *const *nodes;           /* gateway addresses host:port, in order of preference */
    size_t n_nodes;                     /* 1..BKV_ROUTER_MAX_NODES */
    const struct bkv_router_keys *keys; /* copied; the copy is wiped at close */
    const uint8_t *keyconfig;           /* copied; NULL: GET /v1/keyconfig answers 404 */
    size_t keyconfig_len;
    unsigned rate_per_min; /* 0: BKV_ROUTER_DEFAULT_RATE */
    unsigned burst;        /* 0: BKV_ROUTER_DEFAULT_BURST */
    size_t max_body;       /* 0: BKV_ROUTER_DEFAULT_MAX_BODY */
    unsigned deadline_ms;  /* 0: BKV_ROUTER_DEFAULT_DEADLINE */
    enum bkv_router_log_level log_level;
    FILE *log; /* NULL: stderr */
    /* Unix seconds for token expiry and X-BKV-Router-Time; NULL: time(). Tests set it. */
    uint64_t (*clock)(void *arg);
    void *clock_arg;
};

struct bkv_router;

/*
 * Start listening. Strings in cfg are copied. BKV_ERR_INVALID (message in
 * err) for a bad address, no node or too many, BKV_ERR_IO if it cannot
 * listen. Loop thread.
 */
int bkv_router_start(uv_loop_t *loop, const struct bkv_router_config *cfg, struct bkv_router **out,
                     char *err, size_t err_cap);
/* The bound port (useful with port 0). */
int bkv_router_port(const struct bkv_router *r);
/*
 * Stop: close the listener and every client connection, answer requests
 * still being forwarded with 503 (their clients are gone by then, so this
 * only frees them), close the node connections, wipe the keys; cb(data) on
 * the loop once everything is released and r is freed.
 */
void bkv_router_close(struct bkv_router *r, void (*cb)(void *data), void *data);

/* "error", "warn", "info", "debug" -> level; -1 if unknown. */
int bkv_router_log_level_parse(const char *name);

/*
 * Per-account token bucket: an account may send burst requests at once and
 * per_minute on average. Accounts whose bucket is full again are forgotten,
 * so memory follows the accounts active in the last burst*60/per_minute
 * seconds.
 */
struct bkv_ratelimit;

/* BKV_ERR_INVALID for a zero rate or burst, BKV_ERR_NOMEM. */
int bkv_ratelimit_new(unsigned per_minute, unsigned burst, struct bkv_ratelimit **out);
/*
 * Take one request for account (borrowed NUL-terminated string) at now_ms
 * (any monotonic milliseconds). 0 if allowed; BKV_ERR_LIMIT if not, with
 * *retry_after_s the whole seconds (at least 1) until one more is allowed.
 * BKV_ERR_NOMEM if a new account cannot be stored (the request is allowed
 * by the caller's choice, not here).
 */
int bkv_ratelimit_take(struct bkv_ratelimit *rl, const char *account, uint64_t now_ms,
                       unsigned *retry_after_s);
/* Accounts currently remembered. */
size_t bkv_ratelimit_size(const struct bkv_ratelimit *rl);
void bkv_ratelimit_free(struct bkv_ratelimit *rl);

#endif
