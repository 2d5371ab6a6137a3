/*
 * BLAKE3 of many 4 KiB pages in one call, the same 32-byte hash per page as any BLAKE3 of that
 * page alone (the store's page identity: docs/store-format.md). Through a binding called once per
 * page, the call itself cost ~3.5 of the ~4.3 us a page took (docs/benchmarks.md "Store").
 *
 * A page is 4 chunks of 1 KiB, so hashing one page at a time leaves most SIMD lanes idle (AVX-512
 * hashes 16 chunks at once). Instead, chunk j of every page in a batch is hashed in one
 * blake3_hash_many call (counter j for all of them), then the two parent levels of every page the
 * same way: the tree BLAKE3 builds for a 4096-byte input, laid out across pages instead of along
 * one.
 *
 * digest(data, n, zero, hashes): for page i of data (n pages), zero[i] = 1 when it is all zeros
 * (its hash slot is left as it was: the store never hashes zero pages), else 0 and
 * hashes[32i..32i+32) = BLAKE3(page).
 */
#include <node_api.h>
#include <stdint.h>
#include <string.h>

#include "addon.h"
#include "blake3_impl.h"

#define PAGE 4096
#define HASH 32
#define CHUNKS_PER_PAGE (PAGE / BLAKE3_CHUNK_LEN)
/* Pages hashed together: a multiple of every SIMD degree (16 for AVX-512), small enough for the stack. */
#define BATCH 64

static int page_is_zero(const uint8_t *p) {
  const uint64_t *w = (const uint64_t *)p;
  if (w[0] | w[PAGE / 16] | w[PAGE / 8 - 1]) return 0;
  uint64_t acc = 0;
  for (size_t i = 0; i < PAGE / 8; i++) acc |= w[i];
  return acc == 0;
}

/* BLAKE3 of k (<= BATCH) whole pages into out[i] (32 bytes each); entry_check.c uses it too. */
void hash_pages(const uint8_t *const *pages, size_t k, uint8_t *const *out) {
  const uint8_t *inputs[BATCH * 2];
  uint8_t chunk_cvs[CHUNKS_PER_PAGE][BATCH * HASH];
  uint8_t parents[BATCH * 2 * BLAKE3_BLOCK_LEN];
  uint8_t mids[BATCH * 2 * HASH];
  uint8_t roots[BATCH * HASH];
  for (size_t j = 0; j < CHUNKS_PER_PAGE; j++) {
    for (size_t i = 0; i < k; i++) inputs[i] = pages[i] + j * BLAKE3_CHUNK_LEN;
    blake3_hash_many(inputs, k, BLAKE3_CHUNK_LEN / BLAKE3_BLOCK_LEN, IV, j, false, 0, CHUNK_START, CHUNK_END, chunk_cvs[j]);
  }
  /* Level 1: parent(c0, c1) and parent(c2, c3) of each page. */
  for (size_t i = 0; i < k; i++) {
    uint8_t *p = parents + i * 2 * BLAKE3_BLOCK_LEN;
    memcpy(p, chunk_cvs[0] + i * HASH, HASH);
    memcpy(p + HASH, chunk_cvs[1] + i * HASH, HASH);
    memcpy(p + 2 * HASH, chunk_cvs[2] + i * HASH, HASH);
    memcpy(p + 3 * HASH, chunk_cvs[3] + i * HASH, HASH);
    inputs[2 * i] = p;
    inputs[2 * i + 1] = p + BLAKE3_BLOCK_LEN;
  }
  blake3_hash_many(inputs, 2 * k, 1, IV, 0, false, PARENT, 0, 0, mids);
  /* Root: the two level-1 values of page i sit side by side in mids, i.e. its root block. */
  for (size_t i = 0; i < k; i++) inputs[i] = mids + i * 2 * HASH;
  blake3_hash_many(inputs, k, 1, IV, 0, false, PARENT | ROOT, 0, 0, roots);
  for (size_t i = 0; i < k; i++) memcpy(out[i], roots + i * HASH, HASH);
}

void digest_pages(const uint8_t *data, size_t pages, uint8_t *zero, uint8_t *hashes) {
  const uint8_t *batch[BATCH];
  uint8_t *out[BATCH];
  size_t k = 0;
  for (size_t i = 0; i < pages; i++) {
    const uint8_t *p = data + i * PAGE;
    if (page_is_zero(p)) { zero[i] = 1; continue; }
    zero[i] = 0;
    batch[k] = p;
    out[k] = hashes + i * HASH;
    if (++k == BATCH) { hash_pages(batch, k, out); k = 0; }
  }
  if (k) hash_pages(batch, k, out);
}

napi_value page_hash_digest(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 4) return fail(env, "digest(data, n, zero, hashes) takes 4 arguments");
  uint8_t *data, *zero, *hashes;
  size_t data_len, zero_len, hashes_len;
  int64_t n;
  if (!bytes_of(env, argv[0], &data, &data_len)) return fail(env, "digest: data must be a Uint8Array");
  if (napi_get_value_int64(env, argv[1], &n) != napi_ok || n < 0) return fail(env, "digest: n must be a non-negative number");
  if (!bytes_of(env, argv[2], &zero, &zero_len)) return fail(env, "digest: zero must be a Uint8Array");
  if (!bytes_of(env, argv[3], &hashes, &hashes_len)) return fail(env, "digest: hashes must be a Uint8Array");
  size_t pages = (size_t)n;
  if (data_len / PAGE < pages || zero_len < pages || hashes_len / HASH < pages) return fail(env, "digest: a buffer is shorter than n pages need");

  digest_pages(data, pages, zero, hashes);
  return NULL;
}
