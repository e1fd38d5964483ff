/*
 * Private to bkv-node's gateway: gateway.c (HTTP entry, loop stages, answers,
 * life cycle), gateway_work.c (the worker stages), gateway_session.c (the
 * login session table) and gateway_ticket.c (request ids and registration
 * tickets). Never included outside node/gateway*.c and never part of
 * gateway.h.
 */
#ifndef BKV_NODE_GATEWAY_INTERNAL_H
#define BKV_NODE_GATEWAY_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "consensus/cmd.h"
#include "consensus/node.h"
#include "hsm/seal.h"
#include "node/gateway.h"
#include "node/http.h"
#include "proto/kdf.h"
#include "proto/msg.h"
#include "proto/ohttp.h"
#include "proto/opaque.h"

#define SEALED_RECORD_LEN  (BKV_OPAQUE_RECORD_LEN + BKV_HSM_SEAL_OVERHEAD)
#define SEALED_WRAPPED_LEN (BKV_MSG_WRAPPED_LEN + BKV_HSM_SEAL_OVERHEAD)
#define SESSION_BUCKETS    1024

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

/* --- gateway.c ---------------------------------------------------------------- */

/* Milliseconds on the monotonic clock. Any thread. */
uint64_t gw_now_ms(void);
/* Answer r with a plain HTTP error; text is static. Whichever thread holds r. */
void gw_http_error(struct gw_req *r, int status, const char *text);
/* Answer r with an inner status and no payload. Whichever thread holds r. */
void gw_inner_status(struct gw_req *r, enum bkv_msg_status st);

/* --- gateway_session.c: the login session table (loop thread only) ------------ */

/* Put s (transferred to the table) into its account's bucket. */
void gw_session_insert(struct bkv_gateway *gw, struct session *s);
/* Wipe and free a session that is in no bucket. */
void gw_session_free(struct session *s);
/* Wipe and free every session. */
void gw_sessions_clear(struct bkv_gateway *gw);
/* Remove and return the session with this id and account (the caller then owns it and frees
 * it with gw_session_free), or NULL; an expired one is freed and gives NULL. */
struct session *gw_session_take(struct bkv_gateway *gw, const uint8_t *id,
                                const uint8_t *account_key);
/* The sweep timer's callback (t->data is the gateway): frees expired sessions. */
void gw_sweep_cb(uv_timer_t *t);
/* Wipe and free every session of this account. */
void gw_sessions_drop_account(struct bkv_gateway *gw, const uint8_t *account_key);

/* --- gateway_ticket.c: request ids and registration tickets -------------------- */

/* out = SHA-256(label || parts[0..n))[0..16], n <= 5 (parts borrowed). Any thread. */
int gw_derive_request_id(const char *label, const struct bkv_buf *parts, size_t n,
                         uint8_t out[static BKV_REQUEST_ID_LEN]);
/* A REG_INIT ticket for the account's row as stored now. Loop thread (reads the store). */
int gw_ticket_make(struct bkv_gateway *gw, const uint8_t *account_key,
                   uint8_t ticket[static BKV_MSG_TICKET_LEN]);
/* BKV_OK if the ticket is unexpired and the row unchanged (*registration: the row's
 * registration, 0 for none); BKV_ERR_LIMIT if expired, BKV_ERR_MAC if the row changed or the
 * ticket is forged, or the store's error. Loop thread. */
int gw_ticket_check(struct bkv_gateway *gw, const uint8_t *account_key,
                    const uint8_t ticket[static BKV_MSG_TICKET_LEN], uint64_t *registration);

/* --- gateway_work.c: the worker stages ----------------------------------------- */

/* uv_queue_work's work callback (w->data is the request): runs r->stage on the pool. */
void gw_work_cb(uv_work_t *w);

#endif
