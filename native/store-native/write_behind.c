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
 *   writeBehindWriteBlocks(handle, headers, payload, lens, pos, layout) -> sequence number, likewise:
 *     blocks whose headers (layout[0] bytes each) sit in one buffer and whose payloads (lens[i]
 *     bytes) sit back to back in another, written interleaved (header 0, payload 0, header 1, ...)
 *     with one pwritev, after storing in each header the CRC-32 of its payload at layout[1] and
 *     then the CRC-32 of its bytes [0, layout[2]) at layout[3]. Payloads back to back let a
 *     capture read pages across block boundaries in one call (segments.ts readRoom).
 *   writeBehindSync(handle)                          -> sequence number: an fsync(2) of the file, queued after
 *     the writes before it (a commit's index rows go in meanwhile: docs/store-format.md, "Segment file")
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
#include <sys/uio.h>
#include <unistd.h>

#include "addon.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checksums are stored little-endian with a plain copy: little-endian machines only"
#endif

#define QUEUE 8
#define MAX_CRC 4
/* Blocks one writeBehindWriteBlocks job takes at most. */
#define MAX_BLOCKS 32

typedef struct {
  uint8_t *data;
  size_t len;
  int64_t pos;
  uint32_t ncrc;
  uint32_t crc[MAX_CRC][3];
  napi_ref ref;
  /* writeBehindWriteBlocks: nblocks headers of hlen bytes at hdr, block i's payload plen[i] bytes,
   * back to back in data; the file gets header 0, payload 0, header 1, ... (len = the payloads). */
  uint8_t *hdr;
  uint32_t hlen;
  uint32_t nblocks;
  uint32_t plen[MAX_BLOCKS];
  uint32_t at[3]; /* payload CRC at, header CRC over [0, at[1]), stored at at[2] */
  napi_ref href;
  int sync; /* writeBehindSync: no bytes, an fsync of the file */
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

/* pwritev of every byte of iov at pos (a short write goes on where it stopped); 0 or an errno. */
static int write_all(int fd, struct iovec *iov, int cnt, int64_t pos) {
  while (cnt > 0) {
    ssize_t n = pwritev(fd, iov, cnt, pos);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? errno : EIO;
    pos += n;
    while (cnt > 0 && (size_t)n >= iov->iov_len) { n -= (ssize_t)iov->iov_len; iov++; cnt--; }
    if (cnt > 0) { iov->iov_base = (uint8_t *)iov->iov_base + n; iov->iov_len -= (size_t)n; }
  }
  return 0;
}

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
    if (!failed && j->sync) {
      while (fsync(s->fd) < 0) {
        if (errno != EINTR) { e = errno; break; }
      }
    } else if (!failed) {
      for (uint32_t k = 0; k < j->ncrc; k++) {
        uint32_t c = crc32_update(0, j->data + j->crc[k][0], j->crc[k][1] - j->crc[k][0]);
        memcpy(j->data + j->crc[k][2], &c, 4);
      }
      size_t total = j->len;
      if (j->nblocks) {
        struct iovec iov[2 * MAX_BLOCKS];
        size_t off = 0;
        for (uint32_t b = 0; b < j->nblocks; b++) {
          uint8_t *h = j->hdr + (size_t)b * j->hlen;
          uint32_t c = crc32_update(0, j->data + off, j->plen[b]);
          memcpy(h + j->at[0], &c, 4);
          c = crc32_update(0, h, j->at[1]);
          memcpy(h + j->at[2], &c, 4);
          iov[2 * b] = (struct iovec){ h, j->hlen };
          iov[2 * b + 1] = (struct iovec){ j->data + off, j->plen[b] };
          off += j->plen[b];
        }
        total += (size_t)j->nblocks * j->hlen;
        e = write_all(s->fd, iov, 2 * (int)j->nblocks, j->pos);
      } else {
        struct iovec one = { j->data, j->len };
        e = write_all(s->fd, &one, 1, j->pos);
      }
      int64_t end = j->pos + (int64_t)total;
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
    if (j->href) { napi_delete_reference(env, j->href); j->href = NULL; }
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

static napi_value enqueue(napi_env env, sink_t *s, job_t *j);

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
  if (napi_is_array(env, argv[4], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[4], &ncrc) != napi_ok || ncrc % 3 || ncrc / 3 > MAX_CRC) return fail(env, "writeBehindWrite: crcs must be [from, to, at, ...] (at most 4 triples)");
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
  return enqueue(env, s, &j);
}

/* Queues j (its references taken) once the queue has room; returns its sequence number. */
static napi_value enqueue(napi_env env, sink_t *s, job_t *j) {
  pthread_mutex_lock(&s->mu);
  while (s->head - s->done >= QUEUE && !s->err) pthread_cond_wait(&s->job_done, &s->mu);
  release_done(env, s);
  if (s->err) {
    int e = s->err;
    pthread_mutex_unlock(&s->mu);
    if (j->ref) napi_delete_reference(env, j->ref);
    if (j->href) napi_delete_reference(env, j->href);
    return throw_errno(env, e, "write");
  }
  uint64_t seq = s->head;
  s->q[seq % QUEUE] = *j;
  s->head++;
  pthread_cond_signal(&s->has_job);
  pthread_mutex_unlock(&s->mu);
  napi_value out;
  napi_create_double(env, (double)seq, &out);
  return out;
}

napi_value write_behind_write_blocks(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 6) return fail(env, "writeBehindWriteBlocks(handle, headers, payload, lens, pos, layout) takes 6 arguments");
  sink_t *s = sink_of(env, argv[0]);
  if (!s) return NULL;
  uint8_t *hdr, *data;
  size_t hcap, dcap;
  int64_t pos;
  uint32_t nblocks, nlayout;
  bool is_array;
  if (!bytes_of(env, argv[1], &hdr, &hcap)) return fail(env, "writeBehindWriteBlocks: headers must be a Uint8Array");
  if (!bytes_of(env, argv[2], &data, &dcap)) return fail(env, "writeBehindWriteBlocks: payload must be a Uint8Array");
  if (napi_is_array(env, argv[3], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[3], &nblocks) != napi_ok || nblocks == 0 || nblocks > MAX_BLOCKS) return fail(env, "writeBehindWriteBlocks: lens must be 1 to 32 payload lengths");
  if (napi_get_value_int64(env, argv[4], &pos) != napi_ok || pos < 0) return fail(env, "writeBehindWriteBlocks: pos must be a file offset");
  if (napi_is_array(env, argv[5], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[5], &nlayout) != napi_ok || nlayout != 4) return fail(env, "writeBehindWriteBlocks: layout must be [headerBytes, payloadCrcAt, headerCrcOver, headerCrcAt]");
  uint32_t layout[4];
  for (uint32_t i = 0; i < 4; i++) {
    napi_value v;
    if (napi_get_element(env, argv[5], i, &v) != napi_ok || napi_get_value_uint32(env, v, &layout[i]) != napi_ok) return fail(env, "writeBehindWriteBlocks: layout must hold offsets");
  }
  if (layout[0] == 0 || layout[1] + 4 > layout[0] || layout[2] > layout[0] || layout[3] + 4 > layout[0] || (uint64_t)layout[0] * nblocks > hcap) return fail(env, "writeBehindWriteBlocks: the header layout does not fit");
  job_t j = { .data = data, .pos = pos, .ncrc = 0, .hdr = hdr, .hlen = layout[0], .nblocks = nblocks, .at = { layout[1], layout[2], layout[3] } };
  uint64_t total = 0;
  for (uint32_t i = 0; i < nblocks; i++) {
    napi_value v;
    if (napi_get_element(env, argv[3], i, &v) != napi_ok || napi_get_value_uint32(env, v, &j.plen[i]) != napi_ok) return fail(env, "writeBehindWriteBlocks: lens must hold lengths");
    total += j.plen[i];
  }
  if (total > dcap) return fail(env, "writeBehindWriteBlocks: the payloads are longer than payload");
  j.len = (size_t)total;
  if (napi_create_reference(env, argv[1], 1, &j.href) != napi_ok) return fail(env, "writeBehindWriteBlocks: cannot hold the headers");
  if (napi_create_reference(env, argv[2], 1, &j.ref) != napi_ok) { napi_delete_reference(env, j.href); return fail(env, "writeBehindWriteBlocks: cannot hold the payload"); }
  return enqueue(env, s, &j);
}

napi_value write_behind_sync(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1) return fail(env, "writeBehindSync(handle) takes 1 argument");
  sink_t *s = sink_of(env, argv[0]);
  if (!s) return NULL;
  job_t j = { .sync = 1 };
  return enqueue(env, s, &j);
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
