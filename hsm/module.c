/*
 * The process-wide registry of loaded PKCS#11 modules.
 *
 * Normal path: look the path up; on a miss stat the file (for a clear
 * "no such file" message), dlopen it, get its function list, set
 * SOFTHSM2_CONF if asked, and C_Initialize with CKF_OS_LOCKING_OK so the
 * module may be used from several threads. The last put finalises.
 * Failure modes: a missing or unloadable file, a missing entry point or a
 * failed C_Initialize give BKV_ERR_HSM_MODULE; a conflicting SoftHSM conf
 * BKV_ERR_INVALID; memory BKV_ERR_NOMEM. A module that someone else in the
 * process already initialised (CKR_CRYPTOKI_ALREADY_INITIALIZED) is used but
 * never finalised by us. Loaded modules are never dlclose'd: the entry (a
 * few bytes) stays for the life of the process and is reinitialised when a
 * handle needs it again.
 */
#include "module.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckr.h"
#include "proto/err.h"

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static struct bkv_hsm_module *registry;

static int initialize(struct bkv_hsm_module *m, char *err, size_t err_cap)
{
    CK_C_INITIALIZE_ARGS args;
    CK_RV rv;

    memset(&args, 0, sizeof(args));
    args.flags = CKF_OS_LOCKING_OK;
    rv = m->f->C_Initialize(&args);
    if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        m->owns_init = 0;
        return BKV_OK;
    }
    if (rv != CKR_OK) {
        snprintf(err, err_cap, "module %s: C_Initialize: %s", m->path, bkv_hsm_ckr_name(rv));
        return BKV_ERR_HSM_MODULE;
    }
    m->owns_init = 1;
    return BKV_OK;
}

static int same_conf(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Load path and get its function list; the entry is kept for the process. */
static int module_load(const char *path, struct bkv_hsm_module **out, char *err, size_t err_cap)
{
    struct bkv_hsm_module *m;
    CK_C_GetFunctionList get_list;
    struct stat st;
    CK_RV rv;
    int rc;

    if (stat(path, &st) != 0) {
        snprintf(err, err_cap, "PKCS#11 module %s: %s", path, strerror(errno));
        return BKV_ERR_HSM_MODULE;
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL || (m->path = strdup(path)) == NULL) {
        free(m);
        return BKV_ERR_NOMEM;
    }
    pthread_mutex_init(&m->create, NULL);
    m->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (m->dl == NULL) {
        snprintf(err, err_cap, "cannot load PKCS#11 module %s: %s", path, dlerror());
        rc = BKV_ERR_HSM_MODULE;
        goto fail;
    }
    *(void **)&get_list = dlsym(m->dl, "C_GetFunctionList");
    if (get_list == NULL) {
        snprintf(err, err_cap, "%s is not a PKCS#11 module (no C_GetFunctionList)", path);
        rc = BKV_ERR_HSM_MODULE;
        goto fail;
    }
    rv = get_list(&m->f);
    if (rv != CKR_OK || m->f == NULL) {
        snprintf(err, err_cap, "module %s: C_GetFunctionList: %s", path, bkv_hsm_ckr_name(rv));
        rc = BKV_ERR_HSM_MODULE;
        goto fail;
    }
    *out = m;
    return BKV_OK;
fail:
    if (m->dl != NULL)
        dlclose(m->dl);
    pthread_mutex_destroy(&m->create);
    free(m->path);
    free(m);
    return rc;
}

/* First reference: set SOFTHSM2_CONF if asked, remember it, C_Initialize. */
static int module_start(struct bkv_hsm_module *m, const char *softhsm_conf, char *err,
                        size_t err_cap)
{
    const char *conf;

    /* Per process: SoftHSM2 reads it in C_Initialize and never again. */
    if (softhsm_conf != NULL && setenv("SOFTHSM2_CONF", softhsm_conf, 1) != 0)
        return BKV_ERR_NOMEM;
    free(m->conf);
    m->conf = NULL;
    conf = getenv("SOFTHSM2_CONF");
    if (conf != NULL && (m->conf = strdup(conf)) == NULL)
        return BKV_ERR_NOMEM;
    return initialize(m, err, err_cap);
}

int bkv_hsm_module_get(const char *path, const char *softhsm_conf, struct bkv_hsm_module **out,
                       char *err, size_t err_cap)
{
    struct bkv_hsm_module *m;
    int rc = BKV_OK;

    *out = NULL;
    if (path == NULL)
        path = BKV_HSM_DEFAULT_MODULE;
    pthread_mutex_lock(&registry_mu);
    for (m = registry; m != NULL; m = m->next)
        if (strcmp(m->path, path) == 0)
            break;
    if (m == NULL) {
        /* Entries stay loaded for the life of the process: unloading and
         * reloading a module that links OpenSSL is asking for trouble. */
        rc = module_load(path, &m, err, err_cap);
        if (rc != BKV_OK)
            goto out;
        m->next = registry;
        registry = m;
    }
    if (m->refs > 0) {
        if (softhsm_conf != NULL && !same_conf(softhsm_conf, m->conf)) {
            snprintf(err, err_cap,
                     "module %s is already initialised in this process with SOFTHSM2_CONF=%s; "
                     "the SoftHSM2 configuration is per process",
                     path, m->conf != NULL ? m->conf : "(unset)");
            rc = BKV_ERR_INVALID;
            goto out;
        }
    } else {
        rc = module_start(m, softhsm_conf, err, err_cap);
        if (rc != BKV_OK)
            goto out;
    }
    m->refs++;
    *out = m;
out:
    pthread_mutex_unlock(&registry_mu);
    return rc;
}

void bkv_hsm_module_put(struct bkv_hsm_module *m)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(&registry_mu);
    if (--m->refs == 0 && m->owns_init) {
        m->f->C_Finalize(NULL);
        m->owns_init = 0;
    }
    pthread_mutex_unlock(&registry_mu);
}

int bkv_hsm_module_reinit(struct bkv_hsm_module *m, char *err, size_t err_cap)
{
    int rc;

    pthread_mutex_lock(&registry_mu);
    if (m->refs != 1 || !m->owns_init) {
        snprintf(err, err_cap, "module %s is shared in this process and cannot be restarted",
                 m->path);
        rc = BKV_ERR_HSM_MODULE;
        goto out;
    }
    m->f->C_Finalize(NULL);
    m->owns_init = 0;
    rc = initialize(m, err, err_cap);
out:
    pthread_mutex_unlock(&registry_mu);
    return rc;
}
