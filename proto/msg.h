/*
 * BKV's own messages: the inner request and response that travel inside the
 * RFC 9458 envelope, the realm key config a client pins, and the two small
 * AEAD layers around the backup key K (the client's wrap under OPAQUE's
 * export_key, and the node's release under the login session key).
 *
 * Inner request (plaintext of the encapsulated request), always exactly
 * BKV_MSG_REQUEST_LEN bytes so the router cannot tell the types apart by size:
 *
 *   version(1) = 1 || type(1) || reserved(2) = 0 || request_id(16)
 *   || account_len(2) || account(account_len) || payload || zero padding
 *
 *   payload by type (fixed lengths):
 *     REG_INIT      RegistrationRequest (33)
 *     REG_FINISH    RegistrationRecord (129) || wrapped K (BKV_MSG_WRAPPED_LEN)
 *                   || registration ticket (BKV_MSG_TICKET_LEN, from REG_INIT)
 *     LOGIN_INIT    KE1 (98)
 *     LOGIN_FINISH  login session id (16) || KE3 (32)
 *     DELETE        empty
 *
 * Inner response (plaintext of the encapsulated response), always exactly
 * BKV_MSG_RESPONSE_LEN bytes:
 *
 *   version(1) = 1 || type(1) (the request's) || status(1) || reserved(1) = 0
 *   || request_id(16) (the request's) || attempts_left(4) || max_attempts(4)
 *   || payload || zero padding
 *
 *   payload, only with status OK:
 *     REG_INIT      RegistrationResponse (66) || registration ticket (32)
 *     LOGIN_INIT    login session id (16) || KE2 (259)
 *     LOGIN_FINISH  release (BKV_MSG_RELEASE_LEN)
 *     REG_FINISH, DELETE: empty
 *   every other status has an empty payload.
 *
 * Integers are big-endian. The decoders are total: they check the version,
 * the type, the reserved bytes, the account (1..BKV_MSG_ACCOUNT_MAX bytes of
 * [A-Za-z0-9._@+-]), the payload length for the type and status, and that
 * the padding is all zeros.
 *
 * Key config ("realm key config", what `bkv-admin realm keyconfig` publishes
 * and what a client pins by its SHA-256 fingerprint):
 *
 *   "BKVK" || version(1) = 1 || reserved(3) = 0 || realm_id(16)
 *   || ksf_kind(1) || reserved(3) = 0 || ksf_t(4) || ksf_m_kib(4) || ksf_p(4)
 *   || ohttp_len(2) || RFC 9458 key config (ohttp_len)
 *
 * OPAQUE settings both sides derive from it: context = BKV_MSG_OPAQUE_CONTEXT
 * || realm_id; the client identity is the account id; the server identity is
 * absent (RFC 9807 then uses the server's public key).
 *
 * Pure functions: reentrant, any thread.
 */
#ifndef BKV_PROTO_MSG_H
#define BKV_PROTO_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "ksf.h"
#include "ohttp.h"
#include "opaque.h"

#define BKV_MSG_VERSION        1
#define BKV_MSG_REQUEST_ID_LEN 16
#define BKV_MSG_SESSION_ID_LEN 16
#define BKV_MSG_ACCOUNT_MAX    256
#define BKV_MSG_KEY_LEN        32                          /* the backup key K */
#define BKV_MSG_WRAPPED_LEN    (12 + BKV_MSG_KEY_LEN + 16) /* nonce || ct || tag */
#define BKV_MSG_RELEASE_LEN    (12 + BKV_MSG_WRAPPED_LEN + 16)
/*
 * The registration ticket: opaque to the client, which echoes it from the
 * REG_INIT answer into REG_FINISH. The node binds it to the account's state
 * at REG_INIT and to an expiry, so an old REG_FINISH replayed later (after
 * the record changed, was counted against or destroyed) is refused.
 */
