/**
 * Store commands about checkpoints: `stasis list [--target T]`, `show ID`, `diff A B`, `rm ID...`,
 * `pin ID`, `unpin ID`, `label ID TEXT`, `notes ID TEXT`, `rebase ID --onto A`. Each calls one
 * handler of shared/contract/store.ts; --json prints that handler's output.
 */
import type { Command } from 'commander';
import { defineCommand, type CliRuntime } from '../command';
import type { CheckpointDetailData, CheckpointInfoData, CheckpointRow } from '../../../shared/contract/store';
import { formatBytes } from '../../../shared/format';
import { StasisError } from '../../../shared/errors';
import { checkpointId } from './store-ids';

function formatList(rows: CheckpointRow[]): string[] {
  if (rows.length === 0) return ['No checkpoints yet (make one with `stasis checkpoint PID`).'];
  const lines = ['   ID  TARGET  PARENT  MODE         CREATED                   LOGICAL     WRITTEN   PIN  LABEL'];
  for (const r of rows) {
    lines.push(`${String(r.id).padStart(5)}  ${String(r.target).padStart(6)}  ${String(r.parent ?? '-').padStart(6)}  ${r.mode.padEnd(11)}  ${r.createdAt.padEnd(24)}  ${formatBytes(r.logicalBytes).padStart(10)}  ${formatBytes(r.bytesWritten).padStart(10)}  ${r.pinned ? ' * ' : '   '}  ${r.label ?? ''}${r.processes ? `${r.label ? ' ' : ''}[tree: ${r.processes} processes]` : ''}${r.treeRoot ? `${r.label ? ' ' : ''}[process of tree #${r.treeRoot}]` : ''}`);
  }
  return lines;
}

function formatInfo(c: CheckpointInfoData): string {
  const tree = c.tree ? (c.tree.root === c.id ? `, tree of ${c.tree.size} processes` : `, one process of tree #${c.tree.root}`) : '';
  return `#${c.id}${c.label ? ` "${c.label}"` : ''}${c.pinned ? ' (pinned)' : ''}: ${c.mode}, parent ${c.parentId ?? 'none'}, ${formatBytes(c.stats.logicalBytes)} of memory${tree}`;
}

function formatShow(d: CheckpointDetailData): string[] {
  const c = d.checkpoint;
  return [
    formatInfo(c),
    `Target ${d.target.id}: pid ${d.target.pid} ${d.target.exe} ${d.target.cmdline.join(' ')}`,
    `Created ${c.createdAt}; dirty tracking ${c.dirtyTracking}; chain ${d.chain.join(' -> ')}`,
    `Pages: ${c.stats.pagesChanged} recorded, ${c.stats.pagesWritten} new (${formatBytes(c.stats.bytesWritten)})${c.stats.frozenMs !== undefined ? `; frozen ${c.stats.frozenMs.toFixed(1)} ms` : ''}`,
    ...(c.notes ? [`Notes: ${c.notes}`] : []),
    `${d.threads} thread(s), ${d.fds} descriptor(s), ${d.mappings.length} mapping(s):`,
    ...d.mappings.map((m) => `  ${m.start}-${m.end} ${m.perms} ${String(m.pages).padStart(8)} pages ${String(m.changedPages).padStart(8)} changed  ${m.path || `[${m.kind}]`}`),
    ...d.warnings.map((w) => `warning: ${w}`),
  ];
}

function registerAttr(program: Command, cli: CliRuntime, name: string, desc: string, run: (id: number, text?: string) => Promise<CheckpointInfoData>, withText = false): void {
  const cmd = program.command(name).description(desc).argument('<id>', 'checkpoint id');
  if (withText) cmd.argument('[text]', 'the new text (omit or use --clear to remove it)').option('--clear', 'remove it');
  cmd.action(async (idArg: string, text?: string | Record<string, unknown>, o?: { clear?: boolean }) => {
    const t = typeof text === 'string' ? text : undefined;
    if (withText && t === undefined && !o?.clear) throw new StasisError('INVALID_INPUT', `Give the text for ${name} (or --clear to remove it).`);
    cli.print(await run(checkpointId(idArg), o?.clear ? undefined : t), formatInfo);
  });
}

export default defineCommand('checkpoints', (program, cli) => {
  program
    .command('list')
    .description('list checkpoints (newest last)')
    .option('--target <id>', 'only the checkpoints of this target')
    .action(async (o: { target?: string }) => {
      const targetId = o.target === undefined ? undefined : Number(o.target);
      if (targetId !== undefined && !Number.isInteger(targetId)) throw new StasisError('INVALID_INPUT', `--target ${o.target} is not a target id (a whole number).`);
      cli.print(await cli.call('checkpoints.rows', { targetId }), formatList);
    });

  program
    .command('show')
    .description('show one checkpoint: target, chain, mappings and what changed')
    .argument('<id>', 'checkpoint id')
    .action(async (idArg: string) => {
      cli.print(await cli.call('checkpoints.show', { id: checkpointId(idArg) }), formatShow);
    });

  program
    .command('diff')
    .description('pages changed, added and removed from checkpoint A to checkpoint B')
    .argument('<a>', 'older checkpoint id')
    .argument('<b>', 'newer checkpoint id')
    .action(async (a: string, b: string) => {
      const d = await cli.call('checkpoints.diff', { a: checkpointId(a), b: checkpointId(b) });
      cli.print(d, (x) => [
        `#${x.a} -> #${x.b}: ${x.changedPages} changed, ${x.addedPages} added, ${x.removedPages} removed pages (${formatBytes(x.bytes)} differ)`,
        ...x.mappings.map((m) => `  ${m.start}-${m.end} ${String(m.changedPages).padStart(7)} changed ${String(m.addedPages).padStart(7)} added ${String(m.removedPages).padStart(7)} removed  ${m.path}`),
      ]);
    });

  program
    .command('rm')
    .description('delete checkpoints (any of them; the others keep every page they need)')
    .argument('<ids...>', 'checkpoint ids')
    .action(async (ids: string[]) => {
      const r = await cli.call('checkpoints.remove', { ids: ids.map(checkpointId) });
      cli.print(r, (x) => `Deleted ${x.removed.map((i) => `#${i}`).join(', ')}. Run \`stasis gc\` to reclaim their space.`);
    });

  registerAttr(program, cli, 'pin', 'pin a checkpoint (never deleted by retention or rm)', (id) => cli.call('checkpoints.pin', { id, pinned: true }));
  registerAttr(program, cli, 'unpin', 'unpin a checkpoint', (id) => cli.call('checkpoints.pin', { id, pinned: false }));
  registerAttr(program, cli, 'label', 'set (or --clear) the label of a checkpoint', (id, text) => cli.call('checkpoints.label', { id, label: text ?? null }), true);
  registerAttr(program, cli, 'notes', 'set (or --clear) the notes of a checkpoint', (id, text) => cli.call('checkpoints.notes', { id, notes: text ?? null }), true);

  program
    .command('rebase')
    .description('store checkpoint ID as an incremental on top of checkpoint --onto (e.g. two fulls)')
    .argument('<id>', 'checkpoint to re-express')
    .requiredOption('--onto <id>', 'the checkpoint it becomes incremental on')
    .action(async (idArg: string, o: { onto: string }) => {
      const r = await cli.call('checkpoints.rebase', { id: checkpointId(idArg), onto: checkpointId(o.onto) });
      cli.print(r, (x) => `#${x.id} is now incremental on #${x.parentId} (${x.pagesChanged} page records).`);
    });
});
