/*
 * The HSM handle: module, token, lock, session pool, login, messages.
 *
 * Normal path of bkv_hsm_open: check the config, take the token's lock file
 * (lock.c), get the module (module.c), find the slot whose token carries the
 * label, read the user PIN file (pinfile.c), open the session pool,
 * C_Login as user on one session (login state is per token and shared by all
 * sessions), check that the session really is a user session, remove any
 * enrolment wrapping key still visible and any transport key left as a
 * token object by an older bkv-admin, then locate the realm (realm.c) and,
 * with a pinned realm, verify it. The lock directory is resolved with
 * realpath(3) so that the lock does not depend on how it is spelled.
 * Failure modes: each step has its own code (see p11.h) and a message naming
 * the token and the call. CKR_TOKEN_NOT_RECOGNIZED / CKR_GENERAL_ERROR at
 * C_OpenSession or C_Login (SoftHSM2 2.6.1's start-up race, crypto.md §8)
 * lead to C_Finalize + C_Initialize and up to two retries, but only when no
 * other handle of this process shares the module. Everything is undone in
 * reverse order on failure, and the PIN is wiped on every path.
 */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckr.h"
#include "lock.h"
#include "pinfile.h"
#include "proto/err.h"
#include "proto/util.h"

#define OPEN_ATTEMPTS 3

int hsm_fail(struct bkv_hsm *h, int code, const char *op, const char *fmt, ...)
{
    char detail[BKV_HSM_ERRMSG_LEN - 112];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&h->mu);
    snprintf(h->errmsg, sizeof(h->errmsg), "hsm: %.40s token \"%s\": %s", op, h->label, detail);
    pthread_mutex_unlock(&h->mu);
    return code;
}

int hsm_fail_ckr(struct bkv_hsm *h, const char *op, const char *call, CK_RV rv)
{
    return hsm_fail(h, bkv_hsm_ckr_to_err(rv), op, "%s: %s", call, bkv_hsm_ckr_name(rv));
}

const char *bkv_hsm_errmsg(struct bkv_hsm *h)
{
    static _Thread_local char copy[BKV_HSM_ERRMSG_LEN];

    if (h == NULL)
        return "hsm: no handle";
    pthread_mutex_lock(&h->mu);
    memcpy(copy, h->errmsg, sizeof(copy));
    pthread_mutex_unlock(&h->mu);
    return copy;
}

const char *bkv_hsm_label(const struct bkv_hsm *h)
{
    return h->label;
}

/* --- session pool --------------------------------------------------------- */

static CK_SESSION_HANDLE pool_take(struct bkv_hsm *h)
{
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;

    pthread_mutex_lock(&h->mu);
    for (;;) {
        for (size_t i = 0; i < h->nsessions; i++)
            if (!h->busy[i]) {
                h->busy[i] = 1;
                s = h->sessions[i];
                goto out;
            }
        pthread_cond_wait(&h->cv, &h->mu);
    }
out:
    pthread_mutex_unlock(&h->mu);
    return s;
}

static void pool_give(struct bkv_hsm *h, CK_SESSION_HANDLE s)
{
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < h->nsessions; i++)
        if (h->sessions[i] == s)
            h->busy[i] = 0;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

void hsm_begin(struct bkv_hsm *h, CK_SESSION_HANDLE *s)
{
    pthread_rwlock_rdlock(&h->role);
    *s = pool_take(h);
}

void hsm_end(struct bkv_hsm *h, CK_SESSION_HANDLE s)
{
    pool_give(h, s);
    pthread_rwlock_unlock(&h->role);
}

void hsm_begin_exclusive(struct bkv_hsm *h, CK_SESSION_HANDLE *s)
{
    pthread_rwlock_wrlock(&h->role);
    *s = pool_take(h);
}

void hsm_end_exclusive(struct bkv_hsm *h, CK_SESSION_HANDLE s)
{
    pool_give(h, s);
    pthread_rwlock_unlock(&h->role);
}

void hsm_create_lock(struct bkv_hsm *h)
{
    pthread_mutex_lock(&h->mod->create);
}

void hsm_create_unlock(struct bkv_hsm *h)
{
    pthread_mutex_unlock(&h->mod->create);
}

/* --- objects and randomness ---------------------------------------------- */

