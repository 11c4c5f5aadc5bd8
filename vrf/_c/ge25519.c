/* edwards25519 group operations, fixed-base tables and scalar multiplication. */
#include "ge25519.h"

/* Encoding of the base point B (y = 4/5, x even), RFC 8032 5.1. */
static const uint8_t base_bytes[32] = {
    0x58, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
    0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66};

/* Fixed-base table for constant-time k*B: base_table[i][j] = (j + 1) * 256^i * B, so a scalar in
 * 64 signed radix-16 digits costs 64 mixed additions and 4 doublings. 32 x 8 x 120 bytes. */
#define BASE_ROWS 32
static ge_precomp base_table[BASE_ROWS][GE_CT_TABLE_LEN];

/* Variable-time tables for verification: odd multiples 1, 3, ..., 127 of B and of 2^128 B, used
 * with width-8 NAFs of the low and high 128 bits of a scalar (so s*B needs no doublings of its
 * own beyond the 128 shared with the 128-bit challenge). */
#define BASE_WNAF_WIDTH 8
#define BASE_ODD_LEN (1 << (BASE_WNAF_WIDTH - 2))
static ge_precomp base_odd[BASE_ODD_LEN];
static ge_precomp base128_odd[BASE_ODD_LEN];

/* Width for NAFs of variable points: 8 cached odd multiples (1P..15P). */
#define VAR_WNAF_WIDTH 5
#define VAR_ODD_LEN (1 << (VAR_WNAF_WIDTH - 2))

static int tables_ready = 0;

/* ---------------------------------------------------------------- conversions and formulas */

void ge_p3_0(ge_p3 *h)
{
    fe_0(&h->X);
    fe_1(&h->Y);
    fe_1(&h->Z);
    fe_0(&h->T);
}

void ge_p3_neg(ge_p3 *r, const ge_p3 *p)
{
    fe_neg(&r->X, &p->X);
    r->Y = p->Y;
    r->Z = p->Z;
    fe_neg(&r->T, &p->T);
}

static void ge_p3_to_p2(ge_p2 *r, const ge_p3 *p)
{
    r->X = p->X;
    r->Y = p->Y;
    r->Z = p->Z;
}

void ge_p3_to_cached(ge_cached *r, const ge_p3 *p)
{
    fe_add(&r->YplusX, &p->Y, &p->X);
    fe_carry(&r->YplusX);
    fe_sub(&r->YminusX, &p->Y, &p->X);
    r->Z = p->Z;
    fe_mul(&r->T2d, &p->T, &fe_d2);
}

static void ge_p1p1_to_p2(ge_p2 *r, const ge_p1p1 *p)
{
    fe_mul(&r->X, &p->X, &p->T);
    fe_mul(&r->Y, &p->Y, &p->Z);
    fe_mul(&r->Z, &p->Z, &p->T);
}

static void ge_p1p1_to_p3(ge_p3 *r, const ge_p1p1 *p)
{
    fe_mul(&r->X, &p->X, &p->T);
    fe_mul(&r->Y, &p->Y, &p->Z);
    fe_mul(&r->Z, &p->Z, &p->T);
    fe_mul(&r->T, &p->X, &p->Y);
}

/* Doubling (dbl-2008-hwcd with a = -1). Every output coordinate is negated, which leaves the
 * projective point unchanged and saves the negations:
 *   A = X^2, B = Y^2, C = 2 Z^2, E = (X+Y)^2 - A - B,
 *   p1p1 = (X: E, Z: B - A, Y: B + A, T: C - (B - A)). */
static void ge_p2_dbl(ge_p1p1 *r, const ge_p2 *p)
{
    fe t0;
    fe_sq(&r->X, &p->X);
    fe_sq(&r->Z, &p->Y);
    fe_sq2(&r->T, &p->Z);
    fe_add(&r->Y, &p->X, &p->Y);
    fe_sq(&t0, &r->Y);
    fe_add(&r->Y, &r->Z, &r->X);   /* B + A: < 2^53 - 76, fine as fe_sub's subtrahend */
    fe_sub(&r->Z, &r->Z, &r->X);   /* B - A */
    fe_sub(&r->X, &t0, &r->Y);     /* E */
    fe_sub(&r->T, &r->T, &r->Z);   /* C - (B - A) */
}

