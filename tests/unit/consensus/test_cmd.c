/*
 * The command codec (consensus/cmd.c): round trips of every type and of
 * batches, 8-byte alignment, and every malformed form refused with its code:
 * each truncation, each reserved and padding byte flipped, bad version and
 * type, oversized and empty sealed fields, count 0, count above the cap,
 * trailing bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#include "consensus/cmd.h"
#include "proto/err.h"

static uint8_t record[BKV_CMD_MAX_SEALED + 8], wrapped[BKV_CMD_MAX_SEALED + 8];

static struct bkv_cmd make(enum bkv_cmd_type type, uint8_t tag)
{
    struct bkv_cmd c;

    memset(&c, 0, sizeof(c));
    c.type = type;
    memset(c.request_id, tag, sizeof(c.request_id));
    c.request_id[0] = (uint8_t)type;
    memset(c.account, (uint8_t)(tag ^ 0x5a), sizeof(c.account));
    switch (type) {
    case BKV_CMD_REGISTER:
        c.record = record;
        c.record_len = 77 + tag;
        c.wrapped = wrapped;
        c.wrapped_len = 48 + (tag & 7);
        c.max_attempts = 10 + tag;
        break;
    case BKV_CMD_ATTEMPT:
        break;
    case BKV_CMD_SUCCESS:
        c.registration = 0x0102030405060708ull + tag;
        break;
    case BKV_CMD_DELETE:
        break;
    }
    return c;
}

static void assert_same(const struct bkv_cmd *a, const struct bkv_cmd *b)
{
    CU_ASSERT_EQUAL(a->type, b->type);
    CU_ASSERT_EQUAL(memcmp(a->request_id, b->request_id, sizeof(a->request_id)), 0);
    CU_ASSERT_EQUAL(memcmp(a->account, b->account, sizeof(a->account)), 0);
    CU_ASSERT_EQUAL(a->max_attempts, b->max_attempts);
    CU_ASSERT_EQUAL(a->registration, b->registration);
    CU_ASSERT_EQUAL(a->conditional, b->conditional);
    CU_ASSERT_EQUAL(a->record_len, b->record_len);
    CU_ASSERT_EQUAL(a->wrapped_len, b->wrapped_len);
    if (a->record_len == b->record_len && a->record_len > 0)
        CU_ASSERT_EQUAL(memcmp(a->record, b->record, a->record_len), 0);
    if (a->wrapped_len == b->wrapped_len && a->wrapped_len > 0)
        CU_ASSERT_EQUAL(memcmp(a->wrapped, b->wrapped, a->wrapped_len), 0);
}

/* Encode cmds into a fresh buffer (caller frees); *len gets its length. */
static uint8_t *encode(const struct bkv_cmd *cmds, size_t n, size_t *len)
{
    size_t need = bkv_cmd_entry_len(cmds, n);
    uint8_t *buf;

    CU_ASSERT_FATAL(need > 0);
    CU_ASSERT_EQUAL(need % 8, 0);
    buf = malloc(need);
    CU_ASSERT_FATAL(buf != NULL);
    CU_ASSERT_EQUAL(bkv_cmd_entry_encode(cmds, n, buf, need, len), BKV_OK);
    CU_ASSERT_EQUAL(*len, need);
    return buf;
}

static struct bkv_cmd out[BKV_CMD_MAX_BATCH];

static int decode(const uint8_t *in, size_t len, size_t *n)
{
    return bkv_cmd_entry_decode(in, len, out, BKV_CMD_MAX_BATCH, n);
}

static void test_round_trip_each_type(void)
{
    for (int t = BKV_CMD_REGISTER; t <= BKV_CMD_DELETE; t++) {
        for (uint8_t tag = 0; tag < 9; tag++) {
            struct bkv_cmd c = make((enum bkv_cmd_type)t, tag);
            size_t len, n = 0;
            uint8_t *buf = encode(&c, 1, &len);

            CU_ASSERT_EQUAL(decode(buf, len, &n), BKV_OK);
            CU_ASSERT_EQUAL(n, 1);
            assert_same(&c, &out[0]);
            free(buf);
        }
    }
}

