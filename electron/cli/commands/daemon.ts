/**
 * `stasis daemon`: the headless scheduler. Runs the same schedules on the same store as the app;
 * acts only while it holds the store's scheduler lock (else stands by and takes over when the holder
 * exits). Logs one line per event on stderr; stops cleanly on SIGTERM/SIGINT (finishes a run in
 * progress, releases the lock, closes the store) and exits 0.
 */
import { defineCommand } from '../command';
import { StasisError } from '../../../shared/errors';
import { ensureStoreDir } from '../../engine/host/store-access';
import { openStore } from '../../engine/store';
import type { Store } from '../../engine/store/api';
import { DEFAULT_RETRY, startScheduler } from '../../engine/schedule';
import { defaultCapture } from '../../engine/schedule/capture-entry';
import { parseDuration } from '../../engine/schedule/units';

function logLine(line: string): void {
  process.stderr.write(`${new Date().toISOString()} stasis-daemon[${process.pid}]: ${line}\n`);
}

function describeEvent(event: string, p: Record<string, unknown>): string {
  const run = p.run as Record<string, unknown> | undefined;
  switch (event) {
    case 'schedule.run.started':
      return `schedule #${String(p.scheduleId)}: ${String(p.mode)} checkpoint of pid ${String(p.pid)}${Number(p.missed) ? ` (catch-up for ${String(p.missed)} missed)` : ''}`;
    case 'schedule.run.done':
      return `schedule #${String(run?.scheduleId)}: checkpoint #${String(run?.checkpointId)} done in ${Number(run?.durationMs).toFixed(0)} ms (frozen ${Number(run?.frozenMs).toFixed(1)} ms, ${String(run?.bytes)} bytes)${(run?.pruned as number[]).length ? `, pruned ${(run?.pruned as number[]).join(',')}` : ''}`;
    case 'schedule.run.failed':
      return `schedule #${String(run?.scheduleId)}: run failed (attempt ${String(run?.attempt)}${run?.willRetry ? ', will retry' : ''}): ${String(run?.error)}`;
    case 'schedule.run.skipped':
      return `schedule #${String(run?.scheduleId)}: ${String(run?.error)}`;
    case 'schedule.ended':
      return `schedule #${String(p.scheduleId)}: ${String(p.reason)}`;
    case 'schedule.quota':
      return `${p.scope === 'global' ? 'global' : `schedule #${String(p.scheduleId)}`} quota of ${String(p.quotaBytes)} bytes exceeded: pruned ${(p.pruned as number[]).join(',') || 'nothing'}${p.overQuota ? '; still over quota (pinned or newest checkpoints alone exceed it)' : ''}`;
    case 'schedule.send': {
      const l = p.lastSend as { result: string; checkpointId: number; remoteId: number | null; bytes: number; error: string | null; retryAt: string | null };
      return `schedule #${String(p.scheduleId)}: send of checkpoint #${l.checkpointId} ${l.result === 'sending' ? 'started' : l.result === 'ok' ? `done (#${String(l.remoteId)} there, ${l.bytes} bytes on the wire)` : `failed (${l.retryAt ? `tried again at ${l.retryAt}, or at the next run` : 'the next run\'s send catches up'}): ${String(l.error)}`}`;
    }
    case 'schedule.retention.failed':
      return `schedule #${String(p.scheduleId)}: pruning failed (retried after the next run): ${String((p.error as { message?: string } | undefined)?.message)}`;
    default:
      return `${event} ${JSON.stringify(p)}`;
  }
}

export default defineCommand('daemon', (program, cli) => {
  program
    .command('daemon')
    .description('run the schedules headless (systemd user unit / autostart); one scheduler acts per store')
    .option('--tick <duration>', 'longest time between checks for due runs and changed schedules', '1s')
    .option('--retries <n>', 'retries of a failed run before waiting for the next slot', String(DEFAULT_RETRY.max))
    .option('--retry-delay <duration>', 'first retry delay of a failed run or send; doubles each retry (capped at 5m)', `${DEFAULT_RETRY.baseMs / 1000}s`)
    .action(async (o: { tick: string; retries: string; retryDelay: string }) => {
      if (!/^\d+$/.test(o.retries)) throw new StasisError('INVALID_INPUT', `--retries takes a whole number, not "${o.retries}".`);
      const dir = cli.storeDir();
      let store: Store | null = null;
      const getStore = (): Store => {
        if (!store) {
          ensureStoreDir(dir);
          store = openStore(dir);
        }
        return store;
      };
      const running = startScheduler({
        storeDir: dir,
        kind: 'daemon',
        store: getStore,
        capture: defaultCapture,
        tickMs: parseDuration(o.tick),
        retry: { max: Number(o.retries), baseMs: parseDuration(o.retryDelay), capMs: DEFAULT_RETRY.capMs },
        emit: (event, payload) => logLine(describeEvent(event, payload as Record<string, unknown>)),
        log: logLine,
      });
      logLine(`started on ${dir}`);
      await new Promise<void>((resolve) => {
        const stop = (sig: string) => {
          logLine(`${sig}: stopping`);
          resolve();
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
      await running.stop();
      (store as Store | null)?.close();
      logLine('stopped');
    });
});
