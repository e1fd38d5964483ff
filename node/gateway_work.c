/*
 * The gateway's worker stages, run on the libuv pool by gw_work_cb: ST_OPEN
 * (HSM DH and HPKE open, inner decode, the account check, the account MAC,
 * then the type's pre-work: OPAQUE registration response, record and wrapped K
 * sealed, KE1's points checked, request ids), ST_LOGIN (record unsealed, or the
 * dummy for a fake record; KE2 under a fresh session id) and ST_RELEASE
 * (wrapped K unsealed and sealed to the session key). They write only their
 * request and the atomic HSM counters. Failure modes: an envelope that does not
 * open or decode is an HTTP 400 (403 for another account, 500 if the HSM fails);
 * after that a bad point answers BAD_REQUEST, other failures UNAVAILABLE, and an
 * HSM failure also sets work_rc for the loop to log.
 */
#include "node/gateway_internal.h"

#include <openssl/rand.h>
#include <string.h>

#include "hsm/decap.h"
#include "hsm/mac.h"
#include "proto/err.h"
#include "proto/group.h"
#include "proto/util.h"

/* An HSM call's outcome, counted from any thread. */
static int hsm_count(struct bkv_gateway *gw, enum bkv_hsm_op op, int rc)
{
    __atomic_fetch_add(&gw->stats.hsm_ops[op], 1, __ATOMIC_RELAXED);
    if (rc != BKV_OK && rc != BKV_ERR_DECRYPT)
        __atomic_fetch_add(&gw->stats.hsm_errors[op], 1, __ATOMIC_RELAXED);
    return rc;
}

static void seal_aad(const char *label, const uint8_t account_key[static BKV_ACCOUNT_KEY_LEN],
                     uint8_t *aad, size_t *aad_len)
{
    size_t l = strlen(label);
    memcpy(aad, label, l);
    memcpy(aad + l, account_key, BKV_ACCOUNT_KEY_LEN);
    *aad_len = l + BKV_ACCOUNT_KEY_LEN;
}

/* --- worker stages --------------------------------------------------------------- */

