/*
 * The gateway (gateway.h). A request moves through stages:
 *
 *   loop:   role check, router proof, envelope parse      -> 421/503/401/400
 *   worker: HSM DH + HPKE open, inner decode, account check, account MAC,
 *           the type's EC or HSM pre-work (registration response, sealing,
 *           point checks)
 *   loop:   propose the command and wait for its commit
 *   worker: (LOGIN_INIT) unseal the record, OPAQUE KE2; (LOGIN_FINISH) unseal
 *           the wrapped K and seal the release
 *   loop:   inner response, encapsulated under the request's HPKE export
 *
 * Failures before the envelope is open are plain HTTP errors; after it, they
 * are inner statuses the router cannot read. A proposal whose outcome is
 * unknown (leadership lost) answers 503 so the router retries the same
 * envelope: its request ids are derived from the content, so a retry cannot
 * count twice, and a retried LOGIN_INIT meets REPLAYED rather than a second
 * KE2. Nothing here logs a request byte, an account id or a secret.
 */
#include "node/gateway.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "consensus/store.h"
#include "hsm/decap.h"
#include "hsm/mac.h"
#include "hsm/p11.h"
#include "hsm/realm.h"
#include "hsm/seal.h"
#include "node/http.h"
#include "node/log.h"
#include "node/token.h"
#include "proto/err.h"
#include "proto/group.h"
#include "proto/kdf.h"
#include "proto/ohttp.h"
#include "proto/opaque.h"
#include "proto/util.h"

#define SEALED_RECORD_LEN  (BKV_OPAQUE_RECORD_LEN + BKV_HSM_SEAL_OVERHEAD)
#define SEALED_WRAPPED_LEN (BKV_MSG_WRAPPED_LEN + BKV_HSM_SEAL_OVERHEAD)
#define SESSION_BUCKETS    1024
#define KEM_P256           0x0010
#define KDF_SHA256         0x0001
#define AEAD_AES128        0x0001
#define AEAD_AES256        0x0002

struct session {
    struct session *next;
    uint8_t id[BKV_MSG_SESSION_ID_LEN];
    uint8_t account_key[BKV_ACCOUNT_KEY_LEN];
    struct bkv_opaque_login_server state; /* secret */
    uint8_t sealed_wrapped[SEALED_WRAPPED_LEN];
    size_t sealed_wrapped_len;
    uint64_t registration;
    uint32_t attempts, max_attempts;
    int fake; /* an unknown account: KE3 can only fail */
    uint64_t expires_ms;
};

struct bkv_gateway {
    struct bkv_gateway_config c;
    struct bkv_http_server *http;
    struct bkv_ohttp_key_config ohttp;
    uint8_t context[BKV_MSG_CONTEXT_LEN];
    uint8_t fake_secret[32];
    uint8_t ticket_key[32];
    uint8_t dummy_sealed[SEALED_RECORD_LEN]; /* unsealed on the fake path, for equal cost */
    size_t dummy_sealed_len;
    struct session *buckets[SESSION_BUCKETS];
    size_t n_sessions;
    size_t logins_inflight; /* LOGIN_INITs past their check, not yet answered */
    uv_timer_t sweep;
    unsigned inflight;
    int closing, http_closed, timer_closed;
    void (*close_cb)(void *);
    void *close_data;
    struct bkv_gateway_stats stats;
};

enum stage { ST_OPEN, ST_LOGIN, ST_RELEASE };

struct gw_req {
    struct bkv_gateway *gw;
    struct bkv_http_exchange *ex;
    uv_work_t work;
    enum stage stage;
    uint64_t start_ns;

    uint8_t envelope[BKV_OHTTP_MAX_REQUEST_LEN];
    size_t envelope_len;
    char account[BKV_MSG_ACCOUNT_MAX + 1];
    size_t account_len;

    /* After the envelope is open (secrets: wiped in req_free). */
    int opened;
    struct bkv_ohttp_state ost;
    uint8_t inner[BKV_MSG_REQUEST_LEN];
    struct bkv_msg_request msg;
    uint8_t account_key[BKV_ACCOUNT_KEY_LEN];

    /* The answer being built. */
    int http_status; /* != 0: a plain HTTP error, http_text its text */
    const char *http_text;
    enum bkv_msg_status status;
    uint32_t attempts_left, max_attempts;
    uint8_t payload[BKV_MSG_SESSION_ID_LEN + BKV_OPAQUE_KE2_LEN];
    size_t payload_len;

    /* Per-type work. */
    struct bkv_cmd cmd;
    struct bkv_raft_propose prop;
    uint8_t sealed_record[SEALED_RECORD_LEN];
    size_t sealed_record_len;
    uint8_t sealed_wrapped[SEALED_WRAPPED_LEN];
    size_t sealed_wrapped_len;
    int fake;
    enum bkv_msg_status decoy; /* non-zero: a decoy KE2 is computed, then this is answered */
    int login_slot;            /* counted in gw->logins_inflight */
    uint32_t attempts;
    uint64_t registration;
    struct bkv_opaque_login_server login;    /* secret */
    uint8_t session_key[BKV_OPAQUE_KEY_LEN]; /* secret */
    uint8_t session_id[BKV_MSG_SESSION_ID_LEN];
    int work_rc;
    uint64_t proposed_ns;
};

static void finish(struct gw_req *r);

const double bkv_hist_bounds[BKV_HIST_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                  0.1,    0.25,  0.5,    1,     2.5,  5};

void bkv_histogram_observe(struct bkv_histogram *h, double seconds)
{
    for (size_t i = 0; i < BKV_HIST_BUCKETS; i++)
        if (seconds <= bkv_hist_bounds[i]) {
            h->buckets[i]++;
            break;
        }
    h->count++;
    h->sum += seconds;
}

