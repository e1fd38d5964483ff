/*
 * RFC 9180 HPKE, base mode (mode 0) only.
 *
 * KEMs: DHKEM(P-256, HKDF-SHA256) 0x0010, BKV's KEM, with 65-byte uncompressed
 * keys (04 || X || Y); DHKEM(X25519, HKDF-SHA256) 0x0020, 32-byte raw keys,
 * kept so that RFC 9458's Appendix A example can be reproduced. KDF:
 * HKDF-SHA256 0x0001. AEADs: AES-128-GCM 0x0001, AES-256-GCM 0x0002.
 *
 * The receiver side is split so that the Diffie-Hellman step can run
 * elsewhere: an HSM's CKM_ECDH1_DERIVE returns the 32-byte x-coordinate of
 * skR * pkE, which is exactly DHKEM(P-256)'s dh. bkv_hpke_setup_base_r_dh
 * takes that dh; bkv_hpke_setup_base_r (software key) is built on it.
 *
 * Every function is reentrant and may be called from any thread. A context is
 * plain memory owned by the caller; one thread at a time may use it, and the
 * caller wipes it with bkv_hpke_ctx_wipe when done. Secret intermediates are
 * wiped on every path.
 */
#ifndef BKV_PROTO_HPKE_H
#define BKV_PROTO_HPKE_H

#include <stddef.h>
#include <stdint.h>

#define BKV_HPKE_KEM_P256_SHA256   0x0010
#define BKV_HPKE_KEM_X25519_SHA256 0x0020
#define BKV_HPKE_KDF_HKDF_SHA256   0x0001
#define BKV_HPKE_AEAD_AES_128_GCM  0x0001
#define BKV_HPKE_AEAD_AES_256_GCM  0x0002

#define BKV_HPKE_SK_LEN         32 /* Nsk of both KEMs */
#define BKV_HPKE_DH_LEN         32 /* Ndh: P-256 x-coordinate or X25519 output */
#define BKV_HPKE_SECRET_LEN     32 /* Nsecret and Nh */
#define BKV_HPKE_P256_PK_LEN    65 /* Npk = Nenc for P-256 */
#define BKV_HPKE_X25519_PK_LEN  32 /* Npk = Nenc for X25519 */
#define BKV_HPKE_MAX_PK_LEN     65
#define BKV_HPKE_MAX_ENC_LEN    65
#define BKV_HPKE_MAX_KEY_LEN    32 /* Nk of AES-256-GCM */
#define BKV_HPKE_NONCE_LEN      12 /* Nn of both AEADs */
#define BKV_HPKE_TAG_LEN        16 /* Nt of both AEADs */
#define BKV_HPKE_MAX_EXPORT_LEN (255 * 32)

struct bkv_hpke_suite {
    uint16_t kem;
    uint16_t kdf;
    uint16_t aead;
};

/*
 * An encryption context after SetupBase{S,R}. The fields are public so that
 * tests can compare key, base_nonce and exporter_secret with the RFC vectors;
 * only the functions below change them. seq is the big-endian sequence
 * number (Nn bytes); it advances after each successful seal or open.
 */
struct bkv_hpke_ctx {
    struct bkv_hpke_suite suite;
    size_t key_len; /* Nk: 16 or 32 */
    uint8_t key[BKV_HPKE_MAX_KEY_LEN];
    uint8_t base_nonce[BKV_HPKE_NONCE_LEN];
    uint8_t exporter_secret[BKV_HPKE_SECRET_LEN];
    uint8_t seq[BKV_HPKE_NONCE_LEN];
};

/* BKV_OK if this module implements all three ids, else BKV_ERR_UNSUPPORTED. */
int bkv_hpke_suite_check(struct bkv_hpke_suite suite);

/* Nenc (= Npk) of kem, or 0 if kem is not supported. */
size_t bkv_hpke_kem_enc_len(uint16_t kem);

