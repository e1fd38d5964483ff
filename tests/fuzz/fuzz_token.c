/*
 * libFuzzer target: what a router and a node read from a request's headers
 * (node/token.h).
 *
 * Input 'P' <method> LF <path> LF <account> LF <time> LF <proof> LF <body>:
 * the router proof, bkv_router_proof_verify at a fixed clock (a field left
 * out is a missing header); a proof that verifies is the one
 * bkv_router_proof_compute gives, and one it computes from these fields
 * verifies (or is only out of the time window).
 * Any other input: an account token, bkv_token_verify at a fixed clock; a
 * token that verifies is exactly the token bkv_token_issue writes for its
 * account and expiry (one token, one text).
 */
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "node/token.h"
#include "proto/err.h"

#define FIELDS 6

static void fuzz_proof(const uint8_t *in, size_t len)
{
    char *buf = malloc(len + 1), *f[FIELDS] = {0}, *p;
    char proof[BKV_ROUTER_PROOF_HEX_LEN + 1], *body;
    size_t body_len = 0, n = 0;
    int rc;

    FUZZ_CHECK(buf != NULL);
    memcpy(buf, in, len);
    buf[len] = '\0';
    /* Split the first five fields at LF; the body is the rest, NULs included. */
    for (p = buf; n < FIELDS - 1 && p != NULL; n++) {
        f[n] = p;
        p = memchr(p, '\n', len - (size_t)(p - buf));
        if (p != NULL)
            *p++ = '\0';
    }
    body = p;
    if (body != NULL)
        body_len = len - (size_t)(body - buf);

    rc = bkv_router_proof_verify(fuzz_proof_key, f[0], f[1], f[2], f[3], f[4],
                                 (const uint8_t *)body, body_len, FUZZ_TOKEN_NOW);
    if (rc == BKV_OK || rc == BKV_ERR_LIMIT) {
        FUZZ_CHECK(bkv_router_proof_compute(fuzz_proof_key, f[0], f[1], f[2], f[3],
                                            (const uint8_t *)body, body_len, proof) == BKV_OK);
        FUZZ_CHECK(strcasecmp(proof, f[4]) == 0);
    }
    if (bkv_router_proof_compute(fuzz_proof_key, f[0], f[1], f[2], f[3], (const uint8_t *)body,
                                 body_len, proof) == BKV_OK) {
        FUZZ_CHECK(strlen(proof) == BKV_ROUTER_PROOF_HEX_LEN);
        rc = bkv_router_proof_verify(fuzz_proof_key, f[0], f[1], f[2], f[3], proof,
                                     (const uint8_t *)body, body_len, FUZZ_TOKEN_NOW);
        FUZZ_CHECK(rc == BKV_OK || rc == BKV_ERR_LIMIT);
    }
    free(buf);
}

static void fuzz_account_token(const uint8_t *in, size_t len)
{
    char account[BKV_MSG_ACCOUNT_MAX + 1], again[BKV_TOKEN_MAX_LEN + 1];
    uint64_t expiry = 0;
    int rc;

    memset(account, 0x5a, sizeof(account));
    rc = bkv_token_verify(fuzz_token_key, (const char *)in, len, FUZZ_TOKEN_NOW, account, &expiry);
    FUZZ_CHECK(memchr(account, '\0', sizeof(account)) != NULL);
    if (rc != BKV_OK) {
        FUZZ_CHECK(account[0] == '\0');
        return;
    }
    FUZZ_CHECK(expiry > FUZZ_TOKEN_NOW);
    FUZZ_CHECK(bkv_msg_account_valid((const uint8_t *)account, strlen(account)));
    FUZZ_CHECK(bkv_token_issue(fuzz_token_key, account, expiry, again, sizeof(again)) == BKV_OK);
    FUZZ_CHECK(strlen(again) == len && memcmp(again, in, len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 1 && data[0] == 'P')
        fuzz_proof(data + 1, size - 1);
    else
        fuzz_account_token(data, size);
    return 0;
}
