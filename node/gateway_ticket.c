/*
 * The gateway's content-bound values (gateway_internal.h). A request id is a
 * hash of a label and the request's content, so a retried envelope carries the
 * same id and the state machine counts it once (consensus/cmd.h). A
 * registration ticket (REG_INIT) is an expiry and a MAC, under a key derived
 * from the OPRF seed, over the account key, the expiry and the account's row as
 * stored then; REG_FINISH checks it. Failure modes: an expired ticket, or one
 * dated too far ahead, is BKV_ERR_LIMIT; a changed row or a forged ticket is
 * BKV_ERR_MAC; a store error is passed on; more than five id parts is
 * BKV_ERR_INVALID. Ids are pure; tickets read SQLite, so loop thread only.
 */
#include "node/gateway_internal.h"

#include <string.h>
#include <time.h>

#include "consensus/store.h"
#include "proto/err.h"
#include "proto/util.h"

/* id = SHA-256(label || parts...)[0..16]: the content-derived request id (cmd.h). */
int gw_derive_request_id(const char *label, const struct bkv_buf *parts, size_t n,
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

int gw_ticket_make(struct bkv_gateway *gw, const uint8_t *account_key,
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
int gw_ticket_check(struct bkv_gateway *gw, const uint8_t *account_key,
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
