/* ECVRF-EDWARDS25519-SHA512-{TAI,ELL2} (RFC 9381 sections 5 and 5.5). */
#include "ecvrf.h"

#include <string.h>

#include "fe25519.h"
#include "ge25519.h"
#include "sc25519.h"
#include "sha512.h"

/* Domain separator bytes of RFC 9381 (5.4.1.1, 5.4.3, 5.2). */
#define DS_ENCODE_FRONT 0x01
#define DS_CHALLENGE_FRONT 0x02
#define DS_PROOF_TO_HASH_FRONT 0x03
#define DS_BACK 0x00

/* RFC 9381 5.4.1.2 and 5.5: "ECVRF_" || h2c_suite_ID_string; the DST appends the suite byte. */
static const char H2C_SUITE_ID[] = "ECVRF_edwards25519_XMD:SHA-512_ELL2_NU_";
#define H2C_DST_LEN (sizeof(H2C_SUITE_ID) - 1 + 1)

static int initialised = 0;

/* Zeroes secret intermediates in a way the optimiser may not drop. */
static void secure_wipe(void *p, size_t n)
{
    volatile uint8_t *v = (volatile uint8_t *)p;
    while (n--) *v++ = 0;
}

int ecvrf_init(void)
{
    if (initialised) return ECVRF_OK;
    if (ge_tables_init() != 0) return ECVRF_ERR_INIT;
    initialised = 1;
    return ECVRF_OK;
}

static int suite_ok(int suite) { return suite == ECVRF_SUITE_TAI || suite == ECVRF_SUITE_ELL2; }

/* RFC 8032 5.1.5: the first half of SHA-512(sk), clamped, is the secret scalar x; the second
 * half seeds the nonce (RFC 9381 5.4.2.2). */
static void expand_secret(uint8_t x[32], uint8_t nonce_seed[32], const uint8_t sk[32])
{
    uint8_t h[64];
    sha512(h, sk, 32);
    memcpy(x, h, 32);
    x[0] &= 248;
    x[31] &= 127;
    x[31] |= 64;
    memcpy(nonce_seed, h + 32, 32);
    secure_wipe(h, sizeof(h));
}

int ecvrf_public_key(uint8_t pk[ECVRF_PK_LEN], const uint8_t sk[ECVRF_SK_LEN])
{
    uint8_t x[32], seed[32];
    ge_p3 Y;
    if (!initialised) return ECVRF_ERR_INIT;
    expand_secret(x, seed, sk);
    ge_scalarmult_base(&Y, x);
    ge_p3_tobytes(pk, &Y);
    secure_wipe(x, sizeof(x));
    secure_wipe(seed, sizeof(seed));
    return ECVRF_OK;
}

/* RFC 9381 5.4.5: decode (canonical y, on the curve) and reject points of small order. */
static int decode_key(ge_p3 *Y, const uint8_t pk[ECVRF_PK_LEN])
{
    ge_p3 Y8;
    if (ge_frombytes_vartime(Y, pk) != 0) return ECVRF_ERR_KEY_ENCODING;
    ge_mul_by_cofactor(&Y8, Y);
    if (ge_is_identity_vartime(&Y8)) return ECVRF_ERR_KEY_SMALL_ORDER;
    return ECVRF_OK;
}

int ecvrf_validate_key(int suite, const uint8_t pk[ECVRF_PK_LEN])
{
    ge_p3 Y;
    if (!suite_ok(suite)) return ECVRF_ERR_SUITE;
    if (!initialised) return ECVRF_ERR_INIT;
    return decode_key(&Y, pk);
}

/* ---------------------------------------------------------------- encode_to_curve */

/* RFC 9381 5.4.1.1 try-and-increment. Variable time: the number of tries depends on pk and
 * alpha (RFC 9381 section 7.4 discusses what that reveals about alpha). */
