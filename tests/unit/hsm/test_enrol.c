/*
 * hsm/enrol (and approve.c, codec.c): enrolling node-2's token into node-1's
 * realm without a realm key leaving an HSM in the clear. Shows that after
 * enrolment node-2 unseals what node-1 sealed and computes the same account
 * MAC and HPKE result; that the transport key is a session object that
 * another process with node-2's user PIN can neither see nor derive with
 * (the attack of /tmp/poc/poc1.c, run from a second process, with a
 * positive control on an old-style token transport key), and that dies
 * with its handle, making its blob useless; that the blob is useless to
 * node-3 (its own transport key), also with the transport key field
 * rewritten; that a blob altered in any region, or one that does not match
 * the pinned realm description in every field, is refused and leaves node-2
 * unenrolled with nothing left behind; that an unapproved fingerprint, a
 * wrong SO PIN or a PIN file others may read obtain nothing; and that the
 * unwrapped keys are as protected as the originals.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "harness.h"
#include "hsm/codec.h"
#include "hsm/decap.h"
#include "hsm/enrol.h"
#include "hsm/internal.h"
#include "hsm/mac.h"
#include "hsm/secrets.h"
#include "hsm/seal.h"
#include "proto/err.h"
#include "proto/hpke.h"

static struct fx fx;
static struct bkv_hsm *h1, *h2, *h3, *h4;
static struct bkv_hsm_realm r1;
static uint8_t *secrets1;
static size_t secrets1_len;
static struct bkv_hsm_transport t2, t3;
static uint8_t *blob;
static size_t blob_len;

static int suite_init(void)
{
    if (fx_setup(&fx) != 0 || fx_token(&fx, "node-1") != 0 || fx_token(&fx, "node-2") != 0 ||
        fx_token(&fx, "node-3") != 0 || fx_token(&fx, "node-4") != 0 ||
        fx_open(&fx, "node-1", &h1) != 0 || fx_open(&fx, "node-2", &h2) != 0 ||
        fx_open(&fx, "node-3", &h3) != 0 || fx_open(&fx, "node-4", &h4) != 0)
        return 1;
    return bkv_hsm_realm_create(h1, &r1, &secrets1, &secrets1_len) != 0;
}

static int suite_cleanup(void)
{
    bkv_hsm_close(h1);
    bkv_hsm_close(h2);
    bkv_hsm_close(h3);
    bkv_hsm_close(h4);
    free(secrets1);
    free(blob);
    fx_teardown(&fx);
    return 0;
}

/* Enrolment wrapping keys present in h's token. */
static int wrap_keys_left(struct bkv_hsm *h)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_ATTRIBUTE t[2] = {{CKA_CLASS, &cls, sizeof(cls)},
                         {CKA_ID, HSM_ID_WRAPKEY, sizeof(HSM_ID_WRAPKEY) - 1}};
    CK_OBJECT_HANDLE o;
    CK_ULONG count = 0;
    CK_SESSION_HANDLE s;

    hsm_begin(h, &s);
    hsm_find(h, s, t, 2, &o, &count);
    hsm_end(h, s);
    return (int)count;
}

/* Transport keys of h stored in the token itself (must be none). */
static int transport_token_objects(struct bkv_hsm *h)
{
    CK_OBJECT_CLASS cls[2] = {CKO_PRIVATE_KEY, CKO_PUBLIC_KEY};
    CK_BBOOL yes = CK_TRUE;
    CK_OBJECT_HANDLE o;
    CK_ULONG count = 0, total = 0;
    CK_SESSION_HANDLE s;

    hsm_begin(h, &s);
    for (int i = 0; i < 2; i++) {
        CK_ATTRIBUTE t[3] = {{CKA_CLASS, &cls[i], sizeof(cls[i])},
                             {CKA_TOKEN, &yes, sizeof(yes)},
                             {CKA_LABEL, "bkv-transport", 13}};
        hsm_find(h, s, t, 3, &o, &count);
        total += count;
    }
    hsm_end(h, s);
    return (int)total;
}

