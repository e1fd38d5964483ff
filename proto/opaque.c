/*
 * OPAQUE-3DH, RFC 9807 §5-6, P256-SHA256, with the client and the server.
 *
 * Normal path: OPRF (proto/oprf.c) -> randomized password through the KSF ->
 * envelope keys and client key pair -> masked credential response -> 3DH key
 * schedule -> server MAC, then client MAC (KE3).
 * Failure modes: wrong message lengths (BKV_ERR_LENGTH), bad peer points
 * (BKV_ERR_POINT, from the group layer), a wrong password (the envelope tag
 * fails: BKV_ERR_ENVELOPE), a forged or tampered KE2 or KE3 (BKV_ERR_MAC).
 * Every intermediate secret is a local array wiped at the single exit.
 */
#include "opaque.h"

#include <string.h>

#include <openssl/rand.h>

#include "err.h"
#include "group.h"
#include "kdf.h"
#include "oprf.h"
#include "util.h"

#define B(p, n) ((struct bkv_buf){(const uint8_t *)(p), (n)})
#define S(lit)  B(lit, sizeof(lit) - 1)

#define PAD_LEN (BKV_P256_ELEMENT_LEN + BKV_OPAQUE_ENVELOPE_LEN) /* Npk + Nn + Nm = 97 */
/* Offsets inside KE2 = CredentialResponse || server_nonce || keyshare || server_mac. */
#define KE2_MASKING_NONCE 33
#define KE2_MASKED        65
#define KE2_SERVER_NONCE  (KE2_MASKED + PAD_LEN)
#define KE2_KEYSHARE      (KE2_SERVER_NONCE + BKV_OPAQUE_NONCE_LEN)
#define KE2_SERVER_MAC    (KE2_KEYSHARE + BKV_P256_ELEMENT_LEN)

static const char dh_key_info[] = "OPAQUE-DeriveDiffieHellmanKeyPair";
static const char oprf_key_info[] = "OPAQUE-DeriveKeyPair";

/* CleartextCredentials with the identities resolved to their defaults. */
struct creds {
    const uint8_t *server_pk;
    const uint8_t *sid, *cid;
    size_t sid_len, cid_len;
    uint8_t sid_len_be[2], cid_len_be[2];
};

static int fill(const uint8_t *fixed, uint8_t *out, size_t n)
{
    if (fixed != NULL) {
        memcpy(out, fixed, n);
        return BKV_OK;
    }
    return RAND_priv_bytes(out, (int)n) == 1 ? BKV_OK : BKV_ERR_CRYPTO;
}

static int derive_dh_key_pair(const uint8_t seed[static 32], uint8_t sk[static 32],
                              uint8_t pk[static BKV_P256_ELEMENT_LEN])
{
    return bkv_oprf_derive_key_pair(seed, (const uint8_t *)dh_key_info, sizeof(dh_key_info) - 1, sk,
                                    pk);
}

/* Expand-Label(secret, label, context, len) of RFC 9807 §6.4.2. */
static int expand_label(const uint8_t secret[static 32], const char *label, const uint8_t *ctx,
                        size_t ctx_len, uint8_t *out, size_t len)
{
    size_t label_len = strlen(label);
    uint8_t hdr[3], ctx_len8 = (uint8_t)ctx_len;
    struct bkv_buf info[] = {B(hdr, 3), S("OPAQUE-"), B(label, label_len), B(&ctx_len8, 1),
                             B(ctx, ctx_len)};

    bkv_put_u16(hdr, (uint16_t)len);
    hdr[2] = (uint8_t)(sizeof("OPAQUE-") - 1 + label_len);
    return bkv_hkdf_expand(secret, 32, info, 5, out, len);
}

