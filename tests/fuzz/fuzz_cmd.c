/*
 * libFuzzer target: a Raft entry of vault commands (consensus/cmd.h,
 * bkv_cmd_entry_decode), what every node applies from its log. An accepted
 * entry must have the length bkv_cmd_entry_len computes for its commands, and
 * re-encode to exactly the input.
 */
#include <string.h>

#include "consensus/cmd.h"
#include "fuzz.h"
#include "proto/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct bkv_cmd cmds[BKV_CMD_MAX_BATCH];
    static uint8_t *out;
    static size_t out_cap;
    size_t n = 0, len = 0;

    if (bkv_cmd_entry_decode(data, size, cmds, BKV_CMD_MAX_BATCH, &n) != BKV_OK)
        return 0;
    FUZZ_CHECK(n >= 1 && n <= BKV_CMD_MAX_BATCH);
    FUZZ_CHECK(size % 8 == 0);
    for (size_t i = 0; i < n; i++) {
        const struct bkv_cmd *c = &cmds[i];

        FUZZ_CHECK(c->type >= BKV_CMD_REGISTER && c->type <= BKV_CMD_DELETE);
        if (c->type == BKV_CMD_REGISTER) {
            FUZZ_CHECK(c->max_attempts >= 1 && c->max_attempts <= BKV_CMD_MAX_LIMIT);
            FUZZ_CHECK(c->record_len >= 1 && c->record_len <= BKV_CMD_MAX_SEALED);
            FUZZ_CHECK(c->wrapped_len >= 1 && c->wrapped_len <= BKV_CMD_MAX_SEALED);
            FUZZ_CHECK(c->record >= data && c->record + c->record_len <= data + size);
            FUZZ_CHECK(c->wrapped >= data && c->wrapped + c->wrapped_len <= data + size);
            FUZZ_CHECK(c->conditional == 0 || c->conditional == 1);
            FUZZ_CHECK(c->conditional || c->registration == 0);
        }
        if (c->type == BKV_CMD_SUCCESS)
            FUZZ_CHECK(c->registration != 0);
    }
    /* the current version re-encodes to the same bytes; version 1 to a longer entry */
    size_t need = bkv_cmd_entry_len(cmds, n);
    FUZZ_CHECK(data[0] == BKV_CMD_VERSION ? need == size : need >= size);
    if (out_cap < need) {
        free(out);
        out = malloc(need);
        FUZZ_CHECK(out != NULL);
        out_cap = need;
    }
    FUZZ_CHECK(bkv_cmd_entry_encode(cmds, n, out, need, &len) == BKV_OK);
    if (data[0] == BKV_CMD_VERSION) {
        FUZZ_CHECK(len == size && memcmp(out, data, size) == 0);
    } else {
        /* a version 1 entry: re-encoded as the current version, it means the same */
        static struct bkv_cmd again[BKV_CMD_MAX_BATCH];
        size_t n2 = 0;
        FUZZ_CHECK(bkv_cmd_entry_decode(out, len, again, BKV_CMD_MAX_BATCH, &n2) == BKV_OK);
        FUZZ_CHECK(n2 == n);
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(again[i].type == cmds[i].type && again[i].conditional == 0 &&
                       again[i].record_len == cmds[i].record_len &&
                       again[i].max_attempts == cmds[i].max_attempts);
    }
    return 0;
}
