/**
 * flatten: rewrites the pages of one checkpoint's view into one fresh segment, in address order, so
 * that materializing it reads one file front to back instead of small runs spread over every
 * segment of a long chain. Every record (of any checkpoint) that named one of those pages at the
 * same address is pointed at the new copy, in one index transaction with the new definitions of
 * the checkpoints whose records changed (written into the new segment, so reindex agrees); the old
 * copies are left for gc. No view changes: every page keeps its content.
 * Crash-safe like every write: until that transaction the old layout is the only one the index
 * knows and the new file is pending (removed on the next open). Cancellable until the switch.
 */
import type { FlattenResult } from './api';
import { KIND_DATA, findExtent, pushExtent, type Extent } from './extents';
import { PAGE, type DefEntry } from './format';
import { hashKey } from './hash';
import { throwIfCancelled } from './cancel';
import type { StoreIndex } from './store-index';
import type { ChainViews } from './views';
import { progress, type ProgressFn } from '../progress';

/** The parts of the index flatten reads and writes. */
export type FlattenIndex = Pick<StoreIndex, 'db' | 'meta' | 'reader' | 'newSegment' | 'ownExtents' | 'dataHashes' | 'currentDef' | 'publish' | 'insertFile' | 'applyDef' | 'bumpGeneration' | 'addDedup'>;
type Views = Pick<ChainViews, 'view' | 'cacheView'>;

/** Pages copied per read. */
const READ_PAGES = 256;

/** The segment files checkpoint id's pages are read from. */
export function viewFiles(views: Pick<ChainViews, 'view'>, id: number): Set<number> {
  const files = new Set<number>();
  for (const e of views.view(id)) if (e.kind === KIND_DATA) files.add(e.file);
  return files;
}

export function flattenCheckpoint(index: FlattenIndex, views: Views, id: number, signal?: AbortSignal, onProgress?: ProgressFn): FlattenResult {
  const cancel = (): void => throwIfCancelled(signal, 'The flatten', 'every checkpoint keeps its layout');
  const prog = progress(onProgress);
  cancel();
  const view = views.view(id);
  const data = view.filter((e) => e.kind === KIND_DATA);
  const total = data.reduce((n, e) => n + e.count, 0);
  if (new Set(data.map((e) => e.file)).size <= 1) {
    prog.finish({ total, unit: 'pages', phase: 'already flat' });
    return { id, file: null, pages: 0, bytes: 0, checkpointsRewritten: 0 };
  }
  const seg = index.newSegment();
  try {
    // moved: the view's data extents, each now naming its new place (same vpn order as view).
    const moved: Extent[] = [];
    const local = new Map<string, number>(); // pages this segment already holds, by full hash
    const fresh: { key: bigint; page: number }[] = [];
    const buf = Buffer.allocUnsafe(READ_PAGES * PAGE);
    let done = 0;
    for (const e of data) {
      for (let p = 0; p < e.count; p += READ_PAGES) {
        cancel();
        const n = Math.min(READ_PAGES, e.count - p);
        index.reader.readPages(e.file, e.page + p, n, buf, 0);
        for (let i = 0; i < n; i++) {
          const h = index.reader.hashOf(e.file, e.page + p + i);
          const hs = h.toString('latin1');
          let q = local.get(hs);
          if (q === undefined) {
            q = seg.addPage(buf, i * PAGE, h);
            local.set(hs, q);
            fresh.push({ key: hashKey(h), page: q });
          }
          pushExtent(moved, { vpn: e.vpn + p + i, count: 1, kind: KIND_DATA, file: seg.fileId, page: q });
        }
        prog.report({ done: done += n, total, unit: 'pages', phase: 'copying pages' });
      }
    }
    // Every checkpoint with a record naming one of the view's pages at the same address.
    const files = [...new Set(data.map((e) => e.file))];
    const owners = new Set<number>();
    const q = index.db.prepare('SELECT DISTINCT ckpt FROM extents WHERE file = ?');
    for (const f of files) for (const r of q.all(f) as { ckpt: number }[]) owners.add(r.ckpt);
    const recs: Buffer[] = [];
    const off = { n: 0 };
    const entries: DefEntry[] = [];
    const rewritten: { id: number; records: Extent[] }[] = [];
    for (const c of [...owners].sort((a, b) => a - b)) {
      const own = index.ownExtents(c);
      const next = repoint(own, data, moved);
      if (!next) continue;
      // Same pages at the same addresses: the hashes in record order are those of the old records.
      entries.push(index.currentDef(c, recs, off, next, undefined, index.dataHashes(own)));
      rewritten.push({ id: c, records: next });
    }
    cancel(); // last chance: after finish() the segment is no longer a temp file discard() removes
    const { bytes, pages, blockBytes } = seg.finish(entries, Buffer.concat(recs));
    index.publish(seg.fileId, () => {
      index.insertFile(seg.fileId, bytes, pages, entries, blockBytes);
      rewritten.forEach((r, i) => index.applyDef(entries[i], seg.fileId, r.records));
      index.bumpGeneration();
    });
    // The same view, now in the new segment: the chain's next commit starts from it without
    // overlaying the whole chain again.
    const flat: Extent[] = [];
    for (const e of view) {
      if (e.kind !== KIND_DATA) { pushExtent(flat, e); continue; }
      for (let v = e.vpn; v < e.vpn + e.count; v++) pushExtent(flat, at(moved, v));
    }
    views.cacheView(id, index.meta('generation', 0), flat);
    // New writes dedup against the new copies: the old ones are gc's to reclaim.
    index.addDedup(fresh.map((f) => ({ key: f.key, file: seg.fileId, page: f.page })), true);
    prog.finish({ total, unit: 'pages', phase: 'flattened' });
    return { id, file: seg.fileId, pages, bytes, checkpointsRewritten: rewritten.length };
  } catch (e) {
    seg.discard();
    throw e;
  }
}