/* oprf_key = DeriveKeyPair(Expand(oprf_seed, credential_id || "OprfKey")). */
static int derive_oprf_key(const uint8_t oprf_seed[static 32], const uint8_t *cred_id,
                           size_t cred_id_len, uint8_t oprf_key[static 32])
{
    uint8_t seed[32];
    struct bkv_buf info[] = {B(cred_id, cred_id_len), S("OprfKey")};
    int rc = bkv_hkdf_expand(oprf_seed, 32, info, 2, seed, sizeof(seed));

    if (rc == BKV_OK)
        rc = bkv_oprf_derive_key_pair(seed, (const uint8_t *)oprf_key_info,
                                      sizeof(oprf_key_info) - 1, oprf_key, NULL);
    bkv_wipe(seed, sizeof(seed));
    return rc;
}

/* The configuration as the API boundary receives it. */
static int check_cfg(const struct bkv_opaque_config *cfg)
{
    if (cfg == NULL || (cfg->context == NULL && cfg->context_len > 0))
        return BKV_ERR_INVALID;
    return cfg->context_len > BKV_OPAQUE_MAX_CONTEXT ? BKV_ERR_LENGTH : BKV_OK;
}

static int check_ids(const struct bkv_opaque_ids *ids)
{
    if (ids == NULL)
        return BKV_OK;
    if ((ids->client != NULL && ids->client_len > BKV_OPAQUE_MAX_IDENTITY) ||
        (ids->server != NULL && ids->server_len > BKV_OPAQUE_MAX_IDENTITY))
        return BKV_ERR_LENGTH;
    return BKV_OK;
}

static void creds_init(struct creds *c, const uint8_t server_pk[static BKV_P256_ELEMENT_LEN],
                       const uint8_t client_pk[static BKV_P256_ELEMENT_LEN],
                       const struct bkv_opaque_ids *ids)
{
    c->server_pk = server_pk;
    c->sid = server_pk;
    c->sid_len = BKV_P256_ELEMENT_LEN;
    c->cid = client_pk;
    c->cid_len = BKV_P256_ELEMENT_LEN;
    if (ids != NULL && ids->server != NULL) {
        c->sid = ids->server;
        c->sid_len = ids->server_len;
    }
    if (ids != NULL && ids->client != NULL) {
        c->cid = ids->client;
        c->cid_len = ids->client_len;
    }
    bkv_put_u16(c->sid_len_be, (uint16_t)c->sid_len);
    bkv_put_u16(c->cid_len_be, (uint16_t)c->cid_len);
}

/* auth_tag = MAC(auth_key, envelope_nonce || CleartextCredentials). */
static int envelope_tag(const uint8_t auth_key[static 32], const uint8_t nonce[static 32],
                        const struct creds *c, uint8_t tag[static 32])
{
    struct bkv_buf parts[] = {
        B(nonce, 32),        B(c->server_pk, BKV_P256_ELEMENT_LEN),
        B(c->sid_len_be, 2), B(c->sid, c->sid_len),
        B(c->cid_len_be, 2), B(c->cid, c->cid_len),
    };
    return bkv_hmac_sha256(auth_key, 32, parts, 6, tag);
}

/* The envelope's keys and the client key pair, from rwd and the envelope nonce. */
static int envelope_keys(const uint8_t rwd[static 32], const uint8_t nonce[static 32],
                         uint8_t auth_key[static 32], uint8_t export_key[static 32],
                         uint8_t client_sk[static 32],
                         uint8_t client_pk[static BKV_P256_ELEMENT_LEN])
{
    uint8_t seed[32];
    struct bkv_buf auth_info[] = {B(nonce, 32), S("AuthKey")};
    struct bkv_buf export_info[] = {B(nonce, 32), S("ExportKey")};
    struct bkv_buf seed_info[] = {B(nonce, 32), S("PrivateKey")};
    int rc;

    if ((rc = bkv_hkdf_expand(rwd, 32, auth_info, 2, auth_key, 32)) != BKV_OK ||
        (rc = bkv_hkdf_expand(rwd, 32, export_info, 2, export_key, 32)) != BKV_OK ||
        (rc = bkv_hkdf_expand(rwd, 32, seed_info, 2, seed, 32)) != BKV_OK)
        goto out;
    rc = derive_dh_key_pair(seed, client_sk, client_pk);
out:
    bkv_wipe(seed, sizeof(seed));
    return rc;
}

