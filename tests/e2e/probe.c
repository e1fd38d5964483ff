/*
 * bkv-probe: a test client for the end-to-end tests (tests/e2e/). It speaks
 * the client side of BKV the way libbkv does (OPAQUE inside RFC 9458
 * envelopes, POST /v1/vault through a router) but exposes every step, so a
 * test can see what the library hides: the KE2s it receives, the decrypted
 * statuses, the secrets of a session (for the leak scan), and what happens to
 * deliberately broken requests.
 *
 *   bkv-probe COMMAND [--router H:P] [--keyconfig FILE] --account A
 *             (--token T | --token-file F) [options]
 *
 *   register  REG_INIT + REG_FINISH; prints the password, K, the export key,
 *             the record, its masking key and the wrapped K as hex
 *   login     LOGIN_INIT + LOGIN_FINISH (recover is the same); --pause waits
 *             for a line on stdin after the KE2 arrived
 *   guess     --count N wrong-password logins, through errors and leader
 *             changes, until N were sent or the key is destroyed
 *   unknown   LOGIN_INIT for the known account and for --unknown-account:
 *             response sizes and decrypted forms, side by side
 *   bad       --case NAME: one crafted bad request (see bad_cases below)
 *   replay    --envelope FILE: send an envelope saved by --save again; with
 *             --fresh-id, its request under a new request id (as after the
 *             store's request window)
 *
 * Each command prints one line of key=value pairs on stdout (login --pause
 * prints one more, after the KE2) and exits 0 when it ran to its end, whatever
 * the vault answered; 1 for a local failure, 2 for a usage error. --router
 * and --keyconfig default to $BKV_ROUTER and $BKV_KEYCONFIG (cluster.env).
 * A test tool: it prints secrets on purpose, and never leaves them elsewhere.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "client/internal.h"
#include "node/token.h"
#include "proto/err.h"
#include "proto/group.h"
#include "proto/hpke.h"
#include "proto/msg.h"
#include "proto/ohttp.h"
#include "proto/opaque.h"
#include "proto/util.h"

#define KEYCONFIG_FILE_MAX 4096
#define TOKEN_MAX          1024
#define LINE_MAX_LEN       8192
#define ENVELOPE_MAX       (BKV_HPKE_P256_PK_LEN + BKV_OHTTP_HEADER_LEN + BKV_MSG_REQUEST_LEN + 64)
#define OVERSIZED_LEN      (256 * 1024)
#define KE2_KEYSHARE_OFF   (33 + 32 + 97 + 32)
#define SAVE_MAGIC         0x424b5650u /* "BKVP" */

struct opts {
    const char *router, *keyconfig, *account, *token, *token_file, *password;
    const char *key_hex, *expect_hex, *bad_case, *other_account, *router_key;
    const char *save, *envelope, *unknown_account, *unknown_token;
    unsigned count, deadline_s, retry_s, timeout_ms, pace_ms;
    int pause, fresh_id;
};

struct probe {
    struct opts o;
    char auth[TOKEN_MAX + 16];
    struct bkv_keyconfig kc;
    struct bkv_ohttp_symmetric sym;
    uint8_t ctx[BKV_MSG_CONTEXT_LEN];
    struct bkv_opaque_config oc;
};

/* A sealed request, as sent, and the inner payload it carries. */
struct sealed {
    enum bkv_msg_type type;
    uint8_t request_id[BKV_MSG_REQUEST_ID_LEN];
    uint8_t payload[BKV_MSG_REQUEST_LEN];
    size_t payload_len;
    uint8_t body[OVERSIZED_LEN];
    size_t len;
    struct bkv_ohttp_state st;
};

/* One HTTP exchange and, for a 200, the opened inner response. */
struct answer {
    int rc; /* transport: BKV_OK or bkv_client_http_do's error */
    char why[200];
    int http;
    unsigned retry_after;
    size_t body_len;
    char text[120];    /* the start of a text body, sanitised */
    uint8_t raw[1024]; /* a 200's body, when it fits */
    size_t raw_len;
    int opened; /* 1: decrypted, decoded, echoes our type and request id */
    const char *problem;
    struct bkv_msg_response m;
    uint8_t plain[BKV_MSG_RESPONSE_LEN];
};

/* The one output line. */
static char line[LINE_MAX_LEN];
static size_t line_len;

__attribute__((format(printf, 1, 2))) static void put(const char *fmt, ...)
{
    va_list ap;
    if (line_len + 2 >= sizeof(line))
        return;
    if (line_len > 0)
        line[line_len++] = ' ';
    va_start(ap, fmt);
    int n = vsnprintf(line + line_len, sizeof(line) - line_len, fmt, ap);
    va_end(ap);
    if (n > 0)
        line_len += (size_t)n < sizeof(line) - line_len ? (size_t)n : sizeof(line) - line_len - 1;
}

static void put_hex(const char *key, const uint8_t *b, size_t n)
{
    char hex[2 * 512 + 1];
    if (n > 512)
        n = 512;
    bkv_hex_encode(b, n, hex);
    put("%s=%s", key, hex);
    OPENSSL_cleanse(hex, sizeof(hex));
}

static void flush_line(void)
{
    printf("%s\n", line);
    fflush(stdout);
    OPENSSL_cleanse(line, sizeof(line));
    line_len = 0;
}

__attribute__((format(printf, 1, 2))) static void die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "bkv-probe: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static const char *status_name(const struct answer *a)
{
    return a->opened ? bkv_msg_status_name(a->m.status) : "-";
}

static size_t read_file(const char *path, uint8_t *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        die("cannot open %s: %s", path, strerror(errno));
    size_t n = fread(buf, 1, cap, f);
    int err = ferror(f);
    fclose(f);
    if (err || n == cap)
        die("cannot read %s (or it is larger than %zu bytes)", path, cap - 1);
    return n;
}

/* --- set-up ------------------------------------------------------------------- */

static void set_token(struct probe *p, const char *token)
{
    if (token == NULL)
        p->auth[0] = '\0';
    else if (snprintf(p->auth, sizeof(p->auth), "Bearer %s", token) >= (int)sizeof(p->auth))
        die("the token is too long");
}

