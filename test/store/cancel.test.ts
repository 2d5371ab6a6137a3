/**
 * Cancellation of the store's long operations on a real store: a signal whose `aborted` turns true
 * after its Nth read stops export, import, verify and gc at every one of their checks in turn, and
 * each time the store (and the export's destination) must be exactly as before.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openStore } from '../../electron/engine/store';
import type { Store } from '../../electron/engine/store/api';
import { storeHandlers } from '../../electron/api/handlers/store';
import type { HandlerContext } from '../../electron/api/context';
import { StasisError } from '../../shared/errors';
import { PAGE, assertSameView, mapping, materializeToMap, randomPage, rng, tempDir, writeComplete, type View } from './model';

const target = { pid: 300, startTime: '888', exe: '/bin/fixture', cmdline: ['fixture'] };

/** A signal that reads as aborted from its (after+1)th read on; reads says how often it was checked. */
function abortAfter(after: number): AbortSignal & { reads: number } {
  const s = { reads: 0, get aborted(): boolean { return ++s.reads > after; } };
  return s as unknown as AbortSignal & { reads: number };
}

/** How many times op checks its signal when it is never cancelled. */
function checksOf(op: (signal: AbortSignal) => unknown): number {
  const s = abortAfter(Infinity);
  op(s);
  return s.reads;
}

function assertCancelled(op: () => unknown, what: string): void {
  assert.throws(op, (e: unknown) => e instanceof StasisError && e.code === 'CANCELLED' && /was cancelled; /.test(e.message), what);
}

/** Enough pages for several 256-page export/import batches and several 64-page segment blocks. */
function chainOf(store: Store, seed: number, n: number, pages = 700): { ids: number[]; views: View[] } {
  const tg = store.upsertTarget(target);
  const r = rng(seed);
  let v: View = new Map();
  for (let i = 0; i < pages; i++) v.set(0x400 + i, r() < 0.1 ? Buffer.alloc(PAGE) : randomPage(r));
  const ids: number[] = [];
  const views: View[] = [];
  for (let k = 0; k < n; k++) {
    if (k > 0) {
      v = new Map(v);
      for (let i = 0; i < pages / 2; i++) v.set(0x400 + Math.floor(r() * pages), randomPage(r));
    }
    views.push(v);
    ids.push(writeComplete(store, tg.id, ids[k - 1] ?? null, v, [mapping(0x400, pages)]));
  }
  return { ids, views };
}

/** Every segment file with its size: what a cancelled operation must leave exactly as it was (the SQLite files' sizes move with their WAL). */
const segments = (store: Store): string[] =>
  fs.readdirSync(path.join(store.dir, 'segments')).sort().map((n) => `${n}:${fs.statSync(path.join(store.dir, 'segments', n)).size}`);

test('a cancelled export stops at each of its checks and leaves no file, partial or temporary', () => {
  const t = tempDir();
  const out = tempDir('stasis-export-');
  try {
    const store = openStore(t.dir);
    const { ids, views } = chainOf(store, 21, 3);
    const file = path.join(out.dir, 'x.stasis');
    const n = checksOf((signal) => store.exportStream(ids[2], file, 'chain', { signal }));
    fs.rmSync(file);
    assert.ok(n >= 6, `export checked its signal only ${n} times`);
    for (let k = 0; k < n; k++) {
      assertCancelled(() => store.exportStream(ids[2], file, 'chain', { signal: abortAfter(k) }), `export cancelled after ${k} checks`);
      assert.deepEqual(fs.readdirSync(out.dir), [], `export cancelled after ${k} checks left files behind`);
    }
    // Still exports completely afterwards, and the stream imports to the same views.
    store.exportStream(ids[2], file, 'chain');
    const dest = openStore(path.join(out.dir, 'dest'));
    const got = dest.importStream(file).ids;
    for (let i = 0; i < 3; i++) assertSameView(materializeToMap(dest, got[i]), views[i], `imported #${i}`);
    dest.close();
    store.close();
  } finally {
    t.cleanup();
    out.cleanup();
  }
});

test('a cancelled import imports nothing at any of its checks, and the same file imports afterwards', () => {
  const src = tempDir();
  const t = tempDir();
  try {
    const a = openStore(src.dir);
    const { ids, views } = chainOf(a, 22, 3);
    const file = path.join(src.dir, 'x.stasis');
    a.exportStream(ids[2], file, 'one');
    a.close();
    const store = openStore(t.dir);
    // The destination already holds some of the same pages (dedup path) and a checkpoint of its own.
    const own = writeComplete(store, store.upsertTarget(target).id, null, views[0], [mapping(0x400, 700)]);
    const listBefore = JSON.stringify(store.list());
    const segsBefore = segments(store);
    const probeDir = tempDir();
    let n = 0;
    try {
      const probe = openStore(probeDir.dir);
      n = checksOf((signal) => probe.importStream(file, { signal }));
      probe.close();
    } finally {
      probeDir.cleanup();
    }
    // One pass over the file (stream-import.ts): a check per MiB read and one before publishing.
    assert.ok(n >= 5, `import checked its signal only ${n} times`);
    for (let k = 0; k < n; k++) {
      assertCancelled(() => store.importStream(file, { signal: abortAfter(k) }), `import cancelled after ${k} checks`);
      assert.equal(JSON.stringify(store.list()), listBefore, `import cancelled after ${k} checks changed the checkpoints`);
      assert.deepEqual(segments(store), segsBefore, `import cancelled after ${k} checks left segment files`);
    }
    assert.equal(store.verify().ok, true, JSON.stringify(store.verify().problems));
    const got = store.importStream(file).ids;
    assert.equal(got.length, 3);
    for (let i = 0; i < 3; i++) assertSameView(materializeToMap(store, got[i]), views[i], `imported #${i}`);
    assertSameView(materializeToMap(store, own), views[0], 'own checkpoint');
    store.close();
  } finally {
    src.cleanup();
    t.cleanup();
  }
});