/* rwd = Extract("", oprf_output || Stretch(oprf_output)). */
static int randomized_password(const struct bkv_opaque_config *cfg, const uint8_t *password,
                               size_t password_len, const uint8_t blind[static 32],
                               const uint8_t evaluated[static BKV_P256_ELEMENT_LEN],
                               uint8_t rwd[static 32])
{
    uint8_t y[32], stretched[32];
    int rc;

    if ((rc = bkv_oprf_finalize(password, password_len, blind, evaluated, y)) != BKV_OK ||
        (rc = bkv_ksf_stretch(&cfg->ksf, y, stretched)) != BKV_OK)
        goto out;
    rc = bkv_hkdf_extract(NULL, 0, (struct bkv_buf[]){B(y, 32), B(stretched, 32)}, 2, rwd);
out:
    bkv_wipe(y, sizeof(y));
    bkv_wipe(stretched, sizeof(stretched));
    return rc;
}

/* The credential-response pad: Expand(masking_key, nonce || "CredentialResponsePad"). */
static int masking_pad(const uint8_t masking_key[static 32], const uint8_t nonce[static 32],
                       uint8_t pad[static PAD_LEN])
{
    struct bkv_buf info[] = {B(nonce, 32), S("CredentialResponsePad")};
    return bkv_hkdf_expand(masking_key, 32, info, 2, pad, PAD_LEN);
}

/*
 * Hash(Preamble), or Hash(Preamble || server_mac) when server_mac is given.
 * ke2_head is CredentialResponse || server_nonce || server_keyshare.
 */
static int preamble_hash(const struct bkv_opaque_config *cfg, const struct creds *c,
                         const uint8_t ke1[static BKV_OPAQUE_KE1_LEN],
                         const uint8_t ke2_head[static KE2_SERVER_MAC], const uint8_t *server_mac,
                         uint8_t out[static 32])
{
    uint8_t ctx_len_be[2];
    struct bkv_buf parts[] = {
        S("OPAQUEv1-"),
        B(ctx_len_be, 2),
        B(cfg->context, cfg->context_len),
        B(c->cid_len_be, 2),
        B(c->cid, c->cid_len),
        B(ke1, BKV_OPAQUE_KE1_LEN),
        B(c->sid_len_be, 2),
        B(c->sid, c->sid_len),
        B(ke2_head, KE2_SERVER_MAC),
        B(server_mac, server_mac != NULL ? BKV_OPAQUE_MAC_LEN : 0),
    };

    bkv_put_u16(ctx_len_be, (uint16_t)cfg->context_len);
    return bkv_sha256(parts, 10, out);
}

struct schedule {
    uint8_t handshake_secret[32];
    uint8_t session_key[32];
    uint8_t km2[32];
    uint8_t km3[32];
};

/* The 3DH key schedule of RFC 9807 §6.4.2 from ikm = dh1 || dh2 || dh3. */
static int key_schedule(const uint8_t ikm[static 3 * BKV_P256_ELEMENT_LEN],
                        const uint8_t preamble[static 32], struct schedule *ks)
{
    uint8_t prk[32];
    int rc;

    if ((rc = bkv_hkdf_extract(NULL, 0, &B(ikm, 3 * BKV_P256_ELEMENT_LEN), 1, prk)) != BKV_OK ||
        (rc = expand_label(prk, "HandshakeSecret", preamble, 32, ks->handshake_secret, 32)) !=
            BKV_OK ||
        (rc = expand_label(prk, "SessionKey", preamble, 32, ks->session_key, 32)) != BKV_OK ||
        (rc = expand_label(ks->handshake_secret, "ServerMAC", NULL, 0, ks->km2, 32)) != BKV_OK)
        goto out;
    rc = expand_label(ks->handshake_secret, "ClientMAC", NULL, 0, ks->km3, 32);
out:
    bkv_wipe(prk, sizeof(prk));
    return rc;
}

