/**
 * `stasis schedule add|ls|rm|pause|resume|run|edit|history|quota`: schedules of background
 * checkpoints, through the schedules.* API calls. Parses human units (30s, 6h, 500M) here; the
 * handlers take milliseconds and bytes. Prints the handler's output with --json.
 */
import type { Command } from 'commander';
import { defineCommand, type CliRuntime } from '../command';
import type { ScheduleInfo, ScheduleRun } from '../../../shared/contract/schedule';
import { StasisError } from '../../../shared/errors';
import { formatBytes, formatDuration, parseDuration, parseSize } from '../../engine/schedule/units';
import { parseAddress, tokenKey } from '../../engine/transfer/tls-link';

interface TimingOpts {
  every?: string;
  cron?: string;
  manual?: boolean;
  fullEvery?: string;
  quiet?: string;
  keep?: string;
  keepHourly?: string;
  keepDaily?: string;
  keepWeekly?: string;
  keepMonthly?: string;
  quota?: string;
  label?: string;
  sendTo?: string;
  token?: string;
}

/** --send-to HOST:PORT --token T (or --send-to none on edit); checked here so the error names the option. */
function sendToOf(o: TimingOpts, adding: boolean): { address: string; token: string } | null | undefined {
  if (o.sendTo === undefined) {
    if (o.token !== undefined) throw new StasisError('INVALID_INPUT', '--token goes with --send-to HOST:PORT.');
    return undefined;
  }
  if (o.sendTo === 'none') {
    if (adding) throw new StasisError('INVALID_INPUT', '--send-to none only applies to `schedule edit` (to stop sending).');
    if (o.token !== undefined) throw new StasisError('INVALID_INPUT', '--send-to none takes no --token.');
    return null;
  }
  parseAddress(o.sendTo, false);
  if (o.token === undefined) throw new StasisError('INVALID_INPUT', '--send-to needs --token T: the pairing token `stasis receive --listen HOST:PORT --keep` printed there.');
  tokenKey(o.token);
  return { address: o.sendTo, token: o.token };
}

function describeSend(s: ScheduleInfo): string[] {
  if (!s.sendTo) return [];
  const l = s.lastSend;
  const last = !l ? 'nothing sent yet'
    : l.result === 'sending' ? `sending #${l.checkpointId} since ${when(l.at)}`
      : l.result === 'ok' ? `ok at ${when(l.at)}: #${l.checkpointId} there as #${l.remoteId ?? '?'}, ${l.checkpoints} checkpoint(s), ${l.pagesSent} pages, ${formatBytes(l.bytes)} on the wire`
        : `failed at ${when(l.at)}: ${l.error ?? 'no reason given'} (${l.sentThrough !== null ? `the destination holds up to #${l.sentThrough}; ` : ''}${l.retryAt ? `tried again at ${when(l.retryAt)} or at the next run` : 'the next run\'s send tries again'}${l.failures > 1 ? `; ${l.failures} failures in a row` : ''})`;
  return [`    send to: ${s.sendTo.address} (token ${s.sendTo.tokenHint})   last send: ${last}`];
}

function count(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new StasisError('INVALID_INPUT', `--${name} takes a whole number, not "${v}".`);
  return Number(v);
}

function timingOf(o: TimingOpts, required: boolean) {
  const given = [o.every !== undefined, o.cron !== undefined, o.manual === true].filter(Boolean).length;
  if (given > 1) throw new StasisError('INVALID_INPUT', 'Give only one of --every, --cron and --manual.');
  if (given === 0) {
    if (required) throw new StasisError('INVALID_INPUT', 'Say when to run: --every 30s, --cron "*/15 * * * *", or --manual.');
    return undefined;
  }
  if (o.every !== undefined) return { kind: 'interval' as const, everyMs: parseDuration(o.every) };
  if (o.cron !== undefined) return { kind: 'cron' as const, expr: o.cron };
  return { kind: 'manual' as const };
}

function quietOf(q: string | undefined) {
  if (q === undefined) return undefined;
  if (q === 'none' || q === '') return null;
  const m = /^(\d{1,2}:\d{2})-(\d{1,2}:\d{2})$/.exec(q);
  if (!m) throw new StasisError('INVALID_INPUT', `--quiet takes a window like 22:00-07:00 (or "none"), not "${q}".`);
  return { start: m[1]!, end: m[2]! };
}

function retentionOf(o: TimingOpts) {
  const r = {
    keepLast: count('keep', o.keep),
    hourly: count('keep-hourly', o.keepHourly),
    daily: count('keep-daily', o.keepDaily),
    weekly: count('keep-weekly', o.keepWeekly),
    monthly: count('keep-monthly', o.keepMonthly),
    quotaBytes: o.quota === undefined ? undefined : parseSize(o.quota),
  };
  const set = Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined));
  return Object.keys(set).length ? set : undefined;
}

