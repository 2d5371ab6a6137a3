// Extent-list arithmetic shares extent objects between lists (a view passes most of its parent's
// extents through untouched): no operation may change an extent of its inputs, which may be a
// cached view. Checked on the cases where a result merges neighbours that continue each other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KIND_ABSENT, KIND_DATA, KIND_ZERO, mergeDisjoint, normalize, overlay, pushExtent, subtract, withoutAbsent, type Extent } from '../../electron/engine/store/extents';

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