static void test_round_trip_batches(void)
{
    static struct bkv_cmd cmds[BKV_CMD_MAX_BATCH];
    size_t sizes[] = {2, 3, 7, 64, BKV_CMD_MAX_BATCH};

    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t len, n = 0;
        uint8_t *buf;

        for (size_t i = 0; i < sizes[k]; i++)
            cmds[i] = make((enum bkv_cmd_type)(1 + i % 4), (uint8_t)(i % 13));
        buf = encode(cmds, sizes[k], &len);
        CU_ASSERT_EQUAL(decode(buf, len, &n), BKV_OK);
        CU_ASSERT_EQUAL(n, sizes[k]);
        for (size_t i = 0; i < n; i++)
            assert_same(&cmds[i], &out[i]);
        free(buf);
    }
}

static void test_layout(void)
{
    struct bkv_cmd c = make(BKV_CMD_ATTEMPT, 1);
    uint8_t buf[72];
    size_t len;

    CU_ASSERT_EQUAL(bkv_cmd_entry_encode(&c, 1, buf, sizeof(buf), &len), BKV_OK);
    CU_ASSERT_EQUAL(len, 72); /* 8 + 56 + 8 */
    CU_ASSERT_EQUAL(buf[0], BKV_CMD_VERSION);
    CU_ASSERT_EQUAL(buf[7], 1);  /* count, big-endian */
    CU_ASSERT_EQUAL(buf[8], 2);  /* type ATTEMPT */
    CU_ASSERT_EQUAL(buf[15], 8); /* body_len */
    for (size_t i = 0; i < 8; i++)
        CU_ASSERT_EQUAL(buf[8 + 56 + i], 0); /* reserved: ATTEMPT carries no limit */
    {
        struct bkv_cmd reg = make(BKV_CMD_REGISTER, 1);
        uint8_t rbuf[512];

        CU_ASSERT_EQUAL(bkv_cmd_entry_encode(&reg, 1, rbuf, sizeof(rbuf), &len), BKV_OK);
        CU_ASSERT_EQUAL(rbuf[8 + 56 + 3], 11);  /* max_attempts first in the body */
        CU_ASSERT_EQUAL(rbuf[8 + 56 + 7], 0);   /* then the condition: unconditional */
        CU_ASSERT_EQUAL(rbuf[8 + 56 + 19], 78); /* expect(8), then record_len */
        reg.conditional = 1;
        reg.registration = 0x0a0b;
        CU_ASSERT_EQUAL(bkv_cmd_entry_encode(&reg, 1, rbuf, sizeof(rbuf), &len), BKV_OK);
        CU_ASSERT_EQUAL(rbuf[8 + 56 + 7], 1);
        CU_ASSERT_EQUAL(rbuf[8 + 56 + 14], 0x0a);
        CU_ASSERT_EQUAL(rbuf[8 + 56 + 15], 0x0b);
        struct bkv_cmd back;
        size_t nb = 0;
        CU_ASSERT_EQUAL(bkv_cmd_entry_decode(rbuf, len, &back, 1, &nb), BKV_OK);
        CU_ASSERT_EQUAL(nb, 1);
        assert_same(&reg, &back);
        reg.conditional = 1;
        reg.registration = 0; /* expects no row: valid too */
        CU_ASSERT_EQUAL(bkv_cmd_entry_encode(&reg, 1, rbuf, sizeof(rbuf), &len), BKV_OK);
        CU_ASSERT_EQUAL(bkv_cmd_entry_decode(rbuf, len, &back, 1, &nb), BKV_OK);
        CU_ASSERT_EQUAL(back.conditional, 1);
        rbuf[8 + 56 + 7] = 2; /* no condition 2 */
        CU_ASSERT_EQUAL(bkv_cmd_entry_decode(rbuf, len, &back, 1, &nb), BKV_ERR_FORMAT);
    }
    /* every length is a multiple of 8, from 1 to 2 * MAX_SEALED bytes */
    for (size_t rl = 1; rl <= 64; rl++) {
        struct bkv_cmd r = make(BKV_CMD_REGISTER, 0);

        r.record_len = rl;
        r.wrapped_len = 1 + rl % 5;
        CU_ASSERT_EQUAL(bkv_cmd_entry_len(&r, 1) % 8, 0);
    }
    CU_ASSERT_EQUAL(bkv_cmd_entry_encode(&c, 1, buf, 71, &len), BKV_ERR_LENGTH);
}

