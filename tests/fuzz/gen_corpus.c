/*
 * Writes the seed corpora of tests/fuzz: fuzz-gen-corpus DIR writes
 * DIR/<target>/<name> for every target, valid inputs built with BKV's own
 * encoders from the fixtures in fuzz.h (so they reach decryption and MAC
 * checks in the targets), plus edge cases next to them. Deterministic: run
 * it again and the same files come out (scripts/fuzz.sh --gen-corpus).
 * Other files in DIR (what fuzzing found, crash inputs) are left alone.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "consensus/cmd.h"
#include "fuzz.h"
#include "node/token.h"
#include "proto/err.h"
#include "proto/msg.h"
#include "tests/unit/node/config_sample.h"

static const char *root;
static int written;

#define GEN(call) FUZZ_SETUP(call)

static void mkdir_p(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "gen: mkdir %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

/* Write DIR/target/name = mode byte (if mode >= 0) || data. */
static void put(const char *target, const char *name, int mode, const void *data, size_t len)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", root, target);
    mkdir_p(path);
    snprintf(path, sizeof(path), "%s/%s/%s", root, target, name);
    f = fopen(path, "wb");
    if (f == NULL || (mode >= 0 && fputc(mode, f) == EOF) ||
        (len > 0 && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        fprintf(stderr, "gen: write %s failed\n", path);
        exit(1);
    }
    written++;
}

static void put_text(const char *target, const char *name, int mode, const char *text)
{
    put(target, name, mode, text, strlen(text));
}

static void fill(uint8_t *p, size_t n, uint8_t first)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(first + 3 * i);
}

/* --- inner messages (also the envelope's plaintexts) ------------------------- */

static const uint8_t account[] = "alice@example.com";
#define ACCOUNT_LEN (sizeof(account) - 1)

static void make_request(const struct fuzz_opaque *f, enum bkv_msg_type type,
                         uint8_t out[BKV_MSG_REQUEST_LEN])
{
    static uint8_t payload[512];
    struct bkv_msg_request m = {.type = type, .account = account, .account_len = ACCOUNT_LEN};
    size_t n = bkv_msg_request_payload_len(type);

    fill(m.request_id, sizeof(m.request_id), (uint8_t)(0x10 * type));
    fill(payload, sizeof(payload), 0x61);
    switch (type) {
    case BKV_MSG_REG_INIT:
        memcpy(payload, f->reg_request, sizeof(f->reg_request));
        break;
    case BKV_MSG_REG_FINISH:
        memcpy(payload, f->record, sizeof(f->record));
        break;
    case BKV_MSG_LOGIN_INIT:
        memcpy(payload, f->ke1, sizeof(f->ke1));
        break;
    case BKV_MSG_LOGIN_FINISH:
        memcpy(payload + BKV_MSG_SESSION_ID_LEN, f->ke3, sizeof(f->ke3));
        break;
    default:
        break;
    }
    m.payload = n > 0 ? payload : NULL;
    m.payload_len = n;
    GEN(bkv_msg_request_encode(&m, out));
}

static void make_response(const struct fuzz_opaque *f, enum bkv_msg_type type,
                          enum bkv_msg_status status, uint8_t out[BKV_MSG_RESPONSE_LEN])
{
    static uint8_t payload[512];
    struct bkv_msg_response m = {
        .type = type, .status = status, .attempts_left = 9, .max_attempts = 10};
    size_t n = bkv_msg_response_payload_len(type, status);

    fill(m.request_id, sizeof(m.request_id), (uint8_t)(0x10 * type));
    fill(payload, sizeof(payload), 0x41);
    if (status == BKV_MSG_OK && type == BKV_MSG_REG_INIT)
        memcpy(payload, f->reg_response, sizeof(f->reg_response));
    if (status == BKV_MSG_OK && type == BKV_MSG_LOGIN_INIT)
        memcpy(payload + BKV_MSG_SESSION_ID_LEN, f->ke2, sizeof(f->ke2));
    m.payload = n > 0 ? payload : NULL;
    m.payload_len = n;
    GEN(bkv_msg_response_encode(&m, out));
}

