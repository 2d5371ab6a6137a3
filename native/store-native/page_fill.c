/*
 * Restore's page fill on threads: copies a batch of pages into the process being restored, each job
 * from a segment file (pread) or from a buffer the caller decoded, into the new process by one of
 * three means (UFFDIO_COPY into fresh anonymous memory, process_vm_writev, pwrite on /proc/PID/mem).
 * Why threads: allocating and filling 4 KiB pages is the restore's cost (the kernel does it inside
 * each copy), and two cores do it in ~0.6x the time of one. The jobs touch disjoint pages, so their
 * order does not matter.
 *
 *   fill(pid, uffd, memFd, jobs: BigUint64Array, buffers: Uint8Array[], fds: Int32Array, threads)
 *   jobs: 6 u64 per job = dst, len, method (0 uffd, 1 process_vm_writev, 2 /proc/PID/mem),
 *         source kind (0 = fds[index] at offset, 1 = buffers[index] at offset), index, offset.
 * Throws an Error naming the first job that failed and its errno; the other threads stop soon after.
 */
#define _GNU_SOURCE
#include "addon.h"
#include <errno.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#define CHUNK (1u << 20)
#define PAGE 4096u
#define MAX_THREADS 16

struct job { uint64_t dst, len, method, kind, index, offset; };

struct batch {
  int pid, uffd, mem;
  const struct job *jobs;
  size_t njobs;
  uint8_t **bufs;
  size_t *buf_lens;
  size_t nbufs;
  const int32_t *fds;
  size_t nfds;
  atomic_size_t next;
  atomic_int failed;
  pthread_mutex_t lock;
  char error[256];
};

static void set_error(struct batch *b, const char *what, uint64_t dst, int err) {
  pthread_mutex_lock(&b->lock);
  if (!b->error[0]) snprintf(b->error, sizeof b->error, "%s at 0x%llx failed: %s (errno %d)", what, (unsigned long long)dst, strerror(err), err);
  pthread_mutex_unlock(&b->lock);
  atomic_store(&b->failed, 1);
}

/* pwrite on /proc/PID/mem: also writes read-only private pages (the kernel breaks copy-on-write). */
static int mem_write(struct batch *b, const uint8_t *src, uint64_t len, uint64_t dst) {
  while (len > 0) {
    ssize_t n = pwrite(b->mem, src, len, (off_t)dst);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) { set_error(b, "write through /proc/PID/mem", dst, n < 0 ? errno : EIO); return -1; }
    src += n; dst += (uint64_t)n; len -= (uint64_t)n;
  }
  return 0;
}

/* process_vm_writev, which refuses read-only pages: what it could not write goes through /proc/PID/mem. */
static int vm_write(struct batch *b, const uint8_t *src, uint64_t len, uint64_t dst) {
  while (len > 0) {
    struct iovec local = { (void *)src, len }, remote = { (void *)dst, len };
    ssize_t n = process_vm_writev(b->pid, &local, 1, &remote, 1, 0);
    if (n <= 0) return mem_write(b, src, len, dst);
    src += n; dst += (uint64_t)n; len -= (uint64_t)n;
  }
  return 0;
}

/* UFFDIO_COPY: the kernel allocates each page and copies into it in one step. A page that exists
 * already (EEXIST: something touched it) is written by ordinary means. */
static int uffd_copy(struct batch *b, const uint8_t *src, uint64_t len, uint64_t dst) {
  while (len > 0) {
    struct uffdio_copy c = { .dst = dst, .src = (uint64_t)(uintptr_t)src, .len = len, .mode = 0, .copy = 0 };
    if (ioctl(b->uffd, UFFDIO_COPY, &c) == 0) return 0;
    int err = errno;
    uint64_t done = c.copy > 0 ? (uint64_t)c.copy : 0;
    src += done; dst += done; len -= done;
    if (err == EEXIST) {
      if (vm_write(b, src, PAGE, dst) < 0) return -1;
      src += PAGE; dst += PAGE; len -= PAGE;
    } else if (err != EAGAIN && err != EINTR) {
      set_error(b, "UFFDIO_COPY", dst, err);
      return -1;
    }
  }
  return 0;
}

static int put(struct batch *b, uint64_t method, const uint8_t *src, uint64_t len, uint64_t dst) {
  if (method == 0) return uffd_copy(b, src, len, dst);
  if (method == 1) return vm_write(b, src, len, dst);
  return mem_write(b, src, len, dst);
}

