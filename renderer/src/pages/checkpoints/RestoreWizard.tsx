/**
 * Restore wizard: choose a checkpoint -> the engine's pre-flight checklist (blocked while any item
 * fails) -> options (output destinations, what happens to the running original, safety checkpoint)
 * -> progress -> result (new PID, same PID or not, link to the process).
 */
import { useState } from 'react';
import { Dialog } from '../../components/Dialog';
import { ErrorNote } from '../../ErrorNote';
import { callEngine, useAction, useEngine } from '../../components/engine';
import { CALL } from '../../components/calls';
import { Busy, Progress, Running } from '../../components/Status';
import { Checklist } from '../../components/Checklist';
import { formatMs, formatTime } from '../../components/format';
import { go } from '../../components/nav';
import type { CaptureResult, CheckpointInfo, PreflightResult, ProcessInfo, RestoreResult, TargetInfo } from '../../components/types';

type Step = 'choose' | 'preflight' | 'options' | 'running' | 'result';
const STEPS: [Step, string][] = [['choose', 'Checkpoint'], ['preflight', 'Pre-flight'], ['options', 'Options'], ['running', 'Restore'], ['result', 'Result']];

interface Options { stdout: string; stderr: string; original: 'keep' | 'stop'; safety: boolean }

function redirect(o: Options): { stdout?: string; stderr?: string } {
  return { ...(o.stdout.trim() ? { stdout: o.stdout.trim() } : {}), ...(o.stderr.trim() ? { stderr: o.stderr.trim() } : {}) };
}