/**
 * own's records with every data page that the view (data, sorted) holds at the same address and
 * the same stored place replaced by its new place (moved, parallel to data); null when none is.
 */
function repoint(own: Extent[], data: Extent[], moved: Extent[]): Extent[] | null {
  const out: Extent[] = [];
  let changed = false;
  for (const r of own) {
    if (r.kind !== KIND_DATA) { pushExtent(out, r); continue; }
    let vpn = r.vpn;
    const end = r.vpn + r.count;
    let i = findExtent(data, vpn);
    if (i < 0) i = firstAfter(data, vpn);
    while (vpn < end) {
      const d = data[i];
      if (!d || d.vpn >= end) { pushExtent(out, { ...r, vpn, count: end - vpn, page: r.page + (vpn - r.vpn) }); break; }
      if (d.vpn > vpn) { pushExtent(out, { ...r, vpn, count: d.vpn - vpn, page: r.page + (vpn - r.vpn) }); vpn = d.vpn; }
      const to = Math.min(end, d.vpn + d.count);
      if (d.file === r.file && d.page - d.vpn === r.page - r.vpn) {
        for (let v = vpn; v < to; v++) pushExtent(out, { ...at(moved, v), count: 1 });
        changed = true;
      } else {
        pushExtent(out, { ...r, vpn, count: to - vpn, page: r.page + (vpn - r.vpn) });
      }
      vpn = to;
      i++;
    }
  }
  return changed ? out : null;
}

/** Index of the first extent of list starting after vpn (list.length when none). */
function firstAfter(list: Extent[], vpn: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid].vpn <= vpn) lo = mid + 1; else hi = mid;
  }
  return lo;
}

/** The one-page extent of moved at vpn (moved covers it). */
function at(moved: Extent[], vpn: number): Extent {
  const e = moved[findExtent(moved, vpn)];
  return { vpn, count: 1, kind: KIND_DATA, file: e.file, page: e.page + (vpn - e.vpn) };
}
