/*
 * Stretch for OPAQUE: the identity function or Argon2id through libargon2
 * (OpenSSL 3.0 has no Argon2). The salt is 16 zero bytes as RFC 9807 §7
 * specifies: the input is already a per-user OPRF output, so it is unique.
 * Failure modes: parameters outside libargon2's limits give BKV_ERR_INVALID,
 * a failed computation (e.g. memory) gives BKV_ERR_KSF and a wiped output.
 */
#include "ksf.h"

#include <string.h>

#include <argon2.h>

#include "err.h"
#include "util.h"

int bkv_ksf_stretch(const struct bkv_ksf *ksf, const uint8_t in[static BKV_KSF_LEN],
                    uint8_t out[static BKV_KSF_LEN])
{
    static const uint8_t salt[16];
    int rc;

    switch (ksf->kind) {
    case BKV_KSF_IDENTITY:
        memmove(out, in, BKV_KSF_LEN);
        return BKV_OK;
    case BKV_KSF_ARGON2ID:
        if (ksf->iterations < ARGON2_MIN_TIME || ksf->parallelism < ARGON2_MIN_LANES ||
            ksf->parallelism > ARGON2_MAX_LANES || ksf->memory_kib < 8 * ksf->parallelism ||
            ksf->memory_kib > (1u << 22))
            return BKV_ERR_INVALID;
        rc = argon2id_hash_raw(ksf->iterations, ksf->memory_kib, ksf->parallelism, in, BKV_KSF_LEN,
                               salt, sizeof(salt), out, BKV_KSF_LEN);
        if (rc != ARGON2_OK) {
            bkv_wipe(out, BKV_KSF_LEN);
            return BKV_ERR_KSF;
        }
        return BKV_OK;
    }
    return BKV_ERR_INVALID;
}
