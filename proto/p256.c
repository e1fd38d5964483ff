/*
 * P-256 field arithmetic on fixed 4x64-bit limbs and affine point helpers,
 * constant time in every value. Montgomery multiplication is a generic CIOS
 * loop for the order n (used once per hash_to_scalar) and, modulo p, a
 * product-then-reduce form unrolled for p's shape, about three times faster.
 *
 * Normal path: bytes -> plain limbs -> Montgomery form -> masked add, sub,
 * mul and exponentiation by public constants -> plain limbs -> bytes. Nothing
 * branches on or indexes by a value: selections are masks (hidden from the
 * optimiser by barrier()), and a modular reduction always computes both
 * candidates. Exponents are public: inversion and square root are fixed
 * addition chains, and bkv_fe_pow may branch on the bits of its exponent.
 * Failure modes: none for the arithmetic; the decoders give BKV_ERR_POINT for
 * malformed or off-curve points. Temporaries derived from inputs are wiped
 * where the callers' values are secret (inversion, point addition).
 */
#include "p256.h"

#include <string.h>

#include "err.h"
#include "util.h"

__extension__ typedef unsigned __int128 u128;

struct bkv_fe_modulus {
    bkv_fe m;
    uint64_t m0inv; /* -m^-1 mod 2^64 */
    bkv_fe rr;      /* R^2 mod m */
};

const struct bkv_fe_modulus bkv_fe_mod_p = {
    .m = {{0xffffffffffffffff, 0x00000000ffffffff, 0x0000000000000000, 0xffffffff00000001}},
    .m0inv = 0x1,
    .rr = {{0x0000000000000003, 0xfffffffbffffffff, 0xfffffffffffffffe, 0x00000004fffffffd}},
};

const struct bkv_fe_modulus bkv_fe_mod_n = {
    .m = {{0xf3b9cac2fc632551, 0xbce6faada7179e84, 0xffffffffffffffff, 0xffffffff00000000}},
    .m0inv = 0xccd1c8aaee00bc4f,
    .rr = {{0x83244c95be79eea2, 0x4699799c49bd6fa6, 0x2845b2392b6bec59, 0x66e12d94f3d95620}},
};

/* Curve constants (plain, not Montgomery, form). */
static const bkv_fe curve_b = {
    {0x3bce3c3e27d2604b, 0x651d06b0cc53b0f6, 0xb3ebbd55769886bc, 0x5ac635d8aa3a93e7}};
static const bkv_fe small_one = {{1, 0, 0, 0}};
static const bkv_fe small_three = {{3, 0, 0, 0}};

/* Hide a mask from the optimiser so that selections stay branch-free. */
static uint64_t barrier(uint64_t x)
{
    __asm__("" : "+r"(x));
    return x;
}

void bkv_fe_from_bytes(bkv_fe *r, const uint8_t in[static BKV_FE_LEN])
{
    for (int i = 0; i < 4; i++) {
        uint64_t w = 0;
        for (int j = 0; j < 8; j++)
            w = w << 8 | in[(3 - i) * 8 + j];
        r->v[i] = w;
    }
}

void bkv_fe_to_bytes(uint8_t out[static BKV_FE_LEN], const bkv_fe *a)
{
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 8; j++)
            out[(3 - i) * 8 + j] = (uint8_t)(a->v[i] >> (56 - 8 * j));
}

/* r = a - b over 256 bits; returns the borrow (0 or 1). */
static uint64_t sub_raw(bkv_fe *r, const bkv_fe *a, const bkv_fe *b)
{
    uint64_t borrow = 0;

    for (int i = 0; i < 4; i++) {
        u128 d = (u128)a->v[i] - b->v[i] - borrow;
        r->v[i] = (uint64_t)d;
        borrow = (uint64_t)(d >> 64) & 1;
    }
    return borrow;
}

void bkv_fe_cmov(bkv_fe *r, const bkv_fe *a, uint64_t mask)
{
    mask = barrier(mask);
    for (int i = 0; i < 4; i++)
        r->v[i] = (r->v[i] & ~mask) | (a->v[i] & mask);
}

uint64_t bkv_fe_zero_mask(const bkv_fe *a)
{
    uint64_t x = a->v[0] | a->v[1] | a->v[2] | a->v[3];
    return ((x | (0 - x)) >> 63) - 1;
}

