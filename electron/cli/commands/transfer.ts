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
import { answeredDryRun, listenForOne, migrationFailed, receiveAny, type ReceiveDeps, type Received } from '../../engine/transfer/receive';
import { prepareRestore } from '../../engine/restore';
import { FrameReader } from '../../engine/migrate/wire';

/** The receiving end reaches the store through the same API calls as every client. */
function receiveDeps(cli: CliRuntime): ReceiveDeps {
  return {
    storeDir: cli.storeDir(),
    importFile: (file) => cli.call('checkpoints.import', { file }),
    preflight: (id) => cli.call('restore.preflight', { id }),
    restore: (id) => cli.call('restore.run', { id }),
    // Engine-direct like migrate's source: a half-built process cannot cross an API call.
    prepare: async (id) => prepareRestore(cli.store(), id),
    remove: async (ids) => { await cli.call('checkpoints.remove', { ids }); },
  };
}

function describeReceived(r: Received): string {
  if ('ids' in r) return `Received checkpoint(s) ${r.ids.map((i) => `#${i}`).join(', ')}.`;
  const m = r.migration;
  if (m.restored) return `Migrated process ${m.sourcePid} runs here as pid ${m.restored.pid} (checkpoint #${m.restored.checkpointId}, restored in ${m.restored.durationMs.toFixed(1)} ms).`;
  if (answeredDryRun(r)) return `Dry run of the migration of process ${m.sourcePid}: pre-flight answered; what was received was discarded.`;
  return `The migration of process ${m.sourcePid} did not complete: ${m.failure ?? 'no reason given'}.${m.discarded ? ' What was received was discarded.' : ''}`;
}

/** A migration that ended without a process here fails the command (after its summary). */
function finishReceived(cli: CliRuntime, r: Received, toStderr: boolean): void {
  if (toStderr) process.stderr.write(cli.json() ? `${JSON.stringify(r)}\n` : `${describeReceived(r)}\n`);
  else cli.print(r, describeReceived);
  if (migrationFailed(r)) cli.setExitCode(1);
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
    .action(async (idArg: string, o: { flatten?: boolean; chain?: boolean; to?: string; token?: string }) => {
      if (o.flatten && o.chain) throw new StasisError('INVALID_INPUT', 'Give --flatten or --chain, not both.');
      const id = checkpointId(idArg);
      const link = o.to !== undefined ? { addr: parseAddress(o.to, false), key: tokenKey(o.token ?? '') } : null;
      if (!link && o.token !== undefined) throw new StasisError('INVALID_INPUT', '--token goes with --to HOST:PORT.');
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
    .option('--listen <host:port>', 'accept one TLS connection there; prints the one-time pairing token on stderr')
    .action(async (o: { listen?: string }) => {
      if (o.listen === undefined) {
        if (process.stdin.isTTY) throw new StasisError('INVALID_INPUT', 'stdin is a terminal; pipe `stasis send ID` into `stasis receive`, or use --listen HOST:PORT.');
        const r = await receiveAny(new FrameReader(process.stdin), process.stdout, receiveDeps(cli));
        // In a session stdout carries the answers: the summary goes to stderr.
        finishReceived(cli, r, 'migration' in r);
        return;
      }
      const addr = parseAddress(o.listen, true);
      const { token, key } = newToken();
      const listener = await listenForOne(addr, key, receiveDeps(cli), {
        onRefused: (why) => process.stderr.write(`Refused a connection: its TLS handshake failed (wrong pairing token, or not a Stasis sender): ${why.trim().split('\n')[0].slice(0, 200)}\n`),
      });
      const where = listener.address;
      process.stderr.write(`Listening on ${where}\nPairing token: ${token}\nOn the sender: stasis send ID --to ${where} --token ${token}\n`);
      const r = await listener.done;
      finishReceived(cli, r, false);
    });
});
