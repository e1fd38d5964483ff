/*
 * bkv-admin: the operator's command-line tool. It covers HSM custody:
 * provisioning a node's token, creating the realm on the first node, the
 * enrolment ceremony that brings a new node's HSM into the realm, and checks
 * that show what a token holds; and the router's side: router keys, account
 * tokens, and the realm key config clients pin.
 *
 * Every command prints what it did, or one error line that says what failed
 * and what to do. Exit status: 0 done, 1 failed, 2 usage error. PINs are read
 * from files only (never argv), no secret is ever printed, and core dumps
 * are off from the first line of main. Every command that works with a
 * realm opens the token with the pinned description (--realm), so a token
 * whose realm marker or keys were replaced is refused. The new node's side
 * of enrolment is one process ("enrol join"): its transport key is a session
 * object that exists only in that process, from the request to the accept.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "hsm/codec.h"
#include "hsm/decap.h"
#include "hsm/enrol.h"
#include "hsm/mac.h"
#include "hsm/p11.h"
#include "hsm/realm.h"
#include "hsm/secrets.h"
#include "hsm/token.h"
#include "node/admin_status.h"
#include "node/fileio.h"
#include "node/token.h"
#include "proto/err.h"
#include "proto/hpke.h"
#include "proto/msg.h"
#include "proto/util.h"

#define REALM_FILE       "realm.bin"
#define SECRETS_FILE     "opaque-secrets.sealed"
#define MAX_FILE         (1u << 20)
#define JOIN_TIMEOUT     900L /* seconds enrol join waits for the blob by default */
#define JOIN_TIMEOUT_MAX 86400L
#define TTL_DEFAULT      86400L
#define TTL_MAX          (366L * 86400L)

/* Long options without a short letter. */
enum {
    OPT_OUT_DIR = 256,
    OPT_KEY,
    OPT_TTL,
    OPT_REALM_DIR,
    OPT_KSF,
    OPT_KSF_T,
    OPT_KSF_M,
    OPT_KSF_P,
};

