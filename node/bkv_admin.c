/*
 * bkv-admin: the operator's command-line tool. This version covers HSM
 * custody: provisioning a node's token, creating the realm on the first node,
 * the enrolment ceremony that brings a new node's HSM into the realm, and
 * checks that show what a token holds.
 *
 * Every command prints what it did, or one error line that says what failed
 * and what to do. Exit status: 0 done, 1 failed, 2 usage error. PINs are read
 * from files only (never argv), and no secret is ever printed.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hsm/codec.h"
#include "hsm/decap.h"
#include "hsm/enrol.h"
#include "hsm/mac.h"
#include "hsm/p11.h"
#include "hsm/realm.h"
#include "hsm/secrets.h"
#include "hsm/token.h"
#include "node/fileio.h"
#include "proto/err.h"
#include "proto/hpke.h"
#include "proto/util.h"

#define REALM_FILE   "realm.bin"
#define SECRETS_FILE "opaque-secrets.sealed"
#define MAX_FILE     (1u << 20)

struct opts {
    const char *node_dir, *module, *token, *pin_file, *so_pin_file;
    const char *out, *realm, *request, *fingerprint, *blob, *account;
};

static const char *prog = "bkv-admin";

static void fail(const char *what, int rc, const char *detail)
{
    fprintf(stderr, "%s: %s: %s%s%s\n", prog, what, bkv_strerror(rc),
            detail != NULL && detail[0] != '\0' ? ": " : "", detail != NULL ? detail : "");
}

static const char usage_text[] =
    "usage: bkv-admin COMMAND [options]\n"
    "\n"
    "HSM custody commands:\n"
    "  token init      provision this node's token: --node-dir --token --pin-file --so-pin-file\n"
    "  realm create    create the realm in the first node's HSM: HSM options, --out DIR\n"
    "  realm show      print a realm description: --realm DIR\n"
    "  enrol request   new node: make its transport key, print the fingerprint:\n"
    "                  HSM options, --out FILE\n"
    "  enrol approve   existing member: wrap the realm keys to an approved request:\n"
    "                  HSM options, --so-pin-file --request FILE --fingerprint TEXT\n"
    "                  --realm DIR --out BLOB\n"
    "  enrol accept    new node: take in the realm keys: HSM options, --blob BLOB --realm DIR\n"
    "  hsm status      what the token holds: HSM options\n"
    "  hsm check       prove the realm works in this HSM: HSM options, --realm DIR\n"
    "                  [--account ID]\n"
    "\n"
    "HSM options:\n"
    "  --node-dir DIR     the node's HSM directory (softhsm2.conf, tokens/, lock file)\n"
    "  --module PATH      PKCS#11 module (default: Debian's SoftHSM2)\n"
    "  --token LABEL      token label, for example node-1\n"
    "  --pin-file FILE    file with the user PIN, mode 0600\n"
    "  --so-pin-file FILE file with the security officer PIN, mode 0600\n"
    "\n"
    "A realm directory holds realm.bin (public) and opaque-secrets.sealed (sealed\n"
    "by the realm key; useless without an enrolled HSM). See docs/operations.md.\n";

static int usage(FILE *f, int status)
{
    fputs(usage_text, f);
    return status;
}

static void hsm_config(const struct opts *o, struct bkv_hsm_config *cfg, char *conf, size_t cap)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->module_path = o->module;
    cfg->token_label = o->token;
    cfg->pin_file = o->pin_file;
    if (o->node_dir != NULL) {
        snprintf(conf, cap, "%s/%s", o->node_dir, BKV_HSM_CONF_NAME);
        cfg->softhsm_conf = conf;
        cfg->lock_dir = o->node_dir;
    }
}

static int need(const char *value, const char *name)
{
    if (value == NULL) {
        fprintf(stderr, "%s: missing %s (see --help)\n", prog, name);
        return 0;
    }
    return 1;
}

static int open_hsm(const struct opts *o, int require_realm, struct bkv_hsm **h)
{
    struct bkv_hsm_config cfg;
    char conf[4096], err[BKV_HSM_ERRMSG_LEN] = "";
    int rc;

    if (!need(o->token, "--token") || !need(o->pin_file, "--pin-file"))
        return BKV_ERR_INVALID;
    hsm_config(o, &cfg, conf, sizeof(conf));
    if (cfg.softhsm_conf != NULL && access(cfg.softhsm_conf, R_OK) != 0) {
        fail("open HSM", BKV_ERR_HSM_TOKEN, "no softhsm2.conf in --node-dir");
        fprintf(stderr, "%s: provision the node first: bkv-admin token init --node-dir %s ...\n",
                prog, o->node_dir);
        return BKV_ERR_HSM_TOKEN;
    }
    cfg.require_realm = require_realm;
    rc = bkv_hsm_open(&cfg, h, err, sizeof(err));
    if (rc != BKV_OK) {
        fail("open HSM", rc, err);
        if (rc == BKV_ERR_HSM_NOT_ENROLLED)
            fprintf(stderr,
                    "%s: enrol this node first: bkv-admin enrol request, then approve "
                    "on a member, then enrol accept\n",
                    prog);
    }
    return rc;
}

static void path_join(char *out, size_t cap, const char *dir, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static int load_realm(const char *dir, struct bkv_hsm_realm *realm, uint8_t **secrets,
                      size_t *secrets_len)
{
    char path[4096], err[512] = "";
    uint8_t *buf = NULL;
    size_t len;
    int rc;

    path_join(path, sizeof(path), dir, REALM_FILE);
    rc = bkv_file_read(path, MAX_FILE, &buf, &len, err, sizeof(err));
    if (rc == BKV_OK) {
        rc = bkv_hsm_realm_decode(buf, len, realm);
        if (rc != BKV_OK)
            snprintf(err, sizeof(err), "%.400s is not a realm description", path);
    }
    free(buf);
    if (rc == BKV_OK && secrets != NULL) {
        path_join(path, sizeof(path), dir, SECRETS_FILE);
        rc = bkv_file_read(path, MAX_FILE, secrets, secrets_len, err, sizeof(err));
    }
    if (rc != BKV_OK)
        fail("read realm", rc, err);
    return rc;
}

static void print_hex(const char *label, const uint8_t *p, size_t n)
{
    char hex[2 * 128 + 1];

    bkv_hex_encode(p, n, hex);
    printf("%-26s %s\n", label, hex);
}

static void print_realm(const struct bkv_hsm_realm *r)
{
    uint8_t fp[BKV_HSM_FINGERPRINT_LEN];
    char text[BKV_HSM_FINGERPRINT_TEXT];

    print_hex("realm id:", r->realm_id, sizeof(r->realm_id));
    print_hex("seal key id:", r->seal_key_id, sizeof(r->seal_key_id));
    print_hex("account MAC key id:", r->mac_key_id, sizeof(r->mac_key_id));
    print_hex("HPKE key id:", r->hpke_key_id, sizeof(r->hpke_key_id));
    print_hex("HPKE public key:", r->hpke_pk, sizeof(r->hpke_pk));
    bkv_hsm_fingerprint(r->hpke_pk, fp);
    bkv_hsm_fingerprint_format(fp, text);
    printf("%-26s %s\n", "HPKE key fingerprint:", text);
    print_hex("OPAQUE server public key:", r->opaque_pk, sizeof(r->opaque_pk));
}

static int cmd_token_init(const struct opts *o)
{
    struct bkv_hsm_config cfg;
    char conf[4096], err[BKV_HSM_ERRMSG_LEN] = "";
    int rc;

    if (!need(o->node_dir, "--node-dir") || !need(o->token, "--token") ||
        !need(o->pin_file, "--pin-file") || !need(o->so_pin_file, "--so-pin-file"))
        return 2;
    rc = bkv_hsm_node_dir_create(o->node_dir, conf, sizeof(conf), err, sizeof(err));
    if (rc != BKV_OK) {
        fail("create node directory", rc, err);
        return 1;
    }
    hsm_config(o, &cfg, conf, sizeof(conf));
    rc = bkv_hsm_token_init(&cfg, o->so_pin_file, err, sizeof(err));
    if (rc != BKV_OK) {
        fail("initialise token", rc, err);
        return 1;
    }
    printf("token \"%s\" initialised in %s\n", o->token, o->node_dir);
    printf("next: bkv-admin realm create (first node) or bkv-admin enrol request (new node)\n");
    return 0;
}

static int cmd_realm_create(const struct opts *o)
{
    struct bkv_hsm *h = NULL;
    struct bkv_hsm_realm realm;
    uint8_t enc[BKV_HSM_REALM_ENCODED_LEN], *secrets = NULL;
    size_t secrets_len = 0;
    char path[4096], err[512] = "";
    int rc, status = 1;

    if (!need(o->out, "--out"))
        return 2;
    if (mkdir(o->out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: create %s: %s\n", prog, o->out, strerror(errno));
        return 1;
    }
    if (open_hsm(o, 0, &h) != BKV_OK)
        return 1;
    rc = bkv_hsm_realm_create(h, &realm, &secrets, &secrets_len);
    if (rc != BKV_OK) {
        fail("create realm", rc, bkv_hsm_errmsg(h));
        goto out;
    }
    bkv_hsm_realm_encode(&realm, enc);
    path_join(path, sizeof(path), o->out, REALM_FILE);
    rc = bkv_file_write(path, enc, sizeof(enc), 0644, 1, err, sizeof(err));
    if (rc == BKV_OK) {
        path_join(path, sizeof(path), o->out, SECRETS_FILE);
        rc = bkv_file_write(path, secrets, secrets_len, 0600, 1, err, sizeof(err));
    }
    if (rc != BKV_OK) {
        fail("write realm", rc, err);
        goto out;
    }
    printf("realm created in token \"%s\"; description and sealed secrets in %s\n", o->token,
           o->out);
    print_realm(&realm);
    status = 0;
out:
    free(secrets);
    bkv_hsm_close(h);
    return status;
}

static int cmd_realm_show(const struct opts *o)
{
    struct bkv_hsm_realm realm;

    if (!need(o->realm, "--realm"))
        return 2;
    if (load_realm(o->realm, &realm, NULL, NULL) != BKV_OK)
        return 1;
    print_realm(&realm);
    return 0;
}

static int cmd_enrol_request(const struct opts *o)
{
    struct bkv_hsm *h = NULL;
    struct bkv_hsm_transport t;
    char hex[2 * BKV_HPKE_P256_PK_LEN + 2], err[512] = "";
    int rc, status = 1;

    if (open_hsm(o, 0, &h) != BKV_OK)
        return 1;
    rc = bkv_hsm_enrol_request(h, &t);
    if (rc != BKV_OK) {
        fail("make transport key", rc, bkv_hsm_errmsg(h));
        goto out;
    }
    bkv_hex_encode(t.pk, sizeof(t.pk), hex);
    if (o->out != NULL) {
        size_t n = strlen(hex);
        hex[n] = '\n';
        rc = bkv_file_write(o->out, (const uint8_t *)hex, n + 1, 0644, 0, err, sizeof(err));
        hex[n] = '\0';
        if (rc != BKV_OK) {
            fail("write request", rc, err);
            goto out;
        }
    }
    printf("transport public key:  %s\n", hex);
    printf("fingerprint:           %s\n", t.text);
    printf("next: an operator on a realm member compares this fingerprint over a trusted\n"
           "channel and runs bkv-admin enrol approve with it\n");
    status = 0;
out:
    bkv_hsm_close(h);
    return status;
}

static int read_request(const char *path, uint8_t pk[static BKV_HPKE_P256_PK_LEN])
{
    char err[512] = "";
    uint8_t *buf = NULL;
    size_t len, n = 0;
    int rc = bkv_file_read(path, 4096, &buf, &len, err, sizeof(err));

    if (rc == BKV_OK) {
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
            buf[--len] = '\0';
        rc = bkv_hex_decode((const char *)buf, pk, BKV_HPKE_P256_PK_LEN, &n);
        if (rc == BKV_OK && n != BKV_HPKE_P256_PK_LEN)
            rc = BKV_ERR_LENGTH;
        if (rc != BKV_OK)
            snprintf(err, sizeof(err), "%.400s does not hold a 65-byte public key in hex", path);
    }
    free(buf);
    if (rc != BKV_OK)
        fail("read request", rc, err);
    return rc;
}

static int cmd_enrol_approve(const struct opts *o)
{
    struct bkv_hsm *h = NULL;
    struct bkv_hsm_realm realm, mine;
    uint8_t pk[BKV_HPKE_P256_PK_LEN], fp[BKV_HSM_FINGERPRINT_LEN];
    uint8_t *secrets = NULL, *blob = NULL;
    size_t secrets_len = 0, blob_len = 0;
    char err[512] = "";
    int rc, status = 1;

    if (!need(o->so_pin_file, "--so-pin-file") || !need(o->request, "--request") ||
        !need(o->fingerprint, "--fingerprint") || !need(o->realm, "--realm") ||
        !need(o->out, "--out"))
        return 2;
    if (bkv_hsm_fingerprint_parse(o->fingerprint, fp) != BKV_OK) {
        fprintf(stderr, "%s: --fingerprint: expected 64 hex digits (spaces allowed)\n", prog);
        return 2;
    }
    if (read_request(o->request, pk) != BKV_OK ||
        load_realm(o->realm, &realm, &secrets, &secrets_len) != BKV_OK)
        goto out;
    if (open_hsm(o, 1, &h) != BKV_OK)
        goto out;
    if ((rc = bkv_hsm_realm_get(h, &mine)) != BKV_OK ||
        !bkv_ct_equal(mine.realm_id, realm.realm_id, sizeof(realm.realm_id))) {
        fail("approve", rc != BKV_OK ? rc : BKV_ERR_INVALID,
             rc != BKV_OK ? bkv_hsm_errmsg(h) : "this HSM belongs to another realm than --realm");
        goto out;
    }
    rc = bkv_hsm_enrol_approve(h, o->so_pin_file, pk, fp, secrets, secrets_len, &blob, &blob_len);
    if (rc != BKV_OK) {
        fail("approve", rc, bkv_hsm_errmsg(h));
        if (rc == BKV_ERR_HSM_NOT_APPROVED)
            fprintf(stderr,
                    "%s: the request's key does not have the fingerprint you gave; "
                    "do not approve it\n",
                    prog);
        goto out;
    }
    rc = bkv_file_write(o->out, blob, blob_len, 0644, 1, err, sizeof(err));
    if (rc != BKV_OK) {
        fail("write enrolment blob", rc, err);
        goto out;
    }
    printf("approved: realm keys wrapped to the transport key with fingerprint\n  %s\n",
           o->fingerprint);
    printf("enrolment blob: %s (%zu bytes; no key in the clear)\n", o->out, blob_len);
    printf("next: copy it to the new node and run bkv-admin enrol accept\n");
    status = 0;
out:
    free(blob);
    free(secrets);
    bkv_hsm_close(h);
    return status;
}

static int cmd_enrol_accept(const struct opts *o)
{
    struct bkv_hsm *h = NULL;
    struct bkv_hsm_realm pinned, got;
    uint8_t *blob = NULL, *secrets = NULL;
    size_t blob_len = 0, secrets_len = 0;
    char err[512] = "";
    int rc, status = 1;

    if (!need(o->blob, "--blob") || !need(o->realm, "--realm"))
        return 2;
    if (load_realm(o->realm, &pinned, NULL, NULL) != BKV_OK)
        return 1;
    rc = bkv_file_read(o->blob, MAX_FILE, &blob, &blob_len, err, sizeof(err));
    if (rc != BKV_OK) {
        fail("read enrolment blob", rc, err);
        return 1;
    }
    /* The blob must be for the realm the operator pinned, checked before any key moves. */
    {
        struct bkv_hsm_enrol_blob b;
        rc = bkv_hsm_enrol_blob_decode(blob, blob_len, &b);
        if (rc != BKV_OK) {
            fail("read enrolment blob", rc, "malformed");
            goto out;
        }
        if (!bkv_ct_equal(b.realm_id, pinned.realm_id, sizeof(pinned.realm_id)) ||
            !bkv_ct_equal(b.hpke_pk, pinned.hpke_pk, sizeof(pinned.hpke_pk))) {
            fail("accept", BKV_ERR_HSM_NOT_APPROVED, "the blob is for another realm than --realm");
            goto out;
        }
    }
    if (open_hsm(o, 0, &h) != BKV_OK)
        goto out;
    rc = bkv_hsm_enrol_accept(h, blob, blob_len, &got, &secrets, &secrets_len);
    if (rc != BKV_OK) {
        fail("accept", rc, bkv_hsm_errmsg(h));
        goto out;
    }
    printf("enrolled: token \"%s\" now holds the realm keys\n", o->token);
    print_realm(&got);
    status = 0;
