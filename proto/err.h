/*
 * BKV status codes. Every function in BKV returns int: 0 (BKV_OK) on success,
 * otherwise one of these codes. bkv_strerror() gives a stable, human-readable
 * text. Codes from OpenSSL, PKCS#11, SQLite and libraft are mapped to these at
 * the module boundary; the detail travels in the caller's error-message buffer.
 */
#ifndef BKV_PROTO_ERR_H
#define BKV_PROTO_ERR_H

enum bkv_err {
    BKV_OK = 0,
    BKV_ERR_NOMEM,            /* allocation failed */
    BKV_ERR_INVALID,          /* bad argument from the caller */
    BKV_ERR_LENGTH,           /* input has the wrong length */
    BKV_ERR_POINT,            /* not a valid, non-identity P-256 point encoding */
    BKV_ERR_SCALAR,           /* scalar is zero or not below the group order */
    BKV_ERR_MAC,              /* a MAC did not verify */
    BKV_ERR_DECRYPT,          /* AEAD authentication failed */
    BKV_ERR_ENVELOPE,         /* OPAQUE envelope recovery failed (wrong password) */
    BKV_ERR_DERIVE,           /* key derivation found no valid key */
    BKV_ERR_KSF,              /* key stretching (Argon2id) failed */
    BKV_ERR_UNSUPPORTED,      /* unsupported suite, key id or version */
    BKV_ERR_LIMIT,            /* a counter or size limit was reached */
    BKV_ERR_FORMAT,           /* malformed encoding */
    BKV_ERR_CRYPTO,           /* unexpected failure inside OpenSSL */
    BKV_ERR_IO,               /* a file or directory operation failed */
    BKV_ERR_PERMISSION,       /* a key or PIN file is readable by other users */
    BKV_ERR_HSM_MODULE,       /* the PKCS#11 module cannot be loaded or initialised */
    BKV_ERR_HSM_TOKEN,        /* no token with the configured label */
    BKV_ERR_HSM_PIN,          /* the token refused the PIN */
    BKV_ERR_HSM_LOCKED,       /* the token is locked (PIN locked, or in use by another process) */
    BKV_ERR_HSM_NO_KEY,       /* a realm key is missing from the token */
    BKV_ERR_HSM_NOT_ENROLLED, /* the token holds no realm yet (enrolment pending) */
    BKV_ERR_HSM_NOT_APPROVED, /* an enrolment request was not approved by fingerprint */
    BKV_ERR_HSM,              /* any other PKCS#11 failure; the message has the CKR_ code */
    BKV_ERR_NOT_LEADER,       /* this node is not the leader; ask the one it names */
    BKV_ERR_NOT_READY,        /* a new leader whose barrier has not committed yet; retry */
    BKV_ERR_LEADERSHIP_LOST,  /* lost before commit: outcome unknown; retry, same request id */
    BKV_ERR_NOSPACE,          /* the disk is full */
    BKV_ERR_SHUTDOWN,         /* the node is shutting down */
    BKV_ERR_RAFT,             /* any other libraft failure; the message has the detail */
    BKV_ERR__COUNT
};

/* Static text for code; never NULL, also for unknown codes. Any thread. */
const char *bkv_strerror(int code);

#endif
