/*
 * RFC 9458 (Oblivious HTTP) encapsulation as BKV uses it for its envelopes:
 * key configs, encapsulated requests (hdr || enc || ct, sealed with HPKE base
 * mode) and encapsulated responses (response_nonce || ct, keyed from an HPKE
 * export). BKV's labels replace "message/bhttp"; the RFC labels are kept for
 * the Appendix A example.
 *
 * The server side can run with the realm's private key in an HSM: parse the
 * request (bkv_ohttp_request_parse validates the header and enc), compute
 * dh = x(skR * enc) elsewhere (CKM_ECDH1_DERIVE), then bkv_ohttp_request_open_dh;
 * or pass a callback to bkv_ohttp_request_decap_cb. bkv_ohttp_request_decap is
 * the software-key path.
 *
 * Every function is reentrant and may be called from any thread; a state or
 * config belongs to one thread at a time. Decoders are total: they check every
 * length before reading.
 */
#ifndef BKV_PROTO_OHTTP_H
#define BKV_PROTO_OHTTP_H

#include <stddef.h>
#include <stdint.h>

#include "hpke.h"

#define BKV_OHTTP_REQUEST_LABEL        "message/bkv-v1 request"
#define BKV_OHTTP_RESPONSE_LABEL       "message/bkv-v1 response"
#define BKV_OHTTP_BHTTP_REQUEST_LABEL  "message/bhttp request"
#define BKV_OHTTP_BHTTP_RESPONSE_LABEL "message/bhttp response"

#define BKV_OHTTP_HEADER_LEN         7  /* key_id(1) kem(2) kdf(2) aead(2) */
#define BKV_OHTTP_MAX_SUITES         16 /* symmetric suites kept per key config */
#define BKV_OHTTP_MAX_LABEL_LEN      64
#define BKV_OHTTP_MAX_NONCE_LEN      32          /* max(Nn, Nk) for AES-256-GCM */
#define BKV_OHTTP_MAX_REQUEST_LEN    (64 * 1024) /* whole encapsulated request */
#define BKV_OHTTP_MAX_RESPONSE_LEN   (64 * 1024) /* whole encapsulated response */
#define BKV_OHTTP_KEY_CONFIG_MAX_LEN (1 + 2 + BKV_HPKE_MAX_PK_LEN + 2 + 4 * BKV_OHTTP_MAX_SUITES)

/* The request and response labels; the strings are borrowed, static in practice. */
struct bkv_ohttp_labels {
    const char *request;
    const char *response;
};

/* BKV_OHTTP_REQUEST_LABEL / BKV_OHTTP_RESPONSE_LABEL, and the RFC's bhttp pair. */
extern const struct bkv_ohttp_labels bkv_ohttp_bkv_labels;
extern const struct bkv_ohttp_labels bkv_ohttp_bhttp_labels;

struct bkv_ohttp_symmetric {
    uint16_t kdf;
    uint16_t aead;
};

/*
 * A decoded key config. kem is one this module supports and pk a validated
 * public key of pk_len = Npk bytes. suites lists what the config offers, in
 * order; ids unknown to BKV may appear (they are never selected).
 */
struct bkv_ohttp_key_config {
    uint8_t key_id;
    uint16_t kem;
    size_t pk_len;
    uint8_t pk[BKV_HPKE_MAX_PK_LEN];
    size_t suite_count;
    struct bkv_ohttp_symmetric suites[BKV_OHTTP_MAX_SUITES];
};

/*
 * What each side keeps between the request and the response: the suite, enc
 * and secret = Export(response label, max(Nn, Nk)). Owned by the caller, one
 * per request; wipe it with bkv_ohttp_state_wipe. A wiped state is refused.
 */
