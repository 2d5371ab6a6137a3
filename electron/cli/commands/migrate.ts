/**
 * `stasis migrate PID --to HOST:PORT --token T` (TLS-PSK to `stasis receive --listen` there) or
 * `stasis migrate PID --pipe 'ssh host stasis receive'` (a command whose stdin/stdout carry the
 * session): moves a running process to another store, usually on another machine
 * (engine/migrate/source.ts). The process stops here only for the last round; it is killed here
 * only once it runs there. Owns the link: opens it, and closes it on every path.
 */
import { spawn } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { defineCommand } from '../command';
import { formatBytes } from '../../../shared/format';
import { StasisError } from '../../../shared/errors';
import { connect, parseAddress, tokenKey } from '../../engine/transfer/tls-link';
import { FrameReader, FrameWriter } from '../../engine/migrate/wire';
import { migrate, type MigrateResult } from '../../engine/migrate/source';

interface Opts { to?: string; token?: string; pipe?: string; dryRun?: boolean; maxRounds?: string; pid?: boolean; guessVmflags?: string }

interface Link { input: Readable; output: Writable; close(): Promise<void> }

export async function openLink(o: Opts): Promise<Link> {
  if ((o.to === undefined) === (o.pipe === undefined)) throw new StasisError('INVALID_INPUT', 'Give where to: --to HOST:PORT --token T (a `stasis receive --listen` there), or --pipe \'ssh HOST stasis receive\'.');
  if (o.to !== undefined) {
    const sock = await connect(parseAddress(o.to, false), tokenKey(o.token ?? ''));
    // end(), not destroy(): the last frames must still reach the receiver.
    return {
      input: sock, output: sock,
      close: () => new Promise<void>((resolve) => {
        const t = setTimeout(() => { sock.destroy(); resolve(); }, 10_000);
        sock.once('close', () => { clearTimeout(t); resolve(); });
        sock.end();
      }),
    };
  }
  if (o.token !== undefined) throw new StasisError('INVALID_INPUT', '--token goes with --to HOST:PORT.');
  const child = spawn('/bin/sh', ['-c', o.pipe!], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  child.on('error', () => undefined);
  return {
    input: child.stdout, output: child.stdin,
    close: async () => {
      child.stdin.end();
      const t = setTimeout(() => child.kill('SIGTERM'), 30_000);
      await exited;
      clearTimeout(t);
    },
  };
}

function describe(r: MigrateResult): string[] {
  const rounds = r.rounds.map((x) => `  round ${x.round} (${x.kind}, checkpoint #${x.checkpointId}): ${x.pagesSent < x.pages ? `${x.pagesSent} of ${x.pages} pages sent (the destination held the rest)` : `${x.pages} pages`}, ${formatBytes(x.bytes)} in ${x.sendMs.toFixed(0)} ms${x.absorbed ? ', applied to the prepared process' : ''}`);
  if (r.dryRun) {
    return [`Dry run: the destination's pre-flight for process ${r.pid} ${r.preflight.ok ? 'passes' : 'fails'}; nothing was stopped, and the destination discarded what it received.`, ...rounds,
      ...r.preflight.items.map((i) => `  [${i.ok ? 'ok' : 'NO'}] ${i.label}: ${i.reason}`)];
  }
  const d = r.destination!;
  const members = r.tree?.members ?? [];
  return [
    members.length
      ? `Migrated the tree of process ${r.pid} (${members.length} processes): it runs on the destination, its root as pid ${d.pid} (its checkpoint #${d.checkpointId}); every process here was killed.`
      : `Migrated process ${r.pid}: it runs on the destination as pid ${d.pid} (its checkpoint #${d.checkpointId}); the process here was killed.`,
    ...members.map((m) => `  ${m.pid} ${m.comm} -> ${m.destinationPid ?? '?'}`),
    `Downtime ${r.downtimeMs!.toFixed(1)} ms (frozen ${r.frozenMs!.toFixed(1)} ms for the last checkpoint, restore ${d.restoreMs.toFixed(1)} ms there); ${r.rounds.length} rounds, ${formatBytes(r.bytesSent)} sent.`,
    d.prepared ? `The destination built the ${members.length ? 'tree' : 'process'} from round 1 while it ran here (${(d.prepareMs ?? 0).toFixed(0)} ms) and applied the later rounds to it.`
      : `The destination restored ${members.length ? 'the tree' : 'it'} from scratch in the downtime${d.unprepared ? ` (it could not prepare it: ${d.unprepared})` : ' (the memory layout changed in the last round)'}.`,
    ...(r.retracted ? [`The process changed its mappings' flags during the last round (${r.retracted.slice(0, 2).join('; ')}): that round was sent again with the flags read first, and restored there from scratch.`] : []),
    ...(d.steps.length ? [`  restore there: ${[...d.steps].sort((a, b) => b.ms - a.ms).slice(0, 5).map((x) => `${x.step} ${x.ms.toFixed(0)} ms`).join(', ')}`] : []),
    ...rounds,
    ...(d.warning ? [`Warning: ${d.warning}`] : []),
  ];
}

export default defineCommand('migrate', (program, cli) => {
  program
    .command('migrate')
    .description('move a running process to another store (machine): full while it runs, incrementals while the dirty set shrinks, then a short freeze; killed here only once it runs there')
    .argument('<pid>', 'process id')
    .option('--to <host:port>', 'a `stasis receive --listen` there (TLS with its pairing token)')
    .option('--token <token>', 'the pairing token that receiver printed (needed with --to)')
    .option('--pipe <command>', 'a command whose stdin/stdout reach `stasis receive` there, e.g. \'ssh host stasis receive\'')
    .option('--dry-run', 'send the first round and run the destination\'s pre-flight only; nothing is stopped')
    .option('--max-rounds <n>', 'pre-copy rounds at most, the full one included (default 8)')
    .option('--guess-vmflags <when>', 'the last round sent with its mappings\' flags guessed from the round before and checked while it travels: auto (default: when the smaps walk is still running), never')
    .option('--no-pid', 'a process tree: give its processes new PIDs on the destination (default: their own, refused there when taken)')
    .action(async (pidArg: string, o: Opts) => {
      const pid = Number(pidArg);
      if (!/^\d+$/.test(pidArg) || pid <= 0) throw new StasisError('INVALID_INPUT', `"${pidArg}" is not a process id.`);
      const guess = o.guessVmflags;
      if (guess !== undefined && guess !== 'never' && guess !== 'auto') throw new StasisError('INVALID_INPUT', `--guess-vmflags ${guess}: give never or auto.`);
      const maxRounds = o.maxRounds === undefined ? undefined : Number(o.maxRounds);
      if (maxRounds !== undefined && (!Number.isInteger(maxRounds) || maxRounds < 1 || maxRounds > 100)) throw new StasisError('INVALID_INPUT', `--max-rounds ${o.maxRounds}: give a whole number from 1 to 100.`);
      const store = cli.store();
      const link = await openLink(o);
      let r: MigrateResult;
      try {
        const progress = !cli.json() && process.stderr.isTTY;
        r = await migrate(store, pid, new FrameReader(link.input), new FrameWriter(link.output), {
          dryRun: o.dryRun === true, ...(maxRounds !== undefined ? { maxRounds } : {}), ...(o.pid === false ? { samePid: false } : {}), ...(guess ? { guessVmFlags: guess } : {}),
          ...(progress ? { onRound: (x) => process.stderr.write(`round ${x.round} (${x.kind}): ${x.pages} pages sent\n`) } : {}),
        });
      } finally {
        await link.close();
      }
      cli.print(r, describe);
      if (r.dryRun && !r.preflight.ok) cli.setExitCode(1);
    });
});
