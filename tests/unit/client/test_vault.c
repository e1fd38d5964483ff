/*
 * client/vault.c: libbkv's register, recover and delete, without a cluster.
 *
 * A fake router in this file answers like one BKV node would: it opens each
 * envelope with a software P-256 key (bkv_ohttp_request_decap), runs the
 * OPAQUE server side from proto/ (a real record after registration, a fake
 * record for unknown accounts), counts attempts against a limit, and seals
 * its answer with bkv_ohttp_response_encap. Knobs make it answer
 * SESSION_UNKNOWN or REPLAYED, serve another key config, tamper with its
 * answer, or fail at the HTTP level.
 *
 * Checked: the key config pin (bytes, fingerprint, both; a mismatch sends
 * nothing), the refusal of the Identity KSF, what goes on the wire (path,
 * token, content type, suite, fixed-size inner message, fresh request ids),
 * the full register/recover/delete flows with wrong passwords, destruction
 * and unknown accounts, the automatic restart after SESSION_UNKNOWN and the
 * retry after REPLAYED, and the mapping of HTTP failures to outcomes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "client/bkv.h"
#include "fake_router.h"
#include "harness.h"
#include "proto/err.h"
#include "proto/hpke.h"
#include "proto/msg.h"
#include "proto/ohttp.h"
#include "proto/opaque.h"
#include "proto/util.h"

#define LIMIT   3
#define ACCOUNT "alice@example.org"
#define TOKEN   "bkv1.AAAAAAAAAAA.tag"

/* --- the fake vault ------------------------------------------------------- */

struct realm {
    uint8_t sk[BKV_HPKE_SK_LEN];
    struct bkv_keyconfig kc;
    uint8_t enc[BKV_KEYCONFIG_MAX_LEN];
    size_t enc_len;
    char fp_hex[2 * BKV_KEYCONFIG_FP_LEN + 1];
};

static struct {
    struct realm realm;        /* the config the vault decrypts with */
    const struct realm *serve; /* what GET /v1/keyconfig serves */
    struct bkv_opaque_server_keys keys;
    uint8_t fake_secret[32];
    uint8_t ctx[BKV_MSG_CONTEXT_LEN];
    struct bkv_opaque_config opaque;

    /* one account's state */
    int registered, destroyed;
    uint32_t counter;
    uint8_t record[BKV_OPAQUE_RECORD_LEN];
    uint8_t wrapped[BKV_MSG_WRAPPED_LEN];
    uint8_t session_id[BKV_MSG_SESSION_ID_LEN];
    struct bkv_opaque_login_server session;

    /* knobs */
    int session_unknown;   /* answer LOGIN_FINISH with SESSION_UNKNOWN this many times */
    int replayed;          /* answer LOGIN_INIT with REPLAYED this many times */
    const char *http_head; /* answer POST /v1/vault with this instead */
    int tamper;            /* flip a byte of the encapsulated answer */
    int wrong_echo;        /* answer with another request id */

    /* what was seen */
    unsigned vault_posts, login_inits, keyconfig_gets;
    uint8_t last_ids[8][BKV_MSG_REQUEST_ID_LEN];
    unsigned n_ids;
    struct fake_request last;
    uint8_t last_body[2048];
    size_t last_body_len;
    uint8_t last_inner[BKV_MSG_REQUEST_LEN];
} v;

static const struct bkv_ohttp_symmetric aes128 = {BKV_HPKE_KDF_HKDF_SHA256,
                                                  BKV_HPKE_AEAD_AES_128_GCM};
static const struct bkv_ohttp_symmetric aes256 = {BKV_HPKE_KDF_HKDF_SHA256,
                                                  BKV_HPKE_AEAD_AES_256_GCM};

static void make_realm(struct realm *r, uint8_t seed, struct bkv_ksf ksf, int only128)
{
    uint8_t ikm[32], fp[BKV_KEYCONFIG_FP_LEN];

    memset(r, 0, sizeof(*r));
    memset(ikm, seed, sizeof(ikm));
    memset(r->kc.realm_id, seed, sizeof(r->kc.realm_id));
    r->kc.ksf = ksf;
    r->kc.ohttp.key_id = seed;
    r->kc.ohttp.kem = BKV_HPKE_KEM_P256_SHA256;
    if (bkv_hpke_derive_key_pair(BKV_HPKE_KEM_P256_SHA256, ikm, sizeof(ikm), r->sk, r->kc.ohttp.pk,
                                 &r->kc.ohttp.pk_len) != 0)
        abort();
    r->kc.ohttp.suite_count = only128 ? 1 : 2;
    r->kc.ohttp.suites[0] = aes128;
    r->kc.ohttp.suites[1] = aes256;
    if (bkv_keyconfig_encode(&r->kc, r->enc, sizeof(r->enc), &r->enc_len) != 0 ||
        bkv_keyconfig_fingerprint(r->enc, r->enc_len, fp) != 0)
        abort();
    bkv_hex_encode(fp, sizeof(fp), r->fp_hex);
}

/* A small but real Argon2id, so the tests stay fast and still run the KSF. */
static const struct bkv_ksf small_argon2id = {BKV_KSF_ARGON2ID, 1, 64, 1};

static void vault_reset(struct bkv_ksf ksf, int only128)
{
    memset(&v, 0, sizeof(v));
    make_realm(&v.realm, 0x11, ksf, only128);
    v.serve = &v.realm;
    if (bkv_opaque_server_setup(&v.keys) != 0 || RAND_bytes(v.fake_secret, 32) != 1)
        abort();
    bkv_keyconfig_opaque(&v.realm.kc, v.ctx, &v.opaque);
}

static void reply_bytes(struct fake_reply *reply, int status, const char *ctype,
                        const uint8_t *body, size_t len)
{
    char head[256];

    snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n",
             status, ctype, len);
    fake_reply_set(reply, head, body, len);
}

