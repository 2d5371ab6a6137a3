/**
 * Diff of two checkpoints' views: per mapping, pages changed / added / removed and bytes. Owns
 * only comparison; it must never write. Content equality is by hash, so a page rewritten with
 * the same bytes is not "changed".
 */
import type { DiffMapping, DiffResult } from './api';
import { KIND_DATA, type Extent } from './extents';
import { PAGE } from './format';
import type { StoreIndex } from './store-index';
import type { ChainViews } from './views';

/** The parts of the index this module reads and writes. */
export type DiffIndex = Pick<StoreIndex, 'getState' | 'reader'>;
type Views = Pick<ChainViews, 'view'>;

/** Walks two sorted views together, calling fn for every run of pages where their coverage is uniform. */
export function zip(a: Extent[], b: Extent[], fn: (vpn: number, count: number, ea: Extent | null, eb: Extent | null) => void): void {
  let i = 0;
  let j = 0;
  let pos = Math.min(a[0]?.vpn ?? Infinity, b[0]?.vpn ?? Infinity);
  while (i < a.length || j < b.length) {
    const ea = a[i];
    const eb = b[j];
    const aIn = ea && ea.vpn <= pos ? ea : null;
    const bIn = eb && eb.vpn <= pos ? eb : null;
    if (!aIn && !bIn) { pos = Math.min(ea?.vpn ?? Infinity, eb?.vpn ?? Infinity); continue; }
    let end = Infinity;
    end = Math.min(end, aIn ? aIn.vpn + aIn.count : (ea?.vpn ?? Infinity));
    end = Math.min(end, bIn ? bIn.vpn + bIn.count : (eb?.vpn ?? Infinity));
    fn(pos, end - pos, aIn, bIn);
    pos = end;
    if (ea && ea.vpn + ea.count <= pos) i++;
    if (eb && eb.vpn + eb.count <= pos) j++;
  }
}

export function computeDiff(index: DiffIndex, views: Views, a: number, b: number): DiffResult {
  const va = views.view(a);
  const vb = views.view(b);
  const maps = index.getState(b).mappings.map((m) => ({ start: m.start, end: m.end, path: m.path }));
  const oldMaps = index.getState(a).mappings.map((m) => ({ start: m.start, end: m.end, path: m.path }));
  const rows = new Map<string, DiffMapping>();
  const bucket = (vpn: number, removed: boolean): DiffMapping => {
    const addr = BigInt(vpn) << 12n;
    const m = (removed ? oldMaps : maps).find((x) => x.start <= addr && addr < x.end) ?? (removed ? maps : oldMaps).find((x) => x.start <= addr && addr < x.end);
    const key = m ? `${m.start}` : 'unmapped';
    let r = rows.get(key);
    if (!r) {
      r = { start: m ? '0x' + m.start.toString(16) : '0x0', end: m ? '0x' + m.end.toString(16) : '0x0', path: m?.path ?? '(outside any mapping)', changedPages: 0, addedPages: 0, removedPages: 0, bytes: 0 };
      rows.set(key, r);
    }
    return r;
  };
  const out: DiffResult = { a, b, changedPages: 0, addedPages: 0, removedPages: 0, bytes: 0, mappings: [] };
  const same = (x: Extent, y: Extent, vpn: number): boolean => {
    if (x.kind !== y.kind) return false;
    if (x.kind !== KIND_DATA) return true;
    const px = x.page + (vpn - x.vpn);
    const py = y.page + (vpn - y.vpn);
    if (x.file === y.file && px === py) return true;
    return index.reader.hashOf(x.file, px).equals(index.reader.hashOf(y.file, py));
  };
  zip(va, vb, (vpn, count, ea, eb) => {
    if (ea && eb) {
      if (ea.kind === KIND_DATA && eb.kind === KIND_DATA && ea.file === eb.file && ea.page - ea.vpn === eb.page - eb.vpn) return;
      for (let p = vpn; p < vpn + count; p++) {
        if (same(ea, eb, p)) continue;
        const r = bucket(p, false);
        r.changedPages++; r.bytes += PAGE; out.changedPages++; out.bytes += PAGE;
      }
    } else {
      for (let p = vpn; p < vpn + count; p++) {
        const r = bucket(p, !eb);
        if (eb) { r.addedPages++; r.bytes += PAGE; out.addedPages++; out.bytes += PAGE; } else { r.removedPages++; out.removedPages++; }
      }
    }
  });
  out.mappings = [...rows.values()].sort((x, y) => (BigInt(x.start) < BigInt(y.start) ? -1 : 1));
  return out;
}
