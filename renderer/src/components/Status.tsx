/** Small status pieces shared by the screens: busy line, progress bar, yes/no badge. */
import type { ReactNode } from 'react';
import type { OpProgress } from '../../../shared/contract/engine';
import { OP_NAMES, describeProgress } from '../../../shared/format';

export function Busy({ children }: { children: ReactNode }) {
  return <p className="busy" role="status"><span className="spinner" aria-hidden="true" />{children}</p>;
}

/** Determinate when value is given (0..1), else indeterminate. */
export function Progress({ label, value }: { label: string; value?: number }) {
  return (
    <div className="progress-wrap">
      <progress aria-label={label} max={1} value={value} aria-valuetext={label} />
      <span>{label}</span>
    </div>
  );
}

/** The engine's own progress of a running operation: a determinate bar with its value as text. */
export function OpProgressBar({ progress }: { progress: OpProgress }) {
  const { value, text } = describeProgress(progress);
  return (
    <div className="progress-wrap" data-testid="op-progress" data-op={progress.op} data-done={progress.done} data-total={progress.total}>
      <progress aria-label={`${OP_NAMES[progress.op]} progress`} aria-valuetext={text} max={1} value={value} />
      <span>{text}</span>
    </div>
  );
}

export function YesNo({ ok, yes = 'Yes', no = 'No' }: { ok: boolean; yes?: string; no?: string }) {
  return <span className={ok ? 'badge badge-yes' : 'badge badge-no'}>{ok ? yes : no}</span>;
}

/**
 * A long operation in progress with its Cancel button, or the note that it was cancelled. The
 * engine is told to stop; some operations finish their current step first (see README).
 */
export function Running({ action, children }: { action: { running: boolean; cancelled: boolean; cancel: () => void; progress?: OpProgress | null }; children?: ReactNode }) {
  if (action.running) {
    return (
      <div className="running">
        {action.progress ? <OpProgressBar progress={action.progress} /> : children ? <Busy>{children}</Busy> : null}
        <button type="button" className="secondary" onClick={action.cancel}>Cancel operation</button>
      </div>
    );
  }
  return action.cancelled ? <p role="status" data-testid="cancelled">Cancelled. The engine was told to stop; an operation that was past its last check still completes.</p> : null;
}