/* The node's side of one inner request; fills resp (payload into pbuf). */
static void vault_answer(const struct bkv_msg_request *q, struct bkv_msg_response *resp,
                         uint8_t *pbuf)
{
    struct bkv_opaque_ids ids = {q->account, q->account_len, NULL, 0};
    uint8_t session_key[BKV_OPAQUE_KEY_LEN], record[BKV_OPAQUE_RECORD_LEN];

    resp->status = BKV_MSG_OK;
    resp->max_attempts = LIMIT;
    switch (q->type) {
    case BKV_MSG_REG_INIT:
        if (bkv_opaque_reg_respond(&v.keys, q->account, q->account_len, q->payload, q->payload_len,
                                   pbuf, NULL) != 0) {
            resp->status = BKV_MSG_BAD_REQUEST;
            break;
        }
        memset(pbuf + BKV_OPAQUE_REG_RESPONSE_LEN, 0x7e, BKV_MSG_TICKET_LEN);
        resp->payload_len = BKV_OPAQUE_REG_RESPONSE_LEN + BKV_MSG_TICKET_LEN;
        break;
    case BKV_MSG_REG_FINISH:
        memcpy(v.record, q->payload, BKV_OPAQUE_RECORD_LEN);
        memcpy(v.wrapped, q->payload + BKV_OPAQUE_RECORD_LEN, BKV_MSG_WRAPPED_LEN);
        /* The ticket of REG_INIT comes back unchanged. */
        for (size_t i = 0; i < BKV_MSG_TICKET_LEN; i++)
            if (q->payload[BKV_OPAQUE_RECORD_LEN + BKV_MSG_WRAPPED_LEN + i] != 0x7e) {
                resp->status = BKV_MSG_BAD_REQUEST;
                return;
            }
        v.registered = 1;
        v.destroyed = 0;
        v.counter = 0;
        resp->attempts_left = LIMIT;
        break;
    case BKV_MSG_LOGIN_INIT:
        v.login_inits++;
        if (v.replayed > 0) {
            v.replayed--;
            resp->status = BKV_MSG_REPLAYED;
            break;
        }
        if (v.destroyed) {
            resp->status = BKV_MSG_DESTROYED;
            break;
        }
        v.counter++; /* counted before any KE2 leaves */
        if (v.registered && v.counter > LIMIT) {
            v.destroyed = 1;
            v.registered = 0;
            resp->status = BKV_MSG_DESTROYED;
            break;
        }
        if (v.registered)
            memcpy(record, v.record, sizeof(record));
        else if (bkv_opaque_fake_record(v.fake_secret, q->account, q->account_len, record) != 0)
            abort();
        if (RAND_bytes(v.session_id, sizeof(v.session_id)) != 1)
            abort();
        memcpy(pbuf, v.session_id, BKV_MSG_SESSION_ID_LEN);
        if (bkv_opaque_login_respond(&v.opaque, &v.keys, record, sizeof(record), q->account,
                                     q->account_len, &ids, q->payload, q->payload_len, NULL,
                                     &v.session, pbuf + BKV_MSG_SESSION_ID_LEN, NULL) != 0) {
            resp->status = BKV_MSG_BAD_REQUEST;
            break;
        }
        resp->payload_len = BKV_MSG_SESSION_ID_LEN + BKV_OPAQUE_KE2_LEN;
        resp->attempts_left = LIMIT - v.counter;
        break;
    case BKV_MSG_LOGIN_FINISH:
        if (v.session_unknown > 0 ||
            memcmp(q->payload, v.session_id, BKV_MSG_SESSION_ID_LEN) != 0) {
            if (v.session_unknown > 0)
                v.session_unknown--;
            bkv_opaque_login_server_wipe(&v.session);
            resp->status = BKV_MSG_SESSION_UNKNOWN;
            break;
        }
        if (bkv_opaque_login_verify(&v.session, q->payload + BKV_MSG_SESSION_ID_LEN,
                                    BKV_OPAQUE_KE3_LEN, session_key) != 0) {
            resp->status = v.registered ? BKV_MSG_WRONG_PASSWORD : BKV_MSG_NOT_REGISTERED;
            resp->attempts_left = v.registered ? LIMIT - v.counter : 0;
            break;
        }
        v.counter = 0;
        resp->attempts_left = LIMIT;
        if (bkv_msg_release_seal(session_key, v.session_id, v.wrapped, pbuf) != 0)
            abort();
        resp->payload_len = BKV_MSG_RELEASE_LEN;
        break;
    case BKV_MSG_DELETE:
        if (!v.registered) {
            resp->status = BKV_MSG_NOT_REGISTERED;
            break;
        }
        v.registered = 0;
        break;
    }
    resp->payload = resp->payload_len ? pbuf : NULL;
}

