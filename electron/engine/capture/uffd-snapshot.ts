/**
 * Live snapshot through userfaultfd write-protection, for any target (single- or multi-threaded):
 * while the target is frozen, a userfaultfd is created inside it (injected syscall), taken over with
 * pidfd_getfd and closed in the target; its private anonymous mappings are registered in WP mode
 * and write-protected whole, one ioctl each (one page-table walk, cheaper than fork, which must
 * also take a reference on every page), the pages of the other mappings we save are copied, and
 * the target is resumed. Which pages to save is read from pagemap only then, while the target runs:
 * a page still write-protected (or blocked in a WP fault) holds its contents as of the freeze; a
 * present page without the WP bit was not there at the freeze (populated since) and is left out,
 * exactly as a page not present at the freeze. Walking pagemap while frozen cost as much as the
 * write-protect walk itself (measured: 14-20 ms each for 1 GiB under load).
 * Then memory is read in chunks while the target runs: a write to a page not read yet blocks in
 * the kernel and reaches us as a WP fault; we save that page's still-original contents first and
 * then unprotect it, which wakes the writer. A chunk is unprotected as soon as it has been read.
 *
 * Safety: every fault message is answered with an unprotect (which wakes the writer), even for
 * pages we do not care about. If the engine dies, the kernel closes the userfaultfd, which removes
 * the registration and wakes every blocked thread: the target never stays stuck.
 * Not used (caller falls back to the fork snapshot) when the kernel lacks uffd-wp or when the
 * target may not create a userfaultfd that also handles kernel-mode faults
 * (vm.unprivileged_userfaultfd=0 and the target is unprivileged: a user-mode-only one would turn
 * the target's own read() into a WP'd buffer into EFAULT).
 */
import { StasisError } from '../../../shared/errors';
import type { CheckpointWriter } from '../store/api';
import type { MappingState } from '../state/process-state';
import { SYS, syscall, malloc, free, copyFromAddr, closeFd, vmRead, E } from '../native';
import type { Tracee } from '../tracer';
import { createTargetUffd, registerWp, writeProtect, isWpMapping, UFFD_FEATURE } from './uffd';
import { openPagemap, closePagemap, scanRanges } from '../proc';
import { pagePolicy, readable } from './mappings';
import type { PageCopyStats } from './pages';

const UFFD_EVENT_PAGEFAULT = 0x12;
const PAGE = 4096n;

export interface UffdSnapshot {
  pid: number;
  uffd: number;
  /** Mappings registered and write-protected whole; their pages are chosen after the resume. */
  wp: MappingState[];
  /** Pages of non-WP mappings, copied while frozen. */
  frozenCopies: { vaddr: bigint; data: Buffer }[];
  zeroRuns: { vaddr: bigint; pages: number }[];
  pagesScanned: number;
  shared: MappingState[];
  useScan: boolean;
}

/**
 * Sets up the WP snapshot while `t` is frozen. Returns null (and changes nothing) when the target
 * cannot create a suitable userfaultfd; the caller then uses the fork snapshot instead.
 */
export function setupUffdSnapshot(t: Tracee, mappings: MappingState[], useScan: boolean): UffdSnapshot | null {
  const pid = t.pid;
  const uffd = createTargetUffd(t, UFFD_FEATURE.PAGEFAULT_FLAG_WP);
  if (uffd === null) return null; // the caller uses the fork snapshot
  const snap: UffdSnapshot = { pid, uffd, wp: [], frozenCopies: [], zeroRuns: [], pagesScanned: 0, shared: [], useScan };
  try {
    const pm = openPagemap(pid);
    try {
      for (const m of mappings) {
        const policy = pagePolicy(m);
        if (policy === 'none' || !readable(m)) continue;
        if (m.perms[3] === 's') {
          snap.shared.push(m); // shared memory is live by nature: read after resume
          continue;
        }
        if (isWpMapping(m)) {
          const err = registerWp(uffd, m.start, m.end);
          if (err !== 0) throw new StasisError('INTERNAL', `UFFDIO_REGISTER failed on 0x${m.start.toString(16)} (errno ${err}).`);
          // Unpopulated pages are not protected (no WP_UNPOPULATED): they read as "not present at
          // the freeze" afterwards, which is what they were.
          writeProtect(uffd, m.start, m.end - m.start, true);
          snap.wp.push(m);
        } else {
          // Small (library data, vdso): copy now, while frozen.
          const ranges = scanRanges(pm, m.start, m.end, useScan);
          for (const rg of ranges) snap.pagesScanned += Number((rg.end - rg.start) / PAGE);
          for (const rg of ranges) {
            if (policy === 'cow' && rg.file) continue;
            const data = Buffer.allocUnsafeSlow(Number(rg.end - rg.start));
            const n = vmRead(pid, rg.start, data);
            if (n !== data.length) throw new StasisError('PROCESS_GONE', `Could not read 0x${rg.start.toString(16)} of process ${pid}.`);
            snap.frozenCopies.push({ vaddr: rg.start, data });
          }
        }
      }
    } finally {
      closePagemap(pm);
    }
    return snap;
  } catch (e) {
    closeFd(uffd);
    throw e;
  }
}