/* An HSM call's outcome, counted from any thread. */
static int hsm_count(struct bkv_gateway *gw, enum bkv_hsm_op op, int rc)
{
    __atomic_fetch_add(&gw->stats.hsm_ops[op], 1, __ATOMIC_RELAXED);
    if (rc != BKV_OK && rc != BKV_ERR_DECRYPT)
        __atomic_fetch_add(&gw->stats.hsm_errors[op], 1, __ATOMIC_RELAXED);
    return rc;
}
static void respond_not_leader(struct bkv_gateway *gw, struct bkv_http_exchange *ex);

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* --- sessions (loop thread) ------------------------------------------------ */

/*
 * Sessions hash by account key (an HMAC output, so uniform): a LOGIN_FINISH
 * names its account, and dropping an account's older session at the next
 * LOGIN_INIT looks at one bucket, not at every session.
 */
static size_t bucket_of(const uint8_t account_key[static BKV_ACCOUNT_KEY_LEN])
{
    return ((size_t)account_key[0] << 8 | account_key[1]) % SESSION_BUCKETS;
}

static void session_free(struct session *s)
{
    OPENSSL_cleanse(s, sizeof(*s));
    free(s);
}

static void sessions_clear(struct bkv_gateway *gw)
{
    for (size_t b = 0; b < SESSION_BUCKETS; b++) {
        while (gw->buckets[b] != NULL) {
            struct session *s = gw->buckets[b];
            gw->buckets[b] = s->next;
            session_free(s);
        }
    }
    gw->n_sessions = 0;
    gw->stats.sessions = 0;
}

/* Remove and return the session with this id and account, or NULL. */
static struct session *session_take(struct bkv_gateway *gw, const uint8_t *id,
                                    const uint8_t *account_key)
{
    struct session **pp = &gw->buckets[bucket_of(account_key)];
    for (; *pp != NULL; pp = &(*pp)->next) {
        struct session *s = *pp;
        if (!bkv_ct_equal(s->id, id, BKV_MSG_SESSION_ID_LEN) ||
            !bkv_ct_equal(s->account_key, account_key, BKV_ACCOUNT_KEY_LEN))
            continue;
        *pp = s->next;
        gw->n_sessions--;
        gw->stats.sessions = gw->n_sessions;
        if (s->expires_ms < now_ms()) {
            session_free(s);
            return NULL;
        }
        return s;
    }
    return NULL;
}

static void sweep_cb(uv_timer_t *t)
{
    struct bkv_gateway *gw = t->data;
    uint64_t now = now_ms();
    for (size_t b = 0; b < SESSION_BUCKETS; b++) {
        struct session **pp = &gw->buckets[b];
        while (*pp != NULL) {
            struct session *s = *pp;
            if (s->expires_ms < now) {
                *pp = s->next;
                gw->n_sessions--;
                session_free(s);
            } else {
                pp = &s->next;
            }
        }
    }
    gw->stats.sessions = gw->n_sessions;
}

/* Drop every session of this account: one login at a time per account. */
static void sessions_drop_account(struct bkv_gateway *gw, const uint8_t *account_key)
{
    struct session **pp = &gw->buckets[bucket_of(account_key)];
    while (*pp != NULL) {
        struct session *s = *pp;
        if (bkv_ct_equal(s->account_key, account_key, BKV_ACCOUNT_KEY_LEN)) {
            *pp = s->next;
            gw->n_sessions--;
            session_free(s);
        } else {
            pp = &s->next;
        }
    }
}

void bkv_gateway_role_changed(struct bkv_gateway *gw, enum bkv_raft_role role)
{
    if (gw != NULL && role != BKV_RAFT_LEADER_READY && gw->n_sessions > 0) {
        bkv_log(BKV_LOG_INFO, "gateway: no longer a ready leader; %zu login session(s) dropped",
                gw->n_sessions);
        sessions_clear(gw);
    }
}

/* --- helpers ------------------------------------------------------------------ */