static void load_token_file(struct probe *p)
{
    uint8_t buf[TOKEN_MAX + 2];
    size_t n = read_file(p->o.token_file, buf, sizeof(buf));
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    buf[n] = '\0';
    set_token(p, (const char *)buf);
}

static void setup(struct probe *p)
{
    uint8_t kc[KEYCONFIG_FILE_MAX];
    if (p->o.router == NULL || p->o.keyconfig == NULL)
        die("--router and --keyconfig are required (or BKV_ROUTER and BKV_KEYCONFIG)");
    if (p->o.account == NULL)
        die("--account is required");
    if (p->o.token_file != NULL)
        load_token_file(p);
    else if (p->o.token != NULL)
        set_token(p, p->o.token);
    else
        die("--token or --token-file is required");
    size_t n = read_file(p->o.keyconfig, kc, sizeof(kc));
    int rc = bkv_keyconfig_decode(kc, n, &p->kc);
    if (rc != BKV_OK)
        die("%s is not a realm key config: %s", p->o.keyconfig, bkv_strerror(rc));
    p->sym = (struct bkv_ohttp_symmetric){0, 0};
    for (size_t i = 0; i < p->kc.ohttp.suite_count; i++) {
        struct bkv_ohttp_symmetric s = p->kc.ohttp.suites[i];
        if (s.kdf == BKV_HPKE_KDF_HKDF_SHA256 &&
            (s.aead == BKV_HPKE_AEAD_AES_256_GCM ||
             (s.aead == BKV_HPKE_AEAD_AES_128_GCM && p->sym.aead == 0)))
            p->sym = s;
    }
    if (p->sym.aead == 0)
        die("the key config offers no suite the probe supports");
    bkv_keyconfig_opaque(&p->kc, p->ctx, &p->oc);
}

/* --- requests ------------------------------------------------------------------ */

/* Encode an inner request for account with a fresh request id and seal it. */
static int seal_for(const struct probe *p, enum bkv_msg_type type, const char *account,
                    const uint8_t *payload, size_t payload_len, struct sealed *s)
{
    uint8_t inner[BKV_MSG_REQUEST_LEN];
    struct bkv_msg_request q = {.type = type,
                                .account = (const uint8_t *)account,
                                .account_len = strlen(account),
                                .payload = payload,
                                .payload_len = payload_len};
    if (RAND_bytes(q.request_id, sizeof(q.request_id)) != 1)
        return BKV_ERR_CRYPTO;
    int rc = bkv_msg_request_encode(&q, inner);
    if (rc == BKV_OK)
        rc = bkv_ohttp_request_encap(&p->kc.ohttp, p->sym, &bkv_ohttp_bkv_labels, NULL, inner,
                                     sizeof(inner), s->body, sizeof(s->body), &s->len, &s->st);
    s->type = type;
    memcpy(s->request_id, q.request_id, sizeof(s->request_id));
    if (payload_len <= sizeof(s->payload)) {
        memcpy(s->payload, payload, payload_len);
        s->payload_len = payload_len;
    }
    OPENSSL_cleanse(inner, sizeof(inner));
    return rc;
}

static int seal(const struct probe *p, enum bkv_msg_type type, const uint8_t *payload,
                size_t payload_len, struct sealed *s)
{
    return seal_for(p, type, p->o.account, payload, payload_len, s);
}

/* POST body (with the probe's token, or none when p->auth is empty). */
static void post_raw(const struct probe *p, const uint8_t *body, size_t len, struct answer *a)
{
    struct bkv_client_http_request req = {.method = "POST",
                                          .path = "/v1/vault",
                                          .authorization = p->auth[0] ? p->auth : NULL,
                                          .content_type = "message/bkv-request",
                                          .accept = "message/bkv-response",
                                          .body = body,
                                          .body_len = len};
    struct bkv_client_http_response r;
    memset(a, 0, sizeof(*a));
    memset(&r, 0, sizeof(r));
    a->rc =
        bkv_client_http_do(p->o.router, &req, BKV_OHTTP_MAX_RESPONSE_LEN,
                           p->o.timeout_ms ? p->o.timeout_ms : 10000, &r, a->why, sizeof(a->why));
    if (a->rc != BKV_OK)
        return;
    a->http = r.status;
    a->retry_after = r.retry_after_s;
    a->body_len = r.body_len;
    if (r.status == 200 && r.body != NULL && r.body_len <= sizeof(a->raw)) {
        memcpy(a->raw, r.body, r.body_len);
        a->raw_len = r.body_len;
    } else if (r.status != 200 && r.body != NULL) {
        size_t j = 0;
        for (size_t i = 0; i < r.body_len && j + 1 < sizeof(a->text); i++) {
            unsigned char ch = r.body[i];
            if (ch == '\n' || ch == '\r')
                break;
            a->text[j++] = (ch >= 0x20 && ch < 0x7f && ch != '"') ? (char)ch : '?';
        }
        a->text[j] = '\0';
    }
    bkv_client_http_response_free(&r);
}

/* Open a 200 answer with the request's state; sets a->opened or a->problem. */
static void open_answer(const struct sealed *s, struct answer *a)
{
    size_t n = 0;
    a->opened = 0;
    if (a->rc != BKV_OK || a->http != 200)
        return;
    if (a->raw_len == 0) {
        a->problem = "size";
        return;
    }
    if (bkv_ohttp_response_decap(&s->st, a->raw, a->raw_len, a->plain, sizeof(a->plain), &n) !=
            BKV_OK ||
        n != BKV_MSG_RESPONSE_LEN) {
        a->problem = "decap";
        return;
    }
    if (bkv_msg_response_decode(a->plain, n, &a->m) != BKV_OK) {
        a->problem = "decode";
        return;
    }
    if (a->m.type != s->type || memcmp(a->m.request_id, s->request_id, BKV_MSG_REQUEST_ID_LEN)) {
        a->problem = "echo";
        return;
    }
    a->opened = 1;
}

static int retryable(const struct answer *a)
{
    return a->rc != BKV_OK || a->http == 429 || a->http == 502 || a->http == 503 ||
           a->http == 500 || a->http == 504;
}

struct tally {
    unsigned retries, transport, h429, h503, h5xx;
};

