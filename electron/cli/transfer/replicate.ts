/**
 * The CLI ends of a replication session over the TLS-PSK link or a command's stdin/stdout (`--pipe
 * 'ssh host stasis receive'`): `send ID --to|--pipe` (one checkpoint, negotiated by page hash,
 * resumed after a break) and `send PID --follow` (every new checkpoint of the process until it
 * exits or Ctrl-C); and how `receive` reports such sessions (the listener itself is engine/transfer/receive.ts, shared with the app). Protocol logic lives in engine/migrate/{sync,negotiate,follow}.ts.
 */
import type { CliRuntime } from '../command';
import { formatBytes } from '../../../shared/format';
import { StasisError } from '../../../shared/errors';
import { syncLinkTo } from '../../engine/transfer/send';
import { openLink } from '../commands/migrate';
import { SyncSender, type SentCheckpoint, type SyncServed } from '../../engine/migrate/sync';
import type { AcceptResult } from '../../engine/migrate/negotiate';
import { follow } from '../../engine/migrate/follow';

type Addr = { host: string; port: number };

function line(s: SentCheckpoint): string {
  if (s.already) return `Checkpoint #${s.id}: the receiver already holds it (#${s.remote}); nothing sent.`;
  return `Checkpoint #${s.id} -> #${s.remote} there: ${s.pages} pages offered, ${s.pagesSent} sent (${s.pagesHeld} already in its store${s.pagesResumed ? `, ${s.pagesResumed} resumed from an earlier attempt` : ''}).`;
}

function totals(sent: SentCheckpoint[], wireBytes: number): Record<string, number> {
  const sum = (f: (s: SentCheckpoint) => number): number => sent.reduce((n, s) => n + f(s), 0);
  return { pages: sum((s) => s.pages), pagesSent: sum((s) => s.pagesSent), pagesHeld: sum((s) => s.pagesHeld), pagesResumed: sum((s) => s.pagesResumed), wireBytes };
}

/** Where a replication goes: a `receive --listen` (TLS), or a command running `stasis receive` (a pipe, respawned after a break). */
export type Destination = { addr: Addr; key: Buffer } | { pipe: string };

/** `send ID --to|--pipe` (follow false) or `send PID --follow` (follow true). */
export async function replicate(cli: CliRuntime, n: number, dest: Destination, followIt: boolean): Promise<void> {
  const ac = new AbortController();
  const stop = (): void => { process.stderr.write('Stopping: the receiver keeps everything that fully arrived.\n'); ac.abort(); };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const open = 'pipe' in dest ? () => openLink({ pipe: dest.pipe }) : syncLinkTo(dest.addr, dest.key);
  const sender = new SyncSender(cli.store(), open, {
    signal: ac.signal,
    retryMs: followIt ? Infinity : 60_000,
    onRetry: (why, attempt) => process.stderr.write(`The connection broke (${why.slice(0, 200)}); reconnecting (attempt ${attempt + 1}) to resume.\n`),
  });
  try {
    if (!followIt) {
      const s = await sender.send(n);
      await sender.close();
      const summary = { checkpoints: s.checkpoints, received: s.already ? [s.remote] : s.imported, already: s.already, bytes: sender.wireBytes, ...totals([s], sender.wireBytes) };
      cli.print(summary, () => `${line(s)} ${formatBytes(sender.wireBytes)} on the wire.`);
      return;
    }
    const r = await follow(cli.store(), n, sender, {
      signal: ac.signal,
      onSent: (s) => { if (!cli.json()) process.stderr.write(`${line(s)}\n`); },
    });
    await sender.close();
    const summary = { pid: r.pid, ended: r.ended, sent: r.sent.map((s) => ({ id: s.id, remote: s.remote, pages: s.pages, pagesSent: s.pagesSent })), ...totals(r.sent, sender.wireBytes) };
    cli.print(summary, () => `${r.ended === 'exited' ? `Process ${n} exited` : 'Stopped'}: ${r.sent.length} checkpoint(s) replicated, ${formatBytes(sender.wireBytes)} on the wire.`);
  } catch (e) {
    await sender.close();
    throw e;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

/** Replication sessions' outcome as `receive` reports it (summed over the sessions of a transfer that broke off and resumed, or of --keep). */
export type Replicated = { ids: number[] } & Omit<SyncServed, 'ids' | 'complete' | 'refused' | 'failure'> & { sessions: number };

export function newTally(): Replicated {
  return { ids: [], pages: 0, pagesReceived: 0, pagesHeld: 0, pagesResumed: 0, sessions: 0 };
}

/** Adds one session to the tally and says on stderr how it ended when it did not end well. */
export function tallySession(total: Replicated, r: SyncServed): void {
  total.sessions++;
  total.ids.push(...r.ids);
  for (const k of ['pages', 'pagesReceived', 'pagesHeld', 'pagesResumed'] as const) total[k] += r[k];
  if (r.complete) return;
  if (r.refused) process.stderr.write(`Refused the transfer: ${r.failure ?? 'no reason given'}\n`);
  else process.stderr.write(`The connection broke off (${(r.failure ?? 'no reason given').slice(0, 200)}); what fully arrived is kept. Waiting for the sender to resume.\n`);
}

/** Said as each checkpoint of a replication session lands: a --follow session stays open for as long as the process runs. */
export function sayImported(x: AcceptResult): void {
  process.stderr.write(`Imported checkpoint(s) ${x.ids.map((i) => `#${i}`).join(', ')}: ${x.pagesReceived} pages received, ${x.pagesHeld} already here${x.pagesResumed ? `, ${x.pagesResumed} resumed from an earlier attempt` : ''}.\n`);
}

/** `stasis receive` on stdin/stdout (the far end of `send --pipe`): one session; a break keeps the spool for the next one. */
export function pipedOutcome(r: SyncServed): Replicated {
  const total = newTally();
  tallySession(total, r);
  if (r.refused) throw new StasisError('INVALID_INPUT', `The transfer was refused: ${r.failure ?? 'no reason given'}`);
  if (!r.complete) throw new StasisError('INVALID_INPUT', 'The session broke off before the sender finished; what fully arrived is kept here, and the next send of the same checkpoint resumes from it.');
  return total;
}
