/*
 * The command codec: a batch of vault commands in one 8-byte-aligned Raft
 * entry (layout in cmd.h).
 *
 * Normal path: encode computes the exact length first, refuses anything it
 * could not decode again, and writes every reserved and padding byte as zero.
 * Decode walks the entry once, checking each length before reading the bytes
 * it covers. Failure modes (nothing is read past len, nothing is written to
 * cmds beyond *n): BKV_ERR_LENGTH for a length that is not a multiple of 8, a
 * truncated command, a body length that does not fit the type, a sealed field
 * that is empty or longer than BKV_CMD_MAX_SEALED, or trailing bytes;
 * BKV_ERR_FORMAT for a non-zero reserved or padding byte (the ATTEMPT body is
 * all reserved), count 0, a REGISTER limit of 0 or above BKV_CMD_MAX_LIMIT,
 * a REGISTER condition other than 0 or 1 (or condition 0 with a non-zero
 * expect), or a SUCCESS for registration 0; BKV_ERR_UNSUPPORTED for an
 * unknown version or type; BKV_ERR_LIMIT for more commands than the caller's
 * capacity (or BKV_CMD_MAX_BATCH).
 */
#include "consensus/cmd.h"

#include <string.h>

#include "proto/err.h"
#include "proto/util.h"

#define ENTRY_HEADER_LEN 8
#define CMD_HEADER_LEN   (8 + BKV_REQUEST_ID_LEN + BKV_ACCOUNT_KEY_LEN)

static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static int all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;

    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

static int sealed_len_ok(size_t len)
{
    return len >= 1 && len <= BKV_CMD_MAX_SEALED;
}

static int limit_ok(uint32_t max_attempts)
{
    return max_attempts >= 1 && max_attempts <= BKV_CMD_MAX_LIMIT;
}

/* Body length of a valid command, or 0 with *ok = 0 if it cannot be encoded. */
static size_t body_len(const struct bkv_cmd *c, int *ok)
{
    *ok = 1;
    switch (c->type) {
    case BKV_CMD_REGISTER:
        if (!sealed_len_ok(c->record_len) || !sealed_len_ok(c->wrapped_len) || c->record == NULL ||
            c->wrapped == NULL || !limit_ok(c->max_attempts) ||
            (!c->conditional && c->registration != 0))
            break;
        return 24 + c->record_len + c->wrapped_len;
    case BKV_CMD_ATTEMPT:
        return 8;
    case BKV_CMD_SUCCESS:
        if (c->registration == 0)
            break;
        return 8;
    case BKV_CMD_DELETE:
        return 0;
    }
    *ok = 0;
    return 0;
}

size_t bkv_cmd_entry_len(const struct bkv_cmd *cmds, size_t n)
{
    size_t len = ENTRY_HEADER_LEN;
    int ok;

    if (cmds == NULL || n == 0 || n > BKV_CMD_MAX_BATCH)
        return 0;
    for (size_t i = 0; i < n; i++) {
        size_t body = body_len(&cmds[i], &ok);

        if (!ok)
            return 0;
        len += pad8(CMD_HEADER_LEN + body);
    }
    return len;
}

int bkv_cmd_entry_encode(const struct bkv_cmd *cmds, size_t n, uint8_t *out, size_t cap,
                         size_t *len)
{
    size_t need = bkv_cmd_entry_len(cmds, n), off;
    int ok;

    if (need == 0 || out == NULL || len == NULL)
        return BKV_ERR_INVALID;
    if (cap < need)
        return BKV_ERR_LENGTH;
    memset(out, 0, need);
    out[0] = BKV_CMD_VERSION;
    bkv_put_u32(out + 4, (uint32_t)n);
    off = ENTRY_HEADER_LEN;
    for (size_t i = 0; i < n; i++) {
        const struct bkv_cmd *c = &cmds[i];
        size_t body = body_len(c, &ok);
        uint8_t *p = out + off;
        uint8_t *b = p + CMD_HEADER_LEN;

        p[0] = (uint8_t)c->type;
        bkv_put_u32(p + 4, (uint32_t)body);
        memcpy(p + 8, c->request_id, BKV_REQUEST_ID_LEN);
        memcpy(p + 8 + BKV_REQUEST_ID_LEN, c->account, BKV_ACCOUNT_KEY_LEN);
        switch (c->type) {
        case BKV_CMD_REGISTER:
            bkv_put_u32(b, c->max_attempts);
            bkv_put_u32(b + 4, c->conditional ? 1 : 0);
            bkv_put_u64(b + 8, c->registration);
            bkv_put_u32(b + 16, (uint32_t)c->record_len);
            memcpy(b + 20, c->record, c->record_len);
            bkv_put_u32(b + 20 + c->record_len, (uint32_t)c->wrapped_len);
            memcpy(b + 24 + c->record_len, c->wrapped, c->wrapped_len);
            break;
        case BKV_CMD_ATTEMPT:
            break; /* reserved(8), already zero */
        case BKV_CMD_SUCCESS:
            bkv_put_u64(b, c->registration);
            break;
        case BKV_CMD_DELETE:
            break;
        }
        off += pad8(CMD_HEADER_LEN + body);
    }
    *len = need;
    return BKV_OK;
}