static void test_encode_refuses_invalid(void)
{
    struct bkv_cmd c = make(BKV_CMD_REGISTER, 0);
    uint8_t buf[16384];
    size_t len;

    c.record_len = BKV_CMD_MAX_SEALED + 1;
    CU_ASSERT_EQUAL(bkv_cmd_entry_len(&c, 1), 0);
    CU_ASSERT_EQUAL(bkv_cmd_entry_encode(&c, 1, buf, sizeof(buf), &len), BKV_ERR_INVALID);
    c.record_len = BKV_CMD_MAX_SEALED;
    c.wrapped_len = BKV_CMD_MAX_SEALED;
    CU_ASSERT_NOT_EQUAL(bkv_cmd_entry_len(&c, 1), 0);
    c.wrapped_len = 0;
    CU_ASSERT_EQUAL(bkv_cmd_entry_len(&c, 1), 0);
    c = make(BKV_CMD_REGISTER, 0);
    c.max_attempts = 0;
    CU_ASSERT_EQUAL(bkv_cmd_entry_len(&c, 1), 0);
    c.max_attempts = BKV_CMD_MAX_LIMIT + 1;
    CU_ASSERT_EQUAL(bkv_cmd_entry_len(&c, 1), 0);
    c.max_attempts = BKV_CMD_MAX_LIMIT;
    CU_ASSERT_NOT_EQUAL(bkv_cmd_entry_len(&c, 1), 0);
    c = make(BKV_CMD_SUCCESS, 0);
    c.registration = 0;
    CU_ASSERT_EQUAL(bkv_cmd_entry_len(&c, 1), 0);
    c = make(BKV_CMD_DELETE, 0);
    c.type = (enum bkv_cmd_type)9;
    CU_ASSERT_EQUAL(bkv_cmd_entry_len(&c, 1), 0);
    c.type = BKV_CMD_DELETE;
    CU_ASSERT_EQUAL(bkv_cmd_entry_len(&c, 0), 0);
    CU_ASSERT_EQUAL(bkv_cmd_entry_len(&c, BKV_CMD_MAX_BATCH + 1), 0);
}

/* A batch of all four types, as the malformed forms start from it. */
static uint8_t *sample(size_t *len, struct bkv_cmd cmds[4])
{
    for (int i = 0; i < 4; i++)
        cmds[i] = make((enum bkv_cmd_type)(i + 1), (uint8_t)(i + 2));
    return encode(cmds, 4, len);
}

static void test_truncated(void)
{
    struct bkv_cmd cmds[4];
    size_t len, n = 99;
    uint8_t *buf = sample(&len, cmds);

    for (size_t l = 0; l < len; l++) {
        uint8_t *cut = malloc(l + 1);

        memcpy(cut, buf, l);
        n = 99;
        CU_ASSERT_EQUAL(decode(cut, l, &n), BKV_ERR_LENGTH);
        CU_ASSERT_EQUAL(n, 0);
        free(cut);
    }
    free(buf);
}

/* Offsets of every reserved and padding byte of the sample entry. */
static size_t reserved_offsets(const struct bkv_cmd cmds[4], size_t *offs)
{
    size_t k = 0, off = 8;

    for (size_t i = 1; i < 4; i++)
        offs[k++] = i;
    for (int c = 0; c < 4; c++) {
        size_t body = cmds[c].type == BKV_CMD_REGISTER
                          ? 24 + cmds[c].record_len + cmds[c].wrapped_len
                      : cmds[c].type == BKV_CMD_DELETE ? 0
                                                       : 8;
        size_t end = off + 56 + body, padded = off + ((56 + body + 7) & ~(size_t)7);

        for (size_t i = 1; i < 4; i++)
            offs[k++] = off + i;
        if (cmds[c].type == BKV_CMD_ATTEMPT)
            for (size_t i = 0; i < 8; i++)
                offs[k++] = off + 56 + i;
        /* an unconditional REGISTER: the condition's high bytes, and expect (must be 0) */
        if (cmds[c].type == BKV_CMD_REGISTER)
            for (size_t i = 4; i < 16; i++)
                if (i != 7)
                    offs[k++] = off + 56 + i;
        for (size_t i = end; i < padded; i++)
            offs[k++] = i;
        off = padded;
    }
    return k;
}

