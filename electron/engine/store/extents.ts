/**
 * Page records as extents: runs of consecutive virtual pages with the same origin (one data run in
 * one segment file, or zero pages, or absent pages). Owns the pure interval algebra that turns a
 * chain of incremental records into the view of one checkpoint; it must never touch files or SQL.
 */
import { StasisError } from '../../../shared/errors';

export const KIND_DATA = 0;
export const KIND_ZERO = 1;
export const KIND_ABSENT = 2;
export type ExtentKind = typeof KIND_DATA | typeof KIND_ZERO | typeof KIND_ABSENT;

export interface Extent {
  vpn: number;
  count: number;
  kind: ExtentKind;
  /** Data extents: segment file id and index of the first page in that file; 0 otherwise. */
  file: number;
  page: number;
}

/** e cut to [start, end); e itself when that is all of it (extents are never changed in place). */
export function slice(e: Extent, start: number, end: number): Extent {
  if (start === e.vpn && end === e.vpn + e.count) return e;
  return { vpn: start, count: end - start, kind: e.kind, file: e.file, page: e.kind === KIND_DATA ? e.page + (start - e.vpn) : 0 };
}

/** True when b continues a without a gap and with the same origin. */
export function continues(a: Extent, b: Extent): boolean {
  if (a.vpn + a.count !== b.vpn || a.kind !== b.kind) return false;
  return a.kind !== KIND_DATA || (a.file === b.file && a.page + a.count === b.page);
}

/** Extents made by pushExtent's merges, with the list each was made for: only there may one grow in place. */
const mergedFor = new WeakMap<Extent, Extent[]>();

/**
 * Appends e to a sorted list, merging it with the last extent when it continues it. Lists share
 * their extent objects (a view passes most of its parent's through), so a merge grows in place
 * only an extent an earlier merge made for this very list; any other last extent (maybe also in
 * a cached view) is replaced by a new one.
 */
export function pushExtent(list: Extent[], e: Extent): void {
  if (e.count <= 0) return;
  const last = list[list.length - 1];
  if (!last || !continues(last, e)) { list.push(e); return; }
  if (mergedFor.get(last) === list) { last.count += e.count; return; }
  const grown = { ...last, count: last.count + e.count };
  mergedFor.set(grown, list);
  list[list.length - 1] = grown;
}

/** Sorts by vpn, merges neighbours, and refuses overlaps (a page given twice). */
export function normalize(list: Extent[]): Extent[] {
  const sorted = [...list].sort((a, b) => a.vpn - b.vpn);
  const out: Extent[] = [];
  for (const e of sorted) {
    const last = out[out.length - 1];
    if (last && last.vpn + last.count > e.vpn) {
      throw new StasisError('INVALID_INPUT', `Page 0x${(e.vpn * 4096).toString(16)} was given twice to one checkpoint; give every page at most once.`);
    }
    pushExtent(out, e);
  }
  return out;
}

/** base minus every page covered by cover (both sorted, non-overlapping). */
export function subtract(base: Extent[], cover: { vpn: number; count: number }[]): Extent[] {
  const out: Extent[] = [];
  let j = 0;
  for (const b of base) {
    let s = b.vpn;
    const e = b.vpn + b.count;
    while (j < cover.length && cover[j].vpn + cover[j].count <= s) j++;
    let k = j;
    while (s < e) {
      if (k >= cover.length || cover[k].vpn >= e) { pushExtent(out, slice(b, s, e)); break; }
      const cs = cover[k].vpn;
      const ce = cs + cover[k].count;
      if (cs > s) pushExtent(out, slice(b, s, cs));
      s = Math.max(s, ce);
      k++;
    }
  }
  return out;
}

/** Pages of base that lie inside cover (both sorted, non-overlapping). */
export function intersect(base: Extent[], cover: { vpn: number; count: number }[]): Extent[] {
  const out: Extent[] = [];
  let j = 0;
  for (const b of base) {
    const e = b.vpn + b.count;
    while (j < cover.length && cover[j].vpn + cover[j].count <= b.vpn) j++;
    for (let k = j; k < cover.length && cover[k].vpn < e; k++) {
      const s = Math.max(b.vpn, cover[k].vpn);
      const t = Math.min(e, cover[k].vpn + cover[k].count);
      if (t > s) pushExtent(out, slice(b, s, t));
    }
  }
  return out;
}

/** Two sorted, mutually disjoint lists merged into one sorted list. */
export function mergeDisjoint(a: Extent[], b: Extent[]): Extent[] {
  const out: Extent[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i].vpn < b[j].vpn)) pushExtent(out, a[i++]);
    else pushExtent(out, b[j++]);
  }
  return out;
}

/**
 * The records of top win over base wherever top has a record (absent records included). dropAbsent:
 * the result without absent extents, for a base that has none (a view): only the windows the
 * records touch are filtered.
 */
