/*
 * hsm/p11, token, pinfile, lock, ckr: provisioning a node directory and
 * tokens through PKCS#11, opening a token, and every error a person must be
 * able to act on, each with its own code and a message that names the token:
 * missing module, missing token, wrong PIN, PIN file readable by others,
 * token locked by another process or handle, token not enrolled, duplicate
 * label. Real SoftHSM2 tokens in a temporary directory.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "harness.h"
#include "hsm/ckr.h"
#include "hsm/internal.h"
#include "hsm/lock.h"
#include "hsm/pinfile.h"
#include "hsm/token.h"
#include "proto/err.h"

static struct fx fx;

static int suite_init(void)
{
    if (fx_setup(&fx) != 0 || fx_token(&fx, "node-1") != 0)
        return 1;
    return 0;
}

static int suite_cleanup(void)
{
    fx_teardown(&fx);
    return 0;
}

/* Open with cfg and return the code; msg gets the message. */
static int try_open(const struct bkv_hsm_config *cfg, char *msg, size_t cap)
{
    struct bkv_hsm *h = NULL;
    int rc;

    msg[0] = '\0';
    rc = bkv_hsm_open(cfg, &h, msg, cap);
    printf("\n    open -> %s: %s", bkv_strerror(rc), rc ? msg : "ok");
    bkv_hsm_close(h);
    return rc;
}

static void test_open_and_close(void)
{
    struct bkv_hsm *h = NULL;
    struct bkv_hsm_realm r;

    CU_ASSERT_EQUAL_FATAL(fx_open(&fx, "node-1", &h), 0);
    CU_ASSERT_STRING_EQUAL(bkv_hsm_label(h), "node-1");
    /* A fresh token opens (enrolment needs it) but holds no realm. */
    CU_ASSERT_EQUAL(bkv_hsm_realm_get(h, &r), BKV_ERR_HSM_NOT_ENROLLED);
    CU_ASSERT_PTR_NOT_NULL(strstr(bkv_hsm_errmsg(h), "\"node-1\""));
    bkv_hsm_close(h);
    /* Open again after close: the lock and the module were released. */
    CU_ASSERT_EQUAL_FATAL(fx_open(&fx, "node-1", &h), 0);
    bkv_hsm_close(h);
    bkv_hsm_close(NULL);
}

static void test_missing_module(void)
{
    struct bkv_hsm_config cfg = fx_config(&fx, "node-1");
    char msg[512];

    cfg.module_path = "/nonexistent/libpkcs11.so";
    CU_ASSERT_EQUAL(try_open(&cfg, msg, sizeof(msg)), BKV_ERR_HSM_MODULE);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "\"node-1\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "/nonexistent/libpkcs11.so"));
    /* A file that is not a PKCS#11 module. */
    cfg.module_path = "/etc/hostname";
    CU_ASSERT_EQUAL(try_open(&cfg, msg, sizeof(msg)), BKV_ERR_HSM_MODULE);
}

static void test_missing_token(void)
{
    struct bkv_hsm_config cfg = fx_config(&fx, "node-9");
    char msg[512];

    CU_ASSERT_EQUAL(try_open(&cfg, msg, sizeof(msg)), BKV_ERR_HSM_TOKEN);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "hsm: open token \"node-9\": no token with this label"));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "\"node-1\"")); /* lists what is there */
    cfg.token_label = NULL;
    CU_ASSERT_EQUAL(try_open(&cfg, msg, sizeof(msg)), BKV_ERR_INVALID);
    cfg.token_label = "a-label-that-is-longer-than-32-bytes";
    CU_ASSERT_EQUAL(try_open(&cfg, msg, sizeof(msg)), BKV_ERR_INVALID);
}

