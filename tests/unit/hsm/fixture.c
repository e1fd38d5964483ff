/*
 * The hsm/ test fixture: temporary SoftHSM2 node directories, PIN files,
 * token provisioning, the key-extraction and key-substitution attacks shared
 * by the realm and enrolment suites, and the transport-key attack from a
 * second process. Every step asserts nothing itself; callers check codes.
 */
#define _XOPEN_SOURCE 700
#include "fixture.h"

#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hsm/ckr.h"
#include "hsm/codec.h"
#include "hsm/internal.h"
#include "hsm/module.h"
#include "hsm/pinfile.h"
#include "hsm/token.h"
#include "proto/err.h"
#include "proto/util.h"

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

/* Extractable AES template for deriving an unwrapping key an attacker can read. */
#define EXTRACTABLE_AES_TEMPLATE(t, cls, aes, len, yes, no)                                        \
    CK_ATTRIBUTE t[] = {                                                                           \
        {CKA_CLASS, &cls, sizeof(cls)},     {CKA_KEY_TYPE, &aes, sizeof(aes)},                     \
        {CKA_VALUE_LEN, &len, sizeof(len)}, {CKA_TOKEN, &no, sizeof(no)},                          \
        {CKA_SENSITIVE, &no, sizeof(no)},   {CKA_EXTRACTABLE, &yes, sizeof(yes)},                  \
        {CKA_UNWRAP, &yes, sizeof(yes)},                                                           \
    }

/*
 * Finding 1 from inside: any private key in the token other than the realm
 * HPKE key (a transport key left behind) must not exist, and none may derive
 * an extractable key.
 */
static int attack_leftover_transport(struct bkv_hsm *h, CK_SESSION_HANDLE s, int *tried)
{
    CK_OBJECT_CLASS priv_cls = CKO_PRIVATE_KEY, cls = CKO_SECRET_KEY;
    CK_KEY_TYPE aes = CKK_AES;
    CK_ULONG len = 32, n = 0;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE find = {CKA_CLASS, &priv_cls, sizeof(priv_cls)};
    EXTRACTABLE_AES_TEMPLATE(t, cls, aes, len, yes, no);
    CK_OBJECT_HANDLE objs[16], k;
    uint8_t point[65];
    CK_ECDH1_DERIVE_PARAMS params = {CKD_NULL, 0, NULL, 65, point};
    CK_MECHANISM ecdh = {CKM_ECDH1_DERIVE, &params, sizeof(params)};
    int ok = 0;

    memcpy(point, h->realm.hpke_pk, 65); /* any valid point */
    if (h->f->C_FindObjectsInit(s, &find, 1) == CKR_OK) {
        h->f->C_FindObjects(s, objs, 16, &n);
        h->f->C_FindObjectsFinal(s);
    }
    for (CK_ULONG i = 0; i < n; i++) {
        if (objs[i] == h->hpke_key)
            continue;
        ok += attempt(CKR_OK, "a private key other than the realm's is in the token", tried);
        CK_RV rv = h->f->C_DeriveKey(s, &ecdh, objs[i], t, sizeof(t) / sizeof(t[0]), &k);
        ok += attempt(rv, "derive an extractable key with a leftover private key", tried);
        if (rv == CKR_OK)
            h->f->C_DestroyObject(s, k);
    }
    (*tried)++; /* searched, found none */
    return ok;
}

/* A user-made AES key of known value with the realm seal key's label and id. */
static CK_RV known_seal_key(struct bkv_hsm *h, CK_SESSION_HANDLE s, const uint8_t *id,
                            CK_OBJECT_HANDLE *out)
{
    static const uint8_t value[32] = {0x41};
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE aes = CKK_AES;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &aes, sizeof(aes)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_SENSITIVE, &yes, sizeof(yes)},
        {CKA_ENCRYPT, &yes, sizeof(yes)},
        {CKA_DECRYPT, &yes, sizeof(yes)},
        {CKA_LABEL, HSM_LABEL_SEAL, strlen(HSM_LABEL_SEAL)},
        {CKA_ID, (void *)id, 8},
        {CKA_VALUE, (void *)value, 32},
    };

    return h->f->C_CreateObject(s, t, sizeof(t) / sizeof(t[0]), out);
}