export function RestoreWizard({ initial, timeline, target, onClose }: { initial: CheckpointInfo; timeline: CheckpointInfo[]; target: TargetInfo | null; onClose: () => void }) {
  const [step, setStep] = useState<Step>('choose');
  const [id, setId] = useState(initial.id);
  const [check, setCheck] = useState<PreflightResult | null>(null);
  const [opts, setOpts] = useState<Options>({ stdout: '', stderr: '', original: 'keep', safety: false });
  const [phase, setPhase] = useState('');
  const [safety, setSafety] = useState<CaptureResult | null>(null);
  const [result, setResult] = useState<RestoreResult | null>(null);
  const [procs] = useEngine<{ processes: ProcessInfo[] }>(CALL.processes, { all: true });
  // The original is "running" only if the same PID still has the same start time (not a reused PID).
  const originalRunning = !!target && !!procs.value?.processes.some((p) => p.pid === target.pid && p.startTime === target.startTime);
  const pre = useAction();
  const run = useAction();

  const runPreflight = async (): Promise<void> => {
    setStep('preflight');
    setCheck(null);
    const r = await pre.run(() => callEngine<PreflightResult>(CALL.preflight, { id }));
    if (r) setCheck(r);
  };

  const restore = async (): Promise<void> => {
    setStep('running');
    const r = await run.run(async (signal, onProgress) => {
      if (target && originalRunning && (opts.safety || opts.original === 'stop')) {
        setPhase(`Taking a safety checkpoint of the running original (PID ${target.pid})…`);
        const s = await callEngine<CaptureResult>(CALL.checkpoint, {
          pid: target.pid, expectStartTime: target.startTime, label: `safety before restoring #${id}`,
          ...(opts.original === 'stop' ? { mode: 'kill' } : {}),
        }, signal);
        setSafety(s);
      }
      setPhase(`Restoring checkpoint #${id}…`);
      return callEngine<RestoreResult>(CALL.restore, { id, ...redirect(opts) }, signal, onProgress);
    });
    if (r) { setResult(r); setStep('result'); }
  };

  const current = STEPS.findIndex(([s]) => s === step);
  const failing = check?.items.filter((i) => !i.ok) ?? [];
  return (
    <Dialog title="Restore a checkpoint" onClose={onClose} wide>
      <ol className="steps" aria-label="Steps">
        {STEPS.map(([s, label], i) => <li key={s} aria-current={s === step ? 'step' : undefined} className={i < current ? 'done' : i === current ? 'current' : ''}>{label}</li>)}
      </ol>

      {step === 'choose' ? (
        <form className="form" onSubmit={(e) => { e.preventDefault(); void runPreflight(); }}>
          <label>Checkpoint to restore
            <select autoFocus value={id} onChange={(e) => setId(Number(e.target.value))}>
              {timeline.slice(0, 500).map((c) => <option key={c.id} value={c.id}>#{c.id} — {formatTime(c.createdAt)}{c.label ? ` — ${c.label}` : ''} ({c.mode})</option>)}
            </select>
          </label>
          <div className="dialog-actions">
            <button type="button" className="secondary" onClick={onClose}>Cancel</button>
            <button type="submit">Check</button>
          </div>
        </form>
      ) : null}

      {step === 'preflight' ? (
        <div>
          {pre.running ? <Busy>Asking the engine whether #{id} can be restored here…</Busy> : null}
          {pre.error ? <ErrorNote error={pre.error} onRetry={() => void runPreflight()} /> : null}
          {check ? (
            <>
              <p role="status" data-testid="preflight-summary">{failing.length ? `Restore is blocked: ${failing.length} of ${check.items.length} checks fail. Fix them and check again.` : `All ${check.items.length} checks pass.`}</p>
              <Checklist items={check.items} />
            </>
          ) : null}
          <div className="dialog-actions">
            <button type="button" className="secondary" onClick={() => setStep('choose')}>Back</button>
            <button type="button" className="secondary" onClick={() => void runPreflight()} disabled={pre.running}>Check again</button>
            <button type="button" disabled={!check || failing.length > 0 || !check.ok} onClick={() => setStep('options')}>Next</button>
          </div>
        </div>
      ) : null}

      {step === 'options' ? (
        <form className="form" onSubmit={(e) => { e.preventDefault(); void restore(); }}>
          <label>Standard output, if the original terminal or pipe is gone (a file path; empty: the engine's default)<input autoFocus value={opts.stdout} onChange={(e) => setOpts({ ...opts, stdout: e.target.value })} placeholder="/tmp/restored.out" /></label>
          <label>Standard error, likewise<input value={opts.stderr} onChange={(e) => setOpts({ ...opts, stderr: e.target.value })} placeholder="/tmp/restored.err" /></label>
          {originalRunning ? (
            <>
              <fieldset>
                <legend>The original process (PID {target?.pid}) is still running</legend>
                <label className="check"><input type="radio" name="original" checked={opts.original === 'keep'} onChange={() => setOpts({ ...opts, original: 'keep' })} /> Keep it running</label>
                <label className="check"><input type="radio" name="original" checked={opts.original === 'stop'} onChange={() => setOpts({ ...opts, original: 'stop', safety: true })} /> Stop it (a safety checkpoint of it is taken first)</label>
              </fieldset>
              <label className="check"><input type="checkbox" checked={opts.safety || opts.original === 'stop'} disabled={opts.original === 'stop'} onChange={(e) => setOpts({ ...opts, safety: e.target.checked })} /> Take a safety checkpoint of the running original first</label>
            </>
          ) : <p className="muted" data-testid="original-state">{procs.state === 'loading' && !procs.value ? 'Looking for the original process…' : `The original process${target ? ` (PID ${target.pid})` : ''} is not running.`}</p>}
          <div className="dialog-actions">
            <button type="button" className="secondary" onClick={() => void runPreflight()}>Back</button>
            <button type="submit">Restore</button>
          </div>
        </form>
      ) : null}

      {step === 'running' ? (
        <div>
          {run.running && !run.progress ? <Progress label={phase || 'Restoring…'} /> : null}
          <Running action={run} />
          {run.cancelled ? (
            <div className="dialog-actions">
              <button type="button" className="secondary" onClick={() => setStep('options')}>Back</button>
            </div>
          ) : null}
          {safety ? <p>Safety checkpoint #{safety.id} saved.</p> : null}
          {run.error ? (
            <>
              <ErrorNote error={run.error} />
              <div className="dialog-actions">
                <button type="button" className="secondary" onClick={() => setStep('options')}>Back</button>
                <button type="button" onClick={() => void runPreflight()}>Check again</button>
              </div>
            </>
          ) : null}
        </div>
      ) : null}

      {step === 'result' && result ? (
        <div>
          <p role="status" data-testid="restore-result">Checkpoint #{result.checkpointId} is running again as PID <strong data-testid="restored-pid">{result.pid}</strong>{result.samePid ? ' (the same PID as the original).' : ` (the original had PID ${result.originalPid}).`}</p>
          <dl className="facts compact">
            <dt>Took</dt><dd>{formatMs(result.durationMs)}</dd>
            {result.log ? <><dt>Restore log</dt><dd><code>{result.log}</code></dd></> : null}
            {safety ? <><dt>Safety checkpoint</dt><dd>#{safety.id}</dd></> : null}
          </dl>
          <div className="dialog-actions">
            <button type="button" className="secondary" onClick={onClose}>Close</button>
            <button type="button" onClick={() => go('processes', { search: String(result.pid) })}>Show the process</button>
          </div>
        </div>
      ) : null}
    </Dialog>
  );
}
