/**
 * The commit of a tree checkpoint: the members' writers share one segment (and its in-segment
 * dedup, so pages a forked child still shares with its parent are stored once); each member's
 * commit() only hands its records here, and commit() writes every def into that one segment and
 * makes all of them visible in one index transaction. Nothing is visible before that; an abort or
 * a failure discards the segment and every member with it.
 */
import { StasisError } from '../../../shared/errors';
import type { CheckpointInfo, CheckpointStats, CheckpointWriter, TreeWriter } from './api';
import { KIND_DATA, type Extent } from './extents';
import { encodeRecords, type DefEntry } from './format';
import { PageSlots } from './page-slots';
import type { SegmentWriter } from './segments';
import type { CommitIndex, Sealed, ViewCache } from './commit';
import type { WriterHost } from './writer';

export class TreeCommit implements TreeWriter {
  writers: CheckpointWriter[] = [];
  readonly local = new PageSlots();
  private sealed: (Sealed | null)[];
  private done = false;

  constructor(private readonly index: CommitIndex, private readonly views: ViewCache, readonly seg: SegmentWriter, private readonly ids: number[], private readonly release: () => void) {
    this.sealed = ids.map(() => null);
  }

  /** What member i's Writer sees as its store: its commit only seals its records. */
  hostFor(i: number): WriterHost {
    return {
      reader: this.index.reader,
      lookupDedup: (keys) => this.index.lookupDedup(keys),
      dedupEmpty: () => this.index.dedupEmpty(),
      commitCheckpoint: (w) => {
        this.sealed[i] = w;
        // Not visible yet: the tree's commit() publishes every member at once.
        return { id: this.ids[i]!, targetId: 0, parentId: w.def.parent, createdAt: w.def.createdAt, label: w.def.label, notes: null, pinned: false, mode: w.def.mode as CheckpointInfo['mode'], dirtyTracking: w.def.dirtyTracking as CheckpointInfo['dirtyTracking'], stats: w.def.stats as unknown as CheckpointStats };
      },
      finishWriter: () => { /* the tree's commit or abort releases the lock */ },
    };
  }

  commit(stats: Partial<CheckpointStats>[]): CheckpointInfo[] {
    if (this.done) throw new StasisError('INVALID_INPUT', 'This tree checkpoint was already committed or aborted; begin a new one.');
    try {
      this.writers.forEach((w, i) => w.commit(stats[i] ?? {}));
      const all = this.sealed.map((s, i) => {
        if (!s) throw new StasisError('INTERNAL', `Member ${i} of the tree checkpoint was not sealed.`);
        return s;
      });
      const blockBytes = this.seg.flushBlocks();
      const newTotal = all.reduce((n, s) => n + s.newPages.length, 0);
      const root = this.ids[0]!;
      const recs: Buffer[] = [];
      let off = 0;
      const defs: DefEntry[] = all.map((s) => {
        const wire = s.records.map((e) => ({ vpn: e.vpn, count: e.count, kind: e.kind }));
        const buf = encodeRecords(wire, s.hashes);
        const dataPages = s.records.reduce((n, e) => n + (e.kind === KIND_DATA ? e.count : 0), 0);
        // The segment's pages are the tree's: each member counts those it wrote. Stored bytes split by new pages (the blocks are shared: exact when nothing is compressed).
        const bytesWritten = newTotal ? Math.round((blockBytes * s.newPages.length) / newTotal) : 0;
        const def: DefEntry = { ...s.def, stats: { ...s.def.stats, pagesWritten: s.newPages.length, bytesWritten }, tree: { root, size: all.length }, recordsOffset: off, extents: s.records.length, dataPages };
        recs.push(buf);
        off += buf.length;
        return def;
      });
      const { bytes, pages, blockBytes: bb } = this.seg.seal(defs, Buffer.concat(recs));
      this.index.publish(this.seg.fileId, () => {
        this.index.insertFile(this.seg.fileId, bytes, pages, defs, bb);
        defs.forEach((d, i) => this.index.applyDef(d, this.seg.fileId, all[i]!.records as Extent[]));
      }, () => this.seg.place());
      this.done = true;
      this.release();
      const seg = this.seg;
      this.index.addDedupLater(() => all.flatMap((s) => s.newPages.map((p) => ({ key: seg.hashKeyOf(p), file: seg.fileId, page: p }))));
      const gen = this.index.meta('generation', 0);
      defs.forEach((d, i) => this.views.cacheView(d.ckpt, gen, all[i]!.view));
      return defs.map((d) => this.index.get(d.ckpt)!);
    } catch (e) {
      this.abort();
      throw e;
    }
  }

  abort(): void {
    if (this.done) return;
    this.done = true;
    for (const w of this.writers) w.abort();
    this.seg.discard();
    this.release();
  }
}