/* An old-style transport key pair as a TOKEN object in h's token (the flaw of finding 1). */
static int legacy_transport(struct bkv_hsm *h)
{
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE pub_t[] = {{CKA_EC_PARAMS, (void *)hsm_p256_oid, sizeof(hsm_p256_oid)},
                            {CKA_TOKEN, &yes, 1},
                            {CKA_PRIVATE, &no, 1},
                            {CKA_LABEL, "bkv-transport", 13}};
    CK_ATTRIBUTE priv_t[] = {{CKA_TOKEN, &yes, 1},     {CKA_PRIVATE, &yes, 1},
                             {CKA_SENSITIVE, &yes, 1}, {CKA_EXTRACTABLE, &no, 1},
                             {CKA_DERIVE, &yes, 1},    {CKA_LABEL, "bkv-transport", 13}};
    CK_MECHANISM mech = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_OBJECT_HANDLE pub, priv;
    CK_SESSION_HANDLE s;
    CK_RV rv;

    hsm_begin(h, &s);
    rv = h->f->C_GenerateKeyPair(s, &mech, pub_t, 4, priv_t, 6, &pub, &priv);
    hsm_end(h, s);
    return rv == CKR_OK ? 0 : -1;
}

/* 1 if h's token holds no realm object at all (and says so). */
static int unenrolled(struct bkv_hsm *h)
{
    struct bkv_hsm_realm r;

    return bkv_hsm_realm_get(h, &r) == BKV_ERR_HSM_NOT_ENROLLED &&
           fx_count_label(h, CKO_DATA, "bkv-realm") == 0 &&
           fx_count_label(h, CKO_SECRET_KEY, "bkv-realm-seal") == 0 &&
           fx_count_label(h, CKO_SECRET_KEY, "bkv-realm-mac") == 0 &&
           fx_count_label(h, CKO_PRIVATE_KEY, "bkv-realm-hpke") == 0 &&
           fx_count_label(h, CKO_PUBLIC_KEY, "bkv-realm-hpke") == 0;
}

/* node-1 still does its job after an approval attempt. */
static int node1_works(void)
{
    uint8_t pt[16] = "still working", b[64], out[64];
    size_t bl, ol;

    return bkv_hsm_seal(h1, NULL, 0, pt, 16, b, sizeof(b), &bl) == 0 &&
           bkv_hsm_unseal(h1, NULL, 0, b, bl, out, sizeof(out), &ol) == 0 && ol == 16;
}

static void test_fingerprints(void)
{
    uint8_t fp[32], back[32];
    char text[BKV_HSM_FINGERPRINT_TEXT], colons[200];

    CU_ASSERT_EQUAL_FATAL(bkv_hsm_enrol_request(h2, &t2), 0);
    CU_ASSERT_EQUAL_FATAL(bkv_hsm_enrol_request(h3, &t3), 0);
    printf("\n    node-2 transport key fingerprint: %s", t2.text);
    bkv_hsm_fingerprint(t2.pk, fp);
    CU_ASSERT_EQUAL(memcmp(fp, t2.fingerprint, 32), 0);
    CU_ASSERT_EQUAL(strlen(t2.text), 79);
    CU_ASSERT_EQUAL(t2.text[4], ' ');
    CU_ASSERT_EQUAL(bkv_hsm_fingerprint_parse(t2.text, back), 0);
    CU_ASSERT_EQUAL(memcmp(back, fp, 32), 0);
    bkv_hsm_fingerprint_format(fp, text);
    for (size_t i = 0, n = 0; i <= strlen(text); i++)
        colons[n++] = text[i] == ' ' ? ':' : text[i];
    CU_ASSERT_EQUAL(bkv_hsm_fingerprint_parse(colons, back), 0);
    CU_ASSERT_EQUAL(bkv_hsm_fingerprint_parse("abcd", back), BKV_ERR_FORMAT);
    colons[0] = 'g';
    CU_ASSERT_EQUAL(bkv_hsm_fingerprint_parse(colons, back), BKV_ERR_FORMAT);
    /* A second request returns the same key. */
    {
        struct bkv_hsm_transport again;
        CU_ASSERT_EQUAL(bkv_hsm_enrol_request(h2, &again), 0);
        CU_ASSERT_EQUAL(memcmp(again.pk, t2.pk, 65), 0);
    }
    /* The transport key pair are session objects of this handle: nothing in the token. */
    CU_ASSERT_EQUAL(fx_count_label(h2, CKO_PRIVATE_KEY, "bkv-transport"), 1);
    CU_ASSERT_EQUAL(transport_token_objects(h2), 0);
    {
        CK_BBOOL v[4] = {9, 9, 9, 9};
        CK_ATTRIBUTE q[4] = {{CKA_TOKEN, &v[0], 1},
                             {CKA_SENSITIVE, &v[1], 1},
                             {CKA_EXTRACTABLE, &v[2], 1},
                             {CKA_MODIFIABLE, &v[3], 1}};
        CK_SESSION_HANDLE s;
        hsm_begin(h2, &s);
        CU_ASSERT_EQUAL(h2->f->C_GetAttributeValue(s, h2->transport_priv, q, 4), CKR_OK);
        hsm_end(h2, s);
        CU_ASSERT(v[0] == CK_FALSE && v[1] == CK_TRUE && v[2] == CK_FALSE && v[3] == CK_FALSE);
    }
    /* A member of a realm makes no transport key. */
    {
        struct bkv_hsm_transport t;
        CU_ASSERT_EQUAL(bkv_hsm_enrol_request(h1, &t), BKV_ERR_INVALID);
    }
}