uint64_t bkv_fe_eq_mask(const bkv_fe *a, const bkv_fe *b)
{
    bkv_fe d;

    for (int i = 0; i < 4; i++)
        d.v[i] = a->v[i] ^ b->v[i];
    return bkv_fe_zero_mask(&d);
}

uint64_t bkv_fe_below_p_mask(const bkv_fe *a)
{
    bkv_fe d;

    return 0 - sub_raw(&d, a, &bkv_fe_mod_p.m);
}

/* r = (a + carry * 2^256) mod m for a value below 2m. r may alias a. */
static void mod_reduce_once(bkv_fe *r, const bkv_fe *a, uint64_t carry,
                            const struct bkv_fe_modulus *m)
{
    bkv_fe s;
    uint64_t borrow = sub_raw(&s, a, &m->m);
    uint64_t keep = 0 - (borrow & (carry ^ 1));

    bkv_fe_cmov(&s, a, keep);
    *r = s;
}

static void mod_add(bkv_fe *r, const bkv_fe *a, const bkv_fe *b, const struct bkv_fe_modulus *m)
{
    bkv_fe s;
    uint64_t carry = 0;

    for (int i = 0; i < 4; i++) {
        u128 t = (u128)a->v[i] + b->v[i] + carry;
        s.v[i] = (uint64_t)t;
        carry = (uint64_t)(t >> 64);
    }
    mod_reduce_once(r, &s, carry, m);
}

/*
 * Montgomery multiplication (CIOS): r = a * b / 2^256 mod m, for a, b < m.
 * The result is canonical. r may alias a or b.
 */
static void mont_mul(bkv_fe *r, const bkv_fe *a, const bkv_fe *b, const struct bkv_fe_modulus *m)
{
    uint64_t t[6] = {0};

    for (int i = 0; i < 4; i++) {
        uint64_t carry = 0, q;
        u128 acc;

        for (int j = 0; j < 4; j++) {
            acc = (u128)a->v[j] * b->v[i] + t[j] + carry;
            t[j] = (uint64_t)acc;
            carry = (uint64_t)(acc >> 64);
        }
        acc = (u128)t[4] + carry;
        t[4] = (uint64_t)acc;
        t[5] = (uint64_t)(acc >> 64);

        q = t[0] * m->m0inv;
        acc = (u128)q * m->m.v[0] + t[0];
        carry = (uint64_t)(acc >> 64);
        for (int j = 1; j < 4; j++) {
            acc = (u128)q * m->m.v[j] + t[j] + carry;
            t[j - 1] = (uint64_t)acc;
            carry = (uint64_t)(acc >> 64);
        }
        acc = (u128)t[4] + carry;
        t[3] = (uint64_t)acc;
        t[4] = t[5] + (uint64_t)(acc >> 64);
    }
    mod_reduce_once(r, &(bkv_fe){{t[0], t[1], t[2], t[3]}}, t[4], m);
}

/* *lo = a * b + c + d, returning the high word; this never overflows 128 bits. */
static inline uint64_t mac(uint64_t *lo, uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    u128 t = (u128)a * b + c + d;

    *lo = (uint64_t)t;
    return (uint64_t)(t >> 64);
}

/* *lo = a + b + c, returning the carry (a, b full words; c small). */
static inline uint64_t adc(uint64_t *lo, uint64_t a, uint64_t b, uint64_t c)
{
    u128 t = (u128)a + b + c;

    *lo = (uint64_t)t;
    return (uint64_t)(t >> 64);
}

/*
 * One Montgomery reduction step modulo p at limb i of t. p = 2^256 - 2^224 +
 * 2^192 + 2^96 - 1 has limbs (2^64 - 1, 2^32 - 1, 0, 2^64 - 2^32 + 1) and
 * -p^-1 = 1 mod 2^64, so q = t[i], and q * p + t clears limb i with a carry
 * of q: limb i+1 gains q * (2^32 - 1) + q = q * 2^32, limb i+2 nothing, limb
 * i+3 q * p[3]. One multiplication instead of four. *hc carries into limb i+4
 * from one step to the next.
 */
#define REDUCE_STEP(t, i, hc)                                                                      \
    do {                                                                                           \
        uint64_t q_ = (t)[i], c_;                                                                  \
        c_ = adc(&(t)[(i) + 1], (t)[(i) + 1], q_ << 32, 0) + (q_ >> 32);                           \
        c_ = adc(&(t)[(i) + 2], (t)[(i) + 2], c_, 0);                                              \
        c_ = mac(&(t)[(i) + 3], q_, 0xffffffff00000001, (t)[(i) + 3], c_);                         \
        (hc) = adc(&(t)[(i) + 4], (t)[(i) + 4], c_, (hc));                                         \
    } while (0)