struct bkv_ohttp_state {
    struct bkv_hpke_suite suite;
    uint8_t key_id;
    size_t enc_len;
    uint8_t enc[BKV_HPKE_MAX_ENC_LEN];
    size_t secret_len; /* max(Nn, Nk): 16 or 32; also the response nonce length */
    uint8_t secret[BKV_OHTTP_MAX_NONCE_LEN];
};

/* A parsed encapsulated request; enc and ct point into the caller's buffer. */
struct bkv_ohttp_request {
    uint8_t key_id;
    struct bkv_hpke_suite suite;
    const uint8_t *enc;
    size_t enc_len;
    const uint8_t *ct;
    size_t ct_len;
};

/*
 * Computes dh = DH(skR, enc) (for P-256 the 32-byte x-coordinate) for the
 * server; returns 0 or a BKV_ERR_* code, which the caller passes on. enc is
 * already validated and is borrowed for the call. Runs on the calling thread.
 */
typedef int (*bkv_ohttp_dh_fn)(void *arg, const uint8_t *enc, size_t enc_len,
                               uint8_t dh[BKV_HPKE_DH_LEN]);

/*
 * Decode one key config: key_id(1) || kem(2) || pk(Npk) || sym_len(2) ||
 * {kdf(2) aead(2)}*. BKV_ERR_LENGTH when truncated, BKV_ERR_UNSUPPORTED for
 * an unknown kem, BKV_ERR_POINT/LENGTH for a bad pk, BKV_ERR_FORMAT for
 * sym_len 0 or not a multiple of 4 or trailing bytes, BKV_ERR_LIMIT above
 * BKV_OHTTP_MAX_SUITES. in is borrowed; cfg is written.
 */
int bkv_ohttp_key_config_decode(const uint8_t *in, size_t len, struct bkv_ohttp_key_config *cfg);

/* Encode cfg (validated as on decode) into out; BKV_ERR_LENGTH if cap is short. */
int bkv_ohttp_key_config_encode(const struct bkv_ohttp_key_config *cfg, uint8_t *out, size_t cap,
                                size_t *out_len);

/*
 * Decode application/ohttp-keys: (I2OSP(len, 2) || key_config)+. Framing
 * errors or any malformed config reject the whole list; configs with an
 * unknown kem are skipped. BKV_ERR_UNSUPPORTED if none is left, BKV_ERR_LIMIT
 * beyond cap entries. cfgs (cap entries) and *count are written.
 */
int bkv_ohttp_key_configs_decode(const uint8_t *in, size_t len, struct bkv_ohttp_key_config *cfgs,
                                 size_t cap, size_t *count);

/* Encode count configs as application/ohttp-keys. */
int bkv_ohttp_key_configs_encode(const struct bkv_ohttp_key_config *cfgs, size_t count,
                                 uint8_t *out, size_t cap, size_t *out_len);

/* Size of an encapsulated request / response for a plaintext; 0 if unsupported. */
size_t bkv_ohttp_request_len(uint16_t kem, size_t plaintext_len);
size_t bkv_ohttp_response_len(uint16_t aead, size_t plaintext_len);

/* info = label || 0x00 || key_id || kem || kdf || aead, into out (capacity cap). */
int bkv_ohttp_request_info(const char *request_label, uint8_t key_id, struct bkv_hpke_suite suite,
                           uint8_t *out, size_t cap, size_t *out_len);

/*
 * Client: encapsulate req for cfg with the symmetric suite sym, which cfg must
 * offer and BKV must support (else BKV_ERR_UNSUPPORTED). skE injects the
 * ephemeral private key (tests) or is NULL for a random one. Writes
 * hdr || enc || ct to out (capacity cap; out must not overlap req) and the
 * client's state to st. BKV_ERR_LENGTH above BKV_OHTTP_MAX_REQUEST_LEN.
 */
int bkv_ohttp_request_encap(const struct bkv_ohttp_key_config *cfg, struct bkv_ohttp_symmetric sym,
                            const struct bkv_ohttp_labels *labels, const uint8_t *skE,
                            const uint8_t *req, size_t req_len, uint8_t *out, size_t cap,
                            size_t *out_len, struct bkv_ohttp_state *st);

