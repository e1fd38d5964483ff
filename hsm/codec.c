/*
 * Encoders and total decoders for the realm description and the enrolment
 * blob (formats in codec.h).
 *
 * Normal path: a cursor walks the input; every read first checks that the
 * bytes are there. Points are validated with proto/ (uncompressed keys with
 * bkv_hpke_enc_check, the compressed OPAQUE key with
 * bkv_p256_element_decode). Failure modes: see codec.h; a decoder writes its
 * output only when the whole input is valid.
 */
#include "codec.h"

#include <string.h>

#include <openssl/ec.h>

#include "proto/err.h"
#include "proto/group.h"
#include "proto/hpke.h"
#include "proto/util.h"
#include "seal.h"

static const uint8_t realm_magic[4] = {'B', 'K', 'V', 'R'};
static const uint8_t enrol_magic[4] = {'B', 'K', 'V', 'E'};

struct cursor {
    const uint8_t *p;
    size_t left;
};

static int take(struct cursor *c, void *out, size_t n)
{
    if (c->left < n)
        return BKV_ERR_LENGTH;
    memcpy(out, c->p, n);
    c->p += n;
    c->left -= n;
    return BKV_OK;
}

static int take_ref(struct cursor *c, const uint8_t **out, size_t n)
{
    if (c->left < n)
        return BKV_ERR_LENGTH;
    *out = c->p;
    c->p += n;
    c->left -= n;
    return BKV_OK;
}

static int take_u16(struct cursor *c, size_t *v)
{
    uint8_t b[2];
    int rc = take(c, b, 2);

    if (rc == BKV_OK)
        *v = bkv_get_u16(b);
    return rc;
}

static int check_uncompressed(const uint8_t pk[static 65])
{
    return bkv_hpke_enc_check(BKV_HPKE_KEM_P256_SHA256, pk, 65);
}

static int check_compressed(const uint8_t pk[static BKV_P256_ELEMENT_LEN])
{
    EC_POINT *pt = EC_POINT_new(bkv_p256_group());
    int rc;

    if (pt == NULL)
        return BKV_ERR_NOMEM;
    rc = bkv_p256_element_decode(pk, BKV_P256_ELEMENT_LEN, pt, NULL);
    EC_POINT_free(pt);
    return rc;
}

/* Magic and version; the first 5 bytes of both formats. */
static int take_header(struct cursor *c, const uint8_t magic[static 4], uint8_t version)
{
    uint8_t m[4], v;

    if (take(c, m, 4) != BKV_OK || take(c, &v, 1) != BKV_OK)
        return BKV_ERR_LENGTH;
    if (memcmp(m, magic, 4) != 0)
        return BKV_ERR_FORMAT;
    return v == version ? BKV_OK : BKV_ERR_UNSUPPORTED;
}

void bkv_hsm_realm_encode(const struct bkv_hsm_realm *r,
                          uint8_t out[static BKV_HSM_REALM_ENCODED_LEN])
{
    uint8_t *p = out;

    memcpy(p, realm_magic, 4);
    p[4] = BKV_HSM_REALM_VERSION;
    p += 5;
    memcpy(p, r->realm_id, sizeof(r->realm_id));
    p += sizeof(r->realm_id);
    memcpy(p, r->seal_key_id, sizeof(r->seal_key_id));
    p += sizeof(r->seal_key_id);
    memcpy(p, r->mac_key_id, sizeof(r->mac_key_id));
    p += sizeof(r->mac_key_id);
    memcpy(p, r->hpke_key_id, sizeof(r->hpke_key_id));
    p += sizeof(r->hpke_key_id);
    memcpy(p, r->hpke_pk, sizeof(r->hpke_pk));
    p += sizeof(r->hpke_pk);
    memcpy(p, r->opaque_pk, sizeof(r->opaque_pk));
    p += sizeof(r->opaque_pk);
    memcpy(p, r->mac_kcv, sizeof(r->mac_kcv));
    p += sizeof(r->mac_kcv);
    memcpy(p, r->seal_kcv, sizeof(r->seal_kcv));
}

int bkv_hsm_realm_decode(const uint8_t *in, size_t len, struct bkv_hsm_realm *out)
{
    struct cursor c = {in, len};
    struct bkv_hsm_realm r;
    int rc;

    if (len < 5)
        return BKV_ERR_LENGTH;
    rc = take_header(&c, realm_magic, BKV_HSM_REALM_VERSION);
    if (rc != BKV_OK)
        return rc;
    if (len != BKV_HSM_REALM_ENCODED_LEN)
        return BKV_ERR_LENGTH;
    take(&c, r.realm_id, sizeof(r.realm_id));
    take(&c, r.seal_key_id, sizeof(r.seal_key_id));
    take(&c, r.mac_key_id, sizeof(r.mac_key_id));
    take(&c, r.hpke_key_id, sizeof(r.hpke_key_id));
    take(&c, r.hpke_pk, sizeof(r.hpke_pk));
    take(&c, r.opaque_pk, sizeof(r.opaque_pk));
    take(&c, r.mac_kcv, sizeof(r.mac_kcv));
    take(&c, r.seal_kcv, sizeof(r.seal_kcv));
    /* The seal check value is a sealed blob (seal.h): version 1, our key id. */
    if (r.seal_kcv[0] != BKV_HSM_SEAL_VERSION ||
        memcmp(r.seal_kcv + 1, r.seal_key_id, BKV_HSM_KEY_ID_LEN) != 0)
        return BKV_ERR_FORMAT;
    rc = check_uncompressed(r.hpke_pk);
    if (rc == BKV_OK)
        rc = check_compressed(r.opaque_pk);
    if (rc != BKV_OK)
        return rc;
    *out = r;
    return BKV_OK;
}