struct opts {
    const char *node_dir, *module, *token, *pin_file, *so_pin_file, *lock_dir;
    const char *out, *realm, *request, *request_out, *fingerprint, *blob, *account;
    const char *out_dir, *key, *ttl, *realm_dir, *ksf, *ksf_t, *ksf_m, *ksf_p;
    long timeout;
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
    "Cluster:\n"
    "  status          the cluster by data center: roles, lag, health:\n"
    "                  --admin HOST:PORT (any node's admin address) [--timeout S]\n"
    "  members add     add a non-voter: --admin --token-file --id N --raft HOST:PORT\n"
    "  members promote make a caught-up member a voter: --admin --token-file --id N\n"
    "  members remove  remove a member: --admin --token-file --id N\n"
    "  leader transfer move leadership: --admin --token-file [--to N]\n"
    "\n"
    "HSM custody commands:\n"
    "  token init      provision this node's token: --node-dir --token --pin-file --so-pin-file\n"
    "  realm create    create the realm in the first node's HSM: HSM options, --out DIR\n"
    "  realm show      print a realm description: --realm DIR\n"
    "  enrol join      new node, one process from request to accept: make a transport key\n"
    "                  that lives only in this process, write the request, print its\n"
    "                  fingerprint, wait for the blob, take in the realm keys, exit:\n"
    "                  HSM options, --request-out FILE --blob FILE --realm DIR\n"
    "                  [--timeout SECONDS, default 900]\n"
    "  enrol approve   existing member: wrap the realm keys to an approved request:\n"
    "                  HSM options, --so-pin-file --request FILE --fingerprint TEXT\n"
    "                  --realm DIR --out BLOB\n"
    "  hsm status      what the token holds: HSM options [--realm DIR to verify it]\n"
    "  hsm check       prove the realm works in this HSM: HSM options, --realm DIR\n"
    "                  [--account ID]\n"
    "\n"
    "Router and client commands (no HSM needed):\n"
    "  router keygen   make the router keys: --out-dir DIR writes DIR/router.key\n"
    "                  (token key and proof key, for bkv-router and token issue)\n"
    "                  and DIR/router-proof.key (proof key only, for every node),\n"
    "                  both mode 0600; existing files are never overwritten\n"
    "  token issue     sign an account token and print it: --key router.key\n"
    "                  --account ID [--ttl 24h] [--out FILE (mode 0600)]. TTL is\n"
    "                  N, Ns, Nm, Nh or Nd, at most 366d. Accounts are 1 to 256\n"
    "                  of A-Z a-z 0-9 . _ @ + -\n"
    "  realm keyconfig write the realm key config clients pin, and print its\n"
    "                  fingerprint: --realm-dir DIR (realm.bin) --out FILE\n"
    "                  [--ksf argon2id --ksf-t 3 --ksf-m-kib 65536 --ksf-p 4]\n"
    "                  (RFC 9106's second recommended Argon2id option by default;\n"
    "                  --ksf identity is for tests only: clients refuse it)\n"
    "\n"
    "HSM options:\n"
    "  --node-dir DIR     the node's HSM directory (softhsm2.conf, tokens/, lock file)\n"
    "  --module PATH      PKCS#11 module (default: Debian's SoftHSM2)\n"
    "  --lock-dir DIR     directory of the token's lock file (default: --node-dir;\n"
    "                     required for a hardware HSM)\n"
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
    cfg->lock_dir = o->lock_dir;
    if (o->node_dir != NULL) {
        snprintf(conf, cap, "%s/%s", o->node_dir, BKV_HSM_CONF_NAME);
        cfg->softhsm_conf = conf;
        if (cfg->lock_dir == NULL)
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

/* Open the token; with pinned (borrowed) set, only if it holds exactly that realm. */
static int open_hsm(const struct opts *o, int require_realm, const struct bkv_hsm_realm *pinned,
                    struct bkv_hsm **h)
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
    cfg.realm = pinned;
    rc = bkv_hsm_open(&cfg, h, err, sizeof(err));
    if (rc != BKV_OK) {
        fail("open HSM", rc, err);
        if (rc == BKV_ERR_HSM_NOT_ENROLLED)
            fprintf(stderr,
                    "%s: enrol this node first: run bkv-admin enrol join on it and "
                    "bkv-admin enrol approve on a member\n",
                    prog);
        else if (pinned != NULL && (rc == BKV_ERR_INVALID || rc == BKV_ERR_MAC))
            fprintf(stderr,
                    "%s: this token does not hold the realm of --realm as it was created; do "
                    "not use it: re-provision the node and enrol it again\n",
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
    printf("next: bkv-admin realm create (first node) or bkv-admin enrol join (new node)\n");
    return 0;
}

/* Print data (public) as a here-document an operator can paste to recreate path. */
static void print_recovery(const char *path, const uint8_t *data, size_t len)
{
    unsigned char line[80];

    fprintf(stderr, "  base64 -d > '%s' <<'EOF'\n", path);
    for (size_t off = 0; off < len; off += 57) {
        size_t n = len - off < 57 ? len - off : 57;
        EVP_EncodeBlock(line, data + off, (int)n);
        fprintf(stderr, "  %s\n", line);
    }
    fprintf(stderr, "  EOF\n");
}

/*
 * After the realm exists in the token, a file could not be written: say
 * exactly how to recover. Both files are public (the secrets are sealed by
 * the realm key), so their content is printed for the operator to save.
 */
static void realm_write_failed(const struct opts *o, const struct bkv_file_new *failed,
                               const char *secrets_path, const uint8_t *secrets, size_t secrets_len,
                               const char *realm_path, const uint8_t *enc, size_t enc_len,
                               int secrets_written)
{
    fprintf(stderr,
            "%s: the realm now exists in token \"%s\", but %s was not written.\n"
            "%s: recover by saving the missing file%s (public content) from here:\n",
            prog, o->token, secrets_written ? realm_path : secrets_path, prog,
            secrets_written ? "" : "s");
    if (failed->kept && failed->tmp[0] != '\0')
        fprintf(stderr, "  # its content is complete in %s: mv it there, or\n", failed->tmp);
    if (!secrets_written)
        print_recovery(secrets_path, secrets, secrets_len);
    print_recovery(realm_path, enc, enc_len);
    fprintf(stderr,
            "%s: then check with: bkv-admin hsm check ... --realm %s\n"
            "%s: or start over: no other node holds this realm yet, so provision a new token "
            "(bkv-admin token init with a new --node-dir) and run realm create again\n",
            prog, o->out, prog);
}

static int cmd_realm_create(const struct opts *o)
{
    struct bkv_hsm *h = NULL;
    struct bkv_hsm_realm realm;
    struct bkv_file_new sec_file, realm_file;
    uint8_t enc[BKV_HSM_REALM_ENCODED_LEN], *secrets = NULL;
    size_t secrets_len = 0;
    char sec_path[4096], realm_path[4096], err[1024] = "";
    int rc, status = 1, reserved = 0;

    if (!need(o->out, "--out"))
        return 2;
    if (mkdir(o->out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: create %s: %s\n", prog, o->out, strerror(errno));
        return 1;
    }
    path_join(sec_path, sizeof(sec_path), o->out, SECRETS_FILE);
    path_join(realm_path, sizeof(realm_path), o->out, REALM_FILE);
    /* Both outputs must be possible before anything irreversible happens in the token. */
    rc = bkv_file_new_open(&sec_file, sec_path, 0600, 1, err, sizeof(err));
    if (rc != BKV_OK) {
        fail("prepare the realm directory", rc, err);
        return 1;
    }
    rc = bkv_file_new_open(&realm_file, realm_path, 0644, 1, err, sizeof(err));
    if (rc != BKV_OK) {
        fail("prepare the realm directory", rc, err);
        bkv_file_new_abort(&sec_file);
        return 1;
    }
    reserved = 1;
    if (open_hsm(o, 0, NULL, &h) != BKV_OK)
        goto out;
    rc = bkv_hsm_realm_create(h, &realm, &secrets, &secrets_len);
    if (rc != BKV_OK) {
        fail("create realm", rc, bkv_hsm_errmsg(h));
        goto out;
    }
    bkv_hsm_realm_encode(&realm, enc);
    /* The sealed secrets first: they exist nowhere else. */
    reserved = 0;
    rc = bkv_file_new_commit(&sec_file, secrets, secrets_len, err, sizeof(err));
    if (rc != BKV_OK) {
        fail("write sealed OPAQUE secrets", rc, err);
        bkv_file_new_abort(&realm_file);
        realm_write_failed(o, &sec_file, sec_path, secrets, secrets_len, realm_path, enc,
                           sizeof(enc), 0);
        goto out;
    }
    rc = bkv_file_new_commit(&realm_file, enc, sizeof(enc), err, sizeof(err));
    if (rc != BKV_OK) {
        fail("write realm description", rc, err);
        realm_write_failed(o, &realm_file, sec_path, secrets, secrets_len, realm_path, enc,
                           sizeof(enc), 1);
        goto out;
    }
    printf("realm created in token \"%s\"; description and sealed secrets in %s\n", o->token,
           o->out);
    print_realm(&realm);
    status = 0;
out:
    if (reserved) {
        bkv_file_new_abort(&sec_file);
        bkv_file_new_abort(&realm_file);
    }
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

/*
 * Wait until path is a non-empty regular file whose size did not change over
 * one nap (the approver writes it atomically, but an operator may copy it
 * in), or until timeout_s seconds have passed (BKV_ERR_LIMIT). Polling with
 * short naps is fine here: a person is on the other end.
 */
static int wait_for_file(const char *path, long timeout_s)
{
    struct timespec start, now, nap = {0, 200 * 1000 * 1000L};
    off_t last = -1;

    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
            if (st.st_size == last)
                return BKV_OK;
            last = st.st_size;
        } else {
            last = -1;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec >= timeout_s)
            return BKV_ERR_LIMIT;
        nanosleep(&nap, NULL);
    }
}

static int cmd_enrol_join(const struct opts *o)
{
    struct bkv_hsm *h = NULL;
    struct bkv_hsm_transport t;
    struct bkv_hsm_realm pinned, got;
    uint8_t *blob = NULL, *secrets = NULL;
    size_t blob_len = 0, secrets_len = 0, n;
    char hex[2 * BKV_HPKE_P256_PK_LEN + 2], err[1024] = "";
    long timeout = o->timeout > 0 ? o->timeout : JOIN_TIMEOUT;
    struct stat st;
    int rc, status = 1;

    if (!need(o->request_out, "--request-out") || !need(o->blob, "--blob") ||
        !need(o->realm, "--realm"))
        return 2;
    if (load_realm(o->realm, &pinned, NULL, NULL) != BKV_OK)
        return 1;
    if (lstat(o->blob, &st) == 0) {
        fprintf(stderr,
                "%s: %s already exists: remove it first (a blob from an earlier run is useless: "
                "its transport key died with that process)\n",
                prog, o->blob);
        return 1;
    }
    if (open_hsm(o, 0, NULL, &h) != BKV_OK)
        return 1;
    rc = bkv_hsm_enrol_request(h, &t);
    if (rc != BKV_OK) {
        fail("make transport key", rc, bkv_hsm_errmsg(h));
        goto out;
    }
    bkv_hex_encode(t.pk, sizeof(t.pk), hex);
    n = strlen(hex);
    hex[n] = '\n';
    rc = bkv_file_write(o->request_out, (const uint8_t *)hex, n + 1, 0644, 0, err, sizeof(err));
    hex[n] = '\0';
    if (rc != BKV_OK) {
        fail("write request", rc, err);
        goto out;
    }
    printf("transport public key:  %s\n", hex);
    printf("fingerprint:           %s\n", t.text);
    printf("request written to %s. Next: an operator on a realm member compares this\n"
           "fingerprint over a trusted channel, runs bkv-admin enrol approve with it, and\n"
           "puts the blob at %s. The transport key exists only in this process:\n"
           "if it ends, start again.\n",
           o->request_out, o->blob);
    printf("waiting for %s (up to %ld s)\n", o->blob, timeout);
    fflush(stdout);
    rc = wait_for_file(o->blob, timeout);
    if (rc != BKV_OK) {
        snprintf(err, sizeof(err),
                 "no enrolment blob at %.300s after %ld s; the transport key is gone with this "
                 "process: run enrol join again",
                 o->blob, timeout);
        fail("enrol", rc, err);
        goto out;
    }
    rc = bkv_file_read(o->blob, MAX_FILE, &blob, &blob_len, err, sizeof(err));
    if (rc != BKV_OK) {
        fail("read enrolment blob", rc, err);
        goto out;
    }
    rc = bkv_hsm_enrol_accept(h, &pinned, blob, blob_len, &got, &secrets, &secrets_len);
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
    struct bkv_hsm_realm realm;
    uint8_t pk[BKV_HPKE_P256_PK_LEN], fp[BKV_HSM_FINGERPRINT_LEN];
    uint8_t *secrets = NULL, *blob = NULL;
    size_t secrets_len = 0, blob_len = 0;
    char err[1024] = "";
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
    /* The token must hold exactly the pinned realm, keys checked, before anything is wrapped. */
    if (open_hsm(o, 1, &realm, &h) != BKV_OK)
        goto out;
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
    printf("next: put it where the new node's bkv-admin enrol join is waiting for it\n");
    status = 0;
out:
    free(blob);
    free(secrets);
    bkv_hsm_close(h);
    return status;
}

static int cmd_hsm_status(const struct opts *o)
{
    struct bkv_hsm *h = NULL;
    struct bkv_hsm_realm realm, pinned;
    int rc;

    if (o->realm != NULL && load_realm(o->realm, &pinned, NULL, NULL) != BKV_OK)
        return 1;
    if (open_hsm(o, 0, o->realm != NULL ? &pinned : NULL, &h) != BKV_OK)
        return 1;
    printf("token:                     %s (open, logged in)\n", bkv_hsm_label(h));
    rc = bkv_hsm_realm_get(h, &realm);
    if (rc == BKV_ERR_HSM_NOT_ENROLLED) {
        printf("realm:                     none (not enrolled)\n");
        rc = BKV_OK;
    } else if (rc != BKV_OK) {
        fail("read realm", rc, bkv_hsm_errmsg(h));
    } else {
        print_realm(&realm);
        printf("%-26s %s\n", "matches --realm:",
               o->realm != NULL ? "yes (description and key check values)"
                                : "not checked (give --realm to check)");
    }
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
    struct bkv_hsm_realm pinned;
    struct bkv_opaque_server_keys *keys = NULL;
    uint8_t *secrets = NULL, mac[BKV_HSM_MAC_LEN];
    size_t secrets_len = 0;
    int rc, status = 1;

    if (!need(o->realm, "--realm"))
        return 2;
    if (load_realm(o->realm, &pinned, &secrets, &secrets_len) != BKV_OK)
        goto out;
    /* Open verifies the description and the key check values against --realm. */
    if (open_hsm(o, 1, &pinned, &h) != BKV_OK)
        goto out;
    printf("realm matches --realm:     yes (description and key check values)\n");
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

/* The two-step ceremony of earlier versions left a derivable transport key in the token. */
static int cmd_enrol_replaced(const struct opts *o)
{
    (void)o;
    fprintf(stderr,
            "%s: enrol request and enrol accept were replaced by enrol join: one process makes "
            "the transport key, waits for the blob and accepts it, so the key never exists "
            "outside that process (see --help)\n",
            prog);
    return 2;
}

static int cmd_router_keygen(const struct opts *o)
{
    struct bkv_router_keys keys;
    struct bkv_file_new kf, pf;
    uint8_t kbuf[BKV_ROUTER_KEY_FILE_LEN], pbuf[BKV_ROUTER_PROOF_FILE_LEN];
    char kpath[4096], ppath[4096], err[1024] = "";
    int rc, status = 1, k_open = 0, p_open = 0;

    if (!need(o->out_dir, "--out-dir"))
        return 2;
    if (mkdir(o->out_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: create %s: %s\n", prog, o->out_dir, strerror(errno));
        return 1;
    }
    path_join(kpath, sizeof(kpath), o->out_dir, BKV_ROUTER_KEY_FILE);
    path_join(ppath, sizeof(ppath), o->out_dir, BKV_ROUTER_PROOF_FILE);
    /* Both names are reserved (and must not exist) before a key is made. */
    rc = bkv_file_new_open(&kf, kpath, 0600, 1, err, sizeof(err));
    if (rc == BKV_OK) {
        k_open = 1;
        rc = bkv_file_new_open(&pf, ppath, 0600, 1, err, sizeof(err));
        p_open = rc == BKV_OK;
    }
    if (rc != BKV_OK) {
        fail("router keygen", rc, err);
        if (rc == BKV_ERR_INVALID)
            fprintf(stderr,
                    "%s: existing router keys are never overwritten: choose another "
                    "--out-dir, or move the old keys away first\n",
                    prog);
        goto out;
    }
    rc = bkv_router_keys_generate(&keys);
    if (rc != BKV_OK) {
        fail("router keygen", rc, "no random bytes");
        goto out;
    }
    bkv_router_key_file_encode(&keys, kbuf);
    bkv_router_proof_file_encode(&keys, pbuf);
    bkv_router_keys_wipe(&keys);
    k_open = 0;
    rc = bkv_file_new_commit(&kf, kbuf, sizeof(kbuf), err, sizeof(err));
    if (rc != BKV_OK) {
        fail("write router key", rc, err);
        goto out;
    }
    p_open = 0;
    rc = bkv_file_new_commit(&pf, pbuf, sizeof(pbuf), err, sizeof(err));
    if (rc != BKV_OK) {
        fail("write router proof key", rc, err);
        fprintf(stderr, "%s: remove %s and run router keygen again\n", prog, kpath);
        goto out;
    }
    printf("router keys written (mode 0600):\n"
           "  %s        token key and proof key: for bkv-router --key and bkv-admin token "
           "issue\n"
           "  %s  proof key only: for every vault node (it checks requests come from a "
           "router, but cannot mint tokens)\n",
           kpath, ppath);
    status = 0;
out:
    if (k_open)
        bkv_file_new_abort(&kf);
    if (p_open)
        bkv_file_new_abort(&pf);
    OPENSSL_cleanse(kbuf, sizeof(kbuf));
    OPENSSL_cleanse(pbuf, sizeof(pbuf));
    return status;
}

/* N, Ns, Nm, Nh or Nd; 1 s to TTL_MAX. */
static int parse_ttl(const char *s, long *out)
{
    char *end;
    long v, mult = 1;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || s[0] == '-' || s[0] == '+' || v < 1)
        return 0;
    if (*end != '\0') {
        switch (*end) {
        case 's':
            break;
        case 'm':
            mult = 60;
            break;
        case 'h':
            mult = 3600;
            break;
        case 'd':
            mult = 86400;
            break;
        default:
            return 0;
        }
        if (end[1] != '\0')
            return 0;
    }
    if (v > TTL_MAX / mult)
        return 0;
    *out = v * mult;
    return 1;
}

static int cmd_token_issue(const struct opts *o)
{
    struct bkv_router_keys keys;
    char tok[BKV_TOKEN_MAX_LEN + 2], err[1024] = "", when[64];
    long ttl = TTL_DEFAULT;
    time_t expiry;
    struct tm tm;
    size_t len;
    int rc, status = 1;

    if (!need(o->key, "--key") || !need(o->account, "--account"))
        return 2;
    if (o->ttl != NULL && !parse_ttl(o->ttl, &ttl)) {
        fprintf(stderr, "%s: --ttl: expected N, Ns, Nm, Nh or Nd from 1 s to 366d\n", prog);
        return 2;
    }
    if (!bkv_msg_account_valid((const uint8_t *)o->account, strlen(o->account))) {
        fprintf(stderr, "%s: --account: expected 1 to %d characters of A-Z a-z 0-9 . _ @ + -\n",
                prog, BKV_MSG_ACCOUNT_MAX);
        return 2;
    }
    rc = bkv_router_key_load(o->key, &keys, err, sizeof(err));
    if (rc != BKV_OK) {
        fail("read router key", rc, err);
        return 1;
    }
    expiry = time(NULL) + ttl;
    rc = bkv_token_issue(keys.token_key, o->account, (uint64_t)expiry, tok, sizeof(tok) - 1);
    bkv_router_keys_wipe(&keys);
    if (rc != BKV_OK) {
        fail("issue token", rc, NULL);
        goto out;
    }
    gmtime_r(&expiry, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (o->out != NULL) {
        len = strlen(tok);
        tok[len] = '\n';
        rc = bkv_file_write(o->out, (const uint8_t *)tok, len + 1, 0600, 0, err, sizeof(err));
        if (rc != BKV_OK) {
            fail("write token", rc, err);
            goto out;
        }
        printf("token for account %s, valid until %s, written to %s (mode 0600)\n", o->account,
               when, o->out);
    } else {
        printf("%s\n", tok);
        fprintf(stderr, "%s: token for account %s, valid until %s\n", prog, o->account, when);
    }
    status = 0;
out:
    OPENSSL_cleanse(tok, sizeof(tok));
    return status;
}

static int parse_u32(const char *flag, const char *s, unsigned long min, unsigned long max,
                     uint32_t *out)
{
    char *end;
    unsigned long v;

    if (s == NULL)
        return 1;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max) {
        fprintf(stderr, "%s: %s: expected a whole number from %lu to %lu\n", prog, flag, min, max);
        return 0;
    }
    *out = (uint32_t)v;
    return 1;
}

static int cmd_realm_keyconfig(const struct opts *o)
{
    struct bkv_hsm_realm realm;
    struct bkv_keyconfig kc;
    uint8_t enc[BKV_KEYCONFIG_MAX_LEN], fp[BKV_KEYCONFIG_FP_LEN];
    char hex[2 * BKV_KEYCONFIG_FP_LEN + 1], rid[2 * BKV_MSG_REALM_ID_LEN + 1], err[1024] = "";
    size_t len = 0;
    int rc;

    if (!need(o->realm_dir, "--realm-dir") || !need(o->out, "--out"))
        return 2;
    memset(&kc, 0, sizeof(kc));
    kc.ksf = BKV_KSF_ARGON2ID_DEFAULT;
    if (o->ksf != NULL && strcmp(o->ksf, "identity") == 0) {
        if (o->ksf_t != NULL || o->ksf_m != NULL || o->ksf_p != NULL) {
            fprintf(stderr, "%s: --ksf identity takes no parameters\n", prog);
            return 2;
        }
        kc.ksf = BKV_KSF_IDENTITY_PARAMS;
        fprintf(stderr,
                "%s: warning: --ksf identity does no key stretching; it is for tests "
                "only, and production clients refuse it\n",
                prog);
    } else if (o->ksf != NULL && strcmp(o->ksf, "argon2id") != 0) {
        fprintf(stderr, "%s: --ksf: expected argon2id (or identity, for tests)\n", prog);
        return 2;
    }
    if (!parse_u32("--ksf-t", o->ksf_t, 1, 1000, &kc.ksf.iterations) ||
        !parse_u32("--ksf-p", o->ksf_p, 1, 255, &kc.ksf.parallelism) ||
        !parse_u32("--ksf-m-kib", o->ksf_m, 8, 4u << 20, &kc.ksf.memory_kib))
        return 2;
    if (kc.ksf.kind == BKV_KSF_ARGON2ID && kc.ksf.memory_kib < 8 * kc.ksf.parallelism) {
        fprintf(stderr, "%s: --ksf-m-kib must be at least 8 x --ksf-p (Argon2)\n", prog);
        return 2;
    }
    if (load_realm(o->realm_dir, &realm, NULL, NULL) != BKV_OK)
        return 1;
    memcpy(kc.realm_id, realm.realm_id, sizeof(kc.realm_id));
    kc.ohttp.key_id = realm.hpke_key_id[0];
    kc.ohttp.kem = BKV_HPKE_KEM_P256_SHA256;
    kc.ohttp.pk_len = sizeof(realm.hpke_pk);
    memcpy(kc.ohttp.pk, realm.hpke_pk, sizeof(realm.hpke_pk));
    kc.ohttp.suite_count = 2;
    kc.ohttp.suites[0] =
        (struct bkv_ohttp_symmetric){BKV_HPKE_KDF_HKDF_SHA256, BKV_HPKE_AEAD_AES_128_GCM};
    kc.ohttp.suites[1] =
        (struct bkv_ohttp_symmetric){BKV_HPKE_KDF_HKDF_SHA256, BKV_HPKE_AEAD_AES_256_GCM};
    rc = bkv_keyconfig_encode(&kc, enc, sizeof(enc), &len);
    if (rc == BKV_OK)
        rc = bkv_keyconfig_fingerprint(enc, len, fp);
    if (rc != BKV_OK) {
        fail("encode key config", rc, "is realm.bin intact?");
        return 1;
    }
    rc = bkv_file_write(o->out, enc, len, 0644, 0, err, sizeof(err));
    if (rc != BKV_OK) {
        fail("write key config", rc, err);
        return 1;
    }
    bkv_hex_encode(fp, sizeof(fp), hex);
    bkv_hex_encode(kc.realm_id, sizeof(kc.realm_id), rid);
    printf("key config written to %s (%zu bytes): realm %s, HPKE key id %u, P-256,\n"
           "HKDF-SHA256 with AES-128-GCM and AES-256-GCM, KSF %s t=%u m=%u KiB p=%u\n",
           o->out, len, rid, kc.ohttp.key_id,
           kc.ksf.kind == BKV_KSF_ARGON2ID ? "argon2id" : "identity", kc.ksf.iterations,
           kc.ksf.memory_kib, kc.ksf.parallelism);
    printf("fingerprint: %s\n", hex);
    return 0;
}

struct command {
    const char *group, *name;
    int (*run)(const struct opts *o);
};

static const struct command commands[] = {
    {"token", "init", cmd_token_init},       {"realm", "create", cmd_realm_create},
    {"realm", "show", cmd_realm_show},       {"enrol", "join", cmd_enrol_join},
    {"enrol", "approve", cmd_enrol_approve}, {"hsm", "status", cmd_hsm_status},
    {"hsm", "check", cmd_hsm_check},         {"enrol", "request", cmd_enrol_replaced},
    {"enrol", "accept", cmd_enrol_replaced}, {"router", "keygen", cmd_router_keygen},
    {"token", "issue", cmd_token_issue},     {"realm", "keyconfig", cmd_realm_keyconfig},
};

/* No core dump may ever hold a PIN or an unsealed secret. */
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
        {"request-out", required_argument, NULL, 'Q'},
        {"timeout", required_argument, NULL, 'T'},
        {"lock-dir", required_argument, NULL, 'L'},
        {"out-dir", required_argument, NULL, OPT_OUT_DIR},
        {"key", required_argument, NULL, OPT_KEY},
        {"ttl", required_argument, NULL, OPT_TTL},
        {"realm-dir", required_argument, NULL, OPT_REALM_DIR},
        {"ksf", required_argument, NULL, OPT_KSF},
        {"ksf-t", required_argument, NULL, OPT_KSF_T},
        {"ksf-m-kib", required_argument, NULL, OPT_KSF_M},
        {"ksf-p", required_argument, NULL, OPT_KSF_P},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct opts o = {0};
    static char cwd[2048], node_dir[4096];
    char *end;
    int c;

    if (!bkv_no_core_dumps()) {
        fprintf(stderr, "%s: cannot disable core dumps: %s\n", prog, strerror(errno));
        return 1;
    }
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
        return usage(stdout, 0);
    if (argc >= 2 && strcmp(argv[1], "status") == 0)
        return bkv_admin_status_main(argc - 1, argv + 1);
    if (argc >= 3 && (strcmp(argv[1], "members") == 0 || strcmp(argv[1], "leader") == 0))
        return bkv_admin_change_main(argv[1], argc - 2, argv + 2);
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
        case 'Q':
            o.request_out = optarg;
            break;
        case 'L':
            o.lock_dir = optarg;
            break;
        case 'T':
            errno = 0;
            o.timeout = strtol(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || o.timeout < 1 ||
                o.timeout > JOIN_TIMEOUT_MAX) {
                fprintf(stderr, "%s: --timeout: expected 1 to %ld seconds\n", prog,
                        JOIN_TIMEOUT_MAX);
                return 2;
            }
            break;
        case OPT_OUT_DIR:
            o.out_dir = optarg;
            break;
        case OPT_KEY:
            o.key = optarg;
            break;
        case OPT_TTL:
            o.ttl = optarg;
            break;
        case OPT_REALM_DIR:
            o.realm_dir = optarg;
            break;
        case OPT_KSF:
            o.ksf = optarg;
            break;
        case OPT_KSF_T:
            o.ksf_t = optarg;
            break;
        case OPT_KSF_M:
            o.ksf_m = optarg;
            break;
        case OPT_KSF_P:
            o.ksf_p = optarg;
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
