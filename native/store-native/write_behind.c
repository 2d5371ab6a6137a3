/*
 * Write-behind for one file: the caller queues (buffer, file offset) writes and goes on with its
 * work while a thread of ours writes them in order with pwrite(2), after filling in checksums, and
 * starts the kernel's writeback every few MiB (sync_file_range WRITE) so that the final fsync
 * only waits for the tail. A checkpoint's segment writing and block CRC-32 thus run on the second
 * core, beside the reading and hashing of the pages (docs/benchmarks.md "Capture").
 *
 * Knows nothing of the segment format: each write may carry up to MAX_CRC checksum instructions
 * "CRC-32 of bytes [from, to) of this buffer, stored little-endian at byte `at`", applied in order
 * before the write.
 *
 *   writeBehindOpen(fd, writebackBytes, kickedFrom) -> handle
 *   writeBehindWrite(handle, buf, len, pos, crcs)   -> sequence number (blocks while QUEUE writes are pending)
 *   writeBehindWait(handle, seq)                     waits until write seq is done (its buffer may be reused)
 *   writeBehindClose(handle)                         waits for every write, stops the thread
 * Every call throws the first write error (code = errno name), and so does each later call.
 * The caller keeps the file descriptor open until close() returned; the buffers are referenced
 * until their write is done.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addon.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checksums are stored little-endian with a plain copy: little-endian machines only"
#endif

#define QUEUE 8
#define MAX_CRC WRITE_BEHIND_MAX_CRC

typedef struct {
  uint8_t *data;
  size_t len;
  int64_t pos;
  uint32_t ncrc;
  uint32_t crc[MAX_CRC][3];
  napi_ref ref;
} job_t;

typedef struct {
  int fd;
  int64_t writeback_bytes;
  int64_t kicked;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t has_job;
  pthread_cond_t job_done;
  job_t q[QUEUE];
  uint64_t head;     /* writes queued so far */
  uint64_t done;     /* writes finished (or skipped after an error) */
  uint64_t released; /* buffer references dropped (on the JS thread) */
  int err;           /* first errno, 0 while all is well */
  int stop;
  int closed;
} sink_t;

static void *run(void *arg) {
  sink_t *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (s->done == s->head && !s->stop) pthread_cond_wait(&s->has_job, &s->mu);
    if (s->done == s->head) break;
    job_t *j = &s->q[s->done % QUEUE];
    int failed = s->err;
    pthread_mutex_unlock(&s->mu);
    int e = 0;
    if (!failed) {
      for (uint32_t k = 0; k < j->ncrc; k++) {
        uint32_t c = crc32_update(0, j->data + j->crc[k][0], j->crc[k][1] - j->crc[k][0]);
        memcpy(j->data + j->crc[k][2], &c, 4);
      }
      size_t off = 0;
      while (off < j->len) {
        ssize_t n = pwrite(s->fd, j->data + off, j->len - off, j->pos + (int64_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) { e = n < 0 ? errno : EIO; break; }
        off += (size_t)n;
      }
      int64_t end = j->pos + (int64_t)j->len;
      if (!e && end - s->kicked >= s->writeback_bytes) {
        /* Advice only: a failure here leaves the work to the final fsync. */
        (void)sync_file_range(s->fd, s->kicked, end - s->kicked, SYNC_FILE_RANGE_WRITE);
        s->kicked = end;
      }
    }
    pthread_mutex_lock(&s->mu);
    if (e && !s->err) s->err = e;
    s->done++;
    pthread_cond_broadcast(&s->job_done);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static napi_value throw_errno(napi_env env, int e, const char *op) {
  char msg[256];
  const char *name = strerrorname_np(e);
  snprintf(msg, sizeof msg, "%s: %s, %s", name ? name : "EIO", strerror(e), op);
  napi_throw_error(env, name ? name : "EIO", msg);
  return NULL;
}

/* Drops the references of finished writes (JS thread only). Call with s->mu held. */
static void release_done(napi_env env, sink_t *s) {
  while (s->released < s->done) {
    job_t *j = &s->q[s->released % QUEUE];
    if (j->ref) { napi_delete_reference(env, j->ref); j->ref = NULL; }
    s->released++;
  }
}

static sink_t *sink_of(napi_env env, napi_value v) {
  sink_t *s = NULL;
  if (napi_get_value_external(env, v, (void **)&s) != napi_ok || !s) { fail(env, "write-behind: not a handle"); return NULL; }
  if (s->closed) { fail(env, "write-behind: the handle is closed"); return NULL; }
  return s;
}

/* Stops and joins the thread (every queued write is done or skipped first). */
static void shut(napi_env env, sink_t *s) {
  pthread_mutex_lock(&s->mu);
  s->stop = 1;
  pthread_cond_signal(&s->has_job);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->thread, NULL);
  pthread_mutex_lock(&s->mu);
  release_done(env, s);
  s->closed = 1;
  pthread_mutex_unlock(&s->mu);
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  sink_t *s = data;
  if (!s->closed) shut(env, s);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->has_job);
  pthread_cond_destroy(&s->job_done);
  free(s);
}