static int encode_tai(ge_p3 *H, const uint8_t pk[32], const uint8_t *alpha, size_t alpha_len,
                      ecvrf_h2c_trace *trace)
{
    sha512_ctx prefix, ctx;
    uint8_t hash[64];
    const uint8_t front[2] = {ECVRF_SUITE_TAI, DS_ENCODE_FRONT};
    ge_p3 P;
    sha512_init(&prefix);
    sha512_update(&prefix, front, 2);
    sha512_update(&prefix, pk, 32);
    sha512_update(&prefix, alpha, alpha_len);
    for (int ctr = 0; ctr < ECVRF_TAI_MAX_TRIES; ctr++) {
        const uint8_t tail[2] = {(uint8_t)ctr, DS_BACK};
        ctx = prefix;
        sha512_update(&ctx, tail, 2);
        sha512_final(&ctx, hash);
        if (ge_frombytes_vartime(&P, hash) != 0) continue;
        ge_mul_by_cofactor(H, &P);
        if (ge_is_identity_vartime(H)) continue;
        if (trace) trace->tai_ctr = ctr;
        return ECVRF_OK;
    }
    return ECVRF_ERR_ENCODE;
}

/* RFC 9380 5.3.1 expand_message_xmd with SHA-512 and len_in_bytes = 48 (so ell = 1), for the
 * message m1 || m2 and a DST of at most H2C_DST_MAX bytes. */
#define H2C_DST_MAX 255
static void expand_message_xmd_48(uint8_t out[ECVRF_H2C_L], const uint8_t *m1, size_t m1_len,
                                  const uint8_t *m2, size_t m2_len, const uint8_t *dst,
                                  size_t dst_len)
{
    static const uint8_t z_pad[SHA512_BLOCK_LEN] = {0};
    const uint8_t lib_str[3] = {0, ECVRF_H2C_L, 0}; /* I2OSP(48, 2) || I2OSP(0, 1) */
    const uint8_t one = 1, dst_len_byte = (uint8_t)dst_len;
    uint8_t b0[64], b1[64];
    sha512_ctx ctx;

    sha512_init(&ctx);
    sha512_update(&ctx, z_pad, sizeof(z_pad));
    sha512_update(&ctx, m1, m1_len);
    sha512_update(&ctx, m2, m2_len);
    sha512_update(&ctx, lib_str, 3);
    sha512_update(&ctx, dst, dst_len); /* DST_prime = DST || I2OSP(len(DST), 1) */
    sha512_update(&ctx, &dst_len_byte, 1);
    sha512_final(&ctx, b0);

    sha512_init(&ctx);
    sha512_update(&ctx, b0, 64);
    sha512_update(&ctx, &one, 1);
    sha512_update(&ctx, dst, dst_len);
    sha512_update(&ctx, &dst_len_byte, 1);
    sha512_final(&ctx, b1);
    memcpy(out, b1, ECVRF_H2C_L);
}

/* hash_to_field with one element: OS2IP is big-endian; reduce the 384-bit integer mod p. */
static void uniform_to_field(fe *u, const uint8_t uniform[ECVRF_H2C_L])
{
    uint8_t le[ECVRF_H2C_L];
    for (int i = 0; i < ECVRF_H2C_L; i++) le[i] = uniform[ECVRF_H2C_L - 1 - i];
    fe_from_wide_le(u, le, ECVRF_H2C_L);
}

/* RFC 9380 G.2.1 map_to_curve_elligator2_curve25519 followed by the rational map to
 * edwards25519 (map_to_curve_elligator2_edwards25519), straight-line and constant time.
 * Output in extended coordinates without any inversion. */