/* Finding 2: replace or shadow the marker or a key; the realm must notice. */
static int attack_substitute(struct bkv_hsm *h, CK_SESSION_HANDLE s, int *tried)
{
    uint8_t value[BKV_HSM_REALM_ENCODED_LEN], new_id[8] = {9, 9, 9, 9, 9, 9, 9, 9};
    CK_ATTRIBUTE set_value = {CKA_VALUE, value, sizeof(value)};
    CK_ATTRIBUTE set_id = {CKA_ID, new_id, 8};
    CK_ATTRIBUTE set_label = {CKA_LABEL, "bkv-evil", 8};
    CK_OBJECT_HANDLE keys[3] = {h->seal_key, h->mac_key, h->hpke_key}, known, marker2;
    CK_OBJECT_CLASS dc = CKO_DATA;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE mt[] = {
        {CKA_CLASS, &dc, sizeof(dc)},
        {CKA_TOKEN, &yes, 1},
        {CKA_PRIVATE, &yes, 1},
        {CKA_LABEL, HSM_LABEL_MARKER, strlen(HSM_LABEL_MARKER)},
        {CKA_VALUE, value, sizeof(value)},
    };
    struct hsm_realm_objects o;
    struct bkv_hsm_realm r;
    int found, ok = 0;

    bkv_hsm_realm_encode(&h->realm, value);
    value[5] ^= 1; /* another realm id */
    ok += attempt(h->f->C_SetAttributeValue(s, h->marker, &set_value, 1),
                  "rewrite the realm marker", tried);
    ok += attempt(h->f->C_DestroyObject(s, h->marker), "destroy the realm marker", tried);
    for (int i = 0; i < 3; i++) {
        ok += attempt(h->f->C_SetAttributeValue(s, keys[i], &set_id, 1), "change a realm key's id",
                      tried);
        ok += attempt(h->f->C_SetAttributeValue(s, keys[i], &set_label, 1),
                      "change a realm key's label", tried);
    }
    /* A known key under the seal key's label and id: loading must refuse to guess. */
    if (known_seal_key(h, s, h->realm.seal_key_id, &known) == CKR_OK) {
        ok +=
            attempt(hsm_realm_find(h, s, &found, &r, &o, "attack") == BKV_OK ? CKR_OK : CKR_CANCEL,
                    "shadow the seal key with a known key (same label and id)", tried);
        h->f->C_DestroyObject(s, known);
    } else {
        fprintf(stderr, "attack set-up failed (known seal key)\n");
        ok++;
    }
    /* A second marker naming a known key: loading must refuse it. */
    if (known_seal_key(h, s, new_id, &known) == CKR_OK) {
        struct bkv_hsm_realm evil = h->realm;
        memcpy(evil.seal_key_id, new_id, 8);
        memcpy(evil.seal_kcv + 1, new_id, 8);
        bkv_hsm_realm_encode(&evil, value);
        if (h->f->C_CreateObject(s, mt, sizeof(mt) / sizeof(mt[0]), &marker2) == CKR_OK) {
            ok += attempt(hsm_realm_find(h, s, &found, &r, &o, "attack") == BKV_OK ? CKR_OK
                                                                                   : CKR_CANCEL,
                          "add a second realm marker naming a known seal key", tried);
            h->f->C_DestroyObject(s, marker2);
        }
        h->f->C_DestroyObject(s, known);
    }
    return ok;
}

