// Restore benchmark target: SIZE_MB (default 1024) of anonymous memory filled with pseudo-random
// bytes (incompressible, no duplicate pages), then a loop that bumps a counter every 10 ms and
// rewrites its value into READY_FILE, so "running" is observable after a restore. With THREADS > 1
// the memory is filled by THREADS threads, one slice each, which then stay alive bumping counters of
// their own (a multi-threaded process for the restore to rebuild).
//   restore-target READY_FILE [SIZE_MB] [THREADS]
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct slice { uint64_t *p; size_t n; uint64_t seed; pthread_mutex_t *ready; };

static void fill(uint64_t *p, size_t n, uint64_t x) {
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    p[i] = x;
  }
}

static void *worker(void *arg) {
  struct slice *s = arg;
  fill(s->p, s->n, s->seed);
  pthread_mutex_unlock(s->ready);
  volatile uint64_t mine = 0;
  for (;;) { mine++; usleep(10000); }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  size_t mb = argc > 2 ? strtoul(argv[2], 0, 10) : 1024;
  int nt = argc > 3 ? atoi(argv[3]) : 1;
  if (nt < 1 || nt > 64) return 2;
  size_t len = mb << 20;
  uint64_t *p = mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return 3;
  size_t per = len / 8 / nt;
  static struct slice sl[64];
  static pthread_mutex_t ready[64];
  for (int i = 1; i < nt; i++) {
    pthread_mutex_init(&ready[i], 0);
    pthread_mutex_lock(&ready[i]);
    sl[i] = (struct slice){ p + per * i, i == nt - 1 ? len / 8 - per * i : per, 88172645463325252ull + i, &ready[i] };
    pthread_t t;
    pthread_create(&t, 0, worker, &sl[i]);
  }
  fill(p, per, 88172645463325252ull);
  for (int i = 1; i < nt; i++) pthread_mutex_lock(&ready[i]);
  volatile uint64_t counter = 0;
  for (;;) {
    counter++;
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) { dprintf(fd, "%llu %d %llx\n", (unsigned long long)counter, getpid(), (unsigned long long)p[len / 16]); close(fd); }
    usleep(10000);
  }
}
