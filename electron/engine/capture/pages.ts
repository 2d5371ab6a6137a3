/**
 * Copies a checkpoint's pages into a CheckpointWriter: walks every mapping that has pages to save
 * (mappings.ts pagePolicy), asks pagemap (PAGEMAP_SCAN where available) which pages were ever
 * touched, hands the kernel's zero-page ranges over as zero records without reading them, and reads
 * the rest with process_vm_readv in chunks. With soft-dirty ('delta' coverage) only soft-dirty pages
 * are given. Reads from `memPid`: the frozen snapshot child or the frozen target itself. Mappings
 * without PROT_READ are read through /proc/PID/mem (process_vm_readv refuses them; mem forces).
 */
import { StasisError } from '../../../shared/errors';
import { PAGE_SIZE, type CheckpointWriter } from '../store/api';
import type { MappingState } from '../state/process-state';
import { openPagemap, closePagemap, scanRanges, type PageRange } from '../proc';
import { closeSync, openSync, readSync } from 'node:fs';
import { openMem, closeFd, dataRanges } from '../native';
import { hasContents, pagePolicy, readable } from './mappings';
import { fusedRead, givePages } from './page-read';

export interface PageCopyStats {
  pagesScanned: number;
  pagesGiven: number;
  zeroPages: number;
  bytesRead: number;
}

export interface PageCopyOptions {
  memPid: number;
  /** Where to read pagemap for MAP_SHARED mappings (a fork child has no page tables for them yet). */
  sharedPagemapPid: number;
  useScan: boolean;
  softDirtyOnly: boolean;
  /** Chunk size for process_vm_readv (1-8 MiB barely matters here). */
  chunkBytes?: number;
  /** Pages scanned so far, after every range and every chunk read (capture's progress; cheap calls, the caller throttles). */
  onPages?: (pagesScanned: number) => void;
}

function wanted(m: MappingState, r: PageRange, softDirtyOnly: boolean): boolean {
  if (softDirtyOnly && !r.softDirty) return false;
  const policy = pagePolicy(m);
  if (policy === 'none') return false;
  if (policy === 'cow') return !r.file; // still a page-cache page: the file has it
  return true;
}

/**
 * Shared memory from its object (/proc/PID/map_files: the shmem file behind the mapping): every
 * page the object holds in the mapped range, found with SEEK_DATA, including pages this process
 * never touched (written by a child, or with write() before the mmap) that pagemap does not show.
 * Read with pread, so nothing is faulted into the process. False when the object cannot be opened
 * (the caller falls back to pagemap).
 */
function copyObjectPages(writer: CheckpointWriter, m: MappingState, opts: PageCopyOptions, stats: PageCopyStats, buffer: Buffer): boolean {
  let fd: number;
  try {
    fd = openSync(`/proc/${opts.sharedPagemapPid}/map_files/${m.start.toString(16)}-${m.end.toString(16)}`, 'r');
  } catch {
    return false;
  }
  try {
    const len = m.end - m.start;
    stats.pagesScanned += Number(len / BigInt(PAGE_SIZE));
    for (const r of dataRanges(fd, m.offset, m.offset + len)) {
      const pageStart = r.start & ~BigInt(PAGE_SIZE - 1);
      const pageEnd = (r.end + BigInt(PAGE_SIZE - 1)) & ~BigInt(PAGE_SIZE - 1);
      stats.pagesGiven += Number((pageEnd - pageStart) / BigInt(PAGE_SIZE));
      for (let off = pageStart; off < pageEnd; ) {
        const n = Number(pageEnd - off) > buffer.length ? buffer.length : Number(pageEnd - off);
        const buf = buffer.subarray(0, n);
        const got = readSync(fd, buf, 0, n, off);
        // Past the object's end (a mapping longer than its file): those pages do not exist.
        if (got < n) buf.fill(0, got);
        writer.addPages(m.start + (off - m.offset), buf);
        stats.bytesRead += n;
        off += BigInt(n);
      }
    }
    opts.onPages?.(stats.pagesScanned);
    return true;
  } finally {
    closeSync(fd);
  }
}

export function copyPages(writer: CheckpointWriter, mappings: MappingState[], opts: PageCopyOptions): PageCopyStats {
  const stats: PageCopyStats = { pagesScanned: 0, pagesGiven: 0, zeroPages: 0, bytesRead: 0 };
  const chunk = opts.chunkBytes ?? 4 << 20;
  // One read buffer for the whole capture: the writer copies what it keeps (CheckpointWriter
  // contract), and fresh buffers would cost a page fault per 4 KiB on our side.
  const buffer = Buffer.allocUnsafeSlow(chunk);
  const pmSelf = openPagemap(opts.memPid);
  const pmShared = opts.sharedPagemapPid === opts.memPid ? pmSelf : openPagemap(opts.sharedPagemapPid);
  let memFd = -1;
  const read = fusedRead({ pid: opts.memPid, memFd: -1 });
  let readMem: ReturnType<typeof fusedRead> = null;
  try {
    for (const m of mappings) {
      if (pagePolicy(m) === 'none' || !hasContents(m)) continue;
      if (m.perms[3] === 's' && copyObjectPages(writer, m, opts, stats, buffer)) continue;
      const forced = !readable(m);
      if (forced && memFd < 0) {
        memFd = openMem(opts.memPid);
        readMem = fusedRead({ pid: opts.memPid, memFd });
      }
      const pm = m.perms[3] === 's' ? pmShared : pmSelf;
      const ranges = scanRanges(pm, m.start, m.end, opts.useScan);
      for (const r of ranges) {
        const start = r.start < m.start ? m.start : r.start;
        const end = r.end > m.end ? m.end : r.end;
        if (end <= start) continue;
        const pages = Number((end - start) / BigInt(PAGE_SIZE));
        stats.pagesScanned += pages;
        if (!wanted(m, r, opts.softDirtyOnly)) continue;
        stats.pagesGiven += pages;
        if (r.zeroPfn && !r.swapped) {
          writer.addZeroPages(start, pages);
          stats.zeroPages += pages;
          opts.onPages?.(stats.pagesScanned);
          continue;
        }
        for (let a = start; a < end; ) {
          const len = Number(end - a) > chunk ? chunk : Number(end - a);
          const n = givePages(writer, { pid: opts.memPid, memFd: forced ? memFd : -1 }, forced ? readMem : read, buffer, a, len);
          if (n !== len) {
            throw new StasisError('PROCESS_GONE', `Could not read ${len} bytes at 0x${a.toString(16)} of process ${opts.memPid} (got ${n}): the process changed or exited during the capture. Nothing was saved.`);
          }
          stats.bytesRead += len;
          a += BigInt(len);
          opts.onPages?.(stats.pagesScanned - Number((end - a) / BigInt(PAGE_SIZE)));
        }
      }
    }
  } finally {
    if (memFd >= 0) closeFd(memFd);
    closePagemap(pmSelf);
    if (pmShared !== pmSelf) closePagemap(pmShared);
  }
  return stats;
}