static void ge_p3_dbl_p1p1(ge_p1p1 *r, const ge_p3 *p)
{
    ge_p2 q;
    ge_p3_to_p2(&q, p);
    ge_p2_dbl(r, &q);
}

/* Addition (add-2008-hwcd-3, a = -1, k = 2d):
 *   A = (Y1-X1)(Y2-X2), B = (Y1+X1)(Y2+X2), C = T1 2d T2, D = 2 Z1 Z2,
 *   p1p1 = (X: B - A, Y: B + A, Z: D + C, T: D - C). */
static void ge_add(ge_p1p1 *r, const ge_p3 *p, const ge_cached *q)
{
    fe t0;
    fe_add(&r->X, &p->Y, &p->X);
    fe_sub(&r->Y, &p->Y, &p->X);
    fe_mul(&r->Z, &r->X, &q->YplusX);
    fe_mul(&r->Y, &r->Y, &q->YminusX);
    fe_mul(&r->T, &q->T2d, &p->T);
    fe_mul(&r->X, &p->Z, &q->Z);
    fe_add(&t0, &r->X, &r->X);
    fe_sub(&r->X, &r->Z, &r->Y);
    fe_add(&r->Y, &r->Z, &r->Y);
    fe_add(&r->Z, &t0, &r->T);
    fe_sub(&r->T, &t0, &r->T);
}

/* p - q: the same with q negated (swap Y+X and Y-X, negate 2dT). */
static void ge_sub(ge_p1p1 *r, const ge_p3 *p, const ge_cached *q)
{
    fe t0;
    fe_add(&r->X, &p->Y, &p->X);
    fe_sub(&r->Y, &p->Y, &p->X);
    fe_mul(&r->Z, &r->X, &q->YminusX);
    fe_mul(&r->Y, &r->Y, &q->YplusX);
    fe_mul(&r->T, &q->T2d, &p->T);
    fe_mul(&r->X, &p->Z, &q->Z);
    fe_add(&t0, &r->X, &r->X);
    fe_sub(&r->X, &r->Z, &r->Y);
    fe_add(&r->Y, &r->Z, &r->Y);
    fe_sub(&r->Z, &t0, &r->T);
    fe_add(&r->T, &t0, &r->T);
}

/* Mixed addition with an affine table point (Z2 = 1, so D = 2 Z1). */
static void ge_madd(ge_p1p1 *r, const ge_p3 *p, const ge_precomp *q)
{
    fe t0;
    fe_add(&r->X, &p->Y, &p->X);
    fe_sub(&r->Y, &p->Y, &p->X);
    fe_mul(&r->Z, &r->X, &q->yplusx);
    fe_mul(&r->Y, &r->Y, &q->yminusx);
    fe_mul(&r->T, &q->xy2d, &p->T);
    fe_add(&t0, &p->Z, &p->Z);
    fe_sub(&r->X, &r->Z, &r->Y);
    fe_add(&r->Y, &r->Z, &r->Y);
    fe_add(&r->Z, &t0, &r->T);
    fe_sub(&r->T, &t0, &r->T);
}

static void ge_msub(ge_p1p1 *r, const ge_p3 *p, const ge_precomp *q)
{
    fe t0;
    fe_add(&r->X, &p->Y, &p->X);
    fe_sub(&r->Y, &p->Y, &p->X);
    fe_mul(&r->Z, &r->X, &q->yminusx);
    fe_mul(&r->Y, &r->Y, &q->yplusx);
    fe_mul(&r->T, &q->xy2d, &p->T);
    fe_add(&t0, &p->Z, &p->Z);
    fe_sub(&r->X, &r->Z, &r->Y);
    fe_add(&r->Y, &r->Z, &r->Y);
    fe_sub(&r->Z, &t0, &r->T);
    fe_add(&r->T, &t0, &r->T);
}

void ge_p3_add(ge_p3 *r, const ge_p3 *p, const ge_p3 *q)
{
    ge_cached qc;
    ge_p1p1 t;
    ge_p3_to_cached(&qc, q);
    ge_add(&t, p, &qc);
    ge_p1p1_to_p3(r, &t);
}

void ge_p3_dbl(ge_p3 *r, const ge_p3 *p)
{
    ge_p1p1 t;
    ge_p3_dbl_p1p1(&t, p);
    ge_p1p1_to_p3(r, &t);
}