static void test_wrong_pin(void)
{
    struct bkv_hsm_config cfg = fx_config(&fx, "node-1");
    char path[600], msg[512];

    snprintf(path, sizeof(path), "%s/wrong.pin", fx.dir);
    CU_ASSERT_EQUAL_FATAL(fx_write_file(path, "not-the-pin\n", 0600), 0);
    cfg.pin_file = path;
    CU_ASSERT_EQUAL(try_open(&cfg, msg, sizeof(msg)), BKV_ERR_HSM_PIN);
    CU_ASSERT_STRING_EQUAL(msg, "hsm: open token \"node-1\": C_Login: CKR_PIN_INCORRECT");
    /* SoftHSM2 has no PIN lockout: the right PIN still works afterwards. */
    cfg.pin_file = fx.user_pin;
    CU_ASSERT_EQUAL(try_open(&cfg, msg, sizeof(msg)), 0);
}

static void test_pin_file_checks(void)
{
    struct bkv_hsm_config cfg = fx_config(&fx, "node-1");
    char path[600], msg[512];
    uint8_t pin[BKV_HSM_PIN_MAX];
    size_t len;

    snprintf(path, sizeof(path), "%s/open.pin", fx.dir);
    CU_ASSERT_EQUAL_FATAL(fx_write_file(path, FX_USER_PIN "\n", 0644), 0);
    cfg.pin_file = path;
    CU_ASSERT_EQUAL(try_open(&cfg, msg, sizeof(msg)), BKV_ERR_PERMISSION);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "\"node-1\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "mode 0644"));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "chmod 600"));
    CU_ASSERT_PTR_NULL(strstr(msg, FX_USER_PIN)); /* never the PIN itself */
    chmod(path, 0640);
    CU_ASSERT_EQUAL(bkv_hsm_pin_read(path, pin, sizeof(pin), &len, msg, sizeof(msg)),
                    BKV_ERR_PERMISSION);
    chmod(path, 0400);
    CU_ASSERT_EQUAL(bkv_hsm_pin_read(path, pin, sizeof(pin), &len, msg, sizeof(msg)), 0);
    CU_ASSERT_EQUAL(len, strlen(FX_USER_PIN)); /* one newline stripped */
    CU_ASSERT_EQUAL(memcmp(pin, FX_USER_PIN, len), 0);
    if (geteuid() == 0) {
        /* Owned by someone else. */
        chmod(path, 0600);
        CU_ASSERT_EQUAL(chown(path, 65534, 65534), 0);
        CU_ASSERT_EQUAL(bkv_hsm_pin_read(path, pin, sizeof(pin), &len, msg, sizeof(msg)),
                        BKV_ERR_PERMISSION);
        CU_ASSERT_PTR_NOT_NULL(strstr(msg, "owned by uid 65534"));
        unlink(path);
    }
    /* Missing, empty, two newlines (only one is stripped), too long. */
    cfg.pin_file = "/nonexistent/user.pin";
    CU_ASSERT_EQUAL(try_open(&cfg, msg, sizeof(msg)), BKV_ERR_IO);
    fx_write_file(path, "\n", 0600);
    CU_ASSERT_EQUAL(bkv_hsm_pin_read(path, pin, sizeof(pin), &len, msg, sizeof(msg)),
                    BKV_ERR_INVALID);
    fx_write_file(path, "pin\n\n", 0600);
    CU_ASSERT_EQUAL(bkv_hsm_pin_read(path, pin, sizeof(pin), &len, msg, sizeof(msg)), 0);
    CU_ASSERT_EQUAL(len, 4);
    CU_ASSERT_EQUAL(bkv_hsm_pin_read(path, pin, 3, &len, msg, sizeof(msg)), BKV_ERR_LENGTH);
}

static void test_locked_in_process(void)
{
    struct bkv_hsm_config cfg = fx_config(&fx, "node-1");
    struct bkv_hsm *h = NULL;
    char msg[512], pid[32];

    CU_ASSERT_EQUAL_FATAL(fx_open(&fx, "node-1", &h), 0);
    CU_ASSERT_EQUAL(try_open(&cfg, msg, sizeof(msg)), BKV_ERR_HSM_LOCKED);
    snprintf(pid, sizeof(pid), "process %ld", (long)getpid());
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "hsm: open token \"node-1\": token is in use by"));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, pid));
    bkv_hsm_close(h);
    CU_ASSERT_EQUAL(try_open(&cfg, msg, sizeof(msg)), 0);
}

