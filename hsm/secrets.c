/*
 * OPAQUE server secrets: generation at realm creation, sealing, and loading
 * into locked memory.
 *
 * Normal path of generation: 64 bytes from the HSM's RNG give the OPRF seed
 * and the AKE seed; the AKE key pair is RFC 9807's
 * DeriveDiffieHellmanKeyPair(seed), i.e. bkv_oprf_derive_key_pair(seed,
 * "OPAQUE-DeriveDiffieHellmanKeyPair"); oprf_seed || ake_sk is sealed with
 * the realm seal key and the realm-id AAD. Loading maps one anonymous page,
 * locks it, excludes it from core dumps, unseals into scratch space inside
 * the page, and completes the public key.
 * Failure modes: see secrets.h. Every secret intermediate is wiped; on
 * failure the page is wiped and unmapped before returning.
 */
#include "secrets.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "proto/err.h"
#include "proto/oprf.h"
#include "proto/util.h"
#include "seal.h"

#define AKE_INFO "OPAQUE-DeriveDiffieHellmanKeyPair"

void hsm_opaque_aad(const uint8_t realm_id[static BKV_HSM_REALM_ID_LEN],
                    uint8_t aad[static HSM_OPAQUE_AAD_LEN])
{
    memcpy(aad, HSM_OPAQUE_AAD_LABEL, sizeof(HSM_OPAQUE_AAD_LABEL) - 1);
    memcpy(aad + sizeof(HSM_OPAQUE_AAD_LABEL) - 1, realm_id, BKV_HSM_REALM_ID_LEN);
}

int hsm_opaque_generate(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE seal_key,
                        const uint8_t seal_key_id[static BKV_HSM_KEY_ID_LEN],
                        const uint8_t realm_id[static BKV_HSM_REALM_ID_LEN], uint8_t **blob,
                        size_t *blob_len, uint8_t pk[static BKV_P256_ELEMENT_LEN], const char *op)
{
    uint8_t seeds[64], pt[HSM_OPAQUE_PLAINTEXT_LEN], aad[HSM_OPAQUE_AAD_LEN];
    size_t cap = bkv_hsm_sealed_len(sizeof(pt)), len = 0;
    uint8_t *out = NULL;
    CK_RV rv;
    int rc;

    *blob = NULL;
    *blob_len = 0;
    rv = hsm_random(h, s, seeds, sizeof(seeds));
    if (rv != CKR_OK)
        return hsm_fail_ckr(h, op, "C_GenerateRandom", rv);
    memcpy(pt, seeds, 32);
    rc = bkv_oprf_derive_key_pair(seeds + 32, (const uint8_t *)AKE_INFO, sizeof(AKE_INFO) - 1,
                                  pt + 32, pk);
    if (rc != BKV_OK) {
        rc = hsm_fail(h, rc, op, "DeriveDiffieHellmanKeyPair: %s", bkv_strerror(rc));
        goto out;
    }
    out = malloc(cap);
    if (out == NULL) {
        rc = hsm_fail(h, BKV_ERR_NOMEM, op, "out of memory");
        goto out;
    }
    hsm_opaque_aad(realm_id, aad);
    rc = hsm_seal_with(h, s, seal_key, seal_key_id, aad, sizeof(aad), pt, sizeof(pt), out, cap,
                       &len, op);
    if (rc != BKV_OK)
        goto out;
    *blob = out;
    *blob_len = len;
    out = NULL;
out:
    free(out);
    bkv_wipe(seeds, sizeof(seeds));
    bkv_wipe(pt, sizeof(pt));
    return rc;
}

