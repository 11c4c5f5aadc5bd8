/* Scalars mod q (see sc25519.h). */
#include "sc25519.h"

#include <string.h>

__extension__ typedef unsigned __int128 u128;

/* q, little-endian 64-bit limbs. */
static const uint64_t Q[5] = {0x5812631a5cf5d3edULL, 0x14def9dea2f79cd6ULL, 0, 0x1000000000000000ULL,
                              0};
/* mu = floor(2^512 / q), a 260-bit constant. */
static const uint64_t MU[5] = {0xed9ce5a30a2c131bULL, 0x2106215d086329a7ULL, 0xffffffffffffffebULL,
                               0xffffffffffffffffULL, 0xfULL};

static uint64_t load64_le(const uint8_t *s)
{
    uint64_t r = 0;
    for (int i = 7; i >= 0; i--) r = (r << 8) | s[i];
    return r;
}

static void store64_le(uint8_t *s, uint64_t v)
{
    for (int i = 0; i < 8; i++) s[i] = (uint8_t)(v >> (8 * i));
}

/* out[0 .. na+nb-1] = a * b (schoolbook). */
static void mul_limbs(uint64_t *out, const uint64_t *a, int na, const uint64_t *b, int nb)
{
    memset(out, 0, sizeof(uint64_t) * (size_t)(na + nb));
    for (int i = 0; i < na; i++) {
        uint64_t carry = 0;
        for (int j = 0; j < nb; j++) {
            const u128 t = (u128)a[i] * b[j] + out[i + j] + carry;
            out[i + j] = (uint64_t)t;
            carry = (uint64_t)(t >> 64);
        }
        out[i + nb] = carry;
    }
}

/* r = r - Q if r >= Q (five limbs), without branching on r. */
static void cond_sub_q(uint64_t r[5])
{
    uint64_t t[5], borrow = 0;
    for (int i = 0; i < 5; i++) {
        const u128 d = (u128)r[i] - Q[i] - borrow;
        t[i] = (uint64_t)d;
        borrow = (uint64_t)(d >> 127); /* 1 when the subtraction wrapped */
    }
    const uint64_t keep_t = borrow - 1; /* all ones when r >= Q */
    for (int i = 0; i < 5; i++) r[i] = (t[i] & keep_t) | (r[i] & ~keep_t);
}

/* out = x mod q for a 512-bit x (eight limbs). */
static void barrett(uint64_t out[4], const uint64_t x[8])
{
    uint64_t q2[10], q3[5], r2full[10], r[5];
    /* q1 = floor(x / 2^192) (limbs 3..7), q2 = q1 * mu, q3 = floor(q2 / 2^320) */
    mul_limbs(q2, x + 3, 5, MU, 5);
    memcpy(q3, q2 + 5, sizeof(q3));
    /* r = (x mod 2^320) - (q3 * q mod 2^320), computed mod 2^320; the true r is in [0, 3q). */
    mul_limbs(r2full, q3, 5, Q, 5);
    uint64_t borrow = 0;
    for (int i = 0; i < 5; i++) {
        const u128 d = (u128)x[i] - r2full[i] - borrow;
        r[i] = (uint64_t)d;
        borrow = (uint64_t)(d >> 127);
    }
    cond_sub_q(r);
    cond_sub_q(r);
    memcpy(out, r, 4 * sizeof(uint64_t));
}

void sc_reduce64(uint8_t out[32], const uint8_t in[64])
{
    uint64_t x[8], r[4];
    for (int i = 0; i < 8; i++) x[i] = load64_le(in + 8 * i);
    barrett(r, x);
    for (int i = 0; i < 4; i++) store64_le(out + 8 * i, r[i]);
}

void sc_muladd(uint8_t out[32], const uint8_t a[32], const uint8_t b[32], const uint8_t c[32])
{
    uint64_t al[4], bl[4], x[8], r[4], carry = 0;
    for (int i = 0; i < 4; i++) {
        al[i] = load64_le(a + 8 * i);
        bl[i] = load64_le(b + 8 * i);
    }
    mul_limbs(x, al, 4, bl, 4);
    for (int i = 0; i < 8; i++) {
        const u128 t = (u128)x[i] + (i < 4 ? load64_le(c + 8 * i) : 0) + carry;
        x[i] = (uint64_t)t;
        carry = (uint64_t)(t >> 64);
    }
    barrett(r, x);
    for (int i = 0; i < 4; i++) store64_le(out + 8 * i, r[i]);
}

int sc_is_canonical_vartime(const uint8_t s[32])
{
    for (int i = 3; i >= 0; i--) {
        const uint64_t v = load64_le(s + 8 * i);
        if (v < Q[i]) return 1;
        if (v > Q[i]) return 0;
    }
    return 0; /* s == q */
}