static void tally_add(struct tally *t, const struct answer *a)
{
    if (t == NULL)
        return;
    if (a->rc != BKV_OK)
        t->transport++;
    else if (a->http == 429)
        t->h429++;
    else if (a->http == 503)
        t->h503++;
    else if (a->http >= 500)
        t->h5xx++;
}

/*
 * Send s and open the answer. Until deadline (monotonic ms; 0: no retry), a
 * transport error, 429 or 5xx sends the same envelope again (same request
 * id), as a client retrying a lost answer would.
 */
static void send_sealed(const struct probe *p, const struct sealed *s, uint64_t deadline,
                        struct answer *a, struct tally *t)
{
    for (;;) {
        post_raw(p, s->body, s->len, a);
        if (!retryable(a) || now_ms() >= deadline)
            break;
        tally_add(t, a);
        if (t != NULL)
            t->retries++;
        unsigned wait = a->retry_after > 0 ? a->retry_after * 1000 : 200;
        sleep_ms(wait > 1000 ? 1000 : wait);
    }
    tally_add(t, a);
    open_answer(s, a);
}

static uint64_t retry_deadline(const struct probe *p)
{
    return p->o.retry_s ? now_ms() + (uint64_t)p->o.retry_s * 1000 : 0;
}

static void put_answer(const char *prefix, const struct answer *a)
{
    if (a->rc != BKV_OK) {
        put("%shttp=0 %stransport=%s", prefix, prefix, bkv_strerror(a->rc));
        return;
    }
    put("%shttp=%d %sstatus=%s", prefix, a->http, prefix, status_name(a));
    if (a->http != 200)
        put("%stext=\"%s\"", prefix, a->text);
    if (a->problem != NULL)
        put("%sproblem=%s", prefix, a->problem);
    if (a->opened)
        put("%sleft=%u %smax=%u", prefix, a->m.attempts_left, prefix, a->m.max_attempts);
}

/* --- saved envelopes (replay) ----------------------------------------------- */

static void save_sealed(const char *path, const struct sealed *s)
{
    FILE *f = fopen(path, "wb");
    uint32_t magic = SAVE_MAGIC, type = (uint32_t)s->type;
    uint64_t len = s->len;
    if (f == NULL)
        die("cannot create %s: %s", path, strerror(errno));
    if (fwrite(&magic, 4, 1, f) != 1 || fwrite(&type, 4, 1, f) != 1 ||
        fwrite(s->request_id, sizeof(s->request_id), 1, f) != 1 ||
        fwrite(&s->payload_len, sizeof(s->payload_len), 1, f) != 1 ||
        fwrite(s->payload, sizeof(s->payload), 1, f) != 1 ||
        fwrite(&s->st, sizeof(s->st), 1, f) != 1 || fwrite(&len, 8, 1, f) != 1 ||
        fwrite(s->body, 1, s->len, f) != s->len)
        die("cannot write %s", path);
    if (fclose(f) != 0)
        die("cannot write %s", path);
}

static void load_sealed(const char *path, struct sealed *s)
{
    FILE *f = fopen(path, "rb");
    uint32_t magic = 0, type = 0;
    uint64_t len = 0;
    if (f == NULL)
        die("cannot open %s: %s", path, strerror(errno));
    if (fread(&magic, 4, 1, f) != 1 || magic != SAVE_MAGIC || fread(&type, 4, 1, f) != 1 ||
        fread(s->request_id, sizeof(s->request_id), 1, f) != 1 ||
        fread(&s->payload_len, sizeof(s->payload_len), 1, f) != 1 ||
        s->payload_len > sizeof(s->payload) || fread(s->payload, sizeof(s->payload), 1, f) != 1 ||
        fread(&s->st, sizeof(s->st), 1, f) != 1 || fread(&len, 8, 1, f) != 1 ||
        len > sizeof(s->body) || fread(s->body, 1, (size_t)len, f) != len)
        die("%s is not an envelope saved by bkv-probe", path);
    fclose(f);
    s->type = (enum bkv_msg_type)type;
    s->len = (size_t)len;
}

/* --- commands ---------------------------------------------------------------- */

static const uint8_t *password(const struct probe *p, size_t *len)
{
    if (p->o.password == NULL)
        die("--password is required");
    *len = strlen(p->o.password);
    return (const uint8_t *)p->o.password;
}

static int ke2_points_valid(const uint8_t *ke2)
{
    return bkv_p256_element_check(ke2, BKV_P256_ELEMENT_LEN) == BKV_OK &&
           bkv_p256_element_check(ke2 + KE2_KEYSHARE_OFF, BKV_P256_ELEMENT_LEN) == BKV_OK;
}

