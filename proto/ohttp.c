/*
 * RFC 9458 encapsulation on top of hpke.c.
 *
 * Normal path: the client seals a request to the key config's public key
 * (info = request label || 0x00 || hdr) and keeps the response secret; the
 * server parses and checks the header, gets dh from software or an HSM, opens
 * the request and keeps the same secret; the response is sealed under a key
 * derived from that secret, enc and a fresh response nonce (plain HKDF).
 * Failure modes: BKV_ERR_LENGTH for truncated or oversized input,
 * BKV_ERR_FORMAT for malformed configs, BKV_ERR_UNSUPPORTED for a wrong key id
 * or suite, BKV_ERR_POINT for a bad enc, BKV_ERR_DECRYPT for anything that
 * fails authentication. States and secrets are wiped on every failure.
 */
#include "ohttp.h"

#include <string.h>

#include <openssl/rand.h>

#include "err.h"
#include "kdf.h"
#include "util.h"

const struct bkv_ohttp_labels bkv_ohttp_bkv_labels = {BKV_OHTTP_REQUEST_LABEL,
                                                      BKV_OHTTP_RESPONSE_LABEL};
const struct bkv_ohttp_labels bkv_ohttp_bhttp_labels = {BKV_OHTTP_BHTTP_REQUEST_LABEL,
                                                        BKV_OHTTP_BHTTP_RESPONSE_LABEL};

#define INFO_MAX_LEN (BKV_OHTTP_MAX_LABEL_LEN + 1 + BKV_OHTTP_HEADER_LEN)

/* ---- key configs ---- */

static int config_check(const struct bkv_ohttp_key_config *cfg)
{
    size_t npk;

    if (cfg == NULL)
        return BKV_ERR_INVALID;
    npk = bkv_hpke_kem_enc_len(cfg->kem);
    if (npk == 0)
        return BKV_ERR_UNSUPPORTED;
    if (cfg->pk_len != npk)
        return BKV_ERR_LENGTH;
    if (cfg->suite_count == 0)
        return BKV_ERR_FORMAT;
    if (cfg->suite_count > BKV_OHTTP_MAX_SUITES)
        return BKV_ERR_LIMIT;
    return BKV_OK;
}

static size_t config_len(const struct bkv_ohttp_key_config *cfg)
{
    return 1 + 2 + cfg->pk_len + 2 + 4 * cfg->suite_count;
}

int bkv_ohttp_key_config_decode(const uint8_t *in, size_t len, struct bkv_ohttp_key_config *cfg)
{
    size_t npk, off, sym_len;
    int rc;

    if (cfg == NULL || (in == NULL && len > 0))
        return BKV_ERR_INVALID;
    memset(cfg, 0, sizeof(*cfg));
    if (len < 3)
        return BKV_ERR_LENGTH;
    cfg->key_id = in[0];
    cfg->kem = bkv_get_u16(in + 1);
    npk = bkv_hpke_kem_enc_len(cfg->kem);
    if (npk == 0)
        return BKV_ERR_UNSUPPORTED;
    off = 3;
    if (len - off < npk + 2)
        return BKV_ERR_LENGTH;
    rc = bkv_hpke_enc_check(cfg->kem, in + off, npk);
    if (rc != BKV_OK)
        return rc;
    memcpy(cfg->pk, in + off, npk);
    cfg->pk_len = npk;
    off += npk;
    sym_len = bkv_get_u16(in + off);
    off += 2;
    if (sym_len == 0 || sym_len % 4 != 0)
        return BKV_ERR_FORMAT;
    if (len - off < sym_len)
        return BKV_ERR_LENGTH;
    if (len - off > sym_len)
        return BKV_ERR_FORMAT;
    if (sym_len / 4 > BKV_OHTTP_MAX_SUITES)
        return BKV_ERR_LIMIT;
    cfg->suite_count = sym_len / 4;
    for (size_t i = 0; i < cfg->suite_count; i++, off += 4) {
        cfg->suites[i].kdf = bkv_get_u16(in + off);
        cfg->suites[i].aead = bkv_get_u16(in + off + 2);
    }
    return BKV_OK;
}