CK_RV hsm_find(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_ATTRIBUTE *tmpl, CK_ULONG n,
               CK_OBJECT_HANDLE *out, CK_ULONG *count)
{
    CK_OBJECT_HANDLE found[2];
    CK_RV rv, rv2;

    *count = 0;
    *out = CK_INVALID_HANDLE;
    rv = h->f->C_FindObjectsInit(s, tmpl, n);
    if (rv != CKR_OK)
        return rv;
    rv = h->f->C_FindObjects(s, found, 2, count);
    rv2 = h->f->C_FindObjectsFinal(s);
    if (rv == CKR_OK)
        rv = rv2;
    if (rv == CKR_OK && *count > 0)
        *out = found[0];
    return rv;
}

CK_RV hsm_find_labelled(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls,
                        const char *label, const uint8_t *id, size_t id_len, CK_OBJECT_HANDLE *out,
                        CK_ULONG *count)
{
    CK_ATTRIBUTE t[3] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_ID, (void *)id, id_len},
    };

    return hsm_find(h, s, t, id != NULL ? 3 : 2, out, count);
}

CK_RV hsm_random(struct bkv_hsm *h, CK_SESSION_HANDLE s, uint8_t *out, size_t n)
{
    return h->f->C_GenerateRandom(s, out, n);
}

/* --- login ----------------------------------------------------------------- */

static CK_RV login(struct bkv_hsm *h, CK_SESSION_HANDLE s, const uint8_t *pin, size_t pin_len)
{
    CK_SESSION_INFO info;
    CK_RV rv = h->f->C_Login(s, CKU_USER, (CK_UTF8CHAR *)pin, pin_len);

    if (rv == CKR_USER_ALREADY_LOGGED_IN)
        rv = CKR_OK;
    if (rv != CKR_OK)
        return rv;
    /* After a failed start-up race the session may not really be a user one. */
    rv = h->f->C_GetSessionInfo(s, &info);
    if (rv == CKR_OK && info.state != CKS_RW_USER_FUNCTIONS)
        rv = CKR_GENERAL_ERROR;
    return rv;
}

int hsm_login_user(struct bkv_hsm *h, CK_SESSION_HANDLE s, const char *op)
{
    uint8_t pin[BKV_HSM_PIN_MAX];
    char why[BKV_HSM_ERRMSG_LEN];
    size_t pin_len = 0;
    CK_RV rv;
    int rc;

    rc = bkv_hsm_pin_read(h->pin_file, pin, sizeof(pin), &pin_len, why, sizeof(why));
    if (rc != BKV_OK)
        return hsm_fail(h, rc, op, "%s", why);
    rv = login(h, s, pin, pin_len);
    bkv_wipe(pin, sizeof(pin));
    if (rv != CKR_OK)
        return hsm_fail_ckr(h, op, "C_Login", rv);
    h->logged_in = 1;
    return BKV_OK;
}

void hsm_logged_out(struct bkv_hsm *h)
{
    h->logged_in = 0;
    h->has_realm = 0;
    h->marker = h->seal_key = h->mac_key = h->hpke_key = CK_INVALID_HANDLE;
    /* C_Logout destroys private session objects: the transport private key. */
    h->has_transport = 0;
    h->transport_pub = h->transport_priv = CK_INVALID_HANDLE;
}

int hsm_fail_decrypt(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, CK_RV rv,
                     const char *op, const char *call, const char *what)
{
    CK_OBJECT_CLASS cls;
    CK_ATTRIBUTE a = {CKA_CLASS, &cls, sizeof(cls)};
    CK_SESSION_INFO info;
    CK_RV probe;

    if (rv != CKR_GENERAL_ERROR && rv != CKR_ENCRYPTED_DATA_INVALID &&
        rv != CKR_WRAPPED_KEY_INVALID)
        return hsm_fail(h, bkv_hsm_ckr_to_err(rv), op, "%s: %s", call, bkv_hsm_ckr_name(rv));
    if (rv == CKR_GENERAL_ERROR) {
        /* SoftHSM2's answer to a bad tag, but also to a broken token: ask the token. */
        probe = h->f->C_GetSessionInfo(s, &info);
        if (probe == CKR_OK && info.state != CKS_RW_USER_FUNCTIONS)
            probe = CKR_USER_NOT_LOGGED_IN;
        if (probe == CKR_OK)
            probe = h->f->C_GetAttributeValue(s, key, &a, 1);
        if (probe != CKR_OK)
            return hsm_fail(h, BKV_ERR_HSM, op,
                            "%s: CKR_GENERAL_ERROR, and the token does not answer a health probe "
                            "(%s): the HSM is unhealthy, not the data",
                            call, bkv_hsm_ckr_name(probe));
    }
    return hsm_fail(h, BKV_ERR_DECRYPT, op, "%s (%s: %s)", what, call, bkv_hsm_ckr_name(rv));
}

