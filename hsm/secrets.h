/*
 * OPAQUE's server secrets (the OPRF seed and the AKE key pair) at run time.
 *
 * They live on disk only as a sealed blob (seal.h, AAD binding the realm id)
 * made by realm creation; a node unseals them at start-up into one page of
 * locked memory (mmap, mlock, MADV_DONTDUMP, and MADV_WIPEONFORK where the
 * kernel has it), completes the public key, and wipes and unmaps the page
 * when it stops.
 *
 * Sealed plaintext, 64 bytes: oprf_seed(32) || ake_sk(32); the AAD is
 * "BKV-OPAQUE-SERVER-SECRETS-v1" || realm_id.
 *
 * Threads: load may run on any thread (it takes a session like seal.h);
 * the returned keys are read-only after load and may be read by any thread
 * until bkv_hsm_opaque_free, which must not race with readers.
 */
#ifndef BKV_HSM_SECRETS_H
#define BKV_HSM_SECRETS_H

#include <stddef.h>
#include <stdint.h>

#include "proto/opaque.h"

struct bkv_hsm;

/*
 * Unseal the secrets blob (borrowed) of h's realm into a fresh locked page
 * and set *out to the keys at its start (owned by the caller: release with
 * bkv_hsm_opaque_free, never free()). BKV_ERR_DECRYPT for a blob of another
 * realm or one that was altered, BKV_ERR_HSM_NO_KEY when its seal key is not
 * in the token, BKV_ERR_LENGTH for a blob that is not 64 bytes of
 * plaintext, BKV_ERR_SCALAR for an invalid AKE key, BKV_ERR_NOMEM when the
 * page cannot be mapped or locked (RLIMIT_MEMLOCK), BKV_ERR_HSM_NOT_ENROLLED
 * without a realm.
 */
int bkv_hsm_opaque_load(struct bkv_hsm *h, const uint8_t *sealed, size_t sealed_len,
                        struct bkv_opaque_server_keys **out);

/* Overwrite keys with zeros (the page stays mapped). NULL is fine. */
void bkv_hsm_opaque_wipe(struct bkv_opaque_server_keys *keys);

/* Wipe the whole page, munlock and munmap it. NULL is fine. */
void bkv_hsm_opaque_free(struct bkv_opaque_server_keys *keys);

#endif
