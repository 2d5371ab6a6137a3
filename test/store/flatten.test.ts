import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openStore, type FlattenResult, type Store } from '../../electron/engine/store';
import { StasisError } from '../../shared/errors';
import { PAGE, assertSameView, mapping, materializeToMap, randomPage, rng, tempDir, writeComplete, type View } from './model';

const target = { pid: 300, startTime: '77', exe: '/bin/flat', cmdline: ['flat'] };
const BASE = 0x4000;
const PAGES = 400;

/** A full of PAGES pages (zero, duplicate and unique ones), then n incrementals each changing a few clumps and dropping some pages. */
function chain(store: Store, seed: number, n: number): { ids: number[]; views: Map<number, View> } {
  const r = rng(seed);
  const tg = store.upsertTarget(target);
  const dup = randomPage(r);
  let v: View = new Map();
  for (let i = 0; i < PAGES; i++) { const x = r(); v.set(BASE + i, x < 0.25 ? Buffer.alloc(PAGE) : x < 0.35 ? dup : randomPage(r)); }
  const ids = [writeComplete(store, tg.id, null, v, [mapping(BASE, PAGES)])];
  const views = new Map<number, View>([[ids[0], v]]);
  for (let k = 1; k <= n; k++) {
    v = new Map(v);
    for (let c = 0; c < 3; c++) { const s = Math.floor(r() * (PAGES - 8)); for (let i = 0; i < 8; i++) v.set(BASE + s + i, r() < 0.1 ? dup : randomPage(r)); }
    if (k % 4 === 0) v.delete(BASE + Math.floor(r() * PAGES)); // a page that went away (absent)
    const id = writeComplete(store, tg.id, ids[ids.length - 1], v, [mapping(BASE, PAGES)]);
    ids.push(id);
    views.set(id, v);
  }
  return { ids, views };
}

function assertAll(store: Store, views: Map<number, View>, what: string): void {
  for (const [id, v] of views) assertSameView(materializeToMap(store, id), v, `${what}: checkpoint ${id}`);
}

const dataFiles = (store: Store, id: number): Set<number> => new Set(store.layout(id).filter((e) => e.file !== null).map((e) => e.file!));

test('flatten puts a long chain tip in one segment in address order; every view stays the same, through reindex and gc', () => {
  const t = tempDir();
  try {
    let store = openStore(t.dir);
    const { ids, views } = chain(store, 11, 12);
    // A branch off the middle shares pages with the tip's chain.
    const mid = ids[6];
    const branchView = new Map(views.get(mid)!);
    branchView.set(BASE + 1, randomPage(rng(99)));
    const branch = writeComplete(store, store.get(mid)!.targetId, mid, branchView, [mapping(BASE, PAGES)]);
    views.set(branch, branchView);
    const tip = ids[ids.length - 1];
    assert.ok(dataFiles(store, tip).size > 5, 'the tip reads from many segments before');
    const before = store.stats();

    const r = store.flatten(tip);
    assert.ok(r.file !== null && r.pages > 0 && r.checkpointsRewritten >= 2, JSON.stringify(r));
    assertSameView(materializeToMap(store, tip), views.get(tip)!, 'the flattened checkpoint (its view as flatten cached it)');
    assert.deepEqual([...dataFiles(store, tip)], [r.file], 'the tip reads from the new segment only');
    // Address order: the stored pages of the tip's distinct contents follow its addresses.
    const runs = store.layout(tip).filter((e) => e.file !== null);
    const firstSeen: number[] = [];
    const seen = new Set<number>();
    for (const e of runs) for (let i = 0; i < e.count; i++) if (!seen.has(e.page + i)) { seen.add(e.page + i); firstSeen.push(e.page + i); }
    assert.deepEqual(firstSeen, [...firstSeen].sort((a, b) => a - b));
    assertAll(store, views, 'after flatten');
    assert.equal(store.stats().logicalBytes, before.logicalBytes);
    assert.deepEqual(store.verify(), { ok: true, problems: [] });
    // Flattening an already flat checkpoint writes nothing.
    assert.equal(store.flatten(tip).file, null);

    // gc reclaims the superseded copies; nothing changes for any checkpoint.
    const g = store.gc();
    assert.ok(g.bytesReclaimed > 0 && g.segmentsRewritten > 0, JSON.stringify(g));
    assertAll(store, views, 'after gc');
    assert.deepEqual(store.verify(), { ok: true, problems: [] });

    // The segments alone (the new definitions are in the new segment) rebuild the same store.
    store.close();
    for (const f of fs.readdirSync(t.dir)) if (f.includes('sqlite')) fs.rmSync(path.join(t.dir, f));
    store = openStore(t.dir);
    assert.equal(store.list().length, ids.length + 1);
    assertAll(store, views, 'after reindex');
    store.close();
  } finally {
    t.cleanup();
  }
});

