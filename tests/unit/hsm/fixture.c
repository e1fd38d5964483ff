/*
 * The hsm/ test fixture: temporary SoftHSM2 node directories, PIN files,
 * token provisioning, and the key-extraction attack shared by the realm and
 * enrolment suites. Every step asserts nothing itself; callers check codes.
 */
#define _XOPEN_SOURCE 700
#include "fixture.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hsm/ckr.h"
#include "hsm/internal.h"
#include "hsm/token.h"
#include "proto/err.h"

int fx_write_file(const char *path, const char *content, unsigned mode)
{
    size_t len = strlen(content);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    if (fd < 0)
        return -1;
    if (write(fd, content, len) != (ssize_t)len || fchmod(fd, mode) != 0) {
        close(fd);
        return -1;
    }
    return close(fd);
}

int fx_setup(struct fx *fx)
{
    char node[400], err[512];

    snprintf(fx->dir, sizeof(fx->dir), "/tmp/bkv-hsm-XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    snprintf(node, sizeof(node), "%s/node", fx->dir);
    if (bkv_hsm_node_dir_create(node, fx->conf, sizeof(fx->conf), err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    snprintf(fx->user_pin, sizeof(fx->user_pin), "%s/user.pin", fx->dir);
    snprintf(fx->so_pin, sizeof(fx->so_pin), "%s/so.pin", fx->dir);
    if (fx_write_file(fx->user_pin, FX_USER_PIN "\n", 0600) != 0 ||
        fx_write_file(fx->so_pin, FX_SO_PIN "\n", 0600) != 0)
        return -1;
    /* One SoftHSM2 configuration per process, set before the first open. */
    return setenv("SOFTHSM2_CONF", fx->conf, 1);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void fx_teardown(struct fx *fx)
{
    if (fx->dir[0] != '\0')
        nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    fx->dir[0] = '\0';
}

struct bkv_hsm_config fx_config(const struct fx *fx, const char *label)
{
    struct bkv_hsm_config cfg;

    memset(&cfg, 0, sizeof(cfg));
    cfg.token_label = label;
    cfg.pin_file = fx->user_pin;
    cfg.softhsm_conf = fx->conf;
    return cfg;
}

int fx_token(const struct fx *fx, const char *label)
{
    struct bkv_hsm_config cfg = fx_config(fx, label);
    char err[512];
    int rc = bkv_hsm_token_init(&cfg, fx->so_pin, err, sizeof(err));

    if (rc != 0)
        fprintf(stderr, "fx_token: %s\n", err);
    return rc;
}

int fx_open(const struct fx *fx, const char *label, struct bkv_hsm **h)
{
    struct bkv_hsm_config cfg = fx_config(fx, label);
    char err[512];
    int rc = bkv_hsm_open(&cfg, h, err, sizeof(err));

    if (rc != 0)
        fprintf(stderr, "fx_open: %s\n", err);
    return rc;
}

int fx_count_label(struct bkv_hsm *h, unsigned long cls, const char *label)
{
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE o;
    CK_ULONG count = 0;

    hsm_begin(h, &s);
    hsm_find_labelled(h, s, cls, label, NULL, 0, &o, &count);
    hsm_end(h, s);
    return (int)count;
}

/*
 * Count an attempt; 1 if it succeeded (bad), 0 if it was refused. Each
 * distinct (attempt, answer) pair is printed once.
 */
static int attempt(CK_RV rv, const char *what, int *tried)
{
    static struct {
        const char *what;
        CK_RV rv;
    } seen[64];
    static int nseen;
    int i;

    (*tried)++;
    if (rv == CKR_OK)
        fprintf(stderr, "ATTACK SUCCEEDED: %s\n", what);
    for (i = 0; i < nseen; i++)
        if (seen[i].what == what && seen[i].rv == rv)
            break;
    if (i == nseen && nseen < 64) {
        seen[nseen].what = what;
        seen[nseen++].rv = rv;
        printf("\n      %s -> %s", what, bkv_hsm_ckr_name(rv));
    }
    return rv == CKR_OK;
}

/* A user-made AES key of known value, allowed to wrap. */
static CK_RV known_wrap_key(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE *out)
{
    static const uint8_t value[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE aes = CKK_AES;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)}, {CKA_KEY_TYPE, &aes, sizeof(aes)},
        {CKA_TOKEN, &no, sizeof(no)},   {CKA_WRAP, &yes, sizeof(yes)},
        {CKA_VALUE, (void *)value, 32},
    };

    return h->f->C_CreateObject(s, t, 5, out);
}

/* A user-derived ECDH AES key allowed to wrap. */
static CK_RV derived_wrap_key(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE *out,
                              CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv)
{
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE pub_t[] = {{CKA_EC_PARAMS, (void *)hsm_p256_oid, sizeof(hsm_p256_oid)},
                            {CKA_TOKEN, &no, sizeof(no)}};
    CK_ATTRIBUTE priv_t[] = {{CKA_TOKEN, &no, sizeof(no)}, {CKA_DERIVE, &yes, sizeof(yes)}};
    CK_MECHANISM gen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE aes = CKK_AES;
    CK_ULONG len = 32;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},     {CKA_KEY_TYPE, &aes, sizeof(aes)},
        {CKA_VALUE_LEN, &len, sizeof(len)}, {CKA_TOKEN, &no, sizeof(no)},
        {CKA_WRAP, &yes, sizeof(yes)},
    };
    uint8_t point[65];
    CK_ECDH1_DERIVE_PARAMS params = {CKD_NULL, 0, NULL, 65, point};
    CK_MECHANISM ecdh = {CKM_ECDH1_DERIVE, &params, sizeof(params)};
    CK_RV rv;

    rv = h->f->C_GenerateKeyPair(s, &gen, pub_t, 2, priv_t, 2, pub, priv);
    if (rv == CKR_OK)
        rv = hsm_read_ec_point(h, s, *pub, point);
    if (rv == CKR_OK)
        rv = h->f->C_DeriveKey(s, &ecdh, *priv, t, 5, out);
    return rv;
}

