/*
 * libFuzzer target: the realm key config a client pins (proto/msg.h,
 * bkv_keyconfig_decode). An accepted config must re-encode to exactly the
 * input (one config has one encoding, so its fingerprint is unique), and the
 * OPAQUE settings derived from it must carry its realm id and KSF.
 */
#include <string.h>

#include "fuzz.h"
#include "proto/err.h"
#include "proto/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[BKV_KEYCONFIG_MAX_LEN + 64];
    struct bkv_keyconfig kc, back;
    struct bkv_opaque_config oc;
    uint8_t ctx[BKV_MSG_CONTEXT_LEN], fp[BKV_KEYCONFIG_FP_LEN];
    size_t n = 0;

    if (bkv_keyconfig_decode(data, size, &kc) != BKV_OK)
        return 0;
    FUZZ_CHECK(size <= BKV_KEYCONFIG_MAX_LEN);
    FUZZ_CHECK(bkv_keyconfig_encode(&kc, out, sizeof(out), &n) == BKV_OK);
    FUZZ_CHECK(n == size && memcmp(out, data, size) == 0);
    FUZZ_CHECK(bkv_keyconfig_decode(out, n, &back) == BKV_OK);
    FUZZ_CHECK(memcmp(back.realm_id, kc.realm_id, sizeof(kc.realm_id)) == 0);
    FUZZ_CHECK(bkv_keyconfig_fingerprint(data, size, fp) == BKV_OK);

    bkv_keyconfig_opaque(&kc, ctx, &oc);
    FUZZ_CHECK(oc.context == ctx && oc.context_len == BKV_MSG_CONTEXT_LEN);
    FUZZ_CHECK(memcmp(ctx + BKV_MSG_CONTEXT_LEN - BKV_MSG_REALM_ID_LEN, kc.realm_id,
                      BKV_MSG_REALM_ID_LEN) == 0);
    FUZZ_CHECK(oc.ksf.kind == kc.ksf.kind && oc.ksf.iterations == kc.ksf.iterations &&
               oc.ksf.memory_kib == kc.ksf.memory_kib && oc.ksf.parallelism == kc.ksf.parallelism);
    return 0;
}
