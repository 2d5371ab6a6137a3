/**
 * "Migrate…": move a running process to a Receive listener on another Stasis. First a dry run: the
 * first round goes over and the destination answers its pre-flight, shown here (pass / fail with
 * the reason) while the process runs on untouched. Only then "Migrate now": pre-copy rounds with
 * their progress, the short freeze, and the result (downtime, rounds, bytes, the PID there,
 * warnings). Cancel before the destination has the process leaves it running here untouched; the
 * button goes away once the final round is on its way. The token stays in this dialog's state only.
 * A process with children moves as a tree (every process, restored together there); "New PIDs
 * there" asks the destination to give them new PIDs when their own are taken (its pre-flight says so).
 */
import { useState } from 'react';
import { Dialog } from '../../components/Dialog';
import { ErrorNote } from '../../ErrorNote';
import { callEngine, useAction } from '../../components/engine';
import { CALL } from '../../components/calls';
import { formatBytes, formatMs, plural } from '../../components/format';
import { Busy, OpProgressBar } from '../../components/Status';
import { Checklist } from '../../components/Checklist';
import type { MigrateResult, PreflightItem, ProcessInfo } from '../../components/types';

/** A refused pre-flight comes back as an error whose detail holds the checklist. */
function refusedItems(detail: unknown): PreflightItem[] | null {
  const items = (detail as { items?: unknown } | null | undefined)?.items;
  return Array.isArray(items) ? items as PreflightItem[] : null;
}

function Rounds({ r }: { r: MigrateResult }) {
  return (
    <table className="grid rounds" aria-label="Rounds" data-testid="rounds">
      <thead><tr><th scope="col">Round</th><th scope="col">Kind</th><th scope="col" className="num">Pages</th><th scope="col" className="num">Bytes</th><th scope="col" className="num">Sent in</th><th scope="col">Applied there</th></tr></thead>
      <tbody>
        {r.rounds.map((x) => (
          <tr key={x.round}><td>{x.round}</td><td>{x.kind}</td><td className="num">{x.pagesSent < x.pages ? `${x.pagesSent} of ${x.pages}` : x.pages}</td><td className="num">{formatBytes(x.bytes)}</td><td className="num">{formatMs(x.sendMs)}</td><td>{x.absorbed ? 'to the prepared process' : '—'}</td></tr>
        ))}
      </tbody>
    </table>
  );
}

