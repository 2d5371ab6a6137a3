/** "Launch program under Stasis": a command line, working directory and optional stable name; the engine starts it. */
import { useState } from 'react';
import { Dialog } from '../../components/Dialog';
import { ErrorNote } from '../../ErrorNote';
import { callEngine, useAction } from '../../components/engine';
import { CALL } from '../../components/calls';
import { splitCommand } from '../../components/format';
import { Busy } from '../../components/Status';

export function LaunchDialog({ onClose, onLaunched }: { onClose: () => void; onLaunched: (pid: number) => void }) {
  const [command, setCommand] = useState('');
  const [cwd, setCwd] = useState('');
  const [name, setName] = useState('');
  const [launched, setLaunched] = useState<{ pid: number; name?: string; log: string } | null>(null);
  const action = useAction();
  const argv = splitCommand(command);

  const submit = async (e: React.FormEvent): Promise<void> => {
    e.preventDefault();
    const r = await action.run(() => callEngine<{ pid: number; name?: string; log: string }>(CALL.launch, {
      argv, ...(cwd.trim() ? { cwd: cwd.trim() } : {}), ...(name.trim() ? { name: name.trim() } : {}),
    }));
    if (r) { setLaunched(r); onLaunched(r.pid); }
  };

  return (
    <Dialog title="Launch program under Stasis" onClose={onClose}>
      {launched ? (
        <>
          <p role="status" data-testid="launch-result">Started <strong>{argv[0]}</strong> as PID <strong data-testid="launched-pid">{launched.pid}</strong>{launched.name ? <> under the name <strong>{launched.name}</strong></> : null}. Its output goes to <code data-testid="launch-log">{launched.log}</code>.</p>
          <div className="dialog-actions"><button type="button" onClick={onClose}>Close</button></div>
        </>
      ) : (
        <form onSubmit={submit} className="form">
          <label>Command line<input autoFocus required value={command} onChange={(e) => setCommand(e.target.value)} placeholder="/usr/bin/python3 -m http.server 8000" /></label>
          <label>Working directory (optional)<input value={cwd} onChange={(e) => setCwd(e.target.value)} placeholder="the engine's working directory" /></label>
          <label>Name (optional; schedules and checkpoints follow it across restarts)<input value={name} onChange={(e) => setName(e.target.value)} /></label>
          {action.error ? <ErrorNote error={action.error} /> : null}
          {action.running ? <Busy>Starting…</Busy> : null}
          <div className="dialog-actions">
            <button type="button" className="secondary" onClick={onClose}>Cancel</button>
            <button type="submit" disabled={action.running || argv.length === 0}>Launch</button>
          </div>
        </form>
      )}
    </Dialog>
  );
}