static void test_not_approved(void)
{
    uint8_t *b = NULL;
    size_t bl = 0;
    char path[600];

    /* node-3's fingerprint for node-2's key: refused before anything is derived. */
    CU_ASSERT_EQUAL(bkv_hsm_enrol_approve(h1, fx.so_pin, t2.pk, t3.fingerprint, secrets1,
                                          secrets1_len, &b, &bl),
                    BKV_ERR_HSM_NOT_APPROVED);
    printf("\n    %s", bkv_hsm_errmsg(h1));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(bkv_hsm_errmsg(h1), "\"node-1\": the transport key's fingerprint is"));
    CU_ASSERT_PTR_NULL(b);
    /* A wrong SO PIN: nothing made, node-1 logged in again as user. */
    snprintf(path, sizeof(path), "%s/wrong-so.pin", fx.dir);
    fx_write_file(path, "not-the-so-pin", 0600);
    CU_ASSERT_EQUAL(
        bkv_hsm_enrol_approve(h1, path, t2.pk, t2.fingerprint, secrets1, secrets1_len, &b, &bl),
        BKV_ERR_HSM_PIN);
    printf("\n    %s", bkv_hsm_errmsg(h1));
    CU_ASSERT(node1_works());
    /* An SO PIN file others may read. */
    fx_write_file(path, FX_SO_PIN, 0644);
    CU_ASSERT_EQUAL(
        bkv_hsm_enrol_approve(h1, path, t2.pk, t2.fingerprint, secrets1, secrets1_len, &b, &bl),
        BKV_ERR_PERMISSION);
    /* An invalid transport key. */
    {
        uint8_t bad[65];
        memcpy(bad, t2.pk, 65);
        bad[64] ^= 1;
        CU_ASSERT_EQUAL(bkv_hsm_enrol_approve(h1, fx.so_pin, bad, t2.fingerprint, secrets1,
                                              secrets1_len, &b, &bl),
                        BKV_ERR_POINT);
    }
    /* Secrets that do not belong to the realm. */
    {
        uint8_t bad[256];
        memcpy(bad, secrets1, secrets1_len);
        bad[40] ^= 1;
        CU_ASSERT_EQUAL(
            bkv_hsm_enrol_approve(h1, fx.so_pin, t2.pk, t2.fingerprint, bad, secrets1_len, &b, &bl),
            BKV_ERR_DECRYPT);
    }
    CU_ASSERT_PTR_NULL(b);
    CU_ASSERT_EQUAL(wrap_keys_left(h1), 0);
    CU_ASSERT(node1_works());
    /* A fresh token cannot approve anything. */
    CU_ASSERT_EQUAL(bkv_hsm_enrol_approve(h3, fx.so_pin, t2.pk, t2.fingerprint, secrets1,
                                          secrets1_len, &b, &bl),
                    BKV_ERR_HSM_NOT_ENROLLED);
}