/* r = 2^n p, n >= 1, staying in p2 between doublings (3 multiplications each, 4 for the last). */
static void ge_p3_dbl_n(ge_p3 *r, const ge_p3 *p, int n)
{
    ge_p1p1 t;
    ge_p2 q;
    ge_p3_to_p2(&q, p);
    for (int i = 0; i < n - 1; i++) {
        ge_p2_dbl(&t, &q);
        ge_p1p1_to_p2(&q, &t);
    }
    ge_p2_dbl(&t, &q);
    ge_p1p1_to_p3(r, &t);
}

void ge_mul_by_cofactor(ge_p3 *r, const ge_p3 *p) { ge_p3_dbl_n(r, p, 3); }

int ge_is_identity_vartime(const ge_p3 *p)
{
    return fe_iszero(&p->X) && fe_equal(&p->Y, &p->Z);
}

/* ---------------------------------------------------------------- encoding */

int ge_frombytes_vartime(ge_p3 *h, const uint8_t s[32])
{
    fe u, v, v3, vxx, check, one;
    const int sign = s[31] >> 7;

    if (!fe_bytes_canonical_vartime(s)) return -1;
    fe_frombytes(&h->Y, s);
    fe_1(&h->Z);
    fe_1(&one);
    /* x^2 = (y^2 - 1) / (d y^2 + 1) = u / v */
    fe_sq(&u, &h->Y);
    fe_mul(&v, &u, &fe_d);
    fe_sub(&u, &u, &one);
    fe_add(&v, &v, &one);
    fe_carry(&v);
    /* x = u v^3 (u v^7)^((p-5)/8) */
    fe_sq(&v3, &v);
    fe_mul(&v3, &v3, &v);
    fe_sq(&h->X, &v3);
    fe_mul(&h->X, &h->X, &v);
    fe_mul(&h->X, &h->X, &u);
    fe_pow22523(&h->X, &h->X);
    fe_mul(&h->X, &h->X, &v3);
    fe_mul(&h->X, &h->X, &u);

    fe_sq(&vxx, &h->X);
    fe_mul(&vxx, &vxx, &v);
    fe_sub(&check, &vxx, &u);
    if (!fe_iszero(&check)) {
        fe_add(&check, &vxx, &u);
        fe_carry(&check);
        if (!fe_iszero(&check)) return -1; /* u/v is not a square: not on the curve */
        fe_mul(&h->X, &h->X, &fe_sqrtm1);
    }
    if (fe_iszero(&h->X) && sign) return -1; /* x = 0 has no negative encoding */
    if (fe_isnegative(&h->X) != sign) fe_neg(&h->X, &h->X);
    fe_mul(&h->T, &h->X, &h->Y);
    return 0;
}

void ge_p3_tobytes(uint8_t s[32], const ge_p3 *p)
{
    fe recip, x, y;
    fe_invert(&recip, &p->Z);
    fe_mul(&x, &p->X, &recip);
    fe_mul(&y, &p->Y, &recip);
    fe_tobytes(s, &y);
    s[31] ^= (uint8_t)(fe_isnegative(&x) << 7);
}

/* zinv[i] = 1 / z[i] for n >= 1 nonzero elements, one inversion (Montgomery's trick). */
static void fe_batch_invert(fe *zinv, const fe *z, fe *scratch, size_t n)
{
    fe acc;
    scratch[0] = z[0];
    for (size_t i = 1; i < n; i++) fe_mul(&scratch[i], &scratch[i - 1], &z[i]);
    fe_invert(&acc, &scratch[n - 1]);
    for (size_t i = n - 1; i > 0; i--) {
        fe_mul(&zinv[i], &acc, &scratch[i - 1]);
        fe_mul(&acc, &acc, &z[i]);
    }
    zinv[0] = acc;
}

void ge_p3_batch_tobytes(uint8_t (*s)[32], const ge_p3 *p, size_t n)
{
    fe z[GE_BATCH_MAX], zinv[GE_BATCH_MAX], scratch[GE_BATCH_MAX], x, y;
    if (n == 0) return;
    if (n > GE_BATCH_MAX) n = GE_BATCH_MAX;
    for (size_t i = 0; i < n; i++) z[i] = p[i].Z;
    fe_batch_invert(zinv, z, scratch, n);
    for (size_t i = 0; i < n; i++) {
        fe_mul(&x, &p[i].X, &zinv[i]);
        fe_mul(&y, &p[i].Y, &zinv[i]);
        fe_tobytes(s[i], &y);
        s[i][31] ^= (uint8_t)(fe_isnegative(&x) << 7);
    }
}