#define BKV_MSG_TICKET_LEN     32
#define BKV_MSG_REQUEST_LEN    512
#define BKV_MSG_RESPONSE_LEN   320
#define BKV_MSG_REALM_ID_LEN   16
#define BKV_MSG_OPAQUE_CONTEXT "BKV-OPAQUE-v1"
#define BKV_MSG_CONTEXT_LEN    (sizeof(BKV_MSG_OPAQUE_CONTEXT) - 1 + BKV_MSG_REALM_ID_LEN)
#define BKV_KEYCONFIG_MAGIC    "BKVK"
#define BKV_KEYCONFIG_VERSION  1
#define BKV_KEYCONFIG_MAX_LEN  (4 + 4 + 16 + 4 + 12 + 2 + BKV_OHTTP_KEY_CONFIG_MAX_LEN)
#define BKV_KEYCONFIG_FP_LEN   32 /* SHA-256 of the encoding */

enum bkv_msg_type {
    BKV_MSG_REG_INIT = 1,
    BKV_MSG_REG_FINISH = 2,
    BKV_MSG_LOGIN_INIT = 3,
    BKV_MSG_LOGIN_FINISH = 4,
    BKV_MSG_DELETE = 5,
};

enum bkv_msg_status {
    BKV_MSG_OK = 0,
    BKV_MSG_WRONG_PASSWORD = 1,  /* LOGIN_FINISH: the KE3 did not verify; see attempts_left */
    BKV_MSG_DESTROYED = 2,       /* too many wrong guesses: the key is gone for good */
    BKV_MSG_NOT_REGISTERED = 3,  /* LOGIN_FINISH / DELETE: no key registered for this account */
    BKV_MSG_SESSION_UNKNOWN = 4, /* LOGIN_FINISH: this leader has no such session; REG_FINISH:
                                    the ticket is stale or expired. Start over */
    BKV_MSG_REPLAYED = 5,        /* LOGIN_INIT: the request id was used before; no KE2 */
    BKV_MSG_BAD_REQUEST = 6,     /* a malformed payload or an invalid point; nothing changed */
    BKV_MSG_UNAVAILABLE = 7,     /* the node failed inside (HSM, disk); retry later */
};

struct bkv_msg_request {
    enum bkv_msg_type type;
    uint8_t request_id[BKV_MSG_REQUEST_ID_LEN];
    const uint8_t *account; /* borrowed */
    size_t account_len;
    const uint8_t *payload; /* borrowed; length fixed by type */
    size_t payload_len;
};

struct bkv_msg_response {
    enum bkv_msg_type type;
    enum bkv_msg_status status;
    uint8_t request_id[BKV_MSG_REQUEST_ID_LEN];
    uint32_t attempts_left; /* guesses left before the key is destroyed (0 if unknown) */
    uint32_t max_attempts;  /* the record's limit (0 if unknown) */
    const uint8_t *payload; /* borrowed; length fixed by type and status */
    size_t payload_len;
};

/* The payload length a request of this type carries; 0 for DELETE, SIZE_MAX if unknown type. */
size_t bkv_msg_request_payload_len(enum bkv_msg_type type);
/* The payload length of a response; SIZE_MAX for an unknown type or status. */
size_t bkv_msg_response_payload_len(enum bkv_msg_type type, enum bkv_msg_status status);

/* 1 if account (len bytes) is a valid account id: 1..256 bytes of [A-Za-z0-9._@+-]. */
int bkv_msg_account_valid(const uint8_t *account, size_t len);

/* Encode into out (exactly BKV_MSG_REQUEST_LEN bytes). BKV_ERR_INVALID / LENGTH. */
int bkv_msg_request_encode(const struct bkv_msg_request *m,
                           uint8_t out[static BKV_MSG_REQUEST_LEN]);
/* Decode; pointers borrow from in. BKV_ERR_LENGTH / FORMAT / UNSUPPORTED. */
int bkv_msg_request_decode(const uint8_t *in, size_t len, struct bkv_msg_request *m);
int bkv_msg_response_encode(const struct bkv_msg_response *m,
                            uint8_t out[static BKV_MSG_RESPONSE_LEN]);
