/*
 * The fixed keys and protocol states of tests/fuzz (see fuzz.h). Each fixture
 * is built on first use from constants only, so the targets and the corpus
 * generator agree on it byte for byte. A failure here means the build is
 * broken (exit 2), never a finding.
 */
#include "fuzz.h"

#include <string.h>

#include "proto/err.h"

const uint8_t fuzz_stream_key[BKV_STREAM_KEY_LEN] = {
    0x4b, 0x20, 0x66, 0x6f, 0x72, 0x20, 0x74, 0x68, 0x65, 0x20, 0x66, 0x75, 0x7a, 0x7a, 0x20, 0x73,
    0x74, 0x72, 0x65, 0x61, 0x6d, 0x20, 0x74, 0x61, 0x72, 0x67, 0x65, 0x74, 0x20, 0x21, 0x21, 0x21,
};

const uint8_t fuzz_stream_salt[BKV_STREAM_SALT_LEN] = {
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
    0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20,
};

const uint8_t fuzz_token_key[32] = {
    0x74, 0x6f, 0x6b, 0x65, 0x6e, 0x20, 0x6b, 0x65, 0x79, 0x20, 0x6f, 0x66, 0x20, 0x74, 0x68, 0x65,
    0x20, 0x66, 0x75, 0x7a, 0x7a, 0x20, 0x74, 0x61, 0x72, 0x67, 0x65, 0x74, 0x20, 0x30, 0x30, 0x31,
};

const uint8_t fuzz_proof_key[32] = {
    0x70, 0x72, 0x6f, 0x6f, 0x66, 0x20, 0x6b, 0x65, 0x79, 0x20, 0x6f, 0x66, 0x20, 0x74, 0x68, 0x65,
    0x20, 0x66, 0x75, 0x7a, 0x7a, 0x20, 0x74, 0x61, 0x72, 0x67, 0x65, 0x74, 0x20, 0x30, 0x30, 0x32,
};

/* n bytes of a simple counter pattern starting at first. */
static void pattern(uint8_t *out, size_t n, uint8_t first)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(first + i);
}

static struct fuzz_ohttp ohttp;
static int ohttp_ready;

const struct fuzz_ohttp *fuzz_ohttp(void)
{
    uint8_t ikm[32];
    struct bkv_ohttp_key_config *cfg = &ohttp.cfg;

    if (ohttp_ready)
        return &ohttp;
    pattern(ikm, sizeof(ikm), 0x40);
    cfg->key_id = FUZZ_OHTTP_KEY_ID;
    cfg->kem = BKV_HPKE_KEM_P256_SHA256;
    FUZZ_SETUP(
        bkv_hpke_derive_key_pair(cfg->kem, ikm, sizeof(ikm), ohttp.sk, cfg->pk, &cfg->pk_len));
    cfg->suite_count = 2;
    cfg->suites[0] =
        (struct bkv_ohttp_symmetric){BKV_HPKE_KDF_HKDF_SHA256, BKV_HPKE_AEAD_AES_128_GCM};
    cfg->suites[1] =
        (struct bkv_ohttp_symmetric){BKV_HPKE_KDF_HKDF_SHA256, BKV_HPKE_AEAD_AES_256_GCM};
    pattern(ohttp.skE, sizeof(ohttp.skE), 0x11);

    for (int i = 0; i < 2; i++) {
        struct bkv_ohttp_state *st = &ohttp.st[i];

        st->suite =
            (struct bkv_hpke_suite){BKV_HPKE_KEM_P256_SHA256, BKV_HPKE_KDF_HKDF_SHA256,
                                    i == 0 ? BKV_HPKE_AEAD_AES_128_GCM : BKV_HPKE_AEAD_AES_256_GCM};
        st->key_id = FUZZ_OHTTP_KEY_ID;
        /* Any valid point serves as the request's enc: the realm key itself. */
        st->enc_len = cfg->pk_len;
        memcpy(st->enc, cfg->pk, cfg->pk_len);
        st->secret_len = i == 0 ? 16 : 32;
        pattern(st->secret, st->secret_len, (uint8_t)(0x80 + i));
    }
    ohttp_ready = 1;
    return &ohttp;
}

static struct fuzz_opaque opaque;
static int opaque_ready;

