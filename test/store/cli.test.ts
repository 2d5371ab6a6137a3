// The store's CLI commands as scripts use them: bin/stasis.js in a child process against a real
// store built in a temp directory; --json output is the handler's output; errors are one line on
// stderr with a non-zero exit.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openStore } from '../../electron/engine/store';
import { mapping, randomPage, rng, tempDir, writeComplete, type View } from './model';

const root = fileURLToPath(new URL('../..', import.meta.url));
const t = tempDir('stasis-store-cli-');
const dir = path.join(t.dir, 'store');

interface Run { code: number; stdout: string; stderr: string }
function stasis(...args: string[]): Promise<Run> {
  return stasisIn(dir, ...args);
}
function stasisIn(store: string, ...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(root, 'bin', 'stasis.js'), '--store', store, ...args], { cwd: t.dir, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}
async function json(...args: string[]): Promise<unknown> {
  const r = await stasis('--json', ...args);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

before(() => {
  const store = openStore(dir);
  const r = rng(31);
  const tg = store.upsertTarget({ pid: 5, startTime: '5', exe: '/bin/x', cmdline: ['x'] });
  const v1: View = new Map();
  for (let i = 0; i < 40; i++) v1.set(0x200 + i, randomPage(r));
  const a = writeComplete(store, tg.id, null, v1, [mapping(0x200, 40, '/x')]);
  const v2: View = new Map(v1);
  v2.set(0x200, randomPage(r));
  v2.delete(0x227);
  const b = writeComplete(store, tg.id, a, v2, [mapping(0x200, 39, '/x')]);
  const v3: View = new Map(v2);
  v3.set(0x201, randomPage(r));
  writeComplete(store, tg.id, b, v3, [mapping(0x200, 39, '/x')]);
  store.close();
});
after(() => t.cleanup());

test('list, show, diff and stats print JSON in the documented shapes', async () => {
  const [list, show, diff, stats] = await Promise.all([json('list'), json('show', '2'), json('diff', '1', '2'), json('stats')]);
  const rows = list as Record<string, unknown>[];
  assert.equal(rows.length, 3);
  assert.deepEqual(Object.keys(rows[0]).sort(), ['bytesWritten', 'createdAt', 'id', 'label', 'logicalBytes', 'mode', 'pagesWritten', 'parent', 'pinned', 'target']);
  assert.deepEqual(rows.map((x) => x.parent), [null, 1, 2]);
  assert.deepEqual((show as { chain: number[] }).chain, [1, 2]);
  const d = diff as { changedPages: number; addedPages: number; removedPages: number; bytes: number; mappings: unknown[] };
  assert.deepEqual([d.changedPages, d.addedPages, d.removedPages, d.bytes], [1, 0, 1, 4096]);
  assert.equal((stats as { checkpoints: number }).checkpoints, 3);
  const human = await stasis('list');
  assert.match(human.stdout, /incremental/);
});

test('pin, label, rm (refused while pinned), unpin, rm, gc, verify, reindex', async () => {
  assert.equal(((await json('pin', '1')) as { pinned: boolean }).pinned, true);
  assert.equal(((await json('label', '1', 'known good')) as { label: string }).label, 'known good');
  const refused = await stasis('rm', '1');
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /^stasis: Checkpoint 1 is pinned; unpin it first/);
  assert.equal(refused.stderr.trim().split('\n').length, 1);
  await json('unpin', '1');
  assert.deepEqual(await json('rm', '1'), { removed: [1] });
  const gc = (await json('gc')) as { bytesReclaimed: number; segmentsRewritten: number };
  assert.equal(typeof gc.bytesReclaimed, 'number');
  assert.deepEqual(await json('verify'), { ok: true, problems: [] });
  assert.deepEqual(await json('reindex'), { checkpoints: 2, problems: [] });
  assert.deepEqual(((await json('list')) as { id: number }[]).map((x) => x.id), [2, 3]);
  const missing = await stasis('show', '99');
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /Checkpoint 99 does not exist/);
});

test('export (one, --flatten, --chain) and import into another store', async () => {
  const out = path.join(t.dir, 'three.stream');
  const e = (await json('export', '3', '-o', out)) as { checkpoints: number[]; file: string };
  assert.deepEqual(e.checkpoints, [2, 3]);
  const f = (await json('export', '3', '--flatten', '-o', path.join(t.dir, 'flat.stream'))) as { checkpoints: number[] };
  assert.deepEqual(f.checkpoints, [3]);
  const other = path.join(t.dir, 'other');
  const imp = await stasisIn(other, '--json', 'import', out);
  assert.equal(imp.code, 0, imp.stderr);
  assert.deepEqual((JSON.parse(imp.stdout) as { ids: number[] }).ids, [1, 2]);
  const copied = JSON.parse((await stasisIn(other, '--json', 'list')).stdout) as { parent: number | null }[];
  assert.deepEqual(copied.map((c) => c.parent), [null, 1]);
  assert.equal(((await json('list')) as unknown[]).length, 2, 'the source store is unchanged');
  const bad = await stasis('import', path.join(t.dir, 'nope.stream'));
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /Cannot open the stream/);
});

test('store config sets block compression; stats and store config report it; a bad value is refused', async () => {
  assert.deepEqual(await json('store', 'config', '--compression', 'lz4'), { compression: 'lz4', flattenAfter: 0 });
  const [human, stats, bad] = await Promise.all([stasis('store', 'config'), json('stats'), stasis('store', 'config', '--compression', 'zstd')]);
  assert.match(human.stdout, /^Compression of new blocks: lz4\.$/m);
  const s = stats as { compression: string; compressionRatio: number };
  assert.equal(s.compression, 'lz4');
  assert.equal(s.compressionRatio, 1, 'nothing written since: every block is still raw');
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^stasis: --compression zstd is not known; give lz4 or none\.$/m);
});

test('store config sets when long chains are re-flattened; a bad value is refused', async () => {
  assert.deepEqual(await json('store', 'config', '--flatten-after', '8'), { compression: 'lz4', flattenAfter: 8 });
  const [human, bad] = await Promise.all([stasis('store', 'config'), stasis('store', 'config', '--flatten-after', 'many')]);
  assert.match(human.stdout, /^Re-flatten a new checkpoint read from more than 8 segments: on\.$/m);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^stasis: --flatten-after many is not a number of segments; give 0 \(never\) or more\.$/m);
  assert.deepEqual(await json('store', 'config', '--flatten-after', '0'), { compression: 'lz4', flattenAfter: 0 });
});
