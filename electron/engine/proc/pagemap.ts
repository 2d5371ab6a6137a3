/**
 * Which pages of a process hold something: /proc/PID/pagemap (8 bytes per page: bit 63 present,
 * 62 swapped, 61 file-page or shared-anon, 55 soft-dirty) or, where the kernel has it (6.7+), the
 * PAGEMAP_SCAN ioctl that returns whole ranges with their categories in one call. Never reads page
 * contents. Addresses are BigInts; counts are pages of 4 KiB.
 *
 *   const pm = openPagemap(pid); try { scanRanges(pm, start, end, useScan) } finally { closePagemap(pm) }
 */
import { PAGEMAP_SCAN, PAGE_IS, openPath, closeFd, O, preadFd, ioctlErrno, malloc, free, copyFromAddr, E, sysError } from '../native';
import { StasisError } from '../../../shared/errors';

export const PM = {
  PRESENT: 1n << 63n,
  SWAPPED: 1n << 62n,
  FILE_OR_SHARED: 1n << 61n,
  UFFD_WP: 1n << 57n,
  EXCLUSIVE: 1n << 56n,
  SOFT_DIRTY: 1n << 55n,
  PFN_MASK: (1n << 55n) - 1n,
} as const;

export interface PageRange {
  start: bigint;
  end: bigint;
  present: boolean;
  swapped: boolean;
  /** Page-cache page (file-backed, unmodified) or shared-anon page. */
  file: boolean;
  /** Mapped to the kernel's shared zero page (never written): a zero record without reading. */
  zeroPfn: boolean;
  softDirty: boolean;
  /** Write-protected through userfaultfd (uffd-wp): not written since it was protected. */
  wp: boolean;
}

export function openPagemap(pid: number): number {
  return openPath(`/proc/${pid}/pagemap`, O.RDONLY | O.CLOEXEC);
}

export function closePagemap(fd: number): void {
  closeFd(fd);
}

/** Raw entries for [start, start + pages*4096). */
export function readPagemap(fd: number, start: bigint, pages: number): BigUint64Array {
  const buf = Buffer.alloc(pages * 8);
  const n = preadFd(fd, buf, (start >> 12n) * 8n);
  const out = new BigUint64Array(pages);
  for (let i = 0; i < n / 8; i++) out[i] = buf.readBigUInt64LE(i * 8);
  return out;
}

/** Ranges of pages that are present or swapped, via raw pagemap entries (coalesced by category). */
function rangesFromPagemap(fd: number, start: bigint, end: bigint): PageRange[] {
  const out: PageRange[] = [];
  const CHUNK = 65536; // pages per read (512 KiB of entries)
  for (let base = start; base < end; ) {
    const pages = Number((end - base) >> 12n) > CHUNK ? CHUNK : Number((end - base) >> 12n);
    const ents = readPagemap(fd, base, pages);
    for (let i = 0; i < pages; i++) {
      const e = ents[i]!;
      const present = (e & PM.PRESENT) !== 0n;
      const swapped = (e & PM.SWAPPED) !== 0n;
      if (!present && !swapped) continue;
      const r: PageRange = {
        start: base + BigInt(i) * 4096n,
        end: base + BigInt(i + 1) * 4096n,
        present,
        swapped,
        file: (e & PM.FILE_OR_SHARED) !== 0n,
        zeroPfn: false,
        softDirty: (e & PM.SOFT_DIRTY) !== 0n,
        wp: (e & PM.UFFD_WP) !== 0n,
      };
      const last = out[out.length - 1];
      if (last && last.end === r.start && last.present === r.present && last.swapped === r.swapped && last.file === r.file && last.softDirty === r.softDirty && last.wp === r.wp) last.end = r.end;
      else out.push(r);
    }
    base += BigInt(pages) * 4096n;
  }
  return out;
}

const REGION_BYTES = 24;
const VEC_LEN = 4096;
let vecAddr = 0n;

const PM_SCAN_WP_MATCHING = 1n;
const PM_SCAN_CHECK_WPASYNC = 2n;

