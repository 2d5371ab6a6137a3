// Restore benchmark target: SIZE_MB (default 1024) of anonymous memory filled with pseudo-random
// bytes (incompressible, no duplicate pages), then a loop that bumps a counter every 10 ms and
// rewrites its value into READY_FILE, so "running" is observable after a restore.
//   restore-target READY_FILE [SIZE_MB]
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  size_t mb = argc > 2 ? strtoul(argv[2], 0, 10) : 1024;
  size_t len = mb << 20;
  uint64_t *p = mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return 3;
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i < len / 8; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    p[i] = x;
  }
  volatile uint64_t counter = 0;
  for (;;) {
    counter++;
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) { dprintf(fd, "%llu %d %llx\n", (unsigned long long)counter, getpid(), (unsigned long long)p[len / 16]); close(fd); }
    usleep(10000);
  }
}