static void work_open(struct gw_req *r)
{
    struct bkv_gateway *gw = r->gw;
    size_t len = 0;
    int rc = bkv_ohttp_request_decap_cb(&gw->ohttp, &bkv_ohttp_bkv_labels, r->envelope,
                                        r->envelope_len, bkv_hsm_ohttp_dh, gw->c.hsm, r->inner,
                                        sizeof(r->inner), &len, &r->ost);
    hsm_count(gw, BKV_HSM_OP_DECAP,
              rc == BKV_ERR_DECRYPT || rc == BKV_ERR_UNSUPPORTED || rc == BKV_ERR_LENGTH ||
                      rc == BKV_ERR_POINT || rc == BKV_ERR_FORMAT
                  ? BKV_OK
                  : rc);
    if (rc != BKV_OK) {
        if (rc == BKV_ERR_DECRYPT)
            gw_http_error(r, 400, "the envelope does not open with this realm's key");
        else if (rc == BKV_ERR_UNSUPPORTED)
            gw_http_error(r, 400, "malformed envelope: unknown key id or unsupported suite");
        else if (rc == BKV_ERR_POINT || rc == BKV_ERR_LENGTH || rc == BKV_ERR_FORMAT)
            gw_http_error(r, 400, "malformed envelope: truncated, or not a valid P-256 point");
        else {
            gw_http_error(r, 500, "the HSM failed to open the envelope; see the node's log");
            r->work_rc = rc;
        }
        return;
    }
    r->opened = 1;
    if (bkv_msg_request_decode(r->inner, len, &r->msg) != BKV_OK) {
        gw_http_error(r, 400, "the envelope holds no valid BKV message");
        return;
    }
    if (r->msg.account_len != r->account_len ||
        memcmp(r->msg.account, r->account, r->account_len) != 0) {
        gw_http_error(r, 403, "the account in the envelope is not the one the router attested");
        return;
    }
    rc = hsm_count(
        gw, BKV_HSM_OP_MAC,
        bkv_hsm_account_mac(gw->c.hsm, r->msg.account, r->msg.account_len, r->account_key));
    if (rc != BKV_OK) {
        r->work_rc = rc;
        gw_inner_status(r, BKV_MSG_UNAVAILABLE);
        return;
    }
    const uint8_t *p = r->msg.payload;
    uint8_t aad[64];
    size_t aad_len = 0;
    switch (r->msg.type) {
    case BKV_MSG_REG_INIT:
        rc = bkv_opaque_reg_respond(gw->c.keys, r->msg.account, r->msg.account_len, p,
                                    r->msg.payload_len, r->payload, NULL);
        if (rc == BKV_OK)
            r->payload_len = BKV_OPAQUE_REG_RESPONSE_LEN;
        else
            gw_inner_status(r, rc == BKV_ERR_POINT || rc == BKV_ERR_LENGTH ? BKV_MSG_BAD_REQUEST
                                                                           : BKV_MSG_UNAVAILABLE);
        break;
    case BKV_MSG_REG_FINISH: {
        const uint8_t *wrapped = p + BKV_OPAQUE_RECORD_LEN;
        if (bkv_p256_element_check(p, BKV_P256_ELEMENT_LEN) != BKV_OK) {
            gw_inner_status(r, BKV_MSG_BAD_REQUEST);
            break;
        }
        struct bkv_buf parts[] = {{r->account_key, BKV_ACCOUNT_KEY_LEN},
                                  {r->msg.request_id, BKV_MSG_REQUEST_ID_LEN},
                                  {p, r->msg.payload_len}};
        rc = gw_derive_request_id("BKV-REQ-REGISTER-v1", parts, 3, r->cmd.request_id);
        seal_aad("BKV-RECORD-v1", r->account_key, aad, &aad_len);
        if (rc == BKV_OK)
            rc = hsm_count(gw, BKV_HSM_OP_SEAL,
                           bkv_hsm_seal(gw->c.hsm, aad, aad_len, p, BKV_OPAQUE_RECORD_LEN,
                                        r->sealed_record, sizeof(r->sealed_record),
                                        &r->sealed_record_len));
        seal_aad("BKV-WRAPPED-v1", r->account_key, aad, &aad_len);
        if (rc == BKV_OK)
            rc = hsm_count(gw, BKV_HSM_OP_SEAL,
                           bkv_hsm_seal(gw->c.hsm, aad, aad_len, wrapped, BKV_MSG_WRAPPED_LEN,
                                        r->sealed_wrapped, sizeof(r->sealed_wrapped),
                                        &r->sealed_wrapped_len));
        if (rc != BKV_OK) {
            r->work_rc = rc;
            gw_inner_status(r, BKV_MSG_UNAVAILABLE);
        }
        break;
    }
    case BKV_MSG_LOGIN_INIT: {
        /* KE1 = blinded element (33) || nonce (32) || client keyshare (33). */
        if (bkv_p256_element_check(p, BKV_P256_ELEMENT_LEN) != BKV_OK ||
            bkv_p256_element_check(p + 65, BKV_P256_ELEMENT_LEN) != BKV_OK) {
            gw_inner_status(r, BKV_MSG_BAD_REQUEST);
            break;
        }
        struct bkv_buf parts[] = {{r->account_key, BKV_ACCOUNT_KEY_LEN},
                                  {r->msg.request_id, BKV_MSG_REQUEST_ID_LEN},
                                  {p, r->msg.payload_len}};
        rc = gw_derive_request_id("BKV-REQ-ATTEMPT-v1", parts, 3, r->cmd.request_id);
        if (rc != BKV_OK)
            gw_inner_status(r, BKV_MSG_UNAVAILABLE);
        break;
    }
    case BKV_MSG_LOGIN_FINISH:
        break;
    case BKV_MSG_DELETE: {
        struct bkv_buf parts[] = {{r->account_key, BKV_ACCOUNT_KEY_LEN},
                                  {r->msg.request_id, BKV_MSG_REQUEST_ID_LEN}};
        rc = gw_derive_request_id("BKV-REQ-DELETE-v1", parts, 2, r->cmd.request_id);
        if (rc != BKV_OK)
            gw_inner_status(r, BKV_MSG_UNAVAILABLE);
        break;
    }
    }
    bkv_wipe(aad, sizeof(aad));
}

