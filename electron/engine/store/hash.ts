/**
 * Content hashes of pages: the identity used for dedup and change detection. SHA-256 through
 * node:crypto (OpenSSL, SHA-NI where the CPU has it); chosen by measurement (docs/benchmarks.md).
 * Must stay collision-resistant: a hash match makes the store reference a page instead of writing it.
 */
import { hash as oneShot } from 'node:crypto';

export const HASH_NAME = 'sha256';

export function hashPage(page: Buffer): Buffer {
  return oneShot('sha256', page, 'buffer') as unknown as Buffer;
}

/** The first 8 bytes as a signed 64-bit integer: the dedup table's key. */
export function hashKey(h: Buffer): bigint {
  return h.readBigInt64LE(0);
}

const ZERO = Buffer.alloc(4096);
export function isZeroPage(page: Buffer): boolean {
  return page.equals(ZERO);
}