static void map_elligator2(ge_p3 *P, const fe *u, ecvrf_h2c_trace *trace)
{
    fe J, one, tv1, tv2, tv3, xd, x1n, gxd, gx1, gx2, y11, y12, y1, x2n, y21, y22, y2, xn, y, negy;
    fe xen, xed, yen, yed, zero;
    fe_0(&J);
    J.v[0] = 486662;
    fe_1(&one);
    fe_0(&zero);

    fe_sq(&tv1, u);
    fe_add(&tv1, &tv1, &tv1);
    fe_carry(&tv1);                 /* tv1 = 2 u^2 */
    fe_add(&xd, &tv1, &one);
    fe_carry(&xd);                  /* xd = 1 + 2 u^2, nonzero since -1/2 is not a square */
    fe_neg(&x1n, &J);               /* x1 = -J / xd */
    fe_sq(&tv2, &xd);
    fe_mul(&gxd, &tv2, &xd);        /* gxd = xd^3 */
    fe_mul(&gx1, &J, &tv1);
    fe_mul(&gx1, &gx1, &x1n);
    fe_add(&gx1, &gx1, &tv2);
    fe_carry(&gx1);
    fe_mul(&gx1, &gx1, &x1n);       /* gx1 / gxd = g(x1) */
    fe_sq(&tv3, &gxd);
    fe_sq(&tv2, &tv3);              /* gxd^4 */
    fe_mul(&tv3, &tv3, &gxd);       /* gxd^3 */
    fe_mul(&tv3, &tv3, &gx1);       /* gx1 gxd^3 */
    fe_mul(&tv2, &tv2, &tv3);       /* gx1 gxd^7 */
    fe_pow22523(&y11, &tv2);
    fe_mul(&y11, &y11, &tv3);       /* candidate sqrt of g(x1) */
    fe_mul(&y12, &y11, &fe_sqrtm1);
    fe_sq(&tv2, &y11);
    fe_mul(&tv2, &tv2, &gxd);
    const uint64_t e1 = (uint64_t)fe_equal(&tv2, &gx1);
    y1 = y12;
    fe_cmov(&y1, &y11, e1);
    fe_mul(&x2n, &x1n, &tv1);       /* x2 = -J - x1 = 2 u^2 x1 */
    fe_mul(&y21, &y11, u);
    fe_mul(&y21, &y21, &fe_one_plus_sqrtm1);
    fe_mul(&y22, &y21, &fe_sqrtm1);
    fe_mul(&gx2, &gx1, &tv1);       /* g(x2) = 2 u^2 g(x1) */
    fe_sq(&tv2, &y21);
    fe_mul(&tv2, &tv2, &gxd);
    const uint64_t e2 = (uint64_t)fe_equal(&tv2, &gx2);
    y2 = y22;
    fe_cmov(&y2, &y21, e2);
    fe_sq(&tv2, &y1);
    fe_mul(&tv2, &tv2, &gxd);
    const uint64_t e3 = (uint64_t)fe_equal(&tv2, &gx1);
    xn = x2n;
    fe_cmov(&xn, &x1n, e3);
    y = y2;
    fe_cmov(&y, &y1, e3);
    const uint64_t e4 = (uint64_t)fe_isnegative(&y);
    fe_neg(&negy, &y);
    fe_cmov(&y, &negy, e3 ^ e4);    /* sgn0(y) = 1 exactly when g(x1) was not square */

    /* Montgomery (xn / xd, y) -> Edwards (c1 xn / (xd y), (xn - xd) / (xn + xd)). */
    fe_mul(&xen, &xn, &fe_sqrt_m486664);
    fe_mul(&xed, &xd, &y);
    fe_sub(&yen, &xn, &xd);
    fe_add(&yed, &xn, &xd);
    fe_carry(&yed);
    fe_mul(&tv1, &xed, &yed);
    const uint64_t e = (uint64_t)fe_iszero(&tv1); /* exceptional case: map to the identity */
    fe_cmov(&xen, &zero, e);
    fe_cmov(&xed, &one, e);
    fe_cmov(&yen, &one, e);
    fe_cmov(&yed, &one, e);
    fe_mul(&P->X, &xen, &yed);
    fe_mul(&P->Y, &yen, &xed);
    fe_mul(&P->Z, &xed, &yed);
    fe_mul(&P->T, &xen, &yen);

    if (trace) {
        fe gxd_inv, g;
        fe_invert(&gxd_inv, &gxd);
        fe_mul(&g, &gx1, &gxd_inv);
        fe_tobytes(trace->gx1, &g);
        trace->gx1_is_square = (int)e3;
        trace->gx1_legendre = fe_legendre(&g);
    }
}