/* ---------------------------------------------------------------- table construction */

/* Scratch space for ge_tables_init (static so that building 384 points does not need 60 KB of
 * stack in whatever thread first imports the module). */
#define TABLE_POINTS (BASE_ROWS * GE_CT_TABLE_LEN)
static ge_p3 init_points[TABLE_POINTS];
static fe init_z[TABLE_POINTS], init_zinv[TABLE_POINTS], init_scratch[TABLE_POINTS];

static void to_precomp_batch(ge_precomp *out, const ge_p3 *pts, size_t n)
{
    fe x, y, t;
    for (size_t i = 0; i < n; i++) init_z[i] = pts[i].Z;
    fe_batch_invert(init_zinv, init_z, init_scratch, n);
    for (size_t i = 0; i < n; i++) {
        fe_mul(&x, &pts[i].X, &init_zinv[i]);
        fe_mul(&y, &pts[i].Y, &init_zinv[i]);
        fe_add(&out[i].yplusx, &y, &x);
        fe_carry(&out[i].yplusx);
        fe_sub(&out[i].yminusx, &y, &x);
        fe_mul(&t, &x, &y);
        fe_mul(&out[i].xy2d, &t, &fe_d2);
    }
}

static void odd_multiples_precomp(ge_precomp *out, const ge_p3 *p, size_t n)
{
    ge_p3 p2;
    ge_cached p2c;
    ge_p1p1 t;
    ge_p3_dbl(&p2, p);
    ge_p3_to_cached(&p2c, &p2);
    init_points[0] = *p;
    for (size_t i = 1; i < n; i++) {
        ge_add(&t, &init_points[i - 1], &p2c);
        ge_p1p1_to_p3(&init_points[i], &t);
    }
    to_precomp_batch(out, init_points, n);
}

int ge_tables_init(void)
{
    ge_p3 B, P, cur;
    ge_cached Pc;
    ge_p1p1 t;
    if (tables_ready) return 0;
    if (ge_frombytes_vartime(&B, base_bytes) != 0) return -1;

    P = B;
    for (int i = 0; i < BASE_ROWS; i++) {
        ge_p3_to_cached(&Pc, &P);
        cur = P;
        for (int j = 0; j < GE_CT_TABLE_LEN; j++) {
            init_points[i * GE_CT_TABLE_LEN + j] = cur;
            ge_add(&t, &cur, &Pc);
            ge_p1p1_to_p3(&cur, &t);
        }
        ge_p3_dbl_n(&P, &P, 8); /* next row: 256^(i+1) B */
    }
    to_precomp_batch(&base_table[0][0], init_points, TABLE_POINTS);

    odd_multiples_precomp(base_odd, &B, BASE_ODD_LEN);
    ge_p3_dbl_n(&P, &B, 128);
    odd_multiples_precomp(base128_odd, &P, BASE_ODD_LEN);
    tables_ready = 1;
    return 0;
}

/* ---------------------------------------------------------------- constant-time multiplication */

/* 1 if b == c, else 0, without branches. */
static uint64_t ct_equal(uint8_t b, uint8_t c)
{
    uint32_t x = (uint32_t)(b ^ c);
    x -= 1;
    return x >> 31;
}

/* 1 if b < 0, else 0. */
static uint64_t ct_negative(int8_t b)
{
    return ((uint64_t)(int64_t)b) >> 63;
}

/* Zeroes a secret-derived buffer in a way the optimiser may not drop. */
static void secure_zero(void *p, size_t n)
{
    volatile uint8_t *v = (volatile uint8_t *)p;
    while (n--) *v++ = 0;
}

/* Signed radix-16 recoding: a = sum e[i] 16^i with e[i] in [-8, 8). Requires a[31] <= 127 so
 * the final digit e[63] stays in [0, 8]. Constant time. */