out:
    free(secrets);
    free(blob);
    bkv_hsm_close(h);
    return status;
}

static int cmd_hsm_status(const struct opts *o)
{
    struct bkv_hsm *h = NULL;
    struct bkv_hsm_realm realm;
    int rc;

    if (open_hsm(o, 0, &h) != BKV_OK)
        return 1;
    printf("token:                     %s (open, logged in)\n", bkv_hsm_label(h));
    rc = bkv_hsm_realm_get(h, &realm);
    if (rc == BKV_ERR_HSM_NOT_ENROLLED)
        printf("realm:                     none (not enrolled)\n");
    else if (rc != BKV_OK)
        fail("read realm", rc, bkv_hsm_errmsg(h));
    else
        print_realm(&realm);
    bkv_hsm_close(h);
    return rc == BKV_OK ? 0 : 1;
}

/* HSM decapsulation of a fresh software encapsulation to the realm key. */
static int hpke_self_test(struct bkv_hsm *h, const struct bkv_hsm_realm *realm)
{
    static const uint8_t msg[] = "bkv-admin hsm check";
    struct bkv_hpke_suite suite = {BKV_HPKE_KEM_P256_SHA256, BKV_HPKE_KDF_HKDF_SHA256,
                                   BKV_HPKE_AEAD_AES_128_GCM};
    struct bkv_hpke_ctx s, r;
    uint8_t enc[BKV_HPKE_MAX_ENC_LEN], ct[sizeof(msg) + BKV_HPKE_TAG_LEN], pt[sizeof(msg)];
    size_t enc_len, ct_len, pt_len;
    int rc;

    if ((rc = bkv_hpke_setup_base_s(suite, realm->hpke_pk, sizeof(realm->hpke_pk), NULL, 0, NULL,
                                    enc, &enc_len, &s)) != BKV_OK ||
        (rc = bkv_hpke_seal(&s, NULL, 0, msg, sizeof(msg), ct, sizeof(ct), &ct_len)) != BKV_OK ||
        (rc = bkv_hsm_hpke_setup_base_r(h, suite, enc, enc_len, NULL, 0, &r)) != BKV_OK ||
        (rc = bkv_hpke_open(&r, NULL, 0, ct, ct_len, pt, sizeof(pt), &pt_len)) != BKV_OK)
        goto out;
    if (pt_len != sizeof(msg) || memcmp(pt, msg, sizeof(msg)) != 0)
        rc = BKV_ERR_DECRYPT;
out:
    bkv_hpke_ctx_wipe(&s);
    bkv_hpke_ctx_wipe(&r);
    return rc;
}

