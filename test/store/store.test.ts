import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openStore } from '../../electron/engine/store';
import { StasisError } from '../../shared/errors';
import { PAGE, assertSameView, makeState, mapping, materializeToMap, randomPage, rng, tempDir, writeComplete, type View } from './model';

const target = { pid: 100, startTime: '555', exe: '/bin/fixture', cmdline: ['fixture', '--x'] };

function baseView(r: () => number, start: number, pages: number): View {
  const v: View = new Map();
  const dup = randomPage(r);
  for (let i = 0; i < pages; i++) {
    const x = r();
    v.set(start + i, x < 0.3 ? Buffer.alloc(PAGE) : x < 0.4 ? dup : randomPage(r));
  }
  return v;
}

test('a full checkpoint materializes exactly what was given; zero and duplicate pages cost no bytes', () => {
  const t = tempDir();
  try {
    const store = openStore(t.dir);
    const tg = store.upsertTarget(target);
    const r = rng(1);
    const view = baseView(r, 0x1000, 300);
    const id = writeComplete(store, tg.id, null, view, [mapping(0x1000, 300)]);
    assertSameView(materializeToMap(store, id), view, 'full');
    const unique = new Set([...view.values()].filter((b) => b.some((x) => x !== 0)).map((b) => b.toString('hex'))).size;
    const info = store.get(id)!;
    assert.equal(info.stats.pagesWritten, unique);
    assert.equal(info.stats.logicalBytes, 300 * PAGE);
    assert.equal(info.parentId, null);
    assert.deepEqual(store.readPage(id, BigInt(0x1000 + 7) << 12n), view.get(0x1000 + 7));
    assert.equal(store.readPage(id, BigInt(0x9000) << 12n), null);
    assert.equal(store.getState(id).mappings[0].end, BigInt(0x1000 + 300) << 12n);
    // The same content again (another target) stores nothing new.
    const tg2 = store.upsertTarget({ ...target, pid: 101 });
    const id2 = writeComplete(store, tg2.id, null, view, [mapping(0x1000, 300)]);
    assert.equal(store.get(id2)!.stats.pagesWritten, 0);
    assertSameView(materializeToMap(store, id2), view, 'dedup full');
    store.close();
  } finally {
    t.cleanup();
  }
});

test('incrementals (complete and delta coverage) record only changes and materialize like the reference', () => {
  const t = tempDir();
  try {
    const store = openStore(t.dir);
    const tg = store.upsertTarget(target);
    const r = rng(2);
    const v1 = baseView(r, 0x2000, 200);
    const id1 = writeComplete(store, tg.id, null, v1, [mapping(0x2000, 200)]);
    // complete: change 10 pages, drop pages 150..199 (unmapped), add a new mapping.
    const v2: View = new Map([...v1].filter(([k]) => k < 0x2000 + 150));
    for (let i = 0; i < 10; i++) v2.set(0x2000 + i * 7, randomPage(r));
    for (let i = 0; i < 5; i++) v2.set(0x8000 + i, randomPage(r));
    const id2 = writeComplete(store, tg.id, id1, v2, [mapping(0x2000, 150), mapping(0x8000, 5)]);
    const info2 = store.get(id2)!;
    assert.equal(info2.parentId, id1);
    assert.ok(info2.stats.pagesWritten <= 15, `wrote ${info2.stats.pagesWritten}`);
    assertSameView(materializeToMap(store, id2), v2, 'complete incremental');
    assertSameView(materializeToMap(store, id1), v1, 'parent untouched');
    // delta: give only 3 changed pages + zero a page; mapping at 0x8000 shrinks to 2 pages.
    const w = store.begin({ targetId: tg.id, parentId: id2, mode: 'incremental', dirtyTracking: 'soft-dirty', coverage: 'delta' });
    w.setState(makeState([mapping(0x2000, 150), mapping(0x8000, 2)]));
    const v3: View = new Map([...v2].filter(([k]) => k < 0x8002));
    const changed = Buffer.concat([randomPage(r), randomPage(r), randomPage(r)]);
    w.addPages(BigInt(0x2010) << 12n, changed);
    for (let i = 0; i < 3; i++) v3.set(0x2010 + i, changed.subarray(i * PAGE, (i + 1) * PAGE));
    w.addZeroPages(BigInt(0x2020) << 12n, 1);
    v3.set(0x2020, Buffer.alloc(PAGE));
    w.addAbsentPages(BigInt(0x2021) << 12n, 2);
    v3.delete(0x2021); v3.delete(0x2022);
    const id3 = w.commit().id;
    assertSameView(materializeToMap(store, id3), v3, 'delta incremental');
    assert.equal(store.get(id3)!.stats.pagesWritten, 3);
    assert.deepEqual(store.list().map((c) => c.id), [id1, id2, id3]);
    assert.equal(store.latest(tg.id)!.id, id3);
    store.close();
  } finally {
    t.cleanup();
  }
});

