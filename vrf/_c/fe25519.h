/*
 * Arithmetic in GF(p), p = 2^255 - 19, radix 2^51 (five unsigned 64-bit limbs, products in
 * unsigned __int128).
 *
 * Limb bounds are the whole correctness argument of this file, so every function states them:
 *   - "tight": every limb < 2^51 + 2^18 (in particular < 2^52).  fe_mul, fe_sq, fe_sub,
 *     fe_carry and fe_frombytes return tight elements.
 *   - fe_add does not carry: its output limbs are the sum of its input limbs.
 *   - fe_mul / fe_sq / fe_sq2 accept limbs < 2^54 (so a product of limbs times 19, summed five
 *     times, stays below 2^115 and every carry fits in 64 bits).
 *   - fe_sub(h, f, g) accepts f limbs < 2^63 and g limbs <= 2^53 - 76 (the 4p bias).
 * In the point formulas (ge25519.c) the largest multiplication input is a sum of three tight
 * values (2 Z1 Z2 + C in an addition, < 2^54), and the largest subtrahend a sum of two (B + A in a
 * doubling, < 2^53 - 76).
 *
 * Everything here is constant time (no branches or memory indices on limb values) except the
 * functions whose names end in _vartime.
 */
#ifndef POSI_FE25519_H
#define POSI_FE25519_H

#include <stdint.h>
#include <string.h>

#if !defined(__SIZEOF_INT128__)
#error "vrf/_c needs a compiler with unsigned __int128 (64-bit gcc or clang)"
#endif

__extension__ typedef unsigned __int128 u128;

typedef struct {
    uint64_t v[5];
} fe;

#define FE_MASK51 ((uint64_t)0x7ffffffffffffULL)

/* Constants (values checked by the module's self-test hooks and by the RFC vectors). */
extern const fe fe_d;            /* d = -121665/121666 */
extern const fe fe_d2;           /* 2d */
extern const fe fe_sqrtm1;       /* sqrt(-1) = 2^((p-1)/4) */
extern const fe fe_sqrt_m486664; /* sqrt(-486664) with sgn0 = 0 (RFC 9380 appendix D) */
extern const fe fe_one_plus_sqrtm1; /* 2^((p+3)/8) = 1 + sqrt(-1) (RFC 9380 G.2.1 c2) */

static inline void fe_0(fe *h) { memset(h, 0, sizeof(*h)); }

static inline void fe_1(fe *h)
{
    memset(h, 0, sizeof(*h));
    h->v[0] = 1;
}

static inline void fe_add(fe *h, const fe *f, const fe *g)
{
    for (int i = 0; i < 5; i++) h->v[i] = f->v[i] + g->v[i];
}

/* Weak reduction: any limbs < 2^64 in, tight limbs out (same value mod p). */
static inline void fe_carry(fe *h)
{
    uint64_t c;
    c = h->v[0] >> 51; h->v[0] &= FE_MASK51; h->v[1] += c;
    c = h->v[1] >> 51; h->v[1] &= FE_MASK51; h->v[2] += c;
    c = h->v[2] >> 51; h->v[2] &= FE_MASK51; h->v[3] += c;
    c = h->v[3] >> 51; h->v[3] &= FE_MASK51; h->v[4] += c;
    c = h->v[4] >> 51; h->v[4] &= FE_MASK51; h->v[0] += c * 19;
}

/* h = f - g, computed as f + 4p - g so no limb goes negative; output tight. */
static inline void fe_sub(fe *h, const fe *f, const fe *g)
{
    h->v[0] = (f->v[0] + 0x1fffffffffffb4ULL) - g->v[0];
    h->v[1] = (f->v[1] + 0x1ffffffffffffcULL) - g->v[1];
    h->v[2] = (f->v[2] + 0x1ffffffffffffcULL) - g->v[2];
    h->v[3] = (f->v[3] + 0x1ffffffffffffcULL) - g->v[3];
    h->v[4] = (f->v[4] + 0x1ffffffffffffcULL) - g->v[4];
    fe_carry(h);
}

static inline void fe_neg(fe *h, const fe *f)
{
    fe z;
    fe_0(&z);
    fe_sub(h, &z, f);
}

/* Carry the five 128-bit column sums of a product into a tight element. */
static inline void fe_reduce_wide(fe *h, u128 r0, u128 r1, u128 r2, u128 r3, u128 r4)
{
    uint64_t h0, h1, h2, h3, h4, c;
    r1 += (uint64_t)(r0 >> 51); h0 = (uint64_t)r0 & FE_MASK51;
    r2 += (uint64_t)(r1 >> 51); h1 = (uint64_t)r1 & FE_MASK51;
    r3 += (uint64_t)(r2 >> 51); h2 = (uint64_t)r2 & FE_MASK51;
    r4 += (uint64_t)(r3 >> 51); h3 = (uint64_t)r3 & FE_MASK51;
    c = (uint64_t)(r4 >> 51);   h4 = (uint64_t)r4 & FE_MASK51;
    h0 += c * 19;
    h1 += h0 >> 51;
    h0 &= FE_MASK51;
    h->v[0] = h0; h->v[1] = h1; h->v[2] = h2; h->v[3] = h3; h->v[4] = h4;
}

