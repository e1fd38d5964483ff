/*
 * libFuzzer target: the RFC 9458 envelope (proto/ohttp.h), as the node and
 * the client meet it on the wire.
 *
 * The first byte picks the parser, the rest is its input:
 *   0 (mod 4)  an encapsulated request: bkv_ohttp_request_parse against the
 *              fixed realm key config, then bkv_ohttp_request_decap with the
 *              fixed software key; an opened request must answer through the
 *              response path and decap back to the same bytes;
 *   1, 2       an encapsulated response: bkv_ohttp_response_decap with a
 *              fixed client state (AES-128-GCM, AES-256-GCM); an opened one
 *              must re-encapsulate, with its own nonce, to the same bytes;
 *   3          key configs: bkv_ohttp_key_config_decode (an accepted config
 *              re-encodes to the same bytes) and bkv_ohttp_key_configs_decode
 *              (an accepted list re-encodes and decodes to the same configs).
 */
#include <string.h>

#include "fuzz.h"
#include "proto/err.h"

#define MAX_CONFIGS 8

static uint8_t out[BKV_OHTTP_MAX_REQUEST_LEN + BKV_OHTTP_MAX_RESPONSE_LEN];
static uint8_t again[BKV_OHTTP_MAX_REQUEST_LEN + BKV_OHTTP_MAX_RESPONSE_LEN];
static uint8_t resp[BKV_OHTTP_MAX_RESPONSE_LEN];

static void fuzz_request(const struct fuzz_ohttp *fx, const uint8_t *in, size_t len)
{
    struct bkv_ohttp_request req;
    struct bkv_ohttp_state st;
    size_t n = 0, rn = 0, m = 0;
    int rc;

    rc = bkv_ohttp_request_parse(&fx->cfg, in, len, &req);
    if (rc != BKV_OK)
        return;
    FUZZ_CHECK(req.key_id == fx->cfg.key_id && req.suite.kem == fx->cfg.kem);
    FUZZ_CHECK(req.enc == in + BKV_OHTTP_HEADER_LEN && req.enc_len == fx->cfg.pk_len);
    FUZZ_CHECK(req.ct == req.enc + req.enc_len && req.ct + req.ct_len == in + len);

    rc = bkv_ohttp_request_decap(&fx->cfg, &bkv_ohttp_bkv_labels, fx->sk, in, len, out, sizeof(out),
                                 &n, &st);
    if (rc != BKV_OK)
        return;
    FUZZ_CHECK(n + BKV_HPKE_TAG_LEN == req.ct_len);
    /* The server answers the opened request; the same state opens the answer. */
    FUZZ_CHECK(bkv_ohttp_response_encap(&st, NULL, out, n, resp, sizeof(resp), &rn) == BKV_OK);
    FUZZ_CHECK(bkv_ohttp_response_decap(&st, resp, rn, again, sizeof(again), &m) == BKV_OK);
    FUZZ_CHECK(m == n && memcmp(again, out, n) == 0);
    bkv_ohttp_state_wipe(&st);
}

static void fuzz_response(const struct bkv_ohttp_state *st, const uint8_t *in, size_t len)
{
    size_t n = 0, m = 0;

    if (bkv_ohttp_response_decap(st, in, len, out, sizeof(out), &n) != BKV_OK)
        return;
    FUZZ_CHECK(len == st->secret_len + n + BKV_HPKE_TAG_LEN);
    FUZZ_CHECK(bkv_ohttp_response_encap(st, in, out, n, again, sizeof(again), &m) == BKV_OK);
    FUZZ_CHECK(m == len && memcmp(again, in, len) == 0);
}

static void fuzz_configs(const uint8_t *in, size_t len)
{
    static struct bkv_ohttp_key_config cfg, cfgs[MAX_CONFIGS], back[MAX_CONFIGS];
    size_t n = 0, count = 0, count2 = 0;

    if (bkv_ohttp_key_config_decode(in, len, &cfg) == BKV_OK) {
        FUZZ_CHECK(cfg.suite_count >= 1 && cfg.suite_count <= BKV_OHTTP_MAX_SUITES);
        FUZZ_CHECK(bkv_ohttp_key_config_encode(&cfg, out, sizeof(out), &n) == BKV_OK);
        FUZZ_CHECK(n == len && memcmp(out, in, len) == 0);
    }
    if (bkv_ohttp_key_configs_decode(in, len, cfgs, MAX_CONFIGS, &count) == BKV_OK) {
        FUZZ_CHECK(count >= 1 && count <= MAX_CONFIGS);
        FUZZ_CHECK(bkv_ohttp_key_configs_encode(cfgs, count, out, sizeof(out), &n) == BKV_OK);
        FUZZ_CHECK(bkv_ohttp_key_configs_decode(out, n, back, MAX_CONFIGS, &count2) == BKV_OK);
        FUZZ_CHECK(count2 == count);
        for (size_t i = 0; i < count; i++) {
            FUZZ_CHECK(back[i].key_id == cfgs[i].key_id && back[i].kem == cfgs[i].kem);
            FUZZ_CHECK(back[i].pk_len == cfgs[i].pk_len &&
                       memcmp(back[i].pk, cfgs[i].pk, cfgs[i].pk_len) == 0);
            FUZZ_CHECK(back[i].suite_count == cfgs[i].suite_count);
            for (size_t j = 0; j < cfgs[i].suite_count; j++)
                FUZZ_CHECK(back[i].suites[j].kdf == cfgs[i].suites[j].kdf &&
                           back[i].suites[j].aead == cfgs[i].suites[j].aead);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct fuzz_ohttp *fx = fuzz_ohttp();

    if (size < 1)
        return 0;
    switch (data[0] % 4) {
    case 0:
        fuzz_request(fx, data + 1, size - 1);
        break;
    case 1:
    case 2:
        fuzz_response(&fx->st[data[0] % 4 - 1], data + 1, size - 1);
        break;
    default:
        fuzz_configs(data + 1, size - 1);
    }
    return 0;
}
