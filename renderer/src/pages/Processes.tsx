/**
 * Processes: the user's running processes from the engine (name, PID, user, RSS, threads, whether
 * Stasis can checkpoint it and why not), search and filter, "Launch program under Stasis", and
 * "Checkpoint now" with an optional label. Shows only what the engine reports; never guesses.
 */
import '../components/screens.css';
import { useMemo, useState } from 'react';
import { Page } from '../Page';
import { ErrorNote } from '../ErrorNote';
import { useEngine, useEngineEvents } from '../components/engine';
import { CALL, CHECKPOINT_CHANGES } from '../components/calls';
import { Busy, YesNo } from '../components/Status';
import { formatBytes, formatShortTime } from '../components/format';
import { go, takeIntent } from '../components/nav';
import type { CheckpointInfo, ProcessInfo, ScheduleSummary, TargetInfo } from '../components/types';
import { LaunchDialog } from './processes/LaunchDialog';
import { CheckpointDialog } from './processes/CheckpointDialog';
import { MigrateDialog } from './processes/MigrateDialog';

type Filter = 'all' | 'checkpointable' | 'blocked' | 'saved';

function scheduleText(s: ScheduleSummary): string {
  const t = s.timing.kind === 'interval' ? `every ${Math.round(s.timing.everyMs / 1000)} s` : s.timing.kind === 'cron' ? `cron ${s.timing.expr}` : 'manual';
  return s.state === 'active' ? t : `${t} (${s.state})`;
}