static int cmd_hsm_check(const struct opts *o)
{
    struct bkv_hsm *h = NULL;
    struct bkv_hsm_realm pinned, mine;
    struct bkv_opaque_server_keys *keys = NULL;
    uint8_t *secrets = NULL, mac[BKV_HSM_MAC_LEN];
    size_t secrets_len = 0;
    int rc, status = 1;

    if (!need(o->realm, "--realm"))
        return 2;
    if (load_realm(o->realm, &pinned, &secrets, &secrets_len) != BKV_OK)
        goto out;
    if (open_hsm(o, 1, &h) != BKV_OK)
        goto out;
    if ((rc = bkv_hsm_realm_get(h, &mine)) != BKV_OK) {
        fail("read realm", rc, bkv_hsm_errmsg(h));
        goto out;
    }
    if (memcmp(&mine, &pinned, sizeof(mine)) != 0) {
        fail("check", BKV_ERR_INVALID, "this HSM holds another realm than --realm");
        goto out;
    }
    printf("realm id matches:          yes\n");
    rc = bkv_hsm_opaque_load(h, secrets, secrets_len, &keys);
    if (rc != BKV_OK) {
        fail("unseal OPAQUE secrets", rc, bkv_hsm_errmsg(h));
        goto out;
    }
    if (!bkv_ct_equal(keys->pk, pinned.opaque_pk, sizeof(keys->pk))) {
        fail("check", BKV_ERR_INVALID, "the sealed OPAQUE secrets do not match the realm");
        goto out;
    }
    printf("OPAQUE secrets unsealed:   yes (into locked memory, wiped on exit)\n");
    rc = hpke_self_test(h, &pinned);
    if (rc != BKV_OK) {
        fail("HPKE decapsulation in the HSM", rc, bkv_hsm_errmsg(h));
        goto out;
    }
    printf("HPKE decapsulation in HSM: ok\n");
    if (o->account != NULL) {
        rc = bkv_hsm_account_mac(h, (const uint8_t *)o->account, strlen(o->account), mac);
        if (rc != BKV_OK) {
            fail("account MAC", rc, bkv_hsm_errmsg(h));
            goto out;
        }
        print_hex("account MAC:", mac, sizeof(mac));
    }
    status = 0;
out:
    bkv_hsm_opaque_free(keys);
    free(secrets);
    bkv_hsm_close(h);
    return status;
}