int fx_attack_keys(struct bkv_hsm *h, const struct bkv_hsm_realm *pinned, int *tried)
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
    /* AES-ECB / CBC with the seal key: refused by CKA_ALLOWED_MECHANISMS. */
    {
        uint8_t iv[16] = {0}, block[16] = {0}, out[32];
        CK_ULONG out_len = sizeof(out);
        CK_MECHANISM ecb = {CKM_AES_ECB, NULL, 0}, cbc = {CKM_AES_CBC, iv, 16};
        CK_MECHANISM sha1 = {CKM_SHA_1_HMAC, NULL, 0};
        CK_RV rv = h->f->C_EncryptInit(s, &ecb, keys[0]);
        if (rv == CKR_OK)
            h->f->C_Encrypt(s, block, 16, out, &out_len);
        ok += attempt(rv, "encrypt with the seal key in AES-ECB", tried);
        rv = h->f->C_EncryptInit(s, &cbc, keys[0]);
        out_len = sizeof(out);
        if (rv == CKR_OK)
            h->f->C_Encrypt(s, block, 16, out, &out_len);
        ok += attempt(rv, "encrypt with the seal key in AES-CBC", tried);
        rv = h->f->C_SignInit(s, &sha1, keys[1]);
        out_len = sizeof(out);
        if (rv == CKR_OK)
            h->f->C_Sign(s, block, 16, out, &out_len);
        ok += attempt(rv, "sign with the MAC key in HMAC-SHA1", tried);
    }
    ok += attack_leftover_transport(h, s, tried);
    ok += attack_substitute(h, s, tried);
    hsm_end(h, s);
    /* Whatever was tried, the token still holds exactly the pinned realm. */
    (*tried)++;
    if (bkv_hsm_realm_verify(h, pinned) != BKV_OK) {
        fprintf(stderr, "ATTACK SUCCEEDED: the realm no longer verifies: %s\n", bkv_hsm_errmsg(h));
        ok++;
    }
    return ok;
}

/* --- the transport-key attack from another process ------------------------------ */

#define CHILD_FLAG "--fx-attack-transport"

int fx_attack_transport(const struct fx *fx, const char *label, const uint8_t ephemeral_pk[65],
                        int *found)
{
    char self[PATH_MAX], hex[131], count_path[600], buf[32];
    ssize_t n;
    pid_t child;
    int status = 0;

    *found = -1;
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    bkv_hex_encode(ephemeral_pk, 65, hex);
    snprintf(count_path, sizeof(count_path), "%s/attack-found", fx->dir);
    unlink(count_path);
    fflush(stdout);
    fflush(stderr);
    child = fork();
    if (child < 0)
        return -1;
    if (child == 0) {
        char *args[] = {self,          CHILD_FLAG, (char *)fx->conf, (char *)fx->user_pin,
                        (char *)label, hex,        count_path,       NULL};
        execv(self, args);
        _exit(3);
    }
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status))
        return -1;
    {
        FILE *f = fopen(count_path, "r");
        if (f != NULL) {
            if (fgets(buf, sizeof(buf), f) != NULL)
                *found = atoi(buf);
            fclose(f);
        }
    }
    return WEXITSTATUS(status);
}

