/**
 * verify: every checksum of every indexed segment, and every record's reachability; reports what is
 * damaged and exactly which checkpoints' views it touches. Read-only: it must never repair.
 * Cancellable per segment, per block and per checkpoint; being read-only, a cancel just stops.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { StasisError } from '../../../shared/errors';
import type { VerifyProblem } from './api';
import { KIND_DATA } from './extents';
import { BLOCK_PAGES, parseSegmentName, segmentName } from './format';
import { scanSegment } from './segments';
import { isCancelled, throwIfCancelled } from './cancel';
import type { StoreIndex } from './store-index';
import type { ChainViews } from './views';
import { phases, progress, type ProgressFn } from '../progress';

/** The parts of the index this module reads and writes. */
export type VerifyIndex = Pick<StoreIndex, 'db' | 'segDir'>;
type Views = Pick<ChainViews, 'view'>;

export function verifyStore(index: VerifyIndex, views: Views, signal?: AbortSignal, onProgress?: ProgressFn): { ok: boolean; problems: VerifyProblem[] } {
  const cancel = (): void => throwIfCancelled(signal, 'The verify', 'it stopped part-way, changed nothing and reports no result');
  const prog = phases(progress(onProgress), ['segments', 'checkpoints']);
  const problems: VerifyProblem[] = [];
  const files = index.db.prepare('SELECT id, bytes, pages FROM files ORDER BY id').all() as { id: number; bytes: number; pages: number }[];
  /** Damaged page ranges per file (whole file when the trailer is unusable). */
  const damaged = new Map<number, { from: number; to: number; what: string; where: string }[]>();
  const deadFiles = new Set<number>();
  const pagesIn = new Map<number, number>();
  const allPages = files.reduce((n, f) => n + f.pages, 0);
  let pagesChecked = 0;
  for (const f of files) {
    cancel();
    prog.at('segments', pagesChecked, allPages, 'pages');
    pagesChecked += f.pages;
    const file = path.join(index.segDir, segmentName(f.id));
    const where = `segments/${segmentName(f.id)}`;
    if (!fs.existsSync(file)) {
      deadFiles.add(f.id);
      damaged.set(f.id, [{ from: 0, to: Infinity, what: 'segment file is missing', where }]);
      continue;
    }
    try {
      let block = 0;
      const scan = scanSegment(file, () => {
        cancel();
        prog.at('segments', pagesChecked - f.pages + Math.min(block++ * BLOCK_PAGES, f.pages), allPages, 'pages');
      });
      pagesIn.set(f.id, scan.parts.pages);
      if (scan.fileId !== f.id) throw new StasisError('CORRUPT', `its header names file ${scan.fileId}`);
      if (scan.badBlocks.length) {
        damaged.set(f.id, scan.badBlocks.map((b) => ({ from: b * BLOCK_PAGES, to: (b + 1) * BLOCK_PAGES, what: `block ${b} checksum mismatch`, where: `${where} block ${b} (offset ${scan.parts.blocks[b].offset})` })));
      }
    } catch (e) {
      if (isCancelled(e)) throw e;
      deadFiles.add(f.id);
      damaged.set(f.id, [{ from: 0, to: Infinity, what: (e as Error).message, where }]);
    }
  }
  const ids = (index.db.prepare('SELECT id, def_file FROM checkpoints ORDER BY id').all() as { id: number; def_file: number }[]);
  const hits = new Map<string, { what: string; where: string; affects: Set<number> }>();
  const note = (what: string, where: string, id: number): void => {
    const key = `${where}\n${what}`;
    let h = hits.get(key);
    if (!h) hits.set(key, (h = { what, where, affects: new Set() }));
    h.affects.add(id);
  };
  for (const [i, { id, def_file }] of ids.entries()) {
    cancel();
    prog.at('checkpoints', i, ids.length, 'steps');
    if (deadFiles.has(def_file)) note(`the definition of checkpoint ${id} is in a damaged segment: reindex would lose it`, `segments/${segmentName(def_file)}`, id);
    let view;
    try {
      view = views.view(id);
    } catch (e) {
      note((e as Error).message, `checkpoint ${id}`, id);
      continue;
    }
    for (const e of view) {
      if (e.kind !== KIND_DATA) continue;
      const n = pagesIn.get(e.file);
      if (n !== undefined && e.page + e.count > n) note(`records point past the end of the segment (${n} pages)`, `segments/${segmentName(e.file)}`, id);
      for (const d of damaged.get(e.file) ?? []) {
        if (e.page < d.to && e.page + e.count > d.from) note(d.what, d.where, id);
      }
    }
  }
  // A tree checkpoint is restorable only whole: every member it counts must be there.
  const trees = index.db.prepare('SELECT tree_root AS root, MAX(tree_size) AS size, COUNT(*) AS n FROM checkpoints WHERE tree_root IS NOT NULL GROUP BY tree_root').all() as { root: number; size: number; n: number }[];
  for (const t of trees) {
    const members = (index.db.prepare('SELECT id FROM checkpoints WHERE tree_root = ?').all(t.root) as { id: number }[]).map((r) => r.id);
    if (t.n !== t.size || !members.includes(t.root)) {
      for (const m of members) note(`tree checkpoint #${t.root} has ${t.n} of its ${t.size} processes${members.includes(t.root) ? '' : ' (its root is missing)'}: it cannot be restored; delete it with \`stasis rm ${members[0]}\``, `tree #${t.root}`, m);
    }
  }
  // Damage nobody references is still damage (it may hold pages a future dedup would trust).
  for (const [, list] of damaged) for (const d of list) if (![...hits.values()].some((h) => h.where === d.where)) hits.set(`${d.where}\n${d.what}`, { what: d.what, where: d.where, affects: new Set() });
  const known = new Set(files.map((f) => f.id));
  for (const name of fs.readdirSync(index.segDir)) {
    const id = parseSegmentName(name);
    if (id !== null && !known.has(id)) hits.set(`unindexed ${name}`, { what: 'segment file is not in the index; `stasis reindex` takes it in', where: `segments/${name}`, affects: new Set() });
  }
  for (const h of hits.values()) problems.push({ what: h.what, where: h.where, affects: [...h.affects].sort((a, b) => a - b) });
  prog.finish('checked');
  return { ok: problems.length === 0, problems };
}
