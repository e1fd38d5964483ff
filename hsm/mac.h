/*
 * Account-id MACs in the HSM: HMAC-SHA256 (CKM_SHA256_HMAC) with the realm
 * MAC key, so that the store is keyed by values only an HSM of the realm can
 * compute. The MAC input is "BKV-ACCOUNT-ID-v1" || account id, which keeps it
 * apart from the other MACs the realm key makes (the enrolment check value).
 * Threads: any number of threads at once on one handle.
 */
#ifndef BKV_HSM_MAC_H
#define BKV_HSM_MAC_H

#include <stddef.h>
#include <stdint.h>

#define BKV_HSM_MAC_LEN         32
#define BKV_HSM_MAC_MAX_ACCOUNT (1u << 16)

struct bkv_hsm;

/*
 * out = HMAC-SHA256(realm MAC key, "BKV-ACCOUNT-ID-v1" || account).
 * account is borrowed; BKV_ERR_LENGTH above BKV_HSM_MAC_MAX_ACCOUNT bytes,
 * BKV_ERR_HSM_NOT_ENROLLED without a realm. Deterministic per realm.
 */
int bkv_hsm_account_mac(struct bkv_hsm *h, const uint8_t *account, size_t account_len,
                        uint8_t out[static BKV_HSM_MAC_LEN]);

#endif
