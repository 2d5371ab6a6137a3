#!/usr/bin/env node
// Runs node:test over the TypeScript test files (loaded through tsx). Node 20's --test does not
// glob .ts files itself, so the list is built here.
//   node scripts/run-tests.mjs [unit|e2e|all] [filter...]
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const [kind = 'unit', ...filters] = process.argv.slice(2);
const root = new URL('..', import.meta.url).pathname;
const files = [];
(function walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) { if (name !== 'fixtures' && name !== 'node_modules') walk(p); continue; }
    if (!name.endsWith('.test.ts')) continue;
    const rel = relative(root, p);
    const isE2e = rel.startsWith('test/e2e/');
    if (kind === 'unit' && isE2e) continue;
    if (kind === 'e2e' && !isE2e) continue;
    if (filters.length && !filters.some((f) => rel.includes(f))) continue;
    files.push(rel);
  }
})(join(root, 'test'));
files.sort();
if (files.length === 0) { console.error(`no ${kind} test files matched`); process.exit(1); }
const args = ['--import', 'tsx', '--test', '--test-reporter=spec', `--test-concurrency=${kind === 'e2e' ? 1 : 2}`, ...files];
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
