// Extent-list arithmetic shares extent objects between lists (a view passes most of its parent's
// extents through untouched): no operation may change an extent of its inputs, which may be a
// cached view. Checked on the cases where a result merges neighbours that continue each other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KIND_ABSENT, KIND_DATA, KIND_ZERO, mergeDisjoint, normalize, outside, overlay, pushExtent, subtract, unionIntervals, withoutAbsent, type Extent, type ExtentKind } from '../../electron/engine/store/extents';

const zero = (vpn: number, count: number): Extent => ({ vpn, count, kind: KIND_ZERO, file: 0, page: 0 });
const data = (vpn: number, count: number, file: number, page: number): Extent => ({ vpn, count, kind: KIND_DATA, file, page });
const snapshot = (l: Extent[]): string => JSON.stringify(l);

test('overlay and mergeDisjoint merge a top extent into a continuing base extent without changing the base list', () => {
  const base = [zero(10, 10), data(30, 4, 1, 0)];
  const before = snapshot(base);
  const top = [zero(20, 5), data(34, 2, 1, 4)];
  const v = overlay(base, top);
  assert.deepEqual(v, [zero(10, 15), data(30, 6, 1, 0)], 'neighbours that continue each other are one extent');
  assert.equal(snapshot(base), before, 'the base (a cached view) is unchanged');
  const again = mergeDisjoint(v, [zero(25, 1)]);
  assert.deepEqual(again, [zero(10, 16), data(30, 6, 1, 0)]);
  assert.deepEqual(v, [zero(10, 15), data(30, 6, 1, 0)], 'an earlier result is unchanged by a later merge');
});

test('subtract passes untouched extents through and cuts the others; its input stays as it was', () => {
  const base = [data(0, 8, 2, 100), zero(8, 4), data(20, 4, 3, 0)];
  const before = snapshot(base);
  const out = subtract(base, [{ vpn: 2, count: 3 }, { vpn: 9, count: 1 }]);
  assert.deepEqual(out, [data(0, 2, 2, 100), data(5, 3, 2, 105), zero(8, 1), zero(10, 2), data(20, 4, 3, 0)]);
  assert.equal(out[4], base[2], 'an untouched extent is the same object');
  assert.equal(snapshot(base), before);
});

test('pushExtent grows in place only what a merge made for the same list', () => {
  const shared = zero(0, 2);
  const a: Extent[] = [];
  pushExtent(a, shared);
  pushExtent(a, zero(2, 2));
  pushExtent(a, zero(4, 2));
  assert.deepEqual(a, [zero(0, 6)]);
  assert.deepEqual(shared, zero(0, 2), 'the pushed extent itself never grew');
  const b: Extent[] = [];
  pushExtent(b, a[0]!);
  pushExtent(b, zero(6, 1));
  assert.deepEqual(b, [zero(0, 7)]);
  assert.deepEqual(a, [zero(0, 6)], 'a list merged into another is unchanged');
  assert.deepEqual(withoutAbsent(normalize([zero(7, 1), { vpn: 8, count: 1, kind: KIND_ABSENT, file: 0, page: 0 }, zero(6, 1)])), [zero(6, 2)]);
});

// A small deterministic generator (the cases are the same on every run; a failure names its seed).
function rng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n) => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s % n;
  };
}
function randomList(r: (n: number) => number, n: number, gap: number, maxCount: number): Extent[] {
  const out: Extent[] = [];
  let vpn = r(5);
  for (let i = 0; i < n; i++) {
    const count = 1 + r(maxCount);
    const kind = r(3) as ExtentKind;
    // Few files and pages, so that neighbours often continue each other and must merge.
    out.push({ vpn, count, kind, file: kind === KIND_DATA ? 1 + r(2) : 0, page: kind === KIND_DATA ? r(3) * 8 : 0 });
    vpn += count + r(gap);
  }
  return normalize(out);
}

test('overlay of a few records over a large view (windows) equals the walk of the whole view, absent records dropped or kept', () => {
  for (let seed = 1; seed <= 4000; seed++) {
    const r = rng(seed);
    // base at least 8x the records: the windowed path; a few cases below that: the full walk.
    const base = withoutAbsent(randomList(r, 40 + r(120), 3, 4));
    const top = randomList(r, 1 + r(seed % 10 === 0 ? 30 : 5), 14, 5);
    const before = snapshot(base);
    const want = mergeDisjoint(subtract(base, top), top);
    assert.deepEqual(overlay(base, top), want, `seed ${seed}`);
    assert.deepEqual(overlay(base, top, true), withoutAbsent(want), `seed ${seed}, absent dropped`);
    assert.equal(snapshot(base), before, `seed ${seed}: the base is unchanged`);
  }
});

test('outside (through the gaps of a cover) equals subtract', () => {
  for (let seed = 1; seed <= 4000; seed++) {
    const r = rng(seed);
    const list = randomList(r, r(80), 3, 4);
    const cover = unionIntervals(Array.from({ length: r(8) }, () => ({ vpn: r(300), count: 1 + r(60) })));
    assert.deepEqual(outside(list, cover), subtract(list, cover), `seed ${seed}`);
  }
});