/* id = SHA-256(label || parts...)[0..16]: the content-derived request id (cmd.h). */
static int derive_request_id(const char *label, const struct bkv_buf *parts, size_t n,
                             uint8_t out[static BKV_REQUEST_ID_LEN])
{
    struct bkv_buf all[6];
    uint8_t h[BKV_HASH_LEN];
    if (n > 5)
        return BKV_ERR_INVALID;
    all[0] = (struct bkv_buf){(const uint8_t *)label, strlen(label)};
    for (size_t i = 0; i < n; i++)
        all[i + 1] = parts[i];
    int rc = bkv_sha256(all, n + 1, h);
    if (rc == BKV_OK)
        memcpy(out, h, BKV_REQUEST_ID_LEN);
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

/* --- registration tickets (proto/msg.h) ------------------------------------------ */

#define TICKET_TTL_S 600

/*
 * mac = HMAC(ticket key, label || account key || expiry || the account's row state);
 * *registration is the row's registration (0: no row), which REG_FINISH's REGISTER
 * then expects (a compare-and-set in the state machine, consensus/cmd.h).
 */
static int ticket_mac(struct bkv_gateway *gw, const uint8_t *account_key, const uint8_t *expiry,
                      uint8_t mac[static BKV_HASH_LEN], uint64_t *registration)
{
    struct bkv_store_record rec;
    int found = 0;
    uint8_t state[14] = {0};
    int rc = bkv_store_get(bkv_raft_store(gw->c.raft), account_key, &rec, &found);
    if (rc != BKV_OK)
        return rc;
    *registration = found ? rec.registration : 0;
    if (found) {
        bkv_put_u64(state, rec.registration);
        state[8] = (uint8_t)(rec.attempts >> 24);
        state[9] = (uint8_t)(rec.attempts >> 16);
        state[10] = (uint8_t)(rec.attempts >> 8);
        state[11] = (uint8_t)rec.attempts;
        state[12] = (uint8_t)rec.live;
        state[13] = 1;
        bkv_store_record_free(&rec);
    }
    static const char label[] = "BKV-REG-TICKET-v1";
    struct bkv_buf parts[] = {{(const uint8_t *)label, sizeof(label) - 1},
                              {account_key, BKV_ACCOUNT_KEY_LEN},
                              {expiry, 8},
                              {state, sizeof(state)}};
    return bkv_hmac_sha256(gw->ticket_key, sizeof(gw->ticket_key), parts, 4, mac);
}

static int ticket_make(struct bkv_gateway *gw, const uint8_t *account_key,
                       uint8_t ticket[static BKV_MSG_TICKET_LEN])
{
    uint8_t mac[BKV_HASH_LEN];
    uint64_t registration;
    bkv_put_u64(ticket, (uint64_t)time(NULL) + TICKET_TTL_S);
    int rc = ticket_mac(gw, account_key, ticket, mac, &registration);
    if (rc == BKV_OK)
        memcpy(ticket + 8, mac, BKV_MSG_TICKET_LEN - 8);
    return rc;
}

/*
 * BKV_OK if the ticket is unexpired and the account's row is as it was at REG_INIT;
 * *registration is then that row's registration (0: no row).
 */
static int ticket_check(struct bkv_gateway *gw, const uint8_t *account_key,
                        const uint8_t ticket[static BKV_MSG_TICKET_LEN], uint64_t *registration)
{
    uint8_t mac[BKV_HASH_LEN];
    uint64_t now = (uint64_t)time(NULL), expiry = bkv_get_u64(ticket);
    if (expiry < now || expiry > now + TICKET_TTL_S + 60)
        return BKV_ERR_LIMIT;
    int rc = ticket_mac(gw, account_key, ticket, mac, registration);
    if (rc != BKV_OK)
        return rc;
    return bkv_ct_equal(mac, ticket + 8, BKV_MSG_TICKET_LEN - 8) ? BKV_OK : BKV_ERR_MAC;
}

static void http_error(struct gw_req *r, int status, const char *text)
{
    r->http_status = status;
    r->http_text = text;
}

static void inner_status(struct gw_req *r, enum bkv_msg_status st)
{
    r->status = st;
    r->payload_len = 0;
}

static void queue(struct gw_req *r, enum stage st);

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
            http_error(r, 400, "the envelope does not open with this realm's key");
        else if (rc == BKV_ERR_UNSUPPORTED)
            http_error(r, 400, "malformed envelope: unknown key id or unsupported suite");
        else if (rc == BKV_ERR_POINT || rc == BKV_ERR_LENGTH || rc == BKV_ERR_FORMAT)
            http_error(r, 400, "malformed envelope: truncated, or not a valid P-256 point");
        else {
            http_error(r, 500, "the HSM failed to open the envelope; see the node's log");
            r->work_rc = rc;
        }
        return;
    }
    r->opened = 1;
    if (bkv_msg_request_decode(r->inner, len, &r->msg) != BKV_OK) {
        http_error(r, 400, "the envelope holds no valid BKV message");
        return;
    }
    if (r->msg.account_len != r->account_len ||
        memcmp(r->msg.account, r->account, r->account_len) != 0) {
        http_error(r, 403, "the account in the envelope is not the one the router attested");
        return;
    }
    rc = hsm_count(
        gw, BKV_HSM_OP_MAC,
        bkv_hsm_account_mac(gw->c.hsm, r->msg.account, r->msg.account_len, r->account_key));
    if (rc != BKV_OK) {
        r->work_rc = rc;
        inner_status(r, BKV_MSG_UNAVAILABLE);
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
            inner_status(r, rc == BKV_ERR_POINT || rc == BKV_ERR_LENGTH ? BKV_MSG_BAD_REQUEST
                                                                        : BKV_MSG_UNAVAILABLE);
        break;
    case BKV_MSG_REG_FINISH: {
        const uint8_t *wrapped = p + BKV_OPAQUE_RECORD_LEN;
        if (bkv_p256_element_check(p, BKV_P256_ELEMENT_LEN) != BKV_OK) {
            inner_status(r, BKV_MSG_BAD_REQUEST);
            break;
        }
        struct bkv_buf parts[] = {{r->account_key, BKV_ACCOUNT_KEY_LEN},
                                  {r->msg.request_id, BKV_MSG_REQUEST_ID_LEN},
                                  {p, r->msg.payload_len}};
        rc = derive_request_id("BKV-REQ-REGISTER-v1", parts, 3, r->cmd.request_id);
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
            inner_status(r, BKV_MSG_UNAVAILABLE);
        }
        break;
    }
    case BKV_MSG_LOGIN_INIT: {
        /* KE1 = blinded element (33) || nonce (32) || client keyshare (33). */
        if (bkv_p256_element_check(p, BKV_P256_ELEMENT_LEN) != BKV_OK ||
            bkv_p256_element_check(p + 65, BKV_P256_ELEMENT_LEN) != BKV_OK) {
            inner_status(r, BKV_MSG_BAD_REQUEST);
            break;
        }
        struct bkv_buf parts[] = {{r->account_key, BKV_ACCOUNT_KEY_LEN},
                                  {r->msg.request_id, BKV_MSG_REQUEST_ID_LEN},
                                  {p, r->msg.payload_len}};
        rc = derive_request_id("BKV-REQ-ATTEMPT-v1", parts, 3, r->cmd.request_id);
        if (rc != BKV_OK)
            inner_status(r, BKV_MSG_UNAVAILABLE);
        break;
    }
    case BKV_MSG_LOGIN_FINISH:
        break;
    case BKV_MSG_DELETE: {
        struct bkv_buf parts[] = {{r->account_key, BKV_ACCOUNT_KEY_LEN},
                                  {r->msg.request_id, BKV_MSG_REQUEST_ID_LEN}};
        rc = derive_request_id("BKV-REQ-DELETE-v1", parts, 2, r->cmd.request_id);
        if (rc != BKV_OK)
            inner_status(r, BKV_MSG_UNAVAILABLE);
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
        inner_status(r, rc == BKV_ERR_POINT ? BKV_MSG_BAD_REQUEST : BKV_MSG_UNAVAILABLE);
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
        inner_status(r, BKV_MSG_UNAVAILABLE);
    }
    bkv_wipe(wrapped, sizeof(wrapped));
}