static void recode_radix16(int8_t e[64], const uint8_t a[32])
{
    int carry = 0;
    for (int i = 0; i < 32; i++) {
        e[2 * i] = (int8_t)(a[i] & 15);
        e[2 * i + 1] = (int8_t)((a[i] >> 4) & 15);
    }
    for (int i = 0; i < 63; i++) {
        e[i] = (int8_t)(e[i] + carry);
        carry = (e[i] + 8) >> 4; /* 0 or 1: e[i] + 8 is in [8, 24] */
        e[i] = (int8_t)(e[i] - carry * 16);
    }
    e[63] = (int8_t)(e[63] + carry);
}

/* Constant-time table selection. Each entry is read in full and merged under a mask, so the
 * memory access pattern and the instruction stream are the same for every digit. The structs are
 * arrays of uint64_t limbs, read here as flat words. */
#define PRECOMP_WORDS (sizeof(ge_precomp) / sizeof(uint64_t))
#define CACHED_WORDS (sizeof(ge_cached) / sizeof(uint64_t))

/* Swaps the first two field elements (Y+X and Y-X) of a flat entry when mask is all ones. */
static void ct_swap_first_two(uint64_t *w, uint64_t mask)
{
    for (int k = 0; k < 5; k++) {
        const uint64_t d = (w[k] ^ w[5 + k]) & mask;
        w[k] ^= d;
        w[5 + k] ^= d;
    }
}

/* t = b * row[0] (b in [-8, 8]); row[j] = (j + 1) * P. */
static void select_precomp(ge_precomp *t, const ge_precomp row[GE_CT_TABLE_LEN], int8_t b)
{
    uint64_t acc[PRECOMP_WORDS];
    fe neg;
    const uint64_t bneg = ct_negative(b);
    const int bmask = -(int)bneg; /* all ones when b < 0 */
    const uint8_t babs = (uint8_t)(((int)b ^ bmask) - bmask);
    const uint64_t m0 = (uint64_t)0 - ct_equal(babs, 0);
    memset(acc, 0, sizeof(acc));
    acc[0] = m0 & 1; /* identity: (1, 1, 0) */
    acc[5] = m0 & 1;
    for (int j = 0; j < GE_CT_TABLE_LEN; j++) {
        const uint64_t m = (uint64_t)0 - ct_equal(babs, (uint8_t)(j + 1));
        const uint64_t *w = (const uint64_t *)&row[j];
#pragma GCC unroll 16
        for (size_t k = 0; k < PRECOMP_WORDS; k++) acc[k] |= w[k] & m;
    }
    ct_swap_first_two(acc, (uint64_t)0 - bneg);
    memcpy(t, acc, sizeof(*t));
    fe_neg(&neg, &t->xy2d);
    fe_cmov(&t->xy2d, &neg, bneg);
}

static void select_cached(ge_cached *t, const ge_cached table[GE_CT_TABLE_LEN], int8_t b)
{
    uint64_t acc[CACHED_WORDS];
    fe neg;
    const uint64_t bneg = ct_negative(b);
    const int bmask = -(int)bneg;
    const uint8_t babs = (uint8_t)(((int)b ^ bmask) - bmask);
    const uint64_t m0 = (uint64_t)0 - ct_equal(babs, 0);
    memset(acc, 0, sizeof(acc));
    acc[0] = m0 & 1; /* identity: (1, 1, 1, 0) */
    acc[5] = m0 & 1;
    acc[10] = m0 & 1;
    for (int j = 0; j < GE_CT_TABLE_LEN; j++) {
        const uint64_t m = (uint64_t)0 - ct_equal(babs, (uint8_t)(j + 1));
        const uint64_t *w = (const uint64_t *)&table[j];
#pragma GCC unroll 20
        for (size_t k = 0; k < CACHED_WORDS; k++) acc[k] |= w[k] & m;
    }
    ct_swap_first_two(acc, (uint64_t)0 - bneg);
    memcpy(t, acc, sizeof(*t));
    fe_neg(&neg, &t->T2d);
    fe_cmov(&t->T2d, &neg, bneg);
}

