/*
 * Arithmetic modulo the group order q = 2^252 + 27742317777372353535851937790883648493, on
 * 32-byte little-endian strings, with 64-bit limbs and Barrett reduction (HAC 14.42, b = 2^64,
 * k = 4). Constant time except sc_is_canonical_vartime (which only sees public proof bytes).
 */
#ifndef POSI_SC25519_H
#define POSI_SC25519_H

#include <stdint.h>

/* out = in mod q, for any 64-byte little-endian in (a SHA-512 output). */
void sc_reduce64(uint8_t out[32], const uint8_t in[64]);
/* out = (a * b + c) mod q. Requires a * b + c < 2^512, which holds when a, b < 2^255 (the VRF
 * passes a 128-bit challenge, the 255-bit clamped secret scalar and a reduced nonce). */
void sc_muladd(uint8_t out[32], const uint8_t a[32], const uint8_t b[32], const uint8_t c[32]);
/* 1 if s < q. */
int sc_is_canonical_vartime(const uint8_t s[32]);

#endif