static void gen_msg(const struct fuzz_opaque *f)
{
    static const char *names[] = {"",           "reg-init",     "reg-finish",
                                  "login-init", "login-finish", "delete"};
    uint8_t req[BKV_MSG_REQUEST_LEN], resp[BKV_MSG_RESPONSE_LEN];
    char name[64];

    for (int t = BKV_MSG_REG_INIT; t <= BKV_MSG_DELETE; t++) {
        make_request(f, (enum bkv_msg_type)t, req);
        snprintf(name, sizeof(name), "request-%s", names[t]);
        put("fuzz_msg", name, -1, req, sizeof(req));
        make_response(f, (enum bkv_msg_type)t, BKV_MSG_OK, resp);
        snprintf(name, sizeof(name), "response-%s-ok", names[t]);
        put("fuzz_msg", name, -1, resp, sizeof(resp));
    }
    for (int s = BKV_MSG_WRONG_PASSWORD; s <= BKV_MSG_UNAVAILABLE; s++) {
        make_response(f, BKV_MSG_LOGIN_FINISH, (enum bkv_msg_status)s, resp);
        snprintf(name, sizeof(name), "response-login-finish-status-%d", s);
        put("fuzz_msg", name, -1, resp, sizeof(resp));
    }
    /* The longest account id. */
    {
        uint8_t long_account[BKV_MSG_ACCOUNT_MAX];
        struct bkv_msg_request m = {.type = BKV_MSG_DELETE};

        memset(long_account, 'a', sizeof(long_account));
        m.account = long_account;
        m.account_len = sizeof(long_account);
        GEN(bkv_msg_request_encode(&m, req));
        put("fuzz_msg", "request-delete-longest-account", -1, req, sizeof(req));
    }
    /* Near misses: padding not zero, reserved byte set, a short message. */
    make_request(f, BKV_MSG_DELETE, req);
    req[sizeof(req) - 1] = 1;
    put("fuzz_msg", "edge-request-dirty-padding", -1, req, sizeof(req));
    make_response(f, BKV_MSG_DELETE, BKV_MSG_OK, resp);
    resp[3] = 1;
    put("fuzz_msg", "edge-response-reserved", -1, resp, sizeof(resp));
    put("fuzz_msg", "edge-short", -1, req, 20);
}

/* --- the envelope -------------------------------------------------------------- */