function addTimingOptions(c: Command): Command {
  return c
    .option('--every <duration>', 'fixed interval: 30s, 15m, 6h, 1d (seconds to days)')
    .option('--cron <expr>', 'cron expression, e.g. "*/15 * * * *" (5 or 6 fields, local time)')
    .option('--manual', 'run only when asked (`stasis schedule run ID`)')
    .option('--full-every <n>', 'take a full checkpoint after every N incrementals')
    .option('--quiet <from-to>', 'quiet hours in which no run starts, e.g. 22:00-07:00 ("none" to clear)')
    .option('--keep <n>', 'keep the last N checkpoints')
    .option('--keep-hourly <n>', 'keep the newest checkpoint of each of the last N hours')
    .option('--keep-daily <n>', 'keep the newest checkpoint of each of the last N days')
    .option('--keep-weekly <n>', 'keep the newest checkpoint of each of the last N weeks')
    .option('--keep-monthly <n>', 'keep the newest checkpoint of each of the last N months')
    .option('--quota <size>', 'storage quota for this target, e.g. 500M, 2G (oldest pruned first)')
    .option('--label <text>', 'label for the checkpoints this schedule takes')
    .option('--send-to <host:port>', 'also send each checkpoint, in the background, to `stasis receive --listen HOST:PORT --keep` there (only the pages it lacks); "none" on edit stops it')
    .option('--token <token>', 'the pairing token that receiver printed (with --send-to; kept in the store\'s schedules.db, readable by this user only)');
}

function idArg(v: string): number {
  if (!/^\d+$/.test(v)) throw new StasisError('INVALID_INPUT', `A schedule id is a number (see \`stasis schedule ls\`), not "${v}".`);
  return Number(v);
}

function when(iso: string | null): string {
  return iso === null ? '-' : new Date(iso).toLocaleString();
}

export function describeTiming(s: ScheduleInfo): string {
  const t = s.timing;
  const base = t.kind === 'interval' ? `every ${formatDuration(t.everyMs)}` : t.kind === 'cron' ? `cron "${t.expr}"` : 'manual';
  return base + (s.fullEvery ? `, full every ${s.fullEvery}` : '') + (s.quietHours ? `, quiet ${s.quietHours.start}-${s.quietHours.end}` : '');
}

function describeRetention(s: ScheduleInfo): string {
  const r = s.retention;
  const parts = [
    r.keepLast ? `last ${r.keepLast}` : '', r.hourly ? `${r.hourly} hourly` : '', r.daily ? `${r.daily} daily` : '',
    r.weekly ? `${r.weekly} weekly` : '', r.monthly ? `${r.monthly} monthly` : '', r.quotaBytes ? `quota ${formatBytes(r.quotaBytes)}` : '',
  ].filter(Boolean);
  return parts.length ? parts.join(', ') : 'keep all';
}

export function formatSchedule(s: ScheduleInfo): string[] {
  const target = s.target.kind === 'pid' ? `pid ${s.target.pid}` : `name "${s.target.name}"`;
  const lines = [
    `#${s.id}  ${target}  ${describeTiming(s)}  [${s.state}]`,
    `    keep: ${describeRetention(s)}`,
    `    next: ${s.state === 'active' ? when(s.nextRunAt) : '-'}   last: ${s.lastResult ?? 'never'}${s.lastRunAt ? ` at ${when(s.lastRunAt)}` : ''}${s.failures ? ` (attempt ${s.failures} failed, retrying)` : ''}`,
  ];
  lines.push(...describeSend(s));
  if (s.lastError) lines.push(`    error: ${s.lastError}`);
  if (s.endedReason) lines.push(`    ended: ${s.endedReason}`);
  return lines;
}

export function formatRun(r: ScheduleRun): string {
  const what = r.result === 'ok'
    ? `${r.mode} #${r.checkpointId}  ${r.durationMs?.toFixed(0)} ms (frozen ${r.frozenMs?.toFixed(1)} ms)  ${formatBytes(r.bytes ?? 0)}`
    : r.error ?? '';
  const extra = [r.attempt > 1 ? `attempt ${r.attempt}` : '', r.missed ? `catch-up for ${r.missed} missed` : '', r.willRetry ? 'will retry' : '', r.pruned.length ? `pruned ${r.pruned.join(',')}` : ''].filter(Boolean);
  return `${when(r.startedAt)}  schedule #${r.scheduleId}  ${r.result.padEnd(7)}  ${what}${extra.length ? `  (${extra.join('; ')})` : ''}`;
}

async function showSchedule(cli: CliRuntime, p: Promise<ScheduleInfo>): Promise<void> {
  cli.print(await p, formatSchedule);
}

