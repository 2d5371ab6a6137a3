import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { HashSlots } from '../../electron/engine/store/hash-slots';

const H = 32;

test('HashSlots: the first item with each hash, across growth; hashes that share their first 32 bits stay apart', () => {
  const n = 20_000;
  const hashes = Buffer.alloc(2 * n * H);
  const slots = new HashSlots();
  // Items 0..n-1 distinct; item n + i repeats item i's hash; every odd item shares its first 4 bytes with the item before it.
  for (let i = 0; i < n; i++) {
    createHash('sha256').update(`page ${i}`).digest().copy(hashes, i * H);
    if (i % 2 === 1) hashes.copy(hashes, i * H, (i - 1) * H, (i - 1) * H + 4);
  }
  for (let i = 0; i < n; i++) hashes.copy(hashes, (n + i) * H, i * H, (i + 1) * H);
  for (let i = 0; i < n; i++) assert.equal(slots.findOrAdd(hashes, hashes, i * H, i), -1, `item ${i} is new`);
  for (let i = 0; i < n; i++) assert.equal(slots.findOrAdd(hashes, hashes, (n + i) * H, n + i), i, `item ${n + i} repeats item ${i}`);
  // A hash never added, with the first bits of one that was: not found (and now added).
  const other = Buffer.alloc(H, 0xee);
  hashes.copy(other, 0, 0, 4);
  assert.equal(slots.findOrAdd(hashes, other, 0, 2 * n), -1);
});
