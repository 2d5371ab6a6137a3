/** `stasis status`: engine version, kernel, available checkpoint features, store location and size. */
import { defineCommand } from '../command';
import type { EngineStatus } from '../../../shared/contract/engine';
import { formatBytes } from '../../../shared/format';

function yesNo(available: boolean | null): string {
  return available === null ? 'unknown' : available ? 'yes' : 'no';
}

export function formatStatus(s: EngineStatus): string[] {
  const f = s.features;
  return [
    `Stasis ${s.version} (Node ${s.node}, engine ${s.runtime})`,
    `Kernel        ${s.kernel.release} ${s.kernel.arch}`,
    `ptrace        ${yesNo(f.ptrace.available)} — ${f.ptrace.detail}`,
    `soft-dirty    ${yesNo(f.softDirty.available)} — ${f.softDirty.detail}`,
    `PAGEMAP_SCAN  ${yesNo(f.pagemapScan.available)} — ${f.pagemapScan.detail}`,
    `uffd-wp       ${yesNo(f.uffdWp.available)} — ${f.uffdWp.detail}`,
    `sealed vdso   ${yesNo(f.sealedSystemMappings.available)} — ${f.sealedSystemMappings.detail}`,
    `Store         ${s.store.path} (${s.store.exists ? formatBytes(s.store.bytes) : 'not created yet'})`,
  ];
}

export default defineCommand('status', (program, cli) => {
  program
    .command('status')
    .description('show the engine version, kernel features for checkpointing, and the store location and size')
    .action(async () => {
      cli.print(await cli.call('engine.status', {}), formatStatus);
    });
});
