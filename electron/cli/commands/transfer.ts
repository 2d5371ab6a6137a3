/**
 * `stasis send` / `stasis receive`: a checkpoint as a stream over a pipe, so it composes with ssh
 * (`stasis send 7 | ssh host stasis receive`). Both sides reuse the stream-file export and import
 * (store/streams.ts) through their API calls: send exports to a private temp file and copies it to
 * stdout; receive spools stdin to a private temp file and imports it only once it is complete, so a
 * truncated or damaged pipe imports nothing. This module never writes a stream to a terminal and
 * never leaves a spool file behind; the pipe itself has no secrecy of its own (ssh provides it).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { defineCommand } from '../command';
import { formatBytes } from '../../../shared/format';
import { StasisError } from '../../../shared/errors';
import { checkpointId } from './store-ids';

/** A 0700 directory inside the store, so the spool holds process memory only where the store does and shares its disk. */
function spoolDir(storeDir: string, what: string): string {
  fs.mkdirSync(storeDir, { recursive: true, mode: 0o700 });
  return fs.mkdtempSync(path.join(storeDir, `.${what}-`));
}

export default defineCommand('transfer', (program, cli) => {
  program
    .command('send')
    .description('write a checkpoint (with the chain it needs) as a stream on stdout, e.g. `stasis send 7 | ssh host stasis receive`')
    .argument('<id>', 'checkpoint id')
    .option('--flatten', 'one full checkpoint instead of the chain it needs')
    .option('--chain', 'the whole chain (every checkpoint sharing its root)')
    .action(async (idArg: string, o: { flatten?: boolean; chain?: boolean }) => {
      if (o.flatten && o.chain) throw new StasisError('INVALID_INPUT', 'Give --flatten or --chain, not both.');
      const id = checkpointId(idArg);
      // Process memory must not scroll past on a screen: refuse before exporting anything.
      if (process.stdout.isTTY) throw new StasisError('INVALID_INPUT', 'stdout is a terminal; pipe `stasis send` into `stasis receive` (directly or through ssh) or redirect it to a file.');
      const how = o.flatten ? 'flattened' : o.chain ? 'chain' : 'one';
      const dir = spoolDir(cli.storeDir(), 'send');
      try {
        const file = path.join(dir, 'stream');
        const r = await cli.call('checkpoints.export', { id, file, how });
        try {
          await pipeline(fs.createReadStream(file), process.stdout, { end: false });
        } catch (e) {
          throw new StasisError('INVALID_INPUT', `The receiver stopped reading after part of the stream (${(e as Error).message}); it imports nothing from a partial stream, so send again.`);
        }
        // stdout is the stream: the summary goes to stderr, also with --json.
        const summary = { checkpoints: r.checkpoints, pages: r.pages, bytes: r.bytes };
        process.stderr.write(cli.json() ? `${JSON.stringify(summary)}\n` : `Sent checkpoint(s) ${r.checkpoints.map((c) => `#${c}`).join(', ')}: ${r.pages} pages, ${formatBytes(r.bytes)}.\n`);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

  program
    .command('receive')
    .description('import a stream read from stdin (`stasis send` on the other end); nothing is imported unless the whole stream arrived intact')
    .action(async () => {
      if (process.stdin.isTTY) throw new StasisError('INVALID_INPUT', 'stdin is a terminal; pipe `stasis send ID` into `stasis receive`.');
      const dir = spoolDir(cli.storeDir(), 'receive');
      try {
        const file = path.join(dir, 'stream');
        try {
          await pipeline(process.stdin, fs.createWriteStream(file, { mode: 0o600, flags: 'wx' }));
        } catch (e) {
          throw new StasisError('INVALID_INPUT', `Cannot spool the incoming stream into ${cli.storeDir()} (${(e as Error).message}); nothing was imported. Free space there (or choose another --store) and send again.`);
        }
        if (fs.statSync(file).size === 0) throw new StasisError('INVALID_INPUT', 'The stream on stdin was empty (did `stasis send` fail on the other end?); nothing was imported.');
        const r = await cli.call('checkpoints.import', { file });
        cli.print(r, (x) => `Received checkpoint(s) ${x.ids.map((i) => `#${i}`).join(', ')}.`);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
});