/* RFC 9381 5.4.1.2 with the RFC 9380 edwards25519_XMD:SHA-512_ELL2_NU_ suite and
 * DST = "ECVRF_" || h2c_suite_ID_string || suite_string. */
static int encode_ell2(ge_p3 *H, const uint8_t pk[32], const uint8_t *alpha, size_t alpha_len,
                       ecvrf_h2c_trace *trace)
{
    uint8_t dst[H2C_DST_LEN], uniform[ECVRF_H2C_L];
    fe u;
    ge_p3 Q;
    memcpy(dst, H2C_SUITE_ID, H2C_DST_LEN - 1);
    dst[H2C_DST_LEN - 1] = ECVRF_SUITE_ELL2;
    expand_message_xmd_48(uniform, pk, 32, alpha, alpha_len, dst, H2C_DST_LEN);
    uniform_to_field(&u, uniform);
    if (trace) {
        memcpy(trace->uniform, uniform, ECVRF_H2C_L);
        fe_tobytes(trace->u, &u);
        trace->tai_ctr = -1;
    }
    map_elligator2(&Q, &u, trace);
    ge_mul_by_cofactor(H, &Q); /* clear_cofactor: h_eff = 8 */
    return ECVRF_OK;
}

int ecvrf_h2c_nu(uint8_t u_out[32], uint8_t q_out[32], uint8_t p_out[32], const uint8_t *msg,
                 size_t msg_len, const uint8_t *dst, size_t dst_len)
{
    uint8_t uniform[ECVRF_H2C_L];
    fe u;
    ge_p3 Q, P;
    if (dst_len > H2C_DST_MAX) return ECVRF_ERR_ENCODE;
    expand_message_xmd_48(uniform, msg, msg_len, NULL, 0, dst, dst_len);
    uniform_to_field(&u, uniform);
    fe_tobytes(u_out, &u);
    map_elligator2(&Q, &u, NULL);
    ge_mul_by_cofactor(&P, &Q);
    ge_p3_tobytes(q_out, &Q);
    ge_p3_tobytes(p_out, &P);
    return ECVRF_OK;
}

void ecvrf_ell2_map(uint8_t q_out[32], const uint8_t u_bytes[32])
{
    fe u;
    ge_p3 Q;
    fe_frombytes(&u, u_bytes);
    map_elligator2(&Q, &u, NULL);
    ge_p3_tobytes(q_out, &Q);
}

static int encode_to_curve(int suite, ge_p3 *H, const uint8_t pk[32], const uint8_t *alpha,
                           size_t alpha_len, ecvrf_h2c_trace *trace)
{
    if (suite == ECVRF_SUITE_TAI) return encode_tai(H, pk, alpha, alpha_len, trace);
    return encode_ell2(H, pk, alpha, alpha_len, trace);
}

int ecvrf_encode_to_curve(int suite, uint8_t h[32], const uint8_t pk[ECVRF_PK_LEN],
                          const uint8_t *alpha, size_t alpha_len, ecvrf_h2c_trace *trace)
{
    ge_p3 H;
    int st;
    if (!suite_ok(suite)) return ECVRF_ERR_SUITE;
    if (!initialised) return ECVRF_ERR_INIT;
    if (trace) memset(trace, 0, sizeof(*trace));
    st = encode_to_curve(suite, &H, pk, alpha, alpha_len, trace);
    if (st != ECVRF_OK) return st;
    ge_p3_tobytes(h, &H);
    return ECVRF_OK;
}

/* ---------------------------------------------------------------- challenge, proof, hash */

/* RFC 9381 5.4.3 with the five points of RFC 9381 5.1 step 6 / 5.3 step 7. */
static void challenge(uint8_t c[ECVRF_C_LEN], int suite, const uint8_t y[32], const uint8_t h[32],
                      const uint8_t gamma[32], const uint8_t u[32], const uint8_t v[32])
{
    sha512_ctx ctx;
    uint8_t out[64];
    const uint8_t front[2] = {(uint8_t)suite, DS_CHALLENGE_FRONT};
    const uint8_t back = DS_BACK;
    sha512_init(&ctx);
    sha512_update(&ctx, front, 2);
    sha512_update(&ctx, y, 32);
    sha512_update(&ctx, h, 32);
    sha512_update(&ctx, gamma, 32);
    sha512_update(&ctx, u, 32);
    sha512_update(&ctx, v, 32);
    sha512_update(&ctx, &back, 1);
    sha512_final(&ctx, out);
    memcpy(c, out, ECVRF_C_LEN);
}