static void test_approve(void)
{
    struct bkv_hsm_enrol_blob b;

    CU_ASSERT_EQUAL_FATAL(bkv_hsm_enrol_approve(h1, fx.so_pin, t2.pk, t2.fingerprint, secrets1,
                                                secrets1_len, &blob, &blob_len),
                          0);
    printf("\n    enrolment blob: %zu bytes", blob_len);
    CU_ASSERT_EQUAL(wrap_keys_left(h1), 0); /* the trusted wrapping key is gone */
    CU_ASSERT(node1_works());
    CU_ASSERT_EQUAL_FATAL(bkv_hsm_enrol_blob_decode(blob, blob_len, &b), 0);
    CU_ASSERT_EQUAL(memcmp(b.realm_id, r1.realm_id, 16), 0);
    CU_ASSERT_EQUAL(memcmp(b.transport_pk, t2.pk, 65), 0);
    CU_ASSERT_EQUAL(memcmp(b.hpke_pk, r1.hpke_pk, 65), 0);
    CU_ASSERT_EQUAL(memcmp(b.keys[0].id, r1.seal_key_id, 8), 0);
    CU_ASSERT_EQUAL(memcmp(b.keys[1].id, r1.mac_key_id, 8), 0);
    CU_ASSERT_EQUAL(memcmp(b.keys[2].id, r1.hpke_key_id, 8), 0);
    CU_ASSERT_EQUAL(b.keys[0].len, 40); /* RFC 5649 of 32 bytes */
    CU_ASSERT_EQUAL(b.keys[1].len, 40);
    CU_ASSERT_EQUAL(b.secrets_len, secrets1_len);
    /* Every truncation and a trailing byte are refused by the parser. */
    {
        int ok = 1;
        uint8_t *longer = malloc(blob_len + 1);
        for (size_t n = 0; n < blob_len; n++)
            ok &= bkv_hsm_enrol_blob_decode(blob, n, &b) != 0;
        CU_ASSERT(ok);
        memcpy(longer, blob, blob_len);
        longer[blob_len] = 0;
        CU_ASSERT_EQUAL(bkv_hsm_enrol_blob_decode(longer, blob_len + 1, &b), BKV_ERR_LENGTH);
        free(longer);
    }
}

static void test_useless_to_node3(void)
{
    struct bkv_hsm_realm r;
    uint8_t *s = NULL, *copy = malloc(blob_len);
    size_t sl = 0;

    CU_ASSERT_EQUAL(bkv_hsm_enrol_accept(h3, &r1, blob, blob_len, &r, &s, &sl),
                    BKV_ERR_HSM_NOT_APPROVED);
    printf("\n    %s", bkv_hsm_errmsg(h3));
    CU_ASSERT(unenrolled(h3));
    /* With the transport key field rewritten to node-3's, the keys do not unwrap. */
    memcpy(copy, blob, blob_len);
    memcpy(copy + 5 + 16 + 65, t3.pk, 65);
    CU_ASSERT_EQUAL(bkv_hsm_enrol_accept(h3, &r1, copy, blob_len, &r, &s, &sl), BKV_ERR_DECRYPT);
    printf("\n    %s", bkv_hsm_errmsg(h3));
    CU_ASSERT(unenrolled(h3));
    CU_ASSERT_PTR_NULL(s);
    free(copy);
}

/*
 * Finding 1: the transport key cannot be used from outside this handle. The
 * attack of /tmp/poc/poc1.c (derive ECDH(transport_sk, ephemeral_pk) into an
 * extractable AES key, then unwrap the realm keys from the public blob) run
 * by another process holding node-2's user PIN; first, as a control, against
 * an old-style transport key stored in node-3's token, where it works.
 */
static void test_transport_other_process(void)
{
    struct bkv_hsm_enrol_blob b;
    struct bkv_hsm *again = NULL;
    int found = -1, rc;

    CU_ASSERT_EQUAL_FATAL(bkv_hsm_enrol_blob_decode(blob, blob_len, &b), 0);
    /* Control: a derivable token object is exactly what the attack needs. */
    CU_ASSERT_EQUAL_FATAL(legacy_transport(h3), 0);
    rc = fx_attack_transport(&fx, "node-3", b.ephemeral_pk, &found);
    printf("\n    control, old-style token transport key on node-3 -> exit %d", rc);
    CU_ASSERT_EQUAL(rc, 1);
    CU_ASSERT_EQUAL(found, 1);
    /* Now: node-2's transport key is a session object of h2, invisible to the attacker. */
    rc = fx_attack_transport(&fx, "node-2", b.ephemeral_pk, &found);
    printf("\n    node-2 (session transport key, blob approved) -> exit %d", rc);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(found, 0);
    /* A second handle on node-2 in this process is refused by the token lock. */
    CU_ASSERT_EQUAL(bkv_hsm_open(&(struct bkv_hsm_config){.token_label = "node-2",
                                                          .pin_file = fx.user_pin,
                                                          .softhsm_conf = fx.conf},
                                 &again, NULL, 0),
                    BKV_ERR_HSM_LOCKED);
    CU_ASSERT_PTR_NULL(again);
    /* Closing and opening node-3 again sweeps the old-style key away. */
    CU_ASSERT_EQUAL(transport_token_objects(h3), 2);
    {
        struct bkv_hsm_transport t;
        bkv_hsm_close(h3);
        h3 = NULL;
        CU_ASSERT_EQUAL_FATAL(fx_open(&fx, "node-3", &h3), 0);
        CU_ASSERT_EQUAL(transport_token_objects(h3), 0);
        /* node-3 lost its session transport key with the handle: a new one. */
        CU_ASSERT_EQUAL_FATAL(bkv_hsm_enrol_request(h3, &t), 0);
        CU_ASSERT(memcmp(t.pk, t3.pk, 65) != 0);
        t3 = t;
    }
}