/* --- open ------------------------------------------------------------------ */

/* The slot whose token's label is h->label; lists the labels seen if none. */
static int find_slot(struct bkv_hsm *h)
{
    CK_SLOT_ID slots[64];
    CK_ULONG n = 64;
    CK_TOKEN_INFO ti;
    char padded[32], seen[256] = "";
    size_t seen_len = 0, label_len = strlen(h->label);
    CK_RV rv;

    memset(padded, ' ', sizeof(padded));
    memcpy(padded, h->label, label_len);
    rv = h->f->C_GetSlotList(CK_TRUE, slots, &n);
    if (rv != CKR_OK)
        return hsm_fail_ckr(h, "open", "C_GetSlotList", rv);
    for (CK_ULONG i = 0; i < n; i++) {
        if (h->f->C_GetTokenInfo(slots[i], &ti) != CKR_OK || !(ti.flags & CKF_TOKEN_INITIALIZED))
            continue;
        if (memcmp(ti.label, padded, sizeof(padded)) == 0) {
            h->slot = slots[i];
            return BKV_OK;
        }
        size_t l = sizeof(ti.label);
        while (l > 0 && ti.label[l - 1] == ' ')
            l--;
        int w = snprintf(seen + seen_len, sizeof(seen) - seen_len, "%s\"%.*s\"",
                         seen_len ? ", " : "", (int)l, (const char *)ti.label);
        if (w > 0 && (size_t)w < sizeof(seen) - seen_len)
            seen_len += (size_t)w;
    }
    return hsm_fail(h, BKV_ERR_HSM_TOKEN, "open", "no token with this label in module %s (%s%s)",
                    h->mod->path, seen_len ? "tokens: " : "no initialised token", seen);
}

static void close_sessions(struct bkv_hsm *h)
{
    if (h->logged_in && h->nsessions > 0)
        h->f->C_Logout(h->sessions[0]);
    hsm_logged_out(h);
    for (size_t i = 0; i < h->nsessions; i++)
        h->f->C_CloseSession(h->sessions[i]);
    h->nsessions = 0;
}

static CK_RV open_sessions(struct bkv_hsm *h, size_t want, const char **call)
{
    CK_RV rv;

    *call = "C_OpenSession";
    for (size_t i = 0; i < want; i++) {
        rv = h->f->C_OpenSession(h->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL,
                                 &h->sessions[i]);
        if (rv != CKR_OK)
            return rv;
        h->busy[i] = 0;
        h->nsessions = i + 1;
    }
    return CKR_OK;
}

/* Sessions and login, with the start-up retry of crypto.md §8. */
static int start(struct bkv_hsm *h, size_t want, const uint8_t *pin, size_t pin_len)
{
    char why[BKV_HSM_ERRMSG_LEN];
    const char *call = "C_OpenSession";
    CK_RV rv = CKR_OK;
    int rc;

    for (int attempt = 0; attempt < OPEN_ATTEMPTS; attempt++) {
        if (attempt > 0) {
            struct timespec pause = {0, 20000000L * attempt};
            close_sessions(h);
            if (bkv_hsm_module_reinit(h->mod, why, sizeof(why)) != BKV_OK)
                break;
            nanosleep(&pause, NULL);
            rc = find_slot(h);
            if (rc != BKV_OK)
                return rc;
        }
        rv = open_sessions(h, want, &call);
        if (rv == CKR_OK) {
            call = "C_Login";
            rv = login(h, h->sessions[0], pin, pin_len);
            if (rv == CKR_OK) {
                h->logged_in = 1;
                return BKV_OK;
            }
        }
        if (rv != CKR_TOKEN_NOT_RECOGNIZED && rv != CKR_GENERAL_ERROR)
            break;
    }
    return hsm_fail_ckr(h, "open", call, rv);
}

