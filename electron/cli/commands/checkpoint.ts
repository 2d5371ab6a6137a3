/**
 * `stasis checkpoint PID [--leave-running (default) | --kill] [--full] [--tree | --no-tree] [--label TEXT] [--name N] [--snapshot HOW]
 *   [--ghost-limit BYTES]`:
 * saves a live process into the store (capture.checkpoint). --json prints the handler's output.
 */
import { defineCommand } from '../command';
import type { CheckpointResultInfo } from '../../../shared/contract/capture';
import { StasisError } from '../../../shared/errors';
import { formatBytes } from '../../../shared/format';

export function pidOf(v: string): number {
  const pid = Number(v);
  if (!Number.isInteger(pid) || pid <= 0) throw new StasisError('INVALID_INPUT', `"${v}" is not a process id (a positive whole number, see \`stasis ps\`).`);
  return pid;
}

const FREEZE_WORDS: Partial<Record<CheckpointResultInfo['freeze'], string>> = {
  'pre-copy': 'pre-copy: memory read while it ran',
  'uffd-wp': 'write-protect snapshot',
  snapshot: 'copy-on-write snapshot',
};

function treeFreezeWords(members: NonNullable<CheckpointResultInfo['members']>): string {
  const live = members.filter((m) => m.freeze === 'pre-copy').length;
  if (live === 0) return 'every process frozen throughout';
  const frozenPages = members.reduce((n, m) => n + m.frozenPages, 0);
  const rest = live < members.length ? `; the other ${members.length - live} frozen throughout` : '';
  return `pre-copy: the memory of ${live} of ${members.length} processes read while the tree ran, ${frozenPages} pages read frozen${rest}`;
}

export function formatCheckpoint(r: CheckpointResultInfo): string[] {
  if (r.members) {
    return [
      `Tree checkpoint #${r.id} of pid ${r.pid} and its descendants: ${r.members.length} processes, ${r.mode}${r.killed ? ', all killed afterwards' : ''}.`,
      ...r.members.map((m) => `  #${m.id}  pid ${m.pid} ${m.comm}${m.parentPid !== null ? ` (child of ${m.parentPid})` : ''}${m.zombies.length ? `, exited children kept: ${m.zombies.join(', ')}` : ''}`),
      `Frozen ${r.frozenMs.toFixed(1)} ms (${treeFreezeWords(r.members)}), total ${r.durationMs.toFixed(1)} ms.`,
      `${r.pagesScanned} pages scanned, ${r.pagesWritten} written (${formatBytes(r.bytesWritten)}).`,
      ...r.warnings.map((w) => `warning: ${w}`),
    ];
  }
  return [
    `Checkpoint #${r.id} of pid ${r.pid}: ${r.mode} (${r.dirtyTracking} dirty tracking)${r.killed ? ', process killed afterwards' : ''}.`,
    `Frozen ${r.frozenMs.toFixed(1)} ms (${FREEZE_WORDS[r.freeze] ?? `all ${r.threads} thread(s) frozen throughout`}), total ${r.durationMs.toFixed(1)} ms.`,
    `${r.pagesScanned} pages scanned, ${r.pagesWritten} written (${formatBytes(r.bytesWritten)}).`,
    ...r.warnings.map((w) => `warning: ${w}`),
  ];
}

interface Opts { leaveRunning?: boolean; kill?: boolean; full?: boolean; label?: string; name?: string; snapshot?: string; ghostLimit?: string; tree?: boolean }

const SNAPSHOTS = ['auto', 'precopy', 'fork', 'uffd', 'never'] as const;

export default defineCommand('checkpoint', (program, cli) => {
  program
    .command('checkpoint')
    .description('checkpoint a running process (incremental after the first one)')
    .argument('<pid>', 'process id (see `stasis ps`)')
    .option('--leave-running', 'keep the process running (the default)')
    .option('--kill', 'kill the process once the checkpoint is safely stored')
    .option('--full', 'take a full checkpoint even if an earlier one exists')
    .option('--label <text>', 'a label for the checkpoint')
    .option('--name <name>', 'a stable name for this program in the store')
    .option('--tree', 'the process and all its descendants, at one instant, as one checkpoint (restore brings back the whole tree); the default when it has child processes')
    .option('--no-tree', 'this process alone, even when it has child processes (a restored parent cannot wait for them)')
    .option('--snapshot <how>', 'keep downtime short with: auto (default), precopy (read memory while it runs, any number of threads), fork, uffd (userfaultfd write-protect, any number of threads), never')
    .option('--ghost-limit <bytes>', 'save the contents of open files that were already deleted up to this size each (default 10485760 = 10 MiB; 0 saves none)')
    .action(async (pidArg: string, o: Opts) => {
      if (o.kill && o.leaveRunning) throw new StasisError('INVALID_INPUT', 'Choose either --leave-running or --kill, not both.');
      const snapshot = SNAPSHOTS.find((x) => x === o.snapshot);
      if (o.snapshot !== undefined && !snapshot) throw new StasisError('INVALID_INPUT', `--snapshot must be one of ${SNAPSHOTS.join(', ')}.`);
      const ghostLimit = o.ghostLimit === undefined ? undefined : Number(o.ghostLimit);
      if (ghostLimit !== undefined && !(/^\d+$/.test(o.ghostLimit!) && Number.isSafeInteger(ghostLimit))) {
        throw new StasisError('INVALID_INPUT', `--ghost-limit must be a number of bytes (e.g. 10485760), not "${o.ghostLimit}".`);
      }
      const r = await cli.call('capture.checkpoint', {
        pid: pidOf(pidArg),
        mode: o.kill ? 'kill' : 'leave-running',
        ...(o.full ? { full: true } : {}),
        ...(o.label !== undefined ? { label: o.label } : {}),
        ...(o.name ? { name: o.name } : {}),
        ...(snapshot ? { snapshot } : {}),
        ...(ghostLimit !== undefined ? { ghostLimit } : {}),
        ...(o.tree !== undefined ? { tree: o.tree } : {}),
      });
      cli.print(r, formatCheckpoint);
    });
});
