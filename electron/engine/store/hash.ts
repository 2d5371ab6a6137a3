/**
 * Content hashes of pages: the identity used for dedup and change detection. BLAKE3 (native, from
 * @napi-rs/blake-hash), chosen over node:crypto SHA-256 by measurement on this hardware (per 4 KiB
 * page, see docs/benchmarks.md). Must stay collision-resistant: a hash match makes the store
 * reference a page instead of writing it.
 */
import { blake3 } from '@napi-rs/blake-hash';

export const HASH_NAME = 'blake3';
/** The id written in segment headers (docs/store-format.md). */
export const HASH_ID = 1;

export function hashPage(page: Buffer): Buffer {
  return blake3(page);
}

/** The first 8 bytes as a signed 64-bit integer: the dedup table's key. */
export function hashKey(h: Buffer): bigint {
  return h.readBigInt64LE(0);
}

const ZERO = Buffer.alloc(4096);
export function isZeroPage(page: Buffer): boolean {
  // Most data pages have a non-zero byte at one of these: skip the native compare for them.
  if (page[0] !== 0 || page[1] !== 0 || page[2048] !== 0 || page[4095] !== 0) return false;
  return page.equals(ZERO);
}
