import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openStore } from '../../electron/engine/store';
import type { Store } from '../../electron/engine/store/api';
import { PAGE, assertSameView, mapping, materializeToMap, randomPage, rng, tempDir, writeComplete, type View } from './model';

const target = { pid: 200, startTime: '777', exe: '/bin/fixture', cmdline: ['fixture'] };

function chainOf(store: Store, seed: number, n: number, pages = 128): { ids: number[]; views: View[] } {
  const tg = store.upsertTarget(target);
  const r = rng(seed);
  let v: View = new Map();
  for (let i = 0; i < pages; i++) v.set(0x400 + i, r() < 0.3 ? Buffer.alloc(PAGE) : randomPage(r));
  const ids: number[] = [];
  const views: View[] = [];
  for (let k = 0; k < n; k++) {
    if (k > 0) {
      v = new Map(v);
      for (let i = 0; i < pages / 4; i++) v.set(0x400 + Math.floor(r() * pages), randomPage(r));
    }
    views.push(v);
    ids.push(writeComplete(store, tg.id, ids[k - 1] ?? null, v, [mapping(0x400, pages)]));
  }
  return { ids, views };
}

test('gc reclaims the bytes of deleted checkpoints and every remaining one still materializes', () => {
  const t = tempDir();
  try {
    const store = openStore(t.dir);
    const { ids, views } = chainOf(store, 11, 5);
    const before = store.stats().storeBytes;
    store.remove([ids[0], ids[1], ids[2]]);
    const g = store.gc();
    assert.ok(g.segmentsRewritten > 0);
    assert.ok(g.bytesReclaimed > 50 * PAGE, `reclaimed ${g.bytesReclaimed}`);
    assert.ok(store.stats().storeBytes < before);
    for (const i of [3, 4]) assertSameView(materializeToMap(store, ids[i]), views[i], `after gc #${i}`);
    assert.equal(store.verify().ok, true, JSON.stringify(store.verify().problems));
    // The index can still be rebuilt from what gc left behind.
    store.reindex();
    for (const i of [3, 4]) assertSameView(materializeToMap(store, ids[i]), views[i], `after gc+reindex #${i}`);
    assert.deepEqual(store.gc(), { bytesReclaimed: 0, segmentsRewritten: 0 });
    store.close();
  } finally {
    t.cleanup();
  }
});

test('reindex rebuilds the index from segments alone: same checkpoints, labels, pins and pages', () => {
  const t = tempDir();
  try {
    let store = openStore(t.dir);
    const { ids, views } = chainOf(store, 12, 4);
    store.setLabel(ids[1], 'labelled');
    store.setPinned(ids[2], true);
    store.remove([ids[0]]);
    const listBefore = store.list();
    store.close();
    for (const f of fs.readdirSync(t.dir)) if (f.includes('sqlite')) fs.rmSync(path.join(t.dir, f));
    store = openStore(t.dir);
    assert.deepEqual(store.list(), listBefore, 'an index lost entirely is rebuilt on open');
    const r = store.reindex();
    assert.equal(r.checkpoints, 3);
    assert.deepEqual(store.list(), listBefore);
    for (const i of [1, 2, 3]) assertSameView(materializeToMap(store, ids[i]), views[i], `reindexed #${i}`);
    // New ids continue above the old ones.
    const again = writeComplete(store, listBefore[0].targetId, ids[3], views[3], [mapping(0x400, 128)]);
    assert.ok(again > ids[3]);
    store.close();
  } finally {
    t.cleanup();
  }
});

test('verify names a flipped byte and exactly the checkpoints it affects; unaffected ones still materialize', () => {
  const t = tempDir();
  try {
    const store = openStore(t.dir);
    const tg = store.upsertTarget(target);
    const r = rng(13);
    const a: View = new Map();
    for (let i = 0; i < 64; i++) a.set(i, randomPage(r));
    const idA = writeComplete(store, tg.id, null, a, [mapping(0, 64)]);
    const b: View = new Map();
    for (let i = 0; i < 64; i++) b.set(0x1000 + i, randomPage(r));
    const idB = writeComplete(store, tg.id, null, b, [mapping(0x1000, 64)]);
    const c: View = new Map(b);
    c.set(0x1000, randomPage(r));
    const idC = writeComplete(store, tg.id, idB, c, [mapping(0x1000, 64)]);
    assert.equal(store.verify().ok, true);
    // Flip one byte inside the first block of B's segment (a page C still inherits).
    const segs = fs.readdirSync(path.join(t.dir, 'segments')).sort();
    const segB = path.join(t.dir, 'segments', segs[1]);
    const fd = fs.openSync(segB, 'r+');
    const one = Buffer.alloc(1);
    fs.readSync(fd, one, 0, 1, 64 + 32 + 5 * PAGE + 17);
    one[0] ^= 0x40;
    fs.writeSync(fd, one, 0, 1, 64 + 32 + 5 * PAGE + 17);
    fs.closeSync(fd);
    const v = store.verify();
    assert.equal(v.ok, false);
    assert.equal(v.problems.length, 1);
    assert.match(v.problems[0].what, /block 0 checksum/);
    assert.match(v.problems[0].where, new RegExp(segs[1]));
    assert.deepEqual(v.problems[0].affects, [idB, idC]);
    assertSameView(materializeToMap(store, idA), a, 'unaffected checkpoint');
    store.close();
  } finally {
    t.cleanup();
  }
});