int bkv_ohttp_key_config_encode(const struct bkv_ohttp_key_config *cfg, uint8_t *out, size_t cap,
                                size_t *out_len)
{
    size_t off = 0;
    int rc = config_check(cfg);

    if (rc != BKV_OK)
        return rc;
    if (out == NULL || out_len == NULL)
        return BKV_ERR_INVALID;
    if (cap < config_len(cfg))
        return BKV_ERR_LENGTH;
    out[off++] = cfg->key_id;
    bkv_put_u16(out + off, cfg->kem);
    off += 2;
    memcpy(out + off, cfg->pk, cfg->pk_len);
    off += cfg->pk_len;
    bkv_put_u16(out + off, (uint16_t)(4 * cfg->suite_count));
    off += 2;
    for (size_t i = 0; i < cfg->suite_count; i++, off += 4) {
        bkv_put_u16(out + off, cfg->suites[i].kdf);
        bkv_put_u16(out + off + 2, cfg->suites[i].aead);
    }
    *out_len = off;
    return BKV_OK;
}

int bkv_ohttp_key_configs_decode(const uint8_t *in, size_t len, struct bkv_ohttp_key_config *cfgs,
                                 size_t cap, size_t *count)
{
    struct bkv_ohttp_key_config one;
    size_t off = 0, n = 0;
    int rc = BKV_OK;

    if (cfgs == NULL || count == NULL || (in == NULL && len > 0))
        return BKV_ERR_INVALID;
    *count = 0;
    if (len == 0)
        return BKV_ERR_LENGTH;
    while (off < len) {
        size_t item;
        if (len - off < 2) {
            rc = BKV_ERR_LENGTH;
            goto out;
        }
        item = bkv_get_u16(in + off);
        off += 2;
        if (len - off < item) {
            rc = BKV_ERR_LENGTH;
            goto out;
        }
        rc = bkv_ohttp_key_config_decode(in + off, item, &one);
        if (rc == BKV_ERR_UNSUPPORTED && bkv_hpke_kem_enc_len(one.kem) == 0) {
            rc = BKV_OK; /* a KEM we do not know: another client's business */
        } else if (rc != BKV_OK) {
            goto out;
        } else if (n == cap) {
            rc = BKV_ERR_LIMIT;
            goto out;
        } else {
            cfgs[n++] = one;
        }
        off += item;
    }
    rc = n > 0 ? BKV_OK : BKV_ERR_UNSUPPORTED;
out:
    if (rc != BKV_OK)
        n = 0;
    *count = n;
    return rc;
}

int bkv_ohttp_key_configs_encode(const struct bkv_ohttp_key_config *cfgs, size_t count,
                                 uint8_t *out, size_t cap, size_t *out_len)
{
    size_t off = 0;

    if (cfgs == NULL || count == 0 || out == NULL || out_len == NULL)
        return BKV_ERR_INVALID;
    for (size_t i = 0; i < count; i++) {
        size_t n = 0;
        int rc;
        if (cap - off < 2)
            return BKV_ERR_LENGTH;
        rc = bkv_ohttp_key_config_encode(&cfgs[i], out + off + 2, cap - off - 2, &n);
        if (rc != BKV_OK)
            return rc;
        bkv_put_u16(out + off, (uint16_t)n);
        off += 2 + n;
    }
    *out_len = off;
    return BKV_OK;
}

/* ---- requests ---- */

size_t bkv_ohttp_request_len(uint16_t kem, size_t plaintext_len)
{
    size_t nenc = bkv_hpke_kem_enc_len(kem);

    if (nenc == 0 || plaintext_len > BKV_OHTTP_MAX_REQUEST_LEN)
        return 0;
    return BKV_OHTTP_HEADER_LEN + nenc + plaintext_len + BKV_HPKE_TAG_LEN;
}

