/**
 * Deferred durability (Store.deferDurability, a migration's last round): a checkpoint committed
 * meanwhile is visible to its own handle only and not fsynced; settle() makes it durable and
 * visible to every handle; discard() and a crash (a real SIGKILL of the writing process) throw it
 * away whole, leave every earlier checkpoint exactly as it was, and leave no segment behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { buildSync } from 'esbuild';
import { openStore } from '../../electron/engine/store';
import { assertSameView, mapping, materializeToMap, randomPage, rng, tempDir, writeComplete, type View } from './model';

const root = path.resolve(import.meta.dirname, '../..');

function base(dir: string): { tg: number; views: Map<number, View> } {
  const store = openStore(dir);
  try {
    const r = rng(5);
    const tg = store.upsertTarget({ pid: 9, startTime: '9', exe: '/child', cmdline: [] });
    const views = new Map<number, View>();
    let parent: number | null = null;
    for (let k = 0; k < 2; k++) {
      const v: View = new Map();
      for (let i = 0; i < 64; i++) v.set(0x9000 + i, randomPage(r));
      parent = writeComplete(store, tg.id, parent, v, [mapping(0x9000, 64)]);
      views.set(parent, v);
    }
    return { tg: tg.id, views };
  } finally { store.close(); }
}

function segments(dir: string): string[] {
  return fs.readdirSync(path.join(dir, 'segments')).sort();
}

test('a deferred commit is seen by its own handle only until settle(); then by every handle, durable and verified', () => {
  const t = tempDir();
  try {
    const { tg, views } = base(t.dir);
    const a = openStore(t.dir);
    const b = openStore(t.dir);
    try {
      let d: { settle(): void; discard(): void } | null = null;
      const v: View = new Map([[0x9000, randomPage(rng(1))]]);
      const id = writeComplete(a, tg, Math.max(...views.keys()), v, [mapping(0x9000, 64)], () => { d = a.deferDurability(); });
      assert.ok(a.get(id), 'its own handle sees it');
      assert.equal(b.get(id), null, 'another handle does not');
      assert.ok(a.exportStreamBytes(id, 'one', { continues: 1, maxBytes: 1 << 20 }).bytes > 0, 'it exports at once');
      assert.throws(() => a.begin({ targetId: tg, parentId: id, mode: 'incremental', dirtyTracking: 'hash', coverage: 'complete' }), /finishing a migration's last round/);
      d!.settle();
      assert.ok(b.get(id), 'after settle every handle sees it');
      assert.deepEqual(b.verify().problems, []);
      for (const [cid, view] of views) assertSameView(materializeToMap(b, cid), view, `checkpoint ${cid}`);
      assert.equal(materializeToMap(b, id).get(0x9000)!.equals(v.get(0x9000)!), true);
    } finally { a.close(); b.close(); }
  } finally { t.cleanup(); }
});

test('discard() and a close without settle() throw the deferred commit away whole: no checkpoint, no segment, the earlier ones intact', () => {
  const t = tempDir();
  try {
    const { tg, views } = base(t.dir);
    const before = segments(t.dir);
    for (const how of ['discard', 'close'] as const) {
      const a = openStore(t.dir);
      let d: { settle(): void; discard(): void } | null = null;
      const id = writeComplete(a, tg, Math.max(...views.keys()), new Map([[0x9001, randomPage(rng(2))]]), [mapping(0x9000, 64)], () => { d = a.deferDurability(); });
      if (how === 'discard') d!.discard();
      a.close();
      const c = openStore(t.dir);
      try {
        assert.equal(c.get(id), null, `${how}: the checkpoint is gone`);
        assert.deepEqual(c.list().map((x) => x.id), [...views.keys()]);
        assert.deepEqual(c.verify().problems, []);
        for (const [cid, view] of views) assertSameView(materializeToMap(c, cid), view, `${how}: checkpoint ${cid}`);
      } finally { c.close(); }
      assert.deepEqual(segments(t.dir), before, `${how}: its segment is removed`);
    }
  } finally { t.cleanup(); }
});

test('the writing process killed (SIGKILL) after a deferred commit, before settle(): the store opens clean, the checkpoint never existed, no segment is left', async () => {
  const t = tempDir();
  try {
    const childJs = path.join(t.dir, 'child.cjs');
    buildSync({
      entryPoints: [path.join(root, 'test/store/crash-child.ts')], bundle: true, platform: 'node', format: 'cjs', target: 'node20',
      outfile: childJs, external: ['better-sqlite3', '@napi-rs/blake-hash', 'lz4-napi', 'koffi'], logLevel: 'error',
    });
    const dir = path.join(t.dir, 'store');
    const { views } = base(dir);
    const before = segments(dir);
    const committed = await new Promise<number>((resolve, reject) => {
      const child = spawn(process.execPath, [childJs, 'deferred', dir, '', '3'], { env: { ...process.env, NODE_PATH: path.join(root, 'node_modules') }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      let id = 0;
      child.stderr.on('data', (d) => { err += String(d); });
      child.stdout.on('data', (d) => {
        out += String(d);
        const m = /committed (\d+)/.exec(out);
        if (m && !id) { id = Number(m[1]); child.kill('SIGKILL'); }
      });
      child.on('exit', (code, signal) => (signal === 'SIGKILL' && id ? resolve(id) : reject(new Error(`child exited ${code}: ${err}`))));
    });
    assert.ok(segments(dir).length > before.length, 'the killed process had written its segment');
    const s = openStore(dir);
    try {
      assert.equal(s.get(committed), null, 'the deferred checkpoint never became visible');
      assert.deepEqual(s.list().map((x) => x.id), [...views.keys()]);
      assert.deepEqual(s.verify().problems, []);
      for (const [cid, view] of views) assertSameView(materializeToMap(s, cid), view, `checkpoint ${cid}`);
    } finally { s.close(); }
    assert.deepEqual(segments(dir), before, 'its segment, still pending, was removed on open');
  } finally { t.cleanup(); }
});