int bkv_opaque_server_setup(struct bkv_opaque_server_keys *keys)
{
    uint8_t seed[32];
    int rc;

    if ((rc = fill(NULL, keys->oprf_seed, sizeof(keys->oprf_seed))) != BKV_OK ||
        (rc = fill(NULL, seed, sizeof(seed))) != BKV_OK)
        goto out;
    rc = derive_dh_key_pair(seed, keys->sk, keys->pk);
out:
    bkv_wipe(seed, sizeof(seed));
    if (rc != BKV_OK)
        bkv_wipe(keys, sizeof(*keys));
    return rc;
}

int bkv_opaque_server_keys_complete(struct bkv_opaque_server_keys *keys)
{
    return bkv_p256_mul_base(keys->sk, keys->pk);
}

int bkv_opaque_reg_start(const uint8_t *password, size_t password_len,
                         const struct bkv_opaque_client_rand *rand,
                         struct bkv_opaque_reg_client *state,
                         uint8_t request[static BKV_OPAQUE_REG_REQUEST_LEN])
{
    return bkv_oprf_blind(password, password_len, rand != NULL ? rand->blind : NULL, state->blind,
                          request);
}

int bkv_opaque_reg_respond(const struct bkv_opaque_server_keys *keys, const uint8_t *credential_id,
                           size_t credential_id_len, const uint8_t *request, size_t request_len,
                           uint8_t response[static BKV_OPAQUE_REG_RESPONSE_LEN],
                           struct bkv_opaque_trace *trace)
{
    uint8_t oprf_key[32];
    int rc;

    if (request == NULL || (credential_id == NULL && credential_id_len > 0))
        return BKV_ERR_INVALID;
    if (request_len != BKV_OPAQUE_REG_REQUEST_LEN)
        return BKV_ERR_LENGTH;
    if ((rc = derive_oprf_key(keys->oprf_seed, credential_id, credential_id_len, oprf_key)) !=
            BKV_OK ||
        (rc = bkv_oprf_blind_evaluate(oprf_key, request, response)) != BKV_OK)
        goto out;
    memcpy(response + BKV_P256_ELEMENT_LEN, keys->pk, BKV_P256_ELEMENT_LEN);
    if (trace != NULL)
        memcpy(trace->oprf_key, oprf_key, 32);
out:
    bkv_wipe(oprf_key, sizeof(oprf_key));
    return rc;
}

int bkv_opaque_reg_finish(const struct bkv_opaque_config *cfg, const uint8_t *password,
                          size_t password_len, struct bkv_opaque_reg_client *state,
                          const struct bkv_opaque_ids *ids,
                          const struct bkv_opaque_client_rand *rand, const uint8_t *response,
                          size_t response_len, uint8_t record[static BKV_OPAQUE_RECORD_LEN],
                          uint8_t export_key[static BKV_OPAQUE_KEY_LEN],
                          struct bkv_opaque_trace *trace)
{
    const uint8_t *server_pk;
    uint8_t rwd[32], auth_key[32], client_sk[32];
    uint8_t *client_pk = record, *masking_key = record + 33, *nonce = record + 65,
            *tag = record + 97;
    struct creds c;
    int rc;

