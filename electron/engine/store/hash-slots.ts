/**
 * The first of many items with each page hash, found by hash without a string, object or Map entry
 * per item (a stream of 1 GiB has 262144 pages; a Map keyed by strings or BigInts costs ~0.5 µs
 * and a few allocations each). Open addressing over two typed arrays keyed by the hash's first 32
 * bits; the full 32-byte hash, which the caller keeps in one buffer at item * 32, is compared on a
 * key match, so two hashes sharing their first bits never alias.
 */
import { HASH_LEN } from './format';

export class HashSlots {
  /** Per slot: the hash key, and 1 + the item (0: empty). */
  private keys = new Int32Array(4096);
  private items = new Int32Array(4096);
  private count = 0;

  /**
   * The item whose hash (hashes[item * 32 ..]) equals h[at .. at + 32]; when there is none, item
   * is recorded as the first with that hash (its own hash need not be in hashes yet) and -1 returned.
   */
  findOrAdd(hashes: Buffer, h: Buffer, at: number, item: number): number {
    const key = h.readInt32LE(at);
    const mask = this.items.length - 1;
    for (let s = key & mask; ; s = (s + 1) & mask) {
      const v = this.items[s]!;
      if (v === 0) {
        this.keys[s] = key;
        this.items[s] = item + 1;
        if (++this.count * 2 > this.items.length) this.grow();
        return -1;
      }
      if (this.keys[s] === key && sameHash(hashes, (v - 1) * HASH_LEN, h, at)) return v - 1;
    }
  }

  private grow(): void {
    const n = this.items.length * 2, mask = n - 1;
    const keys = new Int32Array(n), items = new Int32Array(n);
    for (let i = 0; i < this.items.length; i++) {
      const v = this.items[i]!;
      if (v === 0) continue;
      let s = this.keys[i]! & mask;
      while (items[s] !== 0) s = (s + 1) & mask;
      keys[s] = this.keys[i]!;
      items[s] = v;
    }
    this.keys = keys;
    this.items = items;
  }
}

function sameHash(a: Buffer, ao: number, b: Buffer, bo: number): boolean {
  for (let k = 0; k < HASH_LEN; k++) if (a[ao + k] !== b[bo + k]) return false;
  return true;
}

/** Copies one 32-byte hash: a loop, as Buffer.copy's binding costs ~0.5 µs a call (0.13 s per GiB of pages). */
export function copyHash(from: Buffer, fromAt: number, to: Buffer, toAt: number): void {
  for (let k = 0; k < HASH_LEN; k++) to[toAt + k] = from[fromAt + k]!;
}
