/*
 * BKV's inner messages, the realm key config and the AEAD layers around K
 * (layouts in msg.h). Encoders validate what they write; decoders are total:
 * every length, reserved byte and padding byte is checked before anything is
 * used, and an input of the wrong size is refused as a whole.
 */
#include "msg.h"

#include <openssl/rand.h>
#include <string.h>

#include "err.h"
#include "hpke.h"
#include "kdf.h"
#include "util.h"

#define REQ_HEADER_LEN  (1 + 1 + 2 + BKV_MSG_REQUEST_ID_LEN + 2)
#define RESP_HEADER_LEN (1 + 1 + 1 + 1 + BKV_MSG_REQUEST_ID_LEN + 4 + 4)
#define KC_FIXED_LEN    (4 + 4 + BKV_MSG_REALM_ID_LEN + 4 + 12 + 2)
#define AEAD_AES256GCM  0x0002
#define WRAP_LABEL      "BKV-WRAP-K-v1"
#define RELEASE_LABEL   "BKV-RELEASE-v1"

static int all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

size_t bkv_msg_request_payload_len(enum bkv_msg_type type)
{
    switch (type) {
    case BKV_MSG_REG_INIT:
        return BKV_OPAQUE_REG_REQUEST_LEN;
    case BKV_MSG_REG_FINISH:
        return BKV_OPAQUE_RECORD_LEN + BKV_MSG_WRAPPED_LEN + BKV_MSG_TICKET_LEN;
    case BKV_MSG_LOGIN_INIT:
        return BKV_OPAQUE_KE1_LEN;
    case BKV_MSG_LOGIN_FINISH:
        return BKV_MSG_SESSION_ID_LEN + BKV_OPAQUE_KE3_LEN;
    case BKV_MSG_DELETE:
        return 0;
    }
    return SIZE_MAX;
}

size_t bkv_msg_response_payload_len(enum bkv_msg_type type, enum bkv_msg_status status)
{
    if (bkv_msg_request_payload_len(type) == SIZE_MAX)
        return SIZE_MAX;
    if (status > BKV_MSG_UNAVAILABLE)
        return SIZE_MAX;
    if (status != BKV_MSG_OK)
        return 0;
    switch (type) {
    case BKV_MSG_REG_INIT:
        return BKV_OPAQUE_REG_RESPONSE_LEN + BKV_MSG_TICKET_LEN;
    case BKV_MSG_LOGIN_INIT:
        return BKV_MSG_SESSION_ID_LEN + BKV_OPAQUE_KE2_LEN;
    case BKV_MSG_LOGIN_FINISH:
        return BKV_MSG_RELEASE_LEN;
    default:
        return 0;
    }
}