interface ScanFilter {
  /** Only pages written since they were write-protected (uffd-wp async; pages of unregistered mappings always count as written). */
  writtenOnly?: boolean;
  /** Write-protect again every page returned, in the same walk (PM_SCAN_WP_MATCHING; skips unregistered mappings). */
  reprotect?: boolean;
  /**
   * Leave out the page-cache category (`file` is then always false): telling a page-cache page
   * from an anonymous one makes the kernel look at every page's struct page, which is most of the
   * walk's cost; private anonymous mappings never hold page-cache pages.
   */
  noFile?: boolean;
}

/**
 * struct pm_scan_arg for present-or-swapped pages of [start, end) (category_anyof_mask), with
 * `all` as category_mask, into the shared vector buffer.
 */
function scanArg(a: { flags: bigint; start: bigint; end: bigint; vecLen: number; maxPages?: number; all: bigint; returned: bigint }): Buffer {
  const arg = Buffer.alloc(96);
  arg.writeBigUInt64LE(96n, 0); // size
  arg.writeBigUInt64LE(a.flags, 8);
  arg.writeBigUInt64LE(a.start, 16);
  arg.writeBigUInt64LE(a.end, 24);
  arg.writeBigUInt64LE(vecAddr, 40);
  arg.writeBigUInt64LE(BigInt(a.vecLen), 48);
  arg.writeBigUInt64LE(BigInt(a.maxPages ?? 0), 56); // 0: no limit
  arg.writeBigUInt64LE(a.all, 72);
  arg.writeBigUInt64LE(PAGE_IS.PRESENT | PAGE_IS.SWAPPED, 80);
  arg.writeBigUInt64LE(a.returned, 88);
  return arg;
}

/** PAGEMAP_SCAN over [start, end): present-or-swapped ranges with categories; null if unsupported. */
function rangesFromScan(fd: number, start: bigint, end: bigint, filter: ScanFilter = {}): PageRange[] | null {
  if (vecAddr === 0n) vecAddr = malloc(REGION_BYTES * VEC_LEN);
  const out: PageRange[] = [];
  const vec = Buffer.alloc(REGION_BYTES * VEC_LEN);
  let cur = start;
  while (cur < end) {
    const arg = scanArg({
      flags: filter.reprotect ? PM_SCAN_WP_MATCHING : 0n, start: cur, end, vecLen: VEC_LEN,
      all: filter.writtenOnly ? PAGE_IS.WRITTEN : 0n,
      returned: PAGE_IS.PRESENT | PAGE_IS.SWAPPED | (filter.noFile ? 0n : PAGE_IS.FILE) | PAGE_IS.PFNZERO | PAGE_IS.SOFT_DIRTY | PAGE_IS.WRITTEN,
    });
    const r = ioctlErrno(fd, PAGEMAP_SCAN, arg);
    if (r.ret < 0) {
      if (r.errno === E.ENOTTY || r.errno === E.EINVAL || r.errno === E.EOPNOTSUPP) return null;
      throw sysError('ioctl(PAGEMAP_SCAN)', r.errno);
    }
    copyFromAddr(vec.subarray(0, r.ret * REGION_BYTES), vecAddr);
    for (let i = 0; i < r.ret; i++) {
      const cat = vec.readBigUInt64LE(i * REGION_BYTES + 16);
      const from = vec.readBigUInt64LE(i * REGION_BYTES);
      const to = vec.readBigUInt64LE(i * REGION_BYTES + 8);
      // Each call starts past everything returned before (below), and one call's regions come in
      // address order: anything else means pages would be given twice, or, with reprotect, pages
      // protected again and never read (a silently inconsistent checkpoint). Refuse it.
      const prevEnd = out.length ? out[out.length - 1]!.end : start;
      if (from < prevEnd || to <= from) {
        throw new StasisError('INTERNAL', `PAGEMAP_SCAN returned pages 0x${from.toString(16)}-0x${to.toString(16)} out of order (after 0x${prevEnd.toString(16)}); the checkpoint was abandoned.`);
      }
      out.push({
        start: from,
        end: to,
        present: (cat & PAGE_IS.PRESENT) !== 0n,
        swapped: (cat & PAGE_IS.SWAPPED) !== 0n,
        file: (cat & PAGE_IS.FILE) !== 0n,
        zeroPfn: (cat & PAGE_IS.PFNZERO) !== 0n,
        softDirty: (cat & PAGE_IS.SOFT_DIRTY) !== 0n,
        // The kernel reports "written" as the absence of the uffd-wp bit.
        wp: (cat & PAGE_IS.WRITTEN) === 0n,
      });
    }
    // A call that did not fill the vector walked to the end. One that did stopped at walk_end,
    // but walk_end is only exact then: after the kernel refilled its internal 512-region buffer
    // mid-walk and then finished, it still holds the refill point (seen on 6.18), behind regions
    // already returned. Resuming there re-walked them: with reprotect, pages written since came
    // back as regions overlapping earlier ones, were dropped, and stayed protected, unread.
    if (r.ret < VEC_LEN) break;
    const walkEnd = arg.readBigUInt64LE(32);
    const next = out.length && out[out.length - 1]!.end > walkEnd ? out[out.length - 1]!.end : walkEnd;
    if (next <= cur) break;
    cur = next;
  }
  return out;
}