static void work_cb(uv_work_t *w)
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

/* --- loop stages ------------------------------------------------------------------ */

static int propose(struct gw_req *r, enum bkv_cmd_type type, bkv_raft_propose_cb cb);

/* Called first in every proposal callback. */
static void committed(struct gw_req *r, int status, const struct bkv_cmd_result *res, size_t n)
{
    struct bkv_gateway_stats *st = &r->gw->stats;
    if (status != BKV_OK || n != 1)
        return;
    bkv_histogram_observe(&st->commit, (double)(now_ns() - r->proposed_ns) / 1e9);
    if (res[0].replayed)
        return;
    if (res[0].status == BKV_CMD_COUNTED)
        st->attempts++;
    else if (res[0].status == BKV_CMD_REGISTERED)
        st->registrations++;
}

/* Map a proposal failure to the HTTP answer the router acts on. */
static void propose_failed(struct gw_req *r, int rc)
{
    switch (rc) {
    case BKV_ERR_NOT_LEADER:
        http_error(r, 421, "this node is no longer the leader");
        break;
    case BKV_ERR_NOT_READY:
    case BKV_ERR_LEADERSHIP_LOST:
    case BKV_ERR_SHUTDOWN:
        http_error(r, 503, "leadership changed before the commit; retry");
        break;
    case BKV_ERR_NOSPACE:
        http_error(r, 507, "the node's disk is full");
        break;
    default:
        bkv_log(BKV_LOG_ERROR, "gateway: proposal failed: %s", bkv_strerror(rc));
        http_error(r, 500, "the node failed to commit; see its log");
        break;
    }
}

static void after_register(struct bkv_raft_propose *p, int status, const struct bkv_cmd_result *res,
                           size_t n)
{
    struct gw_req *r = p->data;
    committed(r, status, res, n);
    if (status != BKV_OK || n != 1) {
        propose_failed(r, status != BKV_OK ? status : BKV_ERR_RAFT);
    } else if (res[0].status == BKV_CMD_REGISTERED) {
        r->status = BKV_MSG_OK;
        r->max_attempts = r->attempts_left = res[0].max_attempts;
    } else if (res[0].status == BKV_CMD_STALE) {
        /* Another registration of the account committed after this ticket's REG_INIT. */
        inner_status(r, BKV_MSG_SESSION_UNKNOWN);
    } else {
        inner_status(r, BKV_MSG_UNAVAILABLE);
    }
    finish(r);
}

static void after_delete(struct bkv_raft_propose *p, int status, const struct bkv_cmd_result *res,
                         size_t n)
{
    struct gw_req *r = p->data;
    committed(r, status, res, n);
    if (status != BKV_OK || n != 1)
        propose_failed(r, status != BKV_OK ? status : BKV_ERR_RAFT);
    else
        inner_status(r, res[0].status == BKV_CMD_DELETED ? BKV_MSG_OK : BKV_MSG_NOT_REGISTERED);
    finish(r);
}

/*
 * The login work of a live record on the fake record: the same store read, then
 * the KE2 stage. decoy BKV_MSG_OK sends the fake KE2 (an unknown account);
 * any other status throws it away and answers that status.
 */
static void login_fake(struct gw_req *r, enum bkv_msg_status decoy)
{
    struct bkv_store_record rec;
    int found = 0;
    if (bkv_store_get(bkv_raft_store(r->gw->c.raft), r->account_key, &rec, &found) == BKV_OK &&
        found)
        bkv_store_record_free(&rec);
    r->fake = 1;
    r->decoy = decoy;
    queue(r, ST_LOGIN);
}

static void after_attempt(struct bkv_raft_propose *p, int status, const struct bkv_cmd_result *res,
                          size_t n)
{
    struct gw_req *r = p->data;
    committed(r, status, res, n);
    struct bkv_gateway *gw = r->gw;
    if (status != BKV_OK || n != 1) {
        propose_failed(r, status != BKV_OK ? status : BKV_ERR_RAFT);
        finish(r);
        return;
    }
    r->max_attempts = res[0].max_attempts;
    switch (res[0].status) {
    case BKV_CMD_COUNTED:
        if (res[0].replayed) {
            /* Counted before: its KE2 (if any) went out then. No second KE2. */
            inner_status(r, BKV_MSG_REPLAYED);
            break;
        }
        {
            struct bkv_store_record rec;
            int found = 0;
            int rc = bkv_store_get(bkv_raft_store(gw->c.raft), r->account_key, &rec, &found);
            if (rc != BKV_OK || !found || !rec.live || rec.record_len > sizeof(r->sealed_record) ||
                rec.wrapped_len > sizeof(r->sealed_wrapped)) {
                if (rc == BKV_OK)
                    inner_status(r, found ? BKV_MSG_DESTROYED : BKV_MSG_NOT_REGISTERED);
                else
                    inner_status(r, BKV_MSG_UNAVAILABLE);
                if (rc == BKV_OK && found)
                    bkv_store_record_free(&rec);
                break;
            }
            if (rec.registration != res[0].registration) {
                /* Re-registered in the same commit batch: this ATTEMPT counted the old one. */
                bkv_store_record_free(&rec);
                inner_status(r, BKV_MSG_SESSION_UNKNOWN);
                break;
            }
            memcpy(r->sealed_record, rec.record, rec.record_len);
            r->sealed_record_len = rec.record_len;
            memcpy(r->sealed_wrapped, rec.wrapped, rec.wrapped_len);
            r->sealed_wrapped_len = rec.wrapped_len;
            bkv_store_record_free(&rec);
        }
        r->attempts = res[0].attempts;
        r->registration = res[0].registration;
        r->attempts_left = r->max_attempts > r->attempts ? r->max_attempts - r->attempts : 0;
        queue(r, ST_LOGIN);
        return;
    case BKV_CMD_NOT_FOUND:
        /* An unknown account: the same commit, the same read and unseal (of a dummy), then a
         * fake KE2 of the same form. */
        r->max_attempts = gw->c.cfg->max_attempts;
        r->attempts = 1;
        r->attempts_left = r->max_attempts - 1;
        login_fake(r, BKV_MSG_OK);
        return;
    case BKV_CMD_DESTROYED:
        /* A destroyed record: the same read and the same KE2 work as a live login (a decoy,
         * thrown away), then DESTROYED, so a router timing answers cannot tell them apart. */
        login_fake(r, BKV_MSG_DESTROYED);
        return;
    default:
        inner_status(r, BKV_MSG_UNAVAILABLE);
        break;
    }
    finish(r);
}

