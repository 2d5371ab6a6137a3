/**
 * The destination's side of a tree migration's member-by-member rounds: each member of a round
 * arrives as its own process's continuation (a single-process checkpoint continuing that member's
 * previous round here), and before the restore they are grouped into one tree checkpoint again,
 * the way restore/tree.ts records a restored tree: a tree of N incrementals, each with one of them
 * as its parent, its state, and no pages of its own (one index transaction, nothing to copy).
 */
import { StasisError } from '../../../shared/errors';
import type { Store, TreeWriter } from '../store/api';

/** ids: the members, root first. Returns the new tree's id (its root's). */
export function groupAsTree(store: Store, ids: number[]): number {
  const rows = ids.map((id) => {
    const c = store.get(id);
    if (!c) throw new StasisError('NOT_FOUND', `There is no checkpoint #${id} to group into a tree.`);
    if (c.tree) throw new StasisError('INVALID_INPUT', `Checkpoint #${id} already belongs to a tree checkpoint.`);
    return c;
  });
  if (new Set(rows.map((c) => c.targetId)).size !== rows.length) throw new StasisError('INVALID_INPUT', 'A tree holds each process once; two of the checkpoints to group are of one process.');
  let w: TreeWriter | null = null;
  try {
    w = store.beginTree(rows.map((c) => ({ targetId: c.targetId, parentId: c.id, mode: 'incremental', dirtyTracking: c.dirtyTracking, coverage: 'delta', label: c.label })));
    rows.forEach((c, i) => w!.writers[i]!.setState(store.getState(c.id)));
    const infos = w.commit(rows.map(() => ({ pagesScanned: 0 })));
    w = null;
    return infos[0]!.id;
  } finally {
    w?.abort();
  }
}