size_t bkv_hsm_enrol_blob_len(const struct bkv_hsm_enrol_blob *b)
{
    size_t n = 4 + 1 + BKV_HSM_REALM_ID_LEN + 3 * 65 + 1 + 2 + BKV_HSM_ENROL_CHECK_LEN;

    for (int i = 0; i < BKV_HSM_ENROL_KEYS; i++) {
        if (b->keys[i].len == 0 || b->keys[i].len > BKV_HSM_WRAPPED_MAX)
            return 0;
        n += 1 + BKV_HSM_KEY_ID_LEN + 2 + b->keys[i].len;
    }
    if (b->secrets_len == 0 || b->secrets_len > BKV_HSM_ENROL_SECRETS_MAX)
        return 0;
    return n + b->secrets_len;
}

int bkv_hsm_enrol_blob_encode(const struct bkv_hsm_enrol_blob *b, uint8_t *out, size_t cap,
                              size_t *out_len)
{
    size_t n = bkv_hsm_enrol_blob_len(b);
    uint8_t *p = out;

    *out_len = 0;
    if (n == 0 || n > cap)
        return BKV_ERR_LENGTH;
    for (int i = 0; i < BKV_HSM_ENROL_KEYS; i++)
        if (b->keys[i].kind != i + 1)
            return BKV_ERR_FORMAT;
    memcpy(p, enrol_magic, 4);
    p[4] = BKV_HSM_ENROL_VERSION;
    p += 5;
    memcpy(p, b->realm_id, BKV_HSM_REALM_ID_LEN);
    p += BKV_HSM_REALM_ID_LEN;
    memcpy(p, b->ephemeral_pk, 65);
    memcpy(p + 65, b->transport_pk, 65);
    memcpy(p + 130, b->hpke_pk, 65);
    p += 195;
    *p++ = BKV_HSM_ENROL_KEYS;
    for (int i = 0; i < BKV_HSM_ENROL_KEYS; i++) {
        *p++ = b->keys[i].kind;
        memcpy(p, b->keys[i].id, BKV_HSM_KEY_ID_LEN);
        p += BKV_HSM_KEY_ID_LEN;
        bkv_put_u16(p, (uint16_t)b->keys[i].len);
        p += 2;
        memcpy(p, b->keys[i].data, b->keys[i].len);
        p += b->keys[i].len;
    }
    bkv_put_u16(p, (uint16_t)b->secrets_len);
    p += 2;
    memcpy(p, b->secrets, b->secrets_len);
    p += b->secrets_len;
    memcpy(p, b->check, BKV_HSM_ENROL_CHECK_LEN);
    *out_len = n;
    return BKV_OK;
}

int bkv_hsm_enrol_blob_decode(const uint8_t *in, size_t len, struct bkv_hsm_enrol_blob *out)
{
    struct cursor c = {in, len};
    struct bkv_hsm_enrol_blob b;
    uint8_t count;
    int rc;

    if (len > BKV_HSM_ENROL_MAX_LEN)
        return BKV_ERR_LENGTH;
    rc = take_header(&c, enrol_magic, BKV_HSM_ENROL_VERSION);
    if (rc != BKV_OK)
        return rc;
    if (take(&c, b.realm_id, sizeof(b.realm_id)) != BKV_OK ||
        take(&c, b.ephemeral_pk, 65) != BKV_OK || take(&c, b.transport_pk, 65) != BKV_OK ||
        take(&c, b.hpke_pk, 65) != BKV_OK || take(&c, &count, 1) != BKV_OK)
        return BKV_ERR_LENGTH;
    if (count != BKV_HSM_ENROL_KEYS)
        return BKV_ERR_FORMAT;
    for (int i = 0; i < BKV_HSM_ENROL_KEYS; i++) {
        struct bkv_hsm_wrapped *k = &b.keys[i];
        if (take(&c, &k->kind, 1) != BKV_OK || take(&c, k->id, BKV_HSM_KEY_ID_LEN) != BKV_OK ||
            take_u16(&c, &k->len) != BKV_OK)
            return BKV_ERR_LENGTH;
        if (k->kind != i + 1)
            return BKV_ERR_FORMAT;
        if (k->len == 0 || k->len > BKV_HSM_WRAPPED_MAX)
            return BKV_ERR_LENGTH;
        if (take_ref(&c, &k->data, k->len) != BKV_OK)
            return BKV_ERR_LENGTH;
    }
    if (take_u16(&c, &b.secrets_len) != BKV_OK)
        return BKV_ERR_LENGTH;
    if (b.secrets_len == 0 || b.secrets_len > BKV_HSM_ENROL_SECRETS_MAX ||
        take_ref(&c, &b.secrets, b.secrets_len) != BKV_OK ||
        take(&c, b.check, sizeof(b.check)) != BKV_OK || c.left != 0)
        return BKV_ERR_LENGTH;
    if ((rc = check_uncompressed(b.ephemeral_pk)) != BKV_OK ||
        (rc = check_uncompressed(b.transport_pk)) != BKV_OK ||
        (rc = check_uncompressed(b.hpke_pk)) != BKV_OK)
        return rc;
    *out = b;
    return BKV_OK;
}
