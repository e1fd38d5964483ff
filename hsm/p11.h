/*
 * A BKV node's handle on its HSM token through PKCS#11.
 *
 * bkv_hsm_open loads the module (hsm/module.h), finds the token by label,
 * takes the per-token lock file so that no other process (and no second
 * handle) uses the same token, opens a small pool of sessions and logs the
 * user in with the PIN from a file. A hardware HSM needs nothing but another
 * module path and token label.
 *
 * Threads: after open, the operations of seal.h, mac.h, decap.h and
 * secrets.h may run on any number of threads at once (libuv workers); each
 * takes a session from the pool for its duration. Realm creation and the
 * enrolment steps (realm.h, enrol.h) take the handle exclusively and wait for
 * running operations. bkv_hsm_close must not race with any other call.
 *
 * Errors: every function returns 0 or an enum bkv_err code, and writes a
 * message that names the token and the failing call into the handle, e.g.
 *   hsm: open token "node-2": C_Login: CKR_PIN_INCORRECT
 */
#ifndef BKV_HSM_P11_H
#define BKV_HSM_P11_H

#include <stddef.h>

struct bkv_hsm_realm;

#define BKV_HSM_ERRMSG_LEN       512
#define BKV_HSM_LABEL_MAX        32 /* a PKCS#11 token label */
#define BKV_HSM_MAX_SESSIONS     32
#define BKV_HSM_DEFAULT_SESSIONS 4

/* Where the token is and how to reach it. Strings are borrowed for the call. */
struct bkv_hsm_config {
    const char *module_path; /* NULL: Debian's SoftHSM2 (/usr/lib/softhsm/libsofthsm2.so) */
    const char *token_label; /* required, at most 32 bytes */
    const char *pin_file;    /* the user PIN; mode 0600 (or stricter), owned by us */
    /*
     * Optional SoftHSM2 configuration file: set as SOFTHSM2_CONF before the
     * module is initialised. It applies to the whole process (SoftHSM2 reads
     * it once), so every handle of a process must agree on it.
     */
    const char *softhsm_conf;
    /*
     * Directory of the lock file; NULL: the directory of softhsm_conf. One
     * of the two is required (a hardware HSM needs lock_dir). The lock file
     * is named after the directory's real path, so every spelling of it
     * gives the same lock; the directory must belong to us and not be
     * writable by group or others.
     */
    const char *lock_dir;
    unsigned sessions; /* session pool size; 0: BKV_HSM_DEFAULT_SESSIONS */
    /* 1: fail with BKV_ERR_HSM_NOT_ENROLLED unless the token holds a realm. */
    int require_realm;
    /*
     * The pinned realm description (the operator's realm.bin; borrowed for
     * the call), or NULL. If the token holds a realm, open fails unless it is
     * this one: see bkv_hsm_realm_verify (realm.h). Programs that run with a
     * realm always pass it; only realm creation and enrolment open without.
     */
    const struct bkv_hsm_realm *realm;
};

struct bkv_hsm;

/*
 * Open the token of cfg and log in. On success *out is a handle owned by the
 * caller (bkv_hsm_close). If the token holds a realm its keys are located;
 * a realm marker without all of its keys fails with BKV_ERR_HSM_NO_KEY, and
 * with cfg->realm set the realm must be the pinned one (BKV_ERR_INVALID for
 * another description, BKV_ERR_MAC for a substituted key).
 * Errors: BKV_ERR_INVALID (bad config, no lock directory), BKV_ERR_PERMISSION
 * (a lock directory others may write), BKV_ERR_HSM_MODULE (module missing
 * or not loadable), BKV_ERR_HSM_TOKEN (no token with that label),
 * BKV_ERR_HSM_LOCKED (another process or handle holds the token, or
 * CKR_PIN_LOCKED), BKV_ERR_PERMISSION / BKV_ERR_IO (PIN file),
 * BKV_ERR_HSM_PIN (PIN refused), BKV_ERR_HSM_NOT_ENROLLED (require_realm),
 * BKV_ERR_HSM_NO_KEY, BKV_ERR_HSM (other CKR_*). On failure err (capacity
 * err_cap; NULL/0 allowed) receives the message. Start-up races of SoftHSM2
 * (CKR_TOKEN_NOT_RECOGNIZED / CKR_GENERAL_ERROR at open or login) are
 * retried after C_Finalize/C_Initialize when no other handle of this process
 * uses the module. Call from one thread; any thread.
 */
int bkv_hsm_open(const struct bkv_hsm_config *cfg, struct bkv_hsm **out, char *err, size_t err_cap);

/* Log out, close the sessions, release the lock, free h. NULL is fine. */
void bkv_hsm_close(struct bkv_hsm *h);

/*
 * The message of the latest failure of any call on h, copied into a
 * thread-local buffer that stays valid until this thread's next call of
 * bkv_hsm_errmsg. With several threads failing at once the latest one wins.
 */
const char *bkv_hsm_errmsg(struct bkv_hsm *h);

/* The token label of h (owned by h). */
const char *bkv_hsm_label(const struct bkv_hsm *h);

#endif
