/*
 * A capture's fused read: the pages of a range of another process read straight into the caller's
 * buffer (a segment block being assembled, segments.ts) and digested there, in one call. Through
 * separate calls the pages went read buffer -> digest -> one JS copy per page into the block, and
 * each of those passes cost about as much as the read itself (docs/benchmarks.md "Capture").
 *
 * readPages(pid, memFd, addr, dst, dstOffset, pages, zero, hashes) -> bytes read
 *   memFd < 0: process_vm_readv of pid; else pread of that /proc/PID/mem descriptor (mappings
 *   without PROT_READ, which only mem's forced access reads). The whole pages read are digested as
 *   digest() does (zero[i], hashes[32i..]), and the all-zero ones squeezed out: dst then holds the
 *   other pages back to back, in order. Returns the bytes read (zero pages included): short at an
 *   unmapped hole (0 when addr itself is unmapped); a negative errno for any other failure (the
 *   caller names it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "addon.h"

#define PAGE 4096
#define HASH 32

static int64_t read_remote(int32_t pid, int32_t mem_fd, uint64_t addr, uint8_t *dst, size_t len) {
  if (mem_fd < 0) {
    struct iovec local = { dst, len };
    struct iovec remote = { (void *)(uintptr_t)addr, len };
    ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (n < 0) return errno == EFAULT ? 0 : -errno;
    return n;
  }
  size_t done = 0;
  while (done < len) {
    /* Addresses above 2^63 are the file offset's two's complement, as memRead passes them. */
    ssize_t n = pread(mem_fd, dst + done, len - done, (off_t)(addr + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EIO || errno == EFAULT)) break;
    if (n < 0) return -errno;
    if (n == 0) break;
    done += (size_t)n;
  }
  return (int64_t)done;
}

napi_value page_read(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 8) return fail(env, "readPages(pid, memFd, addr, dst, dstOffset, pages, zero, hashes) takes 8 arguments");
  int32_t pid, mem_fd;
  uint64_t addr;
  bool lossless;
  int64_t dst_off, n;
  uint8_t *dst, *zero, *hashes;
  size_t dst_len, zero_len, hashes_len;
  if (napi_get_value_int32(env, argv[0], &pid) != napi_ok || pid <= 0) return fail(env, "readPages: pid must be a process id");
  if (napi_get_value_int32(env, argv[1], &mem_fd) != napi_ok) return fail(env, "readPages: memFd must be a number (-1: none)");
  if (napi_get_value_bigint_uint64(env, argv[2], &addr, &lossless) != napi_ok || !lossless || addr % PAGE) return fail(env, "readPages: addr must be a page-aligned bigint");
  if (!bytes_of(env, argv[3], &dst, &dst_len)) return fail(env, "readPages: dst must be a Uint8Array");
  if (napi_get_value_int64(env, argv[4], &dst_off) != napi_ok || dst_off < 0) return fail(env, "readPages: dstOffset must be a non-negative number");
  if (napi_get_value_int64(env, argv[5], &n) != napi_ok || n < 0) return fail(env, "readPages: pages must be a non-negative number");
  if (!bytes_of(env, argv[6], &zero, &zero_len)) return fail(env, "readPages: zero must be a Uint8Array");
  if (!bytes_of(env, argv[7], &hashes, &hashes_len)) return fail(env, "readPages: hashes must be a Uint8Array");
  size_t pages = (size_t)n;
  if ((uint64_t)dst_off > dst_len || (dst_len - (size_t)dst_off) / PAGE < pages || zero_len < pages || hashes_len / HASH < pages) return fail(env, "readPages: a buffer is shorter than the pages need");

  uint8_t *at = dst + dst_off;
  int64_t got = read_remote(pid, mem_fd, addr, at, pages * PAGE);
  if (got > 0) {
    size_t whole = (size_t)got / PAGE;
    digest_pages(at, whole, zero, hashes);
    /* Zero pages are never stored (zero records): the others move down over them now, while
     * they are in the cache, one memmove per run of them. */
    size_t w = 0;
    for (size_t i = 0; i < whole; ) {
      if (zero[i]) { i++; continue; }
      size_t j = i;
      while (j < whole && !zero[j]) j++;
      if (w != i) memmove(at + w * PAGE, at + i * PAGE, (j - i) * PAGE);
      w += j - i;
      i = j;
    }
  }
  napi_value out;
  napi_create_int64(env, got, &out);
  return out;
}
