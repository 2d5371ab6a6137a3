/** Label and notes of one checkpoint. */
import { useState } from 'react';
import { Dialog } from '../../components/Dialog';
import { FormFooter } from '../../components/FormFooter';
import { callEngine, useAction } from '../../components/engine';
import { CALL } from '../../components/calls';
import type { CheckpointInfo } from '../../components/types';

export function EditDialog({ checkpoint: c, onClose, onSaved }: { checkpoint: CheckpointInfo; onClose: () => void; onSaved: () => void }) {
  const [label, setLabel] = useState(c.label ?? '');
  const [notes, setNotes] = useState(c.notes ?? '');
  const action = useAction();
  const submit = async (e: React.FormEvent): Promise<void> => {
    e.preventDefault();
    const ok = await action.run(async () => {
      if (label.trim() !== (c.label ?? '')) await callEngine(CALL.label, { id: c.id, label: label.trim() || null });
      if (notes !== (c.notes ?? '')) await callEngine(CALL.notes, { id: c.id, notes: notes || null });
      return true;
    });
    if (ok) { onSaved(); onClose(); }
  };
  return (
    <Dialog title={`Label and notes of #${c.id}`} onClose={onClose}>
      <form className="form" onSubmit={submit}>
        <label>Label<input autoFocus value={label} onChange={(e) => setLabel(e.target.value)} /></label>
        <label>Notes<textarea rows={5} value={notes} onChange={(e) => setNotes(e.target.value)} /></label>
        <FormFooter action={action} submit="Save" onCancel={onClose} />
      </form>
    </Dialog>
  );
}