/* *lo = a - b - c, returning the borrow (0 or 1). */
static inline uint64_t sbb(uint64_t *lo, uint64_t a, uint64_t b, uint64_t c)
{
    u128 t = (u128)a - b - c;

    *lo = (uint64_t)t;
    return (uint64_t)(t >> 64) & 1;
}

/*
 * r = t / 2^256 mod p for a double-width t < p * 2^256 (a product of two
 * values below p): four steps leave u = t[4..7] + hc * 2^256 < 2p, then p is
 * subtracted unless that borrows without a carry to absorb it (u < p); both
 * candidates are computed and the choice is a mask. The result is canonical.
 * Always inlined: with t in registers instead of memory, a product costs
 * about a third of what it does through a call.
 */
__attribute__((always_inline)) static inline void mont_reduce_p(bkv_fe *r, uint64_t t[8])
{
    uint64_t hc = 0, s[4], b, keep;

    REDUCE_STEP(t, 0, hc);
    REDUCE_STEP(t, 1, hc);
    REDUCE_STEP(t, 2, hc);
    REDUCE_STEP(t, 3, hc);
    b = sbb(&s[0], t[4], 0xffffffffffffffff, 0);
    b = sbb(&s[1], t[5], 0x00000000ffffffff, b);
    b = sbb(&s[2], t[6], 0, b);
    b = sbb(&s[3], t[7], 0xffffffff00000001, b);
    keep = barrier(0 - (b & (hc ^ 1)));
    /* Four statements, not a loop: GCC would vectorise a loop through memory. */
    r->v[0] = (t[4] & keep) | (s[0] & ~keep);
    r->v[1] = (t[5] & keep) | (s[1] & ~keep);
    r->v[2] = (t[6] & keep) | (s[2] & ~keep);
    r->v[3] = (t[7] & keep) | (s[3] & ~keep);
}

/* Row i > 0 of the schoolbook product: t[i..i+4] += x * y[i] (t[i+4] was still free). */
#define MUL_ROW(t, x, y, i)                                                                        \
    do {                                                                                           \
        uint64_t c_ = mac(&(t)[i], (x)[0], (y)[i], (t)[i], 0);                                     \
        c_ = mac(&(t)[(i) + 1], (x)[1], (y)[i], (t)[(i) + 1], c_);                                 \
        c_ = mac(&(t)[(i) + 2], (x)[2], (y)[i], (t)[(i) + 2], c_);                                 \
        (t)[(i) + 4] = mac(&(t)[(i) + 3], (x)[3], (y)[i], (t)[(i) + 3], c_);                       \
    } while (0)

/* r = a * b / 2^256 mod p: the schoolbook product, then the reduction. */
static void mont_mul_p(bkv_fe *r, const bkv_fe *a, const bkv_fe *b)
{
    const uint64_t *x = a->v, *y = b->v;
    uint64_t t[8], c;

    /* Unrolled by hand, so that t stays in registers. */
    c = mac(&t[0], x[0], y[0], 0, 0);
    c = mac(&t[1], x[1], y[0], 0, c);
    c = mac(&t[2], x[2], y[0], 0, c);
    t[4] = mac(&t[3], x[3], y[0], 0, c);
    MUL_ROW(t, x, y, 1);
    MUL_ROW(t, x, y, 2);
    MUL_ROW(t, x, y, 3);
    mont_reduce_p(r, t);
}