int hsm_opaque_unseal(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE seal_key,
                      const uint8_t realm_id[static BKV_HSM_REALM_ID_LEN], const uint8_t *blob,
                      size_t blob_len, struct bkv_opaque_server_keys *keys, uint8_t *scratch,
                      const char *op)
{
    uint8_t aad[HSM_OPAQUE_AAD_LEN];
    size_t len = 0;
    int rc;

    if (blob_len != bkv_hsm_sealed_len(HSM_OPAQUE_PLAINTEXT_LEN))
        return hsm_fail(h, BKV_ERR_LENGTH, op, "OPAQUE secrets blob of %zu bytes (expected %zu)",
                        blob_len, bkv_hsm_sealed_len(HSM_OPAQUE_PLAINTEXT_LEN));
    hsm_opaque_aad(realm_id, aad);
    rc = hsm_unseal_with(h, s, seal_key, aad, sizeof(aad), blob, blob_len, scratch,
                         HSM_OPAQUE_SCRATCH_LEN, &len, op);
    if (rc != BKV_OK)
        goto out;
    memcpy(keys->oprf_seed, scratch, 32);
    memcpy(keys->sk, scratch + 32, 32);
    rc = bkv_opaque_server_keys_complete(keys);
    if (rc != BKV_OK)
        rc = hsm_fail(h, rc, op, "the unsealed AKE key is invalid (%s)", bkv_strerror(rc));
out:
    bkv_wipe(scratch, HSM_OPAQUE_SCRATCH_LEN);
    if (rc != BKV_OK)
        bkv_wipe(keys, sizeof(*keys));
    return rc;
}

/* The locked page: the keys first, then scratch space for the plaintext. */
struct page {
    struct bkv_opaque_server_keys keys;
    uint8_t scratch[HSM_OPAQUE_SCRATCH_LEN];
};

static size_t page_size(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    size_t n = ps > 0 ? (size_t)ps : 4096;

    while (n < sizeof(struct page))
        n *= 2;
    return n;
}

int hsm_opaque_load_with(struct bkv_hsm *h, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE seal_key,
                         const uint8_t realm_id[static BKV_HSM_REALM_ID_LEN], const uint8_t *blob,
                         size_t blob_len, struct bkv_opaque_server_keys **out, const char *op)
{
    size_t size = page_size();
    struct page *pg;
    int rc;

    *out = NULL;
    pg = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (pg == MAP_FAILED)
        return hsm_fail(h, BKV_ERR_NOMEM, op, "mmap of one page failed");
    if (mlock(pg, size) != 0) {
        munmap(pg, size);
        return hsm_fail(h, BKV_ERR_NOMEM, op, "mlock failed (check RLIMIT_MEMLOCK)");
    }
    madvise(pg, size, MADV_DONTDUMP);
#ifdef MADV_WIPEONFORK
    madvise(pg, size, MADV_WIPEONFORK);
#endif
    rc = hsm_opaque_unseal(h, s, seal_key, realm_id, blob, blob_len, &pg->keys, pg->scratch, op);
    if (rc != BKV_OK) {
        bkv_hsm_opaque_free(&pg->keys);
        return rc;
    }
    *out = &pg->keys;
    return BKV_OK;
}

int bkv_hsm_opaque_load(struct bkv_hsm *h, const uint8_t *sealed, size_t sealed_len,
                        struct bkv_opaque_server_keys **out)
{
    static const char *op = "load OPAQUE secrets with";
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE key;
    int rc;

    *out = NULL;
    if (sealed_len < 1 + BKV_HSM_KEY_ID_LEN)
        return hsm_fail(h, BKV_ERR_LENGTH, op, "OPAQUE secrets blob of %zu bytes", sealed_len);
    if (sealed[0] != BKV_HSM_SEAL_VERSION)
        return hsm_fail(h, BKV_ERR_UNSUPPORTED, op, "sealed blob version %u is not supported",
                        sealed[0]);
    hsm_begin(h, &s);
    if (!h->has_realm) {
        rc = hsm_fail(h, BKV_ERR_HSM_NOT_ENROLLED, op, "the token holds no realm yet");
        goto out;
    }
    rc = hsm_seal_key_by_id(h, s, sealed + 1, &key, op);
    if (rc == BKV_OK)
        rc = hsm_opaque_load_with(h, s, key, h->realm.realm_id, sealed, sealed_len, out, op);
out:
    hsm_end(h, s);
    return rc;
}

void bkv_hsm_opaque_wipe(struct bkv_opaque_server_keys *keys)
{
    if (keys != NULL)
        bkv_wipe(keys, sizeof(*keys));
}

void bkv_hsm_opaque_free(struct bkv_opaque_server_keys *keys)
{
    size_t size = page_size();

    if (keys == NULL)
        return;
    bkv_wipe(keys, size);
    munlock(keys, size);
    munmap(keys, size);
}
