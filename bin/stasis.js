#!/usr/bin/env node
// The `stasis` command. Runs the esbuild bundle (dist/cli.js) when it is built and not older than the
// TypeScript sources; otherwise (a checkout under development) registers tsx and runs the sources,
// so a new command is usable without a rebuild. STASIS_CLI_SOURCE=1 forces the sources.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));
const bundle = join(root, 'dist', 'cli.js');

function newestSource(dir, newest = 0) {
  let names;
  try { names = readdirSync(dir, { withFileTypes: true }); } catch { return newest; }
  for (const d of names) {
    const p = join(dir, d.name);
    if (d.isDirectory()) newest = newestSource(p, newest);
    else if (d.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

function useBundle() {
  if (process.env.STASIS_CLI_SOURCE === '1' || !existsSync(bundle)) return false;
  if (!existsSync(join(root, 'electron', 'cli', 'main.ts'))) return true; // packaged: no sources
  const built = statSync(bundle).mtimeMs;
  return newestSource(join(root, 'electron')) <= built && newestSource(join(root, 'shared')) <= built;
}

let mod;
if (useBundle()) {
  mod = await import(new URL('../dist/cli.js', import.meta.url).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  mod = await import(new URL('../electron/cli/main.ts', import.meta.url).href);
}
process.exitCode = await mod.runCli(process.argv);
