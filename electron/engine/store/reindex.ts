/**
 * reindex: rebuilds index.sqlite and dedup.sqlite from the segment files alone (the segments are
 * the truth). Applies every segment's entries in file-id order: a def replaces a checkpoint, attrs
 * patch it, a tombstone deletes it. Must never delete or rewrite a segment file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { KIND_DATA, pushExtent, type Extent } from './extents';
import { HASH_LEN, decodeRecords, parseSegmentName, type DefEntry, type Entry } from './format';
import { hashKey } from './hash';
import { scanSegment, type SegmentScan } from './segments';
import type { StoreIndex } from './store-index';

/** The parts of the index this module reads and writes. */
export type ReindexIndex = Pick<StoreIndex, 'db' | 'dedup' | 'segDir' | 'reader' | 'meta' | 'setMeta' | 'insertFile' | 'applyDef' | 'bumpGeneration'>;

export interface ReindexResult {
  checkpoints: number;
  /** Segments or checkpoints that could not be rebuilt, and why. */
  problems: { what: string; where: string }[];
}

export function isEntry(e: unknown): e is Entry {
  if (!e || typeof e !== 'object') return false;
  const x = e as Record<string, unknown>;
  if (!Number.isSafeInteger(x.ckpt) || (x.ckpt as number) <= 0) return false;
  if (x.type === 'tombstone') return true;
  const str = (v: unknown): boolean => v === null || typeof v === 'string';
  if (x.type === 'attrs') return str(x.label) && str(x.notes) && typeof x.pinned === 'boolean';
  if (x.type !== 'def') return false;
  const t = x.target as Record<string, unknown> | null;
  return !!t && typeof t === 'object' && Number.isSafeInteger(t.pid) && typeof t.startTime === 'string' && typeof t.exe === 'string'
    && Array.isArray(t.cmdline) && t.cmdline.every((s) => typeof s === 'string') && typeof t.createdAt === 'string'
    && (x.parent === null || Number.isSafeInteger(x.parent)) && typeof x.createdAt === 'string' && str(x.label) && str(x.notes)
    && typeof x.pinned === 'boolean' && typeof x.mode === 'string' && typeof x.dirtyTracking === 'string'
    && (x.restoredFrom === null || x.restoredFrom === undefined || Number.isSafeInteger(x.restoredFrom))
    && !!x.stats && typeof x.stats === 'object' && typeof x.state === 'string'
    && (x.tree === undefined || x.tree === null || (typeof x.tree === 'object' && Number.isSafeInteger((x.tree as { root?: unknown }).root) && Number.isSafeInteger((x.tree as { size?: unknown }).size)))
    && Number.isSafeInteger(x.recordsOffset) && Number.isSafeInteger(x.extents) && Number.isSafeInteger(x.dataPages);
}

