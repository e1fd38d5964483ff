/*
 * OPAQUE-3DH (RFC 9807), configuration P256-SHA256: OPRF P256-SHA256,
 * HKDF-SHA256, HMAC-SHA256, SHA-256, a pluggable KSF (proto/ksf.h), group P-256.
 *
 * The flows, with who calls what:
 *   registration: client reg_start -> server reg_respond -> client reg_finish
 *                 (the client uploads the 129-byte record)
 *   login:        client login_start (KE1) -> server login_respond (KE2)
 *                 -> client login_finish (KE3) -> server login_verify
 * For an unknown credential the server calls login_respond with a fake record
 * from bkv_opaque_fake_record(), so the KE2 has the same form and cost.
 *
 * Every message has a fixed size and is rejected at any other length. Every
 * peer point is validated (compressed encoding, on curve, not the identity);
 * MACs are compared in constant time; intermediate secrets are wiped. State
 * structs hold secrets: the owner wipes them with bkv_opaque_*_wipe().
 * All functions are reentrant and may run on any thread (EC work is meant for
 * a worker thread, not the event loop).
 */
#ifndef BKV_PROTO_OPAQUE_H
#define BKV_PROTO_OPAQUE_H

#include <stddef.h>
#include <stdint.h>

#include "group.h"
#include "ksf.h"

#define BKV_OPAQUE_NONCE_LEN        32
#define BKV_OPAQUE_SEED_LEN         32
#define BKV_OPAQUE_KEY_LEN          32 /* export_key, session_key, MAC keys */
#define BKV_OPAQUE_MAC_LEN          32
#define BKV_OPAQUE_ENVELOPE_LEN     64 /* nonce[32] || auth_tag[32] */
#define BKV_OPAQUE_REG_REQUEST_LEN  33
#define BKV_OPAQUE_REG_RESPONSE_LEN 66
#define BKV_OPAQUE_RECORD_LEN       129 /* client_pk[33] || masking_key[32] || envelope */
#define BKV_OPAQUE_KE1_LEN          98
#define BKV_OPAQUE_KE2_LEN          259
#define BKV_OPAQUE_KE3_LEN          32
#define BKV_OPAQUE_MAX_IDENTITY     65535
#define BKV_OPAQUE_MAX_CONTEXT      65535

/* Application settings; both sides must agree. Borrowed for each call. */
struct bkv_opaque_config {
    const uint8_t *context; /* the RFC's "context"; may be NULL when empty */
    size_t context_len;
    struct bkv_ksf ksf;
};

/*
 * Optional identities. A NULL pointer means "absent": RFC 9807 then uses the
 * corresponding public key. BKV binds the client identity to the account id.
 */
struct bkv_opaque_ids {
    const uint8_t *client;
    size_t client_len;
    const uint8_t *server;
    size_t server_len;
};

/* The server's long-term secrets: OPRF seed and AKE key pair. */
struct bkv_opaque_server_keys {
    uint8_t oprf_seed[BKV_OPAQUE_SEED_LEN];
    uint8_t sk[BKV_P256_SCALAR_LEN];
    uint8_t pk[BKV_P256_ELEMENT_LEN];
};

/*
 * Fixed "random" inputs, for the RFC test vectors only. Any NULL field (or a
 * NULL struct pointer) is drawn from the private DRBG, as in production.
 */
struct bkv_opaque_client_rand {
    const uint8_t *blind;          /* 32 bytes */
    const uint8_t *envelope_nonce; /* 32 bytes, registration */
    const uint8_t *nonce;          /* 32 bytes, login */
    const uint8_t *keyshare_seed;  /* 32 bytes, login */
};

struct bkv_opaque_server_rand {
    const uint8_t *masking_nonce; /* 32 bytes */
    const uint8_t *nonce;         /* 32 bytes */
    const uint8_t *keyshare_seed; /* 32 bytes */
};

/* Intermediate values, filled only when a test passes a non-NULL pointer. */
struct bkv_opaque_trace {
    uint8_t oprf_key[BKV_P256_SCALAR_LEN];
    uint8_t randomized_password[32];
    uint8_t masking_key[32];
    uint8_t auth_key[32];
    uint8_t envelope[BKV_OPAQUE_ENVELOPE_LEN];
    uint8_t client_public_key[BKV_P256_ELEMENT_LEN];
    uint8_t handshake_secret[32];
    uint8_t server_mac_key[32];
    uint8_t client_mac_key[32];
};

/* Client state between reg_start and reg_finish. */
struct bkv_opaque_reg_client {
    uint8_t blind[BKV_P256_SCALAR_LEN];
};

/* Client state between login_start and login_finish. */
struct bkv_opaque_login_client {
    uint8_t blind[BKV_P256_SCALAR_LEN];
    uint8_t keyshare_sk[BKV_P256_SCALAR_LEN];
    uint8_t ke1[BKV_OPAQUE_KE1_LEN];
};

/*
 * Server state between login_respond and login_verify (kept in memory only).
 * armed is set by a successful login_respond and cleared by the one verify
 * that follows: a wiped or zeroed state verifies nothing, not even a KE3 of
 * zeros.
 */