/* The slot holding label in f, or -1. */
static long slot_of(CK_FUNCTION_LIST *f, const char *label)
{
    CK_SLOT_ID slots[64];
    CK_ULONG n = 64;
    CK_TOKEN_INFO ti;
    char padded[32];

    memset(padded, ' ', sizeof(padded));
    memcpy(padded, label, strlen(label));
    if (f->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
        return -1;
    for (CK_ULONG i = 0; i < n; i++)
        if (f->C_GetTokenInfo(slots[i], &ti) == CKR_OK && memcmp(ti.label, padded, 32) == 0)
            return (long)slots[i];
    return -1;
}

/* The attacker: a plain PKCS#11 client with the node's user PIN, nothing else. */
static int child_attack(const char *conf, const char *pin_file, const char *label, const char *hex,
                        const char *count_path)
{
    struct bkv_hsm_module *mod = NULL;
    uint8_t pin[BKV_HSM_PIN_MAX], point[65];
    size_t pin_len = 0, point_len = 0;
    char why[512];
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    CK_SESSION_INFO info;
    CK_OBJECT_CLASS priv_cls = CKO_PRIVATE_KEY, cls = CKO_SECRET_KEY;
    CK_KEY_TYPE aes = CKK_AES;
    CK_ULONG len = 32, n = 0;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE find = {CKA_CLASS, &priv_cls, sizeof(priv_cls)};
    EXTRACTABLE_AES_TEMPLATE(t, cls, aes, len, yes, no);
    CK_OBJECT_HANDLE objs[16], k;
    CK_ECDH1_DERIVE_PARAMS params = {CKD_NULL, 0, NULL, 65, point};
    CK_MECHANISM ecdh = {CKM_ECDH1_DERIVE, &params, sizeof(params)};
    CK_RV rv = CKR_GENERAL_ERROR;
    int derived = 0;
    long slot = -1;
    FILE *f;

    if (bkv_hex_decode(hex, point, sizeof(point), &point_len) != BKV_OK || point_len != 65 ||
        bkv_hsm_pin_read(pin_file, pin, sizeof(pin), &pin_len, why, sizeof(why)) != BKV_OK ||
        bkv_hsm_module_get(NULL, conf, &mod, why, sizeof(why)) != BKV_OK)
        return 2;
    /* SoftHSM2's start-up race (crypto.md §8): reinitialise and retry. */
    for (int attempt_no = 0; attempt_no < 3; attempt_no++) {
        if (attempt_no > 0 && bkv_hsm_module_reinit(mod, why, sizeof(why)) != BKV_OK)
            break;
        slot = slot_of(mod->f, label);
        if (slot < 0)
            continue;
        rv = mod->f->C_OpenSession((CK_SLOT_ID)slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
                                   NULL, &s);
        if (rv == CKR_OK)
            rv = mod->f->C_Login(s, CKU_USER, pin, pin_len);
        if (rv == CKR_OK)
            rv = mod->f->C_GetSessionInfo(s, &info);
        if (rv == CKR_OK && info.state == CKS_RW_USER_FUNCTIONS)
            break;
        rv = CKR_GENERAL_ERROR;
    }
    bkv_wipe(pin, sizeof(pin));
    if (rv != CKR_OK) {
        printf("\n      attacker process: cannot log in to \"%s\"", label);
        return 2;
    }
    if (mod->f->C_FindObjectsInit(s, &find, 1) == CKR_OK) {
        mod->f->C_FindObjects(s, objs, 16, &n);
        mod->f->C_FindObjectsFinal(s);
    }
    for (CK_ULONG i = 0; i < n; i++)
        if (mod->f->C_DeriveKey(s, &ecdh, objs[i], t, sizeof(t) / sizeof(t[0]), &k) == CKR_OK) {
            uint8_t v[32];
            CK_ATTRIBUTE a = {CKA_VALUE, v, sizeof(v)};
            if (mod->f->C_GetAttributeValue(s, k, &a, 1) == CKR_OK)
                derived++;
            bkv_wipe(v, sizeof(v));
            mod->f->C_DestroyObject(s, k);
        }
    printf("\n      attacker process (user PIN of \"%s\"): %lu private keys visible, %d "
           "extractable unwrap keys derived",
           label, (unsigned long)n, derived);
    f = fopen(count_path, "w");
    if (f != NULL) {
        fprintf(f, "%lu\n", (unsigned long)n);
        fclose(f);
    }
    mod->f->C_Logout(s);
    mod->f->C_CloseSession(s);
    bkv_hsm_module_put(mod);
    return derived > 0 ? 1 : 0;
}

int fx_child_main(int argc, char **argv)
{
    if (argc != 7 || strcmp(argv[1], CHILD_FLAG) != 0)
        return -1;
    return child_attack(argv[2], argv[3], argv[4], argv[5], argv[6]);
}
