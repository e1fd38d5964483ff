/*
 * bkv-node's configuration file.
 *
 * A small INI dialect: `# comment` lines, `[section]` headers and
 * `key = value` lines (surrounding spaces trimmed, no quoting; the value runs
 * to the end of the line). Sections and keys (all but the member sections
 * are required unless a default is given):
 *
 *   [node]   id (1..2^53), dc, raft, gateway, admin (host:port each),
 *            data_dir (absolute), max_attempts (1..1000000, default 10),
 *            snapshot_threshold (entries, default 1024), snapshot_trailing
 *            (default 128), election_timeout_ms (default 1000),
 *            heartbeat_timeout_ms (default 100), login_timeout_s (default 60),
 *            max_sessions (default 10000), log_level (error|warn|info|debug,
 *            default info)
 *   [hsm]    module (absolute; default Debian's SoftHSM2), token (1..32
 *            bytes), pin_file (absolute), node_dir (absolute; the directory
 *            of softhsm2.conf and the token lock, as bkv-admin --node-dir),
 *            realm_dir (absolute; realm.bin and opaque-secrets.sealed)
 *   [router] proof_key_file (absolute; from `bkv-admin router keygen`)
 *   [admin]  token_file (absolute, optional; its first line is the bearer
 *            token that the admin endpoint's changing operations require)
 *   [member N]  one per voter of the initial configuration, N its id:
 *            dc, raft, gateway, admin, snapshot (host:port each; snapshot is
 *            where the member serves its snapshot images to the others);
 *            initial (yes|no, default yes): no for a member that is not in
 *            the bootstrap configuration but added later (bkv-admin members
 *            add), so that every node knows its addresses
 *
 * Validation happens at load: every error names the file, the line (when
 * there is one), the section and key, and the problem, e.g.
 *   node.conf:7: [node] max_attempts: "0" is not a number from 1 to 1000000
 * The node's own id must be one of the members, with the same raft address.
 *
 * Pure parsing (bkv_node_config_parse) does no I/O: it is the fuzz target's
 * entry point. Any thread.
 */
#ifndef BKV_NODE_CONFIG_H
#define BKV_NODE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define BKV_CONF_MAX_MEMBERS 16
#define BKV_CONF_ADDR_MAX    128
#define BKV_CONF_PATH_MAX    1024
#define BKV_CONF_MAX_BYTES   (64 * 1024)

struct bkv_conf_member {
    uint64_t id;
    char dc[64];
    char raft[BKV_CONF_ADDR_MAX];
    char gateway[BKV_CONF_ADDR_MAX];
    char admin[BKV_CONF_ADDR_MAX];
    char snapshot[BKV_CONF_ADDR_MAX];
    int later; /* initial = no: not in the bootstrap configuration (added later) */
};

enum bkv_log_level { BKV_LOG_ERROR = 0, BKV_LOG_WARN, BKV_LOG_INFO, BKV_LOG_DEBUG };

struct bkv_node_config {
    uint64_t id;
    char dc[64];
    char raft[BKV_CONF_ADDR_MAX];
    char gateway[BKV_CONF_ADDR_MAX];
    char admin[BKV_CONF_ADDR_MAX];
    char data_dir[BKV_CONF_PATH_MAX];
    uint32_t max_attempts;
    unsigned snapshot_threshold;
    unsigned snapshot_trailing;
    unsigned election_timeout_ms;
    unsigned heartbeat_timeout_ms;
    unsigned login_timeout_s;
    unsigned max_sessions;
    enum bkv_log_level log_level;

    char hsm_module[BKV_CONF_PATH_MAX];
    char hsm_token[33];
    char hsm_pin_file[BKV_CONF_PATH_MAX];
    char hsm_node_dir[BKV_CONF_PATH_MAX];
    char realm_dir[BKV_CONF_PATH_MAX];

    char proof_key_file[BKV_CONF_PATH_MAX];
    char admin_token_file[BKV_CONF_PATH_MAX]; /* "" : changing admin operations disabled */

    struct bkv_conf_member members[BKV_CONF_MAX_MEMBERS];
    size_t n_members;
};

/*
 * Parse text (len bytes, need not be NUL-terminated; name is used in
 * messages) into *cfg. BKV_ERR_FORMAT with the message in err for any
 * problem; BKV_ERR_LENGTH above BKV_CONF_MAX_BYTES.
 */
int bkv_node_config_parse(const char *text, size_t len, const char *name,
                          struct bkv_node_config *cfg, char *err, size_t err_cap);
/* Read the file at path and parse it. BKV_ERR_IO when it cannot be read. */
int bkv_node_config_load(const char *path, struct bkv_node_config *cfg, char *err, size_t err_cap);

/* The member with this id, or NULL. */
const struct bkv_conf_member *bkv_node_config_member(const struct bkv_node_config *cfg,
                                                     uint64_t id);

/* 1 if s is host:port with a port 1..65535 and a non-empty host (or [v6]). */
int bkv_conf_address_valid(const char *s);

#endif
