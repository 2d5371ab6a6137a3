/*
 * CRC-32 (the zlib / gzip polynomial, reflected 0xEDB88320): the block checksums of segment files,
 * computed on the write-behind thread. Same values as node:zlib crc32. On x86-64 with PCLMULQDQ,
 * 64-byte blocks are folded with carry-less multiplies (Intel's "Fast CRC Computation for Generic
 * Polynomials Using PCLMULQDQ"; fold constants x^(4*128 +- 32) and x^(128 +- 32) mod P, bit-reflected)
 * down to 16 bytes, whose CRC from a zero register is the CRC of everything folded; tables do the
 * rest. Slicing by 8 alone ran at half the speed of zlib here.
 */
#include <pthread.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "addon.h"

static uint32_t table[8][256];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void build(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++)
    for (int k = 1; k < 8; k++) table[k][i] = (table[k - 1][i] >> 8) ^ table[0][table[k - 1][i] & 0xff];
}

/* The register after bytes p[0..n) from register crc (no inversions). */
static uint32_t tables(uint32_t crc, const uint8_t *p, size_t n) {
  while (n && ((uintptr_t)p & 7)) { crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8); n--; }
  for (; n >= 8; p += 8, n -= 8) {
    uint32_t lo, hi;
    memcpy(&lo, p, 4); /* little-endian loads: x86-64 and arm64 */
    memcpy(&hi, p + 4, 4);
    lo ^= crc;
    crc = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^ table[4][lo >> 24] ^
          table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^ table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
  }
  while (n--) crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("pclmul,sse2")))
static uint32_t folded(uint32_t crc, const uint8_t *p, size_t n) {
  const __m128i k4 = _mm_set_epi64x(0x1c6e41596LL, 0x154442bd4LL); /* hi: x^(512-32), lo: x^(512+32) */
  const __m128i k1 = _mm_set_epi64x(0x0ccaa009eLL, 0x1751997d0LL); /* hi: x^(128-32), lo: x^(128+32) */
  __m128i x0 = _mm_loadu_si128((const __m128i *)p), x1 = _mm_loadu_si128((const __m128i *)(p + 16));
  __m128i x2 = _mm_loadu_si128((const __m128i *)(p + 32)), x3 = _mm_loadu_si128((const __m128i *)(p + 48));
  x0 = _mm_xor_si128(x0, _mm_cvtsi32_si128((int)crc));
  p += 64;
  n -= 64;
#define FOLD(x, k, next) _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11)), next)
  for (; n >= 64; p += 64, n -= 64) {
    x0 = FOLD(x0, k4, _mm_loadu_si128((const __m128i *)p));
    x1 = FOLD(x1, k4, _mm_loadu_si128((const __m128i *)(p + 16)));
    x2 = FOLD(x2, k4, _mm_loadu_si128((const __m128i *)(p + 32)));
    x3 = FOLD(x3, k4, _mm_loadu_si128((const __m128i *)(p + 48)));
  }
  x0 = FOLD(x0, k1, x1);
  x0 = FOLD(x0, k1, x2);
  x0 = FOLD(x0, k1, x3);
  for (; n >= 16; p += 16, n -= 16) x0 = FOLD(x0, k1, _mm_loadu_si128((const __m128i *)p));
#undef FOLD
  uint8_t rest[16];
  _mm_storeu_si128((__m128i *)rest, x0);
  return tables(tables(0, rest, 16), p, n);
}
#endif

uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
  pthread_once(&once, build);
#if defined(__x86_64__)
  if (n >= 64 && __builtin_cpu_supports("pclmul")) return ~folded(~crc, p, n);
#endif
  return ~tables(~crc, p, n);
}