/* RFC 9381 5.2 steps 3-4 given the encoding of cofactor * Gamma. */
static void beta_from_gamma8(uint8_t beta[ECVRF_BETA_LEN], int suite, const uint8_t gamma8[32])
{
    sha512_ctx ctx;
    const uint8_t front[2] = {(uint8_t)suite, DS_PROOF_TO_HASH_FRONT};
    const uint8_t back = DS_BACK;
    sha512_init(&ctx);
    sha512_update(&ctx, front, 2);
    sha512_update(&ctx, gamma8, 32);
    sha512_update(&ctx, &back, 1);
    sha512_final(&ctx, beta);
}

/* RFC 9381 5.4.4 decode_proof. */
static int decode_proof(ge_p3 *Gamma, const uint8_t pi[ECVRF_PROOF_LEN])
{
    if (ge_frombytes_vartime(Gamma, pi) != 0) return ECVRF_ERR_PROOF_GAMMA;
    if (!sc_is_canonical_vartime(pi + ECVRF_PT_LEN + ECVRF_C_LEN)) return ECVRF_ERR_PROOF_S;
    return ECVRF_OK;
}

int ecvrf_prove(int suite, uint8_t pi[ECVRF_PROOF_LEN], const uint8_t sk[ECVRF_SK_LEN],
                const uint8_t *alpha, size_t alpha_len, ecvrf_trace *trace)
{
    uint8_t x[32], seed[32], pk[32], k_string[64], k[32], c32[32], s[32];
    uint8_t enc[3][32]; /* h, gamma; then u, v */
    ge_p3 Y, H, pts[2];
    ge_ct_table_t htable;
    sha512_ctx ctx;
    int st;

    if (!suite_ok(suite)) return ECVRF_ERR_SUITE;
    if (!initialised) return ECVRF_ERR_INIT;
    if (trace) memset(trace, 0, sizeof(*trace));

    /* 1. x and Y = x B */
    expand_secret(x, seed, sk);
    ge_scalarmult_base(&Y, x);
    ge_p3_tobytes(pk, &Y);
    /* 2. H = encode_to_curve(Y, alpha) */
    st = encode_to_curve(suite, &H, pk, alpha, alpha_len, trace ? &trace->h2c : NULL);
    if (st != ECVRF_OK) goto done;
    /* 3-4. Gamma = x H; h and Gamma encoded with one inversion */
    ge_ct_table(&htable, &H);
    pts[0] = H;
    ge_scalarmult_ct(&pts[1], x, &htable);
    ge_p3_batch_tobytes(enc, pts, 2);
    memcpy(pi, enc[1], 32);
    /* 5. k = SHA-512(second half of SHA-512(sk) || h) mod q (RFC 9381 5.4.2.2) */
    sha512_init(&ctx);
    sha512_update(&ctx, seed, 32);
    sha512_update(&ctx, enc[0], 32);
    sha512_final(&ctx, k_string);
    sc_reduce64(k, k_string);
    if (trace) {
        memcpy(trace->h, enc[0], 32);
        memcpy(trace->gamma, enc[1], 32);
    }
    /* 6. c = challenge(Y, H, Gamma, k B, k H) */
    ge_scalarmult_base(&pts[0], k);
    ge_scalarmult_ct(&pts[1], k, &htable);
    memcpy(enc[2], enc[0], 32); /* keep h while u, v take slots 0 and 1 */
    ge_p3_batch_tobytes(enc, pts, 2);
    challenge(pi + ECVRF_PT_LEN, suite, pk, enc[2], pi, enc[0], enc[1]);
    /* 7. s = (k + c x) mod q */
    memset(c32, 0, sizeof(c32));
    memcpy(c32, pi + ECVRF_PT_LEN, ECVRF_C_LEN);
    sc_muladd(s, c32, x, k);
    memcpy(pi + ECVRF_PT_LEN + ECVRF_C_LEN, s, 32);

    if (trace) {
        memcpy(trace->x, x, 32);
        memcpy(trace->pk, pk, 32);
        memcpy(trace->k_string, k_string, 64);
        memcpy(trace->k, k, 32);
        memcpy(trace->u, enc[0], 32);
        memcpy(trace->v, enc[1], 32);
        memcpy(trace->c, pi + ECVRF_PT_LEN, ECVRF_C_LEN);
        memcpy(trace->s, s, 32);
        memcpy(trace->pi, pi, ECVRF_PROOF_LEN);
        st = ecvrf_proof_to_hash(suite, trace->beta, pi);
    }
done:
    secure_wipe(x, sizeof(x));
    secure_wipe(seed, sizeof(seed));
    secure_wipe(k_string, sizeof(k_string));
    secure_wipe(k, sizeof(k));
    secure_wipe(&htable, sizeof(htable));
    secure_wipe(pts, sizeof(pts));
    return st;
}