export function MigrateDialog({ process: p, onClose, onDone }: { process: ProcessInfo; onClose: () => void; onDone: () => void }) {
  const [to, setTo] = useState('');
  const [token, setToken] = useState('');
  const [newPids, setNewPids] = useState(false);
  const [checked, setChecked] = useState<{ to: string; token: string; newPids: boolean; ok: boolean; items: PreflightItem[] } | null>(null);
  const [result, setResult] = useState<MigrateResult | null>(null);
  const [phases, setPhases] = useState<string[]>([]);
  const check = useAction();
  const move = useAction();
  const phase = move.progress?.phase;

  const input = { pid: p.pid, to: to.trim(), token: token.trim(), ...(newPids ? { samePid: false } : {}) };
  const stale = checked !== null && (checked.to !== input.to || checked.token !== input.token || checked.newPids !== newPids);
  const dryRun = async (e: React.FormEvent): Promise<void> => {
    e.preventDefault();
    setChecked(null);
    move.clear();
    const r = await check.run((signal, onProgress) => callEngine<MigrateResult>(CALL.migrate, { ...input, dryRun: true }, signal, onProgress));
    if (r) setChecked({ to: input.to, token: input.token, newPids, ok: r.preflight.ok, items: r.preflight.items });
  };
  const refused = check.error ? refusedItems(check.error.detail) : null;
  const shown = checked ?? (refused ? { to: input.to, token: input.token, newPids, ok: false, items: refused } : null);
  const go = async (): Promise<void> => {
    setPhases([]);
    const r = await move.run((signal, onProgress) => callEngine<MigrateResult>(CALL.migrate, { ...input, dryRun: false }, signal, (pr) => {
      onProgress(pr);
      const ph = pr.phase;
      if (ph) setPhases((ps) => (ps[ps.length - 1] === ph ? ps : [...ps, ph]));
    }));
    if (r) { setResult(r); onDone(); return; }
    // A migration session uses the token up (only dry runs do not): the next try needs a new one and a new check.
    setChecked(null);
  };
  const finalRound = phase?.includes('final') ?? false;

  if (result?.destination) {
    const d = result.destination;
    return (
      <Dialog title={`Migrated ${p.comm} (PID ${p.pid})`} onClose={onClose} wide>
        {result.tree
          ? <p role="status" data-testid="migrate-result" data-destination-pid={d.pid}>The tree of {plural(result.tree.members.length, 'process', 'processes')} runs on the destination, its root as <strong>PID {d.pid}</strong> (its checkpoint #{d.checkpointId}); every process here was ended.</p>
          : <p role="status" data-testid="migrate-result" data-destination-pid={d.pid}>It runs on the destination as <strong>PID {d.pid}</strong> (its checkpoint #{d.checkpointId}); the process here was ended.</p>}
        {result.tree ? (
          <table className="grid" aria-label="Processes of the tree" data-testid="migrate-members">
            <thead><tr><th scope="col">Here</th><th scope="col">Command</th><th scope="col">There</th></tr></thead>
            <tbody>{result.tree.members.map((m) => <tr key={m.pid}><td>{m.pid}</td><td>{m.comm}</td><td>{m.destinationPid ?? '—'}</td></tr>)}</tbody>
          </table>
        ) : null}
        <dl className="facts compact">
          <dt>Downtime</dt><dd data-testid="downtime">{formatMs(result.downtimeMs)} (frozen {formatMs(result.frozenMs)} for the last checkpoint, restore {formatMs(d.restoreMs)} there)</dd>
          <dt>Rounds</dt><dd>{plural(result.rounds.length, 'round')}, {formatBytes(result.bytesSent)} sent</dd>
          <dt>Destination</dt><dd>{result.tree ? 'restored the tree from scratch in the downtime (a prepared restore takes one process)' : d.prepared ? `built the process from round 1 while it ran here (${formatMs(d.prepareMs)}) and applied the later rounds to it` : `restored it from scratch in the downtime${d.unprepared ? ` (it could not prepare it: ${d.unprepared})` : ''}`}</dd>
        </dl>
        <Rounds r={result} />
        {d.warning ? <ul className="warnings"><li>{d.warning}</li></ul> : null}
        <div className="dialog-actions"><button type="button" onClick={onClose}>Close</button></div>
      </Dialog>
    );
  }

  return (
    <Dialog title={`Migrate ${p.comm} (PID ${p.pid}) to another machine`} onClose={onClose} wide>
      <form className="form" onSubmit={dryRun}>
        <p className="hint">On the other machine open Receive, start listening, and copy its address and pairing token here. First a dry run: the destination checks whether it can restore this process, and nothing here is stopped.</p>
        <label>Receiver (HOST:PORT)<input name="migrate-to" required value={to} onChange={(e) => setTo(e.target.value)} placeholder="10.0.0.5:7411" spellCheck={false} autoFocus disabled={move.running} /></label>
        <label>Pairing token<input name="migrate-token" required value={token} onChange={(e) => setToken(e.target.value)} placeholder="stasis1-…" spellCheck={false} autoComplete="off" disabled={move.running} /></label>
        <label className="check"><input type="checkbox" name="migrate-new-pids" checked={newPids} onChange={(e) => setNewPids(e.target.checked)} disabled={move.running} /> New PIDs there (a process with children whose PIDs are taken on the destination; only for a program that never waits for or signals its processes by PID)</label>
        <div className="dialog-actions">
          <button type="submit" className={shown?.ok ? 'secondary' : undefined} disabled={check.running || move.running}>Check destination (dry run)</button>
        </div>
      </form>
      {check.running ? (
        <div className="running">
          {check.progress ? <OpProgressBar progress={check.progress} /> : <Busy>Connecting…</Busy>}
          <button type="button" className="secondary" onClick={check.cancel}>Cancel operation</button>
        </div>
      ) : null}
      {check.cancelled ? <p role="status">Dry run cancelled; the process runs on here.</p> : null}
      {check.error && !refused ? <ErrorNote error={check.error} /> : null}
      {shown ? (
        <section aria-label="Destination pre-flight">
          <h3>Destination pre-flight</h3>
          <p role="status" data-testid="migrate-preflight-summary" data-ok={shown.ok}>
            {shown.ok ? `The destination can restore it: all ${shown.items.length} checks pass. Nothing was stopped here.` : `The destination cannot restore it: ${shown.items.filter((i) => !i.ok).length} of ${shown.items.length} checks fail. Nothing was stopped; the process runs on here.`}
          </p>
          {/* What fails first: that is what the user has to act on. */}
          <Checklist items={[...shown.items].sort((x, y) => Number(x.ok) - Number(y.ok))} label="Destination pre-flight checklist" />
          {stale ? <p className="hint">The receiver or token changed since this check: check again before migrating.</p> : null}
        </section>
      ) : null}
      {move.running ? (
        <div className="running">
          {move.progress ? <OpProgressBar progress={move.progress} /> : <Busy>Starting the migration…</Busy>}
          {phases.length ? <p className="muted" data-testid="migrate-phases">Rounds: {phases.join(' → ')}</p> : null}
          {finalRound ? <span className="muted">The process is frozen for the last round; it can no longer be cancelled.</span>
            : <button type="button" className="secondary" onClick={move.cancel}>Cancel migration</button>}
        </div>
      ) : null}
      {move.cancelled ? <p role="status" data-testid="cancelled">Cancelled. Unless the destination had already started the process, it runs on here untouched and the destination discards what it received. The token is used up: start listening again on the destination, then check again with its new token.</p> : null}
      {move.error ? <ErrorNote error={move.error} /> : null}
      <div className="dialog-actions">
        <button type="button" className="secondary" onClick={onClose} disabled={move.running}>Close</button>
        <button type="button" disabled={!shown?.ok || stale || check.running || move.running} onClick={() => void go()}>Migrate now</button>
      </div>
    </Dialog>
  );
}
