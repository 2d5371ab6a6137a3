// `stasis grep`, `stasis mem` and `stasis inspect` as a user runs them (bin/stasis.js, a real
// process and store): hits streamed then merged with first/last checkpoint, a hexdump, raw bytes
// to a file, masked environment, exit codes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached, type DetachedProcess } from '../helpers/spawn';
import { checkpoint } from '../../electron/engine/capture';
import { tempDir, tempStore, waitFor, waitForFile } from '../capture/common';

const root = fileURLToPath(new URL('../..', import.meta.url));
let target: DetachedProcess;
let side: ReturnType<typeof tempDir>;
let st: ReturnType<typeof tempStore>;
let a = 0n;
const ids: number[] = [];

function stasis(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(root, 'bin', 'stasis.js'), '--store', st.dir, ...args], { timeout: 60_000, encoding: 'latin1' }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

before(async () => {
  side = tempDir('inspect-cli');
  st = tempStore();
  target = spawnDetached([buildFixture('inspect-plant'), side.dir], { env: { ...process.env, STASIS_TEST_TOKEN: 's3cret-value' } });
  await waitForFile(join(side.dir, 'info.txt'));
  a = BigInt(`0x${/^a (\S+)$/m.exec(readFileSync(join(side.dir, 'info.txt'), 'utf8'))![1]}`);
  ids.push(checkpoint(st.store, target.pid, { full: true }).id);
  target.kill('SIGUSR1');
  await waitFor('generation 1', () => /^gen 1$/m.test(readFileSync(join(side.dir, 'info.txt'), 'utf8')));
  ids.push(checkpoint(st.store, target.pid).id);
  st.store.close(); // the CLI opens the store itself
});
after(() => {
  target?.kill();
  st?.cleanup();
  side?.cleanup();
});

test('stasis grep streams each hit, then prints the matches with first/last checkpoint and context', async () => {
  const r = await stasis(['grep', 'SPAN-PAGE-BOUNDARY', ...ids.map(String)]);
  assert.equal(r.code, 0, r.stderr);
  const addr = `0x${(a + 4096n - 9n).toString(16)}`;
  assert.match(r.stdout, new RegExp(`^found ${addr} \\[anon\\] rw-p in #${ids[0]},#${ids[1]}: "SPAN-PAGE-BOUNDARY"$`, 'm'));
  assert.match(r.stdout, new RegExp(`^${addr} \\[anon\\] rw-p: first #${ids[0]}, last #${ids[1]}  "SPAN-PAGE-BOUNDARY"$`, 'm'));
  assert.match(r.stdout, /\|SPAN-PAGE-BOUNDA|/);
  assert.match(r.stdout, /^Searched 2 checkpoint\(s\): .* scanned \(\d+ distinct pages/m);
  const none = await stasis(['grep', 'no-such-string-anywhere', '--json', String(ids[0])]);
  assert.equal(none.code, 1, 'no match: exit 1, like grep');
  assert.deepEqual(JSON.parse(none.stdout).matches, []);
  const bad = await stasis(['grep', 'x']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /Give the checkpoint ids to search, or --process TARGET/);
});

test('stasis mem prints a hexdump, or writes raw bytes to a file; stasis inspect masks the environment', async () => {
  const r = await stasis(['mem', String(ids[1]), `0x${(a + 2n * 4096n + 48n).toString(16)}`, '16']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^[0-9a-f]{16} {2}63 63 76 61 6c 75 65 3d {2}67 65 6e 31 63 63 63 63 {2}\|ccvalue=gen1cccc\|$/m);
  const file = join(side.dir, 'raw.bin');
  const raw = await stasis(['mem', String(ids[1]), `0x${a.toString(16)}`, String(6 * 4096), '--raw', '-o', file]);
  assert.equal(raw.code, 0, raw.stderr);
  const bytes = readFileSync(file);
  assert.equal(bytes.length, 6 * 4096);
  assert.equal(bytes.toString('latin1', 4 * 4096 - 10, 4 * 4096 + 11), 'SPAN-MAPPING-BOUNDARY');
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const insp = await stasis(['inspect', String(ids[1])]);
  assert.equal(insp.code, 0, insp.stderr);
  assert.match(insp.stdout, /^ {2}STASIS_TEST_TOKEN=\*\*\*\*$/m);
  assert.ok(!insp.stdout.includes('s3cret-value'));
  assert.match(insp.stdout, /^Threads \(1\):\n {2}\d+: rip 0x[0-9a-f]+ rsp 0x[0-9a-f]+ fs_base 0x[0-9a-f]+/m);
  const shown = await stasis(['inspect', String(ids[1]), '--show-env', '--json']);
  assert.ok((JSON.parse(shown.stdout) as { environ: string[] }).environ.includes('STASIS_TEST_TOKEN=s3cret-value'));
});
