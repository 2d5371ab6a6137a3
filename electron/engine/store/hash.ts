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

export function hashPage(page: Uint8Array): Buffer {
  return blake3(page as Buffer);
}

/** The first 8 bytes as a signed 64-bit integer: the dedup table's key. */
export function hashKey(h: Buffer): bigint {
  return h.readBigInt64LE(0);
}

const ZERO = Buffer.alloc(4096);

/** True when the 4096 bytes at offset of data are all zero; no view of the page is made (that costs more than the test). */
export function isZeroAt(data: Buffer, offset: number): boolean {
  if (data[offset] !== 0 || data[offset + 1] !== 0 || data[offset + 2048] !== 0 || data[offset + 4095] !== 0) return false;
  return ZERO.compare(data, offset, offset + 4096) === 0;
}