/*
 * Server, step 1: parse and check in against cfg without any secret.
 * BKV_ERR_LENGTH when oversized or truncated, BKV_ERR_UNSUPPORTED for a wrong
 * key_id, a kem other than cfg's, or a (kdf, aead) that cfg does not offer or
 * BKV does not support, BKV_ERR_POINT/LENGTH for an invalid enc. req points
 * into in, which must outlive it.
 */
int bkv_ohttp_request_parse(const struct bkv_ohttp_key_config *cfg, const uint8_t *in, size_t len,
                            struct bkv_ohttp_request *req);

/*
 * Server, step 2: with dh = DH(skR, req->enc) computed elsewhere (the HSM),
 * open the request into out (capacity cap, at least ct_len - 16) and fill st.
 * BKV_ERR_DECRYPT for a bad tag, wrong dh or wrong labels. st is wiped on
 * failure.
 */
int bkv_ohttp_request_open_dh(const struct bkv_ohttp_key_config *cfg,
                              const struct bkv_ohttp_labels *labels,
                              const struct bkv_ohttp_request *req,
                              const uint8_t dh[static BKV_HPKE_DH_LEN], uint8_t *out, size_t cap,
                              size_t *out_len, struct bkv_ohttp_state *st);

/* Server: parse, dh(arg, enc) on this thread, then open, in one call. */
int bkv_ohttp_request_decap_cb(const struct bkv_ohttp_key_config *cfg,
                               const struct bkv_ohttp_labels *labels, const uint8_t *in, size_t len,
                               bkv_ohttp_dh_fn dh, void *arg, uint8_t *out, size_t cap,
                               size_t *out_len, struct bkv_ohttp_state *st);

/* Server with a software private key skR (borrowed) matching cfg->pk. */
int bkv_ohttp_request_decap(const struct bkv_ohttp_key_config *cfg,
                            const struct bkv_ohttp_labels *labels,
                            const uint8_t skR[static BKV_HPKE_SK_LEN], const uint8_t *in,
                            size_t len, uint8_t *out, size_t cap, size_t *out_len,
                            struct bkv_ohttp_state *st);

/*
 * The response key schedule, exposed for tests and inspection: with
 * salt = enc || response_nonce (st->secret_len bytes), prk = Extract(salt,
 * secret), key = Expand(prk, "key", Nk), nonce = Expand(prk, "nonce", Nn).
 * key has room for BKV_HPKE_MAX_KEY_LEN bytes. The caller wipes prk and key.
 */
int bkv_ohttp_response_derive(const struct bkv_ohttp_state *st, const uint8_t *response_nonce,
                              uint8_t prk[static BKV_HPKE_SECRET_LEN],
                              uint8_t key[static BKV_HPKE_MAX_KEY_LEN],
                              uint8_t nonce[static BKV_HPKE_NONCE_LEN]);

/*
 * Server: encapsulate resp as response_nonce || ct into out (capacity cap; no
 * overlap with resp). response_nonce injects the st->secret_len nonce bytes
 * (tests) or is NULL for random ones. BKV_ERR_LENGTH above
 * BKV_OHTTP_MAX_RESPONSE_LEN.
 */
int bkv_ohttp_response_encap(const struct bkv_ohttp_state *st, const uint8_t *response_nonce,
                             const uint8_t *resp, size_t resp_len, uint8_t *out, size_t cap,
                             size_t *out_len);

/* Client: open an encapsulated response with the state of its request. */
int bkv_ohttp_response_decap(const struct bkv_ohttp_state *st, const uint8_t *in, size_t len,
                             uint8_t *out, size_t cap, size_t *out_len);

/* Wipe st (secret included). NULL is fine. */
void bkv_ohttp_state_wipe(struct bkv_ohttp_state *st);

#endif
