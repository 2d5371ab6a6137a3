/**
 * The `stasis` CLI: global options, the one list of commands, and error handling. Commands call the
 * API handlers in this process through the same validation as every other transport (api/invoke.ts).
 * Output: with --json exactly one JSON document on stdout (the handler's output, or {"error":...});
 * otherwise a readable form. Errors: one line on stderr, non-zero exit. Must never import Electron.
 *
 * Adding a command: a new file in commands/ exporting defineCommand(...), plus one line in `commands`.
 */
import { Command, CommanderError } from 'commander';
import type { CallInput, CallName, CallOutput } from '../../shared/contract';
import { StasisError, toErrorData } from '../../shared/errors';
import { invoke } from '../api/invoke';
import { STASIS_VERSION } from '../api/version';
import { lazyStore, resolveStoreDir } from '../engine/host/store-access';
import type { CliCommand, CliRuntime } from './command';
import { progressLine } from './progress-line';
import status from './commands/status';
import schedule from './commands/schedule';
import daemon from './commands/daemon';
import restore from './commands/restore';
import core from './commands/core';
import checkpoint from './commands/checkpoint';
import launch from './commands/launch';
import ps from './commands/ps';
import checkpoints from './commands/checkpoints';
import storeMaintenance from './commands/store-maintenance';
import transfer from './commands/transfer';
import inspect from './commands/inspect';
import migrate from './commands/migrate';

export const commands: CliCommand[] = [
  status,
  schedule,
  daemon,
  restore,
  core,
  checkpoint,
  launch,
  ps,
  checkpoints,
  storeMaintenance,
  transfer,
  inspect,
  migrate,
];

/** Exit codes: 0 ok, 1 the operation failed (StasisError), 2 bad usage (unknown command/option). */
export async function runCli(argv: string[]): Promise<number> {
  const program = new Command('stasis');
  program
    .description('Checkpoint, restore and inspect Linux processes (the Stasis engine, without the window).')
    .version(STASIS_VERSION, '-V, --version', 'print the Stasis version')
    .option('--store <dir>', 'store directory (default: $STASIS_STORE, else $XDG_DATA_HOME/stasis, i.e. ~/.local/share/stasis)')
    .option('--json', 'print one machine-readable JSON document on stdout')
    .helpOption('-h, --help', 'show help for stasis or a command')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => process.stdout.write(s),
      writeErr: (s) => process.stderr.write(s),
    });

  const opts = (): { store?: string; json?: boolean } => program.opts();
  const opened: { store: ReturnType<typeof lazyStore> | null } = { store: null };
  const storeDir = (): string => resolveStoreDir(opts().store);

  let exitCode = 0;
  const cli: CliRuntime = {
    async call<N extends CallName>(name: N, input: CallInput<N>, callOpts?: { onEvent?: (event: string, payload: unknown) => void }): Promise<CallOutput<N>> {
      const dir = storeDir();
      opened.store ??= lazyStore(dir);
      const s = opened.store;
      // A terminal gets the engine's progress on stderr; --json and pipes get only the result.
      const line = process.stderr.isTTY && !opts().json ? progressLine(process.stderr) : null;
      const reply = await invoke(name, input, {
        storeDir: dir, store: () => s.store(), runtime: 'in-process',
        emit: (e, p) => { line?.emit(e, p); callOpts?.onEvent?.(e, p); },
        ...(line || callOpts?.onEvent ? { callId: 'cli' } : {}),
      }).finally(() => line?.end());
      if (!reply.ok) throw new StasisError(reply.error.code, reply.error.message, reply.error.detail);
      return reply.value as CallOutput<N>;
    },
    print(value, human) {
      if (opts().json) {
        process.stdout.write(JSON.stringify(value, null, 2) + '\n');
      } else {
        const text = human(value);
        process.stdout.write((Array.isArray(text) ? text.join('\n') : text) + '\n');
      }
    },
    storeDir,
    store: () => (opened.store ??= lazyStore(storeDir())).store(),
    json: () => opts().json === true,
    setExitCode: (code) => { exitCode = code; },
  };

  for (const c of commands) c.register(program, cli);

  try {
    await program.parseAsync(argv, { from: 'node' });
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander already printed its message (or the help/version text).
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0) return 0;
      if (argv.includes('--json')) {
        const message = err.code === 'commander.help'
          ? 'No command given; `stasis --help` lists the commands.'
          : err.message.replace(/^error: /, '').replace(/\n[\s\S]*$/, '');
        process.stdout.write(JSON.stringify({ error: { code: 'INVALID_INPUT', message } }) + '\n');
      }
      return 2;
    }
    const data = toErrorData(err);
    if (argv.includes('--json')) process.stdout.write(JSON.stringify({ error: { code: data.code, message: data.message } }) + '\n');
    process.stderr.write(`stasis: ${data.message}${data.code === 'INTERNAL' ? ' (internal error: please report it)' : ''}\n`);
    return 1;
  } finally {
    opened.store?.close();
  }
}
