/*
 * libbkv's vault calls: register, recover and delete a backup key through a
 * BKV router, with OPAQUE-3DH inside RFC 9458 envelopes sealed to the realm
 * key config the client pinned.
 *
 * Normal path of one exchange: a fresh random request id, the inner message
 * (proto/msg.h), bkv_ohttp_request_encap to the pinned config, POST
 * /v1/vault with the account token, then the 200 body through
 * bkv_ohttp_response_decap and bkv_msg_response_decode, checking that the
 * answer echoes our type and request id. register is REG_INIT then
 * REG_FINISH (the record and K wrapped under the export key); recover is
 * LOGIN_INIT then LOGIN_FINISH (the release, opened with the session key and
 * then the export key).
 *
 * The key config is pinned by its bytes or by its fingerprint. With only a
 * fingerprint, the first vault call fetches GET /v1/keyconfig and refuses
 * one with another fingerprint (outcome PIN_MISMATCH) before anything else
 * is sent; bkv_client_new itself does no network I/O.
 *
 * Failure modes: HTTP errors map to outcomes (401/403/413/429 REFUSED,
 * 5xx and connection failures UNREACHABLE, anything malformed or that does
 * not authenticate PROTOCOL); the vault's statuses map to WRONG_PASSWORD,
 * DESTROYED and NOT_REGISTERED. Every outcome comes with a sentence for a
 * person in res->message. Secrets (password-derived state, export and
 * session keys, K, envelope state) are wiped on every path.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "client/bkv.h"
#include "client/internal.h"
#include "proto/err.h"
#include "proto/hpke.h"
#include "proto/msg.h"
#include "proto/ohttp.h"
#include "proto/opaque.h"

#define DEFAULT_TIMEOUT_MS 10000
#define TOKEN_MAX          4096
#define ALLOW_IDENTITY_ENV "BKV_TEST_ALLOW_IDENTITY_KSF"

struct bkv_client {
    char *router;
    char *auth; /* "Bearer <token>"; wiped on free */
    uint8_t account[BKV_MSG_ACCOUNT_MAX];
    size_t account_len;
    unsigned timeout_ms;
    int have_fp;
    uint8_t fp[BKV_KEYCONFIG_FP_LEN];
    int have_config;
    struct bkv_keyconfig kc;
    struct bkv_ohttp_symmetric sym;
    uint8_t context[BKV_MSG_CONTEXT_LEN];
    struct bkv_opaque_config opaque; /* context points into this struct */
};

/* The return code that goes with each outcome, so callers can branch on either. */
static int outcome_code(enum bkv_outcome o)
{
    switch (o) {
    case BKV_OUTCOME_OK:
        return BKV_OK;
    case BKV_OUTCOME_WRONG_PASSWORD:
        return BKV_ERR_ENVELOPE;
    case BKV_OUTCOME_DESTROYED:
        return BKV_ERR_LIMIT;
    case BKV_OUTCOME_NOT_REGISTERED:
        return BKV_ERR_INVALID;
    case BKV_OUTCOME_UNREACHABLE:
        return BKV_ERR_IO;
    case BKV_OUTCOME_PIN_MISMATCH:
        return BKV_ERR_MAC;
    case BKV_OUTCOME_REFUSED:
        return BKV_ERR_PERMISSION;
    case BKV_OUTCOME_PROTOCOL:
        break;
    }
    return BKV_ERR_FORMAT;
}

/* Set the outcome and its sentence; returns outcome_code(o). */
__attribute__((format(printf, 3, 4))) static int result(struct bkv_result *res, enum bkv_outcome o,
                                                        const char *fmt, ...)
{
    va_list ap;

    res->outcome = o;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof(res->message), fmt, ap);
    va_end(ap);
    return outcome_code(o);
}

static void result_reset(struct bkv_result *res)
{
    memset(res, 0, sizeof(*res));
    res->outcome = BKV_OUTCOME_PROTOCOL;
}

/* "64 hex digits", ignoring spaces, colons and dashes between them. */
static int parse_fingerprint(const char *text, uint8_t fp[static BKV_KEYCONFIG_FP_LEN])
{
    size_t n = 0;
    int hi = -1;

    for (const char *s = text; *s != '\0'; s++) {
        int v;

        if (*s == ' ' || *s == ':' || *s == '-' || *s == '\t' || *s == '\n')
            continue;
        if (*s >= '0' && *s <= '9')
            v = *s - '0';
        else if (*s >= 'a' && *s <= 'f')
            v = *s - 'a' + 10;
        else if (*s >= 'A' && *s <= 'F')
            v = *s - 'A' + 10;
        else
            return BKV_ERR_FORMAT;
        if (hi < 0) {
            hi = v;
            continue;
        }
        if (n == BKV_KEYCONFIG_FP_LEN)
            return BKV_ERR_LENGTH;
        fp[n++] = (uint8_t)(hi << 4 | v);
        hi = -1;
    }
    return n == BKV_KEYCONFIG_FP_LEN && hi < 0 ? BKV_OK : BKV_ERR_LENGTH;
}

