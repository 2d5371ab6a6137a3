/**
 * `stasis send` / `stasis receive`: a checkpoint as a stream over a pipe, so it composes with ssh
 * (`stasis send 7 | ssh host stasis receive`), or over a direct TLS-PSK link between two Stasis
 * instances (`receive --listen` prints a one-time pairing token, `send --to HOST:PORT --token T`).
 * Both sides reuse the stream-file export and import (store/streams.ts) through their API calls:
 * send exports to a private temp file and copies it out; receive spools the input to a private temp
 * file and imports it only once it is complete, so a truncated or damaged stream imports nothing.
 * This module never writes a stream to a terminal, never sends memory over an unencrypted socket,
 * and never leaves a spool file behind. The pipe has no secrecy of its own (ssh provides it).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { defineCommand, type CliRuntime } from '../command';
import { formatBytes } from '../../../shared/format';
import { StasisError } from '../../../shared/errors';
import { checkpointId } from './store-ids';
import { newToken, parseAddress, tokenKey } from '../../engine/transfer/tls-link';
import { spoolDir } from '../../engine/transfer/spool';
import { sendStreamFile } from '../../engine/transfer/send';
import { answeredDryRun, migrationFailed, receiveAny, startListener, type ReceiveDeps, type Received as Arrived } from '../../engine/transfer/receive';
import type { DestinationResult } from '../../engine/migrate/destination';
import { prepareMigrationRestore } from '../../engine/restore';
import { groupAsTree } from '../../engine/migrate/tree-group';
import { FrameReader } from '../../engine/migrate/wire';
import { newTally, pipedOutcome, replicate, sayImported, tallySession, type Replicated } from '../transfer/replicate';

/** What `receive` got: one session's checkpoints or migration, or replication sessions' totals. */
type Received = { ids: number[] } | { migration: DestinationResult } | Replicated;

/** The receiving end reaches the store through the same API calls as every client. */
function receiveDeps(cli: CliRuntime): ReceiveDeps {
  return {
    storeDir: cli.storeDir(),
    // For pages negotiated by hash (a read of where pages are stored, beside the import call).
    store: cli.store(),
    importFile: (file) => cli.call('checkpoints.import', { file }),
    // Engine-direct: a migration's rounds are imported as their frames arrive (no spool file).
    beginImport: (total, avoidFiles) => cli.store().beginImport(total, { name: 'incoming round', ...(avoidFiles ? { avoidFiles } : {}) }),
    preflight: (id, how) => cli.call('restore.preflight', { id, ...how }),
    restore: (id, how) => cli.call('restore.run', { id, ...how }),
    // Engine-direct like migrate's source: a half-built process cannot cross an API call.
    prepare: async (id, how) => prepareMigrationRestore(cli.store(), id, { ...how }),
    // Engine-direct too: one index transaction grouping a tree's members received one by one.
    groupTree: async (ids) => groupAsTree(cli.store(), ids),
    remove: async (ids) => { await cli.call('checkpoints.remove', { ids }); },
    onImported: sayImported,
  };
}

function describeReceived(r: Received): string {
  if ('ids' in r && 'sessions' in r && r.sessions > 1) return r.ids.length ? `Received checkpoint(s) ${r.ids.map((i) => `#${i}`).join(', ')} in ${r.sessions} sessions.` : `Received nothing new in ${r.sessions} sessions.`;
  if ('ids' in r) return r.ids.length ? `Received checkpoint(s) ${r.ids.map((i) => `#${i}`).join(', ')}.` : 'Received nothing new: this store already held what was sent.';
  const m = r.migration;
  if (m.restored) return `Migrated process ${m.sourcePid} runs here as pid ${m.restored.pid} (checkpoint #${m.restored.checkpointId}, restored in ${m.restored.durationMs.toFixed(1)} ms).`;
  if (answeredDryRun(r)) return `Dry run of the migration of process ${m.sourcePid}: pre-flight answered; what was received was discarded.`;
  return `The migration of process ${m.sourcePid} did not complete: ${m.failure ?? 'no reason given'}.${m.discarded ? ' What was received was discarded.' : ''}`;
}

/** A migration that ended without a process here fails the command (after its summary). */
function finishReceived(cli: CliRuntime, r: Received, toStderr: boolean): void {
  if (toStderr) process.stderr.write(cli.json() ? `${JSON.stringify(r)}\n` : `${describeReceived(r)}\n`);
  else cli.print(r, describeReceived);
  if ('migration' in r && migrationFailed(r)) cli.setExitCode(1);
}