/* The transport key dies with its handle, and a blob made for it is useless. */
static void test_transport_dies_with_handle(void)
{
    struct bkv_hsm_transport t4, t4b;
    struct bkv_hsm_realm r;
    uint8_t *b = NULL, *s = NULL;
    size_t bl = 0, sl = 0;

    CU_ASSERT_EQUAL_FATAL(bkv_hsm_enrol_request(h4, &t4), 0);
    CU_ASSERT_EQUAL_FATAL(bkv_hsm_enrol_approve(h1, fx.so_pin, t4.pk, t4.fingerprint, secrets1,
                                                secrets1_len, &b, &bl),
                          0);
    bkv_hsm_close(h4); /* the process ends, say */
    h4 = NULL;
    CU_ASSERT_EQUAL_FATAL(fx_open(&fx, "node-4", &h4), 0);
    CU_ASSERT_EQUAL(fx_count_label(h4, CKO_PRIVATE_KEY, "bkv-transport"), 0);
    CU_ASSERT_EQUAL(bkv_hsm_enrol_accept(h4, &r1, b, bl, &r, &s, &sl), BKV_ERR_INVALID);
    printf("\n    %s", bkv_hsm_errmsg(h4));
    CU_ASSERT_PTR_NOT_NULL(strstr(bkv_hsm_errmsg(h4), "same process that made the request"));
    CU_ASSERT_EQUAL_FATAL(bkv_hsm_enrol_request(h4, &t4b), 0);
    CU_ASSERT(memcmp(t4.pk, t4b.pk, 65) != 0);
    CU_ASSERT_EQUAL(bkv_hsm_enrol_accept(h4, &r1, b, bl, &r, &s, &sl), BKV_ERR_HSM_NOT_APPROVED);
    printf("\n    %s", bkv_hsm_errmsg(h4));
    CU_ASSERT(unenrolled(h4));
    CU_ASSERT_PTR_NULL(s);
    free(b);
}

/* Finding 11: accept checks every field of the pinned description before it commits. */
static void test_pinned_mismatch(void)
{
    static const struct {
        const char *what;
        size_t off;
        int want;
    } cases[] = {
        {"realm id", offsetof(struct bkv_hsm_realm, realm_id), BKV_ERR_HSM_NOT_APPROVED},
        {"seal key id", offsetof(struct bkv_hsm_realm, seal_key_id), BKV_ERR_HSM_NOT_APPROVED},
        {"MAC key id", offsetof(struct bkv_hsm_realm, mac_key_id), BKV_ERR_HSM_NOT_APPROVED},
        {"HPKE key id", offsetof(struct bkv_hsm_realm, hpke_key_id), BKV_ERR_HSM_NOT_APPROVED},
        {"HPKE public key", offsetof(struct bkv_hsm_realm, hpke_pk) + 9, BKV_ERR_HSM_NOT_APPROVED},
        {"OPAQUE public key", offsetof(struct bkv_hsm_realm, opaque_pk) + 9, BKV_ERR_MAC},
        {"MAC check value", offsetof(struct bkv_hsm_realm, mac_kcv) + 3, BKV_ERR_MAC},
        {"seal check value", offsetof(struct bkv_hsm_realm, seal_kcv) + 30, BKV_ERR_MAC},
    };
    int right = 0, clean = 0;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct bkv_hsm_realm bad = r1, got;
        uint8_t *s = NULL;
        size_t sl = 0;
        int rc;

        ((uint8_t *)&bad)[cases[i].off] ^= 1;
        rc = bkv_hsm_enrol_accept(h2, &bad, blob, blob_len, &got, &s, &sl);
        printf("\n    pinned %-18s -> %s", cases[i].what, bkv_hsm_errmsg(h2));
        right += rc == cases[i].want;
        clean += unenrolled(h2);
        free(s);
    }
    CU_ASSERT_EQUAL(right, (int)(sizeof(cases) / sizeof(cases[0])));
    CU_ASSERT_EQUAL(clean, (int)(sizeof(cases) / sizeof(cases[0])));
}