static void test_reserved_and_padding(void)
{
    struct bkv_cmd cmds[4];
    size_t len, n, offs[96], k, flipped = 0;
    uint8_t *buf = sample(&len, cmds);

    k = reserved_offsets(cmds, offs);
    CU_ASSERT(k >= 3 + 4 * 3 + 4 + 1);
    for (size_t i = 0; i < k; i++) {
        for (int bit = 0; bit < 8; bit++) {
            buf[offs[i]] ^= (uint8_t)(1u << bit);
            n = 99;
            CU_ASSERT_EQUAL(decode(buf, len, &n), BKV_ERR_FORMAT);
            CU_ASSERT_EQUAL(n, 0);
            buf[offs[i]] ^= (uint8_t)(1u << bit);
            flipped++;
        }
    }
    CU_ASSERT_EQUAL(decode(buf, len, &n), BKV_OK);
    printf("\n  %zu reserved/padding bytes, %zu flips refused\n", k, flipped);
    free(buf);
}

/* A version 1 entry (before REGISTER had a condition) still decodes, as unconditional. */
static void test_version_1(void)
{
    uint8_t rec[5] = {1, 2, 3, 4, 5}, wr[3] = {6, 7, 8};
    uint8_t e[8 + 56 + 24];
    struct bkv_cmd c;
    size_t n = 0;

    memset(e, 0, sizeof(e));
    e[0] = 1;
    e[7] = 1;                  /* count */
    e[8] = BKV_CMD_REGISTER;   /* type */
    e[15] = 4 + 4 + 5 + 4 + 3; /* body_len 20 */
    memset(e + 16, 0xab, 16);  /* request id */
    memset(e + 32, 0xcd, 32);  /* account */
    e[64 + 3] = 7;             /* max_attempts */
    e[64 + 7] = 5;             /* record_len */
    memcpy(e + 72, rec, 5);
    e[77 + 3] = 3;         /* wrapped_len */
    memcpy(e + 81, wr, 3); /* then 4 bytes of padding to 88 */
    CU_ASSERT_EQUAL(bkv_cmd_entry_decode(e, sizeof(e), &c, 1, &n), BKV_OK);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(c.type, BKV_CMD_REGISTER);
    CU_ASSERT_EQUAL(c.max_attempts, 7);
    CU_ASSERT_EQUAL(c.conditional, 0);
    CU_ASSERT_EQUAL(c.registration, 0);
    CU_ASSERT_EQUAL(c.record_len, 5);
    CU_ASSERT_EQUAL(c.wrapped_len, 3);
    CU_ASSERT(c.record != NULL && memcmp(c.record, rec, 5) == 0);
    CU_ASSERT(c.wrapped != NULL && memcmp(c.wrapped, wr, 3) == 0);
    /* re-encoded, it is a version 2 entry that decodes to the same command */
    uint8_t out[256];
    size_t len = 0;
    struct bkv_cmd back;
    CU_ASSERT_EQUAL(bkv_cmd_entry_encode(&c, 1, out, sizeof(out), &len), BKV_OK);
    CU_ASSERT_EQUAL(out[0], BKV_CMD_VERSION);
    CU_ASSERT_EQUAL(bkv_cmd_entry_decode(out, len, &back, 1, &n), BKV_OK);
    assert_same(&c, &back);
    /* in version 1, the same bytes with the version 2 layout's length are refused */
    e[15] = 24;
    CU_ASSERT_NOT_EQUAL(bkv_cmd_entry_decode(e, sizeof(e), &c, 1, &n), BKV_OK);
}