export function reindexStore(index: ReindexIndex): ReindexResult {
  const problems: ReindexResult['problems'] = [];
  const ids = fs.readdirSync(index.segDir).map(parseSegmentName).filter((x): x is number => x !== null).sort((a, b) => a - b);
  const scans: SegmentScan[] = [];
  const unreadable: { id: number; bytes: number }[] = [];
  for (const id of ids) {
    const file = path.join(index.segDir, `${String(id).padStart(10, '0')}.seg`);
    try {
      const s = scanSegment(file);
      if (s.fileId !== id) throw new Error(`its header names file ${s.fileId}`);
      scans.push(s);
      if (s.badBlocks.length) problems.push({ what: `blocks ${s.badBlocks.join(', ')} fail their checksum; their pages are not used`, where: `segments/${path.basename(file)}` });
    } catch (e) {
      problems.push({ what: (e as Error).message, where: `segments/${path.basename(file)}` });
      unreadable.push({ id, bytes: fs.statSync(file).size });
    }
  }
  // Where each content hash can be read (first healthy copy wins).
  const where = new Map<string, { file: number; page: number }>();
  for (const s of scans) {
    const bad = new Set(s.badBlocks);
    for (let p = 0; p < s.parts.pages; p++) {
      if (bad.has(Math.floor(p / 64))) continue;
      const k = s.parts.hashes.toString('latin1', p * HASH_LEN, (p + 1) * HASH_LEN);
      if (!where.has(k)) where.set(k, { file: s.fileId, page: p });
    }
  }
  // Replay entries in file order.
  const live = new Map<number, { def: DefEntry; file: number; records: Buffer }>();
  let maxCkpt = 0;
  for (const s of scans) {
    for (const e of s.parts.entries) {
      if (!isEntry(e)) { problems.push({ what: 'an entry of its trailer is malformed and was ignored', where: `segments/${String(s.fileId).padStart(10, '0')}.seg` }); continue; }
      maxCkpt = Math.max(maxCkpt, e.ckpt);
      if (e.type === 'def') live.set(e.ckpt, { def: { ...e }, file: s.fileId, records: s.parts.records });
      else if (e.type === 'tombstone') live.delete(e.ckpt);
      else {
        const c = live.get(e.ckpt);
        if (c) Object.assign(c.def, { label: e.label, notes: e.notes, pinned: e.pinned });
      }
    }
  }
  // Resolve each checkpoint's records to page locations.
  const resolved = new Map<number, { def: DefEntry; file: number; extents: Extent[] }>();
  for (const [id, c] of live) {
    try {
      const { extents, hashes } = decodeRecords(c.records, c.def, `Segment file ${String(c.file).padStart(10, '0')}.seg`);
      const out: Extent[] = [];
      let h = 0;
      for (const w of extents) {
        if (w.kind !== KIND_DATA) { pushExtent(out, { vpn: w.vpn, count: w.count, kind: w.kind, file: 0, page: 0 }); continue; }
        for (let i = 0; i < w.count; i++, h++) {
          const loc = where.get(hashes.toString('latin1', h * HASH_LEN, (h + 1) * HASH_LEN));
          if (!loc) throw new Error(`page 0x${((w.vpn + i) * 4096).toString(16)} has content stored in no readable segment`);
          pushExtent(out, { vpn: w.vpn + i, count: 1, kind: KIND_DATA, file: loc.file, page: loc.page });
        }
      }
      resolved.set(id, { def: c.def, file: c.file, extents: out });
    } catch (e) {
      problems.push({ what: `checkpoint ${id} cannot be rebuilt: ${(e as Error).message}`, where: `segments/${String(c.file).padStart(10, '0')}.seg` });
    }
  }
  // A checkpoint whose parent is gone cannot be rebuilt either.
  for (let changed = true; changed;) {
    changed = false;
    for (const [id, c] of resolved) {
      if (c.def.parent !== null && !resolved.has(c.def.parent)) {
        resolved.delete(id);
        problems.push({ what: `checkpoint ${id} depends on checkpoint ${c.def.parent}, which cannot be rebuilt`, where: `checkpoint ${id}` });
        changed = true;
      }
    }
    // A tree checkpoint comes back whole or not at all (its members share one segment, so only
    // damage or a member whose parent is lost can split it).
    const treeCount = new Map<number, number>();
    for (const c of resolved.values()) if (c.def.tree) treeCount.set(c.def.tree.root, (treeCount.get(c.def.tree.root) ?? 0) + 1);
    for (const [id, c] of resolved) {
      const t = c.def.tree;
      if (t && ((treeCount.get(t.root) ?? 0) !== t.size || !resolved.has(t.root))) {
        resolved.delete(id);
        problems.push({ what: `checkpoint ${id} is a member of tree checkpoint #${t.root}, which cannot be rebuilt whole (${treeCount.get(t.root) ?? 0} of ${t.size} processes)`, where: `checkpoint ${id}` });
        changed = true;
      }
    }
  }
  const db = index.db;
  db.transaction(() => {
    db.pragma('defer_foreign_keys = ON');
    // Targets stay: a target registered but not yet checkpointed exists nowhere in the segments.
    db.exec('DELETE FROM extents; DELETE FROM entries; DELETE FROM checkpoints; DELETE FROM files;');
    for (const s of scans) index.insertFile(s.fileId, s.bytes, s.parts.pages, s.parts.entries.filter(isEntry), s.parts.blocks.reduce((n, b) => n + b.storedLen, 0));
    // Unreadable segments stay registered (never cleaned as leftovers) so a human can salvage them.
    for (const u of unreadable) index.insertFile(u.id, u.bytes, 0, []);
    for (const id of [...resolved.keys()].sort((a, b) => a - b)) {
      const c = resolved.get(id)!;
      index.applyDef(c.def, c.file, c.extents);
    }
    index.bumpGeneration();
    index.setMeta('next_ckpt', Math.max(index.meta('next_ckpt', 1), maxCkpt + 1));
    index.setMeta('next_file', Math.max(index.meta('next_file', 1), (ids[ids.length - 1] ?? 0) + 1));
  }).immediate();
  index.dedup.transaction(() => {
    index.dedup.exec('DELETE FROM pages');
    const ins = index.dedup.prepare('INSERT OR IGNORE INTO pages(h, file, page) VALUES (?, ?, ?)');
    for (const [k, loc] of where) ins.run(hashKey(Buffer.from(k, 'latin1')), loc.file, loc.page);
  })();
  index.reader.closeAll();
  return { checkpoints: resolved.size, problems };
}
