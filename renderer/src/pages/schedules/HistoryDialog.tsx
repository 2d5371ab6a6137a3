/** Runs of one schedule, newest first; refreshed when the engine pushes a new run. */
import type { ScheduleInfo } from '../../../../shared/contract/schedule';
import { Dialog } from '../../components/Dialog';
import { ErrorNote } from '../../ErrorNote';
import { useCall } from '../../useCall';
import { useEngineEvents } from '../../components/engine';
import { Busy } from '../../components/Status';
import { formatBytes, formatMs, formatShortTime } from '../../components/format';

export function HistoryDialog({ schedule, onClose }: { schedule: ScheduleInfo; onClose: () => void }) {
  const [runs, reload] = useCall('schedules.history', { id: schedule.id, limit: 200 });
  useEngineEvents(['schedule.run.done', 'schedule.run.failed', 'schedule.run.skipped'], () => reload());
  return (
    <Dialog title={`History of schedule ${schedule.id}`} onClose={onClose} wide>
      {runs.state === 'loading' ? <Busy>Reading runs…</Busy> : null}
      {runs.state === 'failed' ? <ErrorNote error={runs.error} onRetry={reload} /> : null}
      {runs.state === 'done' ? (runs.value.runs.length === 0 ? <p className="muted">No runs yet.</p> : (
        <table className="grid" aria-label="Runs">
          <thead><tr><th scope="col">Started</th><th scope="col">Result</th><th scope="col">Checkpoint</th><th scope="col" className="num">Frozen</th><th scope="col" className="num">Took</th><th scope="col" className="num">Bytes</th><th scope="col">Notes</th></tr></thead>
          <tbody>
            {runs.value.runs.map((r) => (
              <tr key={r.id} data-testid="run-row">
                <td>{formatShortTime(r.startedAt)}</td>
                <td className={r.result === 'failed' ? 'bad' : ''}>{r.result}{r.mode ? ` (${r.mode})` : ''}</td>
                <td>{r.checkpointId ? `#${r.checkpointId}` : '—'}</td>
                <td className="num">{formatMs(r.frozenMs)}</td>
                <td className="num">{formatMs(r.durationMs)}</td>
                <td className="num">{r.bytes === null ? '—' : formatBytes(r.bytes)}</td>
                <td className="reason">{[r.error, r.attempt > 1 ? `attempt ${r.attempt}` : '', r.missed ? `${r.missed} missed` : '', r.pruned.length ? `pruned #${r.pruned.join(', #')}` : '', r.willRetry ? 'will retry' : ''].filter(Boolean).join('; ')}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )) : null}
    </Dialog>
  );
}
