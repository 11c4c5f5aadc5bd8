/* Field arithmetic mod 2^255 - 19 (see fe25519.h for the limb bounds). */
#include "fe25519.h"

const fe fe_d = {{0x34dca135978a3ULL, 0x1a8283b156ebdULL, 0x5e7a26001c029ULL, 0x739c663a03cbbULL,
                  0x52036cee2b6ffULL}};
const fe fe_d2 = {{0x69b9426b2f159ULL, 0x35050762add7aULL, 0x3cf44c0038052ULL, 0x6738cc7407977ULL,
                   0x2406d9dc56dffULL}};
const fe fe_sqrtm1 = {{0x61b274a0ea0b0ULL, 0x0d5a5fc8f189dULL, 0x7ef5e9cbd0c60ULL,
                       0x78595a6804c9eULL, 0x2b8324804fc1dULL}};
const fe fe_sqrt_m486664 = {{0x604aaff457e06ULL, 0x2296fa350598dULL, 0x7f13dfb16874fULL,
                             0x35de93d846e01ULL, 0x0f26edf460a00ULL}};
const fe fe_one_plus_sqrtm1 = {{0x61b274a0ea0b1ULL, 0x0d5a5fc8f189dULL, 0x7ef5e9cbd0c60ULL,
                                0x78595a6804c9eULL, 0x2b8324804fc1dULL}};

static uint64_t load64_le(const uint8_t *s)
{
    uint64_t r = 0;
    for (int i = 7; i >= 0; i--) r = (r << 8) | s[i];
    return r;
}

void fe_frombytes(fe *h, const uint8_t s[32])
{
    /* Limb i holds bits 51i .. 51i+50; each load stays inside the 32 bytes. */
    h->v[0] = load64_le(s) & FE_MASK51;
    h->v[1] = (load64_le(s + 6) >> 3) & FE_MASK51;
    h->v[2] = (load64_le(s + 12) >> 6) & FE_MASK51;
    h->v[3] = (load64_le(s + 19) >> 1) & FE_MASK51;
    h->v[4] = (load64_le(s + 24) >> 12) & FE_MASK51; /* the mask drops bit 255 */
}

void fe_tobytes(uint8_t s[32], const fe *f)
{
    fe h = *f;
    uint64_t q;
    fe_carry(&h); /* value now < 2^255 + 2^218 < 2p */
    /* q = floor((h + 19) / 2^255) is 1 exactly when h >= p. */
    q = (h.v[0] + 19) >> 51;
    q = (h.v[1] + q) >> 51;
    q = (h.v[2] + q) >> 51;
    q = (h.v[3] + q) >> 51;
    q = (h.v[4] + q) >> 51;
    /* h + 19q - 2^255 q = h - pq: add 19q, carry without wrap-around, drop bit 255. */
    h.v[0] += 19 * q;
    h.v[1] += h.v[0] >> 51; h.v[0] &= FE_MASK51;
    h.v[2] += h.v[1] >> 51; h.v[1] &= FE_MASK51;
    h.v[3] += h.v[2] >> 51; h.v[2] &= FE_MASK51;
    h.v[4] += h.v[3] >> 51; h.v[3] &= FE_MASK51;
    h.v[4] &= FE_MASK51;

    const uint64_t w0 = h.v[0] | (h.v[1] << 51);
    const uint64_t w1 = (h.v[1] >> 13) | (h.v[2] << 38);
    const uint64_t w2 = (h.v[2] >> 26) | (h.v[3] << 25);
    const uint64_t w3 = (h.v[3] >> 39) | (h.v[4] << 12);
    const uint64_t w[4] = {w0, w1, w2, w3};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 8; j++) s[8 * i + j] = (uint8_t)(w[i] >> (8 * j));
}

void fe_from_wide_le(fe *h, const uint8_t *s, size_t len)
{
    /* value = sum of 255-bit chunks c_i 2^(255 i) = sum c_i 19^i (mod p). At most 64 bytes, so
     * at most three chunks (bits 0..254, 255..509, 510..511); Horner from the top. */
    uint8_t buf[96];
    memset(buf, 0, sizeof(buf));
    if (len > 64) len = 64;
    memcpy(buf, s, len);
    fe acc, chunk;
    fe_0(&acc);
    for (int ci = 2; ci >= 0; ci--) {
        /* Extract bits 255*ci .. 255*ci + 254 into a 32-byte little-endian buffer. */
        uint8_t part[32];
        const int bit0 = 255 * ci;
        for (int b = 0; b < 32; b++) {
            const int bit = bit0 + 8 * b;
            const int byte = bit >> 3, sh = bit & 7;
            unsigned v = buf[byte];
            if (sh && byte + 1 < (int)sizeof(buf)) v = (v >> sh) | ((unsigned)buf[byte + 1] << (8 - sh));
            part[b] = (uint8_t)v;
        }
        fe_frombytes(&chunk, part); /* keeps exactly 255 bits */
        /* acc = acc * 19 + chunk: acc is tight, so limbs stay < 2^56 before the carry. */
        for (int i = 0; i < 5; i++) acc.v[i] = acc.v[i] * 19 + chunk.v[i];
        fe_carry(&acc);
    }
    *h = acc;
}

