/*
 * libFuzzer target: bkv-node's configuration file (node/config.h,
 * bkv_node_config_parse, the pure parser with no I/O). Whatever the text, the
 * error message stays inside its buffer and is NUL-terminated; an accepted
 * configuration names its own node among its members, with valid addresses.
 */
#include <string.h>

#include "fuzz.h"
#include "node/config.h"
#include "proto/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct bkv_node_config cfg;
    char err[256];
    const struct bkv_conf_member *self;
    int rc;

    memset(err, 0x5a, sizeof(err));
    err[0] = '\0';
    rc = bkv_node_config_parse((const char *)data, size, "fuzz.conf", &cfg, err, sizeof(err));
    FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
    if (rc != BKV_OK) {
        FUZZ_CHECK(err[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(cfg.n_members >= 1 && cfg.n_members <= BKV_CONF_MAX_MEMBERS);
    self = bkv_node_config_member(&cfg, cfg.id);
    FUZZ_CHECK(self != NULL);
    FUZZ_CHECK(strcmp(self->raft, cfg.raft) == 0);
    FUZZ_CHECK(bkv_conf_address_valid(cfg.raft) && bkv_conf_address_valid(cfg.gateway) &&
               bkv_conf_address_valid(cfg.admin));
    FUZZ_CHECK(cfg.max_attempts >= 1 && cfg.max_attempts <= 1000000);
    FUZZ_CHECK(cfg.data_dir[0] == '/' && cfg.hsm_module[0] == '/');
    FUZZ_CHECK(memchr(cfg.hsm_token, '\0', sizeof(cfg.hsm_token)) != NULL);
    for (size_t i = 0; i < cfg.n_members; i++) {
        const struct bkv_conf_member *m = &cfg.members[i];

        FUZZ_CHECK(bkv_node_config_member(&cfg, m->id) == m);
        FUZZ_CHECK(bkv_conf_address_valid(m->raft) && bkv_conf_address_valid(m->gateway) &&
                   bkv_conf_address_valid(m->admin) && bkv_conf_address_valid(m->snapshot));
    }
    return 0;
}
