/*
 * Private to the HTTP layer (http.c server, http_client.c client,
 * http_common.c shared parts); never included outside node/http*.c and never
 * part of http.h. Loop thread only, like everything in http.h.
 */
#ifndef BKV_NODE_HTTP_INTERNAL_H
#define BKV_NODE_HTTP_INTERNAL_H

#include <stddef.h>

#include <llhttp.h>
#include <uv.h>

#include "http.h"

#define DEFAULT_MAX_BODY (64 * 1024)
#define READ_BUF         (16 * 1024)

/* tchar of RFC 9110 §5.6.2. */
int http_is_token(const char *s);

/* A header value or request target: printable, no CR/LF/NUL (space allowed only in values). */
int http_is_clean(const char *s, int allow_space);

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

void http_head_reset(struct head *h);

/* Points out[0..*n) into h's arena: valid while the arena is. */
void http_head_export(const struct head *h, struct bkv_http_header *out, size_t *n);

/* The llhttp callbacks that fill the head (the client leaves out the url ones); parser->data
 * points at a struct whose first member is the head. */
int http_on_url(llhttp_t *p, const char *at, size_t len);
int http_on_url_complete(llhttp_t *p);
int http_on_header_field(llhttp_t *p, const char *at, size_t len);
int http_on_header_field_complete(llhttp_t *p);
int http_on_header_value(llhttp_t *p, const char *at, size_t len);
int http_on_header_value_complete(llhttp_t *p);

/* A write request with its bytes. */
struct wbuf {
    uv_write_t req;
    void *owner;
    size_t len;
    char data[];
};

#endif