/* max(Nn, Nk): the length of the response secret and of the response nonce. */
static size_t response_nonce_len(uint16_t aead)
{
    size_t nk = bkv_hpke_aead_key_len(aead);

    if (nk == 0)
        return 0;
    return nk > BKV_HPKE_NONCE_LEN ? nk : BKV_HPKE_NONCE_LEN;
}

size_t bkv_ohttp_response_len(uint16_t aead, size_t plaintext_len)
{
    size_t nlen = response_nonce_len(aead);

    if (nlen == 0 || plaintext_len > BKV_OHTTP_MAX_RESPONSE_LEN)
        return 0;
    return nlen + plaintext_len + BKV_HPKE_TAG_LEN;
}

static void header_encode(uint8_t key_id, struct bkv_hpke_suite s,
                          uint8_t hdr[static BKV_OHTTP_HEADER_LEN])
{
    hdr[0] = key_id;
    bkv_put_u16(hdr + 1, s.kem);
    bkv_put_u16(hdr + 3, s.kdf);
    bkv_put_u16(hdr + 5, s.aead);
}

static int labels_check(const struct bkv_ohttp_labels *labels)
{
    if (labels == NULL || labels->request == NULL || labels->response == NULL ||
        strlen(labels->request) > BKV_OHTTP_MAX_LABEL_LEN ||
        strlen(labels->response) > BKV_OHTTP_MAX_LABEL_LEN)
        return BKV_ERR_INVALID;
    return BKV_OK;
}

int bkv_ohttp_request_info(const char *request_label, uint8_t key_id, struct bkv_hpke_suite suite,
                           uint8_t *out, size_t cap, size_t *out_len)
{
    size_t n;

    if (request_label == NULL || out == NULL || out_len == NULL)
        return BKV_ERR_INVALID;
    n = strlen(request_label);
    if (n > BKV_OHTTP_MAX_LABEL_LEN)
        return BKV_ERR_INVALID;
    if (cap < n + 1 + BKV_OHTTP_HEADER_LEN)
        return BKV_ERR_LENGTH;
    memcpy(out, request_label, n);
    out[n] = 0x00;
    header_encode(key_id, suite, out + n + 1);
    *out_len = n + 1 + BKV_OHTTP_HEADER_LEN;
    return BKV_OK;
}

/* 1 if cfg offers (kdf, aead) and BKV implements the resulting suite. */
static int suite_acceptable(const struct bkv_ohttp_key_config *cfg, struct bkv_hpke_suite s)
{
    if (s.kem != cfg->kem || bkv_hpke_suite_check(s) != BKV_OK)
        return 0;
    for (size_t i = 0; i < cfg->suite_count && i < BKV_OHTTP_MAX_SUITES; i++)
        if (cfg->suites[i].kdf == s.kdf && cfg->suites[i].aead == s.aead)
            return 1;
    return 0;
}

/* Fill st from a fresh context: secret = Export(response label, max(Nn, Nk)). */
static int state_fill(const struct bkv_hpke_ctx *ctx, const struct bkv_ohttp_labels *labels,
                      uint8_t key_id, const uint8_t *enc, size_t enc_len,
                      struct bkv_ohttp_state *st)
{
    size_t n = response_nonce_len(ctx->suite.aead);

    if (n == 0 || enc_len > sizeof(st->enc))
        return BKV_ERR_INVALID;
    st->suite = ctx->suite;
    st->key_id = key_id;
    memcpy(st->enc, enc, enc_len);
    st->enc_len = enc_len;
    st->secret_len = n;
    return bkv_hpke_export(ctx, (const uint8_t *)labels->response, strlen(labels->response),
                           st->secret, n);
}

