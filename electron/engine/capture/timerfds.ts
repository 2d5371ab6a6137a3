/**
 * Periodic timerfds that expired while nobody read them. The kernel counts only the first expiry in
 * `ticks` and works out the ones after it when the timer is next read or queried, so fdinfo shows
 * `ticks: 1` and `it_value: (0, 0)` however many periods passed: saved as is, a program reading its
 * timer after the restore would get 1 where it was owed 5, and the next expiry at the wrong phase.
 * timerfd_gettime on our own copy of the descriptor (the same open timer) makes the kernel settle
 * the count, exactly as the program's own read or gettime would; fdinfo is then read again.
 */
import type { FdState } from '../state/process-state';
import { readFd } from '../proc/fds';
import { syscall, SYS, malloc, free } from '../native/sys';
import { closeFd } from '../native/memory';
import { takeFd } from '../native/uffd';

function expiredPeriodic(f: FdState): boolean {
  const ticks = Number(String(f.info?.ticks ?? '0').trim());
  return f.kind === 'timerfd' && ticks > 0 && !/\(\s*0\s*,\s*0\s*\)/.test(String(f.info?.interval ?? '(0, 0)'));
}

/** Settles each expired periodic timerfd of `pid` and replaces its entry in `fds` with the fresh read. */
export function settleTimerfds(pid: number, fds: FdState[]): void {
  const due = fds.filter(expiredPeriodic);
  if (due.length === 0) return;
  const spec = malloc(32);
  try {
    for (const f of due) {
      const ours = takeFd(pid, f.fd);
      try {
        syscall(SYS.timerfd_gettime, [BigInt(ours), spec], `timerfd_gettime of fd ${f.fd}`);
      } finally {
        closeFd(ours);
      }
      const fresh = readFd(pid, f.fd);
      if (fresh) fds[fds.indexOf(f)] = fresh;
    }
  } finally {
    free(spec);
  }
}