static void gen_envelope(const struct fuzz_ohttp *x, const struct fuzz_opaque *f)
{
    static uint8_t buf[BKV_OHTTP_MAX_REQUEST_LEN], list[4096];
    uint8_t pt[BKV_MSG_REQUEST_LEN], rpt[BKV_MSG_RESPONSE_LEN], nonce[32];
    struct bkv_ohttp_state st;
    struct bkv_ohttp_key_config cfgs[2];
    uint8_t ikm[32], sk[32];
    size_t n, m;

    make_request(f, BKV_MSG_LOGIN_INIT, pt);
    for (int i = 0; i < 2; i++) {
        GEN(bkv_ohttp_request_encap(&x->cfg, x->cfg.suites[i], &bkv_ohttp_bkv_labels, x->skE, pt,
                                    sizeof(pt), buf, sizeof(buf), &n, &st));
        put("fuzz_envelope", i == 0 ? "request-aes128" : "request-aes256", 0, buf, n);
        if (i == 0) {
            buf[n - 1] ^= 1;
            put("fuzz_envelope", "edge-request-bad-tag", 0, buf, n);
            put("fuzz_envelope", "edge-request-header-only", 0, buf, BKV_OHTTP_HEADER_LEN);
            buf[0] ^= 1;
            put("fuzz_envelope", "edge-request-wrong-key-id", 0, buf, n);
        }
        bkv_ohttp_state_wipe(&st);
    }
    GEN(bkv_ohttp_request_encap(&x->cfg, x->cfg.suites[0], &bkv_ohttp_bkv_labels, x->skE, pt, 0,
                                buf, sizeof(buf), &n, &st));
    put("fuzz_envelope", "request-empty", 0, buf, n);
    bkv_ohttp_state_wipe(&st);
    GEN(bkv_ohttp_request_encap(&x->cfg, x->cfg.suites[0], &bkv_ohttp_bhttp_labels, x->skE, pt,
                                sizeof(pt), buf, sizeof(buf), &n, &st));
    put("fuzz_envelope", "edge-request-other-labels", 0, buf, n);
    bkv_ohttp_state_wipe(&st);

    make_response(f, BKV_MSG_LOGIN_INIT, BKV_MSG_OK, rpt);
    for (int i = 0; i < 2; i++) {
        fill(nonce, sizeof(nonce), (uint8_t)(0xa0 + i));
        GEN(bkv_ohttp_response_encap(&x->st[i], nonce, rpt, sizeof(rpt), buf, sizeof(buf), &n));
        put("fuzz_envelope", i == 0 ? "response-aes128" : "response-aes256", 1 + i, buf, n);
        GEN(bkv_ohttp_response_encap(&x->st[i], nonce, rpt, 0, buf, sizeof(buf), &n));
        put("fuzz_envelope", i == 0 ? "response-aes128-empty" : "response-aes256-empty", 1 + i, buf,
            n);
    }
    put("fuzz_envelope", "edge-response-short", 1, buf, 20);

    GEN(bkv_ohttp_key_config_encode(&x->cfg, buf, sizeof(buf), &n));
    put("fuzz_envelope", "config-p256", 3, buf, n);
    /* A suite BKV does not know (ChaCha20-Poly1305): kept, never selected. */
    buf[n - 1] = 3;
    put("fuzz_envelope", "config-unknown-aead", 3, buf, n);
    put("fuzz_envelope", "edge-config-truncated", 3, buf, n - 3);

    cfgs[0] = x->cfg;
    memset(&cfgs[1], 0, sizeof(cfgs[1]));
    fill(ikm, sizeof(ikm), 0x21);
    cfgs[1].key_id = 2;
    cfgs[1].kem = BKV_HPKE_KEM_X25519_SHA256;
    GEN(bkv_hpke_derive_key_pair(cfgs[1].kem, ikm, sizeof(ikm), sk, cfgs[1].pk, &cfgs[1].pk_len));
    cfgs[1].suite_count = 1;
    cfgs[1].suites[0] = x->cfg.suites[0];
    GEN(bkv_ohttp_key_config_encode(&cfgs[1], buf, sizeof(buf), &n));
    put("fuzz_envelope", "config-x25519", 3, buf, n);
    GEN(bkv_ohttp_key_configs_encode(cfgs, 2, list, sizeof(list), &m));
    /* ... and a config with a KEM nobody knows, which a list skips. */
    {
        static const uint8_t unknown[] = {0x00, 0x0c, 0x09, 0x00, 0x99, 0xaa, 0xbb,
                                          0xcc, 0x00, 0x04, 0x00, 0x01, 0x00, 0x01};
        memcpy(list + m, unknown, sizeof(unknown));
        put("fuzz_envelope", "configs-list", 3, list, m + sizeof(unknown));
    }
}

/* --- the realm key config ------------------------------------------------------- */

static void gen_keyconfig(const struct fuzz_ohttp *x)
{
    uint8_t buf[BKV_KEYCONFIG_MAX_LEN];
    struct bkv_keyconfig kc;
    size_t n;

    memset(&kc, 0, sizeof(kc));
    fill(kc.realm_id, sizeof(kc.realm_id), 0xe0);
    kc.ksf = BKV_KSF_ARGON2ID_DEFAULT;
    kc.ohttp = x->cfg;
    GEN(bkv_keyconfig_encode(&kc, buf, sizeof(buf), &n));
    put("fuzz_keyconfig", "argon2id", -1, buf, n);
    put("fuzz_keyconfig", "edge-truncated", -1, buf, n - 1);
    buf[0] = 'X';
    put("fuzz_keyconfig", "edge-bad-magic", -1, buf, n);
    kc.ksf = BKV_KSF_IDENTITY_PARAMS;
    kc.ohttp.suite_count = 1;
    GEN(bkv_keyconfig_encode(&kc, buf, sizeof(buf), &n));
    put("fuzz_keyconfig", "identity-one-suite", -1, buf, n);
}

/* --- OPAQUE ------------------------------------------------------------------- */

