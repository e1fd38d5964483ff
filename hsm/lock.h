/*
 * One process per token: an exclusive flock(2) on a per-token lock file. The
 * lock belongs to the open file description, so a second open of the same
 * token fails even inside the same process. The holder writes its pid into
 * the file so that the refusal can name it. Reentrant; any thread.
 */
#ifndef BKV_HSM_LOCK_H
#define BKV_HSM_LOCK_H

#include <stddef.h>

/*
 * The lock file path for token label in dir (both borrowed):
 * dir/bkv-token-<label>.lock, with every byte of the label outside
 * [A-Za-z0-9._-] written as %XX. BKV_ERR_LENGTH if it does not fit in cap.
 */
int bkv_hsm_lock_path(const char *dir, const char *label, char *out, size_t cap);

/*
 * Take the lock at path without waiting. On success *fd holds it until
 * bkv_hsm_lock_release(*fd). BKV_ERR_HSM_LOCKED when another open file
 * description holds it (err names the holder's pid and the lock file),
 * BKV_ERR_IO when the file cannot be opened. err (capacity err_cap) receives
 * the reason on failure.
 */
int bkv_hsm_lock_acquire(const char *path, int *fd, char *err, size_t err_cap);

/* Release a lock taken by bkv_hsm_lock_acquire; fd < 0 is a no-op. */
void bkv_hsm_lock_release(int fd);

#endif