static void test_locked_by_other_process(void)
{
    struct bkv_hsm_config cfg = fx_config(&fx, "node-1");
    char path[4200], msg[512], want[64], c = 0;
    int ready[2], go[2], status = 0;
    pid_t child;

    CU_ASSERT_EQUAL_FATAL(hsm_lock_file(&cfg, "node-1", path, sizeof(path), msg, sizeof(msg)), 0);
    CU_ASSERT_EQUAL_FATAL(pipe(ready), 0);
    CU_ASSERT_EQUAL_FATAL(pipe(go), 0);
    child = fork();
    CU_ASSERT_FATAL(child >= 0);
    if (child == 0) {
        /* The child only holds the lock file, as a running node would. */
        int fd = -1;
        char e[256];
        char ok = bkv_hsm_lock_acquire(path, &fd, e, sizeof(e)) == 0 ? 'y' : 'n';
        if (write(ready[1], &ok, 1) != 1 || read(go[0], &ok, 1) != 1)
            _exit(2);
        _exit(0);
    }
    CU_ASSERT_EQUAL(read(ready[0], &c, 1), 1);
    CU_ASSERT_EQUAL(c, 'y');
    CU_ASSERT_EQUAL(try_open(&cfg, msg, sizeof(msg)), BKV_ERR_HSM_LOCKED);
    snprintf(want, sizeof(want), "in use by process %ld", (long)child);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, want));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "\"node-1\""));
    CU_ASSERT_EQUAL(write(go[1], &c, 1), 1);
    waitpid(child, &status, 0);
    CU_ASSERT_EQUAL(status, 0);
    /* The kernel dropped the lock with the process. */
    CU_ASSERT_EQUAL(try_open(&cfg, msg, sizeof(msg)), 0);
    close(ready[0]);
    close(ready[1]);
    close(go[0]);
    close(go[1]);
}

static void test_not_enrolled(void)
{
    struct bkv_hsm_config cfg = fx_config(&fx, "node-1");
    char msg[512];

    cfg.require_realm = 1;
    CU_ASSERT_EQUAL(try_open(&cfg, msg, sizeof(msg)), BKV_ERR_HSM_NOT_ENROLLED);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "hsm: open token \"node-1\": the token holds no realm"));
}