static int identity_ksf_allowed(void)
{
    const char *v = getenv(ALLOW_IDENTITY_ENV);

    return v != NULL && strcmp(v, "1") == 0;
}

/*
 * Decode a key config whose fingerprint is already trusted and make it the
 * client's: a P-256 KEM, a supported suite (AES-256-GCM preferred), and a
 * real KSF. On failure c is unchanged and err has the reason.
 */
static int adopt_keyconfig(struct bkv_client *c, const uint8_t *enc, size_t len, char *err,
                           size_t err_cap)
{
    struct bkv_keyconfig kc;
    struct bkv_ohttp_symmetric sym = {0, 0};
    int rc;

    rc = bkv_keyconfig_decode(enc, len, &kc);
    if (rc != BKV_OK) {
        bkv_client_err(err, err_cap, "the realm key config is not valid (%s)", bkv_strerror(rc));
        return rc;
    }
    if (kc.ohttp.kem != BKV_HPKE_KEM_P256_SHA256) {
        bkv_client_err(err, err_cap,
                       "the realm key config uses KEM 0x%04x; BKV realms use DHKEM(P-256) only",
                       (unsigned)kc.ohttp.kem);
        return BKV_ERR_UNSUPPORTED;
    }
    for (size_t i = 0; i < kc.ohttp.suite_count; i++) {
        struct bkv_ohttp_symmetric s = kc.ohttp.suites[i];

        if (s.kdf != BKV_HPKE_KDF_HKDF_SHA256)
            continue;
        if (s.aead == BKV_HPKE_AEAD_AES_256_GCM) {
            sym = s;
            break;
        }
        if (s.aead == BKV_HPKE_AEAD_AES_128_GCM && sym.aead == 0)
            sym = s;
    }
    if (sym.aead == 0) {
        bkv_client_err(err, err_cap,
                       "the realm key config offers no suite this client supports "
                       "(HKDF-SHA256 with AES-256-GCM or AES-128-GCM)");
        return BKV_ERR_UNSUPPORTED;
    }
    if (kc.ksf.kind == BKV_KSF_IDENTITY && !identity_ksf_allowed()) {
        bkv_client_err(
            err, err_cap,
            "the realm key config uses the Identity KSF, which is for test vectors only and "
            "would leave passwords unprotected; refusing it");
        return BKV_ERR_UNSUPPORTED;
    }
    if (kc.ksf.kind != BKV_KSF_IDENTITY && kc.ksf.kind != BKV_KSF_ARGON2ID) {
        bkv_client_err(err, err_cap, "the realm key config names an unknown KSF");
        return BKV_ERR_UNSUPPORTED;
    }
    c->kc = kc;
    c->sym = sym;
    bkv_keyconfig_opaque(&c->kc, c->context, &c->opaque);
    c->have_config = 1;
    return BKV_OK;
}

