/*
 * The edwards25519 group: -x^2 + y^2 = 1 + d x^2 y^2 over GF(2^255 - 19).
 *
 * Representations (Hisil-Wong-Carter-Dawson extended coordinates):
 *   ge_p2     (X:Y:Z)        x = X/Z, y = Y/Z            - input of a doubling
 *   ge_p3     (X:Y:Z:T)      as p2 with T = XY/Z         - input of an addition
 *   ge_p1p1   ((X:Z),(Y:T))  x = X/Z, y = Y/T            - output of add/double before the
 *                                                           3 (to p2) or 4 (to p3) multiplications
 *   ge_cached (Y+X, Y-X, Z, 2dT)                          - a variable point ready to be added
 *   ge_precomp(y+x, y-x, 2dxy) with Z = 1                 - a table point (mixed addition)
 * The formulas are complete for a = -1 (no exceptional cases), so the same code adds a point to
 * itself, to its negative and to the identity.
 *
 * Timing: ge_scalarmult_base and ge_scalarmult_ct run the same instructions and touch the same
 * memory for every scalar (secret scalars: the VRF key x and the nonce k). Functions ending in
 * _vartime branch on their inputs and may only see public data (keys, proofs, hashes).
 */
#ifndef POSI_GE25519_H
#define POSI_GE25519_H

#include <stddef.h>
#include <stdint.h>

#include "fe25519.h"

typedef struct { fe X, Y, Z; } ge_p2;
typedef struct { fe X, Y, Z, T; } ge_p3;
typedef struct { fe X, Y, Z, T; } ge_p1p1;
typedef struct { fe YplusX, YminusX, Z, T2d; } ge_cached;
typedef struct { fe yplusx, yminusx, xy2d; } ge_precomp;

/* Number of entries in a variable-base table: multiples 1..8 of the point (signed radix 16
 * digits lie in [-8, 8]). */
#define GE_CT_TABLE_LEN 8
/* Batch encodings convert at most this many points with one inversion (the VRF needs 4). */
#define GE_BATCH_MAX 8

/* Builds the fixed-base tables for B. Must run once before any other ge_ function; not
 * thread-safe by itself (the module calls it from its init function). Returns 0 on success. */
int ge_tables_init(void);

void ge_p3_0(ge_p3 *h);
void ge_p3_neg(ge_p3 *r, const ge_p3 *p);
void ge_p3_to_cached(ge_cached *r, const ge_p3 *p);
void ge_p3_add(ge_p3 *r, const ge_p3 *p, const ge_p3 *q);
void ge_p3_dbl(ge_p3 *r, const ge_p3 *p);
/* r = 8 p (three doublings). */
void ge_mul_by_cofactor(ge_p3 *r, const ge_p3 *p);
int ge_is_identity_vartime(const ge_p3 *p);

/* RFC 8032 5.1.3 decoding: rejects y >= p, points off the curve and x = 0 with the sign bit
 * set. Returns 0 on success, -1 on failure. Variable time (public encodings only). */
int ge_frombytes_vartime(ge_p3 *h, const uint8_t s[32]);
/* RFC 8032 5.1.2 encoding. Constant time. */
void ge_p3_tobytes(uint8_t s[32], const ge_p3 *p);
/* Encodes n <= GE_BATCH_MAX points with a single field inversion. Constant time. */
void ge_p3_batch_tobytes(uint8_t (*s)[32], const ge_p3 *p, size_t n);

/* h = a * B. Requires a[31] <= 127. Constant time in a. */
void ge_scalarmult_base(ge_p3 *h, const uint8_t a[32]);
/* Variable-base table: row[j][i] = (i + 1) * 2^(64 j) * P. Building it costs 192 doublings,
 * paid once per base and shared by every scalar multiplied with it (prove multiplies H by both
 * x and k), after which each multiplication needs 60 doublings and 64 additions. */
#define GE_CT_ROWS 4
typedef struct {
    ge_cached row[GE_CT_ROWS][GE_CT_TABLE_LEN];
} ge_ct_table_t;
void ge_ct_table(ge_ct_table_t *t, const ge_p3 *p);
/* h = a * P where t = ge_ct_table(P). Requires a[31] <= 127. Constant time in a (P and the
 * table are treated as public). */
void ge_scalarmult_ct(ge_p3 *h, const uint8_t a[32], const ge_ct_table_t *t);

/* r = a * B + b * P. Requires a, b < 2^255. Variable time. */
void ge_double_scalarmult_base_vartime(ge_p3 *r, const uint8_t a[32], const uint8_t b[32],
                                       const ge_p3 *P);
/* r = a * A + b * P. Requires a, b < 2^255. Variable time. */
void ge_double_scalarmult_vartime(ge_p3 *r, const uint8_t a[32], const ge_p3 *A,
                                  const uint8_t b[32], const ge_p3 *P);

#endif
