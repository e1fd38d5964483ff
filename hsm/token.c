/*
 * Token provisioning.
 *
 * Normal path: bkv_hsm_node_dir_create makes the node directory, the token
 * directory and a SoftHSM2 configuration that points at it (file object
 * store, errors only in syslog); both directories, new or existing, must be
 * real directories (not symlinks) owned by us and not writable by group or
 * others. bkv_hsm_token_init gets the module with that configuration, takes
 * the label's lock file (before looking at the slots, so that two processes
 * cannot both find the label free), refuses a label already in use, reads
 * both PIN files, C_InitToken on a free slot, finds the new token again by
 * label (SoftHSM2 gives it a new slot id), logs in as SO on a read-write
 * session, C_InitPIN, logs out.
 * Failure modes: see token.h; every message names the token and the call.
 * PINs are wiped on every path; nothing is logged.
 */
#include "token.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckr.h"
#include "internal.h"
#include "lock.h"
#include "module.h"
#include "pinfile.h"
#include "proto/err.h"
#include "proto/util.h"

/* Make path (0700) or reuse it if it is a safe directory: ours, no symlink, no group/other write.
 */
static int make_dir(const char *path, char *err, size_t err_cap)
{
    struct stat st;

    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        snprintf(err, err_cap, "hsm: create node directory %s: %s", path, strerror(errno));
        return BKV_ERR_IO;
    }
    if (lstat(path, &st) != 0) {
        snprintf(err, err_cap, "hsm: create node directory %s: %s", path, strerror(errno));
        return BKV_ERR_IO;
    }
    if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode)) {
        snprintf(err, err_cap, "hsm: create node directory: %s is %s, not a directory", path,
                 S_ISLNK(st.st_mode) ? "a symbolic link" : "a file");
        return BKV_ERR_INVALID;
    }
    if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        snprintf(err, err_cap,
                 "hsm: create node directory: %s is owned by uid %lu with mode %04o; it must be "
                 "owned by this user (uid %lu) and not writable by group or others (chmod 700)",
                 path, (unsigned long)st.st_uid, (unsigned)(st.st_mode & 07777),
                 (unsigned long)geteuid());
        return BKV_ERR_PERMISSION;
    }
    return BKV_OK;
}

static int write_conf(const char *path, const char *text, char *err, size_t err_cap)
{
    size_t len = strlen(text);
    char old[4096];
    ssize_t n;
    int fd;

    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno == EEXIST) {
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        n = fd >= 0 ? read(fd, old, sizeof(old)) : -1;
        if (fd >= 0)
            close(fd);
        if (n == (ssize_t)len && memcmp(old, text, len) == 0)
            return BKV_OK;
        snprintf(err, err_cap, "hsm: create node directory: %s already exists with other content",
                 path);
        return BKV_ERR_INVALID;
    }
    if (fd < 0) {
        snprintf(err, err_cap, "hsm: create node directory: %s: %s", path, strerror(errno));
        return BKV_ERR_IO;
    }
    n = write(fd, text, len);
    if (n != (ssize_t)len || fsync(fd) != 0) {
        snprintf(err, err_cap, "hsm: create node directory: write %s: %s", path,
                 n < 0 ? strerror(errno) : "short write");
        close(fd);
        unlink(path);
        return BKV_ERR_IO;
    }
    close(fd);
    return BKV_OK;
}

int bkv_hsm_node_dir_create(const char *dir, char *conf_out, size_t conf_cap, char *err,
                            size_t err_cap)
{
    char tokens[4096], conf[4096], text[4096 + 128];
    int rc, w;

    if (dir == NULL || dir[0] != '/') {
        snprintf(err, err_cap, "hsm: create node directory: %s is not an absolute path",
                 dir != NULL ? dir : "(null)");
        return BKV_ERR_INVALID;
    }
    if (snprintf(tokens, sizeof(tokens), "%s/tokens", dir) >= (int)sizeof(tokens) ||
        snprintf(conf, sizeof(conf), "%s/%s", dir, BKV_HSM_CONF_NAME) >= (int)sizeof(conf)) {
        snprintf(err, err_cap, "hsm: create node directory: path too long");
        return BKV_ERR_INVALID;
    }
    w = snprintf(text, sizeof(text),
                 "# SoftHSM2 configuration of one BKV node (written by bkv-admin).\n"
                 "directories.tokendir = %s\n"
                 "objectstore.backend = file\n"
                 "log.level = ERROR\n"
                 "slots.removable = false\n",
                 tokens);
    if (w < 0 || (size_t)w >= sizeof(text))
        return BKV_ERR_INVALID;
    if ((rc = make_dir(dir, err, err_cap)) != BKV_OK ||
        (rc = make_dir(tokens, err, err_cap)) != BKV_OK ||
        (rc = write_conf(conf, text, err, err_cap)) != BKV_OK)
        return rc;
    if (conf_out != NULL && snprintf(conf_out, conf_cap, "%s", conf) >= (int)conf_cap)
        return BKV_ERR_LENGTH;
    return BKV_OK;
}

/* Provisioning state, undone in reverse order. */
struct init {
    const char *label;
    struct bkv_hsm_module *mod;
    int lock_fd;
    uint8_t so_pin[BKV_HSM_PIN_MAX], user_pin[BKV_HSM_PIN_MAX];
    size_t so_len, user_len;
    char *err;
    size_t err_cap;
};

static int init_fail(struct init *in, int code, const char *detail)
{
    snprintf(in->err, in->err_cap, "hsm: initialise token \"%s\": %s", in->label, detail);
    return code;
}

static int init_ckr(struct init *in, const char *call, CK_RV rv)
{
    char detail[128];

    snprintf(detail, sizeof(detail), "%s: %s", call, bkv_hsm_ckr_name(rv));
    return init_fail(in, bkv_hsm_ckr_to_err(rv), detail);
}

