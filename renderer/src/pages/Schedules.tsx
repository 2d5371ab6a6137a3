/**
 * Schedules: automatic checkpoints of a process on a timer (interval, cron or manual) with
 * retention; who runs them (the scheduler lock holder); pause/resume, run now, remove, history.
 * Runs are pushed by the engine (schedule.run.* events) and refresh the list; failures are announced.
 */
import '../components/screens.css';
import { useState } from 'react';
import type { ScheduleInfo, ScheduleLastSend } from '../../../shared/contract/schedule';
import { toErrorData, type StasisErrorData } from '../../../shared/errors';
import { Page } from '../Page';
import { ErrorNote } from '../ErrorNote';
import { api } from '../api';
import { useCall } from '../useCall';
import { useEngineEvents } from '../components/engine';
import { Busy } from '../components/Status';
import { formatBytes, formatShortTime } from '../components/format';
import { takeIntent } from '../components/nav';
import { AddScheduleDialog } from './schedules/AddScheduleDialog';
import { HistoryDialog } from './schedules/HistoryDialog';
import { SendToDialog } from './schedules/SendToDialog';

const RUN_EVENTS = ['schedule.run.started', 'schedule.run.done', 'schedule.run.failed', 'schedule.run.skipped', 'schedule.ended', 'schedule.quota', 'schedule.retention.failed'];

export function timingText(s: Pick<ScheduleInfo, 'timing' | 'fullEvery'>): string {
  const t = s.timing;
  const base = t.kind === 'interval' ? `every ${t.everyMs % 60_000 === 0 ? `${t.everyMs / 60_000} min` : `${t.everyMs / 1000} s`}` : t.kind === 'cron' ? `cron “${t.expr}”` : 'manual only';
  return s.fullEvery ? `${base}, full every ${s.fullEvery}` : base;
}

function retentionText(s: ScheduleInfo): string {
  const r = s.retention;
  const parts = [
    r.keepLast !== undefined ? `last ${r.keepLast}` : '', r.hourly ? `${r.hourly} hourly` : '', r.daily ? `${r.daily} daily` : '',
    r.weekly ? `${r.weekly} weekly` : '', r.monthly ? `${r.monthly} monthly` : '', r.quotaBytes !== undefined ? `≤ ${formatBytes(r.quotaBytes)}` : '',
  ].filter(Boolean);
  return parts.length ? `keep ${parts.join(', ')}` : 'keep all';
}