/* After KE2 was computed: keep the session, then answer. */
static void login_ready(struct gw_req *r)
{
    struct bkv_gateway *gw = r->gw;
    if (r->decoy != 0) {
        bkv_opaque_login_server_wipe(&r->login);
        inner_status(r, r->decoy);
        finish(r);
        return;
    }
    if (r->status != BKV_MSG_OK) {
        finish(r);
        return;
    }
    if (gw->closing || bkv_raft_role(gw->c.raft) != BKV_RAFT_LEADER_READY) {
        /* Counted, but no KE3 could be checked here: no KE2; the client starts over. */
        bkv_opaque_login_server_wipe(&r->login);
        inner_status(r, BKV_MSG_SESSION_UNKNOWN);
        finish(r);
        return;
    }
    struct session *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        bkv_opaque_login_server_wipe(&r->login);
        inner_status(r, BKV_MSG_UNAVAILABLE);
        finish(r);
        return;
    }
    sessions_drop_account(gw, r->account_key);
    memcpy(s->id, r->session_id, sizeof(s->id));
    memcpy(s->account_key, r->account_key, sizeof(s->account_key));
    s->state = r->login;
    bkv_opaque_login_server_wipe(&r->login);
    memcpy(s->sealed_wrapped, r->sealed_wrapped, r->sealed_wrapped_len);
    s->sealed_wrapped_len = r->sealed_wrapped_len;
    s->registration = r->registration;
    s->attempts = r->attempts;
    s->max_attempts = r->max_attempts;
    s->fake = r->fake;
    s->expires_ms = now_ms() + (uint64_t)gw->c.cfg->login_timeout_s * 1000;
    size_t b = bucket_of(s->account_key);
    s->next = gw->buckets[b];
    gw->buckets[b] = s;
    gw->n_sessions++;
    gw->stats.sessions = gw->n_sessions;
    gw->stats.ke2_sent++;
    finish(r);
}

static void after_success(struct bkv_raft_propose *p, int status, const struct bkv_cmd_result *res,
                          size_t n)
{
    struct gw_req *r = p->data;
    committed(r, status, res, n);
    if (status != BKV_OK || n != 1) {
        propose_failed(r, status != BKV_OK ? status : BKV_ERR_RAFT);
        finish(r);
        return;
    }
    switch (res[0].status) {
    case BKV_CMD_RESET:
        /* The counter is back to 0: the whole limit is left (the session knows the limit). */
        if (res[0].max_attempts != 0)
            r->max_attempts = res[0].max_attempts;
        r->attempts_left = r->max_attempts;
        queue(r, ST_RELEASE);
        return;
    case BKV_CMD_STALE:
        inner_status(r, BKV_MSG_SESSION_UNKNOWN); /* re-registered meanwhile: start over */
        break;
    case BKV_CMD_DESTROYED:
        inner_status(r, BKV_MSG_DESTROYED);
        break;
    case BKV_CMD_NOT_FOUND:
        inner_status(r, BKV_MSG_NOT_REGISTERED);
        break;
    default:
        inner_status(r, BKV_MSG_UNAVAILABLE);
        break;
    }
    finish(r);
}

/* A wrong KE3 at the limit: the ATTEMPT that destroys the record, committed now. */
static void after_exhaust(struct bkv_raft_propose *p, int status, const struct bkv_cmd_result *res,
                          size_t n)
{
    struct gw_req *r = p->data;
    committed(r, status, res, n);
    /* Whatever happened, the answer is about the password: it was wrong. */
    if (status == BKV_OK && n == 1 && res[0].status == BKV_CMD_DESTROYED) {
        inner_status(r, BKV_MSG_DESTROYED);
        r->gw->stats.lockouts++;
    } else
        inner_status(r, BKV_MSG_WRONG_PASSWORD);
    r->attempts_left = 0;
    finish(r);
}

static void login_finish(struct gw_req *r)
{
    struct bkv_gateway *gw = r->gw;
    const uint8_t *sid = r->msg.payload, *ke3 = r->msg.payload + BKV_MSG_SESSION_ID_LEN;
    if (gw->closing) {
        http_error(r, 503, "the node is shutting down");
        finish(r);
        return;
    }
    struct session *s = session_take(gw, sid, r->account_key);
    if (s == NULL) {
        inner_status(r, BKV_MSG_SESSION_UNKNOWN);
        finish(r);
        return;
    }
    int rc = bkv_opaque_login_verify(&s->state, ke3, BKV_OPAQUE_KE3_LEN, r->session_key);
    memcpy(r->session_id, s->id, sizeof(r->session_id));
    r->max_attempts = s->max_attempts;
    r->attempts_left = s->max_attempts > s->attempts ? s->max_attempts - s->attempts : 0;
    if (s->fake) {
        inner_status(r, BKV_MSG_NOT_REGISTERED);
        r->attempts_left = r->max_attempts = 0;
    } else if (rc != BKV_OK) {
        inner_status(r, BKV_MSG_WRONG_PASSWORD);
        if (r->attempts_left == 0) {
            struct bkv_buf parts[] = {{s->account_key, BKV_ACCOUNT_KEY_LEN},
                                      {s->id, BKV_MSG_SESSION_ID_LEN}};
            if (derive_request_id("BKV-REQ-EXHAUST-v1", parts, 2, r->cmd.request_id) == BKV_OK &&
                propose(r, BKV_CMD_ATTEMPT, after_exhaust) == BKV_OK) {
                session_free(s);
                return;
            }
        }
    } else {
        struct bkv_buf parts[] = {{s->account_key, BKV_ACCOUNT_KEY_LEN},
                                  {s->id, BKV_MSG_SESSION_ID_LEN}};
        memcpy(r->sealed_wrapped, s->sealed_wrapped, s->sealed_wrapped_len);
        r->sealed_wrapped_len = s->sealed_wrapped_len;
        r->cmd.registration = s->registration;
        rc = derive_request_id("BKV-REQ-SUCCESS-v1", parts, 2, r->cmd.request_id);
        if (rc == BKV_OK)
            rc = propose(r, BKV_CMD_SUCCESS, after_success);
        if (rc == BKV_OK) {
            session_free(s);
            return;
        }
        propose_failed(r, rc);
    }
    session_free(s);
    finish(r);
}