static inline void fe_mul(fe *h, const fe *f, const fe *g)
{
    const uint64_t f0 = f->v[0], f1 = f->v[1], f2 = f->v[2], f3 = f->v[3], f4 = f->v[4];
    const uint64_t g0 = g->v[0], g1 = g->v[1], g2 = g->v[2], g3 = g->v[3], g4 = g->v[4];
    const uint64_t g1_19 = 19 * g1, g2_19 = 19 * g2, g3_19 = 19 * g3, g4_19 = 19 * g4;
    u128 r0, r1, r2, r3, r4;
    r0 = (u128)f0 * g0 + (u128)f1 * g4_19 + (u128)f2 * g3_19 + (u128)f3 * g2_19 + (u128)f4 * g1_19;
    r1 = (u128)f0 * g1 + (u128)f1 * g0 + (u128)f2 * g4_19 + (u128)f3 * g3_19 + (u128)f4 * g2_19;
    r2 = (u128)f0 * g2 + (u128)f1 * g1 + (u128)f2 * g0 + (u128)f3 * g4_19 + (u128)f4 * g3_19;
    r3 = (u128)f0 * g3 + (u128)f1 * g2 + (u128)f2 * g1 + (u128)f3 * g0 + (u128)f4 * g4_19;
    r4 = (u128)f0 * g4 + (u128)f1 * g3 + (u128)f2 * g2 + (u128)f3 * g1 + (u128)f4 * g0;
    fe_reduce_wide(h, r0, r1, r2, r3, r4);
}

static inline void fe_sq(fe *h, const fe *f)
{
    const uint64_t f0 = f->v[0], f1 = f->v[1], f2 = f->v[2], f3 = f->v[3], f4 = f->v[4];
    const uint64_t f0_2 = 2 * f0, f1_2 = 2 * f1;
    const uint64_t f1_38 = 38 * f1, f2_38 = 38 * f2, f3_38 = 38 * f3;
    const uint64_t f3_19 = 19 * f3, f4_19 = 19 * f4;
    u128 r0, r1, r2, r3, r4;
    r0 = (u128)f0 * f0 + (u128)f1_38 * f4 + (u128)f2_38 * f3;
    r1 = (u128)f0_2 * f1 + (u128)f2_38 * f4 + (u128)f3_19 * f3;
    r2 = (u128)f0_2 * f2 + (u128)f1 * f1 + (u128)f3_38 * f4;
    r3 = (u128)f0_2 * f3 + (u128)f1_2 * f2 + (u128)f4_19 * f4;
    r4 = (u128)f0_2 * f4 + (u128)f1_2 * f3 + (u128)f2 * f2;
    fe_reduce_wide(h, r0, r1, r2, r3, r4);
}

/* h = 2 f^2; output limbs < 2^53 (twice tight, not carried). */
static inline void fe_sq2(fe *h, const fe *f)
{
    fe_sq(h, f);
    fe_add(h, h, h);
}

/* h = f^(2^n), n >= 1. */
static inline void fe_sqn(fe *h, const fe *f, int n)
{
    fe_sq(h, f);
    for (int i = 1; i < n; i++) fe_sq(h, h);
}

/* f = g if b == 1, unchanged if b == 0; b must be 0 or 1. Constant time. */
static inline void fe_cmov(fe *f, const fe *g, uint64_t b)
{
    const uint64_t mask = (uint64_t)0 - b;
    for (int i = 0; i < 5; i++) f->v[i] ^= mask & (f->v[i] ^ g->v[i]);
}

void fe_frombytes(fe *h, const uint8_t s[32]);   /* ignores bit 255; output tight */
void fe_tobytes(uint8_t s[32], const fe *h);     /* canonical (fully reduced) little-endian */
/* Reduce a little-endian integer of up to 64 bytes mod p (used for hash_to_field). */
void fe_from_wide_le(fe *h, const uint8_t *s, size_t len);
int fe_iszero(const fe *f);                      /* 1 if f == 0 mod p; constant time */
int fe_isnegative(const fe *f);                  /* sgn0: low bit of the canonical encoding */
int fe_equal(const fe *f, const fe *g);          /* 1 if equal mod p; constant time */
void fe_invert(fe *out, const fe *z);            /* z^(p-2); 0 maps to 0 */
void fe_pow22523(fe *out, const fe *z);          /* z^((p-5)/8) */
/* Legendre symbol by exponentiation z^((p-1)/2): returns 1 (nonzero square), -1 (non-square)
 * or 0 (z == 0). Constant time. */
int fe_legendre(const fe *z);
/* Square root for p = 5 mod 8: sets r to a root of z and returns 1 if z is a square, else
 * returns 0 (r then holds garbage). The root returned has sgn0 = 0. Constant time. */
int fe_sqrt(fe *r, const fe *z);
/* 1 if the 32 bytes (with bit 255 ignored) encode an integer < p; variable time, public data. */
int fe_bytes_canonical_vartime(const uint8_t s[32]);

#endif
