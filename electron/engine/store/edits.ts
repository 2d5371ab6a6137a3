/**
 * Metadata edits: deleting checkpoints (their records folded into their children, whose views
 * stay the same) and changing labels, notes and pins. Each edit is one segment of entries (no
 * pages) made visible by one index transaction; space comes back only with gc.
 */
import { StasisError } from '../../../shared/errors';
import { KIND_ABSENT, overlay, type Extent } from './extents';
import type { AttrsEntry, Entry } from './format';
import type { StoreIndex } from './store-index';

/** The parts of the index edits read and write. */
export type EditIndex = Pick<StoreIndex, 'db' | 'checkpointRow' | 'ownExtents' | 'treeMembers' | 'currentDef' | 'writeMetaSegment' | 'publish' | 'insertFile' | 'applyDef' | 'bumpGeneration'>;

/** Deletes ids (a tree member takes its whole tree); refuses pinned ones. Runs under the writer lock. */
export function removeCheckpoints(index: EditIndex, ids: number[]): void {
  for (const id of ids) index.checkpointRow(id);
  // A tree checkpoint is deleted whole (a tree missing a member cannot be restored): each
  // group of members goes in one segment, so no reader ever sees part of a tree.
  const groups: number[][] = [];
  const seen = new Set<number>();
  for (const id of ids) {
    if (seen.has(id)) continue;
    const g = index.treeMembers(id);
    for (const m of g) seen.add(m);
    groups.push(g);
  }
  for (const g of groups) for (const id of g) {
    const k = index.checkpointRow(id);
    if (k.pinned) throw new StasisError('CONFLICT', `Checkpoint ${id} is pinned; unpin it first (\`stasis unpin ${id}\`) if you really want to delete it.`);
  }
  for (const g of groups) removeGroup(index, g);
}

/**
 * Folds the records of each of ids into its children (their views do not change), then drops
 * them, in one segment. ids are one checkpoint or the members of one tree (none is another's parent).
 */
function removeGroup(index: EditIndex, ids: number[]): void {
  const recs: Buffer[] = [];
  const off = { n: 0 };
  const entries: Entry[] = ids.map((id) => ({ type: 'tombstone', ckpt: id }));
  const folded = new Map<number, Extent[]>();
  for (const id of ids) {
    const k = index.checkpointRow(id);
    const kRecs = index.ownExtents(id);
    const children = (index.db.prepare('SELECT id FROM checkpoints WHERE parent_id = ? ORDER BY id').all(id) as { id: number }[]).map((r) => r.id);
    for (const c of children) {
      let merged = overlay(kRecs, index.ownExtents(c));
      if (k.parent_id === null) merged = merged.filter((e) => e.kind !== KIND_ABSENT); // a root hides nothing
      folded.set(c, merged);
      entries.push(index.currentDef(c, recs, off, merged, k.parent_id));
    }
  }
  const { fileId, bytes } = index.writeMetaSegment(entries, recs);
  index.publish(fileId, () => {
    index.insertFile(fileId, bytes, 0, entries);
    for (const e of entries) if (e.type === 'def') index.applyDef(e, fileId, folded.get(e.ckpt)!);
    for (const id of ids) index.db.prepare('DELETE FROM checkpoints WHERE id = ?').run(id);
    index.bumpGeneration();
  });
}

/** Changes a checkpoint's label, notes or pin. Runs under the writer lock. */
export function setAttrs(index: EditIndex, id: number, patch: Partial<Pick<AttrsEntry, 'label' | 'notes' | 'pinned'>>): void {
  const r = index.checkpointRow(id);
  const entry: AttrsEntry = { type: 'attrs', ckpt: id, label: r.label, notes: r.notes, pinned: r.pinned === 1, ...patch };
  const { fileId, bytes } = index.writeMetaSegment([entry], []);
  index.publish(fileId, () => {
    index.insertFile(fileId, bytes, 0, [entry]);
    index.db.prepare('UPDATE checkpoints SET label = ?, notes = ?, pinned = ? WHERE id = ?').run(entry.label, entry.notes, entry.pinned ? 1 : 0, id);
  });
}