static void after_open(struct gw_req *r)
{
    struct bkv_gateway *gw = r->gw;
    if (r->http_status != 0 || r->status != BKV_MSG_OK) {
        finish(r);
        return;
    }
    if (gw->closing) {
        http_error(r, 503, "the node is shutting down");
        finish(r);
        return;
    }
    int rc = BKV_OK;
    switch (r->msg.type) {
    case BKV_MSG_REG_INIT:
        if (ticket_make(gw, r->account_key, r->payload + BKV_OPAQUE_REG_RESPONSE_LEN) != BKV_OK)
            inner_status(r, BKV_MSG_UNAVAILABLE);
        else
            r->payload_len = BKV_OPAQUE_REG_RESPONSE_LEN + BKV_MSG_TICKET_LEN;
        finish(r);
        return;
    case BKV_MSG_REG_FINISH:
        rc = ticket_check(gw, r->account_key,
                          r->msg.payload + BKV_OPAQUE_RECORD_LEN + BKV_MSG_WRAPPED_LEN,
                          &r->cmd.registration);
        if (rc != BKV_OK) {
            /* Expired, or the account changed since REG_INIT (or an old REG_FINISH replayed). */
            inner_status(r, rc == BKV_ERR_MAC || rc == BKV_ERR_LIMIT ? BKV_MSG_SESSION_UNKNOWN
                                                                     : BKV_MSG_UNAVAILABLE);
            finish(r);
            return;
        }
        r->cmd.conditional = 1; /* applies only to the row the ticket saw */
        r->cmd.record = r->sealed_record;
        r->cmd.record_len = r->sealed_record_len;
        r->cmd.wrapped = r->sealed_wrapped;
        r->cmd.wrapped_len = r->sealed_wrapped_len;
        rc = propose(r, BKV_CMD_REGISTER, after_register);
        break;
    case BKV_MSG_LOGIN_INIT:
        /* Reserve the session slot before anything is counted. */
        if (gw->n_sessions + gw->logins_inflight >= gw->c.cfg->max_sessions) {
            http_error(r, 503, "too many logins in flight on this node; retry shortly");
            finish(r);
            return;
        }
        gw->logins_inflight++;
        r->login_slot = 1;
        rc = propose(r, BKV_CMD_ATTEMPT, after_attempt);
        break;
    case BKV_MSG_LOGIN_FINISH:
        login_finish(r);
        return;
    case BKV_MSG_DELETE:
        rc = propose(r, BKV_CMD_DELETE, after_delete);
        break;
    }
    if (rc != BKV_OK) {
        propose_failed(r, rc);
        finish(r);
    }
}

static void after_work_cb(uv_work_t *w, int status)
{
    struct gw_req *r = w->data;
    if (status != 0) {
        http_error(r, 503, "the node is shutting down");
        finish(r);
        return;
    }
    if (r->work_rc >= BKV_ERR_HSM_MODULE && r->work_rc <= BKV_ERR_HSM)
        bkv_log(BKV_LOG_ERROR, "gateway: %s", bkv_hsm_errmsg(r->gw->c.hsm));
    else if (r->work_rc != BKV_OK)
        bkv_log(BKV_LOG_ERROR, "gateway: %s", bkv_strerror(r->work_rc));
    switch (r->stage) {
    case ST_OPEN:
        after_open(r);
        break;
    case ST_LOGIN:
        login_ready(r);
        break;
    case ST_RELEASE:
        if (r->status == BKV_MSG_OK)
            r->gw->stats.keys_released++;
        finish(r);
        break;
    }
}

static void queue(struct gw_req *r, enum stage st)
{
    r->stage = st;
    r->work_rc = BKV_OK;
    r->work.data = r;
    int rc = uv_queue_work(r->gw->c.loop, &r->work, work_cb, after_work_cb);
    if (rc != 0) {
        http_error(r, 500, "cannot queue work");
        finish(r);
    }
}

static int propose(struct gw_req *r, enum bkv_cmd_type type, bkv_raft_propose_cb cb)
{
    r->proposed_ns = now_ns();
    r->cmd.type = type;
    memcpy(r->cmd.account, r->account_key, BKV_ACCOUNT_KEY_LEN);
    r->prop.data = r;
    return bkv_raft_propose(r->gw->c.raft, &r->prop, &r->cmd, 1, cb);
}

/* --- answering ----------------------------------------------------------------- */

static void req_free(struct gw_req *r)
{
    bkv_ohttp_state_wipe(&r->ost);
    bkv_opaque_login_server_wipe(&r->login);
    OPENSSL_cleanse(r, sizeof(*r));
    free(r);
}

static void maybe_closed(struct bkv_gateway *gw);