int bkv_ohttp_request_encap(const struct bkv_ohttp_key_config *cfg, struct bkv_ohttp_symmetric sym,
                            const struct bkv_ohttp_labels *labels, const uint8_t *skE,
                            const uint8_t *req, size_t req_len, uint8_t *out, size_t cap,
                            size_t *out_len, struct bkv_ohttp_state *st)
{
    struct bkv_hpke_ctx ctx;
    struct bkv_hpke_suite suite;
    uint8_t info[INFO_MAX_LEN];
    size_t info_len = 0, enc_len = 0, ct_len = 0, total;
    int rc;

    if (st == NULL)
        return BKV_ERR_INVALID;
    memset(st, 0, sizeof(*st));
    memset(&ctx, 0, sizeof(ctx));
    rc = config_check(cfg);
    if (rc == BKV_OK)
        rc = labels_check(labels);
    if (rc != BKV_OK)
        return rc;
    if (out == NULL || out_len == NULL || (req == NULL && req_len > 0))
        return BKV_ERR_INVALID;
    suite = (struct bkv_hpke_suite){cfg->kem, sym.kdf, sym.aead};
    if (!suite_acceptable(cfg, suite))
        return BKV_ERR_UNSUPPORTED;
    total = bkv_ohttp_request_len(cfg->kem, req_len);
    if (total == 0 || total > BKV_OHTTP_MAX_REQUEST_LEN || cap < total)
        return BKV_ERR_LENGTH;
    header_encode(cfg->key_id, suite, out);
    rc = bkv_ohttp_request_info(labels->request, cfg->key_id, suite, info, sizeof(info), &info_len);
    if (rc != BKV_OK)
        goto out;
    rc = bkv_hpke_setup_base_s(suite, cfg->pk, cfg->pk_len, info, info_len, skE,
                               out + BKV_OHTTP_HEADER_LEN, &enc_len, &ctx);
    if (rc != BKV_OK)
        goto out;
    rc = bkv_hpke_seal(&ctx, NULL, 0, req, req_len, out + BKV_OHTTP_HEADER_LEN + enc_len,
                       cap - BKV_OHTTP_HEADER_LEN - enc_len, &ct_len);
    if (rc != BKV_OK)
        goto out;
    rc = state_fill(&ctx, labels, cfg->key_id, out + BKV_OHTTP_HEADER_LEN, enc_len, st);
    if (rc != BKV_OK)
        goto out;
    *out_len = BKV_OHTTP_HEADER_LEN + enc_len + ct_len;
out:
    bkv_hpke_ctx_wipe(&ctx);
    if (rc != BKV_OK)
        bkv_ohttp_state_wipe(st);
    return rc;
}

int bkv_ohttp_request_parse(const struct bkv_ohttp_key_config *cfg, const uint8_t *in, size_t len,
                            struct bkv_ohttp_request *req)
{
    struct bkv_hpke_suite suite;
    size_t nenc;
    int rc;

    if (req == NULL)
        return BKV_ERR_INVALID;
    memset(req, 0, sizeof(*req));
    rc = config_check(cfg);
    if (rc != BKV_OK)
        return rc;
    if (in == NULL && len > 0)
        return BKV_ERR_INVALID;
    if (len > BKV_OHTTP_MAX_REQUEST_LEN || len < BKV_OHTTP_HEADER_LEN)
        return BKV_ERR_LENGTH;
    suite = (struct bkv_hpke_suite){bkv_get_u16(in + 1), bkv_get_u16(in + 3), bkv_get_u16(in + 5)};
    if (in[0] != cfg->key_id || !suite_acceptable(cfg, suite))
        return BKV_ERR_UNSUPPORTED;
    nenc = bkv_hpke_kem_enc_len(suite.kem);
    if (len - BKV_OHTTP_HEADER_LEN < nenc + BKV_HPKE_TAG_LEN)
        return BKV_ERR_LENGTH;
    rc = bkv_hpke_enc_check(suite.kem, in + BKV_OHTTP_HEADER_LEN, nenc);
    if (rc != BKV_OK)
        return rc;
    req->key_id = in[0];
    req->suite = suite;
    req->enc = in + BKV_OHTTP_HEADER_LEN;
    req->enc_len = nenc;
    req->ct = req->enc + nenc;
    req->ct_len = len - BKV_OHTTP_HEADER_LEN - nenc;
    return BKV_OK;
}