struct command {
    const char *group, *name;
    int (*run)(const struct opts *o);
};

static const struct command commands[] = {
    {"token", "init", cmd_token_init},       {"realm", "create", cmd_realm_create},
    {"realm", "show", cmd_realm_show},       {"enrol", "request", cmd_enrol_request},
    {"enrol", "approve", cmd_enrol_approve}, {"enrol", "accept", cmd_enrol_accept},
    {"hsm", "status", cmd_hsm_status},       {"hsm", "check", cmd_hsm_check},
};

int main(int argc, char **argv)
{
    static const struct option long_opts[] = {
        {"node-dir", required_argument, NULL, 'd'},
        {"module", required_argument, NULL, 'm'},
        {"token", required_argument, NULL, 't'},
        {"pin-file", required_argument, NULL, 'p'},
        {"so-pin-file", required_argument, NULL, 's'},
        {"out", required_argument, NULL, 'o'},
        {"realm", required_argument, NULL, 'r'},
        {"request", required_argument, NULL, 'q'},
        {"fingerprint", required_argument, NULL, 'f'},
        {"blob", required_argument, NULL, 'b'},
        {"account", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct opts o = {0};
    static char cwd[2048], node_dir[4096];
    int c;

    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
        return usage(stdout, 0);
    if (argc < 3)
        return usage(stderr, 2);
    optind = 3;
    while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            o.node_dir = optarg;
            break;
        case 'm':
            o.module = optarg;
            break;
        case 't':
            o.token = optarg;
            break;
        case 'p':
            o.pin_file = optarg;
            break;
        case 's':
            o.so_pin_file = optarg;
            break;
        case 'o':
            o.out = optarg;
            break;
        case 'r':
            o.realm = optarg;
            break;
        case 'q':
            o.request = optarg;
            break;
        case 'f':
            o.fingerprint = optarg;
            break;
        case 'b':
            o.blob = optarg;
            break;
        case 'a':
            o.account = optarg;
            break;
        case 'h':
            return usage(stdout, 0);
        default:
            return usage(stderr, 2);
        }
    }
    if (optind != argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
        return 2;
    }
    /* The SoftHSM configuration names its token directory by absolute path. */
    if (o.node_dir != NULL && o.node_dir[0] != '/') {
        if (getcwd(cwd, sizeof(cwd)) == NULL ||
            (size_t)snprintf(node_dir, sizeof(node_dir), "%s/%s", cwd, o.node_dir) >=
                sizeof(node_dir)) {
            fprintf(stderr, "%s: --node-dir: cannot make %s absolute\n", prog, o.node_dir);
            return 2;
        }
        o.node_dir = node_dir;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].group) == 0 && strcmp(argv[2], commands[i].name) == 0)
            return commands[i].run(&o);
    fprintf(stderr, "%s: unknown command '%s %s'\n", prog, argv[1], argv[2]);
    return usage(stderr, 2);
}