static void handler(void *arg, const struct fake_request *req, struct fake_reply *reply)
{
    struct bkv_ohttp_state st;
    struct bkv_msg_request q;
    struct bkv_msg_response resp;
    uint8_t inner[BKV_MSG_REQUEST_LEN + 64], plain[BKV_MSG_RESPONSE_LEN], pbuf[512];
    uint8_t out[BKV_MSG_RESPONSE_LEN + 64];
    size_t n = 0, on = 0;

    (void)arg;
    if (strcmp(req->method, "GET") == 0 && strcmp(req->path, "/v1/keyconfig") == 0) {
        v.keyconfig_gets++;
        reply_bytes(reply, 200, "application/bkv-keyconfig", v.serve->enc, v.serve->enc_len);
        return;
    }
    if (strcmp(req->method, "POST") != 0 || strcmp(req->path, "/v1/vault") != 0) {
        fake_reply_set(reply, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", NULL, 0);
        return;
    }
    v.vault_posts++;
    v.last = *req;
    v.last.body = NULL;
    v.last_body_len = req->body_len < sizeof(v.last_body) ? req->body_len : sizeof(v.last_body);
    memcpy(v.last_body, req->body, v.last_body_len);
    if (v.http_head != NULL) {
        fake_reply_set(reply, v.http_head, NULL, 0);
        return;
    }
    if (bkv_ohttp_request_decap(&v.realm.kc.ohttp, &bkv_ohttp_bkv_labels, v.realm.sk, req->body,
                                req->body_len, inner, sizeof(inner), &n, &st) != 0 ||
        bkv_msg_request_decode(inner, n, &q) != 0) {
        fake_reply_set(reply,
                       "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                       "Content-Length: 10\r\n\r\nbad vault\n",
                       NULL, 0);
        return;
    }
    memcpy(v.last_inner, inner, sizeof(v.last_inner));
    if (v.n_ids < 8)
        memcpy(v.last_ids[v.n_ids++], q.request_id, BKV_MSG_REQUEST_ID_LEN);
    memset(&resp, 0, sizeof(resp));
    resp.type = q.type;
    memcpy(resp.request_id, q.request_id, sizeof(resp.request_id));
    if (v.wrong_echo)
        resp.request_id[0] ^= 1;
    vault_answer(&q, &resp, pbuf);
    if (bkv_msg_response_encode(&resp, plain) != 0 ||
        bkv_ohttp_response_encap(&st, NULL, plain, sizeof(plain), out, sizeof(out), &on) != 0)
        abort();
    if (v.tamper)
        out[on - 1] ^= 0x80;
    bkv_ohttp_state_wipe(&st);
    reply_bytes(reply, 200, "message/bkv-response", out, on);
}

static struct fake_router *router;

static int setup(void)
{
    vault_reset(small_argon2id, 0);
    router = fake_router_start(handler, NULL);
    return router == NULL;
}

static int teardown(void)
{
    fake_router_stop(router);
    return 0;
}

/* --- helpers -------------------------------------------------------------- */

static const uint8_t pw[] = "correct horse battery staple";
static const uint8_t bad_pw[] = "correct horse battery stapler";
static const uint8_t the_key[BKV_KEY_LEN] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                             12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                             23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

/* A client pinned to the vault's config by fingerprint only, or by its bytes. */
static struct bkv_client *client_for(const char *account, int by_bytes)
{
    struct bkv_client_config cfg = {
        .router = fake_router_addr(router), .token = TOKEN, .account = account, .timeout_ms = 5000};
    struct bkv_client *c = NULL;
    char err[256] = "";

    if (by_bytes) {
        cfg.keyconfig = v.realm.enc;
        cfg.keyconfig_len = v.realm.enc_len;
    } else {
        cfg.fingerprint = v.realm.fp_hex;
    }
    CU_ASSERT_EQUAL(bkv_client_new(&cfg, &c, err, sizeof(err)), BKV_OK);
    if (c == NULL)
        fprintf(stderr, "bkv_client_new: %s\n", err);
    return c;
}

static void do_register(struct bkv_client *c)
{
    struct bkv_result res;

    CU_ASSERT_EQUAL(bkv_register(c, pw, sizeof(pw) - 1, the_key, &res), BKV_OK);
    CU_ASSERT_EQUAL(res.outcome, BKV_OUTCOME_OK);
    CU_ASSERT_EQUAL(res.max_attempts, LIMIT);
    CU_ASSERT_PTR_NOT_NULL(strstr(res.message, "registered"));
}

static int contains(const char *s, const char *needle)
{
    if (strstr(s, needle) != NULL)
        return 1;
    fprintf(stderr, "\n  message \"%s\" lacks \"%s\"\n", s, needle);
    return 0;
}

/* --- the pin and the key config ------------------------------------------- */

static void test_new_validates_config(void)
{
    struct bkv_client_config cfg = {
        .router = "127.0.0.1:1", .token = TOKEN, .account = ACCOUNT, .fingerprint = v.realm.fp_hex};
    struct bkv_client *c = NULL;
    char err[256];

    CU_ASSERT_EQUAL(bkv_client_new(&cfg, &c, err, sizeof(err)), BKV_OK);
    bkv_client_free(c);

    cfg.router = "no port";
    CU_ASSERT_EQUAL(bkv_client_new(&cfg, &c, err, sizeof(err)), BKV_ERR_INVALID);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_TRUE(contains(err, "not host:port"));
    cfg.router = "127.0.0.1:1";
    cfg.account = "bad account";
    CU_ASSERT_EQUAL(bkv_client_new(&cfg, &c, err, sizeof(err)), BKV_ERR_INVALID);
    CU_ASSERT_TRUE(contains(err, "account id"));
    cfg.account = ACCOUNT;
    cfg.token = "bkv1.a b";
    CU_ASSERT_EQUAL(bkv_client_new(&cfg, &c, err, sizeof(err)), BKV_ERR_INVALID);
    cfg.token = "bkv1.a\r\nX-Evil: 1";
    CU_ASSERT_EQUAL(bkv_client_new(&cfg, &c, err, sizeof(err)), BKV_ERR_INVALID);
    cfg.token = "";
    CU_ASSERT_EQUAL(bkv_client_new(&cfg, &c, err, sizeof(err)), BKV_ERR_INVALID);
    cfg.token = TOKEN;
    cfg.fingerprint = "abcd";
    CU_ASSERT_EQUAL(bkv_client_new(&cfg, &c, err, sizeof(err)), BKV_ERR_INVALID);
    CU_ASSERT_TRUE(contains(err, "64 hex digits"));
    cfg.fingerprint = "zz00000000000000000000000000000000000000000000000000000000000000";
    CU_ASSERT_EQUAL(bkv_client_new(&cfg, &c, err, sizeof(err)), BKV_ERR_INVALID);
    cfg.fingerprint = "000000000000000000000000000000000000000000000000000000000000000000";
    CU_ASSERT_EQUAL(bkv_client_new(&cfg, &c, err, sizeof(err)), BKV_ERR_INVALID);
    CU_ASSERT_TRUE(contains(err, "64 hex digits"));
    cfg.fingerprint = NULL;
    CU_ASSERT_EQUAL(bkv_client_new(&cfg, &c, err, sizeof(err)), BKV_ERR_INVALID);
    CU_ASSERT_TRUE(contains(err, "fingerprint"));
    /* The fingerprint may be written with separators and in upper case. */
    {
        char spaced[128];
        size_t n = 0;

        for (size_t i = 0; v.realm.fp_hex[i] != '\0'; i++) {
            if (i > 0 && i % 4 == 0)
                spaced[n++] = i % 8 == 0 ? ' ' : ':';
            spaced[n++] =
                (char)(v.realm.fp_hex[i] >= 'a' ? v.realm.fp_hex[i] - 32 : v.realm.fp_hex[i]);
        }
        spaced[n] = '\0';
        cfg.fingerprint = spaced;
        cfg.keyconfig = v.realm.enc;
        cfg.keyconfig_len = v.realm.enc_len;
        CU_ASSERT_EQUAL(bkv_client_new(&cfg, &c, err, sizeof(err)), BKV_OK);
        bkv_client_free(c);
    }
    CU_ASSERT_EQUAL(bkv_client_new(NULL, &c, err, sizeof(err)), BKV_ERR_INVALID);
}

static void test_bytes_and_fingerprint_must_agree(void)
{
    struct realm other;
    struct bkv_client_config cfg = {.router = "127.0.0.1:1",
                                    .token = TOKEN,
                                    .account = ACCOUNT,
                                    .keyconfig = v.realm.enc,
                                    .keyconfig_len = v.realm.enc_len};
    struct bkv_client *c = NULL;
    char err[256];

    make_realm(&other, 0x22, small_argon2id, 0);
    cfg.fingerprint = other.fp_hex;
    CU_ASSERT_EQUAL(bkv_client_new(&cfg, &c, err, sizeof(err)), BKV_ERR_MAC);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_TRUE(contains(err, "does not match the pinned fingerprint"));
    cfg.fingerprint = v.realm.fp_hex;
    CU_ASSERT_EQUAL(bkv_client_new(&cfg, &c, err, sizeof(err)), BKV_OK);
    bkv_client_free(c);
    /* Bytes that are not a key config. */
    cfg.fingerprint = NULL;
    cfg.keyconfig = (const uint8_t *)"BKVK but not really";
    cfg.keyconfig_len = 19;
    CU_ASSERT_NOT_EQUAL(bkv_client_new(&cfg, &c, err, sizeof(err)), BKV_OK);
    CU_ASSERT_TRUE(contains(err, "not valid"));
}

static void test_identity_ksf_refused(void)
{
    struct realm id;
    struct bkv_client_config cfg = {.router = "127.0.0.1:1", .token = TOKEN, .account = ACCOUNT};
    struct bkv_client *c = NULL;
    char err[256];

    make_realm(&id, 0x33, BKV_KSF_IDENTITY_PARAMS, 0);
    cfg.keyconfig = id.enc;
    cfg.keyconfig_len = id.enc_len;
    unsetenv("BKV_TEST_ALLOW_IDENTITY_KSF");
    CU_ASSERT_EQUAL(bkv_client_new(&cfg, &c, err, sizeof(err)), BKV_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_TRUE(contains(err, "Identity KSF"));
    setenv("BKV_TEST_ALLOW_IDENTITY_KSF", "yes", 1); /* only exactly "1" allows it */
    CU_ASSERT_EQUAL(bkv_client_new(&cfg, &c, err, sizeof(err)), BKV_ERR_UNSUPPORTED);
    setenv("BKV_TEST_ALLOW_IDENTITY_KSF", "1", 1);
    CU_ASSERT_EQUAL(bkv_client_new(&cfg, &c, err, sizeof(err)), BKV_OK);
    bkv_client_free(c);
    unsetenv("BKV_TEST_ALLOW_IDENTITY_KSF");
}

static void test_identity_ksf_refused_when_fetched(void)
{
    struct realm id;
    struct bkv_client_config cfg = {
        .router = fake_router_addr(router), .token = TOKEN, .account = ACCOUNT};
    struct bkv_client *c = NULL;
    struct bkv_result res;
    char err[256];

    vault_reset(small_argon2id, 0);
    make_realm(&id, 0x33, BKV_KSF_IDENTITY_PARAMS, 0);
    v.serve = &id;
    cfg.fingerprint = id.fp_hex;
    unsetenv("BKV_TEST_ALLOW_IDENTITY_KSF");
    CU_ASSERT_EQUAL_FATAL(bkv_client_new(&cfg, &c, err, sizeof(err)), BKV_OK);
    CU_ASSERT_NOT_EQUAL(bkv_register(c, pw, sizeof(pw) - 1, the_key, &res), BKV_OK);
    CU_ASSERT_EQUAL(res.outcome, BKV_OUTCOME_PROTOCOL);
    CU_ASSERT_TRUE(contains(res.message, "Identity KSF"));
    CU_ASSERT_EQUAL(v.vault_posts, 0);
    bkv_client_free(c);
}

static void test_fetched_pin_mismatch_sends_nothing(void)
{
    struct realm other;
    struct bkv_client *c;
    struct bkv_result res;
    uint8_t key[BKV_KEY_LEN];

    vault_reset(small_argon2id, 0);
    make_realm(&other, 0x44, small_argon2id, 0);
    v.serve = &other; /* a router serving some other realm's key */
    c = client_for(ACCOUNT, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(bkv_register(c, pw, sizeof(pw) - 1, the_key, &res), BKV_ERR_MAC);
    CU_ASSERT_EQUAL(res.outcome, BKV_OUTCOME_PIN_MISMATCH);
    CU_ASSERT_TRUE(contains(res.message, "does not match the pinned fingerprint"));
    CU_ASSERT_EQUAL(bkv_recover(c, pw, sizeof(pw) - 1, key, &res), BKV_ERR_MAC);
    CU_ASSERT_EQUAL(res.outcome, BKV_OUTCOME_PIN_MISMATCH);
    CU_ASSERT_EQUAL(bkv_delete(c, &res), BKV_ERR_MAC);
    CU_ASSERT_EQUAL(res.outcome, BKV_OUTCOME_PIN_MISMATCH);
    CU_ASSERT_EQUAL(v.keyconfig_gets, 3);
    CU_ASSERT_EQUAL(v.vault_posts, 0); /* not one envelope went out */
    bkv_client_free(c);

    /* The right config is fetched once and kept. */
    v.serve = &v.realm;
    v.keyconfig_gets = 0;
    c = client_for(ACCOUNT, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    do_register(c);
    CU_ASSERT_EQUAL(bkv_delete(c, &res), BKV_OK);
    CU_ASSERT_EQUAL(v.keyconfig_gets, 1);
    bkv_client_free(c);

    /* Pinned by bytes: never fetched. */
    v.keyconfig_gets = 0;
    c = client_for(ACCOUNT, 1);
    do_register(c);
    CU_ASSERT_EQUAL(v.keyconfig_gets, 0);
    bkv_client_free(c);
}

/* --- what goes on the wire ------------------------------------------------ */

static void check_request_on_wire(uint16_t want_aead)
{
    uint8_t inner[BKV_MSG_REQUEST_LEN + 64];
    struct bkv_ohttp_state st;
    struct bkv_msg_request q;
    size_t n = 0;
    char h[512];

    CU_ASSERT_STRING_EQUAL(v.last.method, "POST");
    CU_ASSERT_STRING_EQUAL(v.last.path, "/v1/vault");
    CU_ASSERT_TRUE(fake_header(&v.last, "authorization", h, sizeof(h)));
    CU_ASSERT_STRING_EQUAL(h, "Bearer " TOKEN);
    CU_ASSERT_TRUE(fake_header(&v.last, "content-type", h, sizeof(h)));
    CU_ASSERT_STRING_EQUAL(h, "message/bkv-request");
    /* hdr(7) || enc(65) || Seal(512-byte inner message) */
    CU_ASSERT_EQUAL(v.last_body_len, 7 + 65 + BKV_MSG_REQUEST_LEN + 16);
    CU_ASSERT_EQUAL(v.last_body[0], v.realm.kc.ohttp.key_id);
    CU_ASSERT_EQUAL(bkv_get_u16(v.last_body + 1), BKV_HPKE_KEM_P256_SHA256);
    CU_ASSERT_EQUAL(bkv_get_u16(v.last_body + 3), BKV_HPKE_KDF_HKDF_SHA256);
    CU_ASSERT_EQUAL(bkv_get_u16(v.last_body + 5), want_aead);
    /* Our own decap of what the client sent. */
    CU_ASSERT_EQUAL_FATAL(bkv_ohttp_request_decap(&v.realm.kc.ohttp, &bkv_ohttp_bkv_labels,
                                                  v.realm.sk, v.last_body, v.last_body_len, inner,
                                                  sizeof(inner), &n, &st),
                          0);
    bkv_ohttp_state_wipe(&st);
    CU_ASSERT_EQUAL(n, BKV_MSG_REQUEST_LEN);
    CU_ASSERT_EQUAL_FATAL(bkv_msg_request_decode(inner, n, &q), 0);
    CU_ASSERT_EQUAL(q.account_len, strlen(ACCOUNT));
    CU_ASSERT_EQUAL(memcmp(q.account, ACCOUNT, q.account_len), 0);
}

static void test_request_on_the_wire(void)
{
    struct bkv_client *c;
    struct bkv_result res;

    vault_reset(small_argon2id, 0);
    c = client_for(ACCOUNT, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    do_register(c);
    CU_ASSERT_EQUAL(v.vault_posts, 2);
    check_request_on_wire(BKV_HPKE_AEAD_AES_256_GCM);
    CU_ASSERT_EQUAL(v.last_inner[1], BKV_MSG_REG_FINISH);
    /* Every request has its own request id. */
    CU_ASSERT_EQUAL(v.n_ids, 2);
    CU_ASSERT_NOT_EQUAL(memcmp(v.last_ids[0], v.last_ids[1], BKV_MSG_REQUEST_ID_LEN), 0);
    /* The wrapped K in REG_FINISH is not K, and opens only with the account as AAD. */
    for (size_t i = 0; i + sizeof(the_key) <= sizeof(v.wrapped); i++)
        CU_ASSERT_NOT_EQUAL(memcmp(v.wrapped + i, the_key, sizeof(the_key)), 0);
    CU_ASSERT_EQUAL(bkv_delete(c, &res), BKV_OK);
    CU_ASSERT_EQUAL(v.last_inner[1], BKV_MSG_DELETE);
    bkv_client_free(c);

    /* A config that offers only AES-128-GCM gets AES-128-GCM. */
    vault_reset(small_argon2id, 1);
    c = client_for(ACCOUNT, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    do_register(c);
    check_request_on_wire(BKV_HPKE_AEAD_AES_128_GCM);
    bkv_client_free(c);
}

/* --- the flows ------------------------------------------------------------ */

static void test_register_recover(void)
{
    struct bkv_client *c;
    struct bkv_result res;
    uint8_t key[BKV_KEY_LEN];

    vault_reset(small_argon2id, 0);
    c = client_for(ACCOUNT, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    do_register(c);
    memset(key, 0, sizeof(key));
    CU_ASSERT_EQUAL(bkv_recover(c, pw, sizeof(pw) - 1, key, &res), BKV_OK);
    CU_ASSERT_EQUAL(res.outcome, BKV_OUTCOME_OK);
    CU_ASSERT_EQUAL(memcmp(key, the_key, sizeof(key)), 0);
    CU_ASSERT_EQUAL(res.attempts_left, LIMIT);
    CU_ASSERT_EQUAL(v.login_inits, 1);
    bkv_client_free(c);

    /* Another client (a new device), pinned by bytes, recovers too. */
    c = client_for(ACCOUNT, 1);
    memset(key, 0, sizeof(key));
    CU_ASSERT_EQUAL(bkv_recover(c, pw, sizeof(pw) - 1, key, &res), BKV_OK);
    CU_ASSERT_EQUAL(memcmp(key, the_key, sizeof(key)), 0);
    bkv_client_free(c);
}

static void test_wrong_password_then_destroyed(void)
{
    struct bkv_client *c;
    struct bkv_result res;
    uint8_t key[BKV_KEY_LEN], zero[BKV_KEY_LEN];

    vault_reset(small_argon2id, 0);
    memset(zero, 0, sizeof(zero));
    c = client_for(ACCOUNT, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    do_register(c);

    /* A wrong password, then the right one resets the counter. */
    memset(key, 0, sizeof(key));
    CU_ASSERT_EQUAL(bkv_recover(c, bad_pw, sizeof(bad_pw) - 1, key, &res), BKV_ERR_ENVELOPE);
    CU_ASSERT_EQUAL(res.outcome, BKV_OUTCOME_WRONG_PASSWORD);
    CU_ASSERT_EQUAL(res.attempts_left, LIMIT - 1);
    CU_ASSERT_TRUE(contains(res.message, "wrong password: 2 attempts left before the key is "
                                         "destroyed"));
    CU_ASSERT_EQUAL(memcmp(key, zero, sizeof(key)), 0);
    CU_ASSERT_EQUAL(bkv_recover(c, pw, sizeof(pw) - 1, key, &res), BKV_OK);
    CU_ASSERT_EQUAL(v.counter, 0);

    /* LIMIT wrong passwords in a row, then the key is gone, right password or not. */
    CU_ASSERT_EQUAL(bkv_recover(c, bad_pw, sizeof(bad_pw) - 1, key, &res), BKV_ERR_ENVELOPE);
    CU_ASSERT_EQUAL(bkv_recover(c, bad_pw, sizeof(bad_pw) - 1, key, &res), BKV_ERR_ENVELOPE);
    CU_ASSERT_EQUAL(res.attempts_left, 1);
    CU_ASSERT_TRUE(contains(res.message, "1 attempt left"));
    CU_ASSERT_EQUAL(bkv_recover(c, bad_pw, sizeof(bad_pw) - 1, key, &res), BKV_ERR_ENVELOPE);
    CU_ASSERT_EQUAL(res.attempts_left, 0);
    CU_ASSERT_TRUE(contains(res.message, "last attempt"));
    memset(key, 0, sizeof(key));
    CU_ASSERT_EQUAL(bkv_recover(c, pw, sizeof(pw) - 1, key, &res), BKV_ERR_LIMIT);
    CU_ASSERT_EQUAL(res.outcome, BKV_OUTCOME_DESTROYED);
    CU_ASSERT_TRUE(contains(res.message, "destroyed after too many wrong passwords"));
    CU_ASSERT_TRUE(contains(res.message, "written-down key"));
    CU_ASSERT_EQUAL(memcmp(key, zero, sizeof(key)), 0);
    CU_ASSERT_EQUAL(bkv_recover(c, pw, sizeof(pw) - 1, key, &res), BKV_ERR_LIMIT);
    CU_ASSERT_EQUAL(res.outcome, BKV_OUTCOME_DESTROYED);
    bkv_client_free(c);
}

static void test_unknown_account_and_delete(void)
{
    struct bkv_client *c;
    struct bkv_result res;
    uint8_t key[BKV_KEY_LEN];

    vault_reset(small_argon2id, 0);
    c = client_for("nobody@example.org", 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    /* The fake record's KE2 looks real; the node says NOT_REGISTERED only at LOGIN_FINISH. */
    CU_ASSERT_EQUAL(bkv_recover(c, pw, sizeof(pw) - 1, key, &res), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(res.outcome, BKV_OUTCOME_NOT_REGISTERED);
    CU_ASSERT_TRUE(contains(res.message, "no key is registered for this account"));
    CU_ASSERT_EQUAL(v.login_inits, 1);
    CU_ASSERT_EQUAL(bkv_delete(c, &res), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(res.outcome, BKV_OUTCOME_NOT_REGISTERED);
    bkv_client_free(c);

    c = client_for(ACCOUNT, 0);
    do_register(c);
    CU_ASSERT_EQUAL(bkv_delete(c, &res), BKV_OK);
    CU_ASSERT_EQUAL(res.outcome, BKV_OUTCOME_OK);
    CU_ASSERT_TRUE(contains(res.message, "deleted"));
    CU_ASSERT_EQUAL(bkv_recover(c, pw, sizeof(pw) - 1, key, &res), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(res.outcome, BKV_OUTCOME_NOT_REGISTERED);
    bkv_client_free(c);
}

static void test_session_unknown_restarts_once(void)
{
    struct bkv_client *c;
    struct bkv_result res;
    uint8_t key[BKV_KEY_LEN];

    vault_reset(small_argon2id, 0);
    c = client_for(ACCOUNT, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    do_register(c);

    /* Once: the client starts over by itself and succeeds (two LOGIN_INITs). */
    v.session_unknown = 1;
    v.login_inits = 0;
    memset(key, 0, sizeof(key));
    CU_ASSERT_EQUAL(bkv_recover(c, pw, sizeof(pw) - 1, key, &res), BKV_OK);
    CU_ASSERT_EQUAL(memcmp(key, the_key, sizeof(key)), 0);
    CU_ASSERT_EQUAL(v.login_inits, 2);

    /* Twice: it gives up after the second start, as a transient failure. */
    v.session_unknown = 2;
    v.login_inits = 0;
    CU_ASSERT_EQUAL(bkv_recover(c, pw, sizeof(pw) - 1, key, &res), BKV_ERR_IO);
    CU_ASSERT_EQUAL(res.outcome, BKV_OUTCOME_UNREACHABLE);
    CU_ASSERT_TRUE(contains(res.message, "leader changed"));
    CU_ASSERT_EQUAL(v.login_inits, 2);

    /* With a wrong password it does not spend another attempt to restart. */
    v.session_unknown = 1;
    v.login_inits = 0;
    v.counter = 0;
    CU_ASSERT_EQUAL(bkv_recover(c, bad_pw, sizeof(bad_pw) - 1, key, &res), BKV_ERR_ENVELOPE);
    CU_ASSERT_EQUAL(res.outcome, BKV_OUTCOME_WRONG_PASSWORD);
    CU_ASSERT_EQUAL(res.attempts_left, LIMIT - 1);
    CU_ASSERT_EQUAL(v.login_inits, 1);
    bkv_client_free(c);
}

static void test_replayed_retries_with_new_id(void)
{
    struct bkv_client *c;
    struct bkv_result res;
    uint8_t key[BKV_KEY_LEN];

    vault_reset(small_argon2id, 0);
    c = client_for(ACCOUNT, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    do_register(c);
    v.n_ids = 0;
    v.replayed = 1;
    CU_ASSERT_EQUAL(bkv_recover(c, pw, sizeof(pw) - 1, key, &res), BKV_OK);
    CU_ASSERT_EQUAL(memcmp(key, the_key, sizeof(key)), 0);
    CU_ASSERT_EQUAL(v.n_ids, 3); /* LOGIN_INIT, LOGIN_INIT again, LOGIN_FINISH */
    CU_ASSERT_NOT_EQUAL(memcmp(v.last_ids[0], v.last_ids[1], BKV_MSG_REQUEST_ID_LEN), 0);

    /* Only once. */
    v.replayed = 2;
    CU_ASSERT_NOT_EQUAL(bkv_recover(c, pw, sizeof(pw) - 1, key, &res), BKV_OK);
    CU_ASSERT_EQUAL(res.outcome, BKV_OUTCOME_PROTOCOL);
    CU_ASSERT_TRUE(contains(res.message, "replay"));
    bkv_client_free(c);
}

/* --- failures ------------------------------------------------------------- */

static void test_http_failures(void)
{
    static const struct {
        const char *head;
        enum bkv_outcome outcome;
        unsigned retry_after;
        const char *says;
    } cases[] = {
        {"HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n",
         BKV_OUTCOME_REFUSED, 0, "account token (401)"},
        {"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", BKV_OUTCOME_REFUSED, 0, "403"},
        {"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n", BKV_OUTCOME_REFUSED, 0, "413"},
        {"HTTP/1.1 429 Too Many\r\nRetry-After: 5\r\nContent-Length: 0\r\n\r\n",
         BKV_OUTCOME_REFUSED, 5, "try again in 5 seconds"},
        {"HTTP/1.1 503 Unavailable\r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n",
         BKV_OUTCOME_UNREACHABLE, 2, "try again in 2 seconds"},
        {"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", BKV_OUTCOME_UNREACHABLE, 0,
         "502"},
        {"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", BKV_OUTCOME_PROTOCOL, 0, "400"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", BKV_OUTCOME_PROTOCOL, 0,
         "did not authenticate"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n", BKV_OUTCOME_UNREACHABLE, 0,
         "closed the connection"},
        {"BANANA\r\n\r\n", BKV_OUTCOME_PROTOCOL, 0, "malformed HTTP"},
    };
    struct bkv_client *c;
    struct bkv_result res;
    uint8_t key[BKV_KEY_LEN];

    vault_reset(small_argon2id, 0);
    c = client_for(ACCOUNT, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        v.http_head = cases[i].head;
        CU_ASSERT_NOT_EQUAL(bkv_recover(c, pw, sizeof(pw) - 1, key, &res), BKV_OK);
        CU_ASSERT_EQUAL(res.outcome, cases[i].outcome);
        CU_ASSERT_EQUAL(res.retry_after_s, cases[i].retry_after);
        CU_ASSERT_TRUE(contains(res.message, cases[i].says));
    }
    v.http_head = NULL;
    bkv_client_free(c);
}

static void test_unreachable_router(void)
{
    struct bkv_client_config cfg = {.token = TOKEN, .account = ACCOUNT, .timeout_ms = 2000};
    struct bkv_client *c = NULL;
    struct bkv_result res;
    uint8_t key[BKV_KEY_LEN];
    char addr[64], err[256];

    fake_closed_addr(addr, sizeof(addr));
    cfg.router = addr;
    cfg.fingerprint = v.realm.fp_hex;
    CU_ASSERT_EQUAL_FATAL(bkv_client_new(&cfg, &c, err, sizeof(err)), BKV_OK);
    CU_ASSERT_EQUAL(bkv_recover(c, pw, sizeof(pw) - 1, key, &res), BKV_ERR_IO);
    CU_ASSERT_EQUAL(res.outcome, BKV_OUTCOME_UNREACHABLE);
    CU_ASSERT_TRUE(contains(res.message, "cannot reach the router at "));
    CU_ASSERT_TRUE(contains(res.message, addr));
    CU_ASSERT_TRUE(contains(res.message, "connection refused"));
    bkv_client_free(c);

    /* Pinned by bytes the failure comes at the POST instead of the GET; same outcome. */
    cfg.fingerprint = NULL;
    cfg.keyconfig = v.realm.enc;
    cfg.keyconfig_len = v.realm.enc_len;
    CU_ASSERT_EQUAL_FATAL(bkv_client_new(&cfg, &c, err, sizeof(err)), BKV_OK);
    CU_ASSERT_EQUAL(bkv_register(c, pw, sizeof(pw) - 1, the_key, &res), BKV_ERR_IO);
    CU_ASSERT_EQUAL(res.outcome, BKV_OUTCOME_UNREACHABLE);
    bkv_client_free(c);
}

static void test_answers_that_do_not_authenticate(void)
{
    struct bkv_client *c;
    struct bkv_result res;
    uint8_t key[BKV_KEY_LEN], zero[BKV_KEY_LEN];

    vault_reset(small_argon2id, 0);
    memset(zero, 0, sizeof(zero));
    c = client_for(ACCOUNT, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    do_register(c);

    v.tamper = 1;
    memset(key, 0, sizeof(key));
    CU_ASSERT_EQUAL(bkv_recover(c, pw, sizeof(pw) - 1, key, &res), BKV_ERR_FORMAT);
    CU_ASSERT_EQUAL(res.outcome, BKV_OUTCOME_PROTOCOL);
    CU_ASSERT_TRUE(contains(res.message, "did not authenticate"));
    CU_ASSERT_EQUAL(memcmp(key, zero, sizeof(key)), 0);
    v.tamper = 0;

    v.wrong_echo = 1;
    CU_ASSERT_EQUAL(bkv_recover(c, pw, sizeof(pw) - 1, key, &res), BKV_ERR_FORMAT);
    CU_ASSERT_EQUAL(res.outcome, BKV_OUTCOME_PROTOCOL);
    CU_ASSERT_TRUE(contains(res.message, "not an answer to this"));
    v.wrong_echo = 0;

    /* A release of another K under the right session: the export key does not open it. */
    {
        uint8_t saved[BKV_MSG_WRAPPED_LEN];

        memcpy(saved, v.wrapped, sizeof(saved));
        v.wrapped[20] ^= 1;
        CU_ASSERT_EQUAL(bkv_recover(c, pw, sizeof(pw) - 1, key, &res), BKV_ERR_FORMAT);
        CU_ASSERT_EQUAL(res.outcome, BKV_OUTCOME_PROTOCOL);
        CU_ASSERT_TRUE(contains(res.message, "does not open"));
        CU_ASSERT_EQUAL(memcmp(key, zero, sizeof(key)), 0);
        memcpy(v.wrapped, saved, sizeof(saved));
    }
    CU_ASSERT_EQUAL(bkv_recover(c, pw, sizeof(pw) - 1, key, &res), BKV_OK);
    bkv_client_free(c);
}

static void test_identity_ksf_realm_with_test_switch(void)
{
    struct bkv_client *c;
    struct bkv_result res;
    uint8_t key[BKV_KEY_LEN];

    setenv("BKV_TEST_ALLOW_IDENTITY_KSF", "1", 1);
    vault_reset(BKV_KSF_IDENTITY_PARAMS, 0);
    c = client_for(ACCOUNT, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    do_register(c);
    CU_ASSERT_EQUAL(bkv_recover(c, pw, sizeof(pw) - 1, key, &res), BKV_OK);
    CU_ASSERT_EQUAL(memcmp(key, the_key, sizeof(key)), 0);
    bkv_client_free(c);
    unsetenv("BKV_TEST_ALLOW_IDENTITY_KSF");
}

static void test_bad_arguments(void)
{
    struct bkv_client *c;
    struct bkv_result res;
    uint8_t key[BKV_KEY_LEN];

    vault_reset(small_argon2id, 0);
    c = client_for(ACCOUNT, 1);
    CU_ASSERT_EQUAL(bkv_register(c, NULL, 3, the_key, &res), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(res.outcome, BKV_OUTCOME_PROTOCOL);
    CU_ASSERT_EQUAL(bkv_register(c, pw, 3, NULL, &res), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_recover(NULL, pw, 3, key, &res), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_recover(c, pw, 3, NULL, &res), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_recover(c, pw, 3, key, NULL), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_delete(c, NULL), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(v.vault_posts, 0);
    bkv_client_free(c);
    bkv_client_free(NULL);
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"bkv_client_new validates its config", test_new_validates_config},
        {"key config bytes and fingerprint must agree", test_bytes_and_fingerprint_must_agree},
        {"Identity KSF refused unless the test switch", test_identity_ksf_refused},
        {"Identity KSF refused in a fetched config", test_identity_ksf_refused_when_fetched},
        {"fetched pin mismatch sends nothing", test_fetched_pin_mismatch_sends_nothing},
        {"request on the wire", test_request_on_the_wire},
        {"register and recover", test_register_recover},
        {"wrong passwords, then destroyed", test_wrong_password_then_destroyed},
        {"unknown account and delete", test_unknown_account_and_delete},
        {"SESSION_UNKNOWN restarts once", test_session_unknown_restarts_once},
        {"REPLAYED retries with a new id", test_replayed_retries_with_new_id},
        {"HTTP failures as outcomes", test_http_failures},
        {"unreachable router", test_unreachable_router},
        {"answers that do not authenticate", test_answers_that_do_not_authenticate},
        {"Identity KSF realm with the test switch", test_identity_ksf_realm_with_test_switch},
        {"bad arguments", test_bad_arguments},
        CU_TEST_INFO_NULL,
    };

    return bkv_test_main("client_vault", tests, setup, teardown);
}
