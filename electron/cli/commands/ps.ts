/** `stasis ps [--all]`: the user's processes, with whether each can be checkpointed and why not. */
import { defineCommand } from '../command';
import type { ProcessInfoItem } from '../../../shared/contract/capture';

export function formatPs(v: { processes: ProcessInfoItem[] }): string[] {
  const lines = [`${'PID'.padStart(7)}  ${'USER'.padEnd(10)}  ${'RSS'.padStart(9)}  THR  OK  COMMAND`];
  for (const p of v.processes) {
    const cmd = (p.cmdline.length ? p.cmdline.join(' ') : `[${p.comm}]`).slice(0, 80);
    const user = (p.user ?? String(p.uid)).slice(0, 10).padEnd(10);
    lines.push(`${String(p.pid).padStart(7)}  ${user}  ${`${Math.round(p.rssKb / 1024)} MiB`.padStart(9)}  ${String(p.threads).padStart(3)}  ${p.checkpointable ? 'yes' : 'no '} ${cmd}${p.reason ? `  (${p.reason})` : ''}`);
  }
  return lines;
}

export default defineCommand('ps', (program, cli) => {
  program
    .command('ps')
    .description('list your processes and whether each can be checkpointed')
    .option('--all', 'include other users\' processes and kernel threads')
    .action(async (o: { all?: boolean }) => {
      cli.print(await cli.call('processes.list', o.all ? { all: true } : {}), formatPs);
    });
});