test('diff counts changed, added and removed pages per mapping', () => {
  const t = tempDir();
  try {
    const store = openStore(t.dir);
    const tg = store.upsertTarget(target);
    const r = rng(14);
    const a: View = new Map();
    for (let i = 0; i < 20; i++) a.set(0x10 + i, randomPage(r));
    const idA = writeComplete(store, tg.id, null, a, [mapping(0x10, 20, '/a')]);
    const b: View = new Map(a);
    b.set(0x10, randomPage(r)); b.set(0x11, randomPage(r)); // changed
    b.set(0x12, Buffer.from(a.get(0x12)!)); // same bytes: not changed
    b.delete(0x20); b.delete(0x21); b.delete(0x22); // removed
    for (let i = 0; i < 4; i++) b.set(0x50 + i, randomPage(r)); // added in a new mapping
    const idB = writeComplete(store, tg.id, idA, b, [mapping(0x10, 16, '/a'), mapping(0x50, 4, '/b')]);
    const d = store.diff(idA, idB);
    assert.equal(d.changedPages, 2);
    assert.equal(d.addedPages, 4);
    assert.equal(d.removedPages, 3);
    assert.equal(d.bytes, 6 * PAGE);
    const pb = d.mappings.find((m) => m.path === '/b')!;
    assert.equal(pb.addedPages, 4);
    assert.equal(store.diff(idB, idB).changedPages, 0);
    store.close();
  } finally {
    t.cleanup();
  }
});

test('incremental from two fulls: b rebased onto a stores only differences and both materialize identically', () => {
  const t = tempDir();
  try {
    const store = openStore(t.dir);
    const tg = store.upsertTarget(target);
    const r = rng(15);
    const a: View = new Map();
    for (let i = 0; i < 100; i++) a.set(0x100 + i, r() < 0.2 ? Buffer.alloc(PAGE) : randomPage(r));
    const idA = writeComplete(store, tg.id, null, a, [mapping(0x100, 100)]);
    const b: View = new Map(a);
    for (let i = 0; i < 7; i++) b.set(0x100 + i * 3, randomPage(r));
    b.delete(0x100 + 99);
    const idB = writeComplete(store, tg.id, null, b, [mapping(0x100, 99)]);
    assert.equal(store.get(idB)!.parentId, null);
    const res = store.rebase(idB, idA);
    assert.equal(res.pagesChanged, 8);
    assert.equal(store.get(idB)!.parentId, idA);
    assert.equal(store.get(idB)!.mode, 'incremental');
    assertSameView(materializeToMap(store, idA), a, 'a');
    assertSameView(materializeToMap(store, idB), b, 'b');
    assert.throws(() => store.rebase(idA, idB), /descends/);
    store.reindex();
    assertSameView(materializeToMap(store, idB), b, 'b after reindex');
    store.close();
  } finally {
    t.cleanup();
  }
});

test('streams: one (with chain), flattened and whole chain round-trip losslessly into another store', () => {
  const t = tempDir();
  try {
    const src = openStore(path.join(t.dir, 'src'));
    const { ids, views } = chainOf(src, 16, 4);
    const dst = openStore(path.join(t.dir, 'dst'));
    const one = src.exportStream(ids[2], path.join(t.dir, 'one.stream'), 'one');
    assert.deepEqual(one.checkpoints, ids.slice(0, 3));
    const r1 = dst.importStream(one.file);
    assert.equal(r1.ids.length, 3);
    for (let i = 0; i < 3; i++) assertSameView(materializeToMap(dst, r1.ids[i]), views[i], `one #${i}`);
    const flat = src.exportStream(ids[3], path.join(t.dir, 'flat.stream'), 'flattened');
    const uniqueBefore = dst.stats().uniquePages;
    const r2 = dst.importStream(flat.file);
    assert.equal(r2.ids.length, 1);
    assert.equal(dst.get(r2.ids[0])!.parentId, null);
    dst.remove(r1.ids);
    dst.gc();
    assert.ok(dst.stats().uniquePages <= uniqueBefore, 'the flattened import stored no page twice');
    assertSameView(materializeToMap(dst, r2.ids[0]), views[3], 'flattened');
    // chain -> one stream -> a fresh store -> same segments' worth of checkpoints -> stream again: identical manifests' pages.
    const chain = src.exportStream(ids[0], path.join(t.dir, 'chain.stream'), 'chain');
    assert.deepEqual(chain.checkpoints, ids);
    const back = openStore(path.join(t.dir, 'back'));
    const r3 = back.importStream(chain.file);
    for (let i = 0; i < 4; i++) assertSameView(materializeToMap(back, r3.ids[i]), views[i], `chain #${i}`);
    assert.deepEqual(back.list().map((c) => c.parentId), [null, r3.ids[0], r3.ids[1], r3.ids[2]]);
    const again = back.exportStream(r3.ids[0], path.join(t.dir, 'chain2.stream'), 'chain');
    assert.equal(again.pages, chain.pages);
    assert.equal(again.bytes, chain.bytes);
    for (const s of [src, dst, back]) s.close();
  } finally {
    t.cleanup();
  }
});