/** Where the schedule also sends its checkpoints, and how its last send went. */
function SendCell({ s, onStop, onChange }: { s: ScheduleInfo; onStop: () => void; onChange: () => void }) {
  if (!s.sendTo) {
    return (
      <>
        <div className="actions"><button type="button" className="secondary" aria-label={`Send schedule ${s.id}'s checkpoints to another machine`} onClick={onChange}>Send to…</button></div>
        <div className="muted" data-testid="send-none">—</div>
      </>
    );
  }
  const l = s.lastSend;
  // Buttons first and the column a fixed width: the status below changes with every send, and
  // buttons that moved with it could not be clicked while a schedule runs every few seconds.
  return (
    <>
      <div className="actions">
        <button type="button" className="secondary" aria-label={`Change where schedule ${s.id} sends its checkpoints`} onClick={onChange}>Change…</button>
        <button type="button" className="secondary" aria-label={`Stop sending schedule ${s.id}'s checkpoints`} onClick={onStop}>Stop sending</button>
      </div>
      <div><code>{s.sendTo.address}</code> <span className="muted">token {s.sendTo.tokenHint}</span></div>
      <div data-testid="last-send" data-result={l?.result ?? 'none'} className={l?.result === 'failed' ? 'bad' : ''}>
        {!l ? <span className="muted">nothing sent yet</span>
          : l.result === 'sending' ? `sending #${l.checkpointId}…${l.sentThrough !== null ? ` (it holds up to #${l.sentThrough})` : ''}`
            : l.result === 'ok' ? `sent #${l.checkpointId} at ${formatShortTime(l.at)} (#${l.remoteId ?? '?'} there, ${formatBytes(l.bytes)})`
              : `send failed at ${formatShortTime(l.at)}${l.retryAt ? `; tried again at ${formatShortTime(l.retryAt)}` : ''}`}
      </div>
      {l?.result === 'failed' && l.error ? <div className="reason clamp" title={l.error} data-testid="send-error">{l.error}</div> : null}
    </>
  );
}

export function SchedulesPage() {
  const [intent] = useState(takeIntent);
  const [list, reload] = useCall('schedules.list', {});
  const [adding, setAdding] = useState(intent.search !== undefined);
  const [history, setHistory] = useState<ScheduleInfo | null>(null);
  const [sendTo, setSendTo] = useState<ScheduleInfo | null>(null);
  const [error, setError] = useState<StasisErrorData | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  // A send's progress is patched into its row from the event itself: a re-read per send would blank the table twice a run.
  const [sends, setSends] = useState<Record<number, ScheduleLastSend>>({});
  useEngineEvents(['schedule.send'], (_e, payload) => {
    const p = payload as { scheduleId: number; lastSend: ScheduleLastSend };
    setSends((m) => ({ ...m, [p.scheduleId]: p.lastSend }));
  });
  useEngineEvents(RUN_EVENTS, (event, payload) => {
    if (event === 'schedule.run.failed') {
      const p = payload as { run: { scheduleId: number; error: string | null; willRetry: boolean } };
      setNotice(`Schedule ${p.run.scheduleId} failed: ${p.run.error ?? 'no reason given'}${p.run.willRetry ? ' It will retry.' : ''}`);
    } else if (event === 'schedule.ended') {
      const p = payload as { scheduleId: number; reason: string };
      setNotice(`Schedule ${p.scheduleId} ended: ${p.reason}`);
    }
    reload();
  });

  const act = async (fn: () => Promise<unknown>): Promise<void> => {
    setError(null);
    try { await fn(); reload(); } catch (err) { setError(toErrorData(err)); }
  };

  const value = list.state === 'done' ? list.value : null;
  return (
    <Page title="Schedules" actions={<>
      <button type="button" className="secondary" onClick={reload}>Refresh</button>
      <button type="button" onClick={() => setAdding(true)}>New schedule…</button>
    </>}>
      {list.state === 'loading' ? <Busy>Reading schedules…</Busy> : null}
      {list.state === 'failed' ? <ErrorNote error={list.error} onRetry={reload} /> : null}
      {notice ? <div className="error-note" role="alert"><p>{notice}</p><button type="button" onClick={() => setNotice(null)}>Dismiss</button></div> : null}
      {error ? <ErrorNote error={error} /> : null}
      {value ? (
        <>
          <p className={value.scheduler ? 'muted' : 'warning-line'} data-testid="scheduler">
            {value.scheduler
              ? `Schedules run in the ${value.scheduler.kind === 'app' ? 'Stasis app' : 'stasis daemon'} (PID ${value.scheduler.pid}) since ${formatShortTime(value.scheduler.since)}.`
              : 'No scheduler is running on this store: nothing runs until the app or `stasis daemon` starts.'}
            {value.globalQuotaBytes !== null ? ` All scheduled checkpoints together may use ${formatBytes(value.globalQuotaBytes)}.` : ''}
          </p>
          {value.schedules.length === 0 ? <p className="muted">No schedules yet.</p> : (
            <div className="table-wrap">
              <table className="grid" aria-label="Schedules">
                <thead><tr><th scope="col">#</th><th scope="col">Target</th><th scope="col">When</th><th scope="col">Retention</th><th scope="col">State</th><th scope="col">Next, last run</th><th scope="col">Also sent to</th><th scope="col"><span className="sr-only">Actions</span></th></tr></thead>
                <tbody>
                  {value.schedules.map((s) => (
                    <tr key={s.id} data-testid="schedule-row" data-id={s.id}>
                      <td>{s.id}</td>
                      <th scope="row">{s.target.kind === 'pid' ? `PID ${s.target.pid}` : `“${s.target.name}”`}{s.label ? <div className="reason">{s.label}</div> : null}</th>
                      <td>{timingText(s)}{s.quietHours ? <div className="reason">quiet {s.quietHours.start}–{s.quietHours.end}</div> : null}</td>
                      <td>{retentionText(s)}</td>
                      <td>{s.state}{s.endedReason ? <div className="reason">{s.endedReason}</div> : null}</td>
                      <td className="saved">
                        <div>{s.nextRunAt ? `next ${formatShortTime(s.nextRunAt)}` : <span className="muted">not planned</span>}</div>
                        <div data-testid="last-result" className={s.lastResult === 'failed' ? 'bad' : ''}>{s.lastRunAt ? `${s.lastResult ?? ''} at ${formatShortTime(s.lastRunAt)}` : <span className="muted">never ran</span>}</div>
                        {s.lastError ? <div className="reason clamp" title={s.lastError}>{s.lastError}</div> : null}
                      </td>
                      <td className="send-cell"><SendCell s={sends[s.id] && s.sendTo && (!s.lastSend || sends[s.id]!.at >= s.lastSend.at) ? { ...s, lastSend: sends[s.id]! } : s} onStop={() => void act(() => api.call('schedules.update', { id: s.id, sendTo: null }))} onChange={() => setSendTo(s)} /></td>
                      <td>
                        <div className="actions">
                          {s.state === 'active' ? <button type="button" className="secondary" onClick={() => void act(() => api.call('schedules.runNow', { id: s.id }))}>Run now</button> : null}
                          {s.state === 'active' ? <button type="button" className="secondary" onClick={() => void act(() => api.call('schedules.pause', { id: s.id }))}>Pause</button> : null}
                          {s.state === 'paused' ? <button type="button" className="secondary" onClick={() => void act(() => api.call('schedules.resume', { id: s.id }))}>Resume</button> : null}
                          <button type="button" className="secondary" onClick={() => setHistory(s)}>History</button>
                          <button type="button" className="danger" aria-label={`Remove schedule ${s.id}`} onClick={() => void act(() => api.call('schedules.remove', { id: s.id }))}>Remove</button>
                        </div>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </>
      ) : null}
      {adding ? <AddScheduleDialog initialPid={intent.search} onClose={() => setAdding(false)} onAdded={reload} /> : null}
      {history ? <HistoryDialog schedule={history} onClose={() => setHistory(null)} /> : null}
      {sendTo ? <SendToDialog schedule={sendTo} onClose={() => setSendTo(null)} onSaved={reload} /> : null}
    </Page>
  );
}
