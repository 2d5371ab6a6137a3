/** Confirms and deletes one checkpoint (the store keeps later checkpoints restorable). */
import { Dialog } from '../../components/Dialog';
import { ErrorNote } from '../../ErrorNote';
import { callEngine, useAction } from '../../components/engine';
import { CALL } from '../../components/calls';
import type { CheckpointInfo } from '../../components/types';

export function DeleteDialog({ checkpoint: c, onClose, onDeleted }: { checkpoint: CheckpointInfo; onClose: () => void; onDeleted: () => void }) {
  const action = useAction();
  const remove = async (): Promise<void> => {
    // The store refuses to delete a pinned checkpoint; the user saw it is pinned and confirmed.
    const r = await action.run(async () => {
      if (c.pinned) await callEngine(CALL.pin, { id: c.id, pinned: false });
      return callEngine(CALL.remove, { ids: [c.id] });
    });
    if (r !== undefined) { onDeleted(); onClose(); }
  };
  return (
    <Dialog title={`Delete checkpoint #${c.id}?`} onClose={onClose}>
      <p>Checkpoint #{c.id}{c.label ? ` (“${c.label}”)` : ''} will be removed from the store. Later checkpoints stay restorable; the space is reclaimed by the next garbage collection.{c.pinned ? ' It is pinned: deleting unpins it first.' : ''}</p>
      {action.error ? <ErrorNote error={action.error} /> : null}
      <div className="dialog-actions">
        <button type="button" className="secondary" autoFocus onClick={onClose}>Keep it</button>
        <button type="button" className="danger" disabled={action.running} onClick={remove}>{c.pinned ? 'Unpin and delete' : 'Delete'}</button>
      </div>
    </Dialog>
  );
}