/* r = a^2 / 2^256 mod p: the six cross products once, doubled, plus the squares. */
static void mont_sqr_p(bkv_fe *r, const bkv_fe *a)
{
    const uint64_t *x = a->v;
    uint64_t t[8], c;

    c = mac(&t[1], x[0], x[1], 0, 0);
    c = mac(&t[2], x[0], x[2], 0, c);
    t[4] = mac(&t[3], x[0], x[3], 0, c);
    c = mac(&t[3], x[1], x[2], t[3], 0);
    t[5] = mac(&t[4], x[1], x[3], t[4], c);
    t[6] = mac(&t[5], x[2], x[3], t[5], 0);
    t[7] = t[6] >> 63;
    t[6] = t[6] << 1 | t[5] >> 63;
    t[5] = t[5] << 1 | t[4] >> 63;
    t[4] = t[4] << 1 | t[3] >> 63;
    t[3] = t[3] << 1 | t[2] >> 63;
    t[2] = t[2] << 1 | t[1] >> 63;
    t[1] <<= 1;
    c = mac(&t[0], x[0], x[0], 0, 0);
    c = adc(&t[1], t[1], c, 0);
    c = mac(&t[2], x[1], x[1], t[2], c);
    c = adc(&t[3], t[3], c, 0);
    c = mac(&t[4], x[2], x[2], t[4], c);
    c = adc(&t[5], t[5], c, 0);
    c = mac(&t[6], x[3], x[3], t[6], c);
    t[7] += c;
    mont_reduce_p(r, t);
}

/*
 * With in = hi * 2^256 + lo (hi < 2^128): hi * 2^256 mod m is one Montgomery
 * product with R^2, and lo < 2^256 < 2m needs one conditional subtraction.
 */
void bkv_fe_reduce_wide(bkv_fe *r, const uint8_t in[static 48], const struct bkv_fe_modulus *m)
{
    uint8_t hi_bytes[32] = {0};
    bkv_fe hi, lo;

    memcpy(hi_bytes + 16, in, 16);
    bkv_fe_from_bytes(&hi, hi_bytes);
    bkv_fe_from_bytes(&lo, in + 16);
    mont_mul(&hi, &hi, &m->rr, m);
    mod_reduce_once(&lo, &lo, 0, m);
    mod_add(r, &hi, &lo, m);
    bkv_wipe(hi_bytes, sizeof(hi_bytes));
    bkv_wipe(&hi, sizeof(hi));
    bkv_wipe(&lo, sizeof(lo));
}

void bkv_fe_to_mont(bkv_fe *r, const bkv_fe *a)
{
    mont_mul_p(r, a, &bkv_fe_mod_p.rr);
}

void bkv_fe_from_mont(bkv_fe *r, const bkv_fe *a)
{
    mont_mul_p(r, a, &small_one);
}

void bkv_fe_add(bkv_fe *r, const bkv_fe *a, const bkv_fe *b)
{
    mod_add(r, a, b, &bkv_fe_mod_p);
}

void bkv_fe_sub(bkv_fe *r, const bkv_fe *a, const bkv_fe *b)
{
    bkv_fe d;
    uint64_t mask = 0 - sub_raw(&d, a, b), carry = 0;

    /* Add p back under the borrow mask. */
    mask = barrier(mask);
    for (int i = 0; i < 4; i++) {
        u128 t = (u128)d.v[i] + (bkv_fe_mod_p.m.v[i] & mask) + carry;
        d.v[i] = (uint64_t)t;
        carry = (uint64_t)(t >> 64);
    }
    *r = d;
}

void bkv_fe_neg(bkv_fe *r, const bkv_fe *a)
{
    static const bkv_fe zero;

    bkv_fe_sub(r, &zero, a);
}

void bkv_fe_mul(bkv_fe *r, const bkv_fe *a, const bkv_fe *b)
{
    mont_mul_p(r, a, b);
}

void bkv_fe_sqr(bkv_fe *r, const bkv_fe *a)
{
    mont_sqr_p(r, a);
}

void bkv_fe_pow(bkv_fe *r, const bkv_fe *a, const bkv_fe *e)
{
    bkv_fe acc;

    bkv_fe_to_mont(&acc, &small_one);
    for (int i = 255; i >= 0; i--) {
        bkv_fe_sqr(&acc, &acc);
        if ((e->v[i / 64] >> (i % 64)) & 1) /* public exponent bit */
            bkv_fe_mul(&acc, &acc, a);
    }
    *r = acc;
    bkv_wipe(&acc, sizeof(acc)); /* may hold a power of a password-derived value */
}

/* *r = (*r)^(2^n) * m: n squarings, then one multiplication (m NULL: none). */
static void sqr_n_mul(bkv_fe *r, int n, const bkv_fe *m)
{
    for (int i = 0; i < n; i++)
        bkv_fe_sqr(r, r);
    if (m != NULL)
        bkv_fe_mul(r, r, m);
}

/*
 * x30 = a^(2^30 - 1) and x32 = a^(2^32 - 1), where both addition chains
 * below start (31 squarings, 7 multiplications). xk = a^(2^k - 1), and
 * x(j+k) = xj^(2^k) * xk.
 */