export default defineCommand('schedule', (program, cli) => {
  const sched = program.command('schedule').description('scheduled background checkpoints with retention (run by the app or `stasis daemon`)');

  addTimingOptions(sched.command('add').argument('[pid]', 'process to checkpoint').option('--name <name>', 'a program launched by Stasis, by name (survives its restarts); with PID: give that process the name'))
    .description('schedule checkpoints of a running process (PID) or of a launched program (--name)')
    .action(async (pid: string | undefined, o: TimingOpts & { name?: string }) => {
      if (pid === undefined && o.name === undefined) throw new StasisError('INVALID_INPUT', 'Give a PID, --name NAME, or both (name this process and follow it across restarts).');
      if (pid !== undefined && !/^\d+$/.test(pid)) throw new StasisError('INVALID_INPUT', `"${pid}" is not a pid.`);
      const quiet = quietOf(o.quiet);
      const added = await cli.call('schedules.add', {
        target: pid !== undefined ? (o.name !== undefined ? { pid: Number(pid), name: o.name } : { pid: Number(pid) }) : { name: o.name! },
        timing: timingOf(o, true)!,
        fullEvery: count('full-every', o.fullEvery) ?? 0,
        quietHours: quiet ?? null,
        retention: retentionOf(o) ?? {},
        label: o.label ?? null,
        sendTo: sendToOf(o, true) ?? null,
      });
      const { scheduler } = cli.json() ? { scheduler: true } : await cli.call('schedules.list', {});
      cli.print(added, (v) => [
        ...formatSchedule(v),
        ...(scheduler ? [] : ['Note: no scheduler is running on this store; start the Stasis app or `stasis daemon` (see docs/schedules.md) for it to run.']),
      ]);
    });

  addTimingOptions(sched.command('edit').argument('<id>', 'schedule id'))
    .description('change a schedule (only the options given; retention options replace the whole policy)')
    .action(async (id: string, o: TimingOpts) => {
      await showSchedule(cli, cli.call('schedules.update', {
        id: idArg(id), timing: timingOf(o, false), fullEvery: count('full-every', o.fullEvery), quietHours: quietOf(o.quiet), retention: retentionOf(o), label: o.label, sendTo: sendToOf(o, false),
      }));
    });

  sched.command('ls').description('list schedules, their next run and last result, and which scheduler runs them').action(async () => {
    cli.print(await cli.call('schedules.list', {}), (v) => {
      const h = v.scheduler;
      const head = h
        ? `Scheduler: ${h.kind} (pid ${h.pid}) since ${when(h.since)}`
        : 'Scheduler: none running — schedules run only while the Stasis app or `stasis daemon` runs on this store.';
      const quota = v.globalQuotaBytes ? [`Global quota: ${formatBytes(v.globalQuotaBytes)}`] : [];
      return [head, ...quota, ...(v.schedules.length ? v.schedules.flatMap(formatSchedule) : ['No schedules. Add one with `stasis schedule add PID --every 30m --keep 10`.'])];
    });
  });

  for (const [verb, call, what] of [
    ['pause', 'schedules.pause', 'stop taking runs until resumed'],
    ['resume', 'schedules.resume', 'resume a paused schedule (no catch-up for the paused time)'],
    ['run', 'schedules.runNow', 'take a run now (how manual schedules run)'],
  ] as const) {
    sched.command(verb).argument('<id>', 'schedule id').description(what).action(async (id: string) => {
      await showSchedule(cli, cli.call(call, { id: idArg(id) }));
    });
  }

  sched.command('rm').argument('<id>', 'schedule id').description('delete a schedule and its history (its checkpoints stay)').action(async (id: string) => {
    cli.print(await cli.call('schedules.remove', { id: idArg(id) }), (v) => `Removed schedule #${v.removed}; its checkpoints are kept.`);
  });

  sched.command('history').argument('[id]', 'schedule id (default: all)').option('--limit <n>', 'at most N runs', '50')
    .description('runs, newest first: time, result, duration, frozen time, bytes, error, retries, pruned')
    .action(async (id: string | undefined, o: { limit: string }) => {
      cli.print(await cli.call('schedules.history', { id: id === undefined ? undefined : idArg(id), limit: count('limit', o.limit) }), (v) =>
        v.runs.length ? v.runs.map(formatRun) : ['No runs yet.']);
    });

  sched.command('quota').argument('<size>', 'e.g. 20G, or "none"').description('global quota for all scheduled checkpoints of the store').action(async (size: string) => {
    cli.print(await cli.call('schedules.setGlobalQuota', { quotaBytes: size === 'none' ? null : parseSize(size) }), (v) =>
      v.quotaBytes ? `Global quota: ${formatBytes(v.quotaBytes)}` : 'No global quota.');
  });
});
