import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { PageSlots } from '../../electron/engine/store/page-slots';

test('page slots: every key set is found with its page through growth, unknown keys are -1, a key set again keeps the later page', () => {
  const s = new PageSlots();
  const n = 300_000; // several doublings past the initial 65,536 slots
  const keys = new Int32Array(randomFillSync(new Uint8Array(n * 4)).buffer);
  const want = new Map<number, number>();
  for (let i = 0; i < n; i++) { s.set(keys[i]!, i); want.set(keys[i]!, i); }
  for (const [k, page] of want) assert.equal(s.get(k), page);
  // Keys that collide in the low bits, 0 and the extremes of int32.
  for (const k of [0, -1, 2 ** 31 - 1, -(2 ** 31), 1 << 20, 2 << 20, 3 << 20]) {
    if (!want.has(k)) assert.equal(s.get(k), -1, `key ${k} was never set`);
    s.set(k, 7);
    assert.equal(s.get(k), 7);
  }
  s.set(keys[5]!, 123_456_789);
  assert.equal(s.get(keys[5]!), 123_456_789);
});

test('page slots: a table given back is taken again empty, at the size it grew to; one past 8 MiB is not kept', () => {
  const keys = new Int32Array(randomFillSync(new Uint8Array(200_000 * 4)).buffer);
  const a = PageSlots.take();
  for (let i = 0; i < keys.length; i++) a.set(keys[i]!, i);
  const size = (s: PageSlots): number => (s as unknown as { keys: Int32Array }).keys.length;
  const grown = size(a);
  a.give();
  const b = PageSlots.take();
  assert.equal(b, a, 'the same table');
  assert.equal(size(b), grown, 'no growth to do again');
  for (let i = 0; i < 1000; i++) assert.equal(b.get(keys[i]!), -1, 'empty');
  b.set(keys[0]!, 5);
  assert.equal(b.get(keys[0]!), 5);
  assert.notEqual(PageSlots.take(), b, 'taken once only');
  // Grown past the cap (2^20 slots: more than 2^19 keys): not kept for later.
  const big = new PageSlots();
  for (let i = 0; i < (1 << 19) + 1; i++) big.set(i * 2654435761 | 0, i);
  assert.ok(size(big) > 1 << 20);
  big.give();
  assert.notEqual(PageSlots.take(), big);
});

test('page slots: claim returns the page a key holds, or records the page given for a new key, through growth', () => {
  const s = new PageSlots();
  const n = 200_000;
  const keys = new Int32Array(randomFillSync(new Uint8Array(n * 4)).buffer);
  const want = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const k = keys[i]!;
    assert.equal(s.claim(k, i), want.has(k) ? want.get(k)! : -1);
    if (!want.has(k)) want.set(k, i);
  }
  for (const [k, page] of want) assert.equal(s.get(k), page);
});