static void pow_ones(bkv_fe *x30, bkv_fe *x32, const bkv_fe *a)
{
    struct {
        bkv_fe x2, x3, x6, x12, x15;
    } t;

    t.x2 = *a;
    sqr_n_mul(&t.x2, 1, a);
    t.x3 = t.x2;
    sqr_n_mul(&t.x3, 1, a);
    t.x6 = t.x3;
    sqr_n_mul(&t.x6, 3, &t.x3);
    t.x12 = t.x6;
    sqr_n_mul(&t.x12, 6, &t.x6);
    t.x15 = t.x12;
    sqr_n_mul(&t.x15, 3, &t.x3);
    *x30 = t.x15;
    sqr_n_mul(x30, 15, &t.x15);
    *x32 = *x30;
    sqr_n_mul(x32, 2, &t.x2);
    bkv_wipe(&t, sizeof(t));
}

/*
 * An addition chain for p - 2, whose 32-bit words from the top are
 * ffffffff 00000001 0 0 0 ffffffff ffffffff fffffffd: 255 squarings and 12
 * multiplications instead of the 256 and 128 of bkv_fe_pow. Same fixed
 * sequence of operations for every a.
 */
void bkv_fe_inv(bkv_fe *r, const bkv_fe *a)
{
    bkv_fe x30, x32, t;

    pow_ones(&x30, &x32, a);
    t = x32;
    sqr_n_mul(&t, 32, a);
    sqr_n_mul(&t, 128, &x32);
    sqr_n_mul(&t, 32, &x32);
    sqr_n_mul(&t, 30, &x30);
    sqr_n_mul(&t, 2, a);
    *r = t;
    bkv_wipe(&x30, sizeof(x30));
    bkv_wipe(&x32, sizeof(x32));
    bkv_wipe(&t, sizeof(t));
}

/*
 * r = a^((p+1)/4), a square root of a when a has one (p = 3 mod 4). With
 * (p+1)/4 = 2^254 - 2^222 + 2^190 + 2^94 = ((2^32 - 1) 2^32 + 1) 2^190 + 2^94:
 * 253 squarings and 9 multiplications.
 */
static void sqrt_candidate(bkv_fe *r, const bkv_fe *a)
{
    bkv_fe x30, t;

    pow_ones(&x30, &t, a);
    sqr_n_mul(&t, 32, a);
    sqr_n_mul(&t, 96, a);
    sqr_n_mul(&t, 94, NULL);
    *r = t;
}

uint64_t bkv_fe_sgn0(const bkv_fe *a)
{
    bkv_fe t;

    uint64_t sign;

    bkv_fe_from_mont(&t, a);
    sign = t.v[0] & 1;
    bkv_wipe(&t, sizeof(t));
    return sign;
}

/* ---- the curve ---- */

void bkv_p256_curve_init(struct bkv_p256_curve *c)
{
    bkv_fe t;

    bkv_fe_to_mont(&c->one, &small_one);
    bkv_fe_to_mont(&t, &small_three);
    bkv_fe_neg(&c->a, &t);
    bkv_fe_to_mont(&c->b, &curve_b);
}

/* x^3 + a x + b, in Montgomery form. */
static void curve_rhs(bkv_fe *r, const bkv_fe *x, const struct bkv_p256_curve *c)
{
    bkv_fe t;

    bkv_fe_sqr(&t, x);
    bkv_fe_add(&t, &t, &c->a);
    bkv_fe_mul(&t, &t, x);
    bkv_fe_add(r, &t, &c->b);
}

uint64_t bkv_p256_affine_on_curve(const bkv_fe *x, const bkv_fe *y)
{
    struct bkv_p256_curve c;
    bkv_fe lhs, rhs;

    bkv_p256_curve_init(&c);
    bkv_fe_sqr(&lhs, y);
    curve_rhs(&rhs, x, &c);
    return bkv_fe_eq_mask(&lhs, &rhs);
}

/*
 * The chord slope and the tangent slope (for equal points) are both computed
 * and selected with a mask; one inversion (an addition chain). The sum is the
 * identity when x1 = x2 and y1 != y2. P-256 has prime order, so no point has
 * y = 0 and the tangent is defined.
 */
