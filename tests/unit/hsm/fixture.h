/*
 * Shared fixture of the hsm/ suites: a fresh temporary directory with a
 * SoftHSM2 configuration and token directory, PIN files, and helpers to
 * provision and open tokens. SoftHSM2 reads its configuration once per
 * process, so a suite that needs several nodes puts several tokens
 * ("node-1", "node-2", ...) in the one token directory.
 */
#ifndef BKV_TEST_HSM_FIXTURE_H
#define BKV_TEST_HSM_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "hsm/p11.h"
#include "hsm/realm.h"

#define FX_USER_PIN "user-pin-5678"
#define FX_SO_PIN   "so-secret-1234"

struct fx {
    char dir[256];      /* mkdtemp("/tmp/bkv-hsm-XXXXXX") */
    char conf[512];     /* dir/node/softhsm2.conf, also in SOFTHSM2_CONF */
    char user_pin[512]; /* dir/user.pin, 0600 */
    char so_pin[512];   /* dir/so.pin, 0600 */
};

/* Make the directory, conf and PIN files; setenv SOFTHSM2_CONF. 0 on success. */
int fx_setup(struct fx *fx);

/* Remove the whole directory (all handles must be closed). */
void fx_teardown(struct fx *fx);

/* A config for label with the fixture's conf and user PIN file. */
struct bkv_hsm_config fx_config(const struct fx *fx, const char *label);

/* Initialise a token labelled label; returns the bkv_err code. */
int fx_token(const struct fx *fx, const char *label);

/* Open label; returns the code, and prints the message on failure. */
int fx_open(const struct fx *fx, const char *label, struct bkv_hsm **h);

/* Write content to path with mode; 0 on success. */
int fx_write_file(const char *path, const char *content, unsigned mode);

/*
 * Try every way a holder of the user PIN has to get a realm key of h out in
 * the clear, to relax its protection, to derive with a transport key left in
 * the token, or to substitute a key or the realm marker unnoticed (checked
 * against pinned, borrowed); returns the number of attempts that succeeded
 * (must be 0) and sets *tried to the number of attempts. h must hold pinned.
 */
int fx_attack_keys(struct bkv_hsm *h, const struct bkv_hsm_realm *pinned, int *tried);

/*
 * The transport-key attack (finding 1) from ANOTHER PROCESS, as any holder of
 * the node's user PIN could run it: a fresh process (this test binary run
 * again, see fx_child_main) loads the module, logs in to label with the
 * fixture's user PIN, and tries C_DeriveKey(CKM_ECDH1_DERIVE, ephemeral_pk)
 * into an extractable, non-sensitive AES key with every private key it can
 * find. Returns the child's exit status: 0 nothing found or derived, 1 a key
 * was derived (the attack worked), 2 the child could not log in; -1 if it
 * could not be run. *found gets the number of private keys it saw.
 */
int fx_attack_transport(const struct fx *fx, const char *label, const uint8_t ephemeral_pk[65],
                        int *found);

/*
 * Call first in main(argc, argv) of a suite that uses fx_attack_transport:
 * in the child it runs the attack and returns its exit status (>= 0); in
 * the parent (no child arguments) it returns -1.
 */
int fx_child_main(int argc, char **argv);

/* Count the token objects of h carrying label (0, 1 or 2 = "two or more"). */
int fx_count_label(struct bkv_hsm *h, unsigned long cls, const char *label);

#endif
