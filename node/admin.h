/*
 * bkv-node's admin HTTP endpoint, on its own port (config [node] admin):
 *   GET /livez      200 while the loop serves requests
 *   GET /readyz     200 when the node knows a leader, is within max_lag
 *                   entries of the commit index it knows, and its HSM answered
 *                   the last probe (an account MAC every 2 s, on a worker);
 *   GET /metrics    the Prometheus text format;
 *                   else 503 with {"ready": false, "reason": "..."}
 *   GET /v1/status  JSON: identity, role, term, leader, indexes, store counts
 *                   and state hash, login sessions, HSM token, version, uptime
 *                   (schema in docs/operations.md)
 * Changing operations, with Authorization: Bearer <admin token> (401 and
 * nothing changed without it or with a wrong one; 421 naming the leader's
 * admin address from a follower):
 *   POST   /v1/leader/transfer[?to=ID]          to ID, or to the best voter
 *   POST   /v1/members?id=ID&raft=HOST:PORT     add as a non-voter (standby)
 *   POST   /v1/members/ID/promote               make a caught-up member a voter
 *   DELETE /v1/members/ID                       remove a member
 *   POST   /v1/snapshot                         501: libraft 0.22 takes
 *                                               snapshots by threshold only
 * Loop thread only.
 */
#ifndef BKV_NODE_ADMIN_H
#define BKV_NODE_ADMIN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "consensus/node.h"
#include "node/config.h"

struct bkv_gateway;
struct bkv_hsm;

struct bkv_admin_config {
    uv_loop_t *loop;
    struct bkv_raft *raft;             /* borrowed */
    struct bkv_gateway *gateway;       /* borrowed, may be NULL */
    struct bkv_hsm *hsm;               /* borrowed */
    const struct bkv_node_config *cfg; /* borrowed */
    uint64_t max_lag;                  /* entries; 0: 100 */
    /* The bearer token of the changing operations (copied; wiped at close); 0: disabled. */
    uint8_t token[256];
    size_t token_len;
};

struct bkv_admin;

int bkv_admin_start(const struct bkv_admin_config *cfg, struct bkv_admin **out, char *err,
                    size_t err_cap);
void bkv_admin_close(struct bkv_admin *a, void (*cb)(void *data), void *data);

#endif