static void *worker(void *arg) {
  struct batch *b = arg;
  uint8_t *buf = NULL;
  for (;;) {
    if (atomic_load(&b->failed)) break;
    size_t i = atomic_fetch_add(&b->next, 1);
    if (i >= b->njobs) break;
    const struct job *j = &b->jobs[i];
    if (j->kind == 1) {
      if (put(b, j->method, b->bufs[j->index] + j->offset, j->len, j->dst) < 0) break;
      continue;
    }
    if (!buf && posix_memalign((void **)&buf, PAGE, CHUNK) != 0) { buf = NULL; set_error(b, "allocating a copy buffer", j->dst, ENOMEM); break; }
    for (uint64_t done = 0; done < j->len;) {
      uint64_t n = j->len - done < CHUNK ? j->len - done : CHUNK;
      uint64_t got = 0;
      while (got < n) {
        ssize_t r = pread(b->fds[j->index], buf + got, n - got, (off_t)(j->offset + done + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) { set_error(b, "reading a segment file for the page", j->dst + done, r < 0 ? errno : EIO); goto out; }
        got += (uint64_t)r;
      }
      if (put(b, j->method, buf, n, j->dst + done) < 0) goto out;
      done += n;
    }
  }
out:
  free(buf);
  return NULL;
}

napi_value page_fill(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 7) return fail(env, "fill(pid, uffd, memFd, jobs, buffers, fds, threads)");
  int32_t pid, uffd, mem, threads;
  if (napi_get_value_int32(env, argv[0], &pid) != napi_ok || napi_get_value_int32(env, argv[1], &uffd) != napi_ok ||
      napi_get_value_int32(env, argv[2], &mem) != napi_ok || napi_get_value_int32(env, argv[6], &threads) != napi_ok) return fail(env, "fill: pid, uffd, memFd and threads must be numbers");
  napi_typedarray_type type;
  size_t njobs_u64, nfds;
  void *jobs_data, *fds_data;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, argv[3], &type, &njobs_u64, &jobs_data, &ab, &off) != napi_ok || type != napi_biguint64_array || njobs_u64 % 6 != 0) return fail(env, "fill: jobs must be a BigUint64Array of 6 values per job");
  if (napi_get_typedarray_info(env, argv[5], &type, &nfds, &fds_data, &ab, &off) != napi_ok || type != napi_int32_array) return fail(env, "fill: fds must be an Int32Array");
  uint32_t nbufs;
  if (napi_get_array_length(env, argv[4], &nbufs) != napi_ok) return fail(env, "fill: buffers must be an array");
  uint8_t **bufs = calloc(nbufs ? nbufs : 1, sizeof *bufs);
  size_t *lens = calloc(nbufs ? nbufs : 1, sizeof *lens);
  if (!bufs || !lens) { free(bufs); free(lens); return fail(env, "fill: out of memory"); }
  for (uint32_t i = 0; i < nbufs; i++) {
    napi_value v;
    if (napi_get_element(env, argv[4], i, &v) != napi_ok || !bytes_of(env, v, &bufs[i], &lens[i])) { free(bufs); free(lens); return fail(env, "fill: every buffer must be a Uint8Array"); }
  }
  struct batch b = { .pid = pid, .uffd = uffd, .mem = mem, .jobs = jobs_data, .njobs = njobs_u64 / 6, .bufs = bufs, .buf_lens = lens, .nbufs = nbufs, .fds = fds_data, .nfds = nfds };
  atomic_init(&b.next, 0);
  atomic_init(&b.failed, 0);
  pthread_mutex_init(&b.lock, NULL);
  b.error[0] = 0;
  /* Every source is checked before any thread runs: a bad index must never read out of bounds. */
  for (size_t i = 0; i < b.njobs; i++) {
    const struct job *j = &b.jobs[i];
    int bad = j->method > 2 || (j->method == 0 && uffd < 0) || (j->method != 1 && j->method != 0 && mem < 0) || j->dst % PAGE != 0 || j->len % PAGE != 0 ||
      (j->kind == 1 ? (j->index >= nbufs || j->offset > lens[j->index] || j->len > lens[j->index] - j->offset) : (j->kind != 0 || j->index >= nfds));
    if (bad) { free(bufs); free(lens); pthread_mutex_destroy(&b.lock); return fail(env, "fill: a job names a source or method it may not use"); }
  }
  int n = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
  if ((size_t)n > b.njobs) n = b.njobs ? (int)b.njobs : 1;
  pthread_t th[MAX_THREADS];
  int started = 0;
  for (int i = 1; i < n; i++) {
    if (pthread_create(&th[started], NULL, worker, &b) != 0) break;
    started++;
  }
  worker(&b); /* this thread takes its share too */
  for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
  free(bufs);
  free(lens);
  pthread_mutex_destroy(&b.lock);
  if (atomic_load(&b.failed)) {
    napi_throw_error(env, "EFILL", b.error);
    return NULL;
  }
  return NULL;
}