static int cmd_register(struct probe *p)
{
    static struct sealed s;
    struct answer a;
    struct bkv_opaque_reg_client st;
    struct bkv_opaque_ids ids = {(const uint8_t *)p->o.account, strlen(p->o.account), NULL, 0};
    uint8_t req[BKV_OPAQUE_REG_REQUEST_LEN], k[BKV_MSG_KEY_LEN], export_key[BKV_OPAQUE_KEY_LEN];
    uint8_t fin[BKV_OPAQUE_RECORD_LEN + BKV_MSG_WRAPPED_LEN + BKV_MSG_TICKET_LEN];
    size_t pwlen, n = 0;
    const uint8_t *pw = password(p, &pwlen);
    int rc, ok = 0;

    memset(&st, 0, sizeof(st));
    memset(export_key, 0, sizeof(export_key));
    memset(fin, 0, sizeof(fin));
    if (p->o.key_hex != NULL) {
        if (bkv_hex_decode(p->o.key_hex, k, sizeof(k), &n) != BKV_OK || n != sizeof(k))
            die("--key must be 64 hex digits");
    } else if (RAND_bytes(k, sizeof(k)) != 1) {
        die("RAND_bytes failed");
    }
    put("op=register account=%s", p->o.account);
    rc = bkv_opaque_reg_start(pw, pwlen, NULL, &st, req);
    if (rc == BKV_OK)
        rc = seal(p, BKV_MSG_REG_INIT, req, sizeof(req), &s);
    if (rc != BKV_OK)
        die("REG_INIT: %s", bkv_strerror(rc));
    send_sealed(p, &s, retry_deadline(p), &a, NULL);
    if (!a.opened || a.m.status != BKV_MSG_OK) {
        put("result=fail step=reg_init");
        put_answer("", &a);
        goto out;
    }
    /* REG_INIT's answer: the RegistrationResponse and the ticket REG_FINISH echoes. */
    memcpy(fin + BKV_OPAQUE_RECORD_LEN + BKV_MSG_WRAPPED_LEN,
           a.m.payload + BKV_OPAQUE_REG_RESPONSE_LEN, BKV_MSG_TICKET_LEN);
    rc = bkv_opaque_reg_finish(&p->oc, pw, pwlen, &st, &ids, NULL, a.m.payload,
                               BKV_OPAQUE_REG_RESPONSE_LEN, fin, export_key, NULL);
    if (rc == BKV_OK)
        rc = bkv_msg_wrap_key(export_key, ids.client, ids.client_len, k,
                              fin + BKV_OPAQUE_RECORD_LEN);
    if (rc != BKV_OK) {
        put("result=fail step=reg_finish_local error=%s", bkv_strerror(rc));
        goto out;
    }
    rc = seal(p, BKV_MSG_REG_FINISH, fin, sizeof(fin), &s);
    if (rc != BKV_OK)
        die("REG_FINISH: %s", bkv_strerror(rc));
    if (p->o.save != NULL)
        save_sealed(p->o.save, &s);
    send_sealed(p, &s, retry_deadline(p), &a, NULL);
    ok = a.opened && a.m.status == BKV_MSG_OK;
    put("result=%s step=reg_finish", ok ? "ok" : "fail");
    put_answer("", &a);
    put_hex("password_hex", pw, pwlen);
    put_hex("k", k, sizeof(k));
    put_hex("export_key", export_key, sizeof(export_key));
    put_hex("record", fin, BKV_OPAQUE_RECORD_LEN);
    put_hex("masking_key", fin + BKV_P256_ELEMENT_LEN, 32);
    put_hex("wrapped", fin + BKV_OPAQUE_RECORD_LEN, BKV_MSG_WRAPPED_LEN);
out:
    flush_line();
    bkv_opaque_reg_client_wipe(&st);
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(export_key, sizeof(export_key));
    OPENSSL_cleanse(fin, sizeof(fin));
    OPENSSL_cleanse(&a, sizeof(a));
    return 0;
}

/* Read one line from stdin (the test's go-ahead); EOF counts as one. */
static void wait_stdin(void)
{
    char buf[64];
    if (fgets(buf, sizeof(buf), stdin) == NULL)
        clearerr(stdin);
}

static int cmd_login(struct probe *p)
{
    static struct sealed s;
    struct answer a;
    struct bkv_opaque_login_client st;
    struct bkv_opaque_ids ids = {(const uint8_t *)p->o.account, strlen(p->o.account), NULL, 0};
    uint8_t ke1[BKV_OPAQUE_KE1_LEN], ke2[BKV_OPAQUE_KE2_LEN];
    uint8_t fin[BKV_MSG_SESSION_ID_LEN + BKV_OPAQUE_KE3_LEN];
    uint8_t session_key[BKV_OPAQUE_KEY_LEN], export_key[BKV_OPAQUE_KEY_LEN];
    uint8_t wrapped[BKV_MSG_WRAPPED_LEN], k[BKV_MSG_KEY_LEN], want[BKV_MSG_KEY_LEN];
    size_t pwlen, n = 0;
    const uint8_t *pw = password(p, &pwlen);
    int rc, client_ok = 0;

    memset(&st, 0, sizeof(st));
    memset(session_key, 0, sizeof(session_key));
    memset(export_key, 0, sizeof(export_key));
    memset(k, 0, sizeof(k));
    if (p->o.expect_hex != NULL &&
        (bkv_hex_decode(p->o.expect_hex, want, sizeof(want), &n) != BKV_OK || n != sizeof(want)))
        die("--expect-key must be 64 hex digits");
    rc = bkv_opaque_login_start(pw, pwlen, NULL, &st, ke1);
    if (rc == BKV_OK)
        rc = seal(p, BKV_MSG_LOGIN_INIT, ke1, sizeof(ke1), &s);
    if (rc != BKV_OK)
        die("LOGIN_INIT: %s", bkv_strerror(rc));
    if (p->o.save != NULL)
        save_sealed(p->o.save, &s);
    send_sealed(p, &s, retry_deadline(p), &a, NULL);
    put("op=login account=%s", p->o.account);
    put_answer("init_", &a);
    int got_ke2 = a.opened && a.m.status == BKV_MSG_OK;
    put("ke2=%d", got_ke2);
    if (!got_ke2) {
        put("result=fail step=login_init");
        goto out;
    }
    memcpy(fin, a.m.payload, BKV_MSG_SESSION_ID_LEN);
    memcpy(ke2, a.m.payload + BKV_MSG_SESSION_ID_LEN, sizeof(ke2));
    put("ke2_points=%d", ke2_points_valid(ke2));
    if (p->o.pause) {
        printf("op=login stage=ke2 ke2=1 init_left=%u init_max=%u\n", a.m.attempts_left,
               a.m.max_attempts);
        fflush(stdout);
        wait_stdin();
    }
    rc = bkv_opaque_login_finish(&p->oc, &st, pw, pwlen, &ids, ke2, sizeof(ke2),
                                 fin + BKV_MSG_SESSION_ID_LEN, session_key, export_key, NULL);
    if (rc == BKV_ERR_ENVELOPE) {
        put("client=envelope");
        if (RAND_bytes(fin + BKV_MSG_SESSION_ID_LEN, BKV_OPAQUE_KE3_LEN) != 1)
            die("RAND_bytes failed");
    } else if (rc != BKV_OK) {
        put("client=%s result=fail step=client_finish", bkv_strerror(rc));
        goto out;
    } else {
        put("client=ok");
        client_ok = 1;
    }
    rc = seal(p, BKV_MSG_LOGIN_FINISH, fin, sizeof(fin), &s);
    if (rc != BKV_OK)
        die("LOGIN_FINISH: %s", bkv_strerror(rc));
    send_sealed(p, &s, retry_deadline(p), &a, NULL);
    put_answer("finish_", &a);
    if (!a.opened || a.m.status != BKV_MSG_OK || !client_ok) {
        put("result=fail step=login_finish");
        goto out;
    }
    rc = bkv_msg_release_open(session_key, fin, a.m.payload, wrapped);
    if (rc == BKV_OK)
        rc = bkv_msg_unwrap_key(export_key, ids.client, ids.client_len, wrapped, k);
    if (rc != BKV_OK) {
        put("result=fail step=release error=%s", bkv_strerror(rc));
        goto out;
    }
    put("result=ok");
    put_hex("password_hex", pw, pwlen);
    put_hex("k", k, sizeof(k));
    put_hex("export_key", export_key, sizeof(export_key));
    put_hex("session_key", session_key, sizeof(session_key));
    if (p->o.expect_hex != NULL)
        put("match=%d", CRYPTO_memcmp(k, want, sizeof(k)) == 0);
out:
    flush_line();
    bkv_opaque_login_client_wipe(&st);
    OPENSSL_cleanse(session_key, sizeof(session_key));
    OPENSSL_cleanse(export_key, sizeof(export_key));
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(want, sizeof(want));
    OPENSSL_cleanse(wrapped, sizeof(wrapped));
    OPENSSL_cleanse(&a, sizeof(a));
    return 0;
}

