/**
 * gc: reclaims segment bytes no checkpoint references by compacting segments: live pages of mostly
 * dead segments are copied into one new segment (with the current definitions of the checkpoints
 * whose definitions lived there), the index is switched over in one transaction, then the old files
 * are deleted. Must never delete a file before the index stops referencing it.
 * Cancellation is honoured only before the index switch: a cancelled gc discards its new segment and
 * leaves every checkpoint as it was; once the switch is committed the compaction completes.
 */
import * as fs from 'node:fs';
import { KIND_DATA, type Extent } from './extents';
import { BLOCK_PAGES, PAGE, type Entry } from './format';
import { hashKey } from './hash';
import { fsyncDir } from './segments';
import { throwIfCancelled } from './cancel';
import type { StoreIndex } from './store-index';
import { progress, type ProgressFn } from '../progress';

/** The parts of the index this module reads and writes. */
export type GcIndex = Pick<StoreIndex, 'db' | 'segDir' | 'reader' | 'livePages' | 'newSegment' | 'currentDef' | 'checkpointRow' | 'publish' | 'insertFile' | 'bumpGeneration' | 'addDedup'>;

/** A segment is rewritten when less than this share of its pages is still referenced. */
const REWRITE_BELOW = 0.5;

export function gcStore(index: GcIndex, signal?: AbortSignal, onProgress?: ProgressFn): { bytesReclaimed: number; segmentsRewritten: number } {
  const prog = progress(onProgress);
  const cancel = (): void => throwIfCancelled(signal, 'The gc', 'no segment was compacted and every checkpoint is intact');
  cancel();
  const db = index.db;
  const files = db.prepare('SELECT id, bytes, pages FROM files ORDER BY id').all() as { id: number; bytes: number; pages: number }[];
  const { byFile } = index.livePages();
  const defFile = new Map((db.prepare('SELECT id, def_file FROM checkpoints').all() as { id: number; def_file: number }[]).map((r) => [r.id, r.def_file]));
  const entryRows = db.prepare('SELECT file, ckpt, type FROM entries').all() as { file: number; ckpt: number; type: string }[];
  // The file holding each checkpoint's newest attrs entry, when newer than its def.
  const attrsFile = new Map<number, number>();
  for (const r of entryRows) {
    if (r.type !== 'attrs' || !defFile.has(r.ckpt) || r.file < defFile.get(r.ckpt)!) continue;
    attrsFile.set(r.ckpt, Math.max(attrsFile.get(r.ckpt) ?? 0, r.file));
  }
  const holdsCurrent = (f: number): boolean => [...defFile.values()].includes(f) || [...attrsFile.values()].includes(f);
  const chosen = new Set<number>();
  for (const f of files) {
    const live = (byFile.get(f.id) ?? []).reduce((n, r) => n + r.count, 0);
    if (f.pages > 0 && live < f.pages * REWRITE_BELOW) chosen.add(f.id);
    else if (f.pages === 0 && !holdsCurrent(f.id)) chosen.add(f.id);
  }
  if (chosen.size === 0) {
    prog.finish({ total: 0, unit: 'pages', phase: 'nothing to compact' });
    return { bytesReclaimed: 0, segmentsRewritten: 0 };
  }
  // Progress counts the live pages to copy out of the chosen segments, the bulk of the work.
  const toCopy = [...chosen].reduce((n, f) => n + (byFile.get(f) ?? []).reduce((m, r) => m + r.count, 0), 0);
  let copied = 0;

  // Tombstones must survive while any other file still mentions the deleted checkpoint.
  const tombstones = new Set<number>();
  for (const r of entryRows) {
    if (r.type !== 'tombstone' || !chosen.has(r.file)) continue;
    if (entryRows.some((o) => o.ckpt === r.ckpt && o.type !== 'tombstone' && !chosen.has(o.file))) tombstones.add(r.ckpt);
  }
  const movedDefs = [...defFile].filter(([, f]) => chosen.has(f)).map(([id]) => id);
  const movedAttrs = [...attrsFile].filter(([id, f]) => chosen.has(f) && !chosen.has(defFile.get(id)!)).map(([id]) => id);
  const hasLive = [...chosen].some((f) => (byFile.get(f) ?? []).length > 0);

  let newFile: { id: number; bytes: number } | null = null;
  const remap = new Map<number, { from: number; count: number; to: number }[]>();
  const moved: { key: bigint; page: number }[] = [];
  if (hasLive || movedDefs.length || movedAttrs.length || tombstones.size) {
    const seg = index.newSegment();
    try {
      const buf = Buffer.allocUnsafe(BLOCK_PAGES * PAGE);
      for (const f of [...chosen].sort((a, b) => a - b)) {
        cancel();
        const list: { from: number; count: number; to: number }[] = [];
        for (const r of byFile.get(f) ?? []) {
          list.push({ from: r.vpn, count: r.count, to: seg.pages });
          for (let p = r.vpn; p < r.vpn + r.count; p += BLOCK_PAGES) {
            cancel();
            const n = Math.min(BLOCK_PAGES, r.vpn + r.count - p);
            index.reader.readPages(f, p, n, buf, 0);
            for (let i = 0; i < n; i++) {
              const h = index.reader.hashOf(f, p + i);
              const q = seg.addPage(buf, i * PAGE, h);
              moved.push({ key: hashKey(h), page: q });
            }
            prog.report({ done: copied += n, total: toCopy, unit: 'pages', phase: 'copying live pages' });
          }
        }
        remap.set(f, list);
      }
      const recs: Buffer[] = [];
      const off = { n: 0 };
      const entries: Entry[] = [];
      for (const id of movedDefs) entries.push(index.currentDef(id, recs, off));
      for (const id of movedAttrs) {
        const r = index.checkpointRow(id);
        entries.push({ type: 'attrs', ckpt: id, label: r.label, notes: r.notes, pinned: r.pinned === 1 });
      }
      for (const id of tombstones) entries.push({ type: 'tombstone', ckpt: id });
      cancel(); // last chance: after finish() the segment is no longer a temp file discard() removes
      const { bytes, blockBytes } = seg.finish(entries, Buffer.concat(recs));
      newFile = { id: seg.fileId, bytes };
      const g = seg.fileId;
      index.publish(g, () => {
        index.insertFile(g, bytes, seg.pages, entries, blockBytes);
        relocate(index, chosen, remap, g);
        for (const id of movedDefs) db.prepare('UPDATE checkpoints SET def_file = ? WHERE id = ?').run(g, id);
        for (const f of chosen) doom(index, f);
        index.bumpGeneration();
      });
    } catch (e) {
      seg.discard();
      throw e;
    }
  } else {
    cancel();
    db.transaction(() => { for (const f of chosen) doom(index, f); index.bumpGeneration(); }).immediate();
  }
  let freed = 0;
  for (const f of chosen) {
    freed += files.find((x) => x.id === f)!.bytes;
    index.reader.forget(f);
    fs.rmSync(index.reader.pathOf(f), { force: true });
  }
  fsyncDir(index.segDir);
  db.transaction(() => { for (const f of chosen) db.prepare('DELETE FROM pending WHERE file = ?').run(f); }).immediate();
  if (newFile) index.addDedup(moved.map((m) => ({ key: m.key, file: newFile!.id, page: m.page })), true);
  prog.finish({ total: toCopy, unit: 'pages', phase: 'compacted' });
  return { bytesReclaimed: freed - (newFile?.bytes ?? 0), segmentsRewritten: chosen.size };
}

