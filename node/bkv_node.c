/*
 * bkv-node: one vault node. It reads its configuration file, opens its HSM
 * token (pinned to the realm in realm_dir), unseals the OPAQUE server secrets
 * into locked memory, starts its Raft member, the gateway that routers call,
 * and the admin endpoint, and runs one libuv loop until SIGINT or SIGTERM.
 *
 * Start-up failures print one line naming what failed and exit 1. A Raft
 * instance that becomes unavailable (disk, FSM) exits 1 for the supervisor to
 * restart the node; a clean shutdown exits 0.
 */
#include <errno.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "consensus/node.h"
#include "hsm/codec.h"
#include "hsm/p11.h"
#include "hsm/pinfile.h"
#include "hsm/realm.h"
#include "hsm/secrets.h"
#include "hsm/token.h"
#include "node/admin.h"
#include "node/config.h"
#include "node/fileio.h"
#include "node/gateway.h"
#include "node/log.h"
#include "node/token.h"
#include "proto/err.h"
#include "proto/util.h"

#define PROG        "bkv-node"
#define REALM_FILE  "realm.bin"
#define SECRET_FILE "opaque-secrets.sealed"

static const char usage[] =
    "usage: bkv-node --config FILE [--bootstrap] [--check-config]\n"
    "\n"
    "Runs one BKV vault node: a Raft member (libraft over TCP, SQLite state),\n"
    "the gateway routers forward sealed envelopes to, and the admin endpoint.\n"
    "\n"
    "  --config FILE    the node's configuration (see docs/operations.md,\n"
    "                   \"The node configuration file\"); required\n"
    "  --bootstrap      write the initial member list ([member N] sections) into\n"
    "                   a pristine data directory before starting. Run it once,\n"
    "                   on every voter of a new cluster, with the same members.\n"
    "                   Refused for a data directory that already holds state.\n"
    "  --check-config   validate the configuration file and exit (0 if valid)\n"
    "  --help           this text\n"
    "\n"
    "Exit status: 0 after a clean shutdown (SIGINT, SIGTERM); 1 when start-up\n"
    "fails or the Raft instance becomes unavailable (the message says why; a\n"
    "supervisor should restart the node); 2 for a usage error.\n";

struct node {
    uv_loop_t loop;
    struct bkv_node_config cfg;
    struct bkv_hsm *hsm;
    struct bkv_hsm_realm realm;
    struct bkv_opaque_server_keys *keys;
    struct bkv_raft *raft;
    struct bkv_gateway *gw;
    struct bkv_admin *admin;
    uv_signal_t sigint, sigterm;
    uv_timer_t watchdog;
    int stopping;
    int exit_code;
    int pending_closes;
};

static int load_realm(struct node *n, uint8_t **secrets, size_t *secrets_len)
{
    char path[BKV_CONF_PATH_MAX + 64], err[BKV_CONF_PATH_MAX + 256] = "";
    uint8_t *buf = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/%s", n->cfg.realm_dir, REALM_FILE);
    int rc = bkv_file_read(path, 4096, &buf, &len, err, sizeof(err));
    if (rc == BKV_OK && bkv_hsm_realm_decode(buf, len, &n->realm) != BKV_OK) {
        rc = BKV_ERR_FORMAT;
        snprintf(err, sizeof(err), "%s is not a realm description (realm.bin)", path);
    }
    free(buf);
    if (rc == BKV_OK) {
        snprintf(path, sizeof(path), "%s/%s", n->cfg.realm_dir, SECRET_FILE);
        rc = bkv_file_read(path, 4096, secrets, secrets_len, err, sizeof(err));
    }
    if (rc != BKV_OK)
        bkv_log(BKV_LOG_ERROR, "realm: %s", err);
    return rc;
}

