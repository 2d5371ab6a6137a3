/* Stasis's native helpers (one addon): page hashes (page_hash.c), write-behind (write_behind.c) and
 * restore's threaded page fill (page_fill.c), capture's fused read (page_read.c) and the writer's per-page decisions (page_decide.c), stream entries
 * checked in place (entry_check.c). */
#ifndef STORE_NATIVE_ADDON_H
#define STORE_NATIVE_ADDON_H
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

napi_value page_hash_digest(napi_env env, napi_callback_info info);
napi_value write_behind_open(napi_env env, napi_callback_info info);
napi_value write_behind_write(napi_env env, napi_callback_info info);
napi_value write_behind_write_blocks(napi_env env, napi_callback_info info);
napi_value write_behind_sync(napi_env env, napi_callback_info info);
napi_value write_behind_wait(napi_env env, napi_callback_info info);
napi_value write_behind_close(napi_env env, napi_callback_info info);
napi_value page_fill(napi_env env, napi_callback_info info);
napi_value page_read(napi_env env, napi_callback_info info);
napi_value page_decide(napi_env env, napi_callback_info info);
napi_value entry_check_first_mismatch(napi_env env, napi_callback_info info);

/* Throws a TypeError with msg; returns NULL for the caller to return. */
napi_value fail(napi_env env, const char *msg);
/* The bytes of a Uint8Array (Buffer included); 0 when v is something else. */
int bytes_of(napi_env env, napi_value v, uint8_t **data, size_t *len);
/* The elements of an Int32Array (len: their count); 0 when v is something else. */
int int32s_of(napi_env env, napi_value v, int32_t **data, size_t *len);

/* zero[i] and hashes[32i..] of the n pages at data, as digest() gives them (page_hash.c). */
void digest_pages(const uint8_t *data, size_t n, uint8_t *zero, uint8_t *hashes);
/* BLAKE3 of k (at most 64) whole pages, pages[i] into out[i] (page_hash.c). */
void hash_pages(const uint8_t *const *pages, size_t k, uint8_t *const *out);
/* CRC-32 as zlib computes it (crc32.c): crc32_update(0, p, n) = zlib crc32(0, p, n). */
uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n);
#endif