test('a cancelled flatten leaves no file and every checkpoint as it was', () => {
  const t = tempDir();
  try {
    const store = openStore(t.dir);
    const { ids, views } = chain(store, 12, 6);
    const tip = ids[ids.length - 1];
    const files = fs.readdirSync(path.join(t.dir, 'segments')).sort();
    const layout = store.layout(tip);
    const ac = new AbortController();
    assert.throws(() => store.flatten(tip, { signal: ac.signal, onProgress: () => ac.abort() }), (e: unknown) => e instanceof StasisError && e.code === 'CANCELLED');
    assert.deepEqual(fs.readdirSync(path.join(t.dir, 'segments')).sort(), files);
    assert.deepEqual(store.layout(tip), layout);
    assertAll(store, views, 'after a cancelled flatten');
    assert.throws(() => store.flatten(9999), (e: unknown) => e instanceof StasisError && e.code === 'NOT_FOUND');
    store.close();
  } finally {
    t.cleanup();
  }
});

test('with flattenAfter set, a commit whose checkpoint reads from too many segments is flattened after it returns', async () => {
  const t = tempDir();
  try {
    const outcomes: (FlattenResult | Error)[] = [];
    const store = openStore(t.dir, { onFlatten: (o) => outcomes.push(o) });
    assert.equal(store.config().flattenAfter, 0, 'off unless set');
    assert.throws(() => store.setConfig({ flattenAfter: -1 }), (e: unknown) => e instanceof StasisError && e.code === 'INVALID_INPUT');
    assert.equal(store.setConfig({ flattenAfter: 3 }).flattenAfter, 3);
    const { ids, views } = chain(store, 13, 3); // the tip reads from 4 segments
    assert.equal(outcomes.length, 0, 'nothing runs before the caller has its result');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(outcomes.length, 1);
    const r = outcomes[0] as FlattenResult;
    assert.equal(r.id, ids[ids.length - 1]);
    assertSameView(materializeToMap(store, r.id), views.get(r.id)!, 'the flattened checkpoint (its view as cached through the gc)');
    assert.deepEqual([...dataFiles(store, r.id)], [r.file]);
    assertAll(store, views, 'after the automatic flatten');
    assert.equal(store.gc().segmentsRewritten, 0, 'the superseded copies were already reclaimed');
    // The chain goes on from the flattened checkpoint (its cached view is the flattened one).
    const next = new Map(views.get(r.id)!);
    next.set(BASE + 3, randomPage(rng(5)));
    next.delete(BASE + 9);
    const n = writeComplete(store, store.get(r.id)!.targetId, r.id, next, [mapping(BASE, PAGES)]);
    assertSameView(materializeToMap(store, n), next, 'a commit on the flattened checkpoint');
    assert.equal(dataFiles(store, n).size, 2);
    store.close();
  } finally {
    t.cleanup();
  }
});

test('a handle closed right after the commit (a one-shot CLI command) flattens at close', () => {
  const t = tempDir();
  try {
    const outcomes: (FlattenResult | Error)[] = [];
    let store = openStore(t.dir, { onFlatten: (o) => outcomes.push(o) });
    store.setConfig({ flattenAfter: 2 });
    const { ids, views } = chain(store, 14, 3);
    store.close();
    assert.equal(outcomes.length, 1);
    assert.equal((outcomes[0] as FlattenResult).id, ids[ids.length - 1]);
    store = openStore(t.dir);
    assert.equal(dataFiles(store, ids[ids.length - 1]).size, 1);
    assertAll(store, views, 'after a flatten at close');
    store.close();
  } finally {
    t.cleanup();
  }
});
