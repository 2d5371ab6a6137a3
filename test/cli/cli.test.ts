// The `stasis` CLI as scripts use it: real processes through bin/stasis.js, a temp store directory.
// --json output is one parseable document; --help/--version work; errors are one line on stderr
// and a non-zero exit code.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
let tmp: string;

interface Run { code: number; stdout: string; stderr: string }

function stasis(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const e: NodeJS.ProcessEnv = { ...process.env, STASIS_STORE: join(tmp, 'store'), ...env };
    for (const [k, v] of Object.entries(env)) if (v === undefined) delete e[k];
    execFile(process.execPath, [join(root, 'bin', 'stasis.js'), ...args], { cwd: tmp, env: e, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

before(() => { tmp = mkdtempSync(join(tmpdir(), 'stasis-cli-')); });
after(() => { rmSync(tmp, { recursive: true, force: true }); });

test('status --json is one JSON document describing this machine and the store', async () => {
  const r = await stasis(['status', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.equal(s.version, version);
  assert.equal(s.kernel.release, release());
  assert.equal(s.runtime, 'in-process');
  assert.equal(s.store.path, join(tmp, 'store'));
  assert.equal(s.store.exists, false, 'status must not create the store');
  for (const f of ['ptrace', 'softDirty', 'pagemapScan', 'uffdWp']) assert.equal(typeof s.features[f].detail, 'string');
});

test('--store wins over STASIS_STORE, which wins over XDG_DATA_HOME; global options go before or after the command', async () => {
  const [explicit, xdg] = await Promise.all([
    stasis(['--json', '--store', join(tmp, 'elsewhere'), 'status']),
    stasis(['status', '--json'], { STASIS_STORE: undefined, XDG_DATA_HOME: join(tmp, 'xdg') }),
  ]);
  assert.equal(JSON.parse(explicit.stdout).store.path, join(tmp, 'elsewhere'));
  assert.equal(JSON.parse(xdg.stdout).store.path, join(tmp, 'xdg', 'stasis'));
});

test('status without --json is readable text', async () => {
  const r = await stasis(['status']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Stasis /);
  assert.match(r.stdout, new RegExp(`Kernel +${release().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  assert.throws(() => JSON.parse(r.stdout));
});

test('--help and --version', async () => {
  const [help, sub, v] = await Promise.all([stasis(['--help']), stasis(['status', '--help']), stasis(['--version'])]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: stasis/);
  assert.match(help.stdout, /status/);
  assert.match(help.stdout, /--store <dir>/);
  assert.equal(sub.code, 0);
  assert.match(sub.stdout, /Usage: stasis status/);
  assert.equal(v.code, 0);
  assert.equal(v.stdout.trim(), version);
});

test('a failing command: one line on stderr, exit 1, and {"error"} with --json', async () => {
  const file = join(tmp, 'not-a-dir');
  writeFileSync(file, 'x');
  const [r, j] = await Promise.all([stasis(['status', '--store', file]), stasis(['status', '--json', '--store', file])]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^stasis: The store path .* is not a directory; pass --store/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.equal(j.code, 1);
  assert.equal(JSON.parse(j.stdout).error.code, 'INVALID_INPUT');
});

test('bad usage exits 2 with the reason on stderr', async () => {
  const [unknown, option] = await Promise.all([stasis(['frobnicate']), stasis(['status', '--bogus'])]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command 'frobnicate'/);
  assert.equal(option.code, 2);
  assert.match(option.stderr, /unknown option '--bogus'/);
  // With --json, scripts also get the reason as the one document on stdout.
  const [usageJson, noCommand] = await Promise.all([stasis(['status', '--bogus', '--json']), stasis(['--json'])]);
  assert.equal(usageJson.code, 2);
  assert.deepEqual(JSON.parse(usageJson.stdout), { error: { code: 'INVALID_INPUT', message: "unknown option '--bogus'" } });
  assert.equal(noCommand.code, 2);
  assert.match(JSON.parse(noCommand.stdout).error.message, /No command given/);
});
