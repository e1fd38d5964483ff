/*
 * bkv-node's gateway: the HTTP endpoint routers forward envelopes to, and the
 * OPAQUE server behind it, held to the guess-limit rule.
 *
 * POST /v1/vault, from a router: the router's proof is checked, the envelope
 * is opened with HPKE whose DH runs in the HSM, the inner account must be the
 * one the router attested, and then, by type:
 *   REG_INIT      OPAQUE registration response (no state kept)
 *   REG_FINISH    record and wrapped K sealed by the HSM, REGISTER committed
 *   LOGIN_INIT    ATTEMPT committed first; only a COUNTED result that is not
 *                 a replay lets a KE2 out (from the record, or from a fake
 *                 record for an unknown account); the expected client MAC and
 *                 the session key stay in memory under a fresh session id
 *   LOGIN_FINISH  the session (one chance, this leader only) checks KE3; a
 *                 valid KE3 commits SUCCESS and only then releases the
 *                 wrapped K under the session key; a wrong one at the limit
 *                 commits the ATTEMPT that destroys the record
 *   DELETE        DELETE committed
 * Elliptic-curve and HSM work runs on the libuv thread pool; Raft, SQLite,
 * the session table and HTTP stay on the loop thread.
 *
 * A follower answers 421 naming the leader (X-BKV-Leader-Id, X-BKV-Leader:
 * its gateway address), or 503 with Retry-After while no leader is known or
 * a new leader's barrier is pending. Sessions are wiped when this node stops
 * being a ready leader.
 */
#ifndef BKV_NODE_GATEWAY_H
#define BKV_NODE_GATEWAY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "consensus/node.h"
#include "node/config.h"
#include "proto/msg.h"

struct bkv_hsm;
struct bkv_hsm_realm;
struct bkv_opaque_server_keys;

struct bkv_gateway_config {
    uv_loop_t *loop;
    struct bkv_raft *raft;                     /* borrowed; outlives the gateway */
    struct bkv_hsm *hsm;                       /* borrowed */
    const struct bkv_opaque_server_keys *keys; /* borrowed (locked page) */
    const struct bkv_hsm_realm *realm;         /* borrowed */
    const struct bkv_node_config *cfg;         /* borrowed: addresses, limits, members */
    uint8_t proof_key[32];                     /* copied; the router proof key */
};

/* A latency histogram with Prometheus' cumulative buckets (upper bounds in seconds). */
#define BKV_HIST_BUCKETS 13
extern const double bkv_hist_bounds[BKV_HIST_BUCKETS];
struct bkv_histogram {
    uint64_t buckets[BKV_HIST_BUCKETS]; /* observations <= bound (not cumulative here) */
    uint64_t count;
    double sum;
};
void bkv_histogram_observe(struct bkv_histogram *h, double seconds);

enum bkv_hsm_op {
    BKV_HSM_OP_DECAP,
    BKV_HSM_OP_MAC,
    BKV_HSM_OP_SEAL,
    BKV_HSM_OP_UNSEAL,
    BKV_HSM_OP__N
};

/*
 * Counters for status pages and metrics, read on the loop thread. hsm_ops and
 * hsm_errors are written by workers with atomic adds; read them with
 * __atomic_load_n.
 */
struct bkv_gateway_stats {
    uint64_t requests[BKV_MSG_DELETE + 1][BKV_MSG_UNAVAILABLE + 1]; /* [type][status] */
    uint64_t http_errors[6];                                        /* 4xx/5xx by class below */
    uint64_t sessions;                                              /* login sessions held now */
    uint64_t ke2_sent;
    uint64_t keys_released;
    uint64_t attempts;      /* ATTEMPTs committed and counted */
    uint64_t lockouts;      /* records destroyed by a wrong KE3 at the limit (this leader) */
    uint64_t registrations; /* REGISTERs committed */
    struct bkv_histogram latency[BKV_MSG_DELETE + 1]; /* whole request, by type */
    struct bkv_histogram commit;                      /* propose -> applied result */
    uint64_t hsm_ops[BKV_HSM_OP__N];
    uint64_t hsm_errors[BKV_HSM_OP__N];
};
enum { GW_ERR_400, GW_ERR_401, GW_ERR_403, GW_ERR_421, GW_ERR_503, GW_ERR_5XX };

struct bkv_gateway;

/* Start serving on cfg->cfg->gateway. err gets the reason on failure. */
int bkv_gateway_start(const struct bkv_gateway_config *cfg, struct bkv_gateway **out, char *err,
                      size_t err_cap);
/* Tell the gateway the node's role changed (from the raft state callback). */
void bkv_gateway_role_changed(struct bkv_gateway *gw, enum bkv_raft_role role);
const struct bkv_gateway_stats *bkv_gateway_stats(const struct bkv_gateway *gw);
/* Stop: close the listener and connections, wipe sessions; cb on the loop when done. */
void bkv_gateway_close(struct bkv_gateway *gw, void (*cb)(void *data), void *data);

#endif