void ge_scalarmult_base(ge_p3 *h, const uint8_t a[32])
{
    int8_t e[64];
    ge_precomp t;
    ge_p1p1 r;
    recode_radix16(e, a);
    ge_p3_0(h);
    /* Odd digits first (they carry an extra factor 16), then 4 doublings, then even digits. */
    for (int i = 1; i < 64; i += 2) {
        select_precomp(&t, base_table[i / 2], e[i]);
        ge_madd(&r, h, &t);
        ge_p1p1_to_p3(h, &r);
    }
    ge_p3_dbl_n(h, h, 4);
    for (int i = 0; i < 64; i += 2) {
        select_precomp(&t, base_table[i / 2], e[i]);
        ge_madd(&r, h, &t);
        ge_p1p1_to_p3(h, &r);
    }
    secure_zero(e, sizeof(e));
}

void ge_ct_table(ge_ct_table_t *t, const ge_p3 *p)
{
    ge_p3 m[GE_CT_TABLE_LEN], row_base = *p;
    for (int j = 0; j < GE_CT_ROWS; j++) {
        if (j > 0) ge_p3_dbl_n(&row_base, &row_base, 256 / GE_CT_ROWS); /* 2^(64 j) P */
        m[0] = row_base;
        ge_p3_dbl(&m[1], &m[0]);         /* 2 */
        ge_p3_add(&m[2], &m[1], &m[0]);  /* 3 */
        ge_p3_dbl(&m[3], &m[1]);         /* 4 */
        ge_p3_add(&m[4], &m[3], &m[0]);  /* 5 */
        ge_p3_dbl(&m[5], &m[2]);         /* 6 */
        ge_p3_add(&m[6], &m[5], &m[0]);  /* 7 */
        ge_p3_dbl(&m[7], &m[3]);         /* 8 */
        for (int i = 0; i < GE_CT_TABLE_LEN; i++) ge_p3_to_cached(&t->row[j][i], &m[i]);
    }
}

void ge_scalarmult_ct(ge_p3 *h, const uint8_t a[32], const ge_ct_table_t *t)
{
    /* Digit i = 16 j + l of the radix-16 recoding weighs 16^l * 2^(64 j): Horner over l with
     * one addition per row at each step, so 60 doublings instead of 252. */
    enum { DIGITS_PER_ROW = 64 / GE_CT_ROWS };
    int8_t e[64];
    ge_cached c;
    ge_p1p1 r;
    recode_radix16(e, a);
    ge_p3_0(h);
    for (int l = DIGITS_PER_ROW - 1; l >= 0; l--) {
        if (l != DIGITS_PER_ROW - 1) ge_p3_dbl_n(h, h, 4); /* loop indices are public */
        for (int j = 0; j < GE_CT_ROWS; j++) {
            select_cached(&c, t->row[j], e[DIGITS_PER_ROW * j + l]);
            ge_add(&r, h, &c);
            ge_p1p1_to_p3(h, &r);
        }
    }
    secure_zero(e, sizeof(e));
}

/* ---------------------------------------------------------------- variable-time (verify) */

/* Width-w non-adjacent form of a 256-bit little-endian scalar < 2^255: naf[i] is zero or odd
 * with |naf[i]| < 2^(w-1), and nonzero digits are at least w apart. Variable time. */
#define NAF_LEN 256
static void wnaf(int8_t naf[NAF_LEN], const uint8_t s[32], int w)
{
    uint64_t x[5] = {0, 0, 0, 0, 0};
    const uint64_t width = (uint64_t)1 << w, mask = width - 1;
    uint64_t carry = 0;
    int pos = 0;
    for (int i = 0; i < 32; i++) x[i / 8] |= (uint64_t)s[i] << (8 * (i % 8));
    memset(naf, 0, NAF_LEN);
    while (pos < NAF_LEN) {
        const int idx = pos / 64, bit = pos % 64;
        uint64_t bits;
        if (bit <= 64 - w)
            bits = x[idx] >> bit;
        else
            bits = (x[idx] >> bit) | (x[idx + 1] << (64 - bit));
        const uint64_t window = carry + (bits & mask);
        if ((window & 1) == 0) {
            pos += 1; /* zero digit; a pending carry moves up with the position */
            continue;
        }
        if (window < width / 2) {
            carry = 0;
            naf[pos] = (int8_t)window;
        } else {
            carry = 1;
            naf[pos] = (int8_t)((int64_t)window - (int64_t)width);
        }
        pos += w;
    }
}

