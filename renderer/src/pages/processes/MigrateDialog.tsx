/**
 * "Migrate…": move a running process to a Receive listener on another Stasis, in one session.
 * "Check destination" sends the first round while the process runs on, and the destination
 * answers its pre-flight, shown here (pass / fail with the reason). The session then waits:
 * "Migrate now" goes on from there (round 1 is not sent again) with pre-copy rounds and their
 * progress, the short freeze and the result (downtime, rounds, bytes, the PID there, warnings);
 * "Not now" ends it as a dry run, and the receiver keeps its token. Cancel before the destination
 * has the process leaves it running here untouched; the button goes away once the final round is
 * on its way. The token stays in this dialog's state only.
 * A process with children moves as a tree (every process, restored together there); "New PIDs
 * there" asks the destination to give them new PIDs when their own are taken (its pre-flight says so).
 */
import { useRef, useState } from 'react';
import { Dialog } from '../../components/Dialog';
import { ErrorNote } from '../../ErrorNote';
import { callEngine, useAction, useEngineEvents } from '../../components/engine';
import { CALL, EVENT } from '../../components/calls';
import { newCallId } from '../../api';
import { toErrorData, type StasisErrorData } from '../../../../shared/errors';
import { formatBytes, formatMs, plural } from '../../components/format';
import { Busy, OpProgressBar } from '../../components/Status';
import { Checklist } from '../../components/Checklist';
import type { MigratePreflightEvent, MigrateResult, PreflightItem, ProcessInfo } from '../../components/types';

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
  // The pre-flight of the session in progress (or of the last one), and the receiver it was for.
  const [asked, setAsked] = useState<{ to: string; token: string; newPids: boolean; ok: boolean; items: PreflightItem[] } | null>(null);
  const [newPids, setNewPids] = useState(false);
  const [going, setGoing] = useState(false);
  // The question was answered (either way): its buttons are done until the call returns.
  const [answered, setAnswered] = useState(false);
  const [endedDry, setEndedDry] = useState(false);
  const [answerError, setAnswerError] = useState<StasisErrorData | null>(null);
  const [result, setResult] = useState<MigrateResult | null>(null);
  const [phases, setPhases] = useState<string[]>([]);
  const session = useAction();
  const callId = useRef<string | null>(null);
  const sent = useRef({ to: '', token: '', newPids: false });
  const phase = session.progress?.phase;

  useEngineEvents([EVENT.migratePreflight], (_e, payload) => {
    const q = payload as MigratePreflightEvent;
    if (q.callId !== callId.current) return;
    setAsked({ ...sent.current, ok: q.preflight.ok, items: q.preflight.items });
  });

  const input = { pid: p.pid, to: to.trim(), token: token.trim(), ...(newPids ? { samePid: false } : {}) };
  const waiting = session.running && asked !== null && !going && !answered;
  const stale = asked !== null && (asked.to !== input.to || asked.token !== input.token || asked.newPids !== newPids);
  const check = async (e: React.FormEvent): Promise<void> => {
    e.preventDefault();
    setAsked(null);
    setGoing(false);
    setAnswered(false);
    setEndedDry(false);
    setAnswerError(null);
    setPhases([]);
    const id = newCallId();
    callId.current = id;
    sent.current = { to: input.to, token: input.token, newPids };
    const r = await session.run((signal, onProgress) => callEngine<MigrateResult>(CALL.migrate, { ...input, confirm: true }, signal, (pr) => {
      onProgress(pr);
      const ph = pr.phase;
      if (ph) setPhases((ps) => (ps[ps.length - 1] === ph ? ps : [...ps, ph]));
    }, id));
    callId.current = null;
    if (r?.destination) { setResult(r); onDone(); return; }
    if (r) {
      setAsked({ ...sent.current, ok: r.preflight.ok, items: r.preflight.items });
      setEndedDry(true);
    }
  };
  const answer = async (go: boolean): Promise<void> => {
    const id = callId.current;
    if (!id) return;
    setAnswerError(null);
    setAnswered(true);
    if (go) setGoing(true);
    try {
      await callEngine(CALL.migrateConfirm, { callId: id, go });
    } catch (err) {
      setGoing(false);
      setAnswered(false);
      setAnswerError(toErrorData(err));
    }
  };
  const refused = session.error ? refusedItems(session.error.detail) : null;
  const shown = asked ?? (refused ? { to: input.to, token: input.token, newPids, ok: false, items: refused } : null);
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
          {result.retracted?.length ? <><dt>Last round</dt><dd>taken again: the process changed its mappings' flags while the first try travelled ({result.retracted.length} mapping{result.retracted.length > 1 ? 's' : ''}), so it was restored there from scratch</dd></> : null}
          <dt>Destination</dt><dd>{d.prepared ? `built the ${result.tree ? 'tree' : 'process'} from round 1 while it ran here (${formatMs(d.prepareMs)}) and applied the later rounds to it` : `restored ${result.tree ? 'the tree' : 'it'} from scratch in the downtime${d.unprepared ? ` (it could not prepare it: ${d.unprepared})` : ''}`}</dd>
        </dl>
        <Rounds r={result} />
        {d.warning ? <ul className="warnings"><li>{d.warning}</li></ul> : null}
        <div className="dialog-actions"><button type="button" onClick={onClose}>Close</button></div>
      </Dialog>
    );
  }

  return (
    <Dialog title={`Migrate ${p.comm} (PID ${p.pid}) to another machine`} onClose={onClose} wide>
      <form className="form" onSubmit={check}>
        <p className="hint">On the other machine open Receive, start listening, and copy its address and pairing token here. First the destination checks whether it can restore this process: its first copy is sent while the process runs on, and nothing here is stopped. Then Migrate now goes on from that copy.</p>
        <label>Receiver (HOST:PORT)<input name="migrate-to" required value={to} onChange={(e) => setTo(e.target.value)} placeholder="10.0.0.5:7411" spellCheck={false} autoFocus disabled={session.running} /></label>
        <label>Pairing token<input name="migrate-token" required value={token} onChange={(e) => setToken(e.target.value)} placeholder="stasis1-…" spellCheck={false} autoComplete="off" disabled={session.running} /></label>
        <label className="check"><input type="checkbox" name="migrate-new-pids" checked={newPids} onChange={(e) => setNewPids(e.target.checked)} disabled={session.running} /> New PIDs there (a process with children whose PIDs are taken on the destination; only for a program that never waits for or signals its processes by PID)</label>
        <div className="dialog-actions">
          <button type="submit" className={shown?.ok ? 'secondary' : undefined} disabled={session.running}>Check destination</button>
        </div>
      </form>
      {session.running && !asked ? (
        <div className="running">
          {session.progress ? <OpProgressBar progress={session.progress} /> : <Busy>Connecting…</Busy>}
          <button type="button" className="secondary" onClick={session.cancel}>Cancel</button>
        </div>
      ) : null}
      {session.error && !refused ? <ErrorNote error={session.error} /> : null}
      {shown ? (
        <section aria-label="Destination pre-flight">
          <h3>Destination pre-flight</h3>
          <p role="status" data-testid="migrate-preflight-summary" data-ok={shown.ok}>
            {shown.ok ? `The destination can restore it: all ${shown.items.length} checks pass. Nothing was stopped here.` : `The destination cannot restore it: ${shown.items.filter((i) => !i.ok).length} of ${shown.items.length} checks fail. Nothing was stopped; the process runs on here.`}
          </p>
          {/* What fails first: that is what the user has to act on. */}
          <Checklist items={[...shown.items].sort((x, y) => Number(x.ok) - Number(y.ok))} label="Destination pre-flight checklist" />
          {waiting ? <p className="hint" data-testid="migrate-waiting">The destination holds the first copy and waits: Migrate now sends only what changed since.</p> : null}
          {stale ? <p className="hint">The receiver or token changed since this check: check again before migrating.</p> : null}
          {endedDry ? <p role="status" data-testid="migrate-not-now">Not migrated: the session ended as a dry run, and the destination keeps listening with the same token. Check again to migrate.</p> : null}
        </section>
      ) : null}
      {answerError ? <ErrorNote error={answerError} /> : null}
      {session.running && going ? (
        <div className="running">
          {session.progress ? <OpProgressBar progress={session.progress} /> : <Busy>Going on with the migration…</Busy>}
          {phases.length ? <p className="muted" data-testid="migrate-phases">Rounds: {phases.join(' → ')}</p> : null}
          {finalRound ? <span className="muted">The process is frozen for the last round; it can no longer be cancelled.</span>
            : <button type="button" className="secondary" onClick={session.cancel}>Cancel migration</button>}
        </div>
      ) : null}
      {session.cancelled ? <p role="status" data-testid="cancelled">{going ? 'Cancelled. Unless the destination had already started the process, it runs on here untouched and the destination discards what it received. The token is used up: start listening again on the destination, then check again with its new token.' : 'Cancelled before anything was stopped: the process runs on here, and the destination discards what it received.'}</p> : null}
      <div className="dialog-actions">
        <button type="button" className="secondary" onClick={waiting ? () => void answer(false) : onClose} disabled={session.running && !waiting}>{waiting ? 'Not now' : 'Close'}</button>
        <button type="button" disabled={!waiting || !shown?.ok || stale} onClick={() => void answer(true)}>Migrate now</button>
      </div>
    </Dialog>
  );
}
