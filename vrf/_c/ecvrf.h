/*
 * ECVRF-EDWARDS25519-SHA512-TAI (suite 0x03) and ECVRF-EDWARDS25519-SHA512-ELL2 (suite 0x04),
 * RFC 9381. Pure computation: no allocation, no I/O, no global state besides the fixed-base
 * tables built once by ecvrf_init. Every function returns an ecvrf_status; the caller decides
 * what a status means for its user.
 */
#ifndef POSI_ECVRF_H
#define POSI_ECVRF_H

#include <stddef.h>
#include <stdint.h>

#define ECVRF_SUITE_TAI 0x03
#define ECVRF_SUITE_ELL2 0x04
#define ECVRF_SK_LEN 32
#define ECVRF_PK_LEN 32
#define ECVRF_PT_LEN 32
#define ECVRF_Q_LEN 32
#define ECVRF_C_LEN 16
#define ECVRF_PROOF_LEN (ECVRF_PT_LEN + ECVRF_C_LEN + ECVRF_Q_LEN)
#define ECVRF_BETA_LEN 64
/* RFC 9381 5.4.1.1 encodes the try-and-increment counter in one byte. */
#define ECVRF_TAI_MAX_TRIES 256
/* RFC 9380 hash_to_field for edwards25519: L = ceil((255 + 128) / 8) = 48 bytes per element. */
#define ECVRF_H2C_L 48

typedef enum {
    ECVRF_OK = 0,
    ECVRF_ERR_KEY_ENCODING = 1,   /* public key: not a canonical encoding of a curve point */
    ECVRF_ERR_KEY_SMALL_ORDER = 2,/* public key: one of the 8 points of small order */
    ECVRF_ERR_PROOF_GAMMA = 3,    /* proof: Gamma is not a canonical encoding of a curve point */
    ECVRF_ERR_PROOF_S = 4,        /* proof: s >= q */
    ECVRF_ERR_VERIFY = 5,         /* proof decodes but the challenge does not match */
    ECVRF_ERR_SUITE = 6,          /* suite is neither 0x03 nor 0x04 */
    ECVRF_ERR_ENCODE = 7,         /* try-and-increment found no point in 256 tries (p ~ 2^-256) */
    ECVRF_ERR_INIT = 8            /* ecvrf_init was not called or failed */
} ecvrf_status;

/* Intermediate values of encode_to_curve, for the RFC 9381 appendix B vectors. */
typedef struct {
    int tai_ctr;                    /* TAI: counter of the accepted try; ELL2: -1 */
    uint8_t uniform[ECVRF_H2C_L];   /* ELL2: expand_message_xmd output */
    uint8_t u[32];                  /* ELL2: the field element u, little-endian */
    uint8_t gx1[32];                /* ELL2: g(x1) = x1^3 + 486662 x1^2 + x1, little-endian */
    int gx1_is_square;              /* ELL2: the branch the straight-line map took */
    int gx1_legendre;               /* ELL2: Legendre symbol of g(x1) by exponentiation */
} ecvrf_h2c_trace;

/* Every intermediate of a proof (RFC 9381 appendix B field names). */
typedef struct {
    uint8_t x[32];
    uint8_t pk[ECVRF_PK_LEN];
    ecvrf_h2c_trace h2c;
    uint8_t h[32];
    uint8_t k_string[64];
    uint8_t k[32];
    uint8_t u[32];
    uint8_t v[32];
    uint8_t gamma[32];
    uint8_t c[ECVRF_C_LEN];
    uint8_t s[32];
    uint8_t pi[ECVRF_PROOF_LEN];
    uint8_t beta[ECVRF_BETA_LEN];
} ecvrf_trace;

int ecvrf_init(void);
int ecvrf_public_key(uint8_t pk[ECVRF_PK_LEN], const uint8_t sk[ECVRF_SK_LEN]);
int ecvrf_validate_key(int suite, const uint8_t pk[ECVRF_PK_LEN]);
/* trace may be NULL; when given it receives every intermediate (it then holds secrets). */
int ecvrf_prove(int suite, uint8_t pi[ECVRF_PROOF_LEN], const uint8_t sk[ECVRF_SK_LEN],
                const uint8_t *alpha, size_t alpha_len, ecvrf_trace *trace);
int ecvrf_verify(int suite, uint8_t beta[ECVRF_BETA_LEN], const uint8_t pk[ECVRF_PK_LEN],
                 const uint8_t pi[ECVRF_PROOF_LEN], const uint8_t *alpha, size_t alpha_len);
int ecvrf_proof_to_hash(int suite, uint8_t beta[ECVRF_BETA_LEN], const uint8_t pi[ECVRF_PROOF_LEN]);
/* encode_to_curve(salt = pk bytes as given, alpha) -> point encoding h. trace may be NULL. */
int ecvrf_encode_to_curve(int suite, uint8_t h[32], const uint8_t pk[ECVRF_PK_LEN],
                          const uint8_t *alpha, size_t alpha_len, ecvrf_h2c_trace *trace);

/* Test hooks over the RFC 9380 pieces (appendix J.5.2 vectors use another DST):
 * encode_to_curve for edwards25519_XMD:SHA-512_ELL2_NU_ with any DST of at most 255 bytes
 * (u, the map output Q and P = 8 Q), and the Elligator 2 map alone for a field element u
 * (32 bytes little-endian, bit 255 ignored). */
int ecvrf_h2c_nu(uint8_t u_out[32], uint8_t q_out[32], uint8_t p_out[32], const uint8_t *msg,
                 size_t msg_len, const uint8_t *dst, size_t dst_len);
void ecvrf_ell2_map(uint8_t q_out[32], const uint8_t u[32]);

#endif
