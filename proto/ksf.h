/*
 * OPAQUE's key stretching function (RFC 9807 §4.3, "Stretch"). Identity is for
 * the RFC test vectors only; deployments use Argon2id (RFC 9106) with
 * parameters fixed in the realm key config, so that every client of a realm
 * derives the same randomized password.
 */
#ifndef BKV_PROTO_KSF_H
#define BKV_PROTO_KSF_H

#include <stdint.h>

enum bkv_ksf_kind {
    BKV_KSF_IDENTITY = 0, /* Stretch(x) = x; test vectors only */
    BKV_KSF_ARGON2ID = 1, /* Argon2id v1.3, salt = 16 zero bytes, 32-byte output */
};

struct bkv_ksf {
    enum bkv_ksf_kind kind;
    uint32_t iterations;  /* Argon2 t */
    uint32_t memory_kib;  /* Argon2 m, in KiB */
    uint32_t parallelism; /* Argon2 p (lanes) */
};

/* RFC 9106 §4 second recommended option: t=3, m=64 MiB, p=4. BKV's default. */
#define BKV_KSF_ARGON2ID_DEFAULT ((struct bkv_ksf){BKV_KSF_ARGON2ID, 3, 1u << 16, 4})
/* RFC 9807 §7's recommended P-256 configuration: t=1, m=2 GiB, p=4. */
#define BKV_KSF_ARGON2ID_RFC9807 ((struct bkv_ksf){BKV_KSF_ARGON2ID, 1, 1u << 21, 4})
#define BKV_KSF_IDENTITY_PARAMS  ((struct bkv_ksf){BKV_KSF_IDENTITY, 0, 0, 0})

#define BKV_KSF_LEN 32

/*
 * out = Stretch(in). Returns BKV_ERR_INVALID for unknown kinds or parameters
 * Argon2 refuses, BKV_ERR_KSF if Argon2 fails (for instance out of memory).
 * Any thread; blocks for the whole computation (run it off the event loop).
 */
int bkv_ksf_stretch(const struct bkv_ksf *ksf, const uint8_t in[static BKV_KSF_LEN],
                    uint8_t out[static BKV_KSF_LEN]);

#endif