int fe_iszero(const fe *f)
{
    uint8_t s[32];
    uint8_t acc = 0;
    fe_tobytes(s, f);
    for (int i = 0; i < 32; i++) acc |= s[i];
    return (int)((((unsigned)acc) - 1) >> 8) & 1;
}

int fe_isnegative(const fe *f)
{
    uint8_t s[32];
    fe_tobytes(s, f);
    return s[0] & 1;
}

int fe_equal(const fe *f, const fe *g)
{
    fe d;
    fe_sub(&d, f, g);
    return fe_iszero(&d);
}

/* Sets *z11 = z^11 and *z250 = z^(2^250 - 1): the common prefix of both addition chains. */
static void fe_pow_prefix(fe *z11, fe *z250, const fe *z)
{
    fe t0, t1, t2, t3;
    fe_sq(&t0, z);          /* z^2 */
    fe_sqn(&t1, &t0, 2);    /* z^8 */
    fe_mul(&t1, z, &t1);    /* z^9 */
    fe_mul(&t0, &t0, &t1);  /* z^11 */
    *z11 = t0;
    fe_sq(&t2, &t0);        /* z^22 */
    fe_mul(&t1, &t1, &t2);  /* z^31 = z^(2^5 - 1) */
    fe_sqn(&t2, &t1, 5);
    fe_mul(&t1, &t2, &t1);  /* z^(2^10 - 1) */
    fe_sqn(&t2, &t1, 10);
    fe_mul(&t2, &t2, &t1);  /* z^(2^20 - 1) */
    fe_sqn(&t3, &t2, 20);
    fe_mul(&t2, &t3, &t2);  /* z^(2^40 - 1) */
    fe_sqn(&t2, &t2, 10);
    fe_mul(&t1, &t2, &t1);  /* z^(2^50 - 1) */
    fe_sqn(&t2, &t1, 50);
    fe_mul(&t2, &t2, &t1);  /* z^(2^100 - 1) */
    fe_sqn(&t3, &t2, 100);
    fe_mul(&t2, &t3, &t2);  /* z^(2^200 - 1) */
    fe_sqn(&t2, &t2, 50);
    fe_mul(z250, &t2, &t1); /* z^(2^250 - 1) */
}

void fe_invert(fe *out, const fe *z)
{
    fe z11, t;
    fe_pow_prefix(&z11, &t, z);
    fe_sqn(&t, &t, 5);      /* z^(2^255 - 32) */
    fe_mul(out, &t, &z11);  /* z^(2^255 - 21) = z^(p - 2) */
}

void fe_pow22523(fe *out, const fe *z)
{
    fe z11, t;
    fe_pow_prefix(&z11, &t, z);
    fe_sqn(&t, &t, 2);      /* z^(2^252 - 4) */
    fe_mul(out, &t, z);     /* z^(2^252 - 3) = z^((p - 5) / 8) */
}

int fe_legendre(const fe *z)
{
    /* z^((p-1)/2) = z^(2^254 - 10) = (z^(2^252 - 3))^4 * z^2 */
    fe t, z2, one, minus_one;
    fe_pow22523(&t, z);
    fe_sqn(&t, &t, 2);
    fe_sq(&z2, z);
    fe_mul(&t, &t, &z2);
    fe_1(&one);
    fe_neg(&minus_one, &one);
    const int is_one = fe_equal(&t, &one);
    const int is_minus_one = fe_equal(&t, &minus_one);
    return is_one - is_minus_one;
}

int fe_sqrt(fe *r, const fe *z)
{
    /* Candidate x = z^((p+3)/8) = z * z^((p-5)/8). If x^2 = z it is a root; if x^2 = -z then
     * x * sqrt(-1) is; otherwise z is not a square. */
    fe x, x2, xi, neg;
    fe_pow22523(&x, z);
    fe_mul(&x, &x, z);
    fe_sq(&x2, &x);
    const int ok1 = fe_equal(&x2, z);
    fe_mul(&xi, &x, &fe_sqrtm1);
    fe_neg(&neg, z);
    const int ok2 = fe_equal(&x2, &neg);
    fe_cmov(&x, &xi, (uint64_t)ok2);
    fe_neg(&neg, &x);
    fe_cmov(&x, &neg, (uint64_t)fe_isnegative(&x));
    *r = x;
    return ok1 | ok2;
}

int fe_bytes_canonical_vartime(const uint8_t s[32])
{
    /* The 255-bit value is >= p = 2^255 - 19 only if bits 8..254 are all ones and the low byte
     * is >= 0xed. */
    if ((s[31] & 0x7f) != 0x7f) return 1;
    for (int i = 30; i >= 1; i--)
        if (s[i] != 0xff) return 1;
    return s[0] < 0xed;
}
