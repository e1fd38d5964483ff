/*
 * libFuzzer target: BKV's inner messages (proto/msg.h), the plaintext inside
 * the envelope. Every input goes to both decoders (a request is
 * BKV_MSG_REQUEST_LEN bytes, a response BKV_MSG_RESPONSE_LEN, so at most one
 * can accept it). An accepted message must re-encode to exactly the input,
 * with the payload length its type and status call for.
 */
#include <string.h>

#include "fuzz.h"
#include "proto/err.h"
#include "proto/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t out[BKV_MSG_REQUEST_LEN > BKV_MSG_RESPONSE_LEN ? BKV_MSG_REQUEST_LEN
                                                           : BKV_MSG_RESPONSE_LEN];
    struct bkv_msg_request rq;
    struct bkv_msg_response rs;

    if (bkv_msg_request_decode(data, size, &rq) == BKV_OK) {
        FUZZ_CHECK(size == BKV_MSG_REQUEST_LEN);
        FUZZ_CHECK(bkv_msg_account_valid(rq.account, rq.account_len));
        FUZZ_CHECK(rq.account >= data && rq.account + rq.account_len <= data + size);
        FUZZ_CHECK(rq.payload_len == bkv_msg_request_payload_len(rq.type));
        FUZZ_CHECK(rq.payload_len == 0 ||
                   (rq.payload >= data && rq.payload + rq.payload_len <= data + size));
        FUZZ_CHECK(bkv_msg_type_name(rq.type) != NULL);
        FUZZ_CHECK(bkv_msg_request_encode(&rq, out) == BKV_OK);
        FUZZ_CHECK(memcmp(out, data, BKV_MSG_REQUEST_LEN) == 0);
    }
    if (bkv_msg_response_decode(data, size, &rs) == BKV_OK) {
        FUZZ_CHECK(size == BKV_MSG_RESPONSE_LEN);
        FUZZ_CHECK(rs.payload_len == bkv_msg_response_payload_len(rs.type, rs.status));
        FUZZ_CHECK(rs.payload_len == 0 ||
                   (rs.payload >= data && rs.payload + rs.payload_len <= data + size));
        FUZZ_CHECK(bkv_msg_status_name(rs.status) != NULL);
        FUZZ_CHECK(bkv_msg_response_encode(&rs, out) == BKV_OK);
        FUZZ_CHECK(memcmp(out, data, BKV_MSG_RESPONSE_LEN) == 0);
    }
    return 0;
}
