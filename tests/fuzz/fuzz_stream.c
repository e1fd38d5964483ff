/*
 * libFuzzer target: the backup stream (proto/stream.h): the header parse and
 * every chunk open, through bkv_stream_open_buffer with a fixed key, as
 * `bkv restore` reads a backup file. A stream that opens must be exactly what
 * sealing its plaintext again, with the salt and chunk size from its header,
 * gives (one plaintext, one stream). Seeds use 1 KiB chunks so that a small
 * input holds several.
 */
#include <string.h>

#include "fuzz.h"
#include "proto/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t *pt, *again;
    static size_t cap;
    size_t pt_len = 0, len = 0, want = 0;
    unsigned log2;
    int rc;

    if (cap < size + 1) {
        free(pt);
        free(again);
        cap = size + 1;
        pt = malloc(cap);
        again = malloc(cap);
        FUZZ_CHECK(pt != NULL && again != NULL);
    }
    rc = bkv_stream_open_buffer(fuzz_stream_key, data, size, pt, cap, &pt_len);
    if (rc != BKV_OK)
        return 0;
    FUZZ_CHECK(size >= BKV_STREAM_HEADER_LEN + BKV_STREAM_TAG_LEN);
    FUZZ_CHECK(memcmp(data, "BKVS", 4) == 0 && data[4] == BKV_STREAM_VERSION);
    log2 = data[5];
    FUZZ_CHECK(log2 >= BKV_STREAM_LOG2_MIN && log2 <= BKV_STREAM_LOG2_MAX);
    FUZZ_CHECK(bkv_stream_sealed_len(pt_len, log2, &want) == BKV_OK && want == size);
    FUZZ_CHECK(bkv_stream_seal_buffer(fuzz_stream_key, data + 6, log2, pt, pt_len, again, cap,
                                      &len) == BKV_OK);
    FUZZ_CHECK(len == size && memcmp(again, data, size) == 0);
    return 0;
}