/*
 * Wrong-password logins until --count were sent or the key is destroyed (or
 * --deadline-s passed). A KE2 is counted when a LOGIN_INIT came back OK with
 * a KE2 in it; each one's attempts_left is listed, so a test can check that
 * no two KE2s share a counter value across parallel guessers.
 */
static int cmd_guess(struct probe *p)
{
    static struct sealed s;
    struct answer a;
    struct tally t = {0};
    struct bkv_opaque_login_client st;
    struct bkv_opaque_ids ids = {(const uint8_t *)p->o.account, strlen(p->o.account), NULL, 0};
    uint8_t ke1[BKV_OPAQUE_KE1_LEN], ke2[BKV_OPAQUE_KE2_LEN];
    uint8_t fin[BKV_MSG_SESSION_ID_LEN + BKV_OPAQUE_KE3_LEN];
    uint8_t session_key[BKV_OPAQUE_KEY_LEN], export_key[BKV_OPAQUE_KEY_LEN];
    size_t pwlen;
    const uint8_t *pw = password(p, &pwlen);
    unsigned attempts = 0, ke2n = 0, wrong = 0, unknown_sess = 0, replayed = 0, other = 0;
    unsigned unexpected_ok = 0, bad_points = 0, http_other = 0, min_left = UINT32_MAX;
    int destroyed = 0;
    const char *destroyed_at = "-";
    char lefts[2048] = "";
    size_t lefts_len = 0;
    uint64_t deadline = now_ms() + (uint64_t)(p->o.deadline_s ? p->o.deadline_s : 120) * 1000;

    while (attempts < p->o.count && !destroyed && now_ms() < deadline) {
        if (attempts > 0 && p->o.pace_ms > 0)
            sleep_ms(p->o.pace_ms);
        int rc = bkv_opaque_login_start(pw, pwlen, NULL, &st, ke1);
        if (rc == BKV_OK)
            rc = seal(p, BKV_MSG_LOGIN_INIT, ke1, sizeof(ke1), &s);
        if (rc != BKV_OK)
            die("LOGIN_INIT: %s", bkv_strerror(rc));
        attempts++;
        send_sealed(p, &s, deadline, &a, &t);
        if (!a.opened) {
            if (a.rc == BKV_OK && !retryable(&a))
                http_other++;
            bkv_opaque_login_client_wipe(&st);
            continue;
        }
        if (a.m.status == BKV_MSG_REPLAYED) {
            replayed++; /* our resend of an envelope whose first answer was lost */
            bkv_opaque_login_client_wipe(&st);
            continue;
        }
        if (a.m.status == BKV_MSG_DESTROYED) {
            destroyed = 1;
            destroyed_at = "init";
            break;
        }
        if (a.m.status != BKV_MSG_OK) {
            other++;
            bkv_opaque_login_client_wipe(&st);
            continue;
        }
        ke2n++;
        if (a.m.attempts_left < min_left)
            min_left = a.m.attempts_left;
        if (lefts_len + 12 < sizeof(lefts))
            lefts_len += (size_t)snprintf(lefts + lefts_len, sizeof(lefts) - lefts_len, "%s%u",
                                          lefts_len ? "," : "", a.m.attempts_left);
        memcpy(fin, a.m.payload, BKV_MSG_SESSION_ID_LEN);
        memcpy(ke2, a.m.payload + BKV_MSG_SESSION_ID_LEN, sizeof(ke2));
        if (!ke2_points_valid(ke2))
            bad_points++;
        rc = bkv_opaque_login_finish(&p->oc, &st, pw, pwlen, &ids, ke2, sizeof(ke2),
                                     fin + BKV_MSG_SESSION_ID_LEN, session_key, export_key, NULL);
        if (rc == BKV_OK)
            unexpected_ok++; /* the "wrong" password opened the envelope */
        if (RAND_bytes(fin + BKV_MSG_SESSION_ID_LEN, BKV_OPAQUE_KE3_LEN) != 1)
            die("RAND_bytes failed");
        rc = seal(p, BKV_MSG_LOGIN_FINISH, fin, sizeof(fin), &s);
        if (rc != BKV_OK)
            die("LOGIN_FINISH: %s", bkv_strerror(rc));
        send_sealed(p, &s, deadline, &a, &t);
        if (!a.opened) {
            if (a.rc == BKV_OK && !retryable(&a))
                http_other++;
            continue;
        }
        switch (a.m.status) {
        case BKV_MSG_WRONG_PASSWORD:
            wrong++;
            break;
        case BKV_MSG_DESTROYED:
            destroyed = 1;
            destroyed_at = "finish";
            break;
        case BKV_MSG_SESSION_UNKNOWN:
            unknown_sess++;
            break;
        default:
            other++;
            break;
        }
    }
    put("op=guess account=%s attempts=%u ke2=%u wrong=%u destroyed=%d destroyed_at=%s",
        p->o.account, attempts, ke2n, wrong, destroyed, destroyed_at);
    put("session_unknown=%u replayed=%u other=%u http_other=%u unexpected_ok=%u bad_points=%u",
        unknown_sess, replayed, other, http_other, unexpected_ok, bad_points);
    put("retries=%u transport=%u http_429=%u http_503=%u http_5xx=%u", t.retries, t.transport,
        t.h429, t.h503, t.h5xx);
    put("min_left=%d lefts=%s", min_left == UINT32_MAX ? -1 : (int)min_left,
        lefts_len ? lefts : "-");
    flush_line();
    bkv_opaque_login_client_wipe(&st);
    OPENSSL_cleanse(session_key, sizeof(session_key));
    OPENSSL_cleanse(export_key, sizeof(export_key));
    return 0;
}