/**
 * Reads every write-protected page while the target runs; see the module comment. onPages gets the
 * pages given to the writer so far (progress).
 */
export function streamUffdSnapshot(snap: UffdSnapshot, writer: CheckpointWriter, onPages?: (pagesGiven: number) => void, chunkBytes = 1 << 20): PageCopyStats {
  const stats: PageCopyStats = { pagesScanned: snap.pagesScanned, pagesGiven: 0, zeroPages: 0, bytesRead: 0 };
  const saved = new Map<bigint, Buffer>();
  // Pending = in a WP range and not read yet. Ranges are walked in order, so "read" is a frontier.
  // Nothing has been unprotected yet: a write since the resume is either blocked in a fault (its
  // page still WP) or went to a page that was not there at the freeze.
  const all: { start: bigint; end: bigint }[] = [];
  const pm = openPagemap(snap.pid);
  try {
    for (const m of snap.wp) {
      for (const rg of scanRanges(pm, m.start, m.end, snap.useScan)) {
        if (!rg.wp) continue;
        const pages = Number((rg.end - rg.start) / PAGE);
        stats.pagesScanned += pages;
        if (rg.zeroPfn && !rg.swapped) snap.zeroRuns.push({ vaddr: rg.start, pages });
        else all.push({ start: rg.start, end: rg.end });
      }
    }
  } finally {
    closePagemap(pm);
  }
  all.sort((a, b) => (a.start < b.start ? -1 : 1));
  let frontier = 0n;
  const pending = (va: bigint): boolean => {
    if (va < frontier) return false;
    let lo = 0;
    let hi = all.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = all[mid]!;
      if (va < r.start) hi = mid - 1;
      else if (va >= r.end) lo = mid + 1;
      else return true;
    }
    return false;
  };
  const msgs = malloc(32 * 64);
  const mb = Buffer.alloc(32 * 64);
  const drain = (): void => {
    for (;;) {
      let n: bigint;
      try {
        n = syscall(SYS.read, [BigInt(snap.uffd), msgs, 32n * 64n], 'read(userfaultfd)');
      } catch (e) {
        if ((e as { errno?: number }).errno === E.EAGAIN) return;
        throw e;
      }
      copyFromAddr(mb.subarray(0, Number(n)), msgs);
      for (let off = 0; off + 32 <= Number(n); off += 32) {
        if (mb[off] !== UFFD_EVENT_PAGEFAULT) continue;
        const va = mb.readBigUInt64LE(off + 16) & ~(PAGE - 1n);
        if (pending(va) && !saved.has(va)) {
          const page = Buffer.allocUnsafeSlow(4096);
          if (vmRead(snap.pid, va, page) === 4096) saved.set(va, page);
        }
        writeProtect(snap.uffd, va, PAGE, false); // always: this wakes the writer
      }
    }
  };
  const buffer = Buffer.allocUnsafeSlow(chunkBytes);
  try {
    for (const z of snap.zeroRuns) {
      writerZero(writer, z.vaddr, z.pages);
      stats.pagesGiven += z.pages;
      stats.zeroPages += z.pages;
    }
    for (const c of snap.frozenCopies) {
      writer.addPages(c.vaddr, c.data);
      stats.pagesGiven += c.data.length / 4096;
      stats.bytesRead += c.data.length;
    }
    for (const r of all) {
      for (let a = r.start; a < r.end; ) {
        const len = Number(r.end - a) > chunkBytes ? chunkBytes : Number(r.end - a);
        const buf = buffer.subarray(0, len);
        drain();
        const n = vmRead(snap.pid, a, buf);
        if (n !== len) throw new StasisError('PROCESS_GONE', `Could not read 0x${a.toString(16)} of process ${snap.pid} (got ${n} of ${len} bytes): it unmapped memory or exited during the capture.`);
        for (let p = a; p < a + BigInt(len); p += PAGE) {
          const s = saved.get(p);
          if (s) {
            s.copy(buf, Number(p - a));
            saved.delete(p);
          }
        }
        frontier = a + BigInt(len);
        writeProtect(snap.uffd, a, BigInt(len), false);
        drain();
        writer.addPages(a, buf);
        stats.pagesGiven += len / 4096;
        onPages?.(stats.pagesGiven);
        stats.bytesRead += len;
        a += BigInt(len);
      }
    }
    drain();
  } finally {
    free(msgs);
  }
  return stats;
}

function writerZero(writer: CheckpointWriter, vaddr: bigint, pages: number): void {
  writer.addZeroPages(vaddr, pages);
}

/** Unregisters everything and wakes every blocked thread (closing the userfaultfd does both). */
export function closeUffdSnapshot(snap: UffdSnapshot | null): void {
  if (snap && snap.uffd >= 0) {
    closeFd(snap.uffd);
    snap.uffd = -1;
  }
}
