/*
 * node/token: account tokens (round trip, an independent recomputation of the
 * format with OpenSSL, every tampered byte, expiry, malformed inputs), the
 * router proof (independent recomputation, every field bound, the 60 s
 * window, malformed headers) and the key files (round trip, permissions,
 * symlinks, the wrong file).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "harness.h"
#include "node/token.h"
#include "proto/err.h"
#include "proto/util.h"

static uint8_t key[BKV_TOKEN_KEY_LEN], key2[BKV_TOKEN_KEY_LEN];
static char dir[64];

static int setup(void)
{
    for (size_t i = 0; i < sizeof(key); i++) {
        key[i] = (uint8_t)(i * 7 + 1);
        key2[i] = (uint8_t)(i * 7 + 2);
    }
    snprintf(dir, sizeof(dir), "/tmp/bkv-token-test.XXXXXX");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* base64url (no padding) -> bytes with OpenSSL's decoder, independently of token.c. */
static size_t b64url_decode_ref(const char *in, size_t n, uint8_t *out)
{
    char buf[1024] = "";
    uint8_t tmp[1024];
    size_t m = 0;
    int len;

    for (size_t i = 0; i < n; i++)
        buf[m++] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
    while (m % 4 != 0)
        buf[m++] = '=';
    len = EVP_DecodeBlock(tmp, (const unsigned char *)buf, (int)m);
    CU_ASSERT_FATAL(len >= 0);
    while (m > 0 && buf[m - 1] == '=') {
        m--;
        len--;
    }
    memcpy(out, tmp, (size_t)len);
    return (size_t)len;
}

static void test_round_trip(void)
{
    char tok[BKV_TOKEN_MAX_LEN + 1], acct[BKV_MSG_ACCOUNT_MAX + 1];
    uint8_t payload[300], tag[64], want[32];
    unsigned int want_len = 0;
    uint64_t exp = 0;
    const char *dot;
    size_t plen, tlen;

    CU_ASSERT_EQUAL_FATAL(bkv_token_issue(key, "alice@example.org", 2000000000u, tok, sizeof(tok)),
                          BKV_OK);
    CU_ASSERT_EQUAL(strncmp(tok, "bkv1.", 5), 0);
    CU_ASSERT_PTR_NULL(strchr(tok, '='));
    CU_ASSERT_EQUAL(bkv_token_verify(key, tok, strlen(tok), 1000, acct, &exp), BKV_OK);
    CU_ASSERT_STRING_EQUAL(acct, "alice@example.org");
    CU_ASSERT_EQUAL(exp, 2000000000u);

    /* The layout, recomputed with OpenSSL alone. */
    dot = strchr(tok + 5, '.');
    CU_ASSERT_PTR_NOT_NULL_FATAL(dot);
    plen = b64url_decode_ref(tok + 5, (size_t)(dot - tok) - 5, payload);
    CU_ASSERT_EQUAL(plen, 8 + strlen("alice@example.org"));
    CU_ASSERT_EQUAL(payload[0], 0);
    CU_ASSERT_EQUAL(payload[4], (2000000000u >> 24) & 0xff);
    CU_ASSERT_EQUAL(payload[7], 2000000000u & 0xff);
    CU_ASSERT_EQUAL(memcmp(payload + 8, "alice@example.org", plen - 8), 0);
    tlen = b64url_decode_ref(dot + 1, strlen(dot + 1), tag);
    CU_ASSERT_EQUAL(tlen, 32);
    HMAC(EVP_sha256(), key, sizeof(key), (const unsigned char *)tok, (size_t)(dot - tok), want,
         &want_len);
    CU_ASSERT_EQUAL(want_len, 32);
    CU_ASSERT_EQUAL(memcmp(tag, want, 32), 0);

    /* Every valid account length works, including the maximum. */
    for (size_t n = 1; n <= BKV_MSG_ACCOUNT_MAX; n += 17) {
        char a[BKV_MSG_ACCOUNT_MAX + 1];
        memset(a, 'x', n);
        a[n] = '\0';
        CU_ASSERT_EQUAL(bkv_token_issue(key, a, 5000, tok, sizeof(tok)), BKV_OK);
        CU_ASSERT_EQUAL(bkv_token_verify(key, tok, strlen(tok), 0, acct, NULL), BKV_OK);
        CU_ASSERT_STRING_EQUAL(acct, a);
    }
    {
        char a[BKV_MSG_ACCOUNT_MAX + 1];
        memset(a, 'y', BKV_MSG_ACCOUNT_MAX);
        a[BKV_MSG_ACCOUNT_MAX] = '\0';
        CU_ASSERT_EQUAL(bkv_token_issue(key, a, 5000, tok, sizeof(tok)), BKV_OK);
        CU_ASSERT(strlen(tok) <= BKV_TOKEN_MAX_LEN);
        CU_ASSERT_EQUAL(bkv_token_verify(key, tok, strlen(tok), 0, acct, NULL), BKV_OK);
    }
}