static void finish(struct gw_req *r)
{
    struct bkv_gateway *gw = r->gw;
    uint8_t inner[BKV_MSG_RESPONSE_LEN], out[BKV_MSG_RESPONSE_LEN + 64];
    size_t out_len = 0;
    if (r->http_status == 0 && !r->opened)
        http_error(r, 500, "internal error");
    if (r->http_status == 0) {
        struct bkv_msg_response m = {
            .type = r->msg.type,
            .status = r->status,
            .attempts_left = r->attempts_left,
            .max_attempts = r->max_attempts,
            .payload = r->payload,
            .payload_len = r->status == BKV_MSG_OK ? r->payload_len : 0,
        };
        memcpy(m.request_id, r->msg.request_id, BKV_MSG_REQUEST_ID_LEN);
        int rc = bkv_msg_response_encode(&m, inner);
        if (rc == BKV_OK)
            rc = bkv_ohttp_response_encap(&r->ost, NULL, inner, sizeof(inner), out, sizeof(out),
                                          &out_len);
        if (rc != BKV_OK) {
            bkv_log(BKV_LOG_ERROR, "gateway: cannot build the response: %s", bkv_strerror(rc));
            http_error(r, 500, "cannot build the response");
        }
    }
    double ms = (double)(now_ns() - r->start_ns) / 1e6;
    if (r->login_slot) {
        gw->logins_inflight--;
        r->login_slot = 0;
    }
    if (r->http_status == 421) {
        respond_not_leader(gw, r->ex);
    } else if (r->http_status == 0) {
        static const struct bkv_http_header ct[] = {{"Content-Type", "message/bkv-response"}};
        bkv_http_respond(r->ex, 200, ct, 1, out, out_len);
        gw->stats.requests[r->msg.type][r->status]++;
        bkv_histogram_observe(&gw->stats.latency[r->msg.type], ms / 1e3);
        /* Debug only: the inner status is what the envelope hides from the router. */
        bkv_log(BKV_LOG_DEBUG, "gateway: %s %s (%.1f ms)", bkv_msg_type_name(r->msg.type),
                bkv_msg_status_name(r->status), ms);
    } else {
        char retry[] = "1";
        struct bkv_http_header h[] = {{"Retry-After", retry}};
        int st = r->http_status;
        bkv_http_respond_text(r->ex, st, h, st == 503 ? 1 : 0, r->http_text);
        gw->stats.http_errors[st == 400   ? GW_ERR_400
                              : st == 401 ? GW_ERR_401
                              : st == 403 ? GW_ERR_403
                              : st == 421 ? GW_ERR_421
                              : st == 503 ? GW_ERR_503
                                          : GW_ERR_5XX]++;
        bkv_log(st >= 500 && st != 503 ? BKV_LOG_WARN : BKV_LOG_INFO,
                "gateway: HTTP %d: %s (%.1f ms)", st, r->http_text, ms);
    }
    bkv_wipe(inner, sizeof(inner));
    req_free(r);
    gw->inflight--;
    maybe_closed(gw);
}

static void respond_not_leader(struct bkv_gateway *gw, struct bkv_http_exchange *ex)
{
    uint64_t id = 0;
    const char *addr = NULL;
    enum bkv_raft_role role = bkv_raft_role(gw->c.raft);
    bkv_raft_leader(gw->c.raft, &id, &addr);
    const struct bkv_conf_member *m = id != 0 ? bkv_node_config_member(gw->c.cfg, id) : NULL;
    if (role == BKV_RAFT_LEADER || role == BKV_RAFT_UNAVAILABLE || m == NULL ||
        id == gw->c.cfg->id) {
        struct bkv_http_header h[] = {{"Retry-After", "1"}};
        bkv_http_respond_text(ex, 503, h, 1,
                              role == BKV_RAFT_LEADER
                                  ? "a new leader is committing its barrier; retry"
                                  : "no leader is known yet (election in progress); retry");
        gw->stats.http_errors[GW_ERR_503]++;
        return;
    }
    char idtxt[24];
    snprintf(idtxt, sizeof(idtxt), "%llu", (unsigned long long)id);
    struct bkv_http_header h[] = {{"X-BKV-Leader-Id", idtxt}, {"X-BKV-Leader", m->gateway}};
    bkv_http_respond_text(ex, 421, h, 2, "this node is not the leader; ask the one named");
    gw->stats.http_errors[GW_ERR_421]++;
}

static void handle(struct bkv_http_exchange *ex, const struct bkv_http_request *req, void *data)
{
    struct bkv_gateway *gw = data;
    const struct bkv_http_header *hd = req->headers;
    size_t nh = req->n_headers;
    if (strcmp(req->path, "/v1/vault") != 0) {
        bkv_http_respond_text(ex, 404, NULL, 0, "no such path; the gateway serves POST /v1/vault");
        return;
    }
    if (strcmp(req->method, "POST") != 0) {
        struct bkv_http_header h[] = {{"Allow", "POST"}};
        bkv_http_respond_text(ex, 405, h, 1, "use POST");
        return;
    }
    if (gw->closing) {
        struct bkv_http_header h[] = {{"Retry-After", "1"}};
        bkv_http_respond_text(ex, 503, h, 1, "the node is shutting down");
        return;
    }
    const char *account = bkv_http_header_get(hd, nh, "x-bkv-account");
    const char *when = bkv_http_header_get(hd, nh, "x-bkv-router-time");
    const char *proof = bkv_http_header_get(hd, nh, "x-bkv-router-proof");
    if (account == NULL || when == NULL || proof == NULL ||
        bkv_router_proof_verify(gw->c.proof_key, req->method, req->path, account, when, proof,
                                req->body, req->body_len, (uint64_t)time(NULL)) != BKV_OK) {
        bkv_http_respond_text(ex, 401, NULL, 0,
                              "missing or invalid router proof; only a BKV router may call");
        gw->stats.http_errors[GW_ERR_401]++;
        return;
    }
    /* Only routers learn who leads. */
    if (bkv_raft_role(gw->c.raft) != BKV_RAFT_LEADER_READY) {
        respond_not_leader(gw, ex);
        return;
    }
    size_t alen = strlen(account);
    if (!bkv_msg_account_valid((const uint8_t *)account, alen)) {
        bkv_http_respond_text(ex, 400, NULL, 0, "the attested account is not a valid account id");
        gw->stats.http_errors[GW_ERR_400]++;
        return;
    }
    /* The envelope is parsed (its enc point checked) on the worker, with the decapsulation. */
    if (req->body_len != bkv_ohttp_request_len(KEM_P256, BKV_MSG_REQUEST_LEN)) {
        bkv_http_respond_text(ex, 400, NULL, 0,
                              "malformed envelope: an encapsulated BKV request has 600 bytes");
        gw->stats.http_errors[GW_ERR_400]++;
        return;
    }
    struct gw_req *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        bkv_http_respond_text(ex, 500, NULL, 0, "out of memory");
        return;
    }
    r->gw = gw;
    r->ex = ex;
    r->start_ns = now_ns();
    memcpy(r->envelope, req->body, req->body_len);
    r->envelope_len = req->body_len;
    memcpy(r->account, account, alen + 1);
    r->account_len = alen;
    r->status = BKV_MSG_OK;
    gw->inflight++;
    queue(r, ST_OPEN);
}

