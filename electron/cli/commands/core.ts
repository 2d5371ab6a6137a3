/** `stasis core ID -o FILE`: writes a checkpoint as an ELF core file for `gdb EXE FILE` (restore.core). */
import { resolve } from 'node:path';
import { defineCommand } from '../command';
import { StasisError } from '../../../shared/errors';

export default defineCommand('core', (program, cli) => {
  program
    .command('core')
    .description('write a checkpoint as an ELF core file that gdb opens (gdb EXE FILE)')
    .argument('<id>', 'checkpoint id')
    .requiredOption('-o, --output <file>', 'core file to write')
    .action(async (idArg: string, o: { output: string }) => {
      const id = Number(idArg.replace(/^#/, ''));
      if (!Number.isInteger(id) || id <= 0) throw new StasisError('INVALID_INPUT', `"${idArg}" is not a checkpoint id (a positive whole number).`);
      const r = await cli.call('restore.core', { id, output: resolve(o.output) });
      cli.print(r, (v) => `Wrote ${v.path} (${v.bytes} bytes). Open it with: gdb ${v.exe} ${v.path}`);
    });
});