test('a cancelled verify stops at each of its checks; the store still verifies clean', () => {
  const t = tempDir();
  try {
    const store = openStore(t.dir);
    chainOf(store, 23, 3);
    const n = checksOf((signal) => assert.equal(store.verify({ signal }).ok, true));
    // One per segment, per block and per checkpoint: 3 segments of several blocks, 3 checkpoints.
    assert.ok(n >= 3 + 3 + 3 * 5, `verify checked its signal only ${n} times`);
    for (let k = 0; k < n; k++) assertCancelled(() => store.verify({ signal: abortAfter(k) }), `verify cancelled after ${k} checks`);
    assert.equal(store.verify().ok, true, JSON.stringify(store.verify().problems));
    store.close();
  } finally {
    t.cleanup();
  }
});

test('a cancelled gc leaves every checkpoint intact at each of its checks; a later gc completes', () => {
  const t = tempDir();
  try {
    const store = openStore(t.dir);
    const { ids, views } = chainOf(store, 24, 5);
    store.remove([ids[0], ids[1], ids[2]]);
    const segsBefore = segments(store);
    // Count gc's checks on a copy, so this store still has everything to compact.
    const copy = tempDir();
    fs.cpSync(t.dir, copy.dir, { recursive: true });
    let n = 0;
    try {
      const c = openStore(copy.dir);
      n = checksOf((signal) => assert.ok(c.gc({ signal }).segmentsRewritten > 0));
      c.close();
    } finally {
      copy.cleanup();
    }
    assert.ok(n >= 5, `gc checked its signal only ${n} times`);
    for (let k = 0; k < n; k++) {
      assertCancelled(() => store.gc({ signal: abortAfter(k) }), `gc cancelled after ${k} checks`);
      assert.deepEqual(segments(store), segsBefore, `gc cancelled after ${k} checks changed the segment files`);
      for (const i of [3, 4]) assertSameView(materializeToMap(store, ids[i]), views[i], `gc cancelled after ${k} checks: #${ids[i]}`);
    }
    assert.equal(store.verify().ok, true, JSON.stringify(store.verify().problems));
    const g = store.gc();
    assert.ok(g.segmentsRewritten > 0 && g.bytesReclaimed > 0, JSON.stringify(g));
    for (const i of [3, 4]) assertSameView(materializeToMap(store, ids[i]), views[i], `after gc #${ids[i]}`);
    store.close();
  } finally {
    t.cleanup();
  }
});

test('the store handlers pass ctx.signal on: an aborted AbortController cancels export, import, verify and gc', async () => {
  const t = tempDir();
  const out = tempDir('stasis-export-');
  const store = openStore(t.dir);
  try {
    const { ids } = chainOf(store, 25, 2, 200);
    store.remove([ids[0]]);
    const file = path.join(out.dir, 'x.stasis');
    store.exportStream(ids[1], file, 'one');
    const ac = new AbortController();
    ac.abort();
    const ctx: HandlerContext = { storeDir: t.dir, store: () => store, emit: () => undefined, signal: ac.signal };
    const listBefore = JSON.stringify(store.list());
    const cancelled = async (p: () => unknown, what: string): Promise<void> => {
      await assert.rejects(async () => { await p(); }, (e: unknown) => e instanceof StasisError && e.code === 'CANCELLED', what);
    };
    await cancelled(() => storeHandlers['checkpoints.export']({ id: ids[1], file: path.join(out.dir, 'y.stasis'), how: 'one' }, ctx), 'export');
    assert.equal(fs.existsSync(path.join(out.dir, 'y.stasis')), false);
    await cancelled(() => storeHandlers['checkpoints.import']({ file }, ctx), 'import');
    await cancelled(() => storeHandlers['store.verify']({}, ctx), 'verify');
    await cancelled(() => storeHandlers['store.gc']({}, ctx), 'gc');
    assert.equal(JSON.stringify(store.list()), listBefore);
    // Without a signal the same calls run to the end.
    const live: HandlerContext = { ...ctx, signal: new AbortController().signal };
    assert.equal((await storeHandlers['store.verify']({}, live)).ok, true);
    assert.equal(typeof (await storeHandlers['store.gc']({}, live)).segmentsRewritten, 'number');
  } finally {
    store.close();
    t.cleanup();
    out.cleanup();
  }
});