uint64_t bkv_p256_affine_add(bkv_fe *x3, bkv_fe *y3, const bkv_fe *x1, const bkv_fe *y1,
                             const bkv_fe *x2, const bkv_fe *y2)
{
    static const bkv_fe zero;
    struct bkv_p256_curve c;
    struct {
        bkv_fe num, den, dnum, dden, lambda, rx, ry;
    } t;
    uint64_t same_x = bkv_fe_eq_mask(x1, x2), same_y = bkv_fe_eq_mask(y1, y2), identity;

    bkv_p256_curve_init(&c);
    bkv_fe_sub(&t.num, y2, y1);
    bkv_fe_sub(&t.den, x2, x1);
    bkv_fe_sqr(&t.dnum, x1);
    bkv_fe_add(&t.dden, &t.dnum, &t.dnum);
    bkv_fe_add(&t.dnum, &t.dden, &t.dnum);
    bkv_fe_add(&t.dnum, &t.dnum, &c.a);
    bkv_fe_add(&t.dden, y1, y1);
    bkv_fe_cmov(&t.num, &t.dnum, same_x);
    bkv_fe_cmov(&t.den, &t.dden, same_x);
    bkv_fe_inv(&t.den, &t.den);
    bkv_fe_mul(&t.lambda, &t.num, &t.den);
    bkv_fe_sqr(&t.rx, &t.lambda);
    bkv_fe_sub(&t.rx, &t.rx, x1);
    bkv_fe_sub(&t.rx, &t.rx, x2);
    bkv_fe_sub(&t.ry, x1, &t.rx);
    bkv_fe_mul(&t.ry, &t.ry, &t.lambda);
    bkv_fe_sub(&t.ry, &t.ry, y1);
    identity = same_x & ~same_y;
    bkv_fe_cmov(&t.rx, &zero, identity);
    bkv_fe_cmov(&t.ry, &zero, identity);
    *x3 = t.rx;
    *y3 = t.ry;
    bkv_wipe(&t, sizeof(t));
    return identity;
}

void bkv_p256_affine_encode(uint8_t out[static 65], const bkv_fe *x, const bkv_fe *y)
{
    bkv_fe t;

    out[0] = 0x04;
    bkv_fe_from_mont(&t, x);
    bkv_fe_to_bytes(out + 1, &t);
    bkv_fe_from_mont(&t, y);
    bkv_fe_to_bytes(out + 33, &t);
    bkv_wipe(&t, sizeof(t));
}

int bkv_p256_affine_decode(bkv_fe *x, bkv_fe *y, const uint8_t in[static 65])
{
    bkv_fe px, py;
    uint64_t ok;

    bkv_fe_from_bytes(&px, in + 1);
    bkv_fe_from_bytes(&py, in + 33);
    ok = bkv_fe_below_p_mask(&px) & bkv_fe_below_p_mask(&py);
    bkv_fe_to_mont(x, &px);
    bkv_fe_to_mont(y, &py);
    ok &= bkv_p256_affine_on_curve(x, y);
    return (in[0] == 0x04 && ok != 0) ? BKV_OK : BKV_ERR_POINT;
}

/*
 * y = rhs^((p+1)/4) is a square root of rhs = x^3 - 3x + b if rhs has one;
 * y^2 == rhs tells. The root of the requested parity is y or p - y; y = 0
 * has no odd twin (P-256 has no such point, checked all the same).
 */
int bkv_p256_decompress(const uint8_t in[static 33], uint8_t out[static 65])
{
    struct bkv_p256_curve c;
    bkv_fe x, y, rhs, t;
    uint64_t odd = in[0] & 1;

    if (in[0] != 0x02 && in[0] != 0x03)
        return BKV_ERR_POINT;
    bkv_fe_from_bytes(&x, in + 1);
    if (bkv_fe_below_p_mask(&x) == 0)
        return BKV_ERR_POINT;
    bkv_p256_curve_init(&c);
    bkv_fe_to_mont(&x, &x);
    curve_rhs(&rhs, &x, &c);
    sqrt_candidate(&y, &rhs);
    bkv_fe_sqr(&t, &y);
    if (bkv_fe_eq_mask(&t, &rhs) == 0)
        return BKV_ERR_POINT;
    if (bkv_fe_sgn0(&y) != odd)
        bkv_fe_neg(&y, &y);
    if (bkv_fe_sgn0(&y) != odd)
        return BKV_ERR_POINT;
    bkv_p256_affine_encode(out, &x, &y);
    return BKV_OK;
}