/**
 * Present-or-swapped page ranges in [start, end). `useScan` tries PAGEMAP_SCAN first and falls back
 * to reading raw entries. Reading pagemap of another user's process needs CAP_SYS_ADMIN for PFNs,
 * but the flag bits are readable by anyone allowed to ptrace it.
 */
export function scanRanges(fd: number, start: bigint, end: bigint, useScan: boolean, filter: Pick<ScanFilter, 'noFile'> = {}): PageRange[] {
  if (useScan) {
    const r = rangesFromScan(fd, start, end, filter);
    if (r) return r;
  }
  return rangesFromPagemap(fd, start, end);
}

/**
 * Pages of [start, end) written since they were write-protected through an async-WP userfaultfd
 * (PAGEMAP_SCAN only: the kernels that have uffd-wp async all have it). With `reprotect` they are
 * write-protected again in the same walk, so a later write shows up in the next scan.
 */
export function scanWritten(fd: number, start: bigint, end: bigint, reprotect: boolean): PageRange[] {
  const r = rangesFromScan(fd, start, end, { writtenOnly: true, reprotect });
  if (!r) throw new Error('PAGEMAP_SCAN is not available on this kernel');
  return r;
}

/**
 * Write-protects again every page of [start, end) written since it was protected, in the kernel's
 * own walk: PM_SCAN_WP_MATCHING with no output vector takes its fast path (no page categories, no
 * regions to copy out). Present or swapped pages only count (the anyof mask), so holes get no
 * page tables built for them. The range must lie in mappings registered with an async-WP
 * userfaultfd (EPERM otherwise, thrown).
 */
export function protectWrittenAgain(fd: number, start: bigint, end: bigint): void {
  const arg = scanArg({ flags: PM_SCAN_WP_MATCHING, start, end, vecLen: 0, all: 0n, returned: 0n });
  arg.writeBigUInt64LE(0n, 40); // no vector: the fast path
  const r = ioctlErrno(fd, PAGEMAP_SCAN, arg);
  if (r.ret < 0) throw sysError('ioctl(PAGEMAP_SCAN, protect written pages again)', r.errno);
}

/**
 * Whether [start, end) lies in mappings registered with an async write-protect userfaultfd
 * (PM_SCAN_CHECK_WPASYNC refuses the scan otherwise). Stops at the first page found: cheap.
 */
export function isWpAsyncRegistered(fd: number, start: bigint, end: bigint): boolean {
  if (vecAddr === 0n) vecAddr = malloc(REGION_BYTES * VEC_LEN);
  const r = ioctlErrno(fd, PAGEMAP_SCAN, scanArg({ flags: PM_SCAN_CHECK_WPASYNC, start, end, vecLen: 1, maxPages: 1, all: 0n, returned: PAGE_IS.PRESENT }));
  if (r.ret >= 0) return true;
  if (r.errno === E.EPERM) return false;
  throw sysError('ioctl(PAGEMAP_SCAN)', r.errno);
}

export function freeScanBuffers(): void {
  if (vecAddr !== 0n) free(vecAddr);
  vecAddr = 0n;
}