static void test_issue_refuses(void)
{
    char tok[BKV_TOKEN_MAX_LEN + 1], big[BKV_MSG_ACCOUNT_MAX + 2];

    CU_ASSERT_EQUAL(bkv_token_issue(key, "", 5, tok, sizeof(tok)), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_token_issue(key, "a b", 5, tok, sizeof(tok)), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_token_issue(key, "a/b", 5, tok, sizeof(tok)), BKV_ERR_INVALID);
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    CU_ASSERT_EQUAL(bkv_token_issue(key, big, 5, tok, sizeof(tok)), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_token_issue(key, "bob", 5, tok, 20), BKV_ERR_LENGTH);
}

/* Change every byte of a valid token in several ways; truncate and extend it. */
static void test_tampering(void)
{
    char tok[BKV_TOKEN_MAX_LEN + 1], t[BKV_TOKEN_MAX_LEN + 2], acct[BKV_MSG_ACCOUNT_MAX + 1];
    static const char repl[] = {'A', 'a', '0', '-', '_', '.', '=', ' ', '\0', '\xff'};
    size_t len;
    int accepted = 0, tried = 0;

    CU_ASSERT_EQUAL_FATAL(bkv_token_issue(key, "carol", 4000000000u, tok, sizeof(tok)), BKV_OK);
    len = strlen(tok);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(t, tok, len);
            t[i] = (char)(t[i] ^ (1 << bit));
            tried++;
            if (bkv_token_verify(key, t, len, 0, acct, NULL) == BKV_OK)
                accepted++;
            else
                CU_ASSERT_STRING_EQUAL(acct, "");
        }
        for (size_t r = 0; r < sizeof(repl); r++) {
            if (tok[i] == repl[r])
                continue;
            memcpy(t, tok, len);
            t[i] = repl[r];
            tried++;
            if (bkv_token_verify(key, t, len, 0, acct, NULL) == BKV_OK)
                accepted++;
        }
    }
    for (size_t n = 0; n < len; n++) {
        tried++;
        if (bkv_token_verify(key, tok, n, 0, acct, NULL) == BKV_OK)
            accepted++;
    }
    memcpy(t, tok, len);
    t[len] = 'A';
    CU_ASSERT_NOT_EQUAL(bkv_token_verify(key, t, len + 1, 0, acct, NULL), BKV_OK);
    CU_ASSERT(tried > 1000);
    CU_ASSERT_EQUAL(accepted, 0);
    /* The untouched token still verifies: the loop did test something. */
    CU_ASSERT_EQUAL(bkv_token_verify(key, tok, len, 0, acct, NULL), BKV_OK);
    /* Another key: a bad tag. */
    CU_ASSERT_EQUAL(bkv_token_verify(key2, tok, len, 0, acct, NULL), BKV_ERR_MAC);
    /* A flip in the tag text is a bad tag, not a parse error. */
    memcpy(t, tok, len);
    t[len - 2] = t[len - 2] == 'A' ? 'B' : 'A';
    CU_ASSERT_EQUAL(bkv_token_verify(key, t, len, 0, acct, NULL), BKV_ERR_MAC);
}

static void test_expiry(void)
{
    char tok[BKV_TOKEN_MAX_LEN + 1], acct[BKV_MSG_ACCOUNT_MAX + 1];

    CU_ASSERT_EQUAL_FATAL(bkv_token_issue(key, "dave", 1700000000u, tok, sizeof(tok)), BKV_OK);
    CU_ASSERT_EQUAL(bkv_token_verify(key, tok, strlen(tok), 1699999999u, acct, NULL), BKV_OK);
    CU_ASSERT_EQUAL(bkv_token_verify(key, tok, strlen(tok), 1700000000u, acct, NULL),
                    BKV_ERR_LIMIT);
    CU_ASSERT_STRING_EQUAL(acct, "");
    CU_ASSERT_EQUAL(bkv_token_verify(key, tok, strlen(tok), UINT64_MAX, acct, NULL), BKV_ERR_LIMIT);
    /* An expired token with a bad tag is a bad tag: the tag is checked first. */
    CU_ASSERT_EQUAL(bkv_token_verify(key2, tok, strlen(tok), 1800000000u, acct, NULL), BKV_ERR_MAC);
    CU_ASSERT_EQUAL(bkv_token_issue(key, "dave", 0, tok, sizeof(tok)), BKV_OK);
    CU_ASSERT_EQUAL(bkv_token_verify(key, tok, strlen(tok), 0, acct, NULL), BKV_ERR_LIMIT);
}