static void gen_opaque(const struct fuzz_opaque *f)
{
    uint8_t buf[BKV_OPAQUE_KE2_LEN];

    put("fuzz_opaque", "server-reg-request", 0, f->reg_request, sizeof(f->reg_request));
    put("fuzz_opaque", "server-ke1", 1, f->ke1, sizeof(f->ke1));
    put("fuzz_opaque", "server-ke3", 2, f->ke3, sizeof(f->ke3));
    put("fuzz_opaque", "client-ke2", 3, f->ke2, sizeof(f->ke2));
    put("fuzz_opaque", "client-reg-response", 4, f->reg_response, sizeof(f->reg_response));

    memset(buf, 0, sizeof(buf));
    put("fuzz_opaque", "edge-server-reg-request-zero", 0, buf, BKV_OPAQUE_REG_REQUEST_LEN);
    memcpy(buf, f->ke1, sizeof(f->ke1));
    buf[BKV_OPAQUE_KE1_LEN - 33] ^= 0x01; /* the client keyshare's prefix byte */
    put("fuzz_opaque", "edge-server-ke1-bad-keyshare", 1, buf, sizeof(f->ke1));
    memcpy(buf, f->ke2, sizeof(f->ke2));
    buf[sizeof(f->ke2) - 1] ^= 0x80; /* the server MAC */
    put("fuzz_opaque", "edge-client-ke2-bad-mac", 3, buf, sizeof(f->ke2));
    memcpy(buf, f->ke2, sizeof(f->ke2));
    buf[40] ^= 0x01; /* inside the masked response */
    put("fuzz_opaque", "edge-client-ke2-bad-envelope", 3, buf, sizeof(f->ke2));
    put("fuzz_opaque", "edge-client-reg-response-short", 4, f->reg_response,
        sizeof(f->reg_response) - 1);
}

/* --- Raft commands ------------------------------------------------------------- */

static void gen_cmd(void)
{
    static uint8_t buf[8192];
    uint8_t record[160], wrapped[100];
    struct bkv_cmd c[4];
    size_t n;

    memset(c, 0, sizeof(c));
    fill(record, sizeof(record), 0x05);
    fill(wrapped, sizeof(wrapped), 0x07);
    for (int i = 0; i < 4; i++) {
        c[i].type = (enum bkv_cmd_type)(BKV_CMD_REGISTER + i);
        fill(c[i].request_id, sizeof(c[i].request_id), (uint8_t)(0x11 * (i + 1)));
        fill(c[i].account, sizeof(c[i].account), 0x33);
    }
    c[0].max_attempts = 10;
    c[0].record = record;
    c[0].record_len = sizeof(record);
    c[0].wrapped = wrapped;
    c[0].wrapped_len = sizeof(wrapped);
    c[2].registration = 42;

    GEN(bkv_cmd_entry_encode(&c[0], 1, buf, sizeof(buf), &n));
    put("fuzz_cmd", "register", -1, buf, n);
    put("fuzz_cmd", "edge-register-truncated", -1, buf, n - 8);
    c[0].conditional = 1; /* the gateway's compare-and-set form */
    c[0].registration = 7;
    GEN(bkv_cmd_entry_encode(&c[0], 1, buf, sizeof(buf), &n));
    put("fuzz_cmd", "register-conditional", -1, buf, n);
    c[0].conditional = 0;
    c[0].registration = 0;
    {
        /* A version 1 entry (no condition, no expect), still read (cmd.h). */
        static const uint8_t v1[] = {
            1,    0,    0,    0,    0,    0,    0,    1,    /* version 1, count 1 */
            1,    0,    0,    0,    0,    0,    0,    20,   /* REGISTER, body_len 20 */
            0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, /* request id */
            0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, /* */
            0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, /* account */
            0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, /* */
            0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, /* */
            0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, 0xcd, /* */
            0,    0,    0,    7,    0,    0,    0,    5,    /* max_attempts, record_len */
            1,    2,    3,    4,    5,    0,    0,    0,    /* record, wrapped_len... */
            3,    6,    7,    8,    0,    0,    0,    0,    /* ...3, wrapped, padding */
        };
        put("fuzz_cmd", "register-v1", -1, v1, sizeof(v1));
    }
    GEN(bkv_cmd_entry_encode(&c[1], 1, buf, sizeof(buf), &n));
    put("fuzz_cmd", "attempt", -1, buf, n);
    GEN(bkv_cmd_entry_encode(&c[2], 1, buf, sizeof(buf), &n));
    put("fuzz_cmd", "success", -1, buf, n);
    GEN(bkv_cmd_entry_encode(&c[3], 1, buf, sizeof(buf), &n));
    put("fuzz_cmd", "delete", -1, buf, n);
    buf[1] = 1;
    put("fuzz_cmd", "edge-delete-reserved", -1, buf, n);
    GEN(bkv_cmd_entry_encode(c, 4, buf, sizeof(buf), &n));
    put("fuzz_cmd", "batch-of-four", -1, buf, n);
    /* An entry header that promises more commands than it carries. */
    buf[7] = 5;
    put("fuzz_cmd", "edge-batch-count-too-high", -1, buf, n);
}