int bkv_msg_response_decode(const uint8_t *in, size_t len, struct bkv_msg_response *m);

const char *bkv_msg_type_name(enum bkv_msg_type type);
const char *bkv_msg_status_name(enum bkv_msg_status status);

/* --- the realm key config ------------------------------------------------ */

struct bkv_keyconfig {
    uint8_t realm_id[BKV_MSG_REALM_ID_LEN];
    struct bkv_ksf ksf; /* the client's KSF; IDENTITY is refused outside tests by the client */
    struct bkv_ohttp_key_config ohttp;
};

int bkv_keyconfig_encode(const struct bkv_keyconfig *kc, uint8_t *out, size_t cap, size_t *len);
/* Total decoder; BKV_ERR_FORMAT for a wrong magic or reserved byte, UNSUPPORTED for a version. */
int bkv_keyconfig_decode(const uint8_t *in, size_t len, struct bkv_keyconfig *kc);
/* fp = SHA-256(encoding). */
int bkv_keyconfig_fingerprint(const uint8_t *enc, size_t len,
                              uint8_t fp[static BKV_KEYCONFIG_FP_LEN]);
/* The OPAQUE config both sides use: context = BKV_MSG_OPAQUE_CONTEXT || realm_id, in ctx. */
void bkv_keyconfig_opaque(const struct bkv_keyconfig *kc, uint8_t ctx[static BKV_MSG_CONTEXT_LEN],
                          struct bkv_opaque_config *out);
/* The same context from a bare realm id (the node's side). */
void bkv_msg_opaque_context(const uint8_t realm_id[static BKV_MSG_REALM_ID_LEN],
                            uint8_t ctx[static BKV_MSG_CONTEXT_LEN]);

/* --- the AEAD layers around K --------------------------------------------- */

/*
 * Client: wrapped = nonce(12) || AES-256-GCM(wrap_key, nonce, K, aad) with
 * wrap_key = HKDF-Expand(export_key, "BKV-WRAP-K-v1", 32) and
 * aad = "BKV-WRAP-K-v1" || account. The nonce is random.
 */
int bkv_msg_wrap_key(const uint8_t export_key[static BKV_OPAQUE_KEY_LEN], const uint8_t *account,
                     size_t account_len, const uint8_t key[static BKV_MSG_KEY_LEN],
                     uint8_t wrapped[static BKV_MSG_WRAPPED_LEN]);
/* BKV_ERR_DECRYPT for a wrong export key or account, or an altered blob. key wiped on failure. */
int bkv_msg_unwrap_key(const uint8_t export_key[static BKV_OPAQUE_KEY_LEN], const uint8_t *account,
                       size_t account_len, const uint8_t wrapped[static BKV_MSG_WRAPPED_LEN],
                       uint8_t key[static BKV_MSG_KEY_LEN]);
/*
 * Node: release = nonce(12) || AES-256-GCM(rel_key, nonce, wrapped, aad) with
 * rel_key = HKDF-Expand(session_key, "BKV-RELEASE-v1", 32) and
 * aad = "BKV-RELEASE-v1" || session id. The client opens it with the session
 * key from its own login_finish.
 */
int bkv_msg_release_seal(const uint8_t session_key[static BKV_OPAQUE_KEY_LEN],
                         const uint8_t session_id[static BKV_MSG_SESSION_ID_LEN],
                         const uint8_t wrapped[static BKV_MSG_WRAPPED_LEN],
                         uint8_t release[static BKV_MSG_RELEASE_LEN]);
int bkv_msg_release_open(const uint8_t session_key[static BKV_OPAQUE_KEY_LEN],
                         const uint8_t session_id[static BKV_MSG_SESSION_ID_LEN],
                         const uint8_t release[static BKV_MSG_RELEASE_LEN],
                         uint8_t wrapped[static BKV_MSG_WRAPPED_LEN]);

#endif