/* KE2 from the unsealed record, or from the fake record of an unknown account. */
static void work_login(struct gw_req *r)
{
    struct bkv_gateway *gw = r->gw;
    uint8_t record[BKV_OPAQUE_RECORD_LEN], aad[64];
    size_t len = 0, aad_len = 0;
    int rc;
    if (r->fake) {
        seal_aad("BKV-DUMMY-v1", r->account_key, aad, &aad_len);
        memset(aad + 12, 0, BKV_ACCOUNT_KEY_LEN);
        rc = hsm_count(gw, BKV_HSM_OP_UNSEAL,
                       bkv_hsm_unseal(gw->c.hsm, aad, aad_len, gw->dummy_sealed,
                                      gw->dummy_sealed_len, record, sizeof(record), &len));
        if (rc == BKV_OK)
            rc =
                bkv_opaque_fake_record(gw->fake_secret, r->msg.account, r->msg.account_len, record);
    } else {
        seal_aad("BKV-RECORD-v1", r->account_key, aad, &aad_len);
        rc = hsm_count(gw, BKV_HSM_OP_UNSEAL,
                       bkv_hsm_unseal(gw->c.hsm, aad, aad_len, r->sealed_record,
                                      r->sealed_record_len, record, sizeof(record), &len));
        if (rc == BKV_OK && len != BKV_OPAQUE_RECORD_LEN)
            rc = BKV_ERR_LENGTH;
    }
    if (rc == BKV_OK) {
        struct bkv_opaque_config oc = {gw->context, sizeof(gw->context), BKV_KSF_IDENTITY_PARAMS};
        struct bkv_opaque_ids ids = {r->msg.account, r->msg.account_len, NULL, 0};
        rc = RAND_bytes(r->session_id, sizeof(r->session_id)) == 1 ? BKV_OK : BKV_ERR_CRYPTO;
        if (rc == BKV_OK)
            rc = bkv_opaque_login_respond(&oc, gw->c.keys, record, sizeof(record), r->msg.account,
                                          r->msg.account_len, &ids, r->msg.payload,
                                          r->msg.payload_len, NULL, &r->login,
                                          r->payload + BKV_MSG_SESSION_ID_LEN, NULL);
    }
    if (rc == BKV_OK) {
        memcpy(r->payload, r->session_id, BKV_MSG_SESSION_ID_LEN);
        r->payload_len = BKV_MSG_SESSION_ID_LEN + BKV_OPAQUE_KE2_LEN;
    } else {
        r->work_rc = rc;
        gw_inner_status(r, rc == BKV_ERR_POINT ? BKV_MSG_BAD_REQUEST : BKV_MSG_UNAVAILABLE);
    }
    bkv_wipe(record, sizeof(record));
}

static void work_release(struct gw_req *r)
{
    uint8_t wrapped[BKV_MSG_WRAPPED_LEN], aad[64];
    size_t len = 0, aad_len = 0;
    seal_aad("BKV-WRAPPED-v1", r->account_key, aad, &aad_len);
    int rc = hsm_count(r->gw, BKV_HSM_OP_UNSEAL,
                       bkv_hsm_unseal(r->gw->c.hsm, aad, aad_len, r->sealed_wrapped,
                                      r->sealed_wrapped_len, wrapped, sizeof(wrapped), &len));
    if (rc == BKV_OK && len != BKV_MSG_WRAPPED_LEN)
        rc = BKV_ERR_LENGTH;
    if (rc == BKV_OK)
        rc = bkv_msg_release_seal(r->session_key, r->session_id, wrapped, r->payload);
    if (rc == BKV_OK) {
        r->payload_len = BKV_MSG_RELEASE_LEN;
        r->status = BKV_MSG_OK;
    } else {
        r->work_rc = rc;
        gw_inner_status(r, BKV_MSG_UNAVAILABLE);
    }
    bkv_wipe(wrapped, sizeof(wrapped));
}

void gw_work_cb(uv_work_t *w)
{
    struct gw_req *r = w->data;
    switch (r->stage) {
    case ST_OPEN:
        work_open(r);
        break;
    case ST_LOGIN:
        work_login(r);
        break;
    case ST_RELEASE:
        work_release(r);
        break;
    }
}