/* One LOGIN_INIT (+ LOGIN_FINISH) for account with token; fields prefixed by pfx. */
static void unknown_side(struct probe *p, const char *pfx, const char *account, const char *token)
{
    static struct sealed s;
    struct answer a;
    struct bkv_opaque_login_client st;
    struct bkv_opaque_ids ids = {(const uint8_t *)account, strlen(account), NULL, 0};
    uint8_t ke1[BKV_OPAQUE_KE1_LEN], ke2[BKV_OPAQUE_KE2_LEN];
    uint8_t fin[BKV_MSG_SESSION_ID_LEN + BKV_OPAQUE_KE3_LEN];
    uint8_t session_key[BKV_OPAQUE_KEY_LEN], export_key[BKV_OPAQUE_KEY_LEN];
    size_t pwlen;
    const uint8_t *pw = password(p, &pwlen);

    set_token(p, token);
    int rc = bkv_opaque_login_start(pw, pwlen, NULL, &st, ke1);
    if (rc == BKV_OK)
        rc = seal_for(p, BKV_MSG_LOGIN_INIT, account, ke1, sizeof(ke1), &s);
    if (rc != BKV_OK)
        die("LOGIN_INIT: %s", bkv_strerror(rc));
    uint64_t t0 = now_ms();
    send_sealed(p, &s, 0, &a, NULL);
    put("%sms=%llu %sbody_len=%zu", pfx, (unsigned long long)(now_ms() - t0), pfx, a.body_len);
    put_answer(pfx, &a);
    if (!a.opened || a.m.status != BKV_MSG_OK) {
        bkv_opaque_login_client_wipe(&st);
        return;
    }
    put("%spayload_len=%zu", pfx, a.m.payload_len);
    memcpy(fin, a.m.payload, BKV_MSG_SESSION_ID_LEN);
    memcpy(ke2, a.m.payload + BKV_MSG_SESSION_ID_LEN, sizeof(ke2));
    put("%spoints=%d", pfx, ke2_points_valid(ke2));
    rc = bkv_opaque_login_finish(&p->oc, &st, pw, pwlen, &ids, ke2, sizeof(ke2),
                                 fin + BKV_MSG_SESSION_ID_LEN, session_key, export_key, NULL);
    put("%sclient=%s", pfx, rc == BKV_OK ? "ok" : rc == BKV_ERR_ENVELOPE ? "envelope" : "error");
    if (rc != BKV_OK && RAND_bytes(fin + BKV_MSG_SESSION_ID_LEN, BKV_OPAQUE_KE3_LEN) != 1)
        die("RAND_bytes failed");
    rc = seal_for(p, BKV_MSG_LOGIN_FINISH, account, fin, sizeof(fin), &s);
    if (rc != BKV_OK)
        die("LOGIN_FINISH: %s", bkv_strerror(rc));
    send_sealed(p, &s, 0, &a, NULL);
    put("%sfinish_status=%s", pfx, status_name(&a));
    OPENSSL_cleanse(session_key, sizeof(session_key));
    OPENSSL_cleanse(export_key, sizeof(export_key));
}

static int cmd_unknown(struct probe *p)
{
    if (p->o.unknown_account == NULL || p->o.unknown_token == NULL)
        die("--unknown-account and --unknown-token are required");
    char token[TOKEN_MAX + 1];
    snprintf(token, sizeof(token), "%s", p->auth + strlen("Bearer "));
    put("op=unknown account=%s unknown_account=%s", p->o.account, p->o.unknown_account);
    unknown_side(p, "k_", p->o.account, token);
    unknown_side(p, "u_", p->o.unknown_account, p->o.unknown_token);
    flush_line();
    return 0;
}

static int cmd_replay(struct probe *p)
{
    static struct sealed s;
    struct answer a;
    if (p->o.envelope == NULL)
        die("--envelope FILE is required");
    load_sealed(p->o.envelope, &s);
    if (p->o.fresh_id) {
        /*
         * The same request under a new request id and a new encapsulation:
         * what the node sees when an old envelope comes back after the
         * store's request window forgot its id.
         */
        uint8_t payload[BKV_MSG_REQUEST_LEN];
        size_t n = s.payload_len;
        memcpy(payload, s.payload, n);
        int rc = seal(p, s.type, payload, n, &s);
        OPENSSL_cleanse(payload, sizeof(payload));
        if (rc != BKV_OK)
            die("cannot seal the request again: %s", bkv_strerror(rc));
    }
    send_sealed(p, &s, retry_deadline(p), &a, NULL);
    put("op=replay type=%s fresh_id=%d", bkv_msg_type_name(s.type), p->o.fresh_id);
    put_answer("", &a);
    if (a.opened && a.m.payload_len > 0 && s.type == BKV_MSG_LOGIN_INIT)
        put("ke2=1");
    flush_line();
    bkv_ohttp_state_wipe(&s.st);
    return 0;
}

/* --- bad requests ------------------------------------------------------------ */

