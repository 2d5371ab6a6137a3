/**
 * How many pages a capture's page copy will scan, for its progress total: the same mappings and the
 * same pagemap ranges copyPages walks (pages.ts), counted without reading anything. Asked only when
 * someone wants progress; with PAGEMAP_SCAN it is one ioctl per mapping.
 */
import { PAGE_SIZE } from '../store/api';
import type { MappingState } from '../state/process-state';
import { openPagemap, closePagemap, scanRanges } from '../proc';
import { hasContents, pagePolicy } from './mappings';
import type { PageCopyOptions } from './pages';
import { progress, type ProgressFn } from '../progress';

export function countPagesToScan(mappings: MappingState[], opts: Pick<PageCopyOptions, 'memPid' | 'sharedPagemapPid' | 'useScan'>): number {
  const pmSelf = openPagemap(opts.memPid);
  const pmShared = opts.sharedPagemapPid === opts.memPid ? pmSelf : openPagemap(opts.sharedPagemapPid);
  let pages = 0;
  try {
    for (const m of mappings) {
      if (pagePolicy(m) === 'none' || !hasContents(m)) continue;
      for (const r of scanRanges(m.perms[3] === 's' ? pmShared : pmSelf, m.start, m.end, opts.useScan)) {
        const start = r.start < m.start ? m.start : r.start;
        const end = r.end > m.end ? m.end : r.end;
        if (end > start) pages += Number((end - start) / BigInt(PAGE_SIZE));
      }
    }
  } finally {
    closePagemap(pmSelf);
    if (pmShared !== pmSelf) closePagemap(pmShared);
  }
  return pages;
}

/**
 * A capture's progress in pages scanned: start() counts the total (only when someone listens) and
 * returns copyPages' onPages; finish() sends the last report once the checkpoint is committed.
 */
export function capturePageProgress(onProgress: ProgressFn | undefined): {
  start(mappings: MappingState[], opts: Pick<PageCopyOptions, 'memPid' | 'sharedPagemapPid' | 'useScan'>): ((pagesScanned: number) => void) | undefined;
  finish(pagesScanned: number): void;
} {
  const p = progress(onProgress);
  return {
    start(mappings, opts) {
      if (!onProgress) return undefined;
      const total = countPagesToScan(mappings, opts);
      p.report({ done: 0, total, unit: 'pages', phase: 'pages' });
      // The target runs on: its shared pages may grow after the count.
      return (n) => p.report({ done: n, total: Math.max(total, n), unit: 'pages', phase: 'pages' });
    },
    finish(pagesScanned) { p.finish({ total: pagesScanned, unit: 'pages', phase: 'saved' }); },
  };
}