/* A token signed correctly over an arbitrary payload text (to reach the checks after the tag). */
static void sign_raw(const char *payload_b64, char *out, size_t cap)
{
    uint8_t tag[32];
    unsigned int n = 0;
    unsigned char b64[64];
    size_t len;

    snprintf(out, cap, "bkv1.%s", payload_b64);
    HMAC(EVP_sha256(), key, sizeof(key), (const unsigned char *)out, strlen(out), tag, &n);
    EVP_EncodeBlock(b64, tag, 32);
    for (unsigned char *p = b64; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    len = strlen((char *)b64);
    while (len > 0 && b64[len - 1] == '=')
        b64[--len] = '\0';
    snprintf(out + strlen(out), cap - strlen(out), ".%s", (char *)b64);
}

static void test_malformed(void)
{
    char acct[BKV_MSG_ACCOUNT_MAX + 1], tok[BKV_TOKEN_MAX_LEN + 1], t[1024];
    const char *bad[] = {
        "",
        "bkv1",
        "bkv1.",
        "bkv1..",
        "bkv2.AAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "BKV1.AAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "bkv1.AAAAAAAAAAAAAA",
        "bkv1.AAAAAAAAAAAAAA.",
        "bkv1..AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "bkv1.AAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "bkv1.AAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "bkv1.AAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB", /* non-canonical */
        "bkv1.AAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+A",
        "bkv1.AAAAAAAAAAAA=.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "bkv1.AAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", /* 8 bytes: no account */
        "bkv1.A.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "bkv1.AAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = bkv_token_verify(key, bad[i], strlen(bad[i]), 0, acct, NULL);
        if (rc != BKV_ERR_FORMAT)
            fprintf(stderr, "case %zu (%s): %s\n", i, bad[i], bkv_strerror(rc));
        CU_ASSERT_EQUAL(rc, BKV_ERR_FORMAT);
    }
    CU_ASSERT_EQUAL(bkv_token_verify(key, NULL, 10, 0, acct, NULL), BKV_ERR_FORMAT);
    /* Too long, even if it starts well. */
    memset(t, 'A', sizeof(t));
    memcpy(t, "bkv1.", 5);
    CU_ASSERT_EQUAL(bkv_token_verify(key, t, sizeof(t), 0, acct, NULL), BKV_ERR_FORMAT);
    /* Correctly signed, but the account inside is not valid: malformed. */
    /* payload = 8 zero... expiry ff.. || "a b": base64url of ffffffffffffffff612062 */
    sign_raw("__________9hIGI", tok, sizeof(tok));
    CU_ASSERT_EQUAL(bkv_token_verify(key, tok, strlen(tok), 0, acct, NULL), BKV_ERR_FORMAT);
    /* The same construction with a valid account verifies (the helper is right). */
    sign_raw("__________9hYmM", tok, sizeof(tok)); /* "abc" */
    CU_ASSERT_EQUAL(bkv_token_verify(key, tok, strlen(tok), 0, acct, NULL), BKV_OK);
    CU_ASSERT_STRING_EQUAL(acct, "abc");
    /* A NUL inside the account is refused. */
    sign_raw("__________9hAGI", tok, sizeof(tok));
    CU_ASSERT_EQUAL(bkv_token_verify(key, tok, strlen(tok), 0, acct, NULL), BKV_ERR_FORMAT);
}

/* The proof recomputed with OpenSSL alone. */
static void proof_ref(const uint8_t k[32], const char *f[4], const uint8_t *body, size_t n,
                      char out[65])
{
    uint8_t digest[32], mac[32], buf[4096];
    size_t len = 0;
    unsigned int ml = 0;

    SHA256(body, n, digest);
    memcpy(buf, "BKV-ROUTER-PROOF-v1", 19);
    len = 19;
    for (int i = 0; i < 4; i++) {
        size_t l = strlen(f[i]);
        buf[len++] = (uint8_t)(l >> 8);
        buf[len++] = (uint8_t)l;
        memcpy(buf + len, f[i], l);
        len += l;
    }
    buf[len++] = 0;
    buf[len++] = 32;
    memcpy(buf + len, digest, 32);
    len += 32;
    HMAC(EVP_sha256(), k, 32, buf, len, mac, &ml);
    bkv_hex_encode(mac, 32, out);
}

static void test_proof(void)
{
    static const uint8_t body[] = "an encapsulated request";
    const char *f[4] = {"POST", "/v1/vault", "alice", "1700000000"};
    char proof[BKV_ROUTER_PROOF_HEX_LEN + 1], want[65], bad[70];
    uint64_t t = 1700000000u;

    CU_ASSERT_EQUAL_FATAL(bkv_router_proof_compute(key, "POST", "/v1/vault", "alice", "1700000000",
                                                   body, sizeof(body), proof),
                          BKV_OK);
    CU_ASSERT_EQUAL(strlen(proof), 64);
    proof_ref(key, f, body, sizeof(body), want);
    CU_ASSERT_STRING_EQUAL(proof, want);
    CU_ASSERT_EQUAL(bkv_router_proof_verify(key, "POST", "/v1/vault", "alice", "1700000000", proof,
                                            body, sizeof(body), t),
                    BKV_OK);
    /* Every field is bound. */
    CU_ASSERT_EQUAL(bkv_router_proof_verify(key, "PUT", "/v1/vault", "alice", "1700000000", proof,
                                            body, sizeof(body), t),
                    BKV_ERR_MAC);
    CU_ASSERT_EQUAL(bkv_router_proof_verify(key, "POST", "/v1/vaulT", "alice", "1700000000", proof,
                                            body, sizeof(body), t),
                    BKV_ERR_MAC);
    CU_ASSERT_EQUAL(bkv_router_proof_verify(key, "POST", "/v1/vault", "alicf", "1700000000", proof,
                                            body, sizeof(body), t),
                    BKV_ERR_MAC);
    CU_ASSERT_EQUAL(bkv_router_proof_verify(key, "POST", "/v1/vault", "alice", "1700000001", proof,
                                            body, sizeof(body), t),
                    BKV_ERR_MAC);
    CU_ASSERT_EQUAL(bkv_router_proof_verify(key, "POST", "/v1/vault", "alice", "1700000000", proof,
                                            body, sizeof(body) - 1, t),
                    BKV_ERR_MAC);
    CU_ASSERT_EQUAL(bkv_router_proof_verify(key2, "POST", "/v1/vault", "alice", "1700000000", proof,
                                            body, sizeof(body), t),
                    BKV_ERR_MAC);
    /* Length prefixes: moving a byte from one field to the next changes the proof. */
    CU_ASSERT_EQUAL(bkv_router_proof_verify(key, "POST/", "v1/vault", "alice", "1700000000", proof,
                                            body, sizeof(body), t),
                    BKV_ERR_MAC);
    for (int i = 0; i < 64; i++) {
        strcpy(bad, proof);
        bad[i] = bad[i] == '0' ? '1' : '0';
        CU_ASSERT_EQUAL(bkv_router_proof_verify(key, "POST", "/v1/vault", "alice", "1700000000",
                                                bad, body, sizeof(body), t),
                        BKV_ERR_MAC);
    }
    /* Upper-case hex of the right proof is the same proof. */
    strcpy(bad, proof);
    for (char *p = bad; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    CU_ASSERT_EQUAL(bkv_router_proof_verify(key, "POST", "/v1/vault", "alice", "1700000000", bad,
                                            body, sizeof(body), t),
                    BKV_OK);
    /* The window: 60 s either way. */
    CU_ASSERT_EQUAL(bkv_router_proof_verify(key, "POST", "/v1/vault", "alice", "1700000000", proof,
                                            body, sizeof(body), t + 60),
                    BKV_OK);
    CU_ASSERT_EQUAL(bkv_router_proof_verify(key, "POST", "/v1/vault", "alice", "1700000000", proof,
                                            body, sizeof(body), t - 60),
                    BKV_OK);
    CU_ASSERT_EQUAL(bkv_router_proof_verify(key, "POST", "/v1/vault", "alice", "1700000000", proof,
                                            body, sizeof(body), t + 61),
                    BKV_ERR_LIMIT);
    CU_ASSERT_EQUAL(bkv_router_proof_verify(key, "POST", "/v1/vault", "alice", "1700000000", proof,
                                            body, sizeof(body), t - 61),
                    BKV_ERR_LIMIT);
    CU_ASSERT_EQUAL(bkv_router_proof_verify(key, "POST", "/v1/vault", "alice", "1700000000", proof,
                                            body, sizeof(body), 0),
                    BKV_ERR_LIMIT);
    /* Empty body. */
    CU_ASSERT_EQUAL(bkv_router_proof_compute(key, "GET", "/", "a", "0", NULL, 0, proof), BKV_OK);
    CU_ASSERT_EQUAL(bkv_router_proof_verify(key, "GET", "/", "a", "0", proof, NULL, 0, 30), BKV_OK);
}

static void test_proof_malformed(void)
{
    char proof[BKV_ROUTER_PROOF_HEX_LEN + 1], p63[64], pz[65];
    const char *times[] = {"",
                           "01",
                           "-1",
                           "+1",
                           "1.5",
                           " 1",
                           "1 ",
                           "0x10",
                           "18446744073709551616",
                           "99999999999999999999",
                           "123456789012345678901"};

    CU_ASSERT_EQUAL_FATAL(bkv_router_proof_compute(key, "POST", "/v1/vault", "alice", "100",
                                                   (const uint8_t *)"x", 1, proof),
                          BKV_OK);
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        CU_ASSERT_EQUAL(bkv_router_proof_verify(key, "POST", "/v1/vault", "alice", times[i], proof,
                                                (const uint8_t *)"x", 1, 100),
                        BKV_ERR_FORMAT);
        CU_ASSERT_EQUAL(bkv_router_proof_compute(key, "POST", "/v1/vault", "alice", times[i],
                                                 (const uint8_t *)"x", 1, proof + 0),
                        BKV_ERR_INVALID);
        /* compute wiped proof; make it again */
        bkv_router_proof_compute(key, "POST", "/v1/vault", "alice", "100", (const uint8_t *)"x", 1,
                                 proof);
    }
    CU_ASSERT_EQUAL(bkv_router_proof_verify(key, "POST", "/v1/vault", "alice",
                                            "18446744073709551615", proof, (const uint8_t *)"x", 1,
                                            100),
                    BKV_ERR_MAC); /* the largest time parses */
    memcpy(p63, proof, 63);
    p63[63] = '\0';
    memcpy(pz, proof, 65);
    pz[10] = 'z';
    CU_ASSERT_EQUAL(bkv_router_proof_verify(key, "POST", "/v1/vault", "alice", "100", p63,
                                            (const uint8_t *)"x", 1, 100),
                    BKV_ERR_FORMAT);
    CU_ASSERT_EQUAL(bkv_router_proof_verify(key, "POST", "/v1/vault", "alice", "100", pz,
                                            (const uint8_t *)"x", 1, 100),
                    BKV_ERR_FORMAT);
    CU_ASSERT_EQUAL(bkv_router_proof_verify(key, "POST", "/v1/vault", "alice", "100", NULL,
                                            (const uint8_t *)"x", 1, 100),
                    BKV_ERR_FORMAT);
    CU_ASSERT_EQUAL(bkv_router_proof_verify(key, "POST", "/v1/vault", NULL, "100", proof,
                                            (const uint8_t *)"x", 1, 100),
                    BKV_ERR_FORMAT);
    CU_ASSERT_EQUAL(bkv_router_proof_verify(key, "POST", "/v1/vault", "al ice", "100", proof,
                                            (const uint8_t *)"x", 1, 100),
                    BKV_ERR_FORMAT);
    CU_ASSERT_EQUAL(bkv_router_proof_verify(key, "POST", "/v1/vault", "alice", NULL, proof,
                                            (const uint8_t *)"x", 1, 100),
                    BKV_ERR_FORMAT);
    CU_ASSERT_EQUAL(bkv_router_proof_verify(key, "POST", "/v1/vault", "alice", "100", proof,
                                            (const uint8_t *)"x", 1, 100),
                    BKV_OK);
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd;

    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(write(fd, data, len) == (ssize_t)len);
    close(fd);
    CU_ASSERT_FATAL(chmod(path, mode) == 0);
}

static void test_key_files(void)
{
    struct bkv_router_keys k, got;
    uint8_t file[BKV_ROUTER_KEY_FILE_LEN], pfile[BKV_ROUTER_PROOF_FILE_LEN], proof[32];
    char path[128], ppath[128], link_path[128], err[512];

    CU_ASSERT_EQUAL_FATAL(bkv_router_keys_generate(&k), BKV_OK);
    bkv_router_key_file_encode(&k, file);
    bkv_router_proof_file_encode(&k, pfile);
    CU_ASSERT_EQUAL(file[sizeof(file) - 1], '\n');
    snprintf(path, sizeof(path), "%s/router.key", dir);
    snprintf(ppath, sizeof(ppath), "%s/router-proof.key", dir);
    write_file(path, file, sizeof(file), 0600);
    write_file(ppath, pfile, sizeof(pfile), 0600);
    CU_ASSERT_EQUAL(bkv_router_key_load(path, &got, err, sizeof(err)), BKV_OK);
    CU_ASSERT_EQUAL(memcmp(&got, &k, sizeof(k)), 0);
    CU_ASSERT_EQUAL(bkv_router_proof_key_load(ppath, proof, err, sizeof(err)), BKV_OK);
    CU_ASSERT_EQUAL(memcmp(proof, k.proof_key, 32), 0);
    /* The wrong file for each loader. */
    CU_ASSERT_EQUAL(bkv_router_proof_key_load(path, proof, err, sizeof(err)), BKV_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "router-proof.key"));
    CU_ASSERT_EQUAL(bkv_router_key_load(ppath, &got, err, sizeof(err)), BKV_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "router.key"));
    /* Readable by others: refused, and the message says what to do, not the content. */
    CU_ASSERT_FATAL(chmod(path, 0640) == 0);
    CU_ASSERT_EQUAL(bkv_router_key_load(path, &got, err, sizeof(err)), BKV_ERR_PERMISSION);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "chmod 600"));
    CU_ASSERT_PTR_NULL(strstr(err, (const char *)"0123"));
    CU_ASSERT_FATAL(chmod(path, 0604) == 0);
    CU_ASSERT_EQUAL(bkv_router_key_load(path, &got, err, sizeof(err)), BKV_ERR_PERMISSION);
    CU_ASSERT_FATAL(chmod(path, 0600) == 0);
    /* A symlink is not followed. */
    snprintf(link_path, sizeof(link_path), "%s/link.key", dir);
    CU_ASSERT_FATAL(symlink(path, link_path) == 0);
    CU_ASSERT_EQUAL(bkv_router_key_load(link_path, &got, err, sizeof(err)), BKV_ERR_IO);
    /* Missing, a directory, bad hex, short, long. */
    CU_ASSERT_EQUAL(bkv_router_key_load("/nonexistent/router.key", &got, err, sizeof(err)),
                    BKV_ERR_IO);
    CU_ASSERT_EQUAL(bkv_router_key_load(dir, &got, err, sizeof(err)), BKV_ERR_IO);
    file[5] = 'g';
    write_file(path, file, sizeof(file), 0600);
    CU_ASSERT_EQUAL(bkv_router_key_load(path, &got, err, sizeof(err)), BKV_ERR_FORMAT);
    write_file(path, file, 10, 0600);
    CU_ASSERT_EQUAL(bkv_router_key_load(path, &got, err, sizeof(err)), BKV_ERR_FORMAT);
    write_file(path, "", 0, 0600);
    CU_ASSERT_EQUAL(bkv_router_key_load(path, &got, err, sizeof(err)), BKV_ERR_FORMAT);
    bkv_router_keys_wipe(&k);
    for (size_t i = 0; i < sizeof(k.token_key); i++)
        CU_ASSERT_EQUAL(k.token_key[i] | k.proof_key[i], 0);
}

static CU_TestInfo tests[] = {
    {"token round trip and its layout, recomputed with OpenSSL", test_round_trip},
    {"issue refuses invalid accounts and short buffers", test_issue_refuses},
    {"every tampered, truncated or extended token is refused", test_tampering},
    {"expiry against the given clock", test_expiry},
    {"malformed tokens are BKV_ERR_FORMAT", test_malformed},
    {"router proof: recomputed, every field bound, 60 s window", test_proof},
    {"router proof: malformed headers", test_proof_malformed},
    {"key files: round trip, permissions, symlink, wrong file", test_key_files},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return bkv_test_main("node_token", tests, setup, teardown);
}
