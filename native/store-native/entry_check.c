/*
 * Checks stream entries (a 32-byte BLAKE3 hash, then its 4096-byte page, back to back: the layout
 * of streams and resume spools) where they lie. Copying the pages side by side first to hash them
 * with digest() cost a copy of every page an import reads (docs/benchmarks.md, "Full round").
 *
 * firstEntryMismatch(buf, n): the index of the first of the n entries at buf whose page does not
 * hash to the hash before it, or -1. Every page is hashed, all-zero ones included (their stored
 * hash is BLAKE3 of the zero page, as anywhere else).
 */
#include <node_api.h>
#include <stdint.h>
#include <string.h>

#include "addon.h"

#define PAGE 4096
#define HASH 32
#define ENTRY (HASH + PAGE)
/* As page_hash.c's batch: a multiple of every SIMD degree. */
#define BATCH 64

static int64_t first_mismatch(const uint8_t *buf, size_t n) {
  const uint8_t *pages[BATCH];
  uint8_t got[BATCH][HASH];
  uint8_t *out[BATCH];
  for (size_t j = 0; j < BATCH; j++) out[j] = got[j];
  for (size_t i = 0; i < n; i += BATCH) {
    size_t k = n - i < BATCH ? n - i : BATCH;
    for (size_t j = 0; j < k; j++) pages[j] = buf + (i + j) * ENTRY + HASH;
    hash_pages(pages, k, out);
    for (size_t j = 0; j < k; j++) {
      if (memcmp(got[j], buf + (i + j) * ENTRY, HASH) != 0) return (int64_t)(i + j);
    }
  }
  return -1;
}

napi_value entry_check_first_mismatch(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2) return fail(env, "firstEntryMismatch(buf, n) takes 2 arguments");
  uint8_t *buf;
  size_t len;
  int64_t n;
  if (!bytes_of(env, argv[0], &buf, &len)) return fail(env, "firstEntryMismatch: buf must be a Uint8Array");
  if (napi_get_value_int64(env, argv[1], &n) != napi_ok || n < 0) return fail(env, "firstEntryMismatch: n must be a non-negative number");
  if (len / ENTRY < (size_t)n) return fail(env, "firstEntryMismatch: buf is shorter than n entries");
  napi_value r;
  if (napi_create_int64(env, first_mismatch(buf, (size_t)n), &r) != napi_ok) return NULL;
  return r;
}