/* --- tokens and proofs ----------------------------------------------------------- */

static void gen_token(void)
{
    char tok[BKV_TOKEN_MAX_LEN + 1], proof[BKV_ROUTER_PROOF_HEX_LEN + 1], buf[1024];
    char longest[BKV_MSG_ACCOUNT_MAX + 1];
    static const char body[] = "\x00\x10\x00\x01\x00\x02ohttp-bytes";
    const char *time_str = "1700000000";
    size_t n;

    GEN(bkv_token_issue(fuzz_token_key, "alice@example.com", FUZZ_TOKEN_NOW + 3600, tok,
                        sizeof(tok)));
    put_text("fuzz_token", "token", -1, tok);
    tok[strlen(tok) - 1] ^= 1;
    put_text("fuzz_token", "edge-token-bad-tag", -1, tok);
    GEN(bkv_token_issue(fuzz_token_key, "bob", FUZZ_TOKEN_NOW - 1, tok, sizeof(tok)));
    put_text("fuzz_token", "token-expired", -1, tok);
    memset(longest, 'z', BKV_MSG_ACCOUNT_MAX);
    longest[BKV_MSG_ACCOUNT_MAX] = '\0';
    GEN(bkv_token_issue(fuzz_token_key, longest, UINT64_MAX, tok, sizeof(tok)));
    put_text("fuzz_token", "token-longest", -1, tok);
    put_text("fuzz_token", "edge-token-prefix-only", -1, "bkv1..");

    GEN(bkv_router_proof_compute(fuzz_proof_key, "POST", "/v1/vault", "alice@example.com", time_str,
                                 (const uint8_t *)body, sizeof(body) - 1, proof));
    n = (size_t)snprintf(buf, sizeof(buf), "POST\n/v1/vault\nalice@example.com\n%s\n%s\n", time_str,
                         proof);
    memcpy(buf + n, body, sizeof(body) - 1);
    put("fuzz_token", "proof", 'P', buf, n + sizeof(body) - 1);
    GEN(bkv_router_proof_compute(fuzz_proof_key, "GET", "/v1/status", "bob", "1699999000", NULL, 0,
                                 proof));
    n = (size_t)snprintf(buf, sizeof(buf), "GET\n/v1/status\nbob\n1699999000\n%s\n", proof);
    put("fuzz_token", "proof-stale", 'P', buf, n);
    put_text("fuzz_token", "edge-proof-missing-fields", 'P', "POST\n/v1/vault\nalice");
}

/* --- the configuration file ------------------------------------------------------ */