struct region {
    const char *name;
    size_t off, len;
};

static void test_tampered(void)
{
    struct bkv_hsm_enrol_blob b;
    struct region regions[24];
    size_t n = 0, k0;
    uint8_t *copy = malloc(blob_len);
    int refused = 0, clean = 0, tried = 0;

    CU_ASSERT_EQUAL_FATAL(bkv_hsm_enrol_blob_decode(blob, blob_len, &b), 0);
    regions[n++] = (struct region){"magic", 0, 4};
    regions[n++] = (struct region){"version", 4, 1};
    regions[n++] = (struct region){"realm id", 5, 16};
    regions[n++] = (struct region){"ephemeral key", 21, 65};
    regions[n++] = (struct region){"transport key", 86, 65};
    regions[n++] = (struct region){"HPKE public key", 151, 65};
    regions[n++] = (struct region){"key count", 216, 1};
    for (int i = 0; i < 3; i++) {
        static const char *kind[3] = {"seal", "MAC", "HPKE"};
        static char names[3][4][32];
        k0 = (size_t)(b.keys[i].data - blob) - 11;
        snprintf(names[i][0], 32, "%s kind", kind[i]);
        snprintf(names[i][1], 32, "%s key id", kind[i]);
        snprintf(names[i][2], 32, "%s wrapped length", kind[i]);
        snprintf(names[i][3], 32, "%s wrapped key", kind[i]);
        regions[n++] = (struct region){names[i][0], k0, 1};
        regions[n++] = (struct region){names[i][1], k0 + 1, 8};
        regions[n++] = (struct region){names[i][2], k0 + 9, 2};
        regions[n++] = (struct region){names[i][3], k0 + 11, b.keys[i].len};
    }
    regions[n++] = (struct region){"secrets length", (size_t)(b.secrets - blob) - 2, 2};
    regions[n++] = (struct region){"sealed secrets", (size_t)(b.secrets - blob), b.secrets_len};
    regions[n++] = (struct region){"check value", blob_len - 32, 32};

    for (size_t r = 0; r < n; r++) {
        /* First byte and middle byte of each region. */
        size_t at[2] = {regions[r].off, regions[r].off + regions[r].len / 2};
        for (int j = 0; j < (regions[r].len > 1 ? 2 : 1); j++) {
            struct bkv_hsm_realm got;
            uint8_t *s = NULL;
            size_t sl = 0;
            int rc;

            memcpy(copy, blob, blob_len);
            copy[at[j]] ^= 0x01;
            rc = bkv_hsm_enrol_accept(h2, &r1, copy, blob_len, &got, &s, &sl);
            tried++;
            refused += rc != 0;
            if (j == 0)
                printf("\n    %-22s -> %s", regions[r].name, bkv_hsm_errmsg(h2));
            clean += unenrolled(h2);
            free(s);
        }
    }
    /* Valid but wrong points, and swapped wrapped keys. */
    {
        struct bkv_hsm_realm got;
        uint8_t *s = NULL;
        size_t sl = 0;
        memcpy(copy, blob, blob_len);
        memcpy(copy + 21, t3.pk, 65); /* another ephemeral key */
        tried++;
        refused += bkv_hsm_enrol_accept(h2, &r1, copy, blob_len, &got, &s, &sl) == BKV_ERR_DECRYPT;
        printf("\n    %-22s -> %s", "other ephemeral key", bkv_hsm_errmsg(h2));
        clean += unenrolled(h2);
        memcpy(copy, blob, blob_len);
        memcpy(copy + 151, t3.pk, 65); /* another realm public key: not the pinned one */
        tried++;
        refused += bkv_hsm_enrol_accept(h2, &r1, copy, blob_len, &got, &s, &sl) ==
                   BKV_ERR_HSM_NOT_APPROVED;
        printf("\n    %-22s -> %s", "other HPKE public key", bkv_hsm_errmsg(h2));
        clean += unenrolled(h2);
        /* The seal and MAC entries (same size) swapped, kinds kept in order. */
        memcpy(copy, blob, blob_len);
        k0 = (size_t)(b.keys[0].data - blob);
        memcpy(copy + k0, b.keys[1].data, 40);
        memcpy(copy + (size_t)(b.keys[1].data - blob), b.keys[0].data, 40);
        tried++;
        refused += bkv_hsm_enrol_accept(h2, &r1, copy, blob_len, &got, &s, &sl) != 0;
        printf("\n    %-22s -> %s", "seal/MAC swapped", bkv_hsm_errmsg(h2));
        clean += unenrolled(h2);
        CU_ASSERT_PTR_NULL(s);
    }
    printf("\n    %d altered blobs: %d refused, node-2 left unenrolled and clean after %d", tried,
           refused, clean);
    CU_ASSERT_EQUAL(refused, tried);
    CU_ASSERT_EQUAL(clean, tried);
    CU_ASSERT_EQUAL(fx_count_label(h2, CKO_PRIVATE_KEY, "bkv-transport"), 1);
    free(copy);
}