static const uint8_t rand_blind[32] = {
    0x3f, 0xa9, 0x12, 0x55, 0x0b, 0x7e, 0x21, 0x9c, 0x44, 0x18, 0x6d, 0x2a, 0x90, 0x03, 0xe1, 0x5b,
    0x7c, 0x66, 0x0d, 0x31, 0xab, 0x4e, 0x29, 0x87, 0x13, 0xc2, 0x58, 0x6a, 0x0f, 0x94, 0x22, 0x01,
};

const struct fuzz_opaque *fuzz_opaque(void)
{
    static uint8_t env_nonce[32], nonce[32], keyshare[32], s_mask[32], s_nonce[32], s_keyshare[32];
    static const char context[] = "BKV-fuzz-context";
    struct fuzz_opaque *f = &opaque;
    struct bkv_opaque_reg_client reg;
    struct bkv_opaque_login_client lc;
    struct bkv_opaque_login_server ls;
    uint8_t export_key[BKV_OPAQUE_KEY_LEN], session_key[BKV_OPAQUE_KEY_LEN];
    uint8_t server_session_key[BKV_OPAQUE_KEY_LEN];
    const uint8_t *pw = (const uint8_t *)FUZZ_OPAQUE_PASSWORD;
    size_t pw_len = sizeof(FUZZ_OPAQUE_PASSWORD) - 1;
    const uint8_t *cred = (const uint8_t *)FUZZ_OPAQUE_ACCOUNT;
    size_t cred_len = sizeof(FUZZ_OPAQUE_ACCOUNT) - 1;

    if (opaque_ready)
        return f;
    memcpy(f->context, context, sizeof(context) - 1);
    f->cfg.context = f->context;
    f->cfg.context_len = sizeof(context) - 1;
    f->cfg.ksf = BKV_KSF_IDENTITY_PARAMS;
    f->ids.client = cred;
    f->ids.client_len = cred_len;

    pattern(f->keys.oprf_seed, sizeof(f->keys.oprf_seed), 0x20);
    pattern(f->keys.sk, sizeof(f->keys.sk), 0x01); /* 0x0102..20: far below the group order */
    FUZZ_SETUP(bkv_opaque_server_keys_complete(&f->keys));

    pattern(env_nonce, sizeof(env_nonce), 0x30);
    pattern(nonce, sizeof(nonce), 0x50);
    pattern(keyshare, sizeof(keyshare), 0x70);
    pattern(s_mask, sizeof(s_mask), 0x90);
    pattern(s_nonce, sizeof(s_nonce), 0xb0);
    pattern(s_keyshare, sizeof(s_keyshare), 0xd0);
    f->crand = (struct bkv_opaque_client_rand){rand_blind, env_nonce, nonce, keyshare};
    f->srand = (struct bkv_opaque_server_rand){s_mask, s_nonce, s_keyshare};

    /* Registration. */
    FUZZ_SETUP(bkv_opaque_reg_start(pw, pw_len, &f->crand, &f->reg_client, f->reg_request));
    FUZZ_SETUP(bkv_opaque_reg_respond(&f->keys, cred, cred_len, f->reg_request,
                                      sizeof(f->reg_request), f->reg_response, NULL));
    reg = f->reg_client;
    FUZZ_SETUP(bkv_opaque_reg_finish(&f->cfg, pw, pw_len, &reg, &f->ids, &f->crand, f->reg_response,
                                     sizeof(f->reg_response), f->record, export_key, NULL));

    /* Login. */
    FUZZ_SETUP(bkv_opaque_login_start(pw, pw_len, &f->crand, &f->login_client, f->ke1));
    FUZZ_SETUP(bkv_opaque_login_respond(&f->cfg, &f->keys, f->record, sizeof(f->record), cred,
                                        cred_len, &f->ids, f->ke1, sizeof(f->ke1), &f->srand,
                                        &f->login_server, f->ke2, NULL));
    lc = f->login_client;
    FUZZ_SETUP(bkv_opaque_login_finish(&f->cfg, &lc, pw, pw_len, &f->ids, f->ke2, sizeof(f->ke2),
                                       f->ke3, session_key, export_key, NULL));
    ls = f->login_server;
    FUZZ_SETUP(bkv_opaque_login_verify(&ls, f->ke3, sizeof(f->ke3), server_session_key));
    FUZZ_SETUP(memcmp(session_key, server_session_key, sizeof(session_key)));
    opaque_ready = 1;
    return f;
}
