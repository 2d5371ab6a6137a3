/** "Checkpoint now": optional label, full or incremental, with its child processes (a tree checkpoint, the default when it has any) or alone, then the engine's result (or its reason for failing). */
import { useState } from 'react';
import { Dialog } from '../../components/Dialog';
import { ErrorNote } from '../../ErrorNote';
import { callEngine, useAction } from '../../components/engine';
import { CALL } from '../../components/calls';
import { formatBytes, formatMs, plural } from '../../components/format';
import { Progress, Running } from '../../components/Status';
import { go } from '../../components/nav';
import type { CaptureResult, ProcessInfo } from '../../components/types';

export function CheckpointDialog({ process, onClose, onDone }: { process: ProcessInfo; onClose: () => void; onDone: () => void }) {
  const [label, setLabel] = useState('');
  const [full, setFull] = useState(false);
  const [alone, setAlone] = useState(false);
  const [result, setResult] = useState<CaptureResult | null>(null);
  const action = useAction();

  const submit = async (e: React.FormEvent): Promise<void> => {
    e.preventDefault();
    const r = await action.run((signal, onProgress) => callEngine<CaptureResult>(CALL.checkpoint, {
      pid: process.pid, expectStartTime: process.startTime, ...(label.trim() ? { label: label.trim() } : {}), ...(full ? { full: true } : {}), ...(alone ? { tree: false } : {}),
    }, signal, onProgress));
    if (r) { setResult(r); onDone(); }
  };

  return (
    <Dialog title={`Checkpoint ${process.comm} (PID ${process.pid})`} onClose={onClose}>
      {result ? (
        <>
          <p role="status">Saved {result.members ? 'tree ' : ''}checkpoint <strong data-testid="checkpoint-id">#{result.id}</strong> ({result.members ? `${plural(result.members.length, 'process', 'processes')}, ` : ''}{result.mode}, {result.dirtyTracking}).</p>
          {result.members ? <ul className="tree-members" data-testid="tree-members">{result.members.map((m) => <li key={m.pid}>#{m.id} PID {m.pid} {m.comm}{m.parentPid !== null ? `, child of ${m.parentPid}` : ''}</li>)}</ul> : null}
          <dl className="facts compact">
            <dt>Frozen for</dt><dd>{formatMs(result.frozenMs)}</dd>
            <dt>Took</dt><dd>{formatMs(result.durationMs)}</dd>
            <dt>Pages</dt><dd>{plural(result.pagesWritten, 'page')} written of {plural(result.pagesScanned, 'page')} scanned</dd>
            <dt>Written</dt><dd>{formatBytes(result.bytesWritten)}</dd>
          </dl>
          {result.warnings?.length ? <ul className="warnings">{result.warnings.map((w) => <li key={w}>{w}</li>)}</ul> : null}
          <div className="dialog-actions">
            <button type="button" className="secondary" onClick={onClose}>Close</button>
            <button type="button" onClick={() => go('checkpoints', { checkpointId: result.id })}>Show in timeline</button>
          </div>
        </>
      ) : (
        <form onSubmit={submit} className="form">
          <label>Label (optional)<input autoFocus value={label} onChange={(e) => setLabel(e.target.value)} placeholder="before upgrade" /></label>
          <label className="check"><input type="checkbox" checked={full} onChange={(e) => setFull(e.target.checked)} /> Full checkpoint (do not build on the previous one)</label>
          <label className="check"><input type="checkbox" data-testid="checkpoint-alone" checked={alone} onChange={(e) => setAlone(e.target.checked)} /> This process only, without its child processes (by default a process with children is saved with all of them in one checkpoint, every process frozen while it is read, since a parent restored alone cannot wait for them)</label>
          {action.error ? <ErrorNote error={action.error} /> : null}
          {action.running && !action.progress ? <Progress label="Checkpointing: the process is frozen only while its state is read." /> : null}
          <Running action={action} />
          <div className="dialog-actions">
            <button type="button" className="secondary" onClick={onClose} disabled={action.running}>Cancel</button>
            <button type="submit" disabled={action.running}>Checkpoint now</button>
          </div>
        </form>
      )}
    </Dialog>
  );
}
