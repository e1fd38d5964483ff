/*
 * The gateway's login sessions (gateway_internal.h), on the loop thread only.
 * Normal path: when a KE2 is ready, gateway.c drops the account's older
 * session and files the new one (random id, OPAQUE server state, sealed
 * wrapped K) in its account's bucket; the LOGIN_FINISH naming that id and
 * account takes it out, once, and it is wiped when freed. Failure modes: an
 * unknown id, another account's id and an expired session all give NULL; the
 * sweep timer frees expired sessions each second; every session is wiped when
 * this node stops being a ready leader (bkv_gateway_role_changed) or closes.
 */
#include "node/gateway_internal.h"

#include <openssl/crypto.h>
#include <stdlib.h>

#include "node/log.h"
#include "proto/util.h"

/* --- sessions (loop thread) ------------------------------------------------ */

/*
 * Sessions hash by account key (an HMAC output, so uniform): a LOGIN_FINISH
 * names its account, and dropping an account's older session at the next
 * LOGIN_INIT looks at one bucket, not at every session.
 */
static size_t gw_bucket_of(const uint8_t account_key[static BKV_ACCOUNT_KEY_LEN])
{
    return ((size_t)account_key[0] << 8 | account_key[1]) % SESSION_BUCKETS;
}

void gw_session_insert(struct bkv_gateway *gw, struct session *s)
{
    size_t b = gw_bucket_of(s->account_key);
    s->next = gw->buckets[b];
    gw->buckets[b] = s;
    gw->n_sessions++;
    gw->stats.sessions = gw->n_sessions;
}

void gw_session_free(struct session *s)
{
    OPENSSL_cleanse(s, sizeof(*s));
    free(s);
}

void gw_sessions_clear(struct bkv_gateway *gw)
{
    for (size_t b = 0; b < SESSION_BUCKETS; b++) {
        while (gw->buckets[b] != NULL) {
            struct session *s = gw->buckets[b];
            gw->buckets[b] = s->next;
            gw_session_free(s);
        }
    }
    gw->n_sessions = 0;
    gw->stats.sessions = 0;
}

/* Remove and return the session with this id and account, or NULL. */
struct session *gw_session_take(struct bkv_gateway *gw, const uint8_t *id,
                                const uint8_t *account_key)
{
    struct session **pp = &gw->buckets[gw_bucket_of(account_key)];
    for (; *pp != NULL; pp = &(*pp)->next) {
        struct session *s = *pp;
        if (!bkv_ct_equal(s->id, id, BKV_MSG_SESSION_ID_LEN) ||
            !bkv_ct_equal(s->account_key, account_key, BKV_ACCOUNT_KEY_LEN))
            continue;
        *pp = s->next;
        gw->n_sessions--;
        gw->stats.sessions = gw->n_sessions;
        if (s->expires_ms < gw_now_ms()) {
            gw_session_free(s);
            return NULL;
        }
        return s;
    }
    return NULL;
}

void gw_sweep_cb(uv_timer_t *t)
{
    struct bkv_gateway *gw = t->data;
    uint64_t now = gw_now_ms();
    for (size_t b = 0; b < SESSION_BUCKETS; b++) {
        struct session **pp = &gw->buckets[b];
        while (*pp != NULL) {
            struct session *s = *pp;
            if (s->expires_ms < now) {
                *pp = s->next;
                gw->n_sessions--;
                gw_session_free(s);
            } else {
                pp = &s->next;
            }
        }
    }
    gw->stats.sessions = gw->n_sessions;
}

/* Drop every session of this account: one login at a time per account. */
void gw_sessions_drop_account(struct bkv_gateway *gw, const uint8_t *account_key)
{
    struct session **pp = &gw->buckets[gw_bucket_of(account_key)];
    while (*pp != NULL) {
        struct session *s = *pp;
        if (bkv_ct_equal(s->account_key, account_key, BKV_ACCOUNT_KEY_LEN)) {
            *pp = s->next;
            gw->n_sessions--;
            gw_session_free(s);
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
        gw_sessions_clear(gw);
    }
}