/* Nk of aead, or 0 if aead is not supported. */
size_t bkv_hpke_aead_key_len(uint16_t aead);

/*
 * DeriveKeyPair(ikm) of kem. ikm (borrowed, at least BKV_HPKE_SK_LEN bytes,
 * else BKV_ERR_LENGTH) gives sk and pk (written by the call; *pk_len is Npk).
 * The caller wipes sk.
 */
int bkv_hpke_derive_key_pair(uint16_t kem, const uint8_t *ikm, size_t ikm_len,
                             uint8_t sk[static BKV_HPKE_SK_LEN],
                             uint8_t pk[static BKV_HPKE_MAX_PK_LEN], size_t *pk_len);

/* pk = the public key of sk (for P-256, BKV_ERR_SCALAR unless 0 < sk < n). */
int bkv_hpke_public_key(uint16_t kem, const uint8_t sk[static BKV_HPKE_SK_LEN],
                        uint8_t pk[static BKV_HPKE_MAX_PK_LEN], size_t *pk_len);

/*
 * Validate a received enc (or a peer public key) for kem without any secret:
 * P-256 needs exactly 65 bytes (BKV_ERR_LENGTH), prefix 04, a point on the
 * curve that is not the identity (BKV_ERR_POINT); X25519 needs 32 bytes.
 * Run it before handing enc to an HSM.
 */
int bkv_hpke_enc_check(uint16_t kem, const uint8_t *enc, size_t enc_len);

/*
 * Encap(pkR): shared_secret and enc (*enc_len = Nenc). skE is the injected
 * ephemeral private key (tests; borrowed) or NULL for a fresh random one.
 * pkR is validated like enc. The caller wipes shared_secret.
 */
int bkv_hpke_kem_encap(uint16_t kem, const uint8_t *pkR, size_t pkR_len, const uint8_t *skE,
                       uint8_t shared_secret[static BKV_HPKE_SECRET_LEN],
                       uint8_t enc[static BKV_HPKE_MAX_ENC_LEN], size_t *enc_len);

/*
 * Decap with the DH computed elsewhere: dh = DH(skR, pkE), i.e. the 32-byte
 * x-coordinate of skR * pkE for P-256 (what CKM_ECDH1_DERIVE returns) or the
 * X25519 output (all zeros is rejected with BKV_ERR_POINT). enc and pkR (the
 * receiver's own public key) are validated. All inputs are borrowed.
 */
int bkv_hpke_kem_decap_dh(uint16_t kem, const uint8_t *enc, size_t enc_len, const uint8_t *pkR,
                          size_t pkR_len, const uint8_t dh[static BKV_HPKE_DH_LEN],
                          uint8_t shared_secret[static BKV_HPKE_SECRET_LEN]);

/* Decap with a software private key: computes dh and pkR, then as above. */
int bkv_hpke_kem_decap(uint16_t kem, const uint8_t *enc, size_t enc_len,
                       const uint8_t skR[static BKV_HPKE_SK_LEN],
                       uint8_t shared_secret[static BKV_HPKE_SECRET_LEN]);

/* KeySchedule(mode_base, shared_secret, info): fills ctx, seq = 0. */
int bkv_hpke_key_schedule(struct bkv_hpke_suite suite,
                          const uint8_t shared_secret[static BKV_HPKE_SECRET_LEN],
                          const uint8_t *info, size_t info_len, struct bkv_hpke_ctx *ctx);

/*
 * SetupBaseS(pkR, info): enc (*enc_len = Nenc) and ctx. skE as in
 * bkv_hpke_kem_encap (NULL = random). Inputs are borrowed; ctx is written and
 * then owned by the caller. On failure ctx is wiped.
 */
int bkv_hpke_setup_base_s(struct bkv_hpke_suite suite, const uint8_t *pkR, size_t pkR_len,
                          const uint8_t *info, size_t info_len, const uint8_t *skE,
                          uint8_t enc[static BKV_HPKE_MAX_ENC_LEN], size_t *enc_len,
                          struct bkv_hpke_ctx *ctx);

