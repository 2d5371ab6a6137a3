/**
 * mlockall(MCL_FUTURE): the kernel keeps it in the mm (def_flags), not in any mapping, and shows it
 * nowhere; without it a restored program's new memory is no longer locked (silently: a real-time or
 * key-handling program relies on it). Found by what it does to a new mapping: one PROT_READ page is
 * mapped in a free gap inside the frozen target, then asked about and unmapped in the same batch.
 * MADV_DONTNEED fails with EINVAL only on locked memory; mincore says whether the page was faulted in
 * by the mmap (locked at once) or not (MCL_ONFAULT). The page's neighbours are left free so it merges
 * with nothing.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import type { ProcessState } from '../state/process-state';
import { SYS } from '../native/sys';
import type { Probe } from './threads';

const PAGE = 4096n;
const PROT_READ = 1n, MAP_PRIVATE = 2n, MAP_ANONYMOUS = 0x20n, MAP_FIXED_NOREPLACE = 0x100000n;
const MADV_DONTNEED = 4n;
const EINVAL = 22n, EAGAIN = 11n;
/** mmap_min_addr's usual value: nothing may be mapped below it. */
const LOW = 0x10000n;

/** A page with a free page on each side, from /proc/PID/maps (the lowest such gap). */
export function freeProbePage(maps: string): bigint | null {
  let prevEnd = LOW;
  for (const line of maps.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+)/.exec(line);
    if (!m) continue;
    const start = BigInt('0x' + m[1]), end = BigInt('0x' + m[2]);
    if (start >= prevEnd + 3n * PAGE) return prevEnd + PAGE;
    if (end > prevEnd) prevEnd = end;
  }
  return null;
}

/**
 * The first 4 KiB of /proc/PID/maps, whole lines only: the kernel formats only what is read, and
 * the lowest gap (below the executable) is nearly always in it. A process with thousands of
 * mappings would otherwise spend milliseconds of its freeze on this.
 */
function mapsHead(pid: number): string {
  const fd = openSync(`/proc/${pid}/maps`, 'r');
  try {
    const b = Buffer.alloc(4096);
    const n = readSync(fd, b, 0, b.length, null);
    const text = b.subarray(0, n).toString('utf8');
    return n < b.length ? text : text.slice(0, text.lastIndexOf('\n') + 1);
  } finally {
    closeSync(fd);
  }
}

export function mlockFutureProbe(pid: number, state: ProcessState, warnings: string[]): Probe | null {
  let at: bigint | null = null;
  try { at = freeProbePage(mapsHead(pid)) ?? freeProbePage(readFileSync(`/proc/${pid}/maps`, 'utf8')); } catch { /* gone: the capture fails elsewhere */ }
  if (at === null) return null;
  const page = at;
  return {
    scratch: 8,
    calls: (addr) => [
      { nr: SYS.mmap, args: [page, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, BigInt.asUintN(64, -1n), 0n] },
      { nr: SYS.mincore, args: [page, PAGE, addr] },
      { nr: SYS.madvise, args: [page, PAGE, MADV_DONTNEED] },
      { nr: SYS.munmap, args: [page, PAGE] },
    ],
    read: ([mapped, incore, advised], b) => {
      if (mapped === -EAGAIN) { state.mlockFuture = 'lock'; return; } // locking one more page passed RLIMIT_MEMLOCK
      if (mapped !== page) { warnings.push(`mlockall(MCL_FUTURE) could not be looked for (mmap: ${mapped})`); return; }
      if (advised === -EINVAL) state.mlockFuture = incore === 0n && (b[0]! & 1) === 1 ? 'lock' : 'onfault';
    },
  };
}
