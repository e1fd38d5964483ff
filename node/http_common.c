/*
 * What the HTTP server (http.c) and client (http_client.c) share: host:port
 * parsing, header lookup, the token and clean-text checks, and the head arena
 * with the llhttp callbacks that fill it (see http_internal.h).
 *
 * Normal path: llhttp hands the request line and headers over in pieces; each
 * is copied NUL-terminated into the exchange's fixed arena (header names
 * lower-cased), and http_head_export lists the pairs. Failure modes: more than
 * the arena or BKV_HTTP_MAX_HEADERS sets overflow and stops the parser (the
 * server answers 431, the client fails with BKV_ERR_FORMAT); an empty header
 * name stops it with "Empty header name"; a bad address is BKV_ERR_INVALID.
 */
#include "http_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/err.h"

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

int http_is_token(const char *s)
{
    if (s == NULL || *s == '\0')
        return 0;
    for (; *s != '\0'; s++)
        if (!isalnum((unsigned char)*s) && strchr("!#$%&'*+-.^_`|~", *s) == NULL)
            return 0;
    return 1;
}

int http_is_clean(const char *s, int allow_space)
{
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f || (!allow_space && (ch == ' ' || ch == '\t')))
            return 0;
    }
    return 1;
}

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

void http_head_reset(struct head *h)
{
    h->used = 0;
    h->n = 0;
    h->url_off = 0;
    h->overflow = 0;
    h->name_done = 0;
    h->cur_name = h->cur_value = 0;
}

void http_head_export(const struct head *h, struct bkv_http_header *out, size_t *n)
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

int http_on_url(llhttp_t *p, const char *at, size_t len)
{
    return head_add(head_of(p), at, len);
}

int http_on_url_complete(llhttp_t *p)
{
    struct head *h = head_of(p);

    if (head_end_string(h) != 0)
        return -1;
    h->cur_name = h->used;
    return 0;
}

int http_on_header_field(llhttp_t *p, const char *at, size_t len)
{
    return head_add(head_of(p), at, len);
}

int http_on_header_field_complete(llhttp_t *p)
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

int http_on_header_value(llhttp_t *p, const char *at, size_t len)
{
    return head_add(head_of(p), at, len);
}

int http_on_header_value_complete(llhttp_t *p)
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
