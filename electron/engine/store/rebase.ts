/**
 * "Incremental from two fulls": re-expresses checkpoint b as changes on top of checkpoint onto,
 * keeping b's view (and so its children's views) byte-identical. Owns only the record rewrite;
 * must never change any page's content.
 */
import { StasisError } from '../../../shared/errors';
import { zip } from './diff';
import { KIND_ABSENT, KIND_DATA, pushExtent, slice, type Extent } from './extents';
import type { Entry } from './format';
import type { StoreIndex } from './store-index';
import type { ChainViews } from './views';

/** The parts of the index this module reads and writes. */
export type RebaseIndex = Pick<StoreIndex, 'reader' | 'checkpointRow' | 'chain' | 'currentDef' | 'writeMetaSegment' | 'publish' | 'insertFile' | 'applyDef' | 'bumpGeneration'>;
type Views = Pick<ChainViews, 'view'>;

export function rebaseRecords(index: RebaseIndex, base: Extent[], top: Extent[]): Extent[] {
  const out: Extent[] = [];
  const same = (x: Extent, y: Extent, vpn: number): boolean => {
    if (x.kind !== y.kind) return false;
    if (x.kind !== KIND_DATA) return true;
    const px = x.page + (vpn - x.vpn);
    const py = y.page + (vpn - y.vpn);
    return (x.file === y.file && px === py) || index.reader.hashOf(x.file, px).equals(index.reader.hashOf(y.file, py));
  };
  zip(base, top, (vpn, count, ea, eb) => {
    if (!eb) { pushExtent(out, { vpn, count, kind: KIND_ABSENT, file: 0, page: 0 }); return; }
    if (!ea) { pushExtent(out, slice(eb, vpn, vpn + count)); return; }
    for (let p = vpn; p < vpn + count; p++) if (!same(ea, eb, p)) pushExtent(out, slice(eb, p, p + 1));
  });
  return out;
}

export function rebaseCheckpoint(index: RebaseIndex, views: Views, id: number, onto: number): { id: number; parentId: number; pagesChanged: number } {
  index.checkpointRow(id);
  if (index.chain(onto).includes(id)) throw new StasisError('INVALID_INPUT', `Checkpoint ${onto} descends from ${id}; rebase ${id} onto a checkpoint outside its own descendants.`);
  const records = rebaseRecords(index, views.view(onto), views.view(id));
  const recs: Buffer[] = [];
  const def = index.currentDef(id, recs, { n: 0 }, records, onto);
  const changed = records.reduce((n, e) => n + e.count, 0);
  def.mode = 'incremental';
  def.stats = { ...def.stats, pagesChanged: changed };
  const entries: Entry[] = [def];
  const { fileId, bytes } = index.writeMetaSegment(entries, recs);
  index.publish(fileId, () => {
    index.insertFile(fileId, bytes, 0, entries);
    index.applyDef(def, fileId, records);
    index.bumpGeneration();
  });
  return { id, parentId: onto, pagesChanged: changed };
}
