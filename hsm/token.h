/*
 * Provisioning a node's token: its own SoftHSM2 configuration and token
 * directory, then the token and its PINs initialised through PKCS#11 itself
 * (C_InitToken, C_InitPIN), so the same code works for a hardware HSM's free
 * slot. Two nodes on one machine never share a token: each gets its own
 * directory, and the lock file of hsm/lock.h guards the token at run time.
 *
 * Threads: these functions may run on any thread, but SoftHSM2's
 * configuration is per process (see p11.h), so a process provisions the
 * tokens of one configuration.
 */
#ifndef BKV_HSM_TOKEN_H
#define BKV_HSM_TOKEN_H

#include <stddef.h>

#include "p11.h"

#define BKV_HSM_CONF_NAME "softhsm2.conf"

/*
 * Create the node directory dir (borrowed; mode 0700), its token directory
 * dir/tokens (0700) and dir/softhsm2.conf (0600) with
 *   directories.tokendir = <dir>/tokens
 *   objectstore.backend = file
 *   log.level = ERROR
 * dir must be an absolute path. Existing directories are reused if they are
 * real directories (BKV_ERR_INVALID for a symlink or a file) owned by this
 * user and not writable by group or others (BKV_ERR_PERMISSION); an existing
 * conf with other content is refused (BKV_ERR_INVALID). BKV_ERR_IO for file
 * system errors. err (capacity err_cap) receives the reason on failure. The
 * conf's path is written to conf_out (capacity conf_cap) when not NULL.
 */
int bkv_hsm_node_dir_create(const char *dir, char *conf_out, size_t conf_cap, char *err,
                            size_t err_cap);

/*
 * Initialise a new token labelled cfg->token_label in a free slot of
 * cfg->module_path (with cfg->softhsm_conf as in bkv_hsm_open): C_InitToken
 * with the SO PIN read from so_pin_file, then C_InitPIN with the user PIN of
 * cfg->pin_file. Both PIN files are checked like every PIN file
 * (BKV_ERR_PERMISSION). BKV_ERR_INVALID when a token with that label already
 * exists, BKV_ERR_HSM_TOKEN when no free slot is left, BKV_ERR_HSM_LOCKED
 * when another process holds the label's lock, BKV_ERR_HSM_MODULE /
 * BKV_ERR_HSM_PIN / BKV_ERR_HSM as for open. err receives the message.
 */
int bkv_hsm_token_init(const struct bkv_hsm_config *cfg, const char *so_pin_file, char *err,
                       size_t err_cap);

#endif
