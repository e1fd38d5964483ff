/*
 * CUnit runner for one suite per executable. Failures are reported by CUnit's
 * basic interface and returned as a non-zero exit status for CTest. Also the
 * vector-file loaders and the reference ECDH the suites share.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "proto/util.h"

int bkv_test_main(const char *suite, CU_TestInfo *tests, CU_InitializeFunc init,
                  CU_CleanupFunc cleanup)
{
    CU_SuiteInfo suites[] = {
        {(char *)suite, init, cleanup, NULL, NULL, tests},
        CU_SUITE_INFO_NULL,
    };
    unsigned failed, run;

    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    if (CU_register_suites(suites) != CUE_SUCCESS) {
        fprintf(stderr, "%s: cannot register suite: %s\n", suite, CU_get_error_msg());
        CU_cleanup_registry();
        return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failed = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
    run = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    if (run == 0) {
        fprintf(stderr, "%s: no test ran\n", suite);
        return 1;
    }
    return failed == 0 ? 0 : 1;
}

json_t *bkv_test_vectors(const char *file)
{
    char path[4096];
    json_error_t err;
    json_t *root;

    snprintf(path, sizeof(path), "%s/%s", BKV_VECTOR_DIR, file);
    root = json_load_file(path, 0, &err);
    if (root == NULL) {
        fprintf(stderr, "cannot load %s: %s (line %d)\n", path, err.text, err.line);
        exit(2);
    }
    return root;
}

size_t bkv_test_hex(const json_t *obj, const char *key, uint8_t *out, size_t cap)
{
    const char *hex = json_string_value(json_object_get(obj, key));
    size_t len = 0;

    CU_ASSERT_PTR_NOT_NULL(hex);
    if (hex == NULL)
        return 0;
    CU_ASSERT_EQUAL(bkv_hex_decode(hex, out, cap, &len), 0);
    return len;
}

uint8_t *bkv_test_hex_alloc(const char *hex, size_t *len)
{
    size_t cap = strlen(hex) / 2 + 1;
    uint8_t *buf = malloc(cap);

    if (buf == NULL || bkv_hex_decode(hex, buf, cap, len) != 0) {
        free(buf);
        *len = 0;
        return NULL;
    }
    return buf;
}

void bkv_test_vectors_report(const char *what, int passed, int total, int expected)
{
    printf("\nVECTORS %s: %d/%d passed\n", what, passed, total);
    fflush(stdout);
    CU_ASSERT_EQUAL(total, expected);
    CU_ASSERT_EQUAL(passed, total);
}

int bkv_test_p256_ecdh_x(const uint8_t sk[32], const uint8_t peer[65], uint8_t dh[32])
{
    OSSL_PARAM_BLD *b1 = OSSL_PARAM_BLD_new(), *b2 = OSSL_PARAM_BLD_new();
    OSSL_PARAM *p1 = NULL, *p2 = NULL;
    EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL), *dc = NULL;
    EVP_PKEY *key = NULL, *pk = NULL;
    BIGNUM *priv = BN_bin2bn(sk, 32, NULL);
    size_t len = 32;
    int ok = 0;

    if (b1 == NULL || b2 == NULL || kc == NULL || priv == NULL)
        goto out;
    if (!OSSL_PARAM_BLD_push_utf8_string(b1, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0) ||
        !OSSL_PARAM_BLD_push_BN(b1, OSSL_PKEY_PARAM_PRIV_KEY, priv) ||
        !OSSL_PARAM_BLD_push_utf8_string(b2, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0) ||
        !OSSL_PARAM_BLD_push_octet_string(b2, OSSL_PKEY_PARAM_PUB_KEY, peer, 65))
        goto out;
    p1 = OSSL_PARAM_BLD_to_param(b1);
    p2 = OSSL_PARAM_BLD_to_param(b2);
    if (p1 == NULL || p2 == NULL || EVP_PKEY_fromdata_init(kc) != 1 ||
        EVP_PKEY_fromdata(kc, &key, EVP_PKEY_KEYPAIR, p1) != 1 ||
        EVP_PKEY_fromdata(kc, &pk, EVP_PKEY_PUBLIC_KEY, p2) != 1)
        goto out;
    dc = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    ok = dc != NULL && EVP_PKEY_derive_init(dc) == 1 && EVP_PKEY_derive_set_peer(dc, pk) == 1 &&
         EVP_PKEY_derive(dc, dh, &len) == 1 && len == 32;
out:
    EVP_PKEY_CTX_free(dc);
    EVP_PKEY_free(pk);
    EVP_PKEY_free(key);
    EVP_PKEY_CTX_free(kc);
    OSSL_PARAM_free(p1);
    OSSL_PARAM_free(p2);
    OSSL_PARAM_BLD_free(b1);
    OSSL_PARAM_BLD_free(b2);
    BN_clear_free(priv);
    return ok;
}
