import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { openStore } from '../../electron/engine/store';
import { PAGE, assertSameView, mapping, materializeToMap, randomPage, rng, tempDir, writeComplete, type View } from './model';

const target = { pid: 300, startTime: '777', exe: '/bin/fixture', cmdline: ['fixture'] };

function dedupRows(dir: string): number {
  const db = new Database(path.join(dir, 'dedup.sqlite'), { readonly: true });
  try {
    return (db.prepare('SELECT COUNT(*) AS n FROM pages').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

function randomView(seed: number, start: number, pages: number): View {
  const r = rng(seed);
  const v: View = new Map();
  for (let i = 0; i < pages; i++) v.set(start + i, i % 5 === 0 ? Buffer.alloc(PAGE) : randomPage(r));
  return v;
}

test('a commit leaves its dedup rows until the engine is idle; the next checkpoint of the same handle still finds them', async () => {
  const t = tempDir();
  try {
    const store = openStore(t.dir);
    const tg = store.upsertTarget(target);
    const view = randomView(1, 0x1000, 500);
    const id1 = writeComplete(store, tg.id, null, view, [mapping(0x1000, 500)]);
    const written = store.get(id1)!.stats.pagesWritten;
    assert.equal(written, 400);
    // Visible and whole without its dedup rows (they are an accelerator).
    assertSameView(materializeToMap(store, id1), view, 'committed');
    assert.equal(dedupRows(t.dir), 0, 'no dedup row before the engine is idle');
    // The same pages again, before any idle moment: the look-up inserts the pending rows first.
    const tg2 = store.upsertTarget({ ...target, pid: 301 });
    const id2 = writeComplete(store, tg2.id, null, view, [mapping(0x1000, 500)]);
    assert.equal(store.get(id2)!.stats.pagesWritten, 0, 'every page deduplicated against the first checkpoint');
    assert.equal(dedupRows(t.dir), written);
    // A third checkpoint with new pages: its rows go in at the next turn of the event loop.
    const id3 = writeComplete(store, tg2.id, null, randomView(2, 0x9000, 100), [mapping(0x9000, 100)]);
    const more = store.get(id3)!.stats.pagesWritten;
    assert.equal(dedupRows(t.dir), written);
    await new Promise((r) => setImmediate(r));
    assert.equal(dedupRows(t.dir), written + more);
    store.close();
  } finally {
    t.cleanup();
  }
});

test('close() inserts the dedup rows a commit left, so another handle dedups against them', () => {
  const t = tempDir();
  try {
    const a = openStore(t.dir);
    const view = randomView(3, 0x4000, 300);
    const id = writeComplete(a, a.upsertTarget(target).id, null, view, [mapping(0x4000, 300)]);
    const written = a.get(id)!.stats.pagesWritten;
    a.close(); // the one-shot CLI's path: no idle moment between the commit and the close
    assert.equal(dedupRows(t.dir), written);
    const b = openStore(t.dir);
    const id2 = writeComplete(b, b.upsertTarget({ ...target, pid: 302 }).id, null, view, [mapping(0x4000, 300)]);
    assert.equal(b.get(id2)!.stats.pagesWritten, 0);
    assertSameView(materializeToMap(b, id2), view, 'deduplicated copy');
    b.close();
  } finally {
    t.cleanup();
  }
});

test('holdIdleWork: the deferred dedup rows wait while a send holds the idle work, and go in at the next idle moment after its release', async () => {
  const t = tempDir();
  try {
    const store = openStore(t.dir);
    const release = store.holdIdleWork();
    const id = writeComplete(store, store.upsertTarget(target).id, null, randomView(4, 0x2000, 200), [mapping(0x2000, 200)]);
    const written = store.get(id)!.stats.pagesWritten;
    // What a send's awaits look like to the store: turns of the event loop.
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    assert.equal(dedupRows(t.dir), 0, 'no dedup insert while the idle work is held');
    release();
    release(); // twice is once
    assert.equal(dedupRows(t.dir), 0, 'not inside the release itself: at the next idle moment');
    await new Promise((r) => setImmediate(r));
    assert.equal(dedupRows(t.dir), written);
    // A look-up while held still flushes first (the table must be complete for dedup).
    const again = store.holdIdleWork();
    const id2 = writeComplete(store, store.upsertTarget({ ...target, pid: 303 }).id, null, randomView(4, 0x2000, 200), [mapping(0x2000, 200)]);
    assert.equal(store.get(id2)!.stats.pagesWritten, 0, 'deduplicated against the first while held');
    again();
    store.close();
  } finally {
    t.cleanup();
  }
});
