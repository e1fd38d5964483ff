/*
 * The HSM handle: module, token, lock, session pool, login, messages.
 *
 * Normal path of bkv_hsm_open: check the config, get the module (module.c),
 * find the slot whose token carries the label, take the token's lock file
 * (lock.c), read the user PIN file (pinfile.c), open the session pool,
 * C_Login as user on one session (login state is per token and shared by all
 * sessions), check that the session really is a user session, then locate
 * the realm (realm.c) and remove any enrolment wrapping key still visible.
 * Failure modes: each step has its own code (see p11.h) and a message naming
 * the token and the call. CKR_TOKEN_NOT_RECOGNIZED / CKR_GENERAL_ERROR at
 * C_OpenSession or C_Login (SoftHSM2 2.6.1's start-up race, crypto.md §8)
 * lead to C_Finalize + C_Initialize and up to two retries, but only when no
 * other handle of this process shares the module. Everything is undone in
 * reverse order on failure, and the PIN is wiped on every path.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    h->logged_in = 0;
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

/*
 * Destroy enrolment wrapping keys (CKA_ID HSM_ID_WRAPKEY) that an approval
 * left behind. Ours are session objects and die with their session; this is
 * defence in depth for modules that keep them longer.
 */
static void sweep_wrapping_keys(struct bkv_hsm *h, CK_SESSION_HANDLE s)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_ATTRIBUTE t[2] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_ID, HSM_ID_WRAPKEY, sizeof(HSM_ID_WRAPKEY) - 1},
    };
    CK_OBJECT_HANDLE o;
    CK_ULONG count;

    for (int i = 0; i < 16; i++) {
        if (hsm_find(h, s, t, 2, &o, &count) != CKR_OK || count == 0)
            return;
        if (h->f->C_DestroyObject(s, o) != CKR_OK)
            return;
    }
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

int hsm_lock_file(const struct bkv_hsm_config *cfg, const char *label, char *path, size_t cap)
{
    char dir[4096];
    const char *slash;

    if (cfg->lock_dir != NULL)
        snprintf(dir, sizeof(dir), "%s", cfg->lock_dir);
    else if (cfg->softhsm_conf != NULL && (slash = strrchr(cfg->softhsm_conf, '/')) != NULL)
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - cfg->softhsm_conf), cfg->softhsm_conf);
    else if (cfg->softhsm_conf != NULL)
        snprintf(dir, sizeof(dir), ".");
    else
        snprintf(dir, sizeof(dir), "/tmp");
    return bkv_hsm_lock_path(dir[0] != '\0' ? dir : "/", label, path, cap);
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
    rc = bkv_hsm_module_get(cfg->module_path, cfg->softhsm_conf, &h->mod, why, sizeof(why));
    if (rc != BKV_OK) {
        hsm_fail(h, rc, "open", "%s", why);
        goto fail;
    }
    h->f = h->mod->f;
    rc = find_slot(h);
    if (rc != BKV_OK)
        goto fail;
    if (hsm_lock_file(cfg, h->label, path, sizeof(path)) != BKV_OK) {
        rc = hsm_fail(h, BKV_ERR_INVALID, "open", "lock directory path too long");
        goto fail;
    }
    rc = bkv_hsm_lock_acquire(path, &h->lock_fd, why, sizeof(why));
    if (rc != BKV_OK) {
        hsm_fail(h, rc, "open", "%s", why);
        goto fail;
    }
    rc = bkv_hsm_pin_read(h->pin_file, pin, sizeof(pin), &pin_len, why, sizeof(why));
    if (rc != BKV_OK) {
        hsm_fail(h, rc, "open", "%s", why);
        goto fail;
    }
    rc = start(h, cfg->sessions ? cfg->sessions : BKV_HSM_DEFAULT_SESSIONS, pin, pin_len);
    bkv_wipe(pin, sizeof(pin));
    if (rc != BKV_OK)
        goto fail;
    sweep_wrapping_keys(h, h->sessions[0]);
    rc = hsm_realm_load(h, h->sessions[0], "open");
    if (rc != BKV_OK)
        goto fail;
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