    if ((rc = check_cfg(cfg)) != BKV_OK)
        goto out;
    if (response == NULL || response_len != BKV_OPAQUE_REG_RESPONSE_LEN) {
        rc = BKV_ERR_LENGTH;
        goto out;
    }
    server_pk = response + BKV_P256_ELEMENT_LEN;
    if ((rc = check_ids(ids)) != BKV_OK ||
        (rc = bkv_p256_element_check(server_pk, BKV_P256_ELEMENT_LEN)) != BKV_OK ||
        (rc = randomized_password(cfg, password, password_len, state->blind, response, rwd)) !=
            BKV_OK ||
        (rc = bkv_hkdf_expand(rwd, 32, &S("MaskingKey"), 1, masking_key, 32)) != BKV_OK ||
        (rc = fill(rand != NULL ? rand->envelope_nonce : NULL, nonce, 32)) != BKV_OK ||
        (rc = envelope_keys(rwd, nonce, auth_key, export_key, client_sk, client_pk)) != BKV_OK)
        goto out;
    creds_init(&c, server_pk, client_pk, ids);
    if ((rc = envelope_tag(auth_key, nonce, &c, tag)) != BKV_OK)
        goto out;
    if (trace != NULL) {
        memcpy(trace->randomized_password, rwd, 32);
        memcpy(trace->masking_key, masking_key, 32);
        memcpy(trace->auth_key, auth_key, 32);
        memcpy(trace->envelope, nonce, BKV_OPAQUE_ENVELOPE_LEN);
        memcpy(trace->client_public_key, client_pk, BKV_P256_ELEMENT_LEN);
    }
out:
    if (rc != BKV_OK) {
        bkv_wipe(record, BKV_OPAQUE_RECORD_LEN);
        bkv_wipe(export_key, BKV_OPAQUE_KEY_LEN);
    }
    bkv_wipe(rwd, sizeof(rwd));
    bkv_wipe(auth_key, sizeof(auth_key));
    bkv_wipe(client_sk, sizeof(client_sk));
    bkv_opaque_reg_client_wipe(state);
    return rc;
}

int bkv_opaque_login_start(const uint8_t *password, size_t password_len,
                           const struct bkv_opaque_client_rand *rand,
                           struct bkv_opaque_login_client *state,
                           uint8_t ke1[static BKV_OPAQUE_KE1_LEN])
{
    uint8_t seed[32];
    int rc;

    if ((rc = bkv_oprf_blind(password, password_len, rand != NULL ? rand->blind : NULL,
                             state->blind, ke1)) != BKV_OK ||
        (rc = fill(rand != NULL ? rand->nonce : NULL, ke1 + 33, 32)) != BKV_OK ||
        (rc = fill(rand != NULL ? rand->keyshare_seed : NULL, seed, 32)) != BKV_OK ||
        (rc = derive_dh_key_pair(seed, state->keyshare_sk, ke1 + 65)) != BKV_OK)
        goto out;
    memcpy(state->ke1, ke1, BKV_OPAQUE_KE1_LEN);
out:
    bkv_wipe(seed, sizeof(seed));
    if (rc != BKV_OK)
        bkv_opaque_login_client_wipe(state);
    return rc;
}