static void test_accept(void)
{
    struct bkv_hsm_realm r2, again;
    uint8_t *secrets2 = NULL, *s = NULL;
    size_t secrets2_len = 0, sl = 0;
    static const uint8_t aad[] = "REGISTER|alice|v1", account[] = "alice";
    uint8_t rec[200] = "the OPAQUE record of alice", sealed[300], out[300];
    uint8_t m1[32], m2[32], ss[32], enc[65], dh1[32], dh2[32];
    size_t sealed_len, out_len, enc_len;
    struct bkv_opaque_server_keys *k1 = NULL, *k2 = NULL;

    CU_ASSERT_EQUAL_FATAL(
        bkv_hsm_enrol_accept(h2, &r1, blob, blob_len, &r2, &secrets2, &secrets2_len), 0);
    CU_ASSERT_EQUAL(memcmp(&r2, &r1, sizeof(r1)), 0);
    CU_ASSERT_EQUAL(secrets2_len, secrets1_len);
    CU_ASSERT_EQUAL(memcmp(secrets2, secrets1, secrets1_len), 0);
    /* node-2 unseals what node-1 sealed, and the other way round. */
    CU_ASSERT_EQUAL(
        bkv_hsm_seal(h1, aad, sizeof(aad), rec, sizeof(rec), sealed, sizeof(sealed), &sealed_len),
        0);
    CU_ASSERT_EQUAL(
        bkv_hsm_unseal(h2, aad, sizeof(aad), sealed, sealed_len, out, sizeof(out), &out_len), 0);
    CU_ASSERT_EQUAL(memcmp(out, rec, sizeof(rec)), 0);
    CU_ASSERT_EQUAL(
        bkv_hsm_seal(h2, aad, sizeof(aad), rec, sizeof(rec), sealed, sizeof(sealed), &sealed_len),
        0);
    CU_ASSERT_EQUAL(
        bkv_hsm_unseal(h1, aad, sizeof(aad), sealed, sealed_len, out, sizeof(out), &out_len), 0);
    /* Same account MAC, same HPKE result, same OPAQUE secrets. */
    CU_ASSERT_EQUAL(bkv_hsm_account_mac(h1, account, sizeof(account), m1), 0);
    CU_ASSERT_EQUAL(bkv_hsm_account_mac(h2, account, sizeof(account), m2), 0);
    CU_ASSERT_EQUAL(memcmp(m1, m2, 32), 0);
    CU_ASSERT_EQUAL(
        bkv_hpke_kem_encap(BKV_HPKE_KEM_P256_SHA256, r1.hpke_pk, 65, NULL, ss, enc, &enc_len), 0);
    CU_ASSERT_EQUAL(bkv_hsm_hpke_dh(h1, enc, enc_len, dh1), 0);
    CU_ASSERT_EQUAL(bkv_hsm_hpke_dh(h2, enc, enc_len, dh2), 0);
    CU_ASSERT_EQUAL(memcmp(dh1, dh2, 32), 0);
    CU_ASSERT_EQUAL(bkv_hsm_opaque_load(h1, secrets1, secrets1_len, &k1), 0);
    CU_ASSERT_EQUAL(bkv_hsm_opaque_load(h2, secrets2, secrets2_len, &k2), 0);
    CU_ASSERT(k1 != NULL && k2 != NULL && memcmp(k1, k2, sizeof(*k1)) == 0);
    bkv_hsm_opaque_free(k1);
    bkv_hsm_opaque_free(k2);
    /* The transport key has served; a second enrolment is refused. */
    CU_ASSERT_EQUAL(fx_count_label(h2, CKO_PRIVATE_KEY, "bkv-transport"), 0);
    CU_ASSERT_EQUAL(fx_count_label(h2, CKO_PUBLIC_KEY, "bkv-transport"), 0);
    CU_ASSERT_EQUAL(bkv_hsm_enrol_accept(h2, &r1, blob, blob_len, &again, &s, &sl),
                    BKV_ERR_INVALID);
    /* Nothing of the unwrapped keys can be changed. */
    {
        CK_BBOOL v[3] = {9, 9, 9};
        CK_SESSION_HANDLE ss;
        CK_OBJECT_HANDLE k[3] = {h2->seal_key, h2->mac_key, h2->hpke_key};
        int fixed = 0;
        hsm_begin(h2, &ss);
        for (int i = 0; i < 3; i++) {
            CK_ATTRIBUTE q = {CKA_MODIFIABLE, &v[i], 1};
            fixed += h2->f->C_GetAttributeValue(ss, k[i], &q, 1) == CKR_OK && v[i] == CK_FALSE;
        }
        hsm_end(h2, ss);
        CU_ASSERT_EQUAL(fixed, 3);
    }
    /* The keys survive a reopen. */
    bkv_hsm_close(h2);
    h2 = NULL;
    {
        struct bkv_hsm_config cfg = fx_config(&fx, "node-2");
        char err[512];
        cfg.require_realm = 1;
        cfg.realm = &r1;
        CU_ASSERT_EQUAL_FATAL(bkv_hsm_open(&cfg, &h2, err, sizeof(err)), 0);
        CU_ASSERT_EQUAL(bkv_hsm_account_mac(h2, account, sizeof(account), m2), 0);
        CU_ASSERT_EQUAL(memcmp(m1, m2, 32), 0);
    }
    free(secrets2);
}