napi_value write_behind_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd;
  int64_t wb, from;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3) return fail(env, "writeBehindOpen(fd, writebackBytes, kickedFrom) takes 3 arguments");
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return fail(env, "writeBehindOpen: fd must be a file descriptor");
  if (napi_get_value_int64(env, argv[1], &wb) != napi_ok || wb <= 0) return fail(env, "writeBehindOpen: writebackBytes must be positive");
  if (napi_get_value_int64(env, argv[2], &from) != napi_ok || from < 0) return fail(env, "writeBehindOpen: kickedFrom must be a file offset");
  sink_t *s = calloc(1, sizeof *s);
  if (!s) return throw_errno(env, ENOMEM, "writeBehindOpen");
  s->fd = fd;
  s->writeback_bytes = wb;
  s->kicked = from;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->has_job, NULL);
  pthread_cond_init(&s->job_done, NULL);
  int e = pthread_create(&s->thread, NULL, run, s);
  if (e) { free(s); return throw_errno(env, e, "writeBehindOpen: pthread_create"); }
  napi_value out;
  if (napi_create_external(env, s, finalize, NULL, &out) != napi_ok) { shut(env, s); free(s); return fail(env, "writeBehindOpen: no handle"); }
  return out;
}

napi_value write_behind_write(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 5) return fail(env, "writeBehindWrite(handle, buf, len, pos, crcs) takes 5 arguments");
  sink_t *s = sink_of(env, argv[0]);
  if (!s) return NULL;
  uint8_t *data;
  size_t cap;
  int64_t len, pos;
  uint32_t ncrc;
  bool is_array;
  if (!bytes_of(env, argv[1], &data, &cap)) return fail(env, "writeBehindWrite: buf must be a Uint8Array");
  if (napi_get_value_int64(env, argv[2], &len) != napi_ok || len < 0 || (uint64_t)len > cap) return fail(env, "writeBehindWrite: len must fit in buf");
  if (napi_get_value_int64(env, argv[3], &pos) != napi_ok || pos < 0) return fail(env, "writeBehindWrite: pos must be a file offset");
  if (napi_is_array(env, argv[4], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[4], &ncrc) != napi_ok || ncrc % 3 || ncrc / 3 > MAX_CRC) return fail(env, "writeBehindWrite: crcs must be [from, to, at, ...] (at most writeBehindMaxChecksums triples)");
  job_t j = { .data = data, .len = (size_t)len, .pos = pos, .ncrc = ncrc / 3, .ref = NULL };
  for (uint32_t i = 0; i < ncrc; i++) {
    napi_value v;
    uint32_t x;
    if (napi_get_element(env, argv[4], i, &v) != napi_ok || napi_get_value_uint32(env, v, &x) != napi_ok) return fail(env, "writeBehindWrite: crcs must hold offsets");
    j.crc[i / 3][i % 3] = x;
  }
  for (uint32_t k = 0; k < j.ncrc; k++) {
    if (j.crc[k][0] > j.crc[k][1] || j.crc[k][1] > len || (uint64_t)j.crc[k][2] + 4 > (uint64_t)len) return fail(env, "writeBehindWrite: a checksum range is outside the write");
  }
  if (napi_create_reference(env, argv[1], 1, &j.ref) != napi_ok) return fail(env, "writeBehindWrite: cannot hold the buffer");
  pthread_mutex_lock(&s->mu);
  while (s->head - s->done >= QUEUE && !s->err) pthread_cond_wait(&s->job_done, &s->mu);
  release_done(env, s);
  if (s->err) {
    int e = s->err;
    pthread_mutex_unlock(&s->mu);
    napi_delete_reference(env, j.ref);
    return throw_errno(env, e, "write");
  }
  uint64_t seq = s->head;
  s->q[seq % QUEUE] = j;
  s->head++;
  pthread_cond_signal(&s->has_job);
  pthread_mutex_unlock(&s->mu);
  napi_value out;
  napi_create_double(env, (double)seq, &out);
  return out;
}

napi_value write_behind_wait(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int64_t seq;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2) return fail(env, "writeBehindWait(handle, seq) takes 2 arguments");
  sink_t *s = sink_of(env, argv[0]);
  if (!s) return NULL;
  if (napi_get_value_int64(env, argv[1], &seq) != napi_ok) return fail(env, "writeBehindWait: seq must be a number");
  pthread_mutex_lock(&s->mu);
  while (seq >= 0 && (uint64_t)seq >= s->done && s->done < s->head) pthread_cond_wait(&s->job_done, &s->mu);
  release_done(env, s);
  int e = s->err;
  pthread_mutex_unlock(&s->mu);
  return e ? throw_errno(env, e, "write") : NULL;
}

napi_value write_behind_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1) return fail(env, "writeBehindClose(handle) takes 1 argument");
  sink_t *s = sink_of(env, argv[0]);
  if (!s) return NULL;
  shut(env, s);
  return s->err ? throw_errno(env, s->err, "write") : NULL;
}