static void test_provisioning(void)
{
    struct bkv_hsm_config cfg = fx_config(&fx, "node-1");
    char path[600], conf[600], msg[512];
    struct stat st;

    /* A label that exists is refused. */
    CU_ASSERT_EQUAL(bkv_hsm_token_init(&cfg, fx.so_pin, msg, sizeof(msg)), BKV_ERR_INVALID);
    printf("\n    %s", msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "\"node-1\": a token with this label already exists"));
    /* SO PIN file readable by others is refused before anything happens. */
    snprintf(path, sizeof(path), "%s/so-open.pin", fx.dir);
    fx_write_file(path, FX_SO_PIN, 0604);
    cfg.token_label = "node-2";
    CU_ASSERT_EQUAL(bkv_hsm_token_init(&cfg, path, msg, sizeof(msg)), BKV_ERR_PERMISSION);
    CU_ASSERT_EQUAL(fx_token(&fx, "node-2"), 0);
    CU_ASSERT_EQUAL(try_open(&cfg, msg, sizeof(msg)), 0);
    /* The node directory: modes, conf content, idempotent, refuses other content. */
    snprintf(path, sizeof(path), "%s/node", fx.dir);
    CU_ASSERT_EQUAL(stat(path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/node/tokens", fx.dir);
    CU_ASSERT_EQUAL(stat(path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0700);
    CU_ASSERT_EQUAL(stat(fx.conf, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
    snprintf(path, sizeof(path), "%s/node", fx.dir);
    CU_ASSERT_EQUAL(bkv_hsm_node_dir_create(path, conf, sizeof(conf), msg, sizeof(msg)), 0);
    CU_ASSERT_STRING_EQUAL(conf, fx.conf);
    snprintf(path, sizeof(path), "%s/other", fx.dir);
    CU_ASSERT_EQUAL(bkv_hsm_node_dir_create(path, NULL, 0, msg, sizeof(msg)), 0);
    snprintf(conf, sizeof(conf), "%s/other/softhsm2.conf", fx.dir);
    fx_write_file(conf, "directories.tokendir = /elsewhere\n", 0600);
    CU_ASSERT_EQUAL(bkv_hsm_node_dir_create(path, NULL, 0, msg, sizeof(msg)), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(bkv_hsm_node_dir_create("relative/dir", NULL, 0, msg, sizeof(msg)),
                    BKV_ERR_INVALID);
    /* Another SoftHSM2 configuration in the same process is refused. */
    {
        struct bkv_hsm *h = NULL;
        cfg = fx_config(&fx, "node-1");
        CU_ASSERT_EQUAL_FATAL(fx_open(&fx, "node-2", &h), 0);
        cfg.softhsm_conf = conf;
        CU_ASSERT_EQUAL(try_open(&cfg, msg, sizeof(msg)), BKV_ERR_INVALID);
        CU_ASSERT_PTR_NOT_NULL(strstr(msg, "per process"));
        bkv_hsm_close(h);
    }
}

static void test_two_handles_share_module(void)
{
    struct bkv_hsm *a = NULL, *b = NULL;

    CU_ASSERT_EQUAL_FATAL(fx_open(&fx, "node-1", &a), 0);
    CU_ASSERT_EQUAL_FATAL(fx_open(&fx, "node-2", &b), 0);
    CU_ASSERT_EQUAL(a->mod, b->mod);
    CU_ASSERT_EQUAL(a->mod->refs, 2);
    bkv_hsm_close(a);
    CU_ASSERT_EQUAL(b->mod->refs, 1);
    bkv_hsm_close(b);
}

static void test_ckr_names(void)
{
    CU_ASSERT_STRING_EQUAL(bkv_hsm_ckr_name(CKR_PIN_INCORRECT), "CKR_PIN_INCORRECT");
    CU_ASSERT_STRING_EQUAL(bkv_hsm_ckr_name(CKR_KEY_NOT_WRAPPABLE), "CKR_KEY_NOT_WRAPPABLE");
    CU_ASSERT_STRING_EQUAL(bkv_hsm_ckr_name(0x12345), "CKR_0x12345");
    CU_ASSERT_STRING_EQUAL(bkv_hsm_ckr_name(CKR_VENDOR_DEFINED | 1), "CKR_VENDOR_0x80000001");
    CU_ASSERT_EQUAL(bkv_hsm_ckr_to_err(CKR_OK), BKV_OK);
    CU_ASSERT_EQUAL(bkv_hsm_ckr_to_err(CKR_PIN_INCORRECT), BKV_ERR_HSM_PIN);
    CU_ASSERT_EQUAL(bkv_hsm_ckr_to_err(CKR_PIN_LOCKED), BKV_ERR_HSM_LOCKED);
    CU_ASSERT_EQUAL(bkv_hsm_ckr_to_err(CKR_TOKEN_NOT_PRESENT), BKV_ERR_HSM_TOKEN);
    CU_ASSERT_EQUAL(bkv_hsm_ckr_to_err(CKR_HOST_MEMORY), BKV_ERR_NOMEM);
    CU_ASSERT_EQUAL(bkv_hsm_ckr_to_err(CKR_FUNCTION_FAILED), BKV_ERR_HSM);
}

/* Finding 7: the lock file does not depend on how the directory is spelled. */
static void test_lock_dir(void)
{
    struct bkv_hsm_config cfg = fx_config(&fx, "node-1");
    char a[4200], b[4200], c[4200], msg[512], odd[600], link[600], wide[600];
    struct bkv_hsm *h = NULL;

    /* Three spellings of the node directory: conf's directory, "//./" and a symlink. */
    CU_ASSERT_EQUAL_FATAL(hsm_lock_file(&cfg, "node-1", a, sizeof(a), msg, sizeof(msg)), 0);
    snprintf(odd, sizeof(odd), "%s//./node/../node", fx.dir);
    cfg.lock_dir = odd;
    CU_ASSERT_EQUAL_FATAL(hsm_lock_file(&cfg, "node-1", b, sizeof(b), msg, sizeof(msg)), 0);
    snprintf(link, sizeof(link), "%s/node-link", fx.dir);
    snprintf(odd, sizeof(odd), "%s/node", fx.dir);
    CU_ASSERT_EQUAL_FATAL(symlink(odd, link), 0);
    cfg.lock_dir = link;
    CU_ASSERT_EQUAL_FATAL(hsm_lock_file(&cfg, "node-1", c, sizeof(c), msg, sizeof(msg)), 0);
    printf("\n    lock file: %s", a);
    CU_ASSERT_STRING_EQUAL(a, b);
    CU_ASSERT_STRING_EQUAL(a, c);
    /* So a handle opened through one spelling locks out the others. */
    CU_ASSERT_EQUAL_FATAL(fx_open(&fx, "node-1", &h), 0);
    CU_ASSERT_EQUAL(try_open(&cfg, msg, sizeof(msg)), BKV_ERR_HSM_LOCKED);
    bkv_hsm_close(h);
    /* No lock directory at all (a hardware HSM without lock_dir): refused, never /tmp. */
    cfg.lock_dir = NULL;
    cfg.softhsm_conf = NULL;
    CU_ASSERT_EQUAL(hsm_lock_file(&cfg, "node-1", a, sizeof(a), msg, sizeof(msg)), BKV_ERR_INVALID);
    CU_ASSERT_EQUAL(try_open(&cfg, msg, sizeof(msg)), BKV_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "no lock directory"));
    /* A lock directory others may write (like /tmp) is refused. */
    snprintf(wide, sizeof(wide), "%s/wide", fx.dir);
    CU_ASSERT_EQUAL_FATAL(mkdir(wide, 0700), 0);
    chmod(wide, 01777);
    cfg = fx_config(&fx, "node-1");
    cfg.lock_dir = wide;
    CU_ASSERT_EQUAL(try_open(&cfg, msg, sizeof(msg)), BKV_ERR_PERMISSION);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "not writable by group or others"));
    cfg.lock_dir = "/tmp";
    CU_ASSERT_EQUAL(try_open(&cfg, msg, sizeof(msg)), BKV_ERR_PERMISSION);
    cfg.lock_dir = "/nonexistent/locks";
    CU_ASSERT_EQUAL(try_open(&cfg, msg, sizeof(msg)), BKV_ERR_IO);
}

/* Finding 14: the node directory and tokens/ must be ours, private, and not symlinks. */
static void test_node_dir_checks(void)
{
    char dir[600], target[600], msg[512];

    snprintf(target, sizeof(target), "%s/real", fx.dir);
    snprintf(dir, sizeof(dir), "%s/linked", fx.dir);
    CU_ASSERT_EQUAL_FATAL(mkdir(target, 0700), 0);
    CU_ASSERT_EQUAL_FATAL(symlink(target, dir), 0);
    CU_ASSERT_EQUAL(bkv_hsm_node_dir_create(dir, NULL, 0, msg, sizeof(msg)), BKV_ERR_INVALID);
    printf("\n    %s", msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "symbolic link"));
    snprintf(dir, sizeof(dir), "%s/open", fx.dir);
    CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0700), 0);
    chmod(dir, 0770);
    CU_ASSERT_EQUAL(bkv_hsm_node_dir_create(dir, NULL, 0, msg, sizeof(msg)), BKV_ERR_PERMISSION);
    printf("\n    %s", msg);
    chmod(dir, 0700);
    /* tokens/ as a symlink to somewhere else. */
    snprintf(msg, sizeof(msg), "%s/open/tokens", fx.dir);
    CU_ASSERT_EQUAL_FATAL(symlink(target, msg), 0);
    CU_ASSERT_EQUAL(bkv_hsm_node_dir_create(dir, NULL, 0, msg, sizeof(msg)), BKV_ERR_INVALID);
    if (geteuid() == 0) {
        snprintf(dir, sizeof(dir), "%s/theirs", fx.dir);
        CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0700), 0);
        CU_ASSERT_EQUAL(chown(dir, 65534, 65534), 0);
        CU_ASSERT_EQUAL(bkv_hsm_node_dir_create(dir, NULL, 0, msg, sizeof(msg)),
                        BKV_ERR_PERMISSION);
        CU_ASSERT_PTR_NOT_NULL(strstr(msg, "owned by uid 65534"));
    }
}