static void test_version_and_type(void)
{
    struct bkv_cmd cmds[4];
    size_t len, n;
    uint8_t *buf = sample(&len, cmds);

    for (int v = 0; v < 256; v++) {
        if (v == BKV_CMD_VERSION || v == 1)
            continue;
        buf[0] = (uint8_t)v;
        CU_ASSERT_EQUAL(decode(buf, len, &n), BKV_ERR_UNSUPPORTED);
    }
    buf[0] = BKV_CMD_VERSION;
    for (int t = 0; t < 256; t++) {
        if (t >= BKV_CMD_REGISTER && t <= BKV_CMD_DELETE)
            continue;
        buf[8] = (uint8_t)t;
        CU_ASSERT_EQUAL(decode(buf, len, &n), BKV_ERR_UNSUPPORTED);
    }
    free(buf);
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void test_bad_lengths_and_values(void)
{
    struct bkv_cmd c = make(BKV_CMD_REGISTER, 0), cmds[4];
    size_t len, n;
    uint8_t *buf;

    /* sealed fields at the limit decode; one byte more is refused */
    c.record_len = BKV_CMD_MAX_SEALED;
    c.wrapped_len = BKV_CMD_MAX_SEALED;
    buf = encode(&c, 1, &len);
    CU_ASSERT_EQUAL(decode(buf, len, &n), BKV_OK);
    free(buf);
    /* same body, split as MAX + 1 and MAX - 1 bytes, then MAX - 1 and MAX + 1 */
    buf = encode(&c, 1, &len);
    put32(buf + 80, BKV_CMD_MAX_SEALED + 1);
    put32(buf + 80 + 4 + BKV_CMD_MAX_SEALED + 1, BKV_CMD_MAX_SEALED - 1);
    CU_ASSERT_EQUAL(decode(buf, len, &n), BKV_ERR_LENGTH);
    put32(buf + 80, BKV_CMD_MAX_SEALED - 1);
    put32(buf + 80 + 4 + BKV_CMD_MAX_SEALED - 1, BKV_CMD_MAX_SEALED + 1);
    CU_ASSERT_EQUAL(decode(buf, len, &n), BKV_ERR_LENGTH);
    free(buf);

    buf = sample(&len, cmds);
    /* REGISTER record_len 0, or pointing past the body */
    put32(buf + 80, 0);
    CU_ASSERT_EQUAL(decode(buf, len, &n), BKV_ERR_LENGTH);
    put32(buf + 80, (uint32_t)cmds[0].record_len + 1);
    CU_ASSERT_EQUAL(decode(buf, len, &n), BKV_ERR_LENGTH);
    put32(buf + 80, (uint32_t)cmds[0].record_len);
    CU_ASSERT_EQUAL(decode(buf, len, &n), BKV_OK);
    /* REGISTER max_attempts 0 or above the cap (so attempts + 1 never wraps) */
    put32(buf + 64, 0);
    CU_ASSERT_EQUAL(decode(buf, len, &n), BKV_ERR_FORMAT);
    put32(buf + 64, BKV_CMD_MAX_LIMIT + 1);
    CU_ASSERT_EQUAL(decode(buf, len, &n), BKV_ERR_FORMAT);
    put32(buf + 64, 0xffffffffu);
    CU_ASSERT_EQUAL(decode(buf, len, &n), BKV_ERR_FORMAT);
    put32(buf + 64, BKV_CMD_MAX_LIMIT);
    CU_ASSERT_EQUAL(decode(buf, len, &n), BKV_OK);
    /* body_len not matching the type */
    put32(buf + 12, 0xffffffffu);
    CU_ASSERT_EQUAL(decode(buf, len, &n), BKV_ERR_LENGTH);
    free(buf);

    c = make(BKV_CMD_ATTEMPT, 0);
    buf = encode(&c, 1, &len);
    put32(buf + 64, 10); /* a limit in the reserved body is refused */
    CU_ASSERT_EQUAL(decode(buf, len, &n), BKV_ERR_FORMAT);
    put32(buf + 12, 0); /* ATTEMPT with an empty body */
    CU_ASSERT_EQUAL(decode(buf, len, &n), BKV_ERR_LENGTH);
    free(buf);

    c = make(BKV_CMD_SUCCESS, 0);
    buf = encode(&c, 1, &len);
    memset(buf + 64, 0, 8); /* registration 0 */
    CU_ASSERT_EQUAL(decode(buf, len, &n), BKV_ERR_FORMAT);
    free(buf);

    c = make(BKV_CMD_DELETE, 0);
    buf = encode(&c, 1, &len);
    put32(buf + 12, 8); /* DELETE with a body */
    CU_ASSERT_EQUAL(decode(buf, len, &n), BKV_ERR_LENGTH);
    free(buf);
}

static void test_count_and_trailing(void)
{
    struct bkv_cmd cmds[4];
    size_t len, n;
    uint8_t *buf = sample(&len, cmds), *longer;

    put32(buf + 4, 0);
    CU_ASSERT_EQUAL(decode(buf, len, &n), BKV_ERR_FORMAT);
    put32(buf + 4, BKV_CMD_MAX_BATCH + 1);
    CU_ASSERT_EQUAL(decode(buf, len, &n), BKV_ERR_LIMIT);
    put32(buf + 4, 0xffffffffu);
    CU_ASSERT_EQUAL(decode(buf, len, &n), BKV_ERR_LIMIT);
    put32(buf + 4, 4);
    CU_ASSERT_EQUAL(bkv_cmd_entry_decode(buf, len, out, 3, &n), BKV_ERR_LIMIT);
    CU_ASSERT_EQUAL(bkv_cmd_entry_decode(buf, len, out, 4, &n), BKV_OK);
    put32(buf + 4, 3); /* the fourth command becomes trailing bytes */
    CU_ASSERT_EQUAL(decode(buf, len, &n), BKV_ERR_LENGTH);
    put32(buf + 4, 5); /* a fifth command that is not there */
    CU_ASSERT_EQUAL(decode(buf, len, &n), BKV_ERR_LENGTH);
    put32(buf + 4, 4);
    longer = calloc(1, len + 8);
    memcpy(longer, buf, len);
    CU_ASSERT_EQUAL(decode(longer, len + 8, &n), BKV_ERR_LENGTH);
    CU_ASSERT_EQUAL(decode(longer, len + 3, &n), BKV_ERR_LENGTH);
    free(longer);
    CU_ASSERT_EQUAL(bkv_cmd_entry_decode(NULL, len, out, 4, &n), BKV_ERR_INVALID);
    free(buf);
}

static void test_status_names(void)
{
    for (int s = BKV_CMD_REGISTERED; s <= BKV_CMD_DELETED; s++)
        CU_ASSERT_STRING_NOT_EQUAL(bkv_cmd_status_name((enum bkv_cmd_status)s), "unknown status");
    CU_ASSERT_STRING_EQUAL(bkv_cmd_status_name(BKV_CMD_DESTROYED), "destroyed");
    CU_ASSERT_STRING_EQUAL(bkv_cmd_status_name((enum bkv_cmd_status)0), "unknown status");
}

static CU_TestInfo tests[] = {
    {"round trip of each type", test_round_trip_each_type},
    {"round trip of batches", test_round_trip_batches},
    {"layout and 8-byte alignment", test_layout},
    {"encode refuses invalid commands", test_encode_refuses_invalid},
    {"every truncation refused", test_truncated},
    {"every reserved and padding bit refused", test_reserved_and_padding},
    {"unknown version and type refused", test_version_and_type},
    {"a version 1 entry decodes as an unconditional REGISTER", test_version_1},
    {"bad lengths and values refused", test_bad_lengths_and_values},
    {"count 0, over the cap, trailing bytes", test_count_and_trailing},
    {"status names", test_status_names},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    for (size_t i = 0; i < sizeof(record); i++) {
        record[i] = (uint8_t)(i * 7 + 1);
        wrapped[i] = (uint8_t)(i * 13 + 5);
    }
    return bkv_test_main("consensus_cmd", tests, NULL, NULL);
}
