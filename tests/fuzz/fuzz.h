/*
 * Shared by the libFuzzer targets in tests/fuzz/ and by their seed corpus
 * generator: the libFuzzer entry point, a check that crashes the target when
 * an invariant fails (so the fuzzer keeps the input), and the fixed keys and
 * protocol states the targets parse against.
 *
 * Every fixture is deterministic: the generator (gen_corpus.c) builds valid
 * messages from the same fixtures, so a seed it writes reaches the deep end of
 * the parser (decryption, MAC checks) in the target. Fixtures are built once
 * per process and are read-only afterwards; a target copies any state it
 * hands to a function that wipes or changes it. Single-threaded, like
 * libFuzzer's own loop.
 */
#ifndef BKV_TESTS_FUZZ_H
#define BKV_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "proto/ohttp.h"
#include "proto/opaque.h"
#include "proto/stream.h"

/* libFuzzer calls this once per input; data is borrowed for the call. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test: abort (a finding) if it does not hold. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A fixture that cannot be built is a broken build, not a finding about the input. */
#define FUZZ_SETUP(call)                                                                           \
    do {                                                                                           \
        if ((call) != 0) {                                                                         \
            fprintf(stderr, "%s:%d: fuzz fixture failed: %s\n", __FILE__, __LINE__, #call);        \
            exit(2);                                                                               \
        }                                                                                          \
    } while (0)

/* --- the envelope (RFC 9458) -------------------------------------------------- */

#define FUZZ_OHTTP_KEY_ID 7

/* The realm's fixed software key: cfg offers AES-128-GCM and AES-256-GCM. */
struct fuzz_ohttp {
    struct bkv_ohttp_key_config cfg;
    uint8_t sk[BKV_HPKE_SK_LEN];
    uint8_t skE[BKV_HPKE_SK_LEN]; /* the generator's fixed ephemeral key */
    /* Fixed client states for response decap: [0] AES-128-GCM, [1] AES-256-GCM. */
    struct bkv_ohttp_state st[2];
};

const struct fuzz_ohttp *fuzz_ohttp(void);

/* --- OPAQUE ------------------------------------------------------------------- */

#define FUZZ_OPAQUE_PASSWORD "correct horse battery staple"
#define FUZZ_OPAQUE_ACCOUNT  "alice@example.com"

/*
 * One account registered and logged in once, with the Identity KSF, fixed
 * server keys and fixed randomness. The states are the ones each side holds
 * just before it reads the next message (copy before use: the calls wipe
 * them).
 */
struct fuzz_opaque {
    uint8_t context[32];
    struct bkv_opaque_config cfg;
    struct bkv_opaque_ids ids;
    struct bkv_opaque_server_keys keys;
    struct bkv_opaque_client_rand crand;
    struct bkv_opaque_server_rand srand;
    uint8_t reg_request[BKV_OPAQUE_REG_REQUEST_LEN];
    struct bkv_opaque_reg_client reg_client; /* before reg_finish */
    uint8_t reg_response[BKV_OPAQUE_REG_RESPONSE_LEN];
    uint8_t record[BKV_OPAQUE_RECORD_LEN];
    uint8_t ke1[BKV_OPAQUE_KE1_LEN];
    struct bkv_opaque_login_client login_client; /* before login_finish */
    uint8_t ke2[BKV_OPAQUE_KE2_LEN];
    struct bkv_opaque_login_server login_server; /* armed, before login_verify */
    uint8_t ke3[BKV_OPAQUE_KE3_LEN];
};

const struct fuzz_opaque *fuzz_opaque(void);

/* --- the backup stream --------------------------------------------------------- */

#define FUZZ_STREAM_LOG2 BKV_STREAM_LOG2_MIN /* 1 KiB chunks: several chunks in a small input */

extern const uint8_t fuzz_stream_key[BKV_STREAM_KEY_LEN];
extern const uint8_t fuzz_stream_salt[BKV_STREAM_SALT_LEN];

/* --- account tokens and router proofs ------------------------------------------- */

#define FUZZ_TOKEN_NOW 1700000000u /* the verifier's clock, Unix seconds */

extern const uint8_t fuzz_token_key[32];
extern const uint8_t fuzz_proof_key[32];

#endif