struct bkv_opaque_login_server {
    uint8_t expected_client_mac[BKV_OPAQUE_MAC_LEN];
    uint8_t session_key[BKV_OPAQUE_KEY_LEN];
    uint8_t armed;
};

/* Fresh server secrets: a random OPRF seed and AKE key pair. */
int bkv_opaque_server_setup(struct bkv_opaque_server_keys *keys);

/* Fill keys->pk from keys->sk (after checking sk); for keys loaded from storage. */
int bkv_opaque_server_keys_complete(struct bkv_opaque_server_keys *keys);

/* --- registration --------------------------------------------------------- */

int bkv_opaque_reg_start(const uint8_t *password, size_t password_len,
                         const struct bkv_opaque_client_rand *rand,
                         struct bkv_opaque_reg_client *state,
                         uint8_t request[static BKV_OPAQUE_REG_REQUEST_LEN]);

int bkv_opaque_reg_respond(const struct bkv_opaque_server_keys *keys, const uint8_t *credential_id,
                           size_t credential_id_len, const uint8_t *request, size_t request_len,
                           uint8_t response[static BKV_OPAQUE_REG_RESPONSE_LEN],
                           struct bkv_opaque_trace *trace);

/* Produces the record to upload and the export key. Wipes *state. */
int bkv_opaque_reg_finish(const struct bkv_opaque_config *cfg, const uint8_t *password,
                          size_t password_len, struct bkv_opaque_reg_client *state,
                          const struct bkv_opaque_ids *ids,
                          const struct bkv_opaque_client_rand *rand, const uint8_t *response,
                          size_t response_len, uint8_t record[static BKV_OPAQUE_RECORD_LEN],
                          uint8_t export_key[static BKV_OPAQUE_KEY_LEN],
                          struct bkv_opaque_trace *trace);

/* --- login ---------------------------------------------------------------- */

int bkv_opaque_login_start(const uint8_t *password, size_t password_len,
                           const struct bkv_opaque_client_rand *rand,
                           struct bkv_opaque_login_client *state,
                           uint8_t ke1[static BKV_OPAQUE_KE1_LEN]);

/*
 * KE1 -> KE2 for a stored record (or a fake one). On success *state holds
 * the expected client MAC and the session key; KE2 may then be sent. ke2 must
 * not overlap ke1. BKV_ERR_INVALID for a NULL config or a NULL pointer with a
 * non-zero length.
 */
int bkv_opaque_login_respond(
    const struct bkv_opaque_config *cfg, const struct bkv_opaque_server_keys *keys,
    const uint8_t *record, size_t record_len, const uint8_t *credential_id,
    size_t credential_id_len, const struct bkv_opaque_ids *ids, const uint8_t *ke1, size_t ke1_len,
    const struct bkv_opaque_server_rand *rand, struct bkv_opaque_login_server *state,
    uint8_t ke2[static BKV_OPAQUE_KE2_LEN], struct bkv_opaque_trace *trace);

/*
 * KE2 -> KE3. BKV_ERR_ENVELOPE for a wrong password (or a fake record),
 * BKV_ERR_MAC if the server's MAC does not verify. Wipes *state either way.
 */
int bkv_opaque_login_finish(const struct bkv_opaque_config *cfg,
                            struct bkv_opaque_login_client *state, const uint8_t *password,
                            size_t password_len, const struct bkv_opaque_ids *ids,
                            const uint8_t *ke2, size_t ke2_len,
                            uint8_t ke3[static BKV_OPAQUE_KE3_LEN],
                            uint8_t session_key[static BKV_OPAQUE_KEY_LEN],
                            uint8_t export_key[static BKV_OPAQUE_KEY_LEN],
                            struct bkv_opaque_trace *trace);

/*
 * Check KE3 in constant time. On success copies the session key out. Wipes
 * *state either way: a session gets one chance. BKV_ERR_MAC on mismatch,
 * BKV_ERR_INVALID for a state that login_respond did not arm (or that was
 * already used).
 */
int bkv_opaque_login_verify(struct bkv_opaque_login_server *state, const uint8_t *ke3,
                            size_t ke3_len, uint8_t session_key[static BKV_OPAQUE_KEY_LEN]);

/*
 * A fake record for unknown credentials (RFC 9807 §6.3.2.2): a client public
 * key, a masking key and an all-zero envelope. With a 32-byte secret it is
 * derived from (secret, credential_id), so every probe of the same unknown
 * account meets the same record without the server storing one; with NULL
 * it is random.
 */
int bkv_opaque_fake_record(const uint8_t *secret, const uint8_t *credential_id,
                           size_t credential_id_len, uint8_t record[static BKV_OPAQUE_RECORD_LEN]);

void bkv_opaque_reg_client_wipe(struct bkv_opaque_reg_client *state);
void bkv_opaque_login_client_wipe(struct bkv_opaque_login_client *state);
void bkv_opaque_login_server_wipe(struct bkv_opaque_login_server *state);

#endif