static void gen_config(void)
{
    static const char full[] = "[node]\n"
                               "id = 1\n"
                               "dc = eu-west\n"
                               "raft = [::1]:7101\n"
                               "gateway = node1.example:7201\n"
                               "admin = 127.0.0.1:7301\n"
                               "data_dir = /srv/bkv/1\n"
                               "max_attempts = 1000000\n"
                               "snapshot_threshold = 64\n"
                               "snapshot_trailing = 32\n"
                               "election_timeout_ms = 1500\n"
                               "heartbeat_timeout_ms = 150\n"
                               "login_timeout_s = 30\n"
                               "max_sessions = 20000\n"
                               "log_level = debug\n"
                               "[hsm]\n"
                               "module = /usr/lib/softhsm/libsofthsm2.so\n"
                               "token = 01234567890123456789012345678901\n"
                               "pin_file = /etc/bkv/user.pin\n"
                               "node_dir = /srv/bkv/hsm-1\n"
                               "realm_dir = /srv/bkv/realm\n"
                               "[router]\n"
                               "proof_key_file = /etc/bkv/router-proof.key\n"
                               "[member 1]\n"
                               "dc = eu-west\n"
                               "raft = [::1]:7101\n"
                               "gateway = node1.example:7201\n"
                               "admin = 127.0.0.1:7301\n"
                               "snapshot = 127.0.0.1:7401\n"
                               "[member 2]\n"
                               "dc = eu-central\n"
                               "raft = 10.0.0.2:7101\n"
                               "gateway = 10.0.0.2:7201\n"
                               "admin = 10.0.0.2:7301\n"
                               "snapshot = 10.0.0.2:7401\n"
                               "[member 3]\n"
                               "dc = us-east\n"
                               "raft = 10.0.0.3:7101\n"
                               "gateway = 10.0.0.3:7201\n"
                               "admin = 10.0.0.3:7301\n"
                               "snapshot = 10.0.0.3:7401\n";

    put_text("fuzz_config", "node-2-of-2", -1, bkv_config_sample);
    put_text("fuzz_config", "node-1-of-3-every-key", -1, full);
    put_text("fuzz_config", "edge-comment-only", -1, "# nothing here\n\n");
    put_text("fuzz_config", "edge-no-final-newline", -1, "[node]\nid = 1");
    put_text("fuzz_config", "edge-crlf", -1, "[node]\r\nid = 1\r\ndc = a\r\n");
    put_text("fuzz_config", "edge-stray-line", -1, "[node]\nid\n= 1\n[member x]\n[]\n");
    put_text("fuzz_config", "edge-big-numbers", -1,
             "[node]\nid = 9007199254740993\nmax_attempts = 99999999999999999999\n"
             "[member 18446744073709551616]\n");
}

/* --- the backup stream ------------------------------------------------------------ */

static void gen_stream(void)
{
    static uint8_t pt[2600], buf[4096];
    static const size_t lens[] = {0, 1, 100, 1024, 1025, 2048, 2500};
    char name[64];
    size_t n;

    fill(pt, sizeof(pt), 0x09);
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        GEN(bkv_stream_seal_buffer(fuzz_stream_key, fuzz_stream_salt, FUZZ_STREAM_LOG2, pt, lens[i],
                                   buf, sizeof(buf), &n));
        snprintf(name, sizeof(name), "plaintext-%zu", lens[i]);
        put("fuzz_stream", name, -1, buf, n);
    }
    /* 2500 bytes: three chunks. Cut off the last, swap two, cut the header. */
    put("fuzz_stream", "edge-last-chunk-missing", -1, buf,
        BKV_STREAM_HEADER_LEN + 2 * (1024 + BKV_STREAM_TAG_LEN));
    put("fuzz_stream", "edge-header-only", -1, buf, BKV_STREAM_HEADER_LEN);
    put("fuzz_stream", "edge-cut-in-header", -1, buf, 10);
    {
        static uint8_t sw[4096];
        size_t c = 1024 + BKV_STREAM_TAG_LEN;

        memcpy(sw, buf, n);
        memcpy(sw + BKV_STREAM_HEADER_LEN, buf + BKV_STREAM_HEADER_LEN + c, c);
        memcpy(sw + BKV_STREAM_HEADER_LEN + c, buf + BKV_STREAM_HEADER_LEN, c);
        put("fuzz_stream", "edge-chunks-swapped", -1, sw, n);
    }
    GEN(bkv_stream_seal_buffer(fuzz_stream_key, fuzz_stream_salt, BKV_STREAM_LOG2_MAX, pt, 10, buf,
                               sizeof(buf), &n));
    put("fuzz_stream", "plaintext-10-max-chunk", -1, buf, n);
    buf[4] = 2;
    put("fuzz_stream", "edge-version-2", -1, buf, n);
}

/* --- HTTP ----------------------------------------------------------------------- */