int ecvrf_verify(int suite, uint8_t beta[ECVRF_BETA_LEN], const uint8_t pk[ECVRF_PK_LEN],
                 const uint8_t pi[ECVRF_PROOF_LEN], const uint8_t *alpha, size_t alpha_len)
{
    ge_p3 Y, Gamma, negY, negGamma, pts[4]; /* H, U, V, 8 Gamma */
    uint8_t enc[4][32], c32[32], c_check[ECVRF_C_LEN];
    const uint8_t *s = pi + ECVRF_PT_LEN + ECVRF_C_LEN;
    uint8_t diff = 0;
    int st;

    if (!suite_ok(suite)) return ECVRF_ERR_SUITE;
    if (!initialised) return ECVRF_ERR_INIT;
    st = decode_key(&Y, pk);
    if (st != ECVRF_OK) return st;
    st = decode_proof(&Gamma, pi);
    if (st != ECVRF_OK) return st;
    memset(c32, 0, sizeof(c32));
    memcpy(c32, pi + ECVRF_PT_LEN, ECVRF_C_LEN);

    st = encode_to_curve(suite, &pts[0], pk, alpha, alpha_len, NULL);
    if (st != ECVRF_OK) return st;
    /* U = s B - c Y, V = s H - c Gamma */
    ge_p3_neg(&negY, &Y);
    ge_p3_neg(&negGamma, &Gamma);
    ge_double_scalarmult_base_vartime(&pts[1], s, c32, &negY);
    ge_double_scalarmult_vartime(&pts[2], s, &pts[0], c32, &negGamma);
    ge_mul_by_cofactor(&pts[3], &Gamma);
    ge_p3_batch_tobytes(enc, pts, 4);

    challenge(c_check, suite, pk, enc[0], pi, enc[1], enc[2]);
    for (int i = 0; i < ECVRF_C_LEN; i++) diff |= (uint8_t)(c_check[i] ^ pi[ECVRF_PT_LEN + i]);
    if (diff != 0) return ECVRF_ERR_VERIFY;
    beta_from_gamma8(beta, suite, enc[3]);
    return ECVRF_OK;
}

int ecvrf_proof_to_hash(int suite, uint8_t beta[ECVRF_BETA_LEN], const uint8_t pi[ECVRF_PROOF_LEN])
{
    ge_p3 Gamma, Gamma8;
    uint8_t enc[32];
    int st;
    if (!suite_ok(suite)) return ECVRF_ERR_SUITE;
    if (!initialised) return ECVRF_ERR_INIT;
    st = decode_proof(&Gamma, pi);
    if (st != ECVRF_OK) return st;
    ge_mul_by_cofactor(&Gamma8, &Gamma);
    ge_p3_tobytes(enc, &Gamma8);
    beta_from_gamma8(beta, suite, enc);
    return ECVRF_OK;
}
