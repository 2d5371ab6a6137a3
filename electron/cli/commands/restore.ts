/**
 * `stasis restore ID [--stdout FILE] [--stderr FILE] [--stdin FILE] [--log FILE] [--check] [--attach]`: brings
 * a checkpoint back as a new running process (restore.run; --no-pid: never reuse the original PID), or with --check only prints the
 * pre-flight checklist (restore.preflight). --json prints the handler's output.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { defineCommand } from '../command';
import type { PreflightInfo, RestoreInfo } from '../../../shared/contract/restore';
import { StasisError } from '../../../shared/errors';
import { ownProcessGroup, setForeground, stdinTerminal } from '../../engine/host/terminal';

function idOf(v: string): number {
  const id = Number(v.replace(/^#/, ''));
  if (!Number.isInteger(id) || id <= 0) throw new StasisError('INVALID_INPUT', `"${v}" is not a checkpoint id (a positive whole number, see \`stasis list\`).`);
  return id;
}

export function formatPreflight(p: PreflightInfo): string[] {
  return [
    `Checkpoint #${p.checkpointId}: ${p.ok ? 'can be restored' : 'cannot be restored'}`,
    ...p.items.flatMap((i) => [`  [${i.ok ? ' ok ' : 'FAIL'}] ${i.label}: ${i.reason}`, ...(i.fix ? [`         fix: ${i.fix}`] : [])]),
  ];
}

export function formatRestore(r: RestoreInfo): string[] {
  return [
    `Restored ${r.members ? `tree checkpoint #${r.checkpointId} (${r.members.length} processes), its root` : `checkpoint #${r.checkpointId}`} as pid ${r.pid}${r.samePid ? ' (same pid as the original)' : ` (the original was pid ${r.originalPid})`} in ${r.durationMs.toFixed(1)} ms.`,
    ...(r.members ?? []).slice(1).map((m) => `  pid ${m.pid} ${m.comm} (was ${m.originalPid}), child of ${m.parentPid}${m.zombies.length ? `; exited children recreated: ${m.zombies.join(', ')}` : ''}`),
    // Only when something was sent there: the log is created by the first redirected descriptor.
    ...(existsSync(r.log) ? [`Output of vanished terminals/pipes goes to ${r.log}.`] : []),
    ...(r.warning ? [`Warning: ${r.warning}`] : []),
  ];
}

interface Opts { stdout?: string; stderr?: string; stdin?: string; log?: string; check?: boolean; pid?: boolean; attach?: boolean }

/** Resolves once pid has exited (or is a zombie) or is stopped (Ctrl-Z, SIGSTOP): not our child, so /proc is polled. */
function attached(pid: number): Promise<'exited' | 'stopped'> {
  return new Promise((done) => {
    const tick = (): void => {
      let stat: string;
      try { stat = readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { done('exited'); return; }
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      if (state === 'Z' || state === 'X') done('exited');
      else if (state === 'T') done('stopped');
      else setTimeout(tick, 50);
    };
    tick();
  });
}

export default defineCommand('restore', (program, cli) => {
  program
    .command('restore')
    .description('restore a checkpoint as a new running process (pre-flight checks first)')
    .argument('<id>', 'checkpoint id')
    .option('--stdout <file>', 'where the restored process writes its stdout if its terminal/pipe is gone (default: the log file)')
    .option('--stderr <file>', 'where the restored process writes its stderr if its terminal/pipe is gone (default: the log file)')
    .option('--stdin <file>', 'what the restored process reads as stdin if its terminal/pipe is gone (default: /dev/null)')
    .option('--log <file>', 'log file for other vanished outputs (default: <store>/logs/restore-ID.log)')
    .option('--check', 'only run the pre-flight checks and print the checklist')
    .option('--no-pid', 'always give the process a new PID (default: its original PID when free)')
    .option('--attach', 'run it in this terminal (its terminal descriptors opened on it, its process group in the foreground) and wait until it exits, like criu restore --shell-job')
    .action(async (idArg: string, o: Opts) => {
      const abs = (p?: string): string | undefined => (p ? resolve(p) : undefined);
      const input = {
        id: idOf(idArg), stdout: abs(o.stdout), stderr: abs(o.stderr), stdin: abs(o.stdin), log: abs(o.log), ...(o.pid === false ? { samePid: false } : {}),
        ...(o.attach ? { attach: stdinTerminal() } : {}),
      };
      if (o.check) {
        const p = await cli.call('restore.preflight', input);
        cli.print(p, formatPreflight);
        if (!p.ok) cli.setExitCode(1);
        return;
      }
      const r = await cli.call('restore.run', input);
      if (!o.attach) {
        cli.print(r, formatRestore);
        return;
      }
      process.stderr.write(`stasis: pid ${r.pid} (checkpoint #${r.checkpointId}) runs in this terminal; stasis waits until it exits.\n`);
      const how = await attached(r.pid);
      // The terminal goes back to this (the shell's) job; from the background, hence SIGTTOU blocked.
      setForeground(0, ownProcessGroup());
      if (how === 'stopped') process.stderr.write(`stasis: pid ${r.pid} was stopped and is no longer attached; \`kill -CONT ${r.pid}\` resumes it in the background.\n`);
      cli.print(r, formatRestore);
    });
});