/* Destroy up to 16 objects matching t. */
static void sweep(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_ATTRIBUTE *t, CK_ULONG n)
{
    CK_OBJECT_HANDLE o;
    CK_ULONG count;

    for (int i = 0; i < 16; i++) {
        if (hsm_find(h, s, t, n, &o, &count) != CKR_OK || count == 0)
            return;
        if (h->f->C_DestroyObject(s, o) != CKR_OK)
            return;
    }
}

/*
 * Destroy enrolment wrapping keys (CKA_ID HSM_ID_WRAPKEY) that an approval
 * left behind. Ours are session objects and die with their session; this is
 * defence in depth for modules that keep them longer. Also destroy transport
 * keys stored as token objects (CKA_TOKEN true, label HSM_LABEL_TRANSPORT):
 * the two-step enrolment of earlier versions left one in the token, where
 * any holder of the user PIN could derive the enrolment unwrapping key from
 * it. Ours are session objects now (enrol.c).
 */
static void sweep_stale_keys(struct bkv_hsm *h, CK_SESSION_HANDLE s)
{
    CK_OBJECT_CLASS secret = CKO_SECRET_KEY, priv = CKO_PRIVATE_KEY, pub = CKO_PUBLIC_KEY;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE wrap[2] = {
        {CKA_CLASS, &secret, sizeof(secret)},
        {CKA_ID, HSM_ID_WRAPKEY, sizeof(HSM_ID_WRAPKEY) - 1},
    };
    CK_ATTRIBUTE transport[3] = {
        {CKA_CLASS, &priv, sizeof(priv)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_LABEL, HSM_LABEL_TRANSPORT, sizeof(HSM_LABEL_TRANSPORT) - 1},
    };

    sweep(h, s, wrap, 2);
    sweep(h, s, transport, 3);
    transport[0].pValue = &pub;
    sweep(h, s, transport, 3);
}

static int check_config(struct bkv_hsm *h, const struct bkv_hsm_config *cfg)
{
    size_t len = cfg->token_label != NULL ? strlen(cfg->token_label) : 0;

    if (len == 0) {
        snprintf(h->errmsg, sizeof(h->errmsg), "hsm: open token: no token label configured");
        return BKV_ERR_INVALID;
    }
    if (len > BKV_HSM_LABEL_MAX) {
        snprintf(h->errmsg, sizeof(h->errmsg),
                 "hsm: open token \"%.40s...\": a token label has at most 32 bytes",
                 cfg->token_label);
        return BKV_ERR_INVALID;
    }
    memcpy(h->label, cfg->token_label, len + 1);
    if (cfg->pin_file == NULL)
        return hsm_fail(h, BKV_ERR_INVALID, "open", "no PIN file configured");
    if (cfg->sessions > BKV_HSM_MAX_SESSIONS)
        return hsm_fail(h, BKV_ERR_INVALID, "open", "at most %d sessions", BKV_HSM_MAX_SESSIONS);
    h->pin_file = strdup(cfg->pin_file);
    return h->pin_file != NULL ? BKV_OK : BKV_ERR_NOMEM;
}

int hsm_lock_file(const struct bkv_hsm_config *cfg, const char *label, char *path, size_t cap,
                  char *why, size_t why_cap)
{
    char dir[PATH_MAX], real[PATH_MAX];
    const char *slash;
    struct stat st;

    if (cfg->lock_dir != NULL) {
        if (snprintf(dir, sizeof(dir), "%s", cfg->lock_dir) >= (int)sizeof(dir))
            goto too_long;
    } else if (cfg->softhsm_conf != NULL) {
        slash = strrchr(cfg->softhsm_conf, '/');
        if (slash == NULL)
            snprintf(dir, sizeof(dir), ".");
        else if (slash == cfg->softhsm_conf)
            snprintf(dir, sizeof(dir), "/");
        else if (snprintf(dir, sizeof(dir), "%.*s", (int)(slash - cfg->softhsm_conf),
                          cfg->softhsm_conf) >= (int)sizeof(dir))
            goto too_long;
    } else {
        snprintf(why, why_cap,
                 "no lock directory: set lock_dir (a hardware HSM needs one) or softhsm_conf");
        return BKV_ERR_INVALID;
    }
    if (realpath(dir, real) == NULL) {
        snprintf(why, why_cap, "lock directory %.300s: %s", dir, strerror(errno));
        return BKV_ERR_IO;
    }
    if (stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(why, why_cap, "lock directory %.300s is not a directory", real);
        return BKV_ERR_IO;
    }
    if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        snprintf(why, why_cap,
                 "lock directory %.300s is owned by uid %lu with mode %04o: it must be ours "
                 "(uid %lu) and not writable by group or others",
                 real, (unsigned long)st.st_uid, (unsigned)(st.st_mode & 07777),
                 (unsigned long)geteuid());
        return BKV_ERR_PERMISSION;
    }
    if (bkv_hsm_lock_path(real, label, path, cap) == BKV_OK)
        return BKV_OK;