export function ProcessesPage() {
  const [intent] = useState(takeIntent);
  const [list, reload] = useEngine<{ processes: ProcessInfo[] }>(CALL.processes);
  const [schedules, reloadSchedules] = useEngine<{ schedules: ScheduleSummary[] }>(CALL.schedules);
  const [saved, reloadSaved] = useEngine<{ targets: TargetInfo[]; checkpoints: CheckpointInfo[] }>(CALL.checkpoints);
  const [query, setQuery] = useState(intent.search ?? '');
  const [filter, setFilter] = useState<Filter>('all');
  const [launching, setLaunching] = useState(false);
  const [target, setTarget] = useState<ProcessInfo | null>(null);
  const [moving, setMoving] = useState<ProcessInfo | null>(null);
  useEngineEvents(CHECKPOINT_CHANGES, () => { reloadSaved(); reloadSchedules(); });

  const processes = list.value?.processes;
  // The newest checkpoint of each running process, matched by pid + start time (a reused PID is another process).
  const lastOf = useMemo(() => {
    const m = new Map<string, { id: number; createdAt: string; name?: string | null }>();
    const byTarget = new Map((saved.value?.targets ?? []).map((t) => [t.id, t]));
    for (const c of saved.value?.checkpoints ?? []) {
      const t = byTarget.get(c.targetId);
      if (!t) continue;
      const k = `${t.pid}:${t.startTime}`;
      const prev = m.get(k);
      if (!prev || c.id > prev.id) m.set(k, { id: c.id, createdAt: c.createdAt, name: t.name });
    }
    return m;
  }, [saved.value]);
  const last = (p: ProcessInfo) => lastOf.get(`${p.pid}:${p.startTime}`);
  const shown = useMemo(() => {
    if (!processes) return [];
    const q = query.trim().toLowerCase();
    return processes.filter((p) => {
      if (filter === 'checkpointable' && !p.checkpointable) return false;
      if (filter === 'blocked' && p.checkpointable) return false;
      if (filter === 'saved' && !lastOf.has(`${p.pid}:${p.startTime}`)) return false;
      if (!q) return true;
      return String(p.pid) === q || p.comm.toLowerCase().includes(q) || `uid ${p.uid}` === q || (p.user ?? '').toLowerCase() === q || p.cmdline.join(' ').toLowerCase().includes(q);
    });
  }, [processes, query, filter, lastOf]);

  const scheduleOf = (p: ProcessInfo): ScheduleSummary | undefined =>
    schedules.value?.schedules.find((s) => (s.target.kind === 'pid' ? s.target.pid === p.pid && s.target.startTime === p.startTime : s.target.name === last(p)?.name));

  return (
    <Page
      title="Processes"
      actions={<>
        <button type="button" className="secondary" onClick={reload}>Refresh</button>
        <button type="button" onClick={() => setLaunching(true)}>Launch program…</button>
      </>}
    >
      <div className="toolbar" role="search">
        <label>Search <input type="search" value={query} onChange={(e) => setQuery(e.target.value)} placeholder="name, PID or command" /></label>
        <label>Show
          <select value={filter} onChange={(e) => setFilter(e.target.value as Filter)}>
            <option value="all">All processes</option>
            <option value="checkpointable">Can be checkpointed</option>
            <option value="blocked">Cannot be checkpointed</option>
            <option value="saved">With checkpoints</option>
          </select>
        </label>
        {processes ? <span className="muted" aria-live="polite">{shown.length} of {processes.length} shown</span> : null}
      </div>
      {list.state === 'loading' && !processes ? <Busy>Reading the process list…</Busy> : null}
      {list.state === 'failed' ? <ErrorNote error={list.error} onRetry={reload} /> : null}
      {processes ? (
        <div className="table-wrap">
          <table className="grid" aria-label="Running processes">
            <thead>
              <tr>
                <th scope="col">Name</th><th scope="col" className="num">PID</th><th scope="col">User</th>
                <th scope="col" className="num">RSS</th><th scope="col" className="num"><abbr title="Threads">Thr.</abbr></th>
                <th scope="col">Can checkpoint</th><th scope="col">Last checkpoint, schedule</th>
                <th scope="col"><span className="sr-only">Actions</span></th>
              </tr>
            </thead>
            <tbody>
              {shown.map((p) => {
                const s = scheduleOf(p);
                const lc = last(p);
                return (
                  <tr key={`${p.pid}-${p.startTime}`} data-pid={p.pid}>
                    <th scope="row" title={p.cmdline.join(' ') || p.comm}>{p.comm}{lc?.name ? <span className="tag">{lc.name}</span> : null}</th>
                    <td className="num">{p.pid}</td>
                    <td data-testid="user" title={`uid ${p.uid}`}>{p.user ?? p.uid}</td>
                    <td className="num">{formatBytes(p.rssKb * 1024)}</td>
                    <td className="num">{p.threads}</td>
                    <td className="can">{p.checkpointable ? <YesNo ok yes="Yes" /> : <><YesNo ok={false} no="No" /> <span className="reason clamp" title={p.reason ?? undefined}>{p.reason}</span></>}</td>
                    <td className="saved">
                      {lc ? <a href="#/checkpoints" onClick={(e) => { e.preventDefault(); go('checkpoints', { checkpointId: lc.id }); }}>#{lc.id} at {formatShortTime(lc.createdAt)}</a> : <span className="muted">no checkpoint</span>}
                      <div>{s ? scheduleText(s) : <a href="#/schedules" aria-label={`Add a schedule for PID ${p.pid}`} onClick={(e) => { e.preventDefault(); go('schedules', { search: String(p.pid) }); }}>add schedule</a>}</div>
                    </td>
                    <td className="row-actions">
                      <button type="button" disabled={!p.checkpointable} aria-label={`Checkpoint ${p.comm} (PID ${p.pid}) now`} onClick={() => setTarget(p)}>Checkpoint…</button>
                      <button type="button" className="secondary" disabled={!p.checkpointable} aria-label={`Migrate ${p.comm} (PID ${p.pid}) to another machine`} onClick={() => setMoving(p)}>Migrate…</button>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          {shown.length === 0 ? <p className="muted">No process matches.</p> : null}
        </div>
      ) : null}
      {launching ? <LaunchDialog onClose={() => setLaunching(false)} onLaunched={(pid) => { setQuery(String(pid)); setFilter('all'); reload(); }} /> : null}
      {moving ? <MigrateDialog process={moving} onClose={() => setMoving(null)} onDone={() => { reload(); reloadSaved(); }} /> : null}
      {target ? <CheckpointDialog process={target} onClose={() => setTarget(null)} onDone={reloadSaved} /> : null}
    </Page>
  );
}

