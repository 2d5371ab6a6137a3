/* Benchmark target for bench/capture.ts. usage: capture-target DIR MIB
 * Maps MIB MiB of private anonymous memory: 30% of the pages written with zeros, the rest random.
 * Writes DIR/ready when filled. On SIGUSR1 rewrites 1% of the pages (random ones, random content)
 * and writes DIR/dirty-N with the number of pages it dirtied. Otherwise sleeps. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile sig_atomic_t bump = 0;
static void on_usr1(int s) { (void)s; bump = 1; }
static uint64_t st = 0x1234567887654321ull;
static uint64_t rnd(void) { st ^= st << 13; st ^= st >> 7; st ^= st << 17; return st; }

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  long pages = atol(argv[2]) * 256;
  unsigned char *m = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return 3;
  madvise(m, pages * 4096, MADV_NOHUGEPAGE);
  for (long i = 0; i < pages; i++) {
    uint64_t *p = (uint64_t *)(m + i * 4096);
    if (i % 10 < 3) { memset(p, 0, 4096); continue; }
    for (int j = 0; j < 512; j++) p[j] = rnd();
  }
  signal(SIGUSR1, on_usr1);
  char path[4096];
  snprintf(path, sizeof path, "%s/ready", argv[1]);
  FILE *f = fopen(path, "w"); fprintf(f, "%d\n", getpid()); fclose(f);
  int gen = 0;
  for (;;) {
    usleep(2000);
    if (!bump) continue;
    bump = 0;
    gen++;
    long n = pages / 100;
    static unsigned char *seen;
    if (!seen) seen = calloc(pages, 1);
    memset(seen, 0, pages);
    for (long k = 0; k < n; k++) {
      long i = (long)(rnd() % (uint64_t)pages);
      if (seen[i]) { k--; continue; }
      seen[i] = 1;
      uint64_t *p = (uint64_t *)(m + i * 4096);
      for (int j = 0; j < 512; j++) p[j] = rnd();
    }
    snprintf(path, sizeof path, "%s/dirty-%d", argv[1], gen);
    f = fopen(path, "w"); fprintf(f, "%ld\n", n); fclose(f);
  }
}
