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
 *
 * The worker stages are in gateway_work.c, the login session table in
 * gateway_session.c, request ids and registration tickets in
 * gateway_ticket.c; what they share is gateway_internal.h.
 */
#include "node/gateway.h"
#include "node/gateway_internal.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "consensus/store.h"
#include "hsm/p11.h"
#include "hsm/realm.h"
#include "hsm/seal.h"
#include "node/http.h"
#include "node/log.h"
#include "node/token.h"
#include "proto/err.h"
#include "proto/kdf.h"
#include "proto/ohttp.h"
#include "proto/opaque.h"
#include "proto/util.h"

#define KEM_P256    0x0010
#define KDF_SHA256  0x0001
#define AEAD_AES128 0x0001
#define AEAD_AES256 0x0002

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

static void respond_not_leader(struct bkv_gateway *gw, struct bkv_http_exchange *ex);

uint64_t gw_now_ms(void)
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

void gw_http_error(struct gw_req *r, int status, const char *text)
{
    r->http_status = status;
    r->http_text = text;
}

void gw_inner_status(struct gw_req *r, enum bkv_msg_status st)
{
    r->status = st;
    r->payload_len = 0;
}

static void queue(struct gw_req *r, enum stage st);

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
        gw_http_error(r, 421, "this node is no longer the leader");
        break;
    case BKV_ERR_NOT_READY:
    case BKV_ERR_LEADERSHIP_LOST:
    case BKV_ERR_SHUTDOWN:
        gw_http_error(r, 503, "leadership changed before the commit; retry");
        break;
    case BKV_ERR_NOSPACE:
        gw_http_error(r, 507, "the node's disk is full");
        break;
    default:
        bkv_log(BKV_LOG_ERROR, "gateway: proposal failed: %s", bkv_strerror(rc));
        gw_http_error(r, 500, "the node failed to commit; see its log");
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
        gw_inner_status(r, BKV_MSG_SESSION_UNKNOWN);
    } else {
        gw_inner_status(r, BKV_MSG_UNAVAILABLE);
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
        gw_inner_status(r, res[0].status == BKV_CMD_DELETED ? BKV_MSG_OK : BKV_MSG_NOT_REGISTERED);
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
            gw_inner_status(r, BKV_MSG_REPLAYED);
            break;
        }
        {
            struct bkv_store_record rec;
            int found = 0;
            int rc = bkv_store_get(bkv_raft_store(gw->c.raft), r->account_key, &rec, &found);
            if (rc != BKV_OK || !found || !rec.live || rec.record_len > sizeof(r->sealed_record) ||
                rec.wrapped_len > sizeof(r->sealed_wrapped)) {
                if (rc == BKV_OK)
                    gw_inner_status(r, found ? BKV_MSG_DESTROYED : BKV_MSG_NOT_REGISTERED);
                else
                    gw_inner_status(r, BKV_MSG_UNAVAILABLE);
                if (rc == BKV_OK && found)
                    bkv_store_record_free(&rec);
                break;
            }
            if (rec.registration != res[0].registration) {
                /* Re-registered in the same commit batch: this ATTEMPT counted the old one. */
                bkv_store_record_free(&rec);
                gw_inner_status(r, BKV_MSG_SESSION_UNKNOWN);
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
        gw_inner_status(r, BKV_MSG_UNAVAILABLE);
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
        gw_inner_status(r, r->decoy);
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
        gw_inner_status(r, BKV_MSG_SESSION_UNKNOWN);
        finish(r);
        return;
    }
    struct session *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        bkv_opaque_login_server_wipe(&r->login);
        gw_inner_status(r, BKV_MSG_UNAVAILABLE);
        finish(r);
        return;
    }
    gw_sessions_drop_account(gw, r->account_key);
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
    s->expires_ms = gw_now_ms() + (uint64_t)gw->c.cfg->login_timeout_s * 1000;
    gw_session_insert(gw, s);
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
        gw_inner_status(r, BKV_MSG_SESSION_UNKNOWN); /* re-registered meanwhile: start over */
        break;
    case BKV_CMD_DESTROYED:
        gw_inner_status(r, BKV_MSG_DESTROYED);
        break;
    case BKV_CMD_NOT_FOUND:
        gw_inner_status(r, BKV_MSG_NOT_REGISTERED);
        break;
    default:
        gw_inner_status(r, BKV_MSG_UNAVAILABLE);
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
        gw_inner_status(r, BKV_MSG_DESTROYED);
        r->gw->stats.lockouts++;
    } else
        gw_inner_status(r, BKV_MSG_WRONG_PASSWORD);
    r->attempts_left = 0;
    finish(r);
}