/** Drops a file from the index and marks it pending, so a crash before its unlink still removes it on open. */
function doom(index: GcIndex, f: number): void {
  index.db.prepare('DELETE FROM files WHERE id = ?').run(f);
  index.db.prepare('INSERT OR IGNORE INTO pending(file) VALUES (?)').run(f);
}

/** Points every extent that referenced a rewritten file at the page's new place. */
function relocate(index: GcIndex, chosen: Set<number>, remap: Map<number, { from: number; count: number; to: number }[]>, g: number): void {
  const db = index.db;
  const upd = db.prepare('UPDATE extents SET file = ?, page = ? WHERE ckpt = ? AND vpn = ?');
  for (const f of chosen) {
    const list = remap.get(f) ?? [];
    const rows = db.prepare('SELECT ckpt, vpn, count, kind, file, page FROM extents WHERE file = ?').all(f) as (Extent & { ckpt: number })[];
    for (const r of rows) {
      if (r.kind !== KIND_DATA) continue;
      let lo = 0;
      let hi = list.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (list[mid].from <= r.page) lo = mid; else hi = mid - 1;
      }
      const seg = list[lo] && list[lo].from <= r.page && r.page + r.count <= list[lo].from + list[lo].count ? list[lo] : null;
      if (!seg) throw new Error(`gc: extent of checkpoint ${r.ckpt} at page ${r.page} of file ${f} lies outside the live pages`);
      upd.run(g, seg.to + (r.page - seg.from), r.ckpt, r.vpn);
    }
  }
}