int fx_attack_keys(struct bkv_hsm *h, int *tried)
{
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_MECHANISM wrap_mechs[] = {{CKM_AES_KEY_WRAP_PAD, NULL, 0}, {CKM_AES_KEY_WRAP, NULL, 0}};
    CK_OBJECT_HANDLE keys[3], known = CK_INVALID_HANDLE, derived = CK_INVALID_HANDLE;
    CK_OBJECT_HANDLE epub = CK_INVALID_HANDLE, epriv = CK_INVALID_HANDLE;
    CK_SESSION_HANDLE s;
    int ok = 0;

    *tried = 0;
    hsm_begin(h, &s);
    keys[0] = h->seal_key;
    keys[1] = h->mac_key;
    keys[2] = h->hpke_key;
    for (int i = 0; i < 3; i++) {
        uint8_t buf[512];
        CK_ATTRIBUTE read_value = {CKA_VALUE, buf, sizeof(buf)};
        CK_ATTRIBUTE relax[] = {
            {CKA_SENSITIVE, &no, 1},
            {CKA_EXTRACTABLE, &yes, 1},
            {CKA_WRAP_WITH_TRUSTED, &no, 1},
            {CKA_PRIVATE, &no, 1},
        };
        static const char *set_what[4] = {"set CKA_SENSITIVE=false", "set CKA_EXTRACTABLE=true",
                                          "set CKA_WRAP_WITH_TRUSTED=false",
                                          "set CKA_PRIVATE=false"};
        static const char *copy_what[4] = {
            "copy with CKA_SENSITIVE=false", "copy with CKA_EXTRACTABLE=true",
            "copy with CKA_WRAP_WITH_TRUSTED=false", "copy with CKA_PRIVATE=false"};
        CK_OBJECT_HANDLE copy;

        ok +=
            attempt(h->f->C_GetAttributeValue(s, keys[i], &read_value, 1), "read CKA_VALUE", tried);
        for (int r = 0; r < 4; r++) {
            CK_RV rv = h->f->C_SetAttributeValue(s, keys[i], &relax[r], 1);
            /* Realm keys are extractable (under a trusted key only), so setting
             * CKA_EXTRACTABLE=true may succeed as a no-op: what counts is that
             * the protective attributes below never change. */
            if (relax[r].type == CKA_EXTRACTABLE && rv == CKR_OK)
                (*tried)++;
            else
                ok += attempt(rv, set_what[r], tried);
            ok += attempt(h->f->C_CopyObject(s, keys[i], &relax[r], 1, &copy), copy_what[r], tried);
        }
        {
            CK_ATTRIBUTE relabel = {CKA_LABEL, "copy", 4};
            ok += attempt(h->f->C_CopyObject(s, keys[i], &relabel, 1, &copy),
                          "copy with a new label", tried);
        }
    }
    /* A user may not make a trusted key. */
    {
        CK_ATTRIBUTE trust = {CKA_TRUSTED, &yes, 1};
        if (known_wrap_key(h, s, &known) == CKR_OK)
            ok += attempt(h->f->C_SetAttributeValue(s, known, &trust, 1), "user sets CKA_TRUSTED",
                          tried);
    }
    if (derived_wrap_key(h, s, &derived, &epub, &epriv) != CKR_OK)
        derived = CK_INVALID_HANDLE;
    for (int i = 0; i < 3; i++)
        for (int m = 0; m < 2; m++) {
            uint8_t wrapped[512];
            CK_ULONG len = sizeof(wrapped);
            if (known != CK_INVALID_HANDLE)
                ok += attempt(h->f->C_WrapKey(s, &wrap_mechs[m], known, keys[i], wrapped, &len),
                              "wrap with a known user key", tried);
            len = sizeof(wrapped);
            if (derived != CK_INVALID_HANDLE)
                ok += attempt(h->f->C_WrapKey(s, &wrap_mechs[m], derived, keys[i], wrapped, &len),
                              "wrap with a user-derived key", tried);
        }
    /* Whatever was tried, the protection is intact. */
    for (int i = 0; i < 3; i++) {
        CK_BBOOL v[5];
        CK_ATTRIBUTE q[5] = {{CKA_SENSITIVE, &v[0], 1},
                             {CKA_WRAP_WITH_TRUSTED, &v[1], 1},
                             {CKA_PRIVATE, &v[2], 1},
                             {CKA_TOKEN, &v[3], 1},
                             {CKA_COPYABLE, &v[4], 1}};
        (*tried)++;
        if (h->f->C_GetAttributeValue(s, keys[i], q, 5) != CKR_OK || !v[0] || !v[1] || !v[2] ||
            !v[3] || v[4]) {
            fprintf(stderr, "ATTACK SUCCEEDED: the protective attributes changed\n");
            ok++;
        }
    }
    if (known == CK_INVALID_HANDLE || derived == CK_INVALID_HANDLE) {
        fprintf(stderr, "attack set-up failed (user wrapping keys)\n");
        ok++;
    }
    for (CK_OBJECT_HANDLE o[] = {known, derived, epub, epriv}, *p = o; p < o + 4; p++)
        if (*p != CK_INVALID_HANDLE)
            h->f->C_DestroyObject(s, *p);
    hsm_end(h, s);
    return ok;
}
