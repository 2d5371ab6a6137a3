/*
 * The writer's per-page decisions for a batch of a root checkpoint whose pages are found nowhere
 * else in the store (writer.ts storeRuns: a full checkpoint's usual case), next to the digest: in
 * JS they cost ~0.1 s of main-thread CPU per GiB (a table probe, a 32-byte hash copy and compare,
 * a run extension and a few calls per page); here JS handles the batch, not its pages.
 *
 * decidePages(zero, hashes, n, keys, vals, segHashes, buf, first, runs, state) -> runs written
 *   Page i of the batch (n pages, digested as digest() gives them: zero[i], hashes[32i..]) is
 *   - all zero: a zero record;
 *   - already in the segment (its first 4 hash bytes, as readInt32LE gives them, name a page in the
 *     page table keys/vals, page-slots.ts PageSlots' layout, whose full hash in segHashes is the same):
 *     a data record of that page; its bytes are not kept;
 *   - else the segment's next page: its hash appended to segHashes, the table told (a key that
 *     named another page names this one from now on), its bytes kept.
 *   The batch's non-zero pages lie back to back from page slot `first` of buf (readPages squeezed
 *   the zero ones out); the kept ones are moved down over those not kept, so they lie back to back
 *   from `first` too, in order.
 *   state (Int32Array, in and out): [0] the table's entries, [1] the segment's pages; out: [2] pages
 *   kept. The caller makes room first: the table at most half full after n more entries, segHashes
 *   for n more pages.
 *   runs (Int32Array, 4 per run, at most 4n): the records, in page order and merged: first page in
 *   the batch, count, kind (the store's, extents.ts: 0 data, 1 zero), first segment page (data).
 */
#include <string.h>

#include "addon.h"

#define PAGE 4096
#define HASH 32
#define KIND_DATA 0
#define KIND_ZERO 1

static uint32_t slot_of(int32_t key, uint32_t mask) {
  uint32_t k = (uint32_t)key;
  return ((k * 0x9e3779b1u) ^ (k >> 16)) & mask;
}

napi_value page_decide(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 10) return fail(env, "decidePages(zero, hashes, n, keys, vals, segHashes, buf, first, runs, state) takes 10 arguments");
  uint8_t *zero, *hashes, *seg_hashes, *buf;
  int32_t *keys, *vals, *runs, *state;
  size_t zero_len, hashes_len, seg_len, buf_len, keys_len, vals_len, runs_len, state_len;
  int64_t n64, first64;
  if (!bytes_of(env, argv[0], &zero, &zero_len)) return fail(env, "decidePages: zero must be a Uint8Array");
  if (!bytes_of(env, argv[1], &hashes, &hashes_len)) return fail(env, "decidePages: hashes must be a Uint8Array");
  if (napi_get_value_int64(env, argv[2], &n64) != napi_ok || n64 < 0) return fail(env, "decidePages: n must be a non-negative number");
  if (!int32s_of(env, argv[3], &keys, &keys_len) || !int32s_of(env, argv[4], &vals, &vals_len) || keys_len != vals_len || keys_len == 0 || (keys_len & (keys_len - 1))) return fail(env, "decidePages: keys and vals must be Int32Arrays of one power-of-two length");
  if (!bytes_of(env, argv[5], &seg_hashes, &seg_len)) return fail(env, "decidePages: segHashes must be a Uint8Array");
  if (!bytes_of(env, argv[6], &buf, &buf_len)) return fail(env, "decidePages: buf must be a Uint8Array");
  if (napi_get_value_int64(env, argv[7], &first64) != napi_ok || first64 < 0) return fail(env, "decidePages: first must be a non-negative number");
  if (!int32s_of(env, argv[8], &runs, &runs_len)) return fail(env, "decidePages: runs must be an Int32Array");
  if (!int32s_of(env, argv[9], &state, &state_len) || state_len < 3) return fail(env, "decidePages: state must be an Int32Array of 3");
  size_t n = (size_t)n64, first = (size_t)first64;
  if (zero_len < n || hashes_len / HASH < n || runs_len / 4 < n) return fail(env, "decidePages: a buffer is shorter than n pages need");
  if (state[0] < 0 || state[1] < 0) return fail(env, "decidePages: state holds negative counts");
  size_t count = (size_t)state[0], pages = (size_t)state[1];
  size_t nonzero = 0;
  for (size_t i = 0; i < n; i++) nonzero += zero[i] ? 0 : 1;
  if ((count + n) * 2 > keys_len) return fail(env, "decidePages: the page table has no room for n more pages");
  if (seg_len / HASH < pages + n) return fail(env, "decidePages: segHashes has no room for n more pages");
  if (first > buf_len / PAGE || buf_len / PAGE - first < nonzero) return fail(env, "decidePages: buf does not hold the batch's pages");

  uint32_t mask = (uint32_t)keys_len - 1;
  size_t kept = 0, read = 0, nruns = 0;
  int32_t *run = NULL;
  for (size_t i = 0; i < n; i++) {
    int32_t kind, page;
    if (zero[i]) {
      kind = KIND_ZERO;
      page = 0;
    } else {
      const uint8_t *h = hashes + i * HASH;
      int32_t key;
      memcpy(&key, h, 4); /* little-endian: x86-64 and arm64, as readInt32LE */
      uint32_t s = slot_of(key, mask);
      int32_t held = -1;
      while (vals[s] != 0) {
        if (keys[s] == key) { held = vals[s] - 1; break; }
        s = (s + 1) & mask;
      }
      /* A table entry past the pages written so far would be a table out of step with the segment: never read behind it. */
      if (held >= 0 && (size_t)held >= pages) return fail(env, "decidePages: the page table names a page the segment does not hold");
      if (held >= 0 && memcmp(seg_hashes + (size_t)held * HASH, h, HASH) == 0) {
        page = held;
      } else {
        /* A new page: the slot found is the key's (held >= 0: another page's, now this one's) or the empty one ending its probe. */
        page = (int32_t)pages;
        if (held < 0) { keys[s] = key; count++; }
        vals[s] = page + 1;
        memcpy(seg_hashes + pages * HASH, h, HASH);
        if (kept != read) memmove(buf + (first + kept) * PAGE, buf + (first + read) * PAGE, PAGE);
        pages++;
        kept++;
      }
      read++;
      kind = KIND_DATA;
    }
    if (run && run[0] + run[1] == (int32_t)i && run[2] == kind && (kind == KIND_ZERO || run[3] + run[1] == page)) { run[1]++; continue; }
    run = runs + 4 * nruns++;
    run[0] = (int32_t)i;
    run[1] = 1;
    run[2] = kind;
    run[3] = page;
  }
  state[0] = (int32_t)count;
  state[1] = (int32_t)pages;
  state[2] = (int32_t)kept;
  napi_value out;
  napi_create_int64(env, (int64_t)nruns, &out);
  return out;
}