int bkv_msg_account_valid(const uint8_t *account, size_t len)
{
    if (account == NULL || len == 0 || len > BKV_MSG_ACCOUNT_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = account[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '@' || c == '+' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

int bkv_msg_request_encode(const struct bkv_msg_request *m, uint8_t out[static BKV_MSG_REQUEST_LEN])
{
    if (m == NULL)
        return BKV_ERR_INVALID;
    size_t plen = bkv_msg_request_payload_len(m->type);
    if (plen == SIZE_MAX || !bkv_msg_account_valid(m->account, m->account_len))
        return BKV_ERR_INVALID;
    if (m->payload_len != plen || (plen > 0 && m->payload == NULL))
        return BKV_ERR_LENGTH;
    memset(out, 0, BKV_MSG_REQUEST_LEN);
    out[0] = BKV_MSG_VERSION;
    out[1] = (uint8_t)m->type;
    memcpy(out + 4, m->request_id, BKV_MSG_REQUEST_ID_LEN);
    bkv_put_u16(out + 4 + BKV_MSG_REQUEST_ID_LEN, (uint16_t)m->account_len);
    memcpy(out + REQ_HEADER_LEN, m->account, m->account_len);
    if (plen > 0)
        memcpy(out + REQ_HEADER_LEN + m->account_len, m->payload, plen);
    return BKV_OK;
}

int bkv_msg_request_decode(const uint8_t *in, size_t len, struct bkv_msg_request *m)
{
    if (in == NULL || m == NULL)
        return BKV_ERR_INVALID;
    memset(m, 0, sizeof(*m));
    if (len != BKV_MSG_REQUEST_LEN)
        return BKV_ERR_LENGTH;
    if (in[0] != BKV_MSG_VERSION)
        return BKV_ERR_UNSUPPORTED;
    enum bkv_msg_type type = (enum bkv_msg_type)in[1];
    size_t plen = bkv_msg_request_payload_len(type);
    if (plen == SIZE_MAX)
        return BKV_ERR_UNSUPPORTED;
    if (in[2] != 0 || in[3] != 0)
        return BKV_ERR_FORMAT;
    size_t alen = bkv_get_u16(in + 4 + BKV_MSG_REQUEST_ID_LEN);
    if (alen == 0 || alen > BKV_MSG_ACCOUNT_MAX)
        return BKV_ERR_FORMAT;
    size_t used = REQ_HEADER_LEN + alen + plen;
    if (used > BKV_MSG_REQUEST_LEN) /* cannot happen with the limits above; kept total */
        return BKV_ERR_LENGTH;
    if (!bkv_msg_account_valid(in + REQ_HEADER_LEN, alen))
        return BKV_ERR_FORMAT;
    if (!all_zero(in + used, BKV_MSG_REQUEST_LEN - used))
        return BKV_ERR_FORMAT;
    m->type = type;
    memcpy(m->request_id, in + 4, BKV_MSG_REQUEST_ID_LEN);
    m->account = in + REQ_HEADER_LEN;
    m->account_len = alen;
    m->payload = plen > 0 ? in + REQ_HEADER_LEN + alen : NULL;
    m->payload_len = plen;
    return BKV_OK;
}

int bkv_msg_response_encode(const struct bkv_msg_response *m,
                            uint8_t out[static BKV_MSG_RESPONSE_LEN])
{
    if (m == NULL)
        return BKV_ERR_INVALID;
    size_t plen = bkv_msg_response_payload_len(m->type, m->status);
    if (plen == SIZE_MAX)
        return BKV_ERR_INVALID;
    if (m->payload_len != plen || (plen > 0 && m->payload == NULL))
        return BKV_ERR_LENGTH;
    memset(out, 0, BKV_MSG_RESPONSE_LEN);
    out[0] = BKV_MSG_VERSION;
    out[1] = (uint8_t)m->type;
    out[2] = (uint8_t)m->status;
    memcpy(out + 4, m->request_id, BKV_MSG_REQUEST_ID_LEN);
    bkv_put_u32(out + 4 + BKV_MSG_REQUEST_ID_LEN, m->attempts_left);
    bkv_put_u32(out + 8 + BKV_MSG_REQUEST_ID_LEN, m->max_attempts);
    if (plen > 0)
        memcpy(out + RESP_HEADER_LEN, m->payload, plen);
    return BKV_OK;
}

int bkv_msg_response_decode(const uint8_t *in, size_t len, struct bkv_msg_response *m)
{
    if (in == NULL || m == NULL)
        return BKV_ERR_INVALID;
    memset(m, 0, sizeof(*m));
    if (len != BKV_MSG_RESPONSE_LEN)
        return BKV_ERR_LENGTH;
    if (in[0] != BKV_MSG_VERSION)
        return BKV_ERR_UNSUPPORTED;
    enum bkv_msg_type type = (enum bkv_msg_type)in[1];
    enum bkv_msg_status status = (enum bkv_msg_status)in[2];
    size_t plen = bkv_msg_response_payload_len(type, status);
    if (plen == SIZE_MAX)
        return BKV_ERR_UNSUPPORTED;
    if (in[3] != 0 ||
        !all_zero(in + RESP_HEADER_LEN + plen, BKV_MSG_RESPONSE_LEN - RESP_HEADER_LEN - plen))
        return BKV_ERR_FORMAT;
    m->type = type;
    m->status = status;
    memcpy(m->request_id, in + 4, BKV_MSG_REQUEST_ID_LEN);
    m->attempts_left = bkv_get_u32(in + 4 + BKV_MSG_REQUEST_ID_LEN);
    m->max_attempts = bkv_get_u32(in + 8 + BKV_MSG_REQUEST_ID_LEN);
    m->payload = plen > 0 ? in + RESP_HEADER_LEN : NULL;
    m->payload_len = plen;
    return BKV_OK;
}

const char *bkv_msg_type_name(enum bkv_msg_type type)
{
    switch (type) {
    case BKV_MSG_REG_INIT:
        return "REG_INIT";
    case BKV_MSG_REG_FINISH:
        return "REG_FINISH";
    case BKV_MSG_LOGIN_INIT:
        return "LOGIN_INIT";
    case BKV_MSG_LOGIN_FINISH:
        return "LOGIN_FINISH";
    case BKV_MSG_DELETE:
        return "DELETE";
    }
    return "UNKNOWN";
}

const char *bkv_msg_status_name(enum bkv_msg_status status)
{
    static const char *const names[] = {
        [BKV_MSG_OK] = "OK",
        [BKV_MSG_WRONG_PASSWORD] = "WRONG_PASSWORD",
        [BKV_MSG_DESTROYED] = "DESTROYED",
        [BKV_MSG_NOT_REGISTERED] = "NOT_REGISTERED",
        [BKV_MSG_SESSION_UNKNOWN] = "SESSION_UNKNOWN",
        [BKV_MSG_REPLAYED] = "REPLAYED",
        [BKV_MSG_BAD_REQUEST] = "BAD_REQUEST",
        [BKV_MSG_UNAVAILABLE] = "UNAVAILABLE",
    };
    if ((unsigned)status < sizeof(names) / sizeof(names[0]))
        return names[status];
    return "UNKNOWN";
}

/* --- key config ------------------------------------------------------------ */

int bkv_keyconfig_encode(const struct bkv_keyconfig *kc, uint8_t *out, size_t cap, size_t *len)
{
    if (kc == NULL || out == NULL || len == NULL)
        return BKV_ERR_INVALID;
    if (kc->ksf.kind != BKV_KSF_IDENTITY && kc->ksf.kind != BKV_KSF_ARGON2ID)
        return BKV_ERR_INVALID;
    if (cap < KC_FIXED_LEN)
        return BKV_ERR_LENGTH;
    size_t olen = 0;
    int rc = bkv_ohttp_key_config_encode(&kc->ohttp, out + KC_FIXED_LEN, cap - KC_FIXED_LEN, &olen);
    if (rc != BKV_OK)
        return rc;
    if (olen > UINT16_MAX)
        return BKV_ERR_LENGTH;
    memset(out, 0, KC_FIXED_LEN);
    memcpy(out, BKV_KEYCONFIG_MAGIC, 4);
    out[4] = BKV_KEYCONFIG_VERSION;
    memcpy(out + 8, kc->realm_id, BKV_MSG_REALM_ID_LEN);
    out[24] = (uint8_t)kc->ksf.kind;
    bkv_put_u32(out + 28, kc->ksf.iterations);
    bkv_put_u32(out + 32, kc->ksf.memory_kib);
    bkv_put_u32(out + 36, kc->ksf.parallelism);
    bkv_put_u16(out + 40, (uint16_t)olen);
    *len = KC_FIXED_LEN + olen;
    return BKV_OK;
}

int bkv_keyconfig_decode(const uint8_t *in, size_t len, struct bkv_keyconfig *kc)
{
    if (in == NULL || kc == NULL)
        return BKV_ERR_INVALID;
    memset(kc, 0, sizeof(*kc));
    if (len < KC_FIXED_LEN)
        return BKV_ERR_LENGTH;
    if (memcmp(in, BKV_KEYCONFIG_MAGIC, 4) != 0)
        return BKV_ERR_FORMAT;
    if (in[4] != BKV_KEYCONFIG_VERSION)
        return BKV_ERR_UNSUPPORTED;
    if (!all_zero(in + 5, 3) || !all_zero(in + 25, 3))
        return BKV_ERR_FORMAT;
    if (in[24] != BKV_KSF_IDENTITY && in[24] != BKV_KSF_ARGON2ID)
        return BKV_ERR_UNSUPPORTED;
    size_t olen = bkv_get_u16(in + 40);
    if (len != KC_FIXED_LEN + olen)
        return BKV_ERR_LENGTH;
    struct bkv_ksf ksf = {(enum bkv_ksf_kind)in[24], bkv_get_u32(in + 28), bkv_get_u32(in + 32),
                          bkv_get_u32(in + 36)};
    if (ksf.kind == BKV_KSF_IDENTITY && (ksf.iterations | ksf.memory_kib | ksf.parallelism) != 0)
        return BKV_ERR_FORMAT;
    if (ksf.kind == BKV_KSF_ARGON2ID &&
        (ksf.iterations == 0 || ksf.parallelism == 0 || ksf.parallelism > 64 ||
         ksf.memory_kib < 8 * ksf.parallelism || ksf.memory_kib > (1u << 22) ||
         ksf.iterations > 64))
        return BKV_ERR_FORMAT;
    int rc = bkv_ohttp_key_config_decode(in + KC_FIXED_LEN, olen, &kc->ohttp);
    if (rc != BKV_OK)
        return rc;
    memcpy(kc->realm_id, in + 8, BKV_MSG_REALM_ID_LEN);
    kc->ksf = ksf;
    return BKV_OK;
}

int bkv_keyconfig_fingerprint(const uint8_t *enc, size_t len,
                              uint8_t fp[static BKV_KEYCONFIG_FP_LEN])
{
    if (enc == NULL)
        return BKV_ERR_INVALID;
    struct bkv_buf part = {enc, len};
    return bkv_sha256(&part, 1, fp);
}

void bkv_msg_opaque_context(const uint8_t realm_id[static BKV_MSG_REALM_ID_LEN],
                            uint8_t ctx[static BKV_MSG_CONTEXT_LEN])
{
    size_t l = sizeof(BKV_MSG_OPAQUE_CONTEXT) - 1;
    memcpy(ctx, BKV_MSG_OPAQUE_CONTEXT, l);
    memcpy(ctx + l, realm_id, BKV_MSG_REALM_ID_LEN);
}

void bkv_keyconfig_opaque(const struct bkv_keyconfig *kc, uint8_t ctx[static BKV_MSG_CONTEXT_LEN],
                          struct bkv_opaque_config *out)
{
    bkv_msg_opaque_context(kc->realm_id, ctx);
    out->context = ctx;
    out->context_len = BKV_MSG_CONTEXT_LEN;
    out->ksf = kc->ksf;
}

/* --- AEAD layers ------------------------------------------------------------ */

/* key = HKDF-Expand(secret, label, 32); aad = label || bind. */
static int layer_seal(const uint8_t secret[static 32], const char *label, const uint8_t *bind,
                      size_t bind_len, const uint8_t *pt, size_t pt_len, uint8_t *out)
{
    uint8_t key[32], aad[64 + BKV_MSG_ACCOUNT_MAX];
    size_t llen = strlen(label);
    struct bkv_buf info = {(const uint8_t *)label, llen};
    int rc = bkv_hkdf_expand(secret, 32, &info, 1, key, sizeof(key));
    if (rc != BKV_OK)
        goto out;
    if (RAND_bytes(out, BKV_HPKE_NONCE_LEN) != 1) {
        rc = BKV_ERR_CRYPTO;
        goto out;
    }
    memcpy(aad, label, llen);
    memcpy(aad + llen, bind, bind_len);
    rc = bkv_hpke_aead_seal(AEAD_AES256GCM, key, out, aad, llen + bind_len, pt, pt_len,
                            out + BKV_HPKE_NONCE_LEN);
out:
    bkv_wipe(key, sizeof(key));
    return rc;
}

static int layer_open(const uint8_t secret[static 32], const char *label, const uint8_t *bind,
                      size_t bind_len, const uint8_t *in, size_t in_len, uint8_t *pt)
{
    uint8_t key[32], aad[64 + BKV_MSG_ACCOUNT_MAX];
    size_t llen = strlen(label);
    struct bkv_buf info = {(const uint8_t *)label, llen};
    int rc = bkv_hkdf_expand(secret, 32, &info, 1, key, sizeof(key));
    if (rc != BKV_OK)
        goto out;
    memcpy(aad, label, llen);
    memcpy(aad + llen, bind, bind_len);
    rc = bkv_hpke_aead_open(AEAD_AES256GCM, key, in, aad, llen + bind_len, in + BKV_HPKE_NONCE_LEN,
                            in_len - BKV_HPKE_NONCE_LEN, pt);
out:
    bkv_wipe(key, sizeof(key));
    return rc;
}

int bkv_msg_wrap_key(const uint8_t export_key[static BKV_OPAQUE_KEY_LEN], const uint8_t *account,
                     size_t account_len, const uint8_t key[static BKV_MSG_KEY_LEN],
                     uint8_t wrapped[static BKV_MSG_WRAPPED_LEN])
{
    if (!bkv_msg_account_valid(account, account_len))
        return BKV_ERR_INVALID;
    return layer_seal(export_key, WRAP_LABEL, account, account_len, key, BKV_MSG_KEY_LEN, wrapped);
}

int bkv_msg_unwrap_key(const uint8_t export_key[static BKV_OPAQUE_KEY_LEN], const uint8_t *account,
                       size_t account_len, const uint8_t wrapped[static BKV_MSG_WRAPPED_LEN],
                       uint8_t key[static BKV_MSG_KEY_LEN])
{
    if (!bkv_msg_account_valid(account, account_len))
        return BKV_ERR_INVALID;
    int rc =
        layer_open(export_key, WRAP_LABEL, account, account_len, wrapped, BKV_MSG_WRAPPED_LEN, key);
    if (rc != BKV_OK)
        bkv_wipe(key, BKV_MSG_KEY_LEN);
    return rc;
}

int bkv_msg_release_seal(const uint8_t session_key[static BKV_OPAQUE_KEY_LEN],
                         const uint8_t session_id[static BKV_MSG_SESSION_ID_LEN],
                         const uint8_t wrapped[static BKV_MSG_WRAPPED_LEN],
                         uint8_t release[static BKV_MSG_RELEASE_LEN])
{
    return layer_seal(session_key, RELEASE_LABEL, session_id, BKV_MSG_SESSION_ID_LEN, wrapped,
                      BKV_MSG_WRAPPED_LEN, release);
}

int bkv_msg_release_open(const uint8_t session_key[static BKV_OPAQUE_KEY_LEN],
                         const uint8_t session_id[static BKV_MSG_SESSION_ID_LEN],
                         const uint8_t release[static BKV_MSG_RELEASE_LEN],
                         uint8_t wrapped[static BKV_MSG_WRAPPED_LEN])
{
    int rc = layer_open(session_key, RELEASE_LABEL, session_id, BKV_MSG_SESSION_ID_LEN, release,
                        BKV_MSG_RELEASE_LEN, wrapped);
    if (rc != BKV_OK)
        bkv_wipe(wrapped, BKV_MSG_WRAPPED_LEN);
    return rc;
}