static const char *const bad_cases[] = {
    "garbage",          /* random bytes as the body */
    "short",            /* the first 5 bytes of a real envelope */
    "truncated",        /* a real envelope without its last 16 bytes */
    "oversized",        /* 256 KiB */
    "invalid-enc",      /* the envelope's HPKE enc is not a point */
    "wrong-key-id",     /* the envelope names another key id */
    "bad-inner",        /* a well-sealed inner message of an unknown version */
    "invalid-point",    /* KE1's blinded element is not on the curve */
    "identity-point",   /* KE1's blinded element is the all-zero encoding */
    "invalid-keyshare", /* KE1's client keyshare has an uncompressed prefix */
    "bad-record",       /* REG_FINISH with a client public key that is not a point */
    "account-mismatch", /* inner account differs from the token's */
    "forged-session",   /* LOGIN_FINISH with a session id no node issued */
    "no-token",         /* no Authorization header */
    "bad-token",        /* a malformed token */
    "tampered-token",   /* the right token with one character of its tag changed */
    "foreign-token",    /* a well-formed token signed with another key */
    "expired-token",    /* a genuine token that expired (needs --router-key) */
    NULL,
};

static void ke1_for(const struct probe *p, uint8_t ke1[static BKV_OPAQUE_KE1_LEN])
{
    struct bkv_opaque_login_client st;
    const char *pw = p->o.password ? p->o.password : "probe";
    if (bkv_opaque_login_start((const uint8_t *)pw, strlen(pw), NULL, &st, ke1) != BKV_OK)
        die("login_start failed");
    bkv_opaque_login_client_wipe(&st);
}

static void mint_token(struct probe *p, const uint8_t key[static BKV_TOKEN_KEY_LEN],
                       uint64_t expiry)
{
    char tok[BKV_TOKEN_MAX_LEN + 1];
    int rc = bkv_token_issue(key, p->o.account, expiry, tok, sizeof(tok));
    if (rc != BKV_OK)
        die("cannot mint a token: %s", bkv_strerror(rc));
    set_token(p, tok);
}

static int cmd_bad(struct probe *p)
{
    static struct sealed s;
    struct answer a;
    uint8_t ke1[BKV_OPAQUE_KE1_LEN], payload[BKV_MSG_REQUEST_LEN];
    const char *c = p->o.bad_case;
    int rc = BKV_OK, known = 0;

    for (size_t i = 0; c != NULL && bad_cases[i] != NULL; i++)
        known |= strcmp(c, bad_cases[i]) == 0;
    if (!known) {
        fprintf(stderr, "bkv-probe: --case is one of:");
        for (size_t i = 0; bad_cases[i] != NULL; i++)
            fprintf(stderr, " %s", bad_cases[i]);
        fputc('\n', stderr);
        return 2;
    }
    ke1_for(p, ke1);
    /* By default the body is a genuine LOGIN_INIT of the token's account. */
    if (strcmp(c, "invalid-point") == 0) {
        ke1[0] = 0x02;
        memset(ke1 + 1, 0xff, 32); /* x >= p */
    } else if (strcmp(c, "identity-point") == 0) {
        memset(ke1, 0, BKV_P256_ELEMENT_LEN);
    } else if (strcmp(c, "invalid-keyshare") == 0) {
        ke1[65] = 0x04;
    }
    if (strcmp(c, "bad-record") == 0) {
        if (RAND_bytes(payload, sizeof(payload)) != 1)
            die("RAND_bytes failed");
        payload[0] = 0x02;
        memset(payload + 1, 0xff, 32);
        rc = seal(p, BKV_MSG_REG_FINISH, payload, bkv_msg_request_payload_len(BKV_MSG_REG_FINISH),
                  &s);
    } else if (strcmp(c, "account-mismatch") == 0) {
        if (p->o.other_account == NULL)
            die("--other-account is required for account-mismatch");
        rc = seal_for(p, BKV_MSG_LOGIN_INIT, p->o.other_account, ke1, sizeof(ke1), &s);
    } else if (strcmp(c, "forged-session") == 0) {
        if (RAND_bytes(payload, BKV_MSG_SESSION_ID_LEN + BKV_OPAQUE_KE3_LEN) != 1)
            die("RAND_bytes failed");
        rc =
            seal(p, BKV_MSG_LOGIN_FINISH, payload, BKV_MSG_SESSION_ID_LEN + BKV_OPAQUE_KE3_LEN, &s);
    } else if (strcmp(c, "bad-inner") == 0) {
        uint8_t inner[BKV_MSG_REQUEST_LEN];
        struct bkv_msg_request q = {.type = BKV_MSG_LOGIN_INIT,
                                    .account = (const uint8_t *)p->o.account,
                                    .account_len = strlen(p->o.account),
                                    .payload = ke1,
                                    .payload_len = sizeof(ke1)};
        if (RAND_bytes(q.request_id, sizeof(q.request_id)) != 1)
            die("RAND_bytes failed");
        rc = bkv_msg_request_encode(&q, inner);
        inner[0] = 2; /* version 2 */
        if (rc == BKV_OK)
            rc = bkv_ohttp_request_encap(&p->kc.ohttp, p->sym, &bkv_ohttp_bkv_labels, NULL, inner,
                                         sizeof(inner), s.body, sizeof(s.body), &s.len, &s.st);
        s.type = BKV_MSG_LOGIN_INIT;
    } else {
        rc = seal(p, BKV_MSG_LOGIN_INIT, ke1, sizeof(ke1), &s);
    }
    if (rc != BKV_OK)
        die("cannot build the request: %s", bkv_strerror(rc));

    if (strcmp(c, "garbage") == 0) {
        s.len = 600;
        if (RAND_bytes(s.body, s.len) != 1)
            die("RAND_bytes failed");
    } else if (strcmp(c, "short") == 0) {
        s.len = 5;
    } else if (strcmp(c, "truncated") == 0) {
        s.len -= 16;
    } else if (strcmp(c, "oversized") == 0) {
        if (RAND_bytes(s.body + s.len, OVERSIZED_LEN - s.len) != 1)
            die("RAND_bytes failed");
        s.len = OVERSIZED_LEN;
    } else if (strcmp(c, "invalid-enc") == 0) {
        s.body[BKV_OHTTP_HEADER_LEN] = 0x04;
        memset(s.body + BKV_OHTTP_HEADER_LEN + 1, 0xff, BKV_HPKE_P256_PK_LEN - 1);
    } else if (strcmp(c, "wrong-key-id") == 0) {
        s.body[0] ^= 0xff;
    } else if (strcmp(c, "no-token") == 0) {
        set_token(p, NULL);
    } else if (strcmp(c, "bad-token") == 0) {
        set_token(p, "bkv1.not-a-token.at-all");
    } else if (strcmp(c, "tampered-token") == 0) {
        size_t n = strlen(p->auth);
        p->auth[n - 2] = p->auth[n - 2] == 'A' ? 'B' : 'A';
    } else if (strcmp(c, "foreign-token") == 0) {
        uint8_t key[BKV_TOKEN_KEY_LEN];
        if (RAND_bytes(key, sizeof(key)) != 1)
            die("RAND_bytes failed");
        mint_token(p, key, (uint64_t)time(NULL) + 3600);
    } else if (strcmp(c, "expired-token") == 0) {
        struct bkv_router_keys keys;
        char err[256];
        if (p->o.router_key == NULL)
            die("--router-key FILE is required for expired-token");
        if (bkv_router_key_load(p->o.router_key, &keys, err, sizeof(err)) != BKV_OK)
            die("%s", err);
        mint_token(p, keys.token_key, (uint64_t)time(NULL) - 120);
        bkv_router_keys_wipe(&keys);
    }
    send_sealed(p, &s, 0, &a, NULL);
    put("op=bad case=%s", c);
    put_answer("", &a);
    flush_line();
    bkv_ohttp_state_wipe(&s.st);
    return 0;
}