/* The common tail of the server paths: open with ctx, then keep the state. */
static int open_request(struct bkv_hpke_ctx *ctx, const struct bkv_ohttp_labels *labels,
                        const struct bkv_ohttp_request *req, uint8_t *out, size_t cap,
                        size_t *out_len, struct bkv_ohttp_state *st)
{
    int rc = bkv_hpke_open(ctx, NULL, 0, req->ct, req->ct_len, out, cap, out_len);

    if (rc == BKV_OK)
        rc = state_fill(ctx, labels, req->key_id, req->enc, req->enc_len, st);
    return rc;
}

/* Checks shared by the server paths; fills info. */
static int server_begin(const struct bkv_ohttp_key_config *cfg,
                        const struct bkv_ohttp_labels *labels, const struct bkv_ohttp_request *req,
                        uint8_t *out, size_t *out_len, uint8_t info[static INFO_MAX_LEN],
                        size_t *info_len)
{
    int rc = config_check(cfg);

    if (rc == BKV_OK)
        rc = labels_check(labels);
    if (rc != BKV_OK)
        return rc;
    if (req == NULL || req->enc == NULL || req->ct == NULL || out_len == NULL ||
        (out == NULL && req->ct_len > BKV_HPKE_TAG_LEN))
        return BKV_ERR_INVALID;
    if (req->key_id != cfg->key_id || !suite_acceptable(cfg, req->suite))
        return BKV_ERR_UNSUPPORTED;
    return bkv_ohttp_request_info(labels->request, req->key_id, req->suite, info, INFO_MAX_LEN,
                                  info_len);
}

/*
 * After parsing: the server checks, SetupBaseR with the software key skR or,
 * when skR is NULL, with dh computed elsewhere, then the open. st is wiped
 * on failure.
 */
static int server_open(const struct bkv_ohttp_key_config *cfg,
                       const struct bkv_ohttp_labels *labels, const struct bkv_ohttp_request *req,
                       const uint8_t *skR, const uint8_t *dh, uint8_t *out, size_t cap,
                       size_t *out_len, struct bkv_ohttp_state *st)
{
    struct bkv_hpke_ctx ctx;
    uint8_t info[INFO_MAX_LEN];
    size_t info_len = 0;
    int rc;

    memset(&ctx, 0, sizeof(ctx));
    rc = server_begin(cfg, labels, req, out, out_len, info, &info_len);
    if (rc != BKV_OK)
        goto out;
    if (skR != NULL)
        rc = bkv_hpke_setup_base_r(req->suite, req->enc, req->enc_len, skR, info, info_len, &ctx);
    else
        rc = bkv_hpke_setup_base_r_dh(req->suite, req->enc, req->enc_len, cfg->pk, cfg->pk_len, dh,
                                      info, info_len, &ctx);
    if (rc != BKV_OK)
        goto out;
    rc = open_request(&ctx, labels, req, out, cap, out_len, st);
out:
    bkv_hpke_ctx_wipe(&ctx);
    if (rc != BKV_OK)
        bkv_ohttp_state_wipe(st);
    return rc;
}

int bkv_ohttp_request_open_dh(const struct bkv_ohttp_key_config *cfg,
                              const struct bkv_ohttp_labels *labels,
                              const struct bkv_ohttp_request *req,
                              const uint8_t dh[static BKV_HPKE_DH_LEN], uint8_t *out, size_t cap,
                              size_t *out_len, struct bkv_ohttp_state *st)
{
    if (st == NULL)
        return BKV_ERR_INVALID;
    memset(st, 0, sizeof(*st));
    return server_open(cfg, labels, req, NULL, dh, out, cap, out_len, st);
}