test('import refuses truncated, corrupted and foreign files with a clear error and imports nothing', () => {
  const t = tempDir();
  try {
    const src = openStore(path.join(t.dir, 'src'));
    const { ids } = chainOf(src, 17, 2, 16);
    const s = src.exportStream(ids[1], path.join(t.dir, 'x.stream'));
    const bytes = fs.readFileSync(s.file);
    const dst = openStore(path.join(t.dir, 'dst'));
    const cases: [string, Buffer, RegExp][] = [
      ['truncated', bytes.subarray(0, bytes.length - 100), /size does not match/],
      // A page byte (the footer's checksum covers the page hashes: test/store/stream-checksum.test.ts).
      ['flipped', Buffer.from(bytes.map((b, i) => (i === 4000 ? b ^ 1 : b))), /page \d+ does not match its hash/],
      ['foreign', Buffer.from('hello world, not a stream at all, certainly not; just some text that is long enough to pass the size check'), /stream magic/],
      ['empty', Buffer.alloc(0), /too short/],
    ];
    for (const [name, buf, re] of cases) {
      const f = path.join(t.dir, name);
      fs.writeFileSync(f, buf);
      assert.throws(() => dst.importStream(f), (e: unknown) => e instanceof Error && re.test(e.message) && /Nothing was imported/.test(e.message), name);
    }
    assert.equal(dst.list().length, 0);
    assert.deepEqual(fs.readdirSync(path.join(t.dir, 'dst', 'segments')), []);
    src.close();
    dst.close();
  } finally {
    t.cleanup();
  }
});

test('a chain spread over more segment files than the reader keeps open still reads back, with bounded descriptors', () => {
  const t = tempDir();
  try {
    const store = openStore(t.dir);
    const tg = store.upsertTarget(target);
    const r = rng(18);
    let v: View = new Map([[0x10, randomPage(r)]]);
    let id = writeComplete(store, tg.id, null, v, [mapping(0x10, 200)]);
    for (let i = 1; i < 150; i++) {
      v = new Map(v);
      v.set(0x10 + i, randomPage(r));
      id = writeComplete(store, tg.id, id, v, [mapping(0x10, 200)]);
    }
    const fds = (): number => fs.readdirSync('/proc/self/fd').length;
    const before = fds();
    assertSameView(materializeToMap(store, id), v, 'last of 150');
    assert.ok(fds() - before <= 128, `descriptors grew by ${fds() - before}`);
    store.close();
  } finally {
    t.cleanup();
  }
});

test('a view cached by one store handle is dropped when another handle (another process) runs gc', () => {
  const t = tempDir();
  try {
    const w = openStore(t.dir);
    const tg = w.upsertTarget(target);
    const r = rng(19);
    const v1: View = new Map();
    for (let i = 0; i < 100; i++) v1.set(0x400 + i, randomPage(r));
    const id1 = writeComplete(w, tg.id, null, v1, [mapping(0x400, 100)]);
    const v2: View = new Map(v1);
    for (let i = 0; i < 80; i++) v2.set(0x400 + i, randomPage(r)); // 80% of the full replaced
    const id2 = writeComplete(w, tg.id, id1, v2, [mapping(0x400, 100)]);
    w.close();
    const a = openStore(t.dir);
    // diff of a checkpoint with itself caches its view without opening any segment file, so a
    // stale view cannot be rescued by a descriptor still open on a file gc has deleted.
    assert.equal(a.diff(id2, id2).changedPages, 0);
    const b = openStore(t.dir);
    b.remove([id1]);
    assert.ok(b.gc().segmentsRewritten > 0);
    assert.ok(!fs.existsSync(path.join(t.dir, 'segments', '0000000001.seg')), 'gc moved the full\'s live pages and deleted it');
    b.close();
    assertSameView(materializeToMap(a, id2), v2, 'after the other handle compacted');
    assert.equal(a.get(id1), null);
    assert.throws(() => a.materialize(id1), /does not exist/);
    a.close();
  } finally {
    t.cleanup();
  }
});