/* --- main ---------------------------------------------------------------------- */

static const char usage[] =
    "usage: bkv-probe register|login|recover|guess|unknown|bad|replay [options]\n"
    "  --router H:P --keyconfig FILE     (default $BKV_ROUTER, $BKV_KEYCONFIG)\n"
    "  --account A (--token T | --token-file F) [--timeout-ms MS]\n"
    "  register: --password P [--key HEX] [--save FILE] [--retry-s S]\n"
    "  login, recover: --password P [--expect-key HEX] [--pause] [--save FILE] [--retry-s S]\n"
    "  guess:    --password WRONG --count N [--deadline-s S] [--pace-ms MS]\n"
    "  unknown:  --password P --unknown-account U --unknown-token T\n"
    "  bad:      --case NAME [--other-account B] [--router-key FILE]\n"
    "  replay:   --envelope FILE [--fresh-id] [--retry-s S]\n";

static unsigned parse_uint(const char *s, const char *what)
{
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v > 1000000000ul)
        die("%s: \"%s\" is not a number", what, s);
    return (unsigned)v;
}

int main(int argc, char **argv)
{
    static struct probe p;
    static const struct option longopts[] = {
        {"router", required_argument, NULL, 'r'},
        {"keyconfig", required_argument, NULL, 'k'},
        {"account", required_argument, NULL, 'a'},
        {"token", required_argument, NULL, 't'},
        {"token-file", required_argument, NULL, 'T'},
        {"password", required_argument, NULL, 'p'},
        {"key", required_argument, NULL, 'K'},
        {"expect-key", required_argument, NULL, 'E'},
        {"pause", no_argument, NULL, 'P'},
        {"count", required_argument, NULL, 'n'},
        {"deadline-s", required_argument, NULL, 'd'},
        {"retry-s", required_argument, NULL, 'R'},
        {"timeout-ms", required_argument, NULL, 'm'},
        {"pace-ms", required_argument, NULL, 'g'},
        {"fresh-id", no_argument, NULL, 'F'},
        {"case", required_argument, NULL, 'c'},
        {"other-account", required_argument, NULL, 'o'},
        {"router-key", required_argument, NULL, 'x'},
        {"save", required_argument, NULL, 's'},
        {"envelope", required_argument, NULL, 'e'},
        {"unknown-account", required_argument, NULL, 'u'},
        {"unknown-token", required_argument, NULL, 'U'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    p.o.router = getenv("BKV_ROUTER");
    p.o.keyconfig = getenv("BKV_KEYCONFIG");
    p.o.count = 1;
    optind = 2;
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'r':
            p.o.router = optarg;
            break;
        case 'k':
            p.o.keyconfig = optarg;
            break;
        case 'a':
            p.o.account = optarg;
            break;
        case 't':
            p.o.token = optarg;
            break;
        case 'T':
            p.o.token_file = optarg;
            break;
        case 'p':
            p.o.password = optarg;
            break;
        case 'K':
            p.o.key_hex = optarg;
            break;
        case 'E':
            p.o.expect_hex = optarg;
            break;
        case 'P':
            p.o.pause = 1;
            break;
        case 'n':
            p.o.count = parse_uint(optarg, "--count");
            break;
        case 'd':
            p.o.deadline_s = parse_uint(optarg, "--deadline-s");
            break;
        case 'R':
            p.o.retry_s = parse_uint(optarg, "--retry-s");
            break;
        case 'm':
            p.o.timeout_ms = parse_uint(optarg, "--timeout-ms");
            break;
        case 'g':
            p.o.pace_ms = parse_uint(optarg, "--pace-ms");
            break;
        case 'F':
            p.o.fresh_id = 1;
            break;
        case 'c':
            p.o.bad_case = optarg;
            break;
        case 'o':
            p.o.other_account = optarg;
            break;
        case 'x':
            p.o.router_key = optarg;
            break;
        case 's':
            p.o.save = optarg;
            break;
        case 'e':
            p.o.envelope = optarg;
            break;
        case 'u':
            p.o.unknown_account = optarg;
            break;
        case 'U':
            p.o.unknown_token = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fputs(usage, stderr);
        return 2;
    }
    setup(&p);
    int rc;
    if (strcmp(cmd, "register") == 0)
        rc = cmd_register(&p);
    else if (strcmp(cmd, "login") == 0 || strcmp(cmd, "recover") == 0)
        rc = cmd_login(&p);
    else if (strcmp(cmd, "guess") == 0)
        rc = cmd_guess(&p);
    else if (strcmp(cmd, "unknown") == 0)
        rc = cmd_unknown(&p);
    else if (strcmp(cmd, "bad") == 0)
        rc = cmd_bad(&p);
    else if (strcmp(cmd, "replay") == 0)
        rc = cmd_replay(&p);
    else {
        fprintf(stderr, "bkv-probe: unknown command %s\n%s", cmd, usage);
        rc = 2;
    }
    OPENSSL_cleanse(&p, sizeof(p));
    return rc;
}
