/**
 * Crash tests: a child process writing to the store (commit, gc, import, flatten) is killed with SIGKILL at
 * a random moment, TRIALS times in all; then the store must open, verify clean, and every
 * checkpoint that existed before the child started must still materialize exactly as before.
 * The child is bundled once with esbuild so each trial starts in tens of milliseconds.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { buildSync } from 'esbuild';
import { openStore } from '../../electron/engine/store';
import { assertSameView, mapping, materializeToMap, randomPage, rng, tempDir, writeComplete, type View } from './model';

// 60 trials by default keep this file under 60 s on a loaded 2-core machine; STASIS_CRASH_TRIALS=100 runs the 100.
const TOTAL = Number(process.env.STASIS_CRASH_TRIALS ?? 60);
const TRIALS = { commit: Math.round(TOTAL * 0.4), gc: Math.round(TOTAL * 0.3), import: TOTAL - Math.round(TOTAL * 0.4) - Math.round(TOTAL * 0.3), flatten: Math.round(TOTAL * 0.2) };
const PARALLEL = 4;
const root = path.resolve(import.meta.dirname, '../..');
const t = tempDir('stasis-crash-');
const template = path.join(t.dir, 'template');
const streamFile = path.join(t.dir, 'base.stream');
const childJs = path.join(t.dir, 'child.cjs');
const base = new Map<number, View>();

before(() => {
  buildSync({
    entryPoints: [path.join(root, 'test/store/crash-child.ts')], bundle: true, platform: 'node', format: 'cjs', target: 'node20',
    outfile: childJs, external: ['better-sqlite3', '@napi-rs/blake-hash', 'lz4-napi', 'koffi'], logLevel: 'error',
  });
  const store = openStore(template);
  const r = rng(77);
  const a = store.upsertTarget({ pid: 1, startTime: '1', exe: '/a', cmdline: [] });
  const b = store.upsertTarget({ pid: 2, startTime: '2', exe: '/b', cmdline: [] });
  let v: View = new Map();
  for (let i = 0; i < 160; i++) v.set(0x100 + i, r() < 0.3 ? Buffer.alloc(4096) : randomPage(r));
  let parent: number | null = null;
  for (let k = 0; k < 3; k++) {
    if (k) { v = new Map(v); for (let i = 0; i < 30; i++) v.set(0x100 + Math.floor(r() * 160), randomPage(r)); }
    parent = writeComplete(store, a.id, parent, v, [mapping(0x100, 160)]);
    base.set(parent, v);
  }
  const w: View = new Map();
  for (let i = 0; i < 40; i++) w.set(0x500 + i, randomPage(r));
  base.set(writeComplete(store, b.id, null, w, [mapping(0x500, 40)]), w);
  assert.deepEqual([...base.keys()], [1, 2, 3, 4]);
  store.exportStream(3, streamFile, 'one');
  store.close();
});

after(() => t.cleanup());

function runAndKill(mode: string, dir: string, seed: number, delayMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [childJs, mode, dir, streamFile, String(seed)], {
      env: { ...process.env, NODE_PATH: path.join(root, 'node_modules') }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d) => { err += String(d); });
    child.stdout.once('data', () => setTimeout(() => child.kill('SIGKILL'), delayMs));
    child.on('exit', (code, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error(`child (${mode}) exited ${code} before the kill: ${err}`))));
  });
}

/** Returns true when the kill left a half-written segment behind (it landed inside a write). */
async function trial(mode: string, i: number, delayMs: number): Promise<boolean> {
  const dir = path.join(t.dir, `${mode}-${i}`);
  fs.cpSync(template, dir, { recursive: true });
  await runAndKill(mode, dir, i + 1, delayMs);
  const midWrite = fs.readdirSync(path.join(dir, 'segments')).some((n) => n.endsWith('.tmp'));
  const store = openStore(dir, { lockTimeoutMs: 5000 });
  try {
    const v = store.verify();
    assert.equal(v.ok, true, `${mode} trial ${i}: ${JSON.stringify(v.problems)}`);
    for (const [id, view] of base) {
      if (mode === 'gc' && id === 1 && !store.get(1)) continue; // the child deleted it on purpose
      assertSameView(materializeToMap(store, id), view, `${mode} trial ${i} checkpoint ${id}`);
    }
    for (const c of store.list()) materializeToMap(store, c.id); // every checkpoint, the child's too, reads back
    // The dead child's writer lock is taken over: writing works at once.
    writeComplete(store, 1, null, new Map([[0x42, Buffer.alloc(4096, 1)]]), [mapping(0x42, 1)]);
    assert.equal(fs.readdirSync(path.join(dir, 'segments')).filter((n) => n.endsWith('.tmp')).length, 0);
    return midWrite;
  } finally {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

for (const [mode, trials] of Object.entries(TRIALS)) {
  test(`SIGKILL during ${mode} (${trials} trials): nothing earlier is lost and verify is clean`, async (tc) => {
    const r = rng(mode.length * 1000 + 7);
    const delays = Array.from({ length: trials }, () => Math.floor(r() * 120));
    let midWrite = 0;
    // A few trials at once: each spends most of its time starting a process and waiting for the kill.
    for (let i = 0; i < trials; i += PARALLEL) {
      const hits = await Promise.all(delays.slice(i, i + PARALLEL).map((d, k) => trial(mode, i + k, d)));
      midWrite += hits.filter(Boolean).length;
    }
    tc.diagnostic(`${midWrite} of ${trials} kills landed while a segment was being written`);
    if (mode === 'commit' || mode === 'flatten') assert.ok(midWrite > 0, `no kill landed inside a ${mode}: the test would prove nothing`);
  });
}

test('three processes writing to one store at once (commits and gc) never corrupt it', async () => {
  const dir = path.join(t.dir, 'concurrent');
  fs.cpSync(template, dir, { recursive: true });
  const runs = [1, 2, 3].map((seed) => new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, [childJs, 'commit5', dir, streamFile, String(seed)], {
      env: { ...process.env, NODE_PATH: path.join(root, 'node_modules') }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d) => { err += String(d); });
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`writer ${seed} exited ${code}: ${err}`))));
  }));
  await Promise.all(runs);
  const store = openStore(dir);
  try {
    assert.deepEqual(store.verify(), { ok: true, problems: [] });
    const mine = store.list().filter((c) => c.id > 4);
    assert.equal(mine.length, 15);
    assert.equal(store.listTargets().length, 2 + 3);
    for (const c of mine) assert.equal(materializeToMap(store, c.id).size, 64);
    for (const [id, view] of base) assertSameView(materializeToMap(store, id), view, `concurrent: checkpoint ${id}`);
  } finally {
    store.close();
  }
});