int bkv_opaque_login_respond(const struct bkv_opaque_config *cfg,
                             const struct bkv_opaque_server_keys *keys, const uint8_t *record,
                             size_t record_len, const uint8_t *credential_id,
                             size_t credential_id_len, const struct bkv_opaque_ids *ids,
                             const uint8_t *ke1, size_t ke1_len,
                             const struct bkv_opaque_server_rand *rand,
                             struct bkv_opaque_login_server *state,
                             uint8_t ke2[static BKV_OPAQUE_KE2_LEN], struct bkv_opaque_trace *trace)
{
    const uint8_t *client_pk = record, *masking_key = record + 33, *envelope = record + 65;
    const uint8_t *client_keyshare = ke1 + 65;
    uint8_t oprf_key[32], pad[PAD_LEN], seed[32], eph_sk[32], ph[32];
    uint8_t ikm[3 * BKV_P256_ELEMENT_LEN];
    struct schedule ks;
    struct creds c;
    int rc;

    memset(&ks, 0, sizeof(ks));
    if ((rc = check_cfg(cfg)) != BKV_OK)
        goto out;
    if (credential_id == NULL && credential_id_len > 0) {
        rc = BKV_ERR_INVALID;
        goto out;
    }
    if (record == NULL || ke1 == NULL || record_len != BKV_OPAQUE_RECORD_LEN ||
        ke1_len != BKV_OPAQUE_KE1_LEN) {
        rc = BKV_ERR_LENGTH;
        goto out;
    }
    /* CredentialResponse: evaluated || masking_nonce || masked_response. */
    if ((rc = check_ids(ids)) != BKV_OK ||
        (rc = derive_oprf_key(keys->oprf_seed, credential_id, credential_id_len, oprf_key)) !=
            BKV_OK ||
        (rc = bkv_oprf_blind_evaluate(oprf_key, ke1, ke2)) != BKV_OK ||
        (rc = fill(rand != NULL ? rand->masking_nonce : NULL, ke2 + KE2_MASKING_NONCE, 32)) !=
            BKV_OK ||
        (rc = masking_pad(masking_key, ke2 + KE2_MASKING_NONCE, pad)) != BKV_OK)
        goto out;
    for (size_t i = 0; i < PAD_LEN; i++) {
        uint8_t plain = i < BKV_P256_ELEMENT_LEN ? keys->pk[i] : envelope[i - BKV_P256_ELEMENT_LEN];
        ke2[KE2_MASKED + i] = pad[i] ^ plain;
    }
    /* AuthResponse: server_nonce || server_keyshare || server_mac. The 3DH
     * ikm is dh1 || dh2 || dh3; dh1 and dh2 share client_keyshare. */
    if ((rc = fill(rand != NULL ? rand->nonce : NULL, ke2 + KE2_SERVER_NONCE, 32)) != BKV_OK ||
        (rc = fill(rand != NULL ? rand->keyshare_seed : NULL, seed, 32)) != BKV_OK ||
        (rc = derive_dh_key_pair(seed, eph_sk, ke2 + KE2_KEYSHARE)) != BKV_OK)
        goto out;
    creds_init(&c, keys->pk, client_pk, ids);
    if ((rc = preamble_hash(cfg, &c, ke1, ke2, NULL, ph)) != BKV_OK ||
        (rc = bkv_p256_mul2(eph_sk, keys->sk, client_keyshare, ikm, ikm + 33)) != BKV_OK ||
        (rc = bkv_p256_mul(eph_sk, client_pk, ikm + 66)) != BKV_OK ||
        (rc = key_schedule(ikm, ph, &ks)) != BKV_OK ||
        (rc = bkv_hmac_sha256(ks.km2, 32, &B(ph, 32), 1, ke2 + KE2_SERVER_MAC)) != BKV_OK ||
        (rc = preamble_hash(cfg, &c, ke1, ke2, ke2 + KE2_SERVER_MAC, ph)) != BKV_OK ||
        (rc = bkv_hmac_sha256(ks.km3, 32, &B(ph, 32), 1, state->expected_client_mac)) != BKV_OK)
        goto out;
    memcpy(state->session_key, ks.session_key, 32);
    state->armed = 1;
    if (trace != NULL) {
        memcpy(trace->oprf_key, oprf_key, 32);
        memcpy(trace->handshake_secret, ks.handshake_secret, 32);
        memcpy(trace->server_mac_key, ks.km2, 32);
        memcpy(trace->client_mac_key, ks.km3, 32);
    }
out:
    if (rc != BKV_OK) {
        bkv_wipe(ke2, BKV_OPAQUE_KE2_LEN);
        bkv_opaque_login_server_wipe(state);
    }
    bkv_wipe(oprf_key, sizeof(oprf_key));
    bkv_wipe(pad, sizeof(pad));
    bkv_wipe(seed, sizeof(seed));
    bkv_wipe(eph_sk, sizeof(eph_sk));
    bkv_wipe(ikm, sizeof(ikm));
    bkv_wipe(&ks, sizeof(ks));
    return rc;
}

