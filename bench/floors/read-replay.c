/*
 * Replays a list of reads ("path offset length" per line) with plain pread(2) into a 1 MiB buffer,
 * REPS times, and prints the best time in ms: what the kernel alone charges for a read pattern,
 * without any JavaScript. The store benchmark feeds it the reads a materialize made.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct rd { int fd; long off; long len; };

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: read-replay LIST REPS\n"); return 2; }
  FILE *f = fopen(argv[1], "r");
  if (!f) { perror(argv[1]); return 1; }
  int reps = atoi(argv[2]);
  size_t cap = 1024, n = 0;
  struct rd *r = malloc(cap * sizeof *r);
  char path[4096], last[4096] = "";
  int fd = -1;
  long off, len;
  while (fscanf(f, "%4095s %ld %ld", path, &off, &len) == 3) {
    if (len > (1 << 20)) { fprintf(stderr, "read of %ld bytes is over 1 MiB\n", len); return 1; }
    if (strcmp(path, last) != 0) {
      fd = open(path, O_RDONLY);
      if (fd < 0) { perror(path); return 1; }
      strcpy(last, path);
    }
    if (n == cap) r = realloc(r, (cap *= 2) * sizeof *r);
    r[n++] = (struct rd){ fd, off, len };
  }
  char *buf = malloc(2 << 20);
  double best = 1e18;
  for (int k = 0; k < reps; k++) {
    double t0 = now_ms();
    long at = 0;
    for (size_t i = 0; i < n; i++) {
      if (at + r[i].len > (1 << 20)) at = 0;
      if (pread(r[i].fd, buf + at, r[i].len, r[i].off) != r[i].len) { perror("pread"); return 1; }
      at += r[i].len;
    }
    double t = now_ms() - t0;
    if (t < best) best = t;
  }
  printf("%.3f\n", best);
  return 0;
}
