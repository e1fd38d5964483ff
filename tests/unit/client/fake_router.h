/*
 * A tiny HTTP server on 127.0.0.1 for the client suites: one thread, one
 * connection at a time. It reads one request (head and Content-Length body),
 * hands it to the test's handler, and writes back exactly the bytes the
 * handler chose (optionally in small pieces, or none at all while it waits for
 * the client to give up). It knows nothing of BKV: the vault suite builds its
 * answers with proto/ in the handler.
 */
#ifndef BKV_TEST_FAKE_ROUTER_H
#define BKV_TEST_FAKE_ROUTER_H

#include <stddef.h>
#include <stdint.h>

struct fake_request {
    char method[16];
    char path[256];
    char head[8192]; /* the whole request head, as received */
    uint8_t *body;   /* borrowed for the handler call */
    size_t body_len;
};

struct fake_reply {
    uint8_t *bytes; /* malloc'd by the handler; freed by the server */
    size_t len;
    size_t split;   /* >0: write in pieces of this many bytes */
    int hang;       /* write nothing; wait until the client closes */
    int close_only; /* close at once without writing */
};

typedef void (*fake_handler)(void *arg, const struct fake_request *req, struct fake_reply *reply);

struct fake_router;

/* Start listening on 127.0.0.1 with a free port; returns NULL on failure. */
struct fake_router *fake_router_start(fake_handler handler, void *arg);
/* "127.0.0.1:PORT" */
const char *fake_router_addr(const struct fake_router *f);
/* Number of requests handled so far. */
unsigned fake_router_count(struct fake_router *f);
void fake_router_stop(struct fake_router *f);

/* Helpers for handlers: a reply from a format (head) and a body. */
void fake_reply_set(struct fake_reply *r, const char *head, const uint8_t *body, size_t body_len);
/* Value of header name in head (case-insensitive), copied into out; 0 if absent. */
int fake_header(const struct fake_request *req, const char *name, char *out, size_t cap);

/* "127.0.0.1:PORT" of a port where nothing listens (bound, then closed). */
void fake_closed_addr(char *out, size_t cap);

#endif
