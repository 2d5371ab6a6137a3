/**
 * Runs benchmarks: `npm run bench [-- name...]` runs bench/<name>.ts for each name given (default:
 * every bench/*.ts except this runner and the table printer), one child process each, in order.
 */
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const dir = new URL('.', import.meta.url).pathname;
const names = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const all = readdirSync(dir).filter((f) => f.endsWith('.ts') && !['run.ts', 'table.ts'].includes(f)).map((f) => f.replace(/\.ts$/, ''));
let failed = 0;
for (const name of names.length ? names : all) {
  process.stderr.write(`\n=== bench/${name}.ts ===\n`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(dir, `${name}.ts`)], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