static int open_hsm(struct node *n)
{
    char conf[BKV_CONF_PATH_MAX + 64], err[BKV_HSM_ERRMSG_LEN] = "";
    uint8_t *secrets = NULL;
    size_t secrets_len = 0;
    int rc = load_realm(n, &secrets, &secrets_len);
    if (rc != BKV_OK)
        return rc;
    snprintf(conf, sizeof(conf), "%s/%s", n->cfg.hsm_node_dir, BKV_HSM_CONF_NAME);
    struct bkv_hsm_config hc = {
        .module_path = n->cfg.hsm_module,
        .token_label = n->cfg.hsm_token,
        .pin_file = n->cfg.hsm_pin_file,
        .softhsm_conf = conf,
        .lock_dir = n->cfg.hsm_node_dir,
        .sessions = 8,
        .require_realm = 1,
        .realm = &n->realm,
    };
    rc = bkv_hsm_open(&hc, &n->hsm, err, sizeof(err));
    if (rc != BKV_OK) {
        bkv_log(BKV_LOG_ERROR, "%s", err);
        goto out;
    }
    rc = bkv_hsm_opaque_load(n->hsm, secrets, secrets_len, &n->keys);
    if (rc != BKV_OK)
        bkv_log(BKV_LOG_ERROR, "unseal the OPAQUE server secrets: %s: %s", bkv_strerror(rc),
                bkv_hsm_errmsg(n->hsm));
out:
    free(secrets);
    return rc;
}

static void closed_one(void *data)
{
    struct node *n = data;
    if (--n->pending_closes == 0)
        uv_stop(&n->loop);
}

static void raft_closed(void *data)
{
    closed_one(data);
}

static void front_closed(void *data)
{
    struct node *n = data;
    if (--n->pending_closes == 1 && n->raft != NULL) {
        /* The gateway and the admin endpoint are gone: now Raft. */
        bkv_raft_close(n->raft, raft_closed, n);
        n->raft = NULL;
    }
}