int bkv_client_new(const struct bkv_client_config *cfg, struct bkv_client **out, char *err,
                   size_t err_cap)
{
    struct bkv_client *c = NULL;
    size_t token_len, account_len, auth_len;
    int rc;

    if (out != NULL)
        *out = NULL;
    if (cfg == NULL || out == NULL) {
        bkv_client_err(err, err_cap, "internal error: bkv_client_new without a config");
        return BKV_ERR_INVALID;
    }
    if (cfg->router == NULL || cfg->router[0] == '\0') {
        bkv_client_err(err, err_cap, "no router address given (host:port)");
        return BKV_ERR_INVALID;
    }
    {
        char host[BKV_CLIENT_HTTP_HOST_MAX], port[8];

        if (bkv_client_http_split(cfg->router, host, port) != BKV_OK) {
            bkv_client_err(err, err_cap, "the router address \"%s\" is not host:port", cfg->router);
            return BKV_ERR_INVALID;
        }
    }
    account_len = cfg->account != NULL ? strlen(cfg->account) : 0;
    if (!bkv_msg_account_valid((const uint8_t *)cfg->account, account_len)) {
        bkv_client_err(err, err_cap,
                       "the account id must be 1 to %d characters of letters, digits and . _ @ + -",
                       BKV_MSG_ACCOUNT_MAX);
        return BKV_ERR_INVALID;
    }
    token_len = cfg->token != NULL ? strlen(cfg->token) : 0;
    if (token_len == 0 || token_len > TOKEN_MAX) {
        bkv_client_err(err, err_cap, "the account token is %s",
                       token_len == 0 ? "empty" : "too long");
        return BKV_ERR_INVALID;
    }
    for (size_t i = 0; i < token_len; i++) {
        unsigned char ch = (unsigned char)cfg->token[i];

        if (ch <= 0x20 || ch >= 0x7f) {
            bkv_client_err(
                err, err_cap,
                "the account token contains a space or a control character; it should be "
                "one line of the form bkv1.<payload>.<tag>");
            return BKV_ERR_INVALID;
        }
    }
    if ((cfg->keyconfig == NULL || cfg->keyconfig_len == 0) && cfg->fingerprint == NULL) {
        bkv_client_err(err, err_cap,
                       "no realm key config to trust: give its bytes or its fingerprint");
        return BKV_ERR_INVALID;
    }

    c = calloc(1, sizeof(*c));
    if (c == NULL)
        goto nomem;
    c->router = strdup(cfg->router);
    auth_len = sizeof("Bearer ") + token_len;
    c->auth = malloc(auth_len);
    if (c->router == NULL || c->auth == NULL)
        goto nomem;
    snprintf(c->auth, auth_len, "Bearer %s", cfg->token);
    memcpy(c->account, cfg->account, account_len);
    c->account_len = account_len;
    c->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;

    if (cfg->fingerprint != NULL) {
        if (parse_fingerprint(cfg->fingerprint, c->fp) != BKV_OK) {
            bkv_client_err(err, err_cap, "the key config fingerprint must be 64 hex digits");
            rc = BKV_ERR_INVALID;
            goto fail;
        }
        c->have_fp = 1;
    }
    if (cfg->keyconfig != NULL && cfg->keyconfig_len > 0) {
        uint8_t fp[BKV_KEYCONFIG_FP_LEN];

        if (cfg->keyconfig_len > BKV_KEYCONFIG_MAX_LEN) {
            bkv_client_err(err, err_cap, "the realm key config is too long to be one");
            rc = BKV_ERR_LENGTH;
            goto fail;
        }
        rc = bkv_keyconfig_fingerprint(cfg->keyconfig, cfg->keyconfig_len, fp);
        if (rc != BKV_OK) {
            bkv_client_err(err, err_cap, "cannot compute the key config fingerprint (%s)",
                           bkv_strerror(rc));
            goto fail;
        }
        if (c->have_fp && CRYPTO_memcmp(fp, c->fp, sizeof(fp)) != 0) {
            bkv_client_err(
                err, err_cap,
                "the key config given does not match the pinned fingerprint; check which "
                "realm the app should trust");
            rc = BKV_ERR_MAC;
            goto fail;
        }
        memcpy(c->fp, fp, sizeof(fp));
        c->have_fp = 1;
        rc = adopt_keyconfig(c, cfg->keyconfig, cfg->keyconfig_len, err, err_cap);
        if (rc != BKV_OK)
            goto fail;
    }
    *out = c;
    return BKV_OK;

nomem:
    bkv_client_err(err, err_cap, "out of memory");
    rc = BKV_ERR_NOMEM;
fail:
    bkv_client_free(c);
    return rc;
}

void bkv_client_free(struct bkv_client *c)
{
    if (c == NULL)
        return;
    free(c->router);
    if (c->auth != NULL) {
        OPENSSL_cleanse(c->auth, strlen(c->auth));
        free(c->auth);
    }
    OPENSSL_cleanse(c, sizeof(*c));
    free(c);
}

/* --- HTTP ----------------------------------------------------------------- */