static void login_finish(struct gw_req *r)
{
    struct bkv_gateway *gw = r->gw;
    const uint8_t *sid = r->msg.payload, *ke3 = r->msg.payload + BKV_MSG_SESSION_ID_LEN;
    if (gw->closing) {
        gw_http_error(r, 503, "the node is shutting down");
        finish(r);
        return;
    }
    struct session *s = gw_session_take(gw, sid, r->account_key);
    if (s == NULL) {
        gw_inner_status(r, BKV_MSG_SESSION_UNKNOWN);
        finish(r);
        return;
    }
    int rc = bkv_opaque_login_verify(&s->state, ke3, BKV_OPAQUE_KE3_LEN, r->session_key);
    memcpy(r->session_id, s->id, sizeof(r->session_id));
    r->max_attempts = s->max_attempts;
    r->attempts_left = s->max_attempts > s->attempts ? s->max_attempts - s->attempts : 0;
    if (s->fake) {
        gw_inner_status(r, BKV_MSG_NOT_REGISTERED);
        r->attempts_left = r->max_attempts = 0;
    } else if (rc != BKV_OK) {
        gw_inner_status(r, BKV_MSG_WRONG_PASSWORD);
        if (r->attempts_left == 0) {
            struct bkv_buf parts[] = {{s->account_key, BKV_ACCOUNT_KEY_LEN},
                                      {s->id, BKV_MSG_SESSION_ID_LEN}};
            if (gw_derive_request_id("BKV-REQ-EXHAUST-v1", parts, 2, r->cmd.request_id) == BKV_OK &&
                propose(r, BKV_CMD_ATTEMPT, after_exhaust) == BKV_OK) {
                gw_session_free(s);
                return;
            }
        }
    } else {
        struct bkv_buf parts[] = {{s->account_key, BKV_ACCOUNT_KEY_LEN},
                                  {s->id, BKV_MSG_SESSION_ID_LEN}};
        memcpy(r->sealed_wrapped, s->sealed_wrapped, s->sealed_wrapped_len);
        r->sealed_wrapped_len = s->sealed_wrapped_len;
        r->cmd.registration = s->registration;
        rc = gw_derive_request_id("BKV-REQ-SUCCESS-v1", parts, 2, r->cmd.request_id);
        if (rc == BKV_OK)
            rc = propose(r, BKV_CMD_SUCCESS, after_success);
        if (rc == BKV_OK) {
            gw_session_free(s);
            return;
        }
        propose_failed(r, rc);
    }
    gw_session_free(s);
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
        gw_http_error(r, 503, "the node is shutting down");
        finish(r);
        return;
    }
    int rc = BKV_OK;
    switch (r->msg.type) {
    case BKV_MSG_REG_INIT:
        if (gw_ticket_make(gw, r->account_key, r->payload + BKV_OPAQUE_REG_RESPONSE_LEN) != BKV_OK)
            gw_inner_status(r, BKV_MSG_UNAVAILABLE);
        else
            r->payload_len = BKV_OPAQUE_REG_RESPONSE_LEN + BKV_MSG_TICKET_LEN;
        finish(r);
        return;
    case BKV_MSG_REG_FINISH:
        rc = gw_ticket_check(gw, r->account_key,
                             r->msg.payload + BKV_OPAQUE_RECORD_LEN + BKV_MSG_WRAPPED_LEN,
                             &r->cmd.registration);
        if (rc != BKV_OK) {
            /* Expired, or the account changed since REG_INIT (or an old REG_FINISH replayed). */
            gw_inner_status(r, rc == BKV_ERR_MAC || rc == BKV_ERR_LIMIT ? BKV_MSG_SESSION_UNKNOWN
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
            gw_http_error(r, 503, "too many logins in flight on this node; retry shortly");
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
        gw_http_error(r, 503, "the node is shutting down");
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
    int rc = uv_queue_work(r->gw->c.loop, &r->work, gw_work_cb, after_work_cb);
    if (rc != 0) {
        gw_http_error(r, 500, "cannot queue work");
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
        gw_http_error(r, 500, "internal error");
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
            gw_http_error(r, 500, "cannot build the response");
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
    gw_sessions_clear(gw);
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
    gw_sessions_clear(gw);
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
    uv_timer_start(&gw->sweep, gw_sweep_cb, 1000, 1000);
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