int bkv_opaque_login_finish(const struct bkv_opaque_config *cfg,
                            struct bkv_opaque_login_client *state, const uint8_t *password,
                            size_t password_len, const struct bkv_opaque_ids *ids,
                            const uint8_t *ke2, size_t ke2_len,
                            uint8_t ke3[static BKV_OPAQUE_KE3_LEN],
                            uint8_t session_key[static BKV_OPAQUE_KEY_LEN],
                            uint8_t export_key[static BKV_OPAQUE_KEY_LEN],
                            struct bkv_opaque_trace *trace)
{
    uint8_t rwd[32], masking_key[32], pad[PAD_LEN], unmasked[PAD_LEN];
    uint8_t auth_key[32], client_sk[32], client_pk[BKV_P256_ELEMENT_LEN], tag[32], mac[32], ph[32];
    uint8_t ikm[3 * BKV_P256_ELEMENT_LEN];
    const uint8_t *server_pk = unmasked, *env_nonce = unmasked + 33, *env_tag = unmasked + 65;
    const uint8_t *server_keyshare = ke2 + KE2_KEYSHARE;
    struct schedule ks;
    struct creds c;
    int rc;

    memset(&ks, 0, sizeof(ks));
    if ((rc = check_cfg(cfg)) != BKV_OK)
        goto out;
    if (ke2 == NULL || ke2_len != BKV_OPAQUE_KE2_LEN) {
        rc = BKV_ERR_LENGTH;
        goto out;
    }
    /* RecoverCredentials: unmask with the password-derived masking key. */
    if ((rc = check_ids(ids)) != BKV_OK ||
        (rc = randomized_password(cfg, password, password_len, state->blind, ke2, rwd)) != BKV_OK ||
        (rc = bkv_hkdf_expand(rwd, 32, &S("MaskingKey"), 1, masking_key, 32)) != BKV_OK ||
        (rc = masking_pad(masking_key, ke2 + KE2_MASKING_NONCE, pad)) != BKV_OK)
        goto out;
    for (size_t i = 0; i < PAD_LEN; i++)
        unmasked[i] = pad[i] ^ ke2[KE2_MASKED + i];
    /* Recover: the envelope tag proves the password before any key is used. */
    if ((rc = envelope_keys(rwd, env_nonce, auth_key, export_key, client_sk, client_pk)) != BKV_OK)
        goto out;
    creds_init(&c, server_pk, client_pk, ids);
    if ((rc = envelope_tag(auth_key, env_nonce, &c, tag)) != BKV_OK)
        goto out;
    if (!bkv_ct_equal(tag, env_tag, 32)) {
        rc = BKV_ERR_ENVELOPE;
        goto out;
    }
    /* 3DH from the client's side; the group layer validates server points.
     * dh1 and dh3 share server_keyshare, so it is decoded once. */
    if ((rc = bkv_p256_mul2(state->keyshare_sk, client_sk, server_keyshare, ikm, ikm + 66)) !=
            BKV_OK ||
        (rc = bkv_p256_mul(state->keyshare_sk, server_pk, ikm + 33)) != BKV_OK ||
        (rc = preamble_hash(cfg, &c, state->ke1, ke2, NULL, ph)) != BKV_OK ||
        (rc = key_schedule(ikm, ph, &ks)) != BKV_OK ||
        (rc = bkv_hmac_sha256(ks.km2, 32, &B(ph, 32), 1, mac)) != BKV_OK)
        goto out;
    if (!bkv_ct_equal(mac, ke2 + KE2_SERVER_MAC, 32)) {
        rc = BKV_ERR_MAC;
        goto out;
    }
    if ((rc = preamble_hash(cfg, &c, state->ke1, ke2, ke2 + KE2_SERVER_MAC, ph)) != BKV_OK ||
        (rc = bkv_hmac_sha256(ks.km3, 32, &B(ph, 32), 1, ke3)) != BKV_OK)
        goto out;
    memcpy(session_key, ks.session_key, 32);
    if (trace != NULL) {
        memcpy(trace->randomized_password, rwd, 32);
        memcpy(trace->masking_key, masking_key, 32);
        memcpy(trace->auth_key, auth_key, 32);
        memcpy(trace->envelope, env_nonce, BKV_OPAQUE_ENVELOPE_LEN);
        memcpy(trace->client_public_key, client_pk, BKV_P256_ELEMENT_LEN);
        memcpy(trace->handshake_secret, ks.handshake_secret, 32);
        memcpy(trace->server_mac_key, ks.km2, 32);
        memcpy(trace->client_mac_key, ks.km3, 32);
    }
out:
    if (rc != BKV_OK) {
        bkv_wipe(ke3, BKV_OPAQUE_KE3_LEN);
        bkv_wipe(session_key, BKV_OPAQUE_KEY_LEN);
        bkv_wipe(export_key, BKV_OPAQUE_KEY_LEN);
    }
    bkv_wipe(rwd, sizeof(rwd));
    bkv_wipe(masking_key, sizeof(masking_key));
    bkv_wipe(pad, sizeof(pad));
    bkv_wipe(unmasked, sizeof(unmasked));
    bkv_wipe(auth_key, sizeof(auth_key));
    bkv_wipe(client_sk, sizeof(client_sk));
    bkv_wipe(tag, sizeof(tag));
    bkv_wipe(ikm, sizeof(ikm));
    bkv_wipe(&ks, sizeof(ks));
    bkv_opaque_login_client_wipe(state);
    return rc;
}

