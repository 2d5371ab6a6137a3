/**
 * What the checkpoint detail view shows: each mapping of a checkpoint with, per bin (equal slices
 * of the mapping), the share of pages this checkpoint changed and how many checkpoints of its chain
 * changed pages there. Pure reading through the Store interface; must never write.
 */
import type { Store } from './api';

export interface MappingView {
  start: string; end: string; perms: string; path: string; kind: string; pages: number;
  changedPages: number; changed: number[]; chain: number[];
}

export function describeCheckpoint(store: Store, id: number, bins = 32) {
  const checkpoint = store.get(id);
  const state = store.getState(id);
  const chain = store.chain(id);
  const own = store.records(id).filter((r) => r.kind !== 'absent');
  const perCkpt = chain.map((c) => (c === id ? own : store.records(c).filter((r) => r.kind !== 'absent')));
  const mappings: MappingView[] = state.mappings.map((m) => {
    const s = Number(m.start >> 12n);
    const pages = Number((m.end - m.start) >> 12n);
    const n = Math.max(1, Math.min(bins, pages));
    const binOf = (vpn: number): number => Math.min(n - 1, Math.floor(((vpn - s) * n) / pages));
    const changedCount = new Array<number>(n).fill(0);
    const chainHits = new Array<number>(n).fill(0);
    const binSize = (b: number): number => Math.floor(((b + 1) * pages) / n) - Math.floor((b * pages) / n);
    let changedPages = 0;
    perCkpt.forEach((recs, ci) => {
      const touched = new Set<number>();
      for (const r of recs) {
        const a = Math.max(s, Number(r.vaddr >> 12n));
        const b = Math.min(s + pages, Number(r.vaddr >> 12n) + r.pages);
        if (b <= a) continue;
        for (let bin = binOf(a); bin <= binOf(b - 1); bin++) {
          touched.add(bin);
          if (chain[ci] === id) {
            const lo = s + Math.floor((bin * pages) / n);
            const hi = s + Math.floor(((bin + 1) * pages) / n);
            const k = Math.max(0, Math.min(b, hi) - Math.max(a, lo));
            changedCount[bin] += k;
            changedPages += k;
          }
        }
      }
      for (const bin of touched) chainHits[bin]++;
    });
    return {
      start: '0x' + m.start.toString(16), end: '0x' + m.end.toString(16), perms: m.perms, path: m.path, kind: m.kind, pages,
      changedPages, changed: changedCount.map((c, b) => c / Math.max(1, binSize(b))), chain: chainHits,
    };
  });
  return {
    checkpoint: checkpoint!,
    target: store.getTarget(checkpoint!.targetId)!,
    chainLength: chain.length,
    chain,
    mappings,
    threads: state.threads.length,
    fds: state.fds.length,
    warnings: state.warnings,
  };
}