/* The first line of a text answer, printable ASCII only, for a message. */
static void body_excerpt(const struct bkv_client_http_response *r, char *out, size_t cap)
{
    size_t n = 0;

    if (cap == 0)
        return;
    if (r->body != NULL && strncmp(r->content_type, "text/", 5) == 0)
        for (size_t i = 0; i < r->body_len && n + 1 < cap && n < 100; i++) {
            unsigned char ch = r->body[i];

            if (ch == '\n' || ch == '\r')
                break;
            out[n++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
        }
    out[n] = '\0';
}

/* A non-200 answer from the router, as an outcome. */
static int http_result(const struct bkv_client *c, const struct bkv_client_http_response *r,
                       struct bkv_result *res)
{
    char why[128], detail[132];

    body_excerpt(r, why, sizeof(why));
    snprintf(detail, sizeof(detail), "%s%s", why[0] ? ": " : "", why);
    res->retry_after_s = r->retry_after_s;
    switch (r->status) {
    case 401:
        return result(res, BKV_OUTCOME_REFUSED,
                      "the router refused the account token (401%s); get a new token from the "
                      "app and try again",
                      detail);
    case 403:
        return result(res, BKV_OUTCOME_REFUSED,
                      "the router refused the request for this account (403%s); check that the "
                      "token belongs to account \"%.*s\"",
                      detail, (int)c->account_len, (const char *)c->account);
    case 413:
        return result(res, BKV_OUTCOME_REFUSED,
                      "the router refused the request as too large (413); the client and the "
                      "router may be different versions");
    case 429:
        if (r->retry_after_s > 0)
            return result(res, BKV_OUTCOME_REFUSED,
                          "the router is limiting requests for this account (429); try again "
                          "in %u seconds",
                          r->retry_after_s);
        return result(res, BKV_OUTCOME_REFUSED,
                      "the router is limiting requests for this account (429); try again later");
    case 503:
        if (r->retry_after_s > 0)
            return result(res, BKV_OUTCOME_UNREACHABLE,
                          "the vault is not available right now (503%s); try again in %u "
                          "seconds",
                          detail, r->retry_after_s);
        return result(res, BKV_OUTCOME_UNREACHABLE,
                      "the vault is not available right now (503%s); try again later", detail);
    default:
        break;
    }
    if (r->status >= 500)
        return result(res, BKV_OUTCOME_UNREACHABLE,
                      "the router at %s could not get an answer from the vault (%d%s); try again "
                      "later",
                      c->router, r->status, detail);
    return result(res, BKV_OUTCOME_PROTOCOL,
                  "the router at %s answered %d%s; the client and the router may be different "
                  "versions",
                  c->router, r->status, detail);
}

/* An error from bkv_client_http_do, as an outcome. */
static int transport_result(int rc, const char *why, struct bkv_result *res)
{
    if (rc == BKV_ERR_IO || rc == BKV_ERR_LIMIT)
        return result(res, BKV_OUTCOME_UNREACHABLE,
                      "%s; check the address and the network, "
                      "then try again",
                      why);
    return result(res, BKV_OUTCOME_PROTOCOL, "%s", why);
}

/* Fetch and check the router's copy of the key config against the pinned fingerprint. */
static int ensure_keyconfig(struct bkv_client *c, struct bkv_result *res)
{
    struct bkv_client_http_request req = {
        .method = "GET", .path = "/v1/keyconfig", .accept = "application/bkv-keyconfig"};
    struct bkv_client_http_response r;
    uint8_t fp[BKV_KEYCONFIG_FP_LEN];
    char why[200];
    int rc;

    if (c->have_config)
        return BKV_OK;
    memset(&r, 0, sizeof(r));
    rc = bkv_client_http_do(c->router, &req, BKV_KEYCONFIG_MAX_LEN, c->timeout_ms, &r, why,
                            sizeof(why));
    if (rc != BKV_OK)
        return transport_result(rc, why, res);
    if (r.status != 200) {
        rc = http_result(c, &r, res);
        goto out;
    }
    if (r.body == NULL || bkv_keyconfig_fingerprint(r.body, r.body_len, fp) != BKV_OK ||
        CRYPTO_memcmp(fp, c->fp, sizeof(fp)) != 0) {
        rc = result(res, BKV_OUTCOME_PIN_MISMATCH,
                    "the router's key config does not match the pinned fingerprint; refusing to "
                    "send anything. Check the fingerprint, or the router may be an impostor");
        goto out;
    }
    rc = adopt_keyconfig(c, r.body, r.body_len, why, sizeof(why));
    if (rc != BKV_OK) {
        rc = result(res, BKV_OUTCOME_PROTOCOL, "%s", why);
        goto out;
    }
out:
    bkv_client_http_response_free(&r);
    return rc;
}

/*
 * One request and its verified answer. On 0, *m is the decoded response and
 * its payload points into plain (the caller wipes plain); any vault status
 * counts as success here. Otherwise res is set and its code returned.
 */
static int exchange_once(struct bkv_client *c, enum bkv_msg_type type, const uint8_t *payload,
                         size_t payload_len, uint8_t plain[static BKV_MSG_RESPONSE_LEN],
                         struct bkv_msg_response *m, struct bkv_result *res)
{
    struct bkv_msg_request q = {.type = type,
                                .account = c->account,
                                .account_len = c->account_len,
                                .payload = payload,
                                .payload_len = payload_len};
    struct bkv_client_http_request req = {.method = "POST",
                                          .path = "/v1/vault",
                                          .authorization = c->auth,
                                          .content_type = "message/bkv-request",
                                          .accept = "message/bkv-response"};
    struct bkv_client_http_response r;
    struct bkv_ohttp_state st;
    uint8_t inner[BKV_MSG_REQUEST_LEN];
    uint8_t *body = NULL;
    size_t body_cap, body_len = 0, plain_len = 0;
    char why[200];
    int rc;

    memset(&r, 0, sizeof(r));
    memset(&st, 0, sizeof(st));
    if (RAND_bytes(q.request_id, sizeof(q.request_id)) != 1) {
        rc = result(res, BKV_OUTCOME_PROTOCOL, "the system's random generator failed");
        goto out;
    }
    rc = bkv_msg_request_encode(&q, inner);
    if (rc != BKV_OK) {
        rc = result(res, BKV_OUTCOME_PROTOCOL, "internal error: cannot encode the %s request (%s)",
                    bkv_msg_type_name(type), bkv_strerror(rc));
        goto out;
    }
    body_cap = bkv_ohttp_request_len(c->kc.ohttp.kem, sizeof(inner));
    body = body_cap ? malloc(body_cap) : NULL;
    if (body == NULL) {
        rc = result(res, BKV_OUTCOME_PROTOCOL, "out of memory");
        goto out;
    }
    rc = bkv_ohttp_request_encap(&c->kc.ohttp, c->sym, &bkv_ohttp_bkv_labels, NULL, inner,
                                 sizeof(inner), body, body_cap, &body_len, &st);
    if (rc != BKV_OK) {
        rc = result(res, BKV_OUTCOME_PROTOCOL, "cannot seal the request to the realm key (%s)",
                    bkv_strerror(rc));
        goto out;
    }
    req.body = body;
    req.body_len = body_len;
    rc = bkv_client_http_do(c->router, &req, BKV_OHTTP_MAX_RESPONSE_LEN, c->timeout_ms, &r, why,
                            sizeof(why));
    if (rc != BKV_OK) {
        rc = transport_result(rc, why, res);
        goto out;
    }
    if (r.status != 200) {
        rc = http_result(c, &r, res);
        goto out;
    }
    rc = r.body != NULL ? bkv_ohttp_response_decap(&st, r.body, r.body_len, plain,
                                                   BKV_MSG_RESPONSE_LEN, &plain_len)
                        : BKV_ERR_LENGTH;
    if (rc != BKV_OK || plain_len != BKV_MSG_RESPONSE_LEN) {
        rc = result(res, BKV_OUTCOME_PROTOCOL,
                    "the vault's answer did not authenticate (%s); nothing was accepted. The "
                    "router may be misbehaving; try again later",
                    bkv_strerror(rc != BKV_OK ? rc : BKV_ERR_LENGTH));
        goto out;
    }
    rc = bkv_msg_response_decode(plain, plain_len, m);
    if (rc != BKV_OK || m->type != type ||
        memcmp(m->request_id, q.request_id, sizeof(q.request_id)) != 0) {
        rc = result(res, BKV_OUTCOME_PROTOCOL,
                    "the vault's answer is not an answer to this %s request (%s); the client "
                    "and the vault may be different versions",
                    bkv_msg_type_name(type), rc != BKV_OK ? bkv_strerror(rc) : "wrong echo");
        goto out;
    }
    res->attempts_left = m->attempts_left;
    res->max_attempts = m->max_attempts;
    rc = BKV_OK;
out:
    bkv_client_http_response_free(&r);
    bkv_ohttp_state_wipe(&st);
    OPENSSL_cleanse(inner, sizeof(inner));
    if (body != NULL) {
        OPENSSL_cleanse(body, body_cap);
        free(body);
    }
    return rc;
}

/*
 * exchange_once, again once with a new request id if the vault says the id
 * was REPLAYED (it has counted a request with that id before, so it will not
 * answer it twice).
 */
static int exchange(struct bkv_client *c, enum bkv_msg_type type, const uint8_t *payload,
                    size_t payload_len, uint8_t plain[static BKV_MSG_RESPONSE_LEN],
                    struct bkv_msg_response *m, struct bkv_result *res)
{
    int rc = exchange_once(c, type, payload, payload_len, plain, m, res);

    if (rc == BKV_OK && m->status == BKV_MSG_REPLAYED) {
        OPENSSL_cleanse(plain, BKV_MSG_RESPONSE_LEN);
        rc = exchange_once(c, type, payload, payload_len, plain, m, res);
    }
    return rc;
}

static int wrong_password_result(struct bkv_result *res, uint32_t left)
{
    if (left == 0)
        return result(res, BKV_OUTCOME_WRONG_PASSWORD,
                      "wrong password, and that was the last attempt: the vault will not take "
                      "another guess, so the key cannot be recovered. Use your written-down key "
                      "or start a new backup.");
    return result(res, BKV_OUTCOME_WRONG_PASSWORD,
                  "wrong password: %u attempt%s left before the key is destroyed", left,
                  left == 1 ? "" : "s");
}

/* A vault status other than OK, as an outcome. */
static int status_result(const struct bkv_msg_response *m, struct bkv_result *res)
{
    switch (m->status) {
    case BKV_MSG_OK:
        break;
    case BKV_MSG_WRONG_PASSWORD:
        return wrong_password_result(res, m->attempts_left);
    case BKV_MSG_DESTROYED:
        return result(res, BKV_OUTCOME_DESTROYED,
                      "the key was destroyed after too many wrong passwords; it cannot be "
                      "recovered. Use your written-down key or start a new backup.");
    case BKV_MSG_NOT_REGISTERED:
        return result(res, BKV_OUTCOME_NOT_REGISTERED,
                      "no key is registered for this account; check the account, or register "
                      "a key first");
    case BKV_MSG_SESSION_UNKNOWN:
        return result(res, BKV_OUTCOME_UNREACHABLE,
                      "the vault lost the login session twice (its leader changed); try again "
                      "in a moment");
    case BKV_MSG_REPLAYED:
        return result(res, BKV_OUTCOME_PROTOCOL,
                      "the vault refused the request as a replay twice; try again");
    case BKV_MSG_BAD_REQUEST:
        return result(res, BKV_OUTCOME_PROTOCOL,
                      "the vault could not use the request (bad request); the client and the "
                      "vault may be different versions");
    case BKV_MSG_UNAVAILABLE:
        return result(res, BKV_OUTCOME_UNREACHABLE,
                      "the vault failed internally and changed nothing; try again later");
    }
    return result(res, BKV_OUTCOME_PROTOCOL, "the vault answered with an unknown status %d",
                  (int)m->status);
}

/* An error from proto/ while running OPAQUE on this device. */
static int local_result(struct bkv_result *res, const char *step, int rc)
{
    if (rc == BKV_ERR_KSF || rc == BKV_ERR_NOMEM)
        return result(res, BKV_OUTCOME_PROTOCOL,
                      "stretching the password failed on this device (%s); close other "
                      "programs to free memory and try again",
                      bkv_strerror(rc));
    return result(res, BKV_OUTCOME_PROTOCOL, "%s failed (%s)", step, bkv_strerror(rc));
}

static int check_args(struct bkv_client *c, const uint8_t *password, size_t password_len,
                      struct bkv_result *res)
{
    if (res == NULL)
        return BKV_ERR_INVALID;
    result_reset(res);
    if (c == NULL || (password == NULL && password_len > 0)) {
        result(res, BKV_OUTCOME_PROTOCOL, "internal error: missing client or password");
        return BKV_ERR_INVALID;
    }
    return BKV_OK;
}

/*
 * One registration. *stale is set when REG_FINISH came back SESSION_UNKNOWN:
 * the ticket from REG_INIT expired or the account changed in between (proto/msg.h).
 */
static int register_once(struct bkv_client *c, const uint8_t *password, size_t password_len,
                         const uint8_t key[BKV_KEY_LEN], struct bkv_result *res, int *stale)
{
    struct bkv_opaque_reg_client st;
    struct bkv_opaque_ids ids;
    struct bkv_msg_response m;
    uint8_t regreq[BKV_OPAQUE_REG_REQUEST_LEN];
    uint8_t finish[BKV_OPAQUE_RECORD_LEN + BKV_MSG_WRAPPED_LEN + BKV_MSG_TICKET_LEN];
    uint8_t export_key[BKV_OPAQUE_KEY_LEN];
    uint8_t plain[BKV_MSG_RESPONSE_LEN];
    int rc;

    memset(&st, 0, sizeof(st));
    memset(plain, 0, sizeof(plain));
    memset(export_key, 0, sizeof(export_key));
    memset(finish, 0, sizeof(finish));
    rc = check_args(c, password, password_len, res);
    if (rc != BKV_OK)
        return rc;
    if (key == NULL) {
        result(res, BKV_OUTCOME_PROTOCOL, "internal error: no key to register");
        return BKV_ERR_INVALID;
    }
    rc = ensure_keyconfig(c, res);
    if (rc != BKV_OK)
        goto out;
    ids = (struct bkv_opaque_ids){c->account, c->account_len, NULL, 0};

    rc = bkv_opaque_reg_start(password, password_len, NULL, &st, regreq);
    if (rc != BKV_OK) {
        rc = local_result(res, "starting the registration", rc);
        goto out;
    }
    rc = exchange(c, BKV_MSG_REG_INIT, regreq, sizeof(regreq), plain, &m, res);
    if (rc != BKV_OK)
        goto out;
    if (m.status != BKV_MSG_OK) {
        rc = status_result(&m, res);
        goto out;
    }
    /* The answer is the RegistrationResponse and the ticket REG_FINISH must echo. */
    memcpy(finish + BKV_OPAQUE_RECORD_LEN + BKV_MSG_WRAPPED_LEN,
           m.payload + BKV_OPAQUE_REG_RESPONSE_LEN, BKV_MSG_TICKET_LEN);
    rc = bkv_opaque_reg_finish(&c->opaque, password, password_len, &st, &ids, NULL, m.payload,
                               BKV_OPAQUE_REG_RESPONSE_LEN, finish, export_key, NULL);
    if (rc != BKV_OK) {
        if (rc == BKV_ERR_POINT || rc == BKV_ERR_LENGTH || rc == BKV_ERR_SCALAR)
            rc = result(res, BKV_OUTCOME_PROTOCOL,
                        "the vault's registration answer is not valid (%s); nothing was "
                        "registered",
                        bkv_strerror(rc));
        else
            rc = local_result(res, "finishing the registration", rc);
        goto out;
    }
    rc = bkv_msg_wrap_key(export_key, c->account, c->account_len, key,
                          finish + BKV_OPAQUE_RECORD_LEN);
    if (rc != BKV_OK) {
        rc = local_result(res, "wrapping the key", rc);
        goto out;
    }
    OPENSSL_cleanse(plain, sizeof(plain));
    rc = exchange(c, BKV_MSG_REG_FINISH, finish, sizeof(finish), plain, &m, res);
    if (rc != BKV_OK)
        goto out;
    if (m.status == BKV_MSG_SESSION_UNKNOWN)
        *stale = 1;
    if (m.status != BKV_MSG_OK) {
        rc = status_result(&m, res);
        goto out;
    }
    if (m.max_attempts > 0)
        rc = result(res, BKV_OUTCOME_OK,
                    "registered: the vault holds the key for this account; after %u wrong "
                    "passwords in a row it is destroyed",
                    m.max_attempts);
    else
        rc = result(res, BKV_OUTCOME_OK, "registered: the vault holds the key for this account");
out:
    bkv_opaque_reg_client_wipe(&st);
    OPENSSL_cleanse(export_key, sizeof(export_key));
    OPENSSL_cleanse(finish, sizeof(finish));
    OPENSSL_cleanse(plain, sizeof(plain));
    return rc;
}

int bkv_register(struct bkv_client *c, const uint8_t *password, size_t password_len,
                 const uint8_t key[BKV_KEY_LEN], struct bkv_result *res)
{
    /* A stale ticket (the account changed between REG_INIT and REG_FINISH) costs nothing:
     * start the registration over once. */
    int stale = 0;
    int rc = register_once(c, password, password_len, key, res, &stale);
    if (stale) {
        stale = 0;
        rc = register_once(c, password, password_len, key, res, &stale);
    }
    return rc;
}

int bkv_recover(struct bkv_client *c, const uint8_t *password, size_t password_len,
                uint8_t key[BKV_KEY_LEN], struct bkv_result *res)
{
    struct bkv_opaque_login_client st;
    struct bkv_opaque_ids ids;
    struct bkv_msg_response m;
    uint8_t ke1[BKV_OPAQUE_KE1_LEN];
    uint8_t ke2[BKV_OPAQUE_KE2_LEN];
    uint8_t finish[BKV_MSG_SESSION_ID_LEN + BKV_OPAQUE_KE3_LEN];
    uint8_t session_key[BKV_OPAQUE_KEY_LEN], export_key[BKV_OPAQUE_KEY_LEN];
    uint8_t wrapped[BKV_MSG_WRAPPED_LEN], k[BKV_MSG_KEY_LEN];
    uint8_t plain[BKV_MSG_RESPONSE_LEN];
    uint32_t init_left = 0;
    int rc, wrong = 0;

    memset(&st, 0, sizeof(st));
    memset(plain, 0, sizeof(plain));
    memset(session_key, 0, sizeof(session_key));
    memset(export_key, 0, sizeof(export_key));
    memset(k, 0, sizeof(k));
    memset(wrapped, 0, sizeof(wrapped));
    rc = check_args(c, password, password_len, res);
    if (rc != BKV_OK)
        return rc;
    if (key == NULL) {
        result(res, BKV_OUTCOME_PROTOCOL, "internal error: nowhere to put the key");
        return BKV_ERR_INVALID;
    }
    rc = ensure_keyconfig(c, res);
    if (rc != BKV_OK)
        goto out;
    ids = (struct bkv_opaque_ids){c->account, c->account_len, NULL, 0};

    for (int round = 0;; round++) {
        wrong = 0;
        rc = bkv_opaque_login_start(password, password_len, NULL, &st, ke1);
        if (rc != BKV_OK) {
            rc = local_result(res, "starting the login", rc);
            goto out;
        }
        rc = exchange(c, BKV_MSG_LOGIN_INIT, ke1, sizeof(ke1), plain, &m, res);
        if (rc != BKV_OK)
            goto out;
        if (m.status != BKV_MSG_OK) {
            rc = status_result(&m, res);
            goto out;
        }
        init_left = m.attempts_left;
        memcpy(finish, m.payload, BKV_MSG_SESSION_ID_LEN);
        memcpy(ke2, m.payload + BKV_MSG_SESSION_ID_LEN, sizeof(ke2));
        OPENSSL_cleanse(plain, sizeof(plain));

        rc =
            bkv_opaque_login_finish(&c->opaque, &st, password, password_len, &ids, ke2, sizeof(ke2),
                                    finish + BKV_MSG_SESSION_ID_LEN, session_key, export_key, NULL);
        if (rc == BKV_ERR_ENVELOPE) {
            /*
             * A wrong password, or the fake record of an unknown account:
             * the envelope does not open, so there is no real KE3. Send a
             * random one anyway; the node then says WRONG_PASSWORD (with the
             * attempts left) or NOT_REGISTERED, which is how we learn which.
             */
            wrong = 1;
            if (RAND_bytes(finish + BKV_MSG_SESSION_ID_LEN, BKV_OPAQUE_KE3_LEN) != 1) {
                rc = result(res, BKV_OUTCOME_PROTOCOL, "the system's random generator failed");
                goto out;
            }
        } else if (rc == BKV_ERR_MAC || rc == BKV_ERR_POINT || rc == BKV_ERR_LENGTH) {
            rc = result(res, BKV_OUTCOME_PROTOCOL,
                        "the vault's login answer did not authenticate (%s); nothing was sent. "
                        "The vault may be misbehaving; try again later",
                        bkv_strerror(rc));
            goto out;
        } else if (rc != BKV_OK) {
            rc = local_result(res, "finishing the login", rc);
            goto out;
        }

        rc = exchange(c, BKV_MSG_LOGIN_FINISH, finish, sizeof(finish), plain, &m, res);
        if (rc != BKV_OK)
            goto out;
        if (m.status == BKV_MSG_SESSION_UNKNOWN && wrong) {
            /*
             * The password already failed here, so starting over would only
             * spend another attempt to hear what we know. Report it with the
             * count LOGIN_INIT gave.
             */
            res->attempts_left = init_left;
            rc = result(res, BKV_OUTCOME_WRONG_PASSWORD,
                        "wrong password, or no key is registered for this account (the vault "
                        "changed leader before it could say which); at most %u attempt%s left",
                        init_left, init_left == 1 ? "" : "s");
            goto out;
        }
        if (m.status == BKV_MSG_SESSION_UNKNOWN && round == 0) {
            /*
             * The node that issued KE2 is no longer the leader and the new
             * one has no such session: start the login over once. This
             * costs one more attempt against the guess limit, since the
             * first LOGIN_INIT was counted and never confirmed by a KE3
             * (the counter is reset only by a successful one).
             */
            OPENSSL_cleanse(session_key, sizeof(session_key));
            OPENSSL_cleanse(export_key, sizeof(export_key));
            OPENSSL_cleanse(plain, sizeof(plain));
            continue;
        }
        if (m.status != BKV_MSG_OK) {
            rc = status_result(&m, res);
            goto out;
        }
        break;
    }
    if (wrong) {
        rc = result(res, BKV_OUTCOME_PROTOCOL,
                    "the vault accepted a login this client knows to be wrong; refusing the "
                    "answer");
        goto out;
    }
    rc = bkv_msg_release_open(session_key, finish, m.payload, wrapped);
    if (rc == BKV_OK)
        rc = bkv_msg_unwrap_key(export_key, c->account, c->account_len, wrapped, k);
    if (rc != BKV_OK) {
        rc = result(res, BKV_OUTCOME_PROTOCOL,
                    "the vault released a key that does not open with this password (%s); the "
                    "registration may be damaged. Use your written-down key",
                    bkv_strerror(rc));
        goto out;
    }
    memcpy(key, k, BKV_KEY_LEN);
    rc = result(res, BKV_OUTCOME_OK, "recovered: the key was released by the vault");
out:
    bkv_opaque_login_client_wipe(&st);
    OPENSSL_cleanse(session_key, sizeof(session_key));
    OPENSSL_cleanse(export_key, sizeof(export_key));
    OPENSSL_cleanse(wrapped, sizeof(wrapped));
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(plain, sizeof(plain));
    OPENSSL_cleanse(finish, sizeof(finish));
    OPENSSL_cleanse(ke2, sizeof(ke2));
    return rc;
}

int bkv_delete(struct bkv_client *c, struct bkv_result *res)
{
    struct bkv_msg_response m;
    uint8_t plain[BKV_MSG_RESPONSE_LEN];
    int rc;

    memset(plain, 0, sizeof(plain));
    rc = check_args(c, NULL, 0, res);
    if (rc != BKV_OK)
        return rc;
    rc = ensure_keyconfig(c, res);
    if (rc != BKV_OK)
        goto out;
    rc = exchange(c, BKV_MSG_DELETE, NULL, 0, plain, &m, res);
    if (rc != BKV_OK)
        goto out;
    if (m.status != BKV_MSG_OK) {
        rc = status_result(&m, res);
        goto out;
    }
    rc = result(res, BKV_OUTCOME_OK, "deleted: the vault no longer holds a key for this account");
out:
    OPENSSL_cleanse(plain, sizeof(plain));
    return rc;
}
