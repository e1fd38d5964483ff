/*
 * PKCS#11 modules, once per process. A module (shared library) is loaded with
 * dlopen and initialised with C_Initialize(CKF_OS_LOCKING_OK) the first time
 * any handle needs it, shared by every handle that names the same path, and
 * finalised (C_Finalize, but never dlclose'd) when the last one lets go. The registry is guarded by
 * one mutex; every function may be called from any thread.
 *
 * SoftHSM2 reads its configuration (SOFTHSM2_CONF) once, in C_Initialize.
 * The configuration is therefore per process: the first user's conf wins and
 * a later, different one is refused.
 */
#ifndef BKV_HSM_MODULE_H
#define BKV_HSM_MODULE_H

#include <pthread.h>
#include <stddef.h>

#include <p11-kit/pkcs11.h>

#define BKV_HSM_DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"

struct bkv_hsm_module {
    char *path;             /* as given */
    char *conf;             /* SOFTHSM2_CONF in force at C_Initialize, or NULL */
    void *dl;               /* dlopen handle */
    CK_FUNCTION_LIST *f;    /* the module's function list */
    int refs;               /* guarded by the registry mutex; 0: not initialised */
    int owns_init;          /* 1 if our C_Initialize succeeded (so we call C_Finalize) */
    pthread_mutex_t create; /* serialises token-object creation (softhsm#573) */
    struct bkv_hsm_module *next;
};

/*
 * A reference to the module at path (borrowed; NULL means
 * BKV_HSM_DEFAULT_MODULE), loaded and initialised if needed. softhsm_conf
 * (borrowed, may be NULL) is put in the environment as SOFTHSM2_CONF before
 * the module is initialised; if the module is already initialised under a
 * different conf the call fails with BKV_ERR_INVALID. BKV_ERR_HSM_MODULE when
 * the file is missing, cannot be loaded, has no C_GetFunctionList, or
 * C_Initialize fails. err (capacity err_cap) gets the reason. Release with
 * bkv_hsm_module_put.
 */
int bkv_hsm_module_get(const char *path, const char *softhsm_conf, struct bkv_hsm_module **out,
                       char *err, size_t err_cap);

/* Drop a reference; the last one calls C_Finalize. NULL is fine. */
void bkv_hsm_module_put(struct bkv_hsm_module *m);

/*
 * The start-up recovery of crypto.md §8: C_Finalize then C_Initialize again.
 * Only allowed while the caller holds the only reference (other handles'
 * sessions would die): otherwise BKV_ERR_HSM_MODULE and nothing is done.
 */
int bkv_hsm_module_reinit(struct bkv_hsm_module *m, char *err, size_t err_cap);

#endif
