/**
 * `stasis launch [--name N] [--cwd D] -- CMD...`: starts a program under Stasis (stdio to a log
 * file in the store) so later Stasis processes can checkpoint it even under Yama ptrace_scope=1.
 * Prints {pid, log}.
 */
import { defineCommand } from '../command';
import type { LaunchResultInfo } from '../../../shared/contract/capture';

export function formatLaunch(r: LaunchResultInfo): string[] {
  return [`Started pid ${r.pid}${r.name ? ` (${r.name})` : ''}; output goes to ${r.log}.`];
}

export default defineCommand('launch', (program, cli) => {
  program
    .command('launch')
    .description('start a program under Stasis so it can be checkpointed later (stdio to a log file in the store)')
    .argument('<command...>', 'the program and its arguments (after --)')
    .option('--name <name>', 'a stable name for the program')
    .option('--cwd <dir>', 'working directory (default: the current one)')
    .action(async (argv: string[], o: { name?: string; cwd?: string }) => {
      const r = await cli.call('capture.launch', { argv, ...(o.name ? { name: o.name } : {}), ...(o.cwd ? { cwd: o.cwd } : {}) });
      cli.print(r, formatLaunch);
    });
});