int bkv_opaque_login_verify(struct bkv_opaque_login_server *state, const uint8_t *ke3,
                            size_t ke3_len, uint8_t session_key[static BKV_OPAQUE_KEY_LEN])
{
    int rc = BKV_ERR_MAC;

    if (state->armed != 1)
        rc = BKV_ERR_INVALID;
    else if (ke3 == NULL || ke3_len != BKV_OPAQUE_KE3_LEN)
        rc = BKV_ERR_LENGTH;
    else if (bkv_ct_equal(state->expected_client_mac, ke3, BKV_OPAQUE_KE3_LEN)) {
        memcpy(session_key, state->session_key, BKV_OPAQUE_KEY_LEN);
        rc = BKV_OK;
    }
    if (rc != BKV_OK)
        bkv_wipe(session_key, BKV_OPAQUE_KEY_LEN);
    bkv_opaque_login_server_wipe(state);
    return rc;
}

int bkv_opaque_fake_record(const uint8_t *secret, const uint8_t *credential_id,
                           size_t credential_id_len, uint8_t record[static BKV_OPAQUE_RECORD_LEN])
{
    uint8_t seed[32], sk[32];
    int rc;

    memset(record + 65, 0, BKV_OPAQUE_ENVELOPE_LEN);
    if (secret != NULL) {
        struct bkv_buf key_info[] = {B(credential_id, credential_id_len), S("FakeClientKey")};
        struct bkv_buf mask_info[] = {B(credential_id, credential_id_len), S("FakeMaskingKey")};
        if ((rc = bkv_hkdf_expand(secret, 32, key_info, 2, seed, 32)) != BKV_OK ||
            (rc = bkv_hkdf_expand(secret, 32, mask_info, 2, record + 33, 32)) != BKV_OK)
            goto out;
    } else if ((rc = fill(NULL, seed, 32)) != BKV_OK ||
               (rc = fill(NULL, record + 33, 32)) != BKV_OK)
        goto out;
    rc = derive_dh_key_pair(seed, sk, record);
out:
    bkv_wipe(seed, sizeof(seed));
    bkv_wipe(sk, sizeof(sk));
    if (rc != BKV_OK)
        bkv_wipe(record, BKV_OPAQUE_RECORD_LEN);
    return rc;
}

void bkv_opaque_reg_client_wipe(struct bkv_opaque_reg_client *state)
{
    bkv_wipe(state, sizeof(*state));
}

void bkv_opaque_login_client_wipe(struct bkv_opaque_login_client *state)
{
    bkv_wipe(state, sizeof(*state));
}

void bkv_opaque_login_server_wipe(struct bkv_opaque_login_server *state)
{
    bkv_wipe(state, sizeof(*state));
}