/* Finding 6: token init takes the label's lock before it looks at the slots. */
static void test_init_locks_first(void)
{
    struct bkv_hsm_config cfg = fx_config(&fx, "node-1");
    char path[4200], msg[512];
    int fd = -1;

    CU_ASSERT_EQUAL_FATAL(hsm_lock_file(&cfg, "node-1", path, sizeof(path), msg, sizeof(msg)), 0);
    CU_ASSERT_EQUAL_FATAL(bkv_hsm_lock_acquire(path, &fd, msg, sizeof(msg)), 0);
    /* node-1 exists, but the lock answers first: nobody else may be looking at the slots. */
    CU_ASSERT_EQUAL(bkv_hsm_token_init(&cfg, fx.so_pin, msg, sizeof(msg)), BKV_ERR_HSM_LOCKED);
    printf("\n    %s", msg);
    bkv_hsm_lock_release(fd);
    CU_ASSERT_EQUAL(bkv_hsm_token_init(&cfg, fx.so_pin, msg, sizeof(msg)), BKV_ERR_INVALID);
}

/* Finding 13: a FIFO as PIN file is refused at once, not waited on. */
static void test_pin_fifo(void)
{
    char path[600], msg[512];
    uint8_t pin[BKV_HSM_PIN_MAX];
    size_t len;

    snprintf(path, sizeof(path), "%s/fifo.pin", fx.dir);
    CU_ASSERT_EQUAL_FATAL(mkfifo(path, 0600), 0);
    CU_ASSERT_EQUAL(bkv_hsm_pin_read(path, pin, sizeof(pin), &len, msg, sizeof(msg)), BKV_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "not a regular file"));
    unlink(path);
}