/* table[i] = (2i + 1) p for i in 0..VAR_ODD_LEN-1. */
static void odd_multiples_cached(ge_cached table[VAR_ODD_LEN], const ge_p3 *p)
{
    ge_p3 p2, cur;
    ge_cached p2c;
    ge_p1p1 t;
    ge_p3_dbl(&p2, p);
    ge_p3_to_cached(&p2c, &p2);
    cur = *p;
    ge_p3_to_cached(&table[0], &cur);
    for (int i = 1; i < VAR_ODD_LEN; i++) {
        ge_add(&t, &cur, &p2c);
        ge_p1p1_to_p3(&cur, &t);
        ge_p3_to_cached(&table[i], &cur);
    }
}

static int naf_top(const int8_t *naf)
{
    int i = NAF_LEN - 1;
    while (i >= 0 && naf[i] == 0) i--;
    return i;
}

/* Adds the digit d of a cached table into the running sum (t holds 2*sum in p1p1). */
static void add_digit_cached(ge_p1p1 *t, int8_t d, const ge_cached *table)
{
    ge_p3 u;
    if (d == 0) return;
    ge_p1p1_to_p3(&u, t);
    if (d > 0)
        ge_add(t, &u, &table[d / 2]);
    else
        ge_sub(t, &u, &table[(-d) / 2]);
}

static void add_digit_precomp(ge_p1p1 *t, int8_t d, const ge_precomp *table)
{
    ge_p3 u;
    if (d == 0) return;
    ge_p1p1_to_p3(&u, t);
    if (d > 0)
        ge_madd(t, &u, &table[d / 2]);
    else
        ge_msub(t, &u, &table[(-d) / 2]);
}

void ge_double_scalarmult_base_vartime(ge_p3 *r, const uint8_t a[32], const uint8_t b[32],
                                       const ge_p3 *P)
{
    int8_t naf_lo[NAF_LEN], naf_hi[NAF_LEN], naf_b[NAF_LEN];
    uint8_t lo[32], hi[32];
    ge_cached ptable[VAR_ODD_LEN];
    ge_p1p1 t;
    ge_p2 acc;
    int top;

    memset(lo, 0, 32);
    memset(hi, 0, 32);
    memcpy(lo, a, 16);
    memcpy(hi, a + 16, 16);
    wnaf(naf_lo, lo, BASE_WNAF_WIDTH);
    wnaf(naf_hi, hi, BASE_WNAF_WIDTH);
    wnaf(naf_b, b, VAR_WNAF_WIDTH);
    odd_multiples_cached(ptable, P);

    top = naf_top(naf_lo);
    if (naf_top(naf_hi) > top) top = naf_top(naf_hi);
    if (naf_top(naf_b) > top) top = naf_top(naf_b);
    ge_p3_0(r);
    if (top < 0) return;

    ge_p3_to_p2(&acc, r);
    for (int i = top; i >= 0; i--) {
        ge_p2_dbl(&t, &acc);
        add_digit_precomp(&t, naf_lo[i], base_odd);
        add_digit_precomp(&t, naf_hi[i], base128_odd);
        add_digit_cached(&t, naf_b[i], ptable);
        if (i == 0)
            ge_p1p1_to_p3(r, &t);
        else
            ge_p1p1_to_p2(&acc, &t);
    }
}

void ge_double_scalarmult_vartime(ge_p3 *r, const uint8_t a[32], const ge_p3 *A,
                                  const uint8_t b[32], const ge_p3 *P)
{
    int8_t naf_a[NAF_LEN], naf_b[NAF_LEN];
    ge_cached atable[VAR_ODD_LEN], ptable[VAR_ODD_LEN];
    ge_p1p1 t;
    ge_p2 acc;
    int top;

    wnaf(naf_a, a, VAR_WNAF_WIDTH);
    wnaf(naf_b, b, VAR_WNAF_WIDTH);
    top = naf_top(naf_a);
    if (naf_top(naf_b) > top) top = naf_top(naf_b);
    ge_p3_0(r);
    if (top < 0) return;
    odd_multiples_cached(atable, A);
    odd_multiples_cached(ptable, P);

    ge_p3_to_p2(&acc, r);
    for (int i = top; i >= 0; i--) {
        ge_p2_dbl(&t, &acc);
        add_digit_cached(&t, naf_a[i], atable);
        add_digit_cached(&t, naf_b[i], ptable);
        if (i == 0)
            ge_p1p1_to_p3(r, &t);
        else
            ge_p1p1_to_p2(&acc, &t);
    }
}
