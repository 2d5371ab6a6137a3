/**
 * Receive: listen for another Stasis sending a checkpoint, replicating a process's checkpoints
 * (`send --to`, `send PID --follow`, a schedule's "also send to") or migrating a process here. Starting
 * shows where it listens and the one-time pairing token to copy to the sender; the token lives only
 * in this page's state (the engine returns it to this call alone and no event carries it), so it is
 * gone once the page is left: stop and listen again for a new one. Below: what arrived.
 */
import '../components/screens.css';
import { useState } from 'react';
import { Page } from '../Page';
import { ErrorNote } from '../ErrorNote';
import { callEngine, useAction, useEngine, useEngineEvents } from '../components/engine';
import { CALL, EVENT } from '../components/calls';
import { Busy } from '../components/Status';
import { formatTime } from '../components/format';
import { go } from '../components/nav';
import type { Arrival, ReceiverStatus } from '../components/types';

/** The engine's default (shared/contract/transfer.ts DEFAULT_LISTEN), not imported so zod stays out of the page bundle. */
const DEFAULT_LISTEN = '0.0.0.0:7411';

const KIND: Record<Arrival['kind'], string> = { checkpoints: 'Checkpoints', replicated: 'Replicated', migration: 'Migrated process', 'dry-run': 'Dry run', failed: 'Failed' };

function ArrivalRow({ a }: { a: Arrival }) {
  return (
    <li className={a.kind === 'failed' ? 'fail' : 'ok'} data-testid="arrival" data-kind={a.kind} data-pid={a.pid ?? undefined} data-ids={a.checkpointIds.join(',')}>
      <strong>{KIND[a.kind]}</strong> <span className="muted">{formatTime(a.at)}</span>
      <div>{a.message}</div>
      {a.checkpointIds.length ? (
        <div>Checkpoints here: {a.checkpointIds.map((id, n) => (
          <span key={id}>{n ? ', ' : ''}<a href="#/checkpoints" onClick={(e) => { e.preventDefault(); go('checkpoints', { checkpointId: id }); }}>#{id}</a></span>
        ))}</div>
      ) : null}
      {a.pid !== null ? <div><a href="#/processes" onClick={(e) => { e.preventDefault(); go('processes', { search: String(a.pid) }); }}>Show PID {a.pid} in Processes</a></div> : null}
    </li>
  );
}

export function ReceivePage() {
  const [loaded, reload] = useEngine<ReceiverStatus>(CALL.receiver);
  const [pushed, setPushed] = useState<ReceiverStatus | null>(null);
  const [address, setAddress] = useState(DEFAULT_LISTEN);
  const [keep, setKeep] = useState(false);
  const [token, setToken] = useState<string | null>(null);
  const [copied, setCopied] = useState(false);
  const action = useAction();
  useEngineEvents([EVENT.receiver], (_e, p) => setPushed(p as ReceiverStatus));
  const status = pushed ?? loaded.value ?? null;
  // The token is worth showing only while that listener is the one listening.
  const shownToken = status?.listening ? token : null;

  const start = async (e: React.FormEvent): Promise<void> => {
    e.preventDefault();
    const r = await action.run(() => callEngine<ReceiverStatus & { token: string }>(CALL.listen, { address: address.trim(), keep }));
    if (r) {
      const { token: t, ...rest } = r;
      setToken(t);
      setCopied(false);
      setPushed(rest);
    }
  };
  const stop = async (): Promise<void> => {
    const r = await action.run(() => callEngine<ReceiverStatus>(CALL.stopListening));
    if (r) { setPushed(r); setToken(null); }
  };
  const copy = (): void => {
    if (!shownToken) return;
    void navigator.clipboard?.writeText(shownToken).then(() => setCopied(true), () => setCopied(false));
  };

  return (
    <Page title="Receive" actions={<button type="button" className="secondary" onClick={() => { setPushed(null); reload(); }}>Refresh</button>}>
      <p className="hint">Another Stasis can send a checkpoint here (Checkpoints → Send to machine…) or move a running process here (Processes → Migrate…). It needs this machine’s address and the pairing token shown once listening. The link is TLS with the token as its key; the token works for one transfer (a migration’s dry run does not use it up, nor a replication that broke off and resumes), or for every transfer until you stop when you keep listening: what a schedule’s “also send to” and <code>stasis send PID --follow</code> need.</p>
      {loaded.state === 'loading' && !status ? <Busy>Asking the engine…</Busy> : null}
      {loaded.state === 'failed' ? <ErrorNote error={loaded.error} onRetry={reload} /> : null}
      {status && !status.listening ? (
        <form className="inline-form receive-form" onSubmit={start}>
          <label>Listen on (HOST:PORT; port 0 picks a free one)
            <input name="listen-address" value={address} onChange={(e) => setAddress(e.target.value)} spellCheck={false} />
          </label>
          <label className="check"><input type="checkbox" name="listen-keep" checked={keep} onChange={(e) => setKeep(e.target.checked)} /> Keep listening after each transfer (schedules that also send here, <code>send PID --follow</code>)</label>
          <button type="submit" disabled={action.running}>Start listening</button>
        </form>
      ) : null}
      {status?.listening ? (
        <section className="receive-live" aria-label="Listening">
          <dl className="facts compact">
            <dt>Listening on</dt><dd data-testid="receive-address"><code>{status.address}</code></dd>
            {status.reachableAt.length ? <><dt>Senders elsewhere use</dt><dd data-testid="receive-reachable">{status.reachableAt.map((x, n) => <span key={x}>{n ? ', ' : ''}<code>{x}</code></span>)}</dd></> : null}
            <dt>Sessions</dt><dd data-testid="receive-keep">{status.keep ? 'every sender with this token, until stopped' : 'one transfer with this token'}</dd>
            <dt>Pairing token</dt>
            <dd>
              {shownToken ? (
                <span className="token-row">
                  <input readOnly aria-label="Pairing token" data-testid="receive-token" value={shownToken} onFocus={(e) => e.target.select()} spellCheck={false} />
                  <button type="button" className="secondary" onClick={copy}>{copied ? 'Copied' : 'Copy'}</button>
                </span>
              ) : <span className="muted">Shown only in the window that started listening, until it is left. Stop and listen again for a new token.</span>}
            </dd>
          </dl>
          <p className="hint">On the sender: Send to machine… or Migrate… with this machine’s address on that network and this token. From a terminal: <code>stasis send ID --to HOST:PORT --token TOKEN</code>, <code>stasis send PID --follow --to HOST:PORT --token TOKEN</code>, <code>stasis schedule add PID --every 10m --send-to HOST:PORT --token TOKEN</code> or <code>stasis migrate PID --to HOST:PORT --token TOKEN</code>.</p>
          <div className="toolbar">
            <button type="button" className="danger" onClick={() => void stop()} disabled={action.running}>Stop listening</button>
          </div>
        </section>
      ) : null}
      {action.error ? <ErrorNote error={action.error} /> : null}
      {status?.error ? <div className="error-note" role="alert" data-testid="receive-error"><p>{status.error}</p></div> : null}
      <h2>Arrived</h2>
      {status && status.arrivals.length === 0 ? <p className="muted">Nothing yet.</p> : null}
      {status && status.arrivals.length ? (
        <ul className="checklist" aria-label="What arrived" aria-live="polite">
          {status.arrivals.map((a) => <ArrivalRow key={`${a.at}-${a.kind}-${a.message}`} a={a} />)}
        </ul>
      ) : null}
    </Page>
  );
}