too_long:
    snprintf(why, why_cap, "lock directory path too long");
    return BKV_ERR_LENGTH;
}

int bkv_hsm_open(const struct bkv_hsm_config *cfg, struct bkv_hsm **out, char *err, size_t err_cap)
{
    uint8_t pin[BKV_HSM_PIN_MAX];
    char why[BKV_HSM_ERRMSG_LEN], path[4200];
    size_t pin_len = 0;
    struct bkv_hsm *h;
    int rc;

    *out = NULL;
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        snprintf(err, err_cap, "hsm: open token: out of memory");
        return BKV_ERR_NOMEM;
    }
    h->lock_fd = -1;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    pthread_rwlock_init(&h->role, NULL);

    rc = check_config(h, cfg);
    if (rc != BKV_OK)
        goto fail;
    /* The lock first: it is part of the configuration, and guards everything after. */
    rc = hsm_lock_file(cfg, h->label, path, sizeof(path), why, sizeof(why));
    if (rc != BKV_OK) {
        hsm_fail(h, rc, "open", "%s", why);
        goto fail;
    }
    rc = bkv_hsm_lock_acquire(path, &h->lock_fd, why, sizeof(why));
    if (rc != BKV_OK) {
        hsm_fail(h, rc, "open", "%s", why);
        goto fail;
    }
    rc = bkv_hsm_module_get(cfg->module_path, cfg->softhsm_conf, &h->mod, why, sizeof(why));
    if (rc != BKV_OK) {
        hsm_fail(h, rc, "open", "%s", why);
        goto fail;
    }
    h->f = h->mod->f;
    rc = find_slot(h);
    if (rc != BKV_OK)
        goto fail;
    rc = bkv_hsm_pin_read(h->pin_file, pin, sizeof(pin), &pin_len, why, sizeof(why));
    if (rc != BKV_OK) {
        hsm_fail(h, rc, "open", "%s", why);
        goto fail;
    }
    rc = start(h, cfg->sessions ? cfg->sessions : BKV_HSM_DEFAULT_SESSIONS, pin, pin_len);
    bkv_wipe(pin, sizeof(pin));
    if (rc != BKV_OK)
        goto fail;
    sweep_stale_keys(h, h->sessions[0]);
    rc = hsm_realm_load(h, h->sessions[0], NULL, "open");
    if (rc != BKV_OK)
        goto fail;
    if (cfg->realm != NULL && h->has_realm) {
        rc = hsm_realm_verify_locked(h, h->sessions[0], cfg->realm, "open");
        if (rc != BKV_OK)
            goto fail;
    }
    if (cfg->require_realm && !h->has_realm) {
        rc = hsm_fail(h, BKV_ERR_HSM_NOT_ENROLLED, "open",
                      "the token holds no realm yet: create one or enrol this node");
        goto fail;
    }
    *out = h;
    return BKV_OK;
fail:
    snprintf(err, err_cap, "%s", h->errmsg);
    bkv_hsm_close(h);
    return rc;
}

void bkv_hsm_close(struct bkv_hsm *h)
{
    if (h == NULL)
        return;
    if (h->f != NULL)
        close_sessions(h);
    bkv_hsm_lock_release(h->lock_fd);
    bkv_hsm_module_put(h->mod);
    pthread_rwlock_destroy(&h->role);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free(h->pin_file);
    bkv_wipe(h, sizeof(*h));
    free(h);
}
