#!/usr/bin/env node
// The `stasis` command. Runs the esbuild bundle (dist/cli.js) when it is built and not older than the
// TypeScript sources; otherwise (a checkout under development) registers tsx and runs the sources,
// so a new command is usable without a rebuild. STASIS_CLI_SOURCE=1 forces the sources.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const bundle = join(root, 'dist', 'cli.js');
const checkout = existsSync(join(root, 'electron', 'cli', 'main.ts'));

async function useBundle() {
  if (process.env.STASIS_CLI_SOURCE === '1' || !existsSync(bundle)) return false;
  if (!checkout) return true; // installed package: no sources to compare with
  const { upToDate } = await import('../scripts/lib/freshness.mjs');
  return upToDate([bundle], [join(root, 'electron'), join(root, 'shared')], (n) => n.endsWith('.ts'));
}

let mod;
if (await useBundle()) {
  mod = await import(new URL('../dist/cli.js', import.meta.url).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  mod = await import(new URL('../electron/cli/main.ts', import.meta.url).href);
}
process.exitCode = await mod.runCli(process.argv);
