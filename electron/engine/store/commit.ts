/**
 * Write path, the commit of one checkpoint: its def entry and records go into the segment the
 * writer filled, the segment is sealed (trailer, fsync) while one index transaction inserts the
 * checkpoint's rows, and that transaction commits, making the checkpoint visible, only once the
 * segment is durable and renamed into place; its new pages join the dedup table after that, once the engine is idle
 * (StoreIndex.addDedupLater: the table is an accelerator, the checkpoint is complete without it).
 */
import type { CheckpointInfo } from './api';
import { KIND_DATA } from './extents';
import { encodeRecords, type DefEntry } from './format';
import type { StoreIndex } from './store-index';
import type { WriterHost } from './writer';

/** The index rows a commit writes. */
export type CommitIndex = Pick<StoreIndex, 'publish' | 'insertFile' | 'applyDef' | 'addDedupLater' | 'meta' | 'get' | 'reader' | 'lookupDedup' | 'dedupEmpty'>;
/** Where a committed checkpoint's view is kept for the next incremental (the read path's cache). */
export interface ViewCache { cacheView(id: number, gen: number, view: Sealed['view']): void }
export type Sealed = Parameters<WriterHost['commitCheckpoint']>[0];

export function commitCheckpoint(index: CommitIndex, views: ViewCache, w: Sealed): CheckpointInfo {
  const wire = w.records.map((e) => ({ vpn: e.vpn, count: e.count, kind: e.kind }));
  const dataPages = w.records.reduce((n, e) => n + (e.kind === KIND_DATA ? e.count : 0), 0);
  // bytesWritten: stored block bytes, so a compressed checkpoint shows what it really cost.
  const def: DefEntry = { ...w.def, stats: { ...w.def.stats, bytesWritten: w.seg.flushBlocks() }, recordsOffset: 0, extents: w.records.length, dataPages };
  // The rows go in while the trailer and the fsync are written on the write-behind thread.
  const { bytes, pages, blockBytes } = w.seg.seal([def], encodeRecords(wire, w.hashes));
  index.publish(w.seg.fileId, () => {
    index.insertFile(w.seg.fileId, bytes, pages, [def], blockBytes);
    index.applyDef(def, w.seg.fileId, w.records);
  }, () => w.seg.place());
  const { seg, newPages } = w;
  index.addDedupLater(() => newPages.map((p) => ({ key: seg.hashKeyOf(p), file: seg.fileId, page: p })));
  views.cacheView(def.ckpt, index.meta('generation', 0), w.view); // the next incremental starts from it
  return index.get(def.ckpt)!;
}
