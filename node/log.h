/*
 * One-line logs of the node programs on stderr:
 *   2026-11-22T08:30:01.123Z bkv-node[1234] info: gateway: LOGIN_INIT OK (3.1 ms)
 * Never pass a secret, a request byte, a token or an account id.
 * bkv_log_init sets the program name and level once at start; any thread may log.
 */
#ifndef BKV_NODE_LOG_H
#define BKV_NODE_LOG_H

#include "node/config.h"

void bkv_log_init(const char *prog, enum bkv_log_level level);
/* Parse "error", "warn", "info" or "debug"; 0 on success, -1 otherwise. */
int bkv_log_level_parse(const char *s, enum bkv_log_level *out);
void bkv_log(enum bkv_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
