/* SHA-512 (FIPS 180-4), incremental. Constant time in the data (only lengths steer it). */
#ifndef POSI_SHA512_H
#define POSI_SHA512_H

#include <stddef.h>
#include <stdint.h>

#define SHA512_DIGEST_LEN 64
#define SHA512_BLOCK_LEN 128

typedef struct {
    uint64_t state[8];
    uint64_t count_lo, count_hi; /* message length in bytes, 128-bit */
    uint8_t buf[SHA512_BLOCK_LEN];
    size_t buflen;
} sha512_ctx;

void sha512_init(sha512_ctx *ctx);
void sha512_update(sha512_ctx *ctx, const uint8_t *data, size_t len);
void sha512_final(sha512_ctx *ctx, uint8_t out[SHA512_DIGEST_LEN]);
void sha512(uint8_t out[SHA512_DIGEST_LEN], const uint8_t *data, size_t len);

#endif