static void test_lock_path(void)
{
    char out[64];

    CU_ASSERT_EQUAL(bkv_hsm_lock_path("/d", "node-1", out, sizeof(out)), 0);
    CU_ASSERT_STRING_EQUAL(out, "/d/bkv-token-node-1.lock");
    CU_ASSERT_EQUAL(bkv_hsm_lock_path("/d", "a b/../c", out, sizeof(out)), 0);
    CU_ASSERT_STRING_EQUAL(out, "/d/bkv-token-a%20b%2F..%2Fc.lock");
    CU_ASSERT_EQUAL(bkv_hsm_lock_path("/d", "node-1", out, 10), BKV_ERR_LENGTH);
}

static CU_TestInfo tests[] = {
    {"open and close a provisioned token", test_open_and_close},
    {"missing module -> BKV_ERR_HSM_MODULE", test_missing_module},
    {"missing token -> BKV_ERR_HSM_TOKEN", test_missing_token},
    {"wrong PIN -> BKV_ERR_HSM_PIN", test_wrong_pin},
    {"PIN file checks -> BKV_ERR_PERMISSION", test_pin_file_checks},
    {"token locked by a second open -> BKV_ERR_HSM_LOCKED", test_locked_in_process},
    {"token locked by another process -> BKV_ERR_HSM_LOCKED", test_locked_by_other_process},
    {"fresh token with require_realm -> BKV_ERR_HSM_NOT_ENROLLED", test_not_enrolled},
    {"provisioning: node directory and tokens", test_provisioning},
    {"two handles share one module", test_two_handles_share_module},
    {"CKR names and mapping", test_ckr_names},
    {"lock file path", test_lock_path},
    {"lock file from the real path; no /tmp default", test_lock_dir},
    {"node directory: ours, private, no symlinks", test_node_dir_checks},
    {"a FIFO as PIN file is refused without blocking", test_pin_fifo},
    {"token init locks before it scans the slots", test_init_locks_first},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return bkv_test_main("hsm_p11", tests, suite_init, suite_cleanup);
}