test('deleting any checkpoint (root, middle, newest) keeps every other one intact, also after reopening', () => {
  const t = tempDir();
  try {
    let store = openStore(t.dir);
    const tg = store.upsertTarget(target);
    const r = rng(3);
    const views: View[] = [];
    const ids: number[] = [];
    let v = baseView(r, 0x100, 120);
    for (let n = 0; n < 6; n++) {
      if (n > 0) {
        v = new Map(v);
        for (let i = 0; i < 15; i++) v.set(0x100 + Math.floor(r() * 140), r() < 0.2 ? Buffer.alloc(PAGE) : randomPage(r));
        for (let i = 0; i < 5; i++) v.delete(0x100 + Math.floor(r() * 140));
      }
      views.push(v);
      ids.push(writeComplete(store, tg.id, ids[ids.length - 1] ?? null, v, [mapping(0x100, 140)]));
    }
    store.remove([ids[2]]);
    store.remove([ids[0]]);
    store.remove([ids[5]]);
    const left = [1, 3, 4];
    assert.deepEqual(store.list().map((c) => c.id), left.map((i) => ids[i]));
    for (const i of left) assertSameView(materializeToMap(store, ids[i]), views[i], `after removes #${i}`);
    assert.equal(store.get(ids[1])!.parentId, null);
    assert.equal(store.get(ids[3])!.parentId, ids[1]);
    store.close();
    store = openStore(t.dir);
    for (const i of left) assertSameView(materializeToMap(store, ids[i]), views[i], `reopened #${i}`);
    assert.throws(() => store.remove([9999]), (e: unknown) => e instanceof StasisError && e.code === 'NOT_FOUND');
    store.close();
  } finally {
    t.cleanup();
  }
});

test('pin, label and notes persist; a pinned checkpoint is not removed', () => {
  const t = tempDir();
  try {
    let store = openStore(t.dir);
    const tg = store.upsertTarget(target);
    const id = writeComplete(store, tg.id, null, baseView(rng(4), 0, 10), [mapping(0, 10)]);
    store.setPinned(id, true);
    store.setLabel(id, 'before upgrade');
    store.setNotes(id, 'notes here');
    assert.throws(() => store.remove([id]), (e: unknown) => e instanceof StasisError && e.code === 'CONFLICT');
    store.close();
    store = openStore(t.dir);
    const c = store.get(id)!;
    assert.equal(c.pinned, true);
    assert.equal(c.label, 'before upgrade');
    assert.equal(c.notes, 'notes here');
    store.setPinned(id, false);
    store.remove([id]);
    assert.equal(store.get(id), null);
    store.close();
  } finally {
    t.cleanup();
  }
});

test('abort makes nothing visible; leftovers of a crashed commit are cleaned on open; modes are 0700/0600', () => {
  const t = tempDir();
  try {
    const dir = path.join(t.dir, 'store');
    let store = openStore(dir);
    const tg = store.upsertTarget(target);
    const w = store.begin({ targetId: tg.id, parentId: null, mode: 'full', dirtyTracking: 'hash', coverage: 'complete' });
    w.addPages(0n, randomPage(rng(5)));
    w.abort();
    w.abort();
    assert.equal(store.list().length, 0);
    const id = writeComplete(store, tg.id, null, baseView(rng(6), 0, 8), [mapping(0, 8)]);
    store.close();
    const seg = path.join(dir, 'segments');
    fs.writeFileSync(path.join(seg, '0000000099.seg'), 'half a commit');
    fs.writeFileSync(path.join(seg, '0000000098.seg.tmp'), 'half a write');
    store = openStore(dir);
    assert.ok(!fs.existsSync(path.join(seg, '0000000098.seg.tmp')), 'temp file removed');
    assert.ok(fs.existsSync(path.join(seg, '0000000099.seg')), 'an unknown segment that was never pending is kept for reindex');
    assert.match(JSON.stringify(store.verify().problems), /not in the index/);
    fs.rmSync(path.join(seg, '0000000099.seg'));
    assert.equal(store.list().length, 1);
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    assert.equal(fs.statSync(seg).mode & 0o777, 0o700);
    for (const n of fs.readdirSync(seg)) assert.equal(fs.statSync(path.join(seg, n)).mode & 0o777, 0o600, n);
    for (const n of fs.readdirSync(dir).filter((x) => x.includes('sqlite'))) assert.equal(fs.statSync(path.join(dir, n)).mode & 0o777, 0o600, n);
    assert.ok(store.get(id));
    store.close();
  } finally {
    t.cleanup();
  }
});