static void gen_http(void)
{
    static const struct {
        const char *name;
        char mode;
        const char *text;
    } seeds[] = {
        {"server-get", 's', "GET /livez HTTP/1.1\r\nHost: node\r\n\r\n"},
        {"server-post", 's',
         "POST /v1/vault HTTP/1.1\r\nHost: router\r\nAuthorization: Bearer bkv1.x.y\r\n"
         "Content-Type: message/bkv-request\r\nX-Echo: hello\r\nContent-Length: 5\r\n\r\nhello"},
        {"server-pipelined", 's',
         "GET /livez HTTP/1.1\r\nHost: a\r\n\r\nPUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2"
         "\r\n\r\nhiDELETE /y?z=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"},
        {"server-expect-continue", 's',
         "POST /v1/vault HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n"
         "\r\nabc"},
        {"server-http10", 's', "GET /v1/status HTTP/1.0\r\n\r\n"},
        {"server-keepalive-http10", 's',
         "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n"},
        {"server-split", 'S',
         "POST /v1/vault HTTP/1.1\r\nHost: router\r\nX-BKV-Account: alice\r\n"
         "X-BKV-Router-Time: 1700000000\r\nX-Echo: split value\r\nContent-Length: 11\r\n\r\n"
         "hello world"},
        {"edge-server-chunked", 's',
         "POST /v1/vault HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5\r\nhello\r\n0\r\n\r\n"},
        {"edge-server-too-large", 's',
         "POST /v1/vault HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n"},
        {"edge-server-patch", 's', "PATCH / HTTP/1.1\r\nHost: a\r\n\r\n"},
        {"edge-server-space-before-colon", 's', "GET / HTTP/1.1\r\nHost : a\r\n\r\n"},
        {"edge-server-empty-header-name", 's', "GET / HTTP/1.1\r\n: a\r\n\r\n"},
        {"edge-server-upgrade", 's',
         "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nrest"},
        {"edge-server-two-lengths", 's',
         "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"},
        {"edge-server-bad-echo", 's', "GET / HTTP/1.1\r\nX-Echo: a\x01z\r\n\r\n"},
        {"edge-server-partial", 's', "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"},

        {"node-client-200", 'r',
         "HTTP/1.1 200 OK\r\nContent-Type: message/bkv-response\r\nContent-Length: 5\r\n\r\n"
         "hello"},
        {"node-client-421", 'r',
         "HTTP/1.1 421 Misdirected Request\r\nX-BKV-Leader: 127.0.0.1:7202\r\n"
         "Content-Length: 0\r\n\r\n"},
        {"node-client-continue", 'r',
         "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
        {"node-client-chunked", 'r',
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n"
         "0\r\nTrailer: t\r\n\r\n"},
        {"node-client-eof-body", 'r', "HTTP/1.1 503 Service Unavailable\r\n\r\nuntil eof"},
        {"node-client-split", 'R',
         "HTTP/1.1 200 OK\r\nContent-Type: message/bkv-response\r\nRetry-After: 1\r\n"
         "Content-Length: 11\r\n\r\nhello world"},
        {"node-client-head", 'h', "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"},
        {"edge-node-client-too-large", 'r', "HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r\n"},
        {"edge-node-client-trailing", 'r',
         "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n\r\n"},
        {"edge-node-client-garbage", 'r', "HTTP/1.1 2OO OK\r\n\r\n"},

        {"libbkv-200", 'c',
         "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 4\r\n\r\n"
         "BKVK"},
        {"libbkv-429", 'c',
         "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Type: text/plain\r\n"
         "Content-Length: 5\r\n\r\nslow\n"},
        {"libbkv-continue", 'c', "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"},
        {"libbkv-chunked", 'c',
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nBKVK\r\n0\r\n\r\n"},
        {"libbkv-eof-body", 'c', "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil eof"},
        {"edge-libbkv-retry-after-date", 'c',
         "HTTP/1.1 503 Service Unavailable\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n"
         "Content-Length: 0\r\n\r\n"},
        {"edge-libbkv-too-large", 'c', "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"},
        {"edge-libbkv-cut", 'c', "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort"},
    };

    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++)
        put_text("fuzz_http", seeds[i].name, seeds[i].mode, seeds[i].text);
}

int main(int argc, char **argv)
{
    const struct fuzz_ohttp *x;
    const struct fuzz_opaque *f;

    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS-DIR (tests/fuzz/corpus)\n", argv[0]);
        return 2;
    }
    root = argv[1];
    mkdir_p(root);
    x = fuzz_ohttp();
    f = fuzz_opaque();
    gen_envelope(x, f);
    gen_keyconfig(x);
    gen_msg(f);
    gen_opaque(f);
    gen_cmd();
    gen_token();
    gen_config();
    gen_stream();
    gen_http();
    printf("gen: wrote %d seed files under %s\n", written, root);
    return 0;
}
