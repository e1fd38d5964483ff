/*
 * The string table for enum bkv_err. Unknown codes map to a fixed text so that
 * a caller can always print what it got.
 */
#include "err.h"

static const char *const messages[BKV_ERR__COUNT] = {
    [BKV_OK] = "ok",
    [BKV_ERR_NOMEM] = "out of memory",
    [BKV_ERR_INVALID] = "invalid argument",
    [BKV_ERR_LENGTH] = "wrong length",
    [BKV_ERR_POINT] = "invalid P-256 point",
    [BKV_ERR_SCALAR] = "invalid P-256 scalar",
    [BKV_ERR_MAC] = "MAC verification failed",
    [BKV_ERR_DECRYPT] = "decryption failed: authentication tag mismatch",
    [BKV_ERR_ENVELOPE] = "envelope recovery failed: wrong password or corrupted record",
    [BKV_ERR_DERIVE] = "key derivation failed",
    [BKV_ERR_KSF] = "key stretching function failed",
    [BKV_ERR_UNSUPPORTED] = "unsupported algorithm, key id or version",
    [BKV_ERR_LIMIT] = "limit reached",
    [BKV_ERR_FORMAT] = "malformed encoding",
    [BKV_ERR_CRYPTO] = "internal cryptographic failure",
    [BKV_ERR_IO] = "I/O error",
    [BKV_ERR_PERMISSION] = "file is accessible to other users",
    [BKV_ERR_HSM_MODULE] = "HSM module cannot be loaded",
    [BKV_ERR_HSM_TOKEN] = "HSM token not found",
    [BKV_ERR_HSM_PIN] = "HSM PIN incorrect",
    [BKV_ERR_HSM_LOCKED] = "HSM token locked",
    [BKV_ERR_HSM_NO_KEY] = "realm key missing from the HSM",
    [BKV_ERR_HSM_NOT_ENROLLED] = "HSM not yet enrolled in a realm",
    [BKV_ERR_HSM_NOT_APPROVED] = "enrolment request not approved",
    [BKV_ERR_HSM] = "HSM operation failed",
    [BKV_ERR_NOT_LEADER] = "not the leader",
    [BKV_ERR_NOT_READY] = "leader not ready yet (barrier pending)",
    [BKV_ERR_LEADERSHIP_LOST] = "leadership lost before commit; outcome unknown",
    [BKV_ERR_NOSPACE] = "no space left on device",
    [BKV_ERR_SHUTDOWN] = "shutting down",
    [BKV_ERR_RAFT] = "consensus failure",
};

const char *bkv_strerror(int code)
{
    if (code < 0 || code >= BKV_ERR__COUNT || messages[code] == 0)
        return "unknown error";
    return messages[code];
}