test('bad writer input gets clear errors', () => {
  const t = tempDir();
  try {
    const store = openStore(t.dir);
    const tg = store.upsertTarget(target);
    const w = store.begin({ targetId: tg.id, parentId: null, mode: 'full', dirtyTracking: 'hash', coverage: 'complete' });
    assert.throws(() => w.addPages(5n, Buffer.alloc(PAGE)), /page-aligned/);
    assert.throws(() => w.addPages(0n, Buffer.alloc(100)), /multiple of 4096/);
    assert.throws(() => w.commit(), /setState/);
    const w2 = store.begin({ targetId: tg.id, parentId: null, mode: 'full', dirtyTracking: 'hash', coverage: 'complete' });
    w2.setState(makeState([mapping(0, 4)]));
    w2.addPages(0n, randomPage(rng(7)));
    w2.addPages(0n, randomPage(rng(8)));
    assert.throws(() => w2.commit(), /given twice/);
    assert.equal(store.list().length, 0);
    assert.throws(() => store.begin({ targetId: 77, parentId: null, mode: 'full', dirtyTracking: 'hash', coverage: 'complete' }), /Target 77/);
    store.close();
  } finally {
    t.cleanup();
  }
});

test('pre-copy rounds: pages taken back and given again in later rounds, over many records, commit sorted and merged and materialize exactly', () => {
  const t = tempDir();
  try {
    const store = openStore(t.dir);
    const tg = store.upsertTarget(target);
    const r = rng(11);
    const start = 0x4000;
    const pages = 3000;
    const v = baseView(r, start, pages); // zero, duplicate and distinct pages mixed: ~1500 records
    const w = store.begin({ targetId: tg.id, parentId: null, mode: 'full', dirtyTracking: 'hash', coverage: 'complete' });
    w.setState(makeState([mapping(start, pages)]));
    for (let p = 0; p < pages; p += 100) w.addPages(BigInt(start + p) << 12n, Buffer.concat([...Array(100).keys()].map((i) => v.get(start + p + i)!)));
    for (let round = 0; round < 4; round++) {
      // A round's dirty pages: scattered runs taken back; most given again, some not (unmapped meanwhile).
      const runs: { vpn: number; count: number }[] = [];
      for (let vpn = start + Math.floor(r() * 40); vpn < start + pages; vpn += 20 + Math.floor(r() * 200)) runs.push({ vpn, count: 1 + Math.floor(r() * 5) });
      w.dropPages(runs.map((x) => ({ vaddr: BigInt(x.vpn) << 12n, pages: x.count })));
      for (const x of runs) {
        if (r() < 0.2) { for (let i = 0; i < x.count; i++) v.delete(x.vpn + i); continue; }
        const data = Buffer.concat([...Array(x.count).keys()].map(() => (r() < 0.3 ? Buffer.alloc(PAGE) : randomPage(r))));
        for (let i = 0; i < x.count; i++) v.set(x.vpn + i, data.subarray(i * PAGE, (i + 1) * PAGE));
        w.addPages(BigInt(x.vpn) << 12n, data);
      }
    }
    const id = w.commit().id;
    assertSameView(materializeToMap(store, id), v, 'after 4 rounds');
    const db = (store as unknown as { db: { prepare(q: string): { all(...a: unknown[]): unknown[] } } }).db;
    const rows = db.prepare('SELECT vpn, count, kind, file, page FROM extents WHERE ckpt = ? ORDER BY vpn').all(id) as { vpn: number; count: number; kind: number; file: number | null; page: number | null }[];
    for (let i = 1; i < rows.length; i++) {
      const a = rows[i - 1]!;
      const b = rows[i]!;
      assert.ok(a.vpn + a.count <= b.vpn, `no overlap at ${i}`);
      const continues = a.vpn + a.count === b.vpn && a.kind === b.kind && (a.file === null || (a.file === b.file && a.page! + a.count === b.page));
      assert.ok(!continues, `neighbours merged at ${i}`);
    }
    // A page given again without being taken back is still refused, by its address.
    const w2 = store.begin({ targetId: tg.id, parentId: null, mode: 'full', dirtyTracking: 'hash', coverage: 'complete' });
    w2.setState(makeState([mapping(start, pages)]));
    w2.addPages(BigInt(start) << 12n, Buffer.concat([randomPage(r), randomPage(r), randomPage(r)]));
    w2.dropPages([{ vaddr: BigInt(start + 1) << 12n, pages: 1 }]);
    w2.addPages(BigInt(start + 2) << 12n, randomPage(r));
    assert.throws(() => w2.commit(), (e: unknown) => e instanceof StasisError && e.code === 'INVALID_INPUT' && /0x4002000 was given twice/.test(e.message));
    store.close();
  } finally {
    t.cleanup();
  }
});