export function overlay(base: Extent[], top: Extent[], dropAbsent = false): Extent[] {
  const present = (list: Extent[]): Extent[] => (dropAbsent ? withoutAbsent(list) : list);
  if (top.length === 0) return base.slice();
  // Few records over a large view (every incremental, and a migration's last round): only the
  // windows of base the records touch are worked through; the stretches between are copied as
  // they are (native slices), which keeps the downtime's commit off a walk of the whole view. A
  // window takes one neighbour on each side, so merges across its edges are the ones a full walk
  // makes (base is normalized: its own neighbours never continue each other).
  if (top.length * 8 > base.length) return present(mergeDisjoint(subtract(base, top), top));
  const pieces: Extent[][] = [];
  let i = 0;
  for (let t = 0; t < top.length;) {
    const lo = Math.max(i, firstEndingAfter(base, top[t].vpn, i) - 1);
    let hi = firstStartingAt(base, top[t].vpn + top[t].count, lo) + 1;
    let u = t + 1;
    // Records whose windows meet this one's go in the same window.
    while (u < top.length && firstEndingAfter(base, top[u].vpn, lo) - 1 <= hi) {
      hi = Math.max(hi, firstStartingAt(base, top[u].vpn + top[u].count, lo) + 1);
      u++;
    }
    hi = Math.min(hi, base.length);
    pieces.push(base.slice(i, lo));
    const records = top.slice(t, u);
    pieces.push(present(mergeDisjoint(subtract(base.slice(lo, hi), records), records)));
    i = hi;
    t = u;
  }
  pieces.push(base.slice(i));
  return ([] as Extent[]).concat(...pieces);
}

/** Index of the first extent of a sorted list (from index `from`) that ends after vpn (list.length if none). */
function firstEndingAfter(list: Extent[], vpn: number, from: number): number {
  let a = from;
  let b = list.length;
  while (a < b) {
    const mid = (a + b) >> 1;
    if (list[mid].vpn + list[mid].count <= vpn) a = mid + 1; else b = mid;
  }
  return a;
}

/** Index of the first extent of a sorted list (from index `from`) that starts at or after vpn (list.length if none). */
function firstStartingAt(list: Extent[], vpn: number, from: number): number {
  let a = from;
  let b = list.length;
  while (a < b) {
    const mid = (a + b) >> 1;
    if (list[mid].vpn < vpn) a = mid + 1; else b = mid;
  }
  return a;
}

export function withoutAbsent(list: Extent[]): Extent[] {
  return list.filter((e) => e.kind !== KIND_ABSENT);
}

export function pageCount(list: { count: number; kind?: ExtentKind }[], kind?: ExtentKind): number {
  let n = 0;
  for (const e of list) if (kind === undefined || e.kind === kind) n += e.count;
  return n;
}

/** Index of the extent containing vpn, or -1 (binary search over a sorted list). */
export function findExtent(list: Extent[], vpn: number): number {
  let lo = 0;
  let hi = list.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const e = list[mid];
    if (vpn < e.vpn) hi = mid - 1;
    else if (vpn >= e.vpn + e.count) lo = mid + 1;
    else return mid;
  }
  return -1;
}

/** Sorted, merged intervals (no origin) from any list of {vpn,count}. */
export function unionIntervals(list: { vpn: number; count: number }[]): { vpn: number; count: number }[] {
  const sorted = [...list].sort((a, b) => a.vpn - b.vpn);
  const out: { vpn: number; count: number }[] = [];
  for (const r of sorted) {
    if (r.count <= 0) continue;
    const last = out[out.length - 1];
    if (last && last.vpn + last.count >= r.vpn) last.count = Math.max(last.count, r.vpn + r.count - last.vpn);
    else out.push({ vpn: r.vpn, count: r.count });
  }
  return out;
}

type Interval = { vpn: number; count: number };
const asExtents = (list: Interval[]): Extent[] => list.map((r) => ({ vpn: r.vpn, count: r.count, kind: KIND_ABSENT, file: 0, page: 0 }));
const asIntervals = (list: Extent[]): Interval[] => list.map((e) => ({ vpn: e.vpn, count: e.count }));

/** Pages in a but not in b, for plain page intervals (any order, overlaps allowed). */
export function subtractIntervals(a: Interval[], b: Interval[]): Interval[] {
  return asIntervals(subtract(asExtents(unionIntervals(a)), unionIntervals(b)));
}

/**
 * The pages of a sorted list outside every interval of cover (sorted, merged): subtract(list,
 * cover) found through the gaps between covers by binary search, for a cover that holds nearly
 * all of a large list (a view against the process's mappings) and leaves little or nothing.
 */
export function outside(list: Extent[], cover: Interval[]): Extent[] {
  const out: Extent[] = [];
  for (let k = 0; k <= cover.length; k++) {
    const lo = k === 0 ? 0 : cover[k - 1].vpn + cover[k - 1].count;
    const hi = k === cover.length ? Number.MAX_SAFE_INTEGER : cover[k].vpn;
    if (hi <= lo) continue;
    for (const e of intersect(window(list, lo, hi), [{ vpn: lo, count: hi - lo }])) out.push(e);
  }
  return out;
}

/** Pages in both a and b, for plain page intervals (any order, overlaps allowed). */
export function intersectIntervals(a: Interval[], b: Interval[]): Interval[] {
  return asIntervals(intersect(asExtents(unionIntervals(a)), unionIntervals(b)));
}

/** The extents of a sorted list that overlap [lo, hi), found by binary search (no copy of the rest). */
export function window<T extends { vpn: number; count: number }>(list: T[], lo: number, hi: number): T[] {
  let a = 0;
  let b = list.length;
  while (a < b) {
    const mid = (a + b) >> 1;
    if (list[mid].vpn + list[mid].count <= lo) a = mid + 1; else b = mid;
  }
  let end = a;
  while (end < list.length && list[end].vpn < hi) end++;
  return list.slice(a, end);
}
