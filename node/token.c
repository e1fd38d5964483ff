/*
 * Account tokens, router proofs and router key files (see token.h).
 *
 * Normal path: issue = HMAC over the prefix and the base64url payload, then
 * append the base64url tag; verify = split at the two dots, decode both
 * parts strictly, recompute the tag over the received text and compare in
 * constant time, and only then read the expiry and the account. The proof
 * is an HMAC over length-prefixed fields; verify parses every header before
 * the MAC and checks the time window after it.
 * Failure modes: malformed input (BKV_ERR_FORMAT), a wrong tag or proof
 * (BKV_ERR_MAC), an expired token or a stale proof time (BKV_ERR_LIMIT), a
 * key file others can read (BKV_ERR_PERMISSION) or of the wrong size
 * (BKV_ERR_FORMAT). Key bytes are wiped from every local buffer on every
 * path.
 */
#include "token.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "proto/err.h"
#include "proto/kdf.h"
#include "proto/util.h"

#define PREFIX_LEN   (sizeof(BKV_TOKEN_PREFIX) - 1)
#define EXPIRY_LEN   8
#define PAYLOAD_MAX  (EXPIRY_LEN + BKV_MSG_ACCOUNT_MAX)
#define TAG_B64_LEN  43 /* 32 bytes */
#define B64_LEN(n)   (((n)*4 + 2) / 3)
#define KEY_FILE_MAX 512

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Unpadded base64url of n bytes into out (B64_LEN(n) chars, no NUL). */
static void b64url_encode(const uint8_t *in, size_t n, char *out)
{
    size_t i, o = 0;

    for (i = 0; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
        out[o++] = b64url[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
    }
}

static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/*
 * Strict decoder: only the alphabet, no padding, a length that is not 1 mod
 * 4, and zero unused bits, so every byte string has exactly one text.
 * Returns the decoded length, or -1 (also when it exceeds cap).
 */
static long b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
    size_t o = 0, i;
    uint32_t acc = 0;
    int bits = 0;

    if (n % 4 == 1 || n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) > cap)
        return -1;
    for (i = 0; i < n; i++) {
        int v = b64url_value(in[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0)
        return -1; /* non-canonical: unused low bits set */
    return (long)o;
}

static int tag_compute(const uint8_t key[static BKV_TOKEN_KEY_LEN], const char *signed_text,
                       size_t len, uint8_t tag[static BKV_HASH_LEN])
{
    struct bkv_buf part = {(const uint8_t *)signed_text, len};

    return bkv_hmac_sha256(key, BKV_TOKEN_KEY_LEN, &part, 1, tag);
}

int bkv_token_issue(const uint8_t key[static BKV_TOKEN_KEY_LEN], const char *account,
                    uint64_t expiry, char *out, size_t cap)
{
    uint8_t payload[PAYLOAD_MAX], tag[BKV_HASH_LEN];
    size_t alen, plen, pos;
    int rc;

    if (account == NULL || out == NULL)
        return BKV_ERR_INVALID;
    alen = strlen(account);
    if (!bkv_msg_account_valid((const uint8_t *)account, alen))
        return BKV_ERR_INVALID;
    plen = EXPIRY_LEN + alen;
    if (cap < PREFIX_LEN + B64_LEN(plen) + 1 + TAG_B64_LEN + 1)
        return BKV_ERR_LENGTH;
    for (int i = 0; i < EXPIRY_LEN; i++)
        payload[i] = (uint8_t)(expiry >> (56 - 8 * i));
    memcpy(payload + EXPIRY_LEN, account, alen);
    memcpy(out, BKV_TOKEN_PREFIX, PREFIX_LEN);
    b64url_encode(payload, plen, out + PREFIX_LEN);
    pos = PREFIX_LEN + B64_LEN(plen);
    rc = tag_compute(key, out, pos, tag);
    if (rc != BKV_OK)
        goto out;
    out[pos++] = '.';
    b64url_encode(tag, sizeof(tag), out + pos);
    pos += TAG_B64_LEN;
    out[pos] = '\0';
out:
    OPENSSL_cleanse(tag, sizeof(tag));
    if (rc != BKV_OK)
        out[0] = '\0';
    return rc;
}

int bkv_token_verify(const uint8_t key[static BKV_TOKEN_KEY_LEN], const char *token, size_t len,
                     uint64_t now, char account[static BKV_MSG_ACCOUNT_MAX + 1], uint64_t *expiry)
{
    uint8_t payload[PAYLOAD_MAX], tag[BKV_HASH_LEN], want[BKV_HASH_LEN];
    const char *dot;
    long plen;
    uint64_t exp = 0;
    int rc = BKV_ERR_FORMAT;

    account[0] = '\0';
    if (token == NULL || len <= PREFIX_LEN || len > BKV_TOKEN_MAX_LEN ||
        memcmp(token, BKV_TOKEN_PREFIX, PREFIX_LEN) != 0)
        return BKV_ERR_FORMAT;
    dot = memchr(token + PREFIX_LEN, '.', len - PREFIX_LEN);
    if (dot == NULL || (size_t)(token + len - (dot + 1)) != TAG_B64_LEN)
        return BKV_ERR_FORMAT;
    plen = b64url_decode(token + PREFIX_LEN, (size_t)(dot - token) - PREFIX_LEN, payload,
                         sizeof(payload));
    if (plen <= EXPIRY_LEN ||
        b64url_decode(dot + 1, TAG_B64_LEN, tag, sizeof(tag)) != (long)sizeof(tag))
        goto out;
    rc = tag_compute(key, token, (size_t)(dot - token), want);
    if (rc != BKV_OK)
        goto out;
    if (CRYPTO_memcmp(tag, want, sizeof(tag)) != 0) {
        rc = BKV_ERR_MAC;
        goto out;
    }
    if (!bkv_msg_account_valid(payload + EXPIRY_LEN, (size_t)plen - EXPIRY_LEN)) {
        rc = BKV_ERR_FORMAT;
        goto out;
    }
    for (int i = 0; i < EXPIRY_LEN; i++)
        exp = exp << 8 | payload[i];
    if (now >= exp) {
        rc = BKV_ERR_LIMIT;
        goto out;
    }
    memcpy(account, payload + EXPIRY_LEN, (size_t)plen - EXPIRY_LEN);
    account[plen - EXPIRY_LEN] = '\0';
    if (expiry != NULL)
        *expiry = exp;
    rc = BKV_OK;
out:
    OPENSSL_cleanse(want, sizeof(want));
    return rc;
}

/* A canonical decimal uint64: digits only, no leading zero unless "0", no overflow. */
static int parse_time(const char *s, uint64_t *out)
{
    size_t n;
    uint64_t v = 0;

    if (s == NULL)
        return BKV_ERR_FORMAT;
    n = strlen(s);
    if (n == 0 || n > BKV_ROUTER_TIME_MAX_LEN || (n > 1 && s[0] == '0'))
        return BKV_ERR_FORMAT;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
            return BKV_ERR_FORMAT;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return BKV_OK;
}

static int proof_mac(const uint8_t key[static BKV_TOKEN_KEY_LEN], const char *method,
                     const char *path, const char *account, const char *time_str,
                     const uint8_t *body, size_t body_len, uint8_t mac[static BKV_HASH_LEN])
{
    const char *fields[4] = {method, path, account, time_str};
    uint8_t lens[5][2], digest[BKV_HASH_LEN];
    struct bkv_buf parts[11], body_part = {body, body_len};
    size_t n = 0;
    int rc;

    rc = bkv_sha256(&body_part, body_len > 0 ? 1 : 0, digest);
    if (rc != BKV_OK)
        return rc;
    parts[n++] = (struct bkv_buf){(const uint8_t *)BKV_ROUTER_PROOF_LABEL,
                                  sizeof(BKV_ROUTER_PROOF_LABEL) - 1};
    for (int i = 0; i < 4; i++) {
        size_t len = strlen(fields[i]);
        if (len > UINT16_MAX)
            return BKV_ERR_LENGTH;
        bkv_put_u16(lens[i], (uint16_t)len);
        parts[n++] = (struct bkv_buf){lens[i], 2};
        parts[n++] = (struct bkv_buf){(const uint8_t *)fields[i], len};
    }
    bkv_put_u16(lens[4], sizeof(digest));
    parts[n++] = (struct bkv_buf){lens[4], 2};
    parts[n++] = (struct bkv_buf){digest, sizeof(digest)};
    return bkv_hmac_sha256(key, BKV_TOKEN_KEY_LEN, parts, n, mac);
}

int bkv_router_proof_compute(const uint8_t key[static BKV_TOKEN_KEY_LEN], const char *method,
                             const char *path, const char *account, const char *time_str,
                             const uint8_t *body, size_t body_len,
                             char out[static BKV_ROUTER_PROOF_HEX_LEN + 1])
{
    uint8_t mac[BKV_HASH_LEN];
    uint64_t t;
    int rc;

    out[0] = '\0';
    if (method == NULL || path == NULL || account == NULL || (body == NULL && body_len > 0) ||
        parse_time(time_str, &t) != BKV_OK ||
        !bkv_msg_account_valid((const uint8_t *)account, strlen(account)))
        return BKV_ERR_INVALID;
    rc = proof_mac(key, method, path, account, time_str, body, body_len, mac);
    if (rc == BKV_OK)
        bkv_hex_encode(mac, sizeof(mac), out);
    OPENSSL_cleanse(mac, sizeof(mac));
    return rc;
}

int bkv_router_proof_verify(const uint8_t key[static BKV_TOKEN_KEY_LEN], const char *method,
                            const char *path, const char *account, const char *time_str,
                            const char *proof_hex, const uint8_t *body, size_t body_len,
                            uint64_t now)
{
    uint8_t got[BKV_HASH_LEN], want[BKV_HASH_LEN];
    size_t n = 0;
    uint64_t t;
    int rc;

    if (method == NULL || path == NULL || account == NULL || proof_hex == NULL ||
        (body == NULL && body_len > 0) ||
        !bkv_msg_account_valid((const uint8_t *)account, strlen(account)) ||
        parse_time(time_str, &t) != BKV_OK || strlen(proof_hex) != BKV_ROUTER_PROOF_HEX_LEN ||
        bkv_hex_decode(proof_hex, got, sizeof(got), &n) != BKV_OK || n != sizeof(got))
        return BKV_ERR_FORMAT;
    rc = proof_mac(key, method, path, account, time_str, body, body_len, want);
    if (rc != BKV_OK)
        goto out;
    if (CRYPTO_memcmp(got, want, sizeof(want)) != 0) {
        rc = BKV_ERR_MAC;
        goto out;
    }
    if ((t > now ? t - now : now - t) > BKV_ROUTER_PROOF_WINDOW)
        rc = BKV_ERR_LIMIT;
out:
    OPENSSL_cleanse(want, sizeof(want));
    return rc;
}

int bkv_router_keys_generate(struct bkv_router_keys *keys)
{
    if (RAND_priv_bytes(keys->token_key, sizeof(keys->token_key)) != 1 ||
        RAND_priv_bytes(keys->proof_key, sizeof(keys->proof_key)) != 1) {
        bkv_router_keys_wipe(keys);
        return BKV_ERR_CRYPTO;
    }
    return BKV_OK;
}

void bkv_router_keys_wipe(struct bkv_router_keys *keys)
{
    OPENSSL_cleanse(keys, sizeof(*keys));
}

void bkv_router_key_file_encode(const struct bkv_router_keys *keys,
                                uint8_t out[static BKV_ROUTER_KEY_FILE_LEN])
{
    char hex[4 * BKV_TOKEN_KEY_LEN + 1];

    bkv_hex_encode(keys->token_key, BKV_TOKEN_KEY_LEN, hex);
    bkv_hex_encode(keys->proof_key, BKV_TOKEN_KEY_LEN, hex + 2 * BKV_TOKEN_KEY_LEN);
    memcpy(out, hex, 4 * BKV_TOKEN_KEY_LEN);
    out[4 * BKV_TOKEN_KEY_LEN] = '\n';
    OPENSSL_cleanse(hex, sizeof(hex));
}

void bkv_router_proof_file_encode(const struct bkv_router_keys *keys,
                                  uint8_t out[static BKV_ROUTER_PROOF_FILE_LEN])
{
    char hex[2 * BKV_TOKEN_KEY_LEN + 1];

    bkv_hex_encode(keys->proof_key, BKV_TOKEN_KEY_LEN, hex);
    memcpy(out, hex, 2 * BKV_TOKEN_KEY_LEN);
    out[2 * BKV_TOKEN_KEY_LEN] = '\n';
    OPENSSL_cleanse(hex, sizeof(hex));
}

/*
 * Read the hex key file at path into out, which must be exactly want bytes.
 * The file must be a regular file (no symlink followed, no FIFO blocking us),
 * owned by our effective uid, without group/other permission bits.
 */
static int key_file_read(const char *path, uint8_t *out, size_t want, char *err, size_t err_cap)
{
    char buf[KEY_FILE_MAX + 1];
    size_t len = 0, n = 0;
    struct stat st;
    int fd, rc;

    if (path == NULL || path[0] == '\0') {
        snprintf(err, err_cap, "no key file given");
        return BKV_ERR_INVALID;
    }
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(err, err_cap, "cannot open key file %s: %s", path, strerror(errno));
        return BKV_ERR_IO;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, err_cap, "key file %s is not a regular file", path);
        rc = BKV_ERR_IO;
        goto out;
    }
    if (st.st_uid != geteuid()) {
        snprintf(err, err_cap, "key file %s is owned by uid %lu, not by this process (uid %lu)",
                 path, (unsigned long)st.st_uid, (unsigned long)geteuid());
        rc = BKV_ERR_PERMISSION;
        goto out;
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        snprintf(err, err_cap,
                 "key file %s has mode %04o, so other users may read it: run chmod 600 %s", path,
                 (unsigned)(st.st_mode & 07777), path);
        rc = BKV_ERR_PERMISSION;
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, err_cap, "cannot read key file %s: %s", path, strerror(errno));
            rc = BKV_ERR_IO;
            goto out;
        }
        if (r == 0 || (len += (size_t)r) == sizeof(buf) - 1)
            break;
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    buf[len] = '\0';
    rc = BKV_ERR_FORMAT;
    if (len != 2 * want || bkv_hex_decode(buf, out, want, &n) != BKV_OK || n != want) {
        if (len == 4 * BKV_TOKEN_KEY_LEN && want == BKV_TOKEN_KEY_LEN)
            snprintf(err, err_cap, "key file %s holds two keys: give nodes the %s, not %s", path,
                     BKV_ROUTER_PROOF_FILE, BKV_ROUTER_KEY_FILE);
        else if (len == 2 * BKV_TOKEN_KEY_LEN && want == 2 * BKV_TOKEN_KEY_LEN)
            snprintf(err, err_cap,
                     "key file %s holds one key: this looks like %s; a router needs %s", path,
                     BKV_ROUTER_PROOF_FILE, BKV_ROUTER_KEY_FILE);
        else
            snprintf(err, err_cap, "key file %s is not %zu hex digits (bkv-admin router keygen)",
                     path, 2 * want);
        OPENSSL_cleanse(out, want);
        goto out;
    }
    rc = BKV_OK;
out:
    OPENSSL_cleanse(buf, sizeof(buf));
    close(fd);
    return rc;
}

int bkv_router_key_load(const char *path, struct bkv_router_keys *keys, char *err, size_t err_cap)
{
    uint8_t both[2 * BKV_TOKEN_KEY_LEN];
    int rc = key_file_read(path, both, sizeof(both), err, err_cap);

    if (rc == BKV_OK) {
        memcpy(keys->token_key, both, BKV_TOKEN_KEY_LEN);
        memcpy(keys->proof_key, both + BKV_TOKEN_KEY_LEN, BKV_TOKEN_KEY_LEN);
    }
    OPENSSL_cleanse(both, sizeof(both));
    return rc;
}

int bkv_router_proof_key_load(const char *path, uint8_t key[static BKV_TOKEN_KEY_LEN], char *err,
                              size_t err_cap)
{
    return key_file_read(path, key, BKV_TOKEN_KEY_LEN, err, err_cap);
}