/*
 * SetupBaseR with the DH output computed elsewhere (the HSM path): dh as in
 * bkv_hpke_kem_decap_dh, pkR the receiver's public key. On failure ctx is
 * wiped.
 */
int bkv_hpke_setup_base_r_dh(struct bkv_hpke_suite suite, const uint8_t *enc, size_t enc_len,
                             const uint8_t *pkR, size_t pkR_len,
                             const uint8_t dh[static BKV_HPKE_DH_LEN], const uint8_t *info,
                             size_t info_len, struct bkv_hpke_ctx *ctx);

/* SetupBaseR(enc, skR, info) with a software private key. */
int bkv_hpke_setup_base_r(struct bkv_hpke_suite suite, const uint8_t *enc, size_t enc_len,
                          const uint8_t skR[static BKV_HPKE_SK_LEN], const uint8_t *info,
                          size_t info_len, struct bkv_hpke_ctx *ctx);

/*
 * Seal(aad, pt) with the current sequence number: ct = pt_len + 16 bytes into
 * ct (capacity ct_cap, else BKV_ERR_LENGTH). ct may equal pt (in place) but
 * must not overlap it otherwise. BKV_ERR_LIMIT once seq reaches 2^96 - 1.
 * seq advances only on success.
 */
int bkv_hpke_seal(struct bkv_hpke_ctx *ctx, const uint8_t *aad, size_t aad_len, const uint8_t *pt,
                  size_t pt_len, uint8_t *ct, size_t ct_cap, size_t *ct_len);

/*
 * Open(aad, ct): pt = ct_len - 16 bytes. BKV_ERR_DECRYPT when the tag does
 * not verify (pt is then wiped), BKV_ERR_LENGTH when ct is shorter than a
 * tag or pt_cap is too small, BKV_ERR_LIMIT as for seal. pt may equal ct.
 * seq advances only on success.
 */
int bkv_hpke_open(struct bkv_hpke_ctx *ctx, const uint8_t *aad, size_t aad_len, const uint8_t *ct,
                  size_t ct_len, uint8_t *pt, size_t pt_cap, size_t *pt_len);

/* Export(exporter_context, L) into out (L <= BKV_HPKE_MAX_EXPORT_LEN). */
int bkv_hpke_export(const struct bkv_hpke_ctx *ctx, const uint8_t *exporter_context,
                    size_t context_len, uint8_t *out, size_t out_len);

/* Wipe every key and secret in ctx. NULL is fine. */
void bkv_hpke_ctx_wipe(struct bkv_hpke_ctx *ctx);

/*
 * Test hook: set the sequence number (big-endian). Never call it outside
 * tests: a sequence number used twice reuses a nonce.
 */
void bkv_hpke_ctx_set_seq(struct bkv_hpke_ctx *ctx, const uint8_t seq[static BKV_HPKE_NONCE_LEN]);

/*
 * The bare AEAD of aead (AES-GCM, 16-byte tag) with an explicit key of Nk
 * bytes and nonce, for users such as RFC 9458's response encapsulation. seal
 * writes pt_len + 16 bytes to ct; open writes ct_len - 16 bytes to pt and
 * returns BKV_ERR_DECRYPT (pt wiped) on a bad tag. In-place use is allowed.
 */
int bkv_hpke_aead_seal(uint16_t aead, const uint8_t *key,
                       const uint8_t nonce[static BKV_HPKE_NONCE_LEN], const uint8_t *aad,
                       size_t aad_len, const uint8_t *pt, size_t pt_len, uint8_t *ct);
int bkv_hpke_aead_open(uint16_t aead, const uint8_t *key,
                       const uint8_t nonce[static BKV_HPKE_NONCE_LEN], const uint8_t *aad,
                       size_t aad_len, const uint8_t *ct, size_t ct_len, uint8_t *pt);

#endif