static void stop(struct node *n, int code)
{
    if (n->stopping)
        return;
    n->stopping = 1;
    n->exit_code = code;
    uv_signal_stop(&n->sigint);
    uv_signal_stop(&n->sigterm);
    n->pending_closes = 1 + (n->gw != NULL) + (n->admin != NULL);
    if (n->gw == NULL && n->admin == NULL) {
        n->pending_closes = 1;
        if (n->raft != NULL) {
            bkv_raft_close(n->raft, raft_closed, n);
            n->raft = NULL;
        } else {
            uv_stop(&n->loop);
        }
        return;
    }
    if (n->gw != NULL)
        bkv_gateway_close(n->gw, front_closed, n);
    if (n->admin != NULL)
        bkv_admin_close(n->admin, front_closed, n);
    n->gw = NULL;
    n->admin = NULL;
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct node *n = s->data;
    bkv_log(BKV_LOG_INFO, "%s received; shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
    stop(n, 0);
}

static void on_state(struct bkv_raft *r, enum bkv_raft_role role, void *data)
{
    struct node *n = data;
    static const char *const names[] = {
        "", "follower", "candidate", "leader (barrier pending)", "leader", "unavailable"};
    uint64_t id = 0;
    const char *addr = NULL;
    bkv_raft_leader(r, &id, &addr);
    bkv_log(BKV_LOG_INFO, "raft: now %s (leader %llu)", names[role], (unsigned long long)id);
    bkv_gateway_role_changed(n->gw, role);
}

static void watchdog_fired(uv_timer_t *t)
{
    (void)t;
    /* Requests waiting on entries that can no longer apply would hold the orderly close
     * forever. Everything durable is in the Raft log and SQLite; exit now. */
    bkv_log(BKV_LOG_ERROR, "shutdown did not finish within 5 s; exiting (status 1)");
    _exit(1);
}

static void on_unavailable(struct bkv_raft *r, const char *reason, void *data)
{
    struct node *n = data;
    (void)r;
    bkv_log(BKV_LOG_ERROR,
            "raft: the Raft instance is unavailable: %s; exiting for the supervisor to restart "
            "this node",
            reason);
    if (uv_timer_init(&n->loop, &n->watchdog) == 0) {
        uv_timer_start(&n->watchdog, watchdog_fired, 5000, 0);
        uv_unref((uv_handle_t *)&n->watchdog);
    }
    stop(n, 1);
}

static int start(struct node *n, int bootstrap)
{
    char err[BKV_RAFT_ERRMSG_LEN] = "";
    struct bkv_raft_config rc_cfg;
    memset(&rc_cfg, 0, sizeof(rc_cfg));
    rc_cfg.id = n->cfg.id;
    snprintf(rc_cfg.dc, sizeof(rc_cfg.dc), "%s", n->cfg.dc);
    snprintf(rc_cfg.address, sizeof(rc_cfg.address), "%s", n->cfg.raft);
    snprintf(rc_cfg.data_dir, sizeof(rc_cfg.data_dir), "%s", n->cfg.data_dir);
    for (size_t i = 0; i < n->cfg.n_members; i++) {
        rc_cfg.members[i].id = n->cfg.members[i].id;
        snprintf(rc_cfg.members[i].dc, sizeof(rc_cfg.members[i].dc), "%s", n->cfg.members[i].dc);
        snprintf(rc_cfg.members[i].address, sizeof(rc_cfg.members[i].address), "%s",
                 n->cfg.members[i].raft);
        snprintf(rc_cfg.members[i].snapshot_address, sizeof(rc_cfg.members[i].snapshot_address),
                 "%s", n->cfg.members[i].snapshot);
        rc_cfg.members[i].later = n->cfg.members[i].later;
    }
    snprintf(rc_cfg.snapshot_address, sizeof(rc_cfg.snapshot_address), "%s",
             bkv_node_config_member(&n->cfg, n->cfg.id)->snapshot);
    rc_cfg.n_members = n->cfg.n_members;
    rc_cfg.max_attempts = n->cfg.max_attempts;
    rc_cfg.snapshot_threshold = n->cfg.snapshot_threshold;
    rc_cfg.snapshot_trailing = n->cfg.snapshot_trailing;
    rc_cfg.election_timeout_ms = n->cfg.election_timeout_ms;
    rc_cfg.heartbeat_timeout_ms = n->cfg.heartbeat_timeout_ms;

    int rc = bkv_raft_init(&n->loop, &rc_cfg, &n->raft, err, sizeof(err));
    if (rc != BKV_OK) {
        bkv_log(BKV_LOG_ERROR, "raft: %s", err);
        return rc;
    }
    if (bootstrap) {
        rc = bkv_raft_bootstrap(n->raft);
        if (rc != BKV_OK) {
            bkv_log(BKV_LOG_ERROR, "raft: bootstrap: %s", bkv_raft_errmsg(n->raft));
            return rc;
        }
        bkv_log(BKV_LOG_INFO, "raft: bootstrapped with %zu member(s)", n->cfg.n_members);
    }

    struct bkv_gateway_config gc = {
        .loop = &n->loop,
        .raft = n->raft,
        .hsm = n->hsm,
        .keys = n->keys,
        .realm = &n->realm,
        .cfg = &n->cfg,
    };
    char kerr[256] = "";
    rc = bkv_router_proof_key_load(n->cfg.proof_key_file, gc.proof_key, kerr, sizeof(kerr));
    if (rc != BKV_OK) {
        bkv_log(BKV_LOG_ERROR, "router proof key: %s", kerr);
        return rc;
    }
    rc = bkv_gateway_start(&gc, &n->gw, err, sizeof(err));
    OPENSSL_cleanse(gc.proof_key, sizeof(gc.proof_key));
    if (rc != BKV_OK) {
        bkv_log(BKV_LOG_ERROR, "gateway on %s: %s", n->cfg.gateway, err);
        return rc;
    }
    struct bkv_admin_config ac = {
        .loop = &n->loop, .raft = n->raft, .gateway = n->gw, .hsm = n->hsm, .cfg = &n->cfg};
    if (n->cfg.admin_token_file[0] != '\0') {
        char terr[512] = "";
        rc = bkv_hsm_pin_read(n->cfg.admin_token_file, ac.token, sizeof(ac.token), &ac.token_len,
                              terr, sizeof(terr));
        if (rc != BKV_OK) {
            bkv_log(BKV_LOG_ERROR, "[admin] token_file: %s", terr);
            return rc;
        }
    } else {
        bkv_log(BKV_LOG_WARN, "no [admin] token_file: the admin endpoint's changing operations "
                              "(leader transfer, membership) are disabled");
    }
    rc = bkv_admin_start(&ac, &n->admin, err, sizeof(err));
    OPENSSL_cleanse(ac.token, sizeof(ac.token));
    if (rc != BKV_OK) {
        bkv_log(BKV_LOG_ERROR, "admin endpoint on %s: %s", n->cfg.admin, err);
        return rc;
    }
    rc = bkv_raft_start(n->raft, on_state, on_unavailable, n);
    if (rc != BKV_OK) {
        bkv_log(BKV_LOG_ERROR, "raft: start: %s", bkv_raft_errmsg(n->raft));
        return rc;
    }
    bkv_log(BKV_LOG_INFO, "node %llu (%s) serving: raft %s, gateway %s, admin %s",
            (unsigned long long)n->cfg.id, n->cfg.dc, n->cfg.raft, n->cfg.gateway, n->cfg.admin);
    return BKV_OK;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"bootstrap", no_argument, NULL, 'b'},
        {"check-config", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    int bootstrap = 0, check_only = 0, c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'b':
            bootstrap = 1;
            break;
        case 'k':
            check_only = 1;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (config == NULL || optind != argc) {
        fprintf(stderr, "%s: %s\n\n%s", PROG,
                config == NULL ? "--config FILE is required" : "unexpected argument", usage);
        return 2;
    }
    if (!bkv_no_core_dumps()) {
        fprintf(stderr, "%s: cannot disable core dumps: %s\n", PROG, strerror(errno));
        return 1;
    }

    static struct node n;
    char err[1024] = "";
    if (bkv_node_config_load(config, &n.cfg, err, sizeof(err)) != BKV_OK) {
        fprintf(stderr, "%s: %s\n", PROG, err);
        return 1;
    }
    if (check_only) {
        printf("%s: configuration valid: node %llu in %s, %zu member(s)\n", config,
               (unsigned long long)n.cfg.id, n.cfg.dc, n.cfg.n_members);
        return 0;
    }
    bkv_log_init(PROG, n.cfg.log_level);
    /* Login sessions live in OpenSSL's secure heap when the kernel lets us lock it. */
    if (CRYPTO_secure_malloc_init(4 << 20, 64) != 1)
        bkv_log(BKV_LOG_WARN, "secure heap unavailable (RLIMIT_MEMLOCK?); login sessions use "
                              "the normal heap, wiped on release");
    /* One worker per HSM session: EC and HSM work runs on the libuv pool. */
    setenv("UV_THREADPOOL_SIZE", "8", 0);

    int rc = open_hsm(&n);
    if (rc == BKV_OK && uv_loop_init(&n.loop) != 0)
        rc = BKV_ERR_IO;
    if (rc != BKV_OK) {
        bkv_hsm_opaque_free(n.keys);
        bkv_hsm_close(n.hsm);
        return 1;
    }
    uv_signal_init(&n.loop, &n.sigint);
    uv_signal_init(&n.loop, &n.sigterm);
    n.sigint.data = n.sigterm.data = &n;
    uv_signal_start(&n.sigint, on_signal, SIGINT);
    uv_signal_start(&n.sigterm, on_signal, SIGTERM);
    signal(SIGPIPE, SIG_IGN);

    rc = start(&n, bootstrap);
    if (rc != BKV_OK)
        stop(&n, 1);
    uv_run(&n.loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&n.sigint, NULL);
    uv_close((uv_handle_t *)&n.sigterm, NULL);
    uv_run(&n.loop, UV_RUN_DEFAULT);
    uv_loop_close(&n.loop);
    /* Stop the thread pool, so its threads' OpenSSL DRBGs are freed before exit. */
    uv_library_shutdown();
    bkv_hsm_opaque_free(n.keys);
    bkv_hsm_close(n.hsm);
    bkv_log(n.exit_code == 0 ? BKV_LOG_INFO : BKV_LOG_ERROR, "stopped (exit %d)", n.exit_code);
    return n.exit_code;
}
