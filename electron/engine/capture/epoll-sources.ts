/**
 * Which file each epoll watch is on. A watch belongs to an open file, listed under the number it was
 * added with: when the program closes that number but the file lives on at another descriptor (a dup,
 * a dup2 over it, a fork's copy), the kernel keeps the watch and fdinfo still names the closed
 * number, or a number since taken by another file. kcmp(KCMP_EPOLL_TFD) compares a descriptor's
 * file with a watch's, so capture records, for each watch that is not on the file its number now
 * holds, the descriptor that holds its file (`info.sources[index] = fd`), or null when no descriptor
 * of the process does (only another process holds the file: the watch cannot be recreated).
 * `info.sourcesChecked` says the check ran: restore then trusts every other watch to be on its number.
 * Read-only, while frozen.
 */
import { syscall, malloc, free, copyToAddr, SysError } from '../native';
import type { FdState } from '../state/process-state';
import { parseEpollItem } from '../state/epoll-item';

const NR_KCMP = 312;
const KCMP_EPOLL_TFD = 7n;

export function captureEpollSources(pid: number, fds: FdState[]): void {
  const epolls = fds.filter((f) => f.kind === 'epoll' && Array.isArray(f.info?.items) && (f.info.items as unknown[]).length > 0);
  if (epolls.length === 0) return;
  const byInode = new Map<number, FdState[]>();
  for (const f of fds) if (f.inode !== undefined) byInode.set(f.inode, [...(byInode.get(f.inode) ?? []), f]);
  const numbers = new Set(fds.map((f) => f.fd));
  const slot = malloc(12);
  try {
    const same = (fd: number, efd: number, tfd: number, toff: number): boolean | null => {
      const b = Buffer.alloc(12);
      b.writeUInt32LE(efd, 0);
      b.writeUInt32LE(tfd, 4);
      b.writeUInt32LE(toff, 8);
      copyToAddr(slot, b);
      try {
        return syscall(NR_KCMP, [BigInt(pid), BigInt(pid), KCMP_EPOLL_TFD, BigInt(fd), slot], 'kcmp') === 0n;
      } catch (e) {
        // EBADF: fd is not open; ENOENT: no such watch; anything else (ENOSYS, EPERM): the check cannot run.
        return e instanceof SysError && (e.errnoName === 'EBADF' || e.errnoName === 'ENOENT') ? false : null;
      }
    };
    for (const ep of epolls) {
      const items = (ep.info!.items as unknown[]).map((l) => parseEpollItem(String(l)));
      const sources: Record<string, number | null> = {};
      const seen = new Map<number, number>();
      let ok = true;
      items.forEach((it, i) => {
        if (!ok || !it) return;
        // The kernel finds a watch by number and rank among the watches under that number.
        const toff = seen.get(it.tfd) ?? 0;
        seen.set(it.tfd, toff + 1);
        const direct = numbers.has(it.tfd) ? same(it.tfd, ep.fd, it.tfd, toff) : false;
        if (direct === null) { ok = false; return; }
        if (direct) return;
        const candidates = it.ino === null ? fds : (byInode.get(it.ino) ?? []);
        const holder = candidates.find((c) => c.fd !== it.tfd && same(c.fd, ep.fd, it.tfd, toff) === true);
        sources[String(i)] = holder ? holder.fd : null;
      });
      if (ok) ep.info = { ...ep.info, sources, sourcesChecked: true };
    }
  } finally {
    free(slot);
  }
}
