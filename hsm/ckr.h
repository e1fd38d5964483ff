/*
 * PKCS#11 return codes: names for messages and the mapping to enum bkv_err.
 * Both functions are reentrant and may be called from any thread.
 */
#ifndef BKV_HSM_CKR_H
#define BKV_HSM_CKR_H

#include <p11-kit/pkcs11.h>

/*
 * The symbolic name of rv ("CKR_PIN_INCORRECT"). Unknown codes are printed as
 * hex into a thread-local buffer that stays valid until this thread's next
 * call with an unknown code. Never NULL.
 */
const char *bkv_hsm_ckr_name(CK_RV rv);

/*
 * The BKV code for rv: PIN errors -> BKV_ERR_HSM_PIN, CKR_PIN_LOCKED ->
 * BKV_ERR_HSM_LOCKED, token/slot errors -> BKV_ERR_HSM_TOKEN, memory ->
 * BKV_ERR_NOMEM, bad ciphertext -> BKV_ERR_DECRYPT, anything else ->
 * BKV_ERR_HSM. CKR_OK -> BKV_OK.
 */
int bkv_hsm_ckr_to_err(CK_RV rv);

#endif