int bkv_ohttp_request_decap_cb(const struct bkv_ohttp_key_config *cfg,
                               const struct bkv_ohttp_labels *labels, const uint8_t *in, size_t len,
                               bkv_ohttp_dh_fn dh, void *arg, uint8_t *out, size_t cap,
                               size_t *out_len, struct bkv_ohttp_state *st)
{
    struct bkv_ohttp_request req;
    uint8_t secret[BKV_HPKE_DH_LEN];
    int rc;

    if (st == NULL || dh == NULL)
        return BKV_ERR_INVALID;
    memset(st, 0, sizeof(*st));
    memset(secret, 0, sizeof(secret));
    rc = bkv_ohttp_request_parse(cfg, in, len, &req);
    if (rc != BKV_OK)
        goto out;
    rc = dh(arg, req.enc, req.enc_len, secret);
    if (rc != BKV_OK)
        goto out;
    rc = bkv_ohttp_request_open_dh(cfg, labels, &req, secret, out, cap, out_len, st);
out:
    bkv_wipe(secret, sizeof(secret));
    if (rc != BKV_OK)
        bkv_ohttp_state_wipe(st);
    return rc;
}

int bkv_ohttp_request_decap(const struct bkv_ohttp_key_config *cfg,
                            const struct bkv_ohttp_labels *labels,
                            const uint8_t skR[static BKV_HPKE_SK_LEN], const uint8_t *in,
                            size_t len, uint8_t *out, size_t cap, size_t *out_len,
                            struct bkv_ohttp_state *st)
{
    struct bkv_ohttp_request req;
    int rc;

    if (st == NULL)
        return BKV_ERR_INVALID;
    memset(st, 0, sizeof(*st));
    rc = bkv_ohttp_request_parse(cfg, in, len, &req);
    if (rc != BKV_OK)
        return rc;
    return server_open(cfg, labels, &req, skR, NULL, out, cap, out_len, st);
}

/* ---- responses ---- */

static int state_check(const struct bkv_ohttp_state *st)
{
    if (st == NULL || st->secret_len == 0 || st->secret_len != response_nonce_len(st->suite.aead) ||
        bkv_hpke_suite_check(st->suite) != BKV_OK ||
        st->enc_len != bkv_hpke_kem_enc_len(st->suite.kem))
        return BKV_ERR_INVALID;
    return BKV_OK;
}

int bkv_ohttp_response_derive(const struct bkv_ohttp_state *st, const uint8_t *response_nonce,
                              uint8_t prk[static BKV_HPKE_SECRET_LEN],
                              uint8_t key[static BKV_HPKE_MAX_KEY_LEN],
                              uint8_t nonce[static BKV_HPKE_NONCE_LEN])
{
    static const uint8_t key_label[] = {'k', 'e', 'y'};
    static const uint8_t nonce_label[] = {'n', 'o', 'n', 'c', 'e'};
    uint8_t salt[BKV_HPKE_MAX_ENC_LEN + BKV_OHTTP_MAX_NONCE_LEN];
    struct bkv_buf ikm, info;
    int rc = state_check(st);

    if (rc != BKV_OK)
        return rc;
    if (response_nonce == NULL)
        return BKV_ERR_INVALID;
    /* salt = enc || response_nonce; both are public. */
    memcpy(salt, st->enc, st->enc_len);
    memcpy(salt + st->enc_len, response_nonce, st->secret_len);
    ikm = (struct bkv_buf){st->secret, st->secret_len};
    rc = bkv_hkdf_extract(salt, st->enc_len + st->secret_len, &ikm, 1, prk);
    if (rc != BKV_OK)
        goto out;
    info = (struct bkv_buf){key_label, sizeof(key_label)};
    rc = bkv_hkdf_expand(prk, BKV_HPKE_SECRET_LEN, &info, 1, key,
                         bkv_hpke_aead_key_len(st->suite.aead));
    if (rc != BKV_OK)
        goto out;
    info = (struct bkv_buf){nonce_label, sizeof(nonce_label)};
    rc = bkv_hkdf_expand(prk, BKV_HPKE_SECRET_LEN, &info, 1, nonce, BKV_HPKE_NONCE_LEN);
out:
    if (rc != BKV_OK) {
        bkv_wipe(prk, BKV_HPKE_SECRET_LEN);
        bkv_wipe(key, BKV_HPKE_MAX_KEY_LEN);
    }
    return rc;
}