export default defineCommand('transfer', (program, cli) => {
  program
    .command('send')
    .description('send a checkpoint (with the chain it needs) as a stream: on stdout (`stasis send 7 | ssh host stasis receive`) or --to a `stasis receive --listen`')
    .argument('<id>', 'checkpoint id')
    .option('--flatten', 'one full checkpoint instead of the chain it needs')
    .option('--chain', 'the whole chain (every checkpoint sharing its root)')
    .option('--to <host:port>', 'send over TLS to `stasis receive --listen` there')
    .option('--token <token>', 'the pairing token that receiver printed (needed with --to)')
    .option('--pipe <command>', 'send through a command whose stdin/stdout reach `stasis receive` there, e.g. \'ssh host stasis receive\' (two-way, unlike `send | ...`: only what the receiver lacks travels, a break respawns it and resumes)')
    .option('--follow', 'the argument is a PID: send each new checkpoint of that process as soon as it is committed, until it exits or Ctrl-C (needs --to or --pipe)')
    .action(async (idArg: string, o: { flatten?: boolean; chain?: boolean; to?: string; token?: string; follow?: boolean; pipe?: string }) => {
      if (o.flatten && o.chain) throw new StasisError('INVALID_INPUT', 'Give --flatten or --chain, not both.');
      if (o.pipe !== undefined && (o.to !== undefined || o.flatten || o.chain)) throw new StasisError('INVALID_INPUT', '--pipe goes without --to, --flatten or --chain.');
      if (o.follow && ((o.to === undefined && o.pipe === undefined) || o.flatten || o.chain)) throw new StasisError('INVALID_INPUT', '--follow needs --to HOST:PORT --token T or --pipe CMD (the receiver answers which pages it lacks) and sends chains as they grow: no --flatten or --chain.');
      if (o.follow && !/^\d+$/.test(idArg)) throw new StasisError('INVALID_INPUT', `"${idArg}" is not a process id.`);
      const id = o.follow ? Number(idArg) : checkpointId(idArg);
      const link = o.to !== undefined ? { addr: parseAddress(o.to, false), key: tokenKey(o.token ?? '') } : null;
      if (!link && o.token !== undefined) throw new StasisError('INVALID_INPUT', '--token goes with --to HOST:PORT.');
      // Over the link the receiver says which pages it lacks; --flatten and --chain keep the plain stream.
      if (o.pipe !== undefined) { await replicate(cli, id, { pipe: o.pipe }, o.follow === true); return; }
      if (link && !o.flatten && !o.chain) { await replicate(cli, id, link, o.follow === true); return; }
      // Process memory must not scroll past on a screen: refuse before exporting anything.
      if (!link && process.stdout.isTTY) throw new StasisError('INVALID_INPUT', 'stdout is a terminal; pipe `stasis send` into `stasis receive` (directly or through ssh), redirect it to a file, or use --to HOST:PORT --token T.');
      const how = o.flatten ? 'flattened' : o.chain ? 'chain' : 'one';
      const dir = spoolDir(cli.storeDir(), 'send');
      try {
        const file = path.join(dir, 'stream');
        const r = await cli.call('checkpoints.export', { id, file, how });
        let received: number[] | null = null;
        if (link) {
          received = await sendStreamFile(link.addr, link.key, file);
        } else {
          try {
            await pipeline(fs.createReadStream(file), process.stdout, { end: false });
          } catch (e) {
            throw new StasisError('INVALID_INPUT', `The receiver stopped reading after part of the stream (${(e as Error).message}); it imports nothing from a partial stream, so send again.`);
          }
        }
        // On a pipe stdout is the stream: the summary goes to stderr, also with --json.
        const summary = { checkpoints: r.checkpoints, pages: r.pages, bytes: r.bytes, received };
        const human = `Sent checkpoint(s) ${r.checkpoints.map((c) => `#${c}`).join(', ')}: ${r.pages} pages, ${formatBytes(r.bytes)}.${received ? ` The receiver imported them as ${received.map((c) => `#${c}`).join(', ')}.` : ''}`;
        if (link) cli.print(summary, () => human);
        else process.stderr.write(cli.json() ? `${JSON.stringify(summary)}\n` : `${human}\n`);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

  program
    .command('receive')
    .description('import a stream from stdin, or --listen for one `stasis send --to` or `stasis migrate --to`; nothing is imported unless the whole stream arrived intact')
    .option('--listen <host:port>', 'accept one TLS connection there (a broken `send --to` may reconnect to resume); prints the one-time pairing token on stderr')
    .option('--keep', 'with --listen: go on accepting sessions with the same token until Ctrl-C (what `send PID --follow` and a schedule\'s --send-to need)')
    .action(async (o: { listen?: string; keep?: boolean }) => {
      if (o.keep && o.listen === undefined) throw new StasisError('INVALID_INPUT', '--keep goes with --listen HOST:PORT.');
      if (o.listen === undefined) {
        if (process.stdin.isTTY) throw new StasisError('INVALID_INPUT', 'stdin is a terminal; pipe `stasis send ID` into `stasis receive`, or use --listen HOST:PORT.');
        const got = await receiveAny(new FrameReader(process.stdin), process.stdout, receiveDeps(cli));
        const r = 'replication' in got ? pipedOutcome(got.replication) : got;
        // In a session stdout carries the answers: the summary goes to stderr.
        finishReceived(cli, r, 'migration' in r || 'sessions' in r);
        return;
      }
      const addr = parseAddress(o.listen, true);
      const { token, key } = newToken();
      const total = newTally();
      const l = await startListener(addr, key, receiveDeps(cli), {
        keep: o.keep === true,
        onSession: (x) => {
          if ('replication' in x) tallySession(total, x.replication);
          else if (o.keep) process.stderr.write(`${describeReceived(x)}\n`);
          if ('ids' in x) total.ids.push(...x.ids);
        },
        onFailed: (e) => process.stderr.write(`A transfer failed (still listening): ${e.message}\n`),
        onRefused: (why) => process.stderr.write(`Refused a connection: its TLS handshake failed (wrong pairing token, or not a Stasis sender): ${why.trim().split('\n')[0]!.slice(0, 200)}\n`),
      });
      process.stderr.write(`Listening on ${l.address}\nPairing token: ${token}\nOn the sender: stasis send ID --to ${l.address} --token ${token}\n`);
      const stop = (): void => l.close();
      if (o.keep) process.once('SIGINT', stop);
      let end: Arrived | null;
      try {
        end = await l.done;
      } finally {
        process.off('SIGINT', stop);
      }
      // One plain stream or migration: its own outcome; otherwise what every session brought.
      const r: Received = end && !('replication' in end) && !o.keep ? end : total;
      finishReceived(cli, r, false);
    });
});
