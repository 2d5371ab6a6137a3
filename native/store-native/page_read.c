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
 *
 * Two cores: a call's two halves are taken in turn by the calling thread and one helper thread
 * (started at the first call, kept for the process's life), each half read and digested by the
 * thread that took it. Reading and hashing were ~380-430 ms/GiB on the main thread, the largest
 * serial stage of a full checkpoint, while the second core only wrote blocks (docs/benchmarks.md
 * "Capture"). The caller never waits for a helper that has not started on the call: it takes
 * both halves itself and closes the call (a helper that is busy elsewhere or descheduled costs
 * nothing but its share). The result is the same as one read: the halves are counted in order up
 * to the first short one. The squeeze of the zero pages stays on the calling thread, after both.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "addon.h"

#define PAGE 4096
#define HASH 32
/*
 * A call is cut in two halves (of a multiple of 16 pages: whole AVX-512 hash batches), one per
 * thread, when it has at least MIN_SPLIT pages. Finer units balanced the threads better but each
 * process_vm_readv has a fixed cost: 32-page units took 23% more CPU per GiB than one read per
 * call, halves 5% (docs/benchmarks.md "Capture").
 */
#define MIN_SPLIT 32
#define MAX_UNITS 2

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

/* One call's range, shared by the two threads. */
typedef struct {
  int32_t pid, mem_fd;
  uint64_t addr;
  uint8_t *dst, *zero, *hashes;
  size_t pages, unit, units;
  atomic_size_t next;
  int64_t got[MAX_UNITS];
} call_t;

/* Reads and digests the units of c not taken yet. */
static void take_units(call_t *c) {
  for (;;) {
    size_t u = atomic_fetch_add(&c->next, 1);
    if (u >= c->units) return;
    size_t first = u * c->unit;
    size_t n = c->pages - first < c->unit ? c->pages - first : c->unit;
    int64_t got = read_remote(c->pid, c->mem_fd, c->addr + (uint64_t)first * PAGE, c->dst + first * PAGE, n * PAGE);
    if (got > 0) digest_pages(c->dst + first * PAGE, (size_t)got / PAGE, c->zero + first, c->hashes + first * HASH);
    c->got[u] = got;
  }
}

/* The helper: IDLE (nothing to do, or the call was closed before it came), POSTED (a call waits
 * for it), JOINED (it works on the call; the caller waits for it to leave). */
enum { IDLE, POSTED, JOINED };
static struct {
  pthread_mutex_t mu;
  pthread_cond_t posted, left;
  int state;
  call_t *call;
  int started;
} helper = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, IDLE, NULL, 0 };

static void *helper_run(void *arg) {
  (void)arg;
  pthread_mutex_lock(&helper.mu);
  for (;;) {
    while (helper.state != POSTED) pthread_cond_wait(&helper.posted, &helper.mu);
    helper.state = JOINED;
    call_t *c = helper.call;
    pthread_mutex_unlock(&helper.mu);
    take_units(c);
    pthread_mutex_lock(&helper.mu);
    helper.state = IDLE;
    pthread_cond_broadcast(&helper.left);
  }
  return NULL;
}

/* Whether the helper thread runs (started here on first use; 0 if it cannot be: one thread then).
 * Call with helper.mu held. */
static int helper_ready(void) {
  if (helper.started) return helper.started > 0;
  pthread_attr_t attr;
  pthread_t t;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  helper.started = pthread_create(&t, &attr, helper_run, NULL) == 0 ? 1 : -1;
  pthread_attr_destroy(&attr);
  return helper.started > 0;
}

/* Reads and digests pages at addr into dst on both threads; the bytes read, or -errno, as read_remote. */
static int64_t read_digest(int32_t pid, int32_t mem_fd, uint64_t addr, uint8_t *dst, size_t pages, uint8_t *zero, uint8_t *hashes) {
  call_t c = { .pid = pid, .mem_fd = mem_fd, .addr = addr, .dst = dst, .zero = zero, .hashes = hashes, .pages = pages };
  /* The first half rounded up to whole hash batches: never more than MAX_UNITS units. */
  c.unit = pages < MIN_SPLIT ? pages : ((pages + 1) / 2 + 15) / 16 * 16;
  c.units = pages == 0 ? 0 : (pages + c.unit - 1) / c.unit;
  atomic_init(&c.next, 0);
  int shared = 0;
  if (c.units > 1) {
    pthread_mutex_lock(&helper.mu);
    /* Another thread's call (worker threads share the addon) keeps the helper: this one reads alone. */
    if (helper.state == IDLE && helper_ready()) {
      helper.call = &c;
      helper.state = POSTED;
      shared = 1;
      pthread_cond_signal(&helper.posted);
    }
    pthread_mutex_unlock(&helper.mu);
  }
  take_units(&c);
  if (shared) {
    pthread_mutex_lock(&helper.mu);
    if (helper.state == POSTED && helper.call == &c) helper.state = IDLE; /* it never came: nothing of c is in its hands */
    while (helper.state == JOINED && helper.call == &c) pthread_cond_wait(&helper.left, &helper.mu);
    pthread_mutex_unlock(&helper.mu);
  }
  int64_t total = 0;
  for (size_t u = 0; u < c.units; u++) {
    int64_t want = (int64_t)((c.pages - u * c.unit < c.unit ? c.pages - u * c.unit : c.unit) * PAGE);
    if (c.got[u] < 0) return total > 0 ? total : c.got[u];
    /* A unit read short stops the range there, as one read would (the pages after are not counted). */
    total += c.got[u];
    if (c.got[u] < want) return total;
  }
  return total;
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
  int64_t got = read_digest(pid, mem_fd, addr, at, pages, zero, hashes);
  if (got > 0) {
    size_t whole = (size_t)got / PAGE;
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