int bkv_ohttp_response_encap(const struct bkv_ohttp_state *st, const uint8_t *response_nonce,
                             const uint8_t *resp, size_t resp_len, uint8_t *out, size_t cap,
                             size_t *out_len)
{
    uint8_t prk[BKV_HPKE_SECRET_LEN], key[BKV_HPKE_MAX_KEY_LEN], nonce[BKV_HPKE_NONCE_LEN];
    size_t total;
    int rc = state_check(st);

    if (rc != BKV_OK)
        return rc;
    if (out == NULL || out_len == NULL || (resp == NULL && resp_len > 0))
        return BKV_ERR_INVALID;
    total = bkv_ohttp_response_len(st->suite.aead, resp_len);
    if (total == 0 || total > BKV_OHTTP_MAX_RESPONSE_LEN || cap < total)
        return BKV_ERR_LENGTH;
    if (response_nonce != NULL)
        memcpy(out, response_nonce, st->secret_len);
    else if (RAND_bytes(out, (int)st->secret_len) != 1)
        return BKV_ERR_CRYPTO;
    rc = bkv_ohttp_response_derive(st, out, prk, key, nonce);
    if (rc == BKV_OK)
        rc = bkv_hpke_aead_seal(st->suite.aead, key, nonce, NULL, 0, resp, resp_len,
                                out + st->secret_len);
    if (rc == BKV_OK)
        *out_len = total;
    bkv_wipe(prk, sizeof(prk));
    bkv_wipe(key, sizeof(key));
    return rc;
}

int bkv_ohttp_response_decap(const struct bkv_ohttp_state *st, const uint8_t *in, size_t len,
                             uint8_t *out, size_t cap, size_t *out_len)
{
    uint8_t prk[BKV_HPKE_SECRET_LEN], key[BKV_HPKE_MAX_KEY_LEN], nonce[BKV_HPKE_NONCE_LEN];
    size_t pt_len;
    int rc = state_check(st);

    if (rc != BKV_OK)
        return rc;
    if (out_len == NULL || (in == NULL && len > 0))
        return BKV_ERR_INVALID;
    if (len > BKV_OHTTP_MAX_RESPONSE_LEN || len < st->secret_len + BKV_HPKE_TAG_LEN)
        return BKV_ERR_LENGTH;
    pt_len = len - st->secret_len - BKV_HPKE_TAG_LEN;
    if (out == NULL && pt_len > 0)
        return BKV_ERR_INVALID;
    if (cap < pt_len)
        return BKV_ERR_LENGTH;
    rc = bkv_ohttp_response_derive(st, in, prk, key, nonce);
    if (rc == BKV_OK)
        rc = bkv_hpke_aead_open(st->suite.aead, key, nonce, NULL, 0, in + st->secret_len,
                                len - st->secret_len, out);
    if (rc == BKV_OK)
        *out_len = pt_len;
    bkv_wipe(prk, sizeof(prk));
    bkv_wipe(key, sizeof(key));
    return rc;
}

void bkv_ohttp_state_wipe(struct bkv_ohttp_state *st)
{
    bkv_wipe(st, st != NULL ? sizeof(*st) : 0);
}