/*
 * Decode the body of c (type already set) from b[0..len-1], all of it, in
 * the layout of entry version (1: REGISTER without condition and expect).
 */
static int decode_body(struct bkv_cmd *c, const uint8_t *b, size_t len, unsigned version)
{
    size_t rl, wl;
    size_t at = version == 1 ? 4 : 16; /* offset of record_len */

    switch (c->type) {
    case BKV_CMD_REGISTER:
        if (len < at + 8)
            return BKV_ERR_LENGTH;
        rl = bkv_get_u32(b + at);
        if (!sealed_len_ok(rl) || rl > len - at - 8)
            return BKV_ERR_LENGTH;
        wl = bkv_get_u32(b + at + 4 + rl);
        if (!sealed_len_ok(wl) || wl != len - at - 8 - rl)
            return BKV_ERR_LENGTH;
        c->max_attempts = bkv_get_u32(b);
        if (!limit_ok(c->max_attempts))
            return BKV_ERR_FORMAT;
        if (version >= 2) {
            uint32_t cond = bkv_get_u32(b + 4);
            c->registration = bkv_get_u64(b + 8);
            if (cond > 1 || (cond == 0 && c->registration != 0))
                return BKV_ERR_FORMAT;
            c->conditional = (int)cond;
        }
        c->record = b + at + 4;
        c->record_len = rl;
        c->wrapped = b + at + 8 + rl;
        c->wrapped_len = wl;
        return BKV_OK;
    case BKV_CMD_ATTEMPT:
        if (len != 8)
            return BKV_ERR_LENGTH;
        return all_zero(b, 8) ? BKV_OK : BKV_ERR_FORMAT;
    case BKV_CMD_SUCCESS:
        if (len != 8)
            return BKV_ERR_LENGTH;
        c->registration = bkv_get_u64(b);
        return c->registration == 0 ? BKV_ERR_FORMAT : BKV_OK;
    case BKV_CMD_DELETE:
        return len == 0 ? BKV_OK : BKV_ERR_LENGTH;
    }
    return BKV_ERR_UNSUPPORTED;
}

int bkv_cmd_entry_decode(const uint8_t *in, size_t len, struct bkv_cmd *cmds, size_t cap, size_t *n)
{
    size_t count, off;
    int rv;

    if (in == NULL || cmds == NULL || n == NULL)
        return BKV_ERR_INVALID;
    *n = 0;
    if (len < ENTRY_HEADER_LEN || len % 8 != 0)
        return BKV_ERR_LENGTH;
    if (in[0] != BKV_CMD_VERSION && in[0] != 1)
        return BKV_ERR_UNSUPPORTED;
    if (!all_zero(in + 1, 3))
        return BKV_ERR_FORMAT;
    count = bkv_get_u32(in + 4);
    if (count == 0)
        return BKV_ERR_FORMAT;
    if (count > cap || count > BKV_CMD_MAX_BATCH)
        return BKV_ERR_LIMIT;
    off = ENTRY_HEADER_LEN;
    for (size_t i = 0; i < count; i++) {
        struct bkv_cmd *c = &cmds[i];
        const uint8_t *p = in + off;
        size_t body, padded;

        if (len - off < CMD_HEADER_LEN)
            return BKV_ERR_LENGTH;
        if (p[0] < BKV_CMD_REGISTER || p[0] > BKV_CMD_DELETE)
            return BKV_ERR_UNSUPPORTED;
        if (!all_zero(p + 1, 3))
            return BKV_ERR_FORMAT;
        body = bkv_get_u32(p + 4);
        if (body > len - off - CMD_HEADER_LEN)
            return BKV_ERR_LENGTH;
        padded = pad8(CMD_HEADER_LEN + body);
        if (padded > len - off)
            return BKV_ERR_LENGTH;
        memset(c, 0, sizeof(*c));
        c->type = (enum bkv_cmd_type)p[0];
        memcpy(c->request_id, p + 8, BKV_REQUEST_ID_LEN);
        memcpy(c->account, p + 8 + BKV_REQUEST_ID_LEN, BKV_ACCOUNT_KEY_LEN);
        rv = decode_body(c, p + CMD_HEADER_LEN, body, in[0]);
        if (rv != BKV_OK)
            return rv;
        if (!all_zero(p + CMD_HEADER_LEN + body, padded - CMD_HEADER_LEN - body))
            return BKV_ERR_FORMAT;
        off += padded;
    }
    if (off != len)
        return BKV_ERR_LENGTH;
    *n = count;
    return BKV_OK;
}

const char *bkv_cmd_status_name(enum bkv_cmd_status status)
{
    switch (status) {
    case BKV_CMD_REGISTERED:
        return "registered";
    case BKV_CMD_COUNTED:
        return "counted";
    case BKV_CMD_DESTROYED:
        return "destroyed";
    case BKV_CMD_NOT_FOUND:
        return "not found";
    case BKV_CMD_RESET:
        return "reset";
    case BKV_CMD_STALE:
        return "stale";
    case BKV_CMD_DELETED:
        return "deleted";
    }
    return "unknown status";
}
