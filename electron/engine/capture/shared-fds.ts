/**
 * Which of a process's descriptors share one open file description (dup, dup2, fork, SCM_RIGHTS):
 * such descriptors share the offset and the status flags, so restore must recreate the description
 * once and dup it. /proc fdinfo cannot tell two opens of one file from one open dup'ed; kcmp(2)
 * with KCMP_FILE compares the struct file pointers. Read-only: it must never change the target.
 * Pipes and socketpairs are left out: restore/fds.ts already recreates each of them whole. Runs
 * after captureChannels, which tells TCP/UDP sockets (info.socket.inet) from socketpairs.
 */
import { syscall } from '../native';
import type { FdState } from '../state/process-state';

const NR_KCMP = 312;
const KCMP_FILE = 0n;
const O_CLOEXEC = 0o2000000;

function sameDescription(pid: number, a: number, b: number): boolean {
  try {
    return syscall(NR_KCMP, [BigInt(pid), BigInt(pid), KCMP_FILE, BigInt(a), BigInt(b)], 'kcmp') === 0n;
  } catch (_e) {
    return false; // the fd went away or kcmp is not allowed: treated as separate, as before
  }
}

/** Sets sharesWith on each descriptor whose description an earlier (lower) descriptor also holds. */
export function markSharedDescriptions(pid: number, fds: FdState[]): void {
  const sorted = [...fds].sort((x, y) => x.fd - y.fd);
  for (let i = 0; i < sorted.length; i++) {
    const f = sorted[i]!;
    // TCP/UDP sockets are made again one by one, so their dups are marked (captureChannels ran first).
    if (f.kind === 'pipe' || (f.kind === 'socket' && (f.info?.socket as { inet?: unknown } | undefined)?.inet === undefined)) continue;
    // One description has one object, offset and status flags (fdinfo adds the per-fd O_CLOEXEC):
    // cheap filters before asking the kernel, which matter for many anon-inode fds (same inode).
    const first = sorted.slice(0, i).find((g) => g.sharesWith === undefined && g.target === f.target
      && g.dev === f.dev && g.inode === f.inode && g.pos === f.pos && (g.flags & ~O_CLOEXEC) === (f.flags & ~O_CLOEXEC)
      && sameDescription(pid, g.fd, f.fd));
    if (first) f.sharesWith = first.fd;
  }
}
