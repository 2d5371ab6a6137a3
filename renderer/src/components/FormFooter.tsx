/** The end of a dialog's form: what went wrong with its action, Cancel, and the submit button (off while the action runs). */
import { ErrorNote } from '../ErrorNote';
import type { Action } from './engine';

export function FormFooter({ action, submit, onCancel }: { action: Action; submit: string; onCancel: () => void }) {
  return (
    <>
      {action.error ? <ErrorNote error={action.error} /> : null}
      <div className="dialog-actions">
        <button type="button" className="secondary" onClick={onCancel}>Cancel</button>
        <button type="submit" disabled={action.running}>{submit}</button>
      </div>
    </>
  );
}