/*
 * *found: the slot holding label (if *has_found); *free_slot: a slot with an
 * uninitialised token (if *has_free). Slot ids may be 0, so flags say which.
 */
static CK_RV scan_slots(CK_FUNCTION_LIST *f, const char *label, CK_SLOT_ID *found, int *has_found,
                        CK_SLOT_ID *free_slot, int *has_free)
{
    CK_SLOT_ID slots[64];
    CK_ULONG n = 64;
    CK_TOKEN_INFO ti;
    char padded[32];
    CK_RV rv;

    *has_found = *has_free = 0;
    memset(padded, ' ', sizeof(padded));
    memcpy(padded, label, strlen(label));
    /* The size query first: SoftHSM2 adds a fresh uninitialised slot only then. */
    rv = f->C_GetSlotList(CK_TRUE, NULL, &n);
    if (rv == CKR_OK) {
        n = 64;
        rv = f->C_GetSlotList(CK_TRUE, slots, &n);
    }
    if (rv != CKR_OK)
        return rv;
    for (CK_ULONG i = 0; i < n; i++) {
        if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
            continue;
        if (!(ti.flags & CKF_TOKEN_INITIALIZED)) {
            if (!*has_free)
                *free_slot = slots[i];
            *has_free = 1;
        } else if (memcmp(ti.label, padded, sizeof(padded)) == 0) {
            *found = slots[i];
            *has_found = 1;
        }
    }
    return CKR_OK;
}

static int init_pins(struct init *in, CK_SLOT_ID slot)
{
    CK_FUNCTION_LIST *f = in->mod->f;
    CK_SESSION_HANDLE s;
    CK_RV rv;
    int rc = BKV_OK;

    rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
    if (rv != CKR_OK)
        return init_ckr(in, "C_OpenSession", rv);
    rv = f->C_Login(s, CKU_SO, in->so_pin, in->so_len);
    if (rv != CKR_OK) {
        rc = init_ckr(in, "C_Login(SO)", rv);
        goto out;
    }
    rv = f->C_InitPIN(s, in->user_pin, in->user_len);
    if (rv != CKR_OK)
        rc = init_ckr(in, "C_InitPIN", rv);
    f->C_Logout(s);
out:
    f->C_CloseSession(s);
    return rc;
}

int bkv_hsm_token_init(const struct bkv_hsm_config *cfg, const char *so_pin_file, char *err,
                       size_t err_cap)
{
    struct init in = {.label = cfg->token_label, .lock_fd = -1, .err = err, .err_cap = err_cap};
    char why[BKV_HSM_ERRMSG_LEN], path[4200];
    CK_UTF8CHAR padded[32];
    CK_SLOT_ID found, free_slot;
    int has_found, has_free;
    CK_RV rv;
    int rc;

    if (in.label == NULL || in.label[0] == '\0' || strlen(in.label) > BKV_HSM_LABEL_MAX) {
        snprintf(err, err_cap, "hsm: initialise token: the label must have 1 to 32 bytes");
        return BKV_ERR_INVALID;
    }
    rc = bkv_hsm_module_get(cfg->module_path, cfg->softhsm_conf, &in.mod, why, sizeof(why));
    if (rc != BKV_OK)
        return init_fail(&in, rc, why);
    /* The lock first: two processes must not both find the label free. */
    rc = hsm_lock_file(cfg, in.label, path, sizeof(path), why, sizeof(why));
    if (rc == BKV_OK)
        rc = bkv_hsm_lock_acquire(path, &in.lock_fd, why, sizeof(why));
    if (rc != BKV_OK) {
        init_fail(&in, rc, why);
        goto out;
    }
    rv = scan_slots(in.mod->f, in.label, &found, &has_found, &free_slot, &has_free);
    if (rv != CKR_OK) {
        rc = init_ckr(&in, "C_GetSlotList", rv);
        goto out;
    }
    if (has_found) {
        snprintf(why, sizeof(why), "a token with this label already exists (slot %lu)",
                 (unsigned long)found);
        rc = init_fail(&in, BKV_ERR_INVALID, why);
        goto out;
    }
    if (!has_free) {
        rc = init_fail(&in, BKV_ERR_HSM_TOKEN, "the module has no free slot");
        goto out;
    }
    rc = bkv_hsm_pin_read(so_pin_file, in.so_pin, sizeof(in.so_pin), &in.so_len, why, sizeof(why));
    if (rc == BKV_OK)
        rc = bkv_hsm_pin_read(cfg->pin_file, in.user_pin, sizeof(in.user_pin), &in.user_len, why,
                              sizeof(why));
    if (rc != BKV_OK) {
        init_fail(&in, rc, why);
        goto out;
    }
    memset(padded, ' ', sizeof(padded));
    memcpy(padded, in.label, strlen(in.label));
    rv = in.mod->f->C_InitToken(free_slot, in.so_pin, in.so_len, padded);
    if (rv != CKR_OK) {
        rc = init_ckr(&in, "C_InitToken", rv);
        goto out;
    }
    rv = scan_slots(in.mod->f, in.label, &found, &has_found, &free_slot, &has_free);
    if (rv != CKR_OK || !has_found) {
        rc = rv != CKR_OK ? init_ckr(&in, "C_GetSlotList", rv)
                          : init_fail(&in, BKV_ERR_HSM_TOKEN, "the new token cannot be found");
        goto out;
    }
    rc = init_pins(&in, found);
out:
    bkv_wipe(in.so_pin, sizeof(in.so_pin));
    bkv_wipe(in.user_pin, sizeof(in.user_pin));
    bkv_hsm_lock_release(in.lock_fd);
    bkv_hsm_module_put(in.mod);
    return rc;
}