test('a live capture can give scattered runs, take pages back, and keep pages unchanged since the parent', () => {
  const t = tempDir();
  try {
    const store = openStore(t.dir);
    const tg = store.upsertTarget(target);
    const r = rng(7);
    const v1 = baseView(r, 0x3000, 64);
    const id1 = writeComplete(store, tg.id, null, v1, [mapping(0x3000, 64)]);
    const w = store.begin({ targetId: tg.id, parentId: id1, mode: 'incremental', dirtyTracking: 'uffd-wp', coverage: 'complete' });
    w.setState(makeState([mapping(0x3000, 64)]));
    const v2: View = new Map(v1);
    // Scattered runs in one call: pages 0x3002 and 0x3010..0x3011, data back to back.
    const a = randomPage(r);
    const b = Buffer.concat([randomPage(r), randomPage(r)]);
    w.addPageRuns([{ vaddr: BigInt(0x3002) << 12n, pages: 1 }, { vaddr: BigInt(0x3010) << 12n, pages: 2 }], Buffer.concat([a, b]));
    v2.set(0x3002, a);
    v2.set(0x3010, b.subarray(0, PAGE));
    v2.set(0x3011, b.subarray(PAGE));
    assert.throws(() => w.addPageRuns([{ vaddr: BigInt(0x3020) << 12n, pages: 2 }], a), (e: unknown) => e instanceof StasisError && e.code === 'INVALID_INPUT' && /does not hold the 2 pages/.test(e.message));
    // Taken back and given again (the page changed after it was read): the later contents count.
    w.dropPages([{ vaddr: BigInt(0x3010) << 12n, pages: 1 }]);
    const again = randomPage(r);
    w.addPages(BigInt(0x3010) << 12n, again);
    v2.set(0x3010, again);
    // Taken back and not given again: gone (not in the process at the freeze).
    w.dropPages([{ vaddr: BigInt(0x3011) << 12n, pages: 1 }]);
    v2.delete(0x3011);
    // Every other page: unchanged since the parent.
    w.keepPages([{ vaddr: BigInt(0x3000) << 12n, pages: 2 }, { vaddr: BigInt(0x3003) << 12n, pages: 13 }, { vaddr: BigInt(0x3012) << 12n, pages: 46 }]);
    assert.deepEqual(w.parentPresent(), [{ vpn: 0x3000, count: 64 }]);
    assert.throws(() => w.keepPages([{ vaddr: BigInt(0x3040) << 12n, pages: 1 }]), (e: unknown) => e instanceof StasisError && e.code === 'INVALID_INPUT' && /not all in the parent/.test(e.message));
    const id2 = w.commit().id;
    assertSameView(materializeToMap(store, id2), v2, 'live incremental');
    assert.equal(store.get(id2)!.dirtyTracking, 'uffd-wp');
    store.close();
  } finally {
    t.cleanup();
  }
});
