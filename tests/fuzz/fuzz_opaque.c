/*
 * libFuzzer target: the OPAQUE-3DH messages (proto/opaque.h) on both sides,
 * against one fixed account (fuzz.h: fixed server keys, the account's record,
 * the Identity KSF so that a client step is fast).
 *
 * The first byte picks the step, the rest is the peer's message:
 *   0 (mod 5)  server: bkv_opaque_reg_respond on a RegistrationRequest;
 *   1          server: bkv_opaque_login_respond on a KE1 (then the armed
 *              state must refuse a KE3 of zeros);
 *   2          server: bkv_opaque_login_verify of a KE3 on the armed state
 *              of the fixed login;
 *   3          client: bkv_opaque_login_finish on a KE2, from the state of
 *              the fixed login (a KE2 that passes must come with a KE3 the
 *              server state accepts: only the real server can make one);
 *   4          client: bkv_opaque_reg_finish on a RegistrationResponse.
 * Messages of any other length are refused up front, so the seeds are the
 * valid messages of the fixed flows and their near misses.
 */
#include <string.h>

#include "fuzz.h"
#include "proto/err.h"

static void server_reg(const struct fuzz_opaque *f, const uint8_t *in, size_t len)
{
    uint8_t response[BKV_OPAQUE_REG_RESPONSE_LEN];
    int rc =
        bkv_opaque_reg_respond(&f->keys, f->ids.client, f->ids.client_len, in, len, response, NULL);

    if (rc == BKV_OK)
        FUZZ_CHECK(len == BKV_OPAQUE_REG_REQUEST_LEN);
}

static void server_login(const struct fuzz_opaque *f, const uint8_t *in, size_t len)
{
    struct bkv_opaque_login_server st;
    uint8_t ke2[BKV_OPAQUE_KE2_LEN], zeros[BKV_OPAQUE_KE3_LEN] = {0}, sk[BKV_OPAQUE_KEY_LEN];
    int rc;

    memset(&st, 0, sizeof(st));
    rc = bkv_opaque_login_respond(&f->cfg, &f->keys, f->record, sizeof(f->record), f->ids.client,
                                  f->ids.client_len, &f->ids, in, len, &f->srand, &st, ke2, NULL);
    if (rc != BKV_OK)
        return;
    FUZZ_CHECK(len == BKV_OPAQUE_KE1_LEN);
    FUZZ_CHECK(bkv_opaque_login_verify(&st, zeros, sizeof(zeros), sk) != BKV_OK);
    /* Verified once: the state is spent. */
    FUZZ_CHECK(bkv_opaque_login_verify(&st, f->ke3, sizeof(f->ke3), sk) != BKV_OK);
}

static void server_verify(const struct fuzz_opaque *f, const uint8_t *in, size_t len)
{
    struct bkv_opaque_login_server st = f->login_server;
    uint8_t sk[BKV_OPAQUE_KEY_LEN];
    int rc = bkv_opaque_login_verify(&st, in, len, sk);

    if (rc == BKV_OK)
        FUZZ_CHECK(len == sizeof(f->ke3) && memcmp(in, f->ke3, len) == 0);
    FUZZ_CHECK(st.armed == 0);
}

static void client_login(const struct fuzz_opaque *f, const uint8_t *in, size_t len)
{
    struct bkv_opaque_login_client st = f->login_client;
    struct bkv_opaque_login_server server = f->login_server;
    uint8_t ke3[BKV_OPAQUE_KE3_LEN], session_key[BKV_OPAQUE_KEY_LEN];
    uint8_t export_key[BKV_OPAQUE_KEY_LEN], server_key[BKV_OPAQUE_KEY_LEN];
    const uint8_t *pw = (const uint8_t *)FUZZ_OPAQUE_PASSWORD;
    int rc;

    rc = bkv_opaque_login_finish(&f->cfg, &st, pw, sizeof(FUZZ_OPAQUE_PASSWORD) - 1, &f->ids, in,
                                 len, ke3, session_key, export_key, NULL);
    if (rc != BKV_OK)
        return;
    FUZZ_CHECK(len == BKV_OPAQUE_KE2_LEN);
    /* The KE2 authenticated the server: it holds the session this KE3 answers. */
    FUZZ_CHECK(bkv_opaque_login_verify(&server, ke3, sizeof(ke3), server_key) == BKV_OK);
    FUZZ_CHECK(memcmp(server_key, session_key, sizeof(server_key)) == 0);
}

static void client_reg(const struct fuzz_opaque *f, const uint8_t *in, size_t len)
{
    struct bkv_opaque_reg_client st = f->reg_client;
    uint8_t record[BKV_OPAQUE_RECORD_LEN], export_key[BKV_OPAQUE_KEY_LEN];
    const uint8_t *pw = (const uint8_t *)FUZZ_OPAQUE_PASSWORD;
    int rc;

    rc = bkv_opaque_reg_finish(&f->cfg, pw, sizeof(FUZZ_OPAQUE_PASSWORD) - 1, &st, &f->ids,
                               &f->crand, in, len, record, export_key, NULL);
    if (rc == BKV_OK)
        FUZZ_CHECK(len == BKV_OPAQUE_REG_RESPONSE_LEN);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct fuzz_opaque *f = fuzz_opaque();

    if (size < 1)
        return 0;
    switch (data[0] % 5) {
    case 0:
        server_reg(f, data + 1, size - 1);
        break;
    case 1:
        server_login(f, data + 1, size - 1);
        break;
    case 2:
        server_verify(f, data + 1, size - 1);
        break;
    case 3:
        client_login(f, data + 1, size - 1);
        break;
    default:
        client_reg(f, data + 1, size - 1);
    }
    return 0;
}