static void test_unwrapped_keys_protected(void)
{
    int tried = 0, succeeded = fx_attack_keys(h2, &r1, &tried);

    printf("\n    %d extraction and substitution attempts on node-2's unwrapped keys, %d "
           "succeeded",
           tried, succeeded);
    CU_ASSERT_EQUAL(succeeded, 0);
    CU_ASSERT(tried >= 60);
}

static void test_chain(void)
{
    /* node-2, now a member, enrols node-3 in turn. */
    struct bkv_hsm_realm r3;
    uint8_t *b = NULL, *s = NULL;
    size_t bl = 0, sl = 0;
    uint8_t m1[32], m3[32];

    CU_ASSERT_EQUAL_FATAL(bkv_hsm_enrol_approve(h2, fx.so_pin, t3.pk, t3.fingerprint, secrets1,
                                                secrets1_len, &b, &bl),
                          0);
    CU_ASSERT_EQUAL_FATAL(bkv_hsm_enrol_accept(h3, &r1, b, bl, &r3, &s, &sl), 0);
    CU_ASSERT_EQUAL(memcmp(&r3, &r1, sizeof(r1)), 0);
    CU_ASSERT_EQUAL(bkv_hsm_account_mac(h1, (const uint8_t *)"bob", 3, m1), 0);
    CU_ASSERT_EQUAL(bkv_hsm_account_mac(h3, (const uint8_t *)"bob", 3, m3), 0);
    CU_ASSERT_EQUAL(memcmp(m1, m3, 32), 0);
    CU_ASSERT_EQUAL(wrap_keys_left(h2), 0);
    free(b);
    free(s);
}

static CU_TestInfo tests[] = {
    {"transport keys and fingerprints", test_fingerprints},
    {"unapproved key, wrong SO PIN, bad inputs obtain nothing", test_not_approved},
    {"approve node-2's key", test_approve},
    {"another process cannot use the transport key", test_transport_other_process},
    {"the transport key dies with its handle", test_transport_dies_with_handle},
    {"the blob is useless to node-3", test_useless_to_node3},
    {"an altered blob is refused and leaves node-2 unenrolled", test_tampered},
    {"a blob that does not match the pinned realm is refused", test_pinned_mismatch},
    {"node-2 enrolled: same seal, MAC, HPKE, secrets", test_accept},
    {"node-2's unwrapped keys cannot be extracted", test_unwrapped_keys_protected},
    {"node-2 enrols node-3", test_chain},
    CU_TEST_INFO_NULL,
};

int main(int argc, char **argv)
{
    int child = fx_child_main(argc, argv);

    if (child >= 0)
        return child;
    return bkv_test_main("hsm_enrol", tests, suite_init, suite_cleanup);
}