/* --- life cycle ------------------------------------------------------------------ */

static void maybe_closed(struct bkv_gateway *gw)
{
    if (!gw->closing || gw->inflight > 0 || !gw->http_closed || !gw->timer_closed)
        return;
    void (*cb)(void *) = gw->close_cb;
    void *data = gw->close_data;
    sessions_clear(gw);
    OPENSSL_cleanse(gw, sizeof(*gw));
    free(gw);
    if (cb != NULL)
        cb(data);
}

static void http_closed_cb(void *data)
{
    struct bkv_gateway *gw = data;
    gw->http_closed = 1;
    maybe_closed(gw);
}

static void timer_closed_cb(uv_handle_t *h)
{
    struct bkv_gateway *gw = h->data;
    gw->timer_closed = 1;
    maybe_closed(gw);
}

void bkv_gateway_close(struct bkv_gateway *gw, void (*cb)(void *data), void *data)
{
    gw->closing = 1;
    gw->close_cb = cb;
    gw->close_data = data;
    sessions_clear(gw);
    uv_close((uv_handle_t *)&gw->sweep, timer_closed_cb);
    bkv_http_server_close(gw->http, http_closed_cb, gw);
}

const struct bkv_gateway_stats *bkv_gateway_stats(const struct bkv_gateway *gw)
{
    return &gw->stats;
}

int bkv_gateway_start(const struct bkv_gateway_config *cfg, struct bkv_gateway **out, char *err,
                      size_t err_cap)
{
    struct bkv_gateway *gw = calloc(1, sizeof(*gw));
    if (gw == NULL)
        return BKV_ERR_NOMEM;
    gw->c = *cfg;
    const struct bkv_hsm_realm *realm = cfg->realm;
    gw->ohttp.key_id = realm->hpke_key_id[0];
    gw->ohttp.kem = KEM_P256;
    gw->ohttp.pk_len = BKV_HPKE_P256_PK_LEN;
    memcpy(gw->ohttp.pk, realm->hpke_pk, BKV_HPKE_P256_PK_LEN);
    gw->ohttp.suite_count = 2;
    gw->ohttp.suites[0] = (struct bkv_ohttp_symmetric){KDF_SHA256, AEAD_AES128};
    gw->ohttp.suites[1] = (struct bkv_ohttp_symmetric){KDF_SHA256, AEAD_AES256};
    bkv_msg_opaque_context(realm->realm_id, gw->context);
    /* Every node of the realm derives the same fake-record secret, so an unknown account
     * meets the same fake record whichever node leads. */
    struct bkv_buf info = {(const uint8_t *)"BKV-FAKE-RECORD-v1", 18};
    int rc = bkv_hkdf_expand(cfg->keys->oprf_seed, BKV_OPAQUE_SEED_LEN, &info, 1, gw->fake_secret,
                             sizeof(gw->fake_secret));
    if (rc != BKV_OK)
        goto fail;
    struct bkv_buf tinfo = {(const uint8_t *)"BKV-REG-TICKET-v1", 17};
    rc = bkv_hkdf_expand(cfg->keys->oprf_seed, BKV_OPAQUE_SEED_LEN, &tinfo, 1, gw->ticket_key,
                         sizeof(gw->ticket_key));
    if (rc != BKV_OK)
        goto fail;
    {
        uint8_t aad[12 + BKV_ACCOUNT_KEY_LEN] = "BKV-DUMMY-v1", zeros[BKV_OPAQUE_RECORD_LEN] = {0};
        rc = bkv_hsm_seal(cfg->hsm, aad, sizeof(aad), zeros, sizeof(zeros), gw->dummy_sealed,
                          sizeof(gw->dummy_sealed), &gw->dummy_sealed_len);
        if (rc != BKV_OK)
            goto fail;
    }
    rc = uv_timer_init(cfg->loop, &gw->sweep);
    if (rc != 0) {
        rc = BKV_ERR_IO;
        goto fail;
    }
    gw->sweep.data = gw;
    uv_timer_start(&gw->sweep, sweep_cb, 1000, 1000);
    struct bkv_http_server_config hc = {.address = cfg->cfg->gateway, .max_body = 16 * 1024};
    rc = bkv_http_server_start(cfg->loop, &hc, handle, gw, &gw->http, err, err_cap);
    if (rc != BKV_OK) {
        uv_timer_stop(&gw->sweep);
        gw->closing = 1;
        gw->http_closed = 1;
        uv_close((uv_handle_t *)&gw->sweep, timer_closed_cb); /* frees gw when closed */
        return rc;
    }
    *out = gw;
    return BKV_OK;
fail:
    if (err != NULL && err_cap > 0)
        snprintf(err, err_cap, "gateway: start: %s", bkv_strerror(rc));
    OPENSSL_cleanse(gw, sizeof(*gw));
    free(gw);
    return rc;
}
