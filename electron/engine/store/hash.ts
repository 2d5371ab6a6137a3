/**
 * Content hashes of pages: the identity used for dedup and change detection. BLAKE3 (native, from
 * @napi-rs/blake-hash), chosen over node:crypto SHA-256 by measurement on this hardware (per 4 KiB
 * page, see docs/benchmarks.md). Must stay collision-resistant: a hash match makes the store
 * reference a page instead of writing it.
 */
import { blake3 } from '@napi-rs/blake-hash';
import { storeNative } from './native-addon';

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

/** Per page of a chunk: zero[i] = 1 for an all-zero page (its hash slot is then left undefined), else hashes[i*32..] is its hash. */
export interface PageDigests {
  zero: Uint8Array;
  hashes: Buffer;
}

const batch = storeNative;

/** Which implementation digestPages uses: 'batch' (the addon) or 'per-page' (the @napi-rs binding). */
export const PAGE_HASH_IMPL: 'batch' | 'per-page' = batch ? 'batch' : 'per-page';

/**
 * Zero flags and hashes of the n pages of data (a page-aligned chunk), into out (sized for n): one
 * pass, no Buffer kept per page. Through the per-page binding its ~3.5 µs fixed cost per call was
 * most of a page's path, so a second thread hashing half of each chunk gained only 5-6% on a whole
 * capture (docs/benchmarks.md); the addon hashes a whole chunk per call instead.
 */
export function digestPages(data: Buffer, n: number, out: PageDigests): void {
  // Without the addon (native-addon.ts) the per-page binding gives the same hashes, ~5x slower.
  if (batch) batch.digest(data, n, out.zero, out.hashes);
  else digestPagesPerPage(data, n, out);
}

/** digestPages through the per-page binding (the fallback; tests compare the two). */
export function digestPagesPerPage(data: Buffer, n: number, out: PageDigests): void {
  for (let i = 0; i < n; i++) {
    const o = i * 4096;
    if (isZeroAt(data, o)) { out.zero[i] = 1; continue; }
    out.zero[i] = 0;
    hashPage(new Uint8Array(data.buffer, data.byteOffset + o, 4096)).copy(out.hashes, i * 32);
  }
}

/** The hash of an all-zero page (digestPages leaves a zero page's hash slot undefined). */
export const ZERO_PAGE_HASH = hashPage(ZERO);
const CHECK_BATCH = 256;
let checkScratch: { pages: Buffer; digests: PageDigests } | null = null;

/**
 * Index of the first of n entries of buf (each a 32-byte hash followed by its 4096-byte page, as
 * streams and spools hold them) whose page does not have that hash, or -1: hashed where they lie
 * by the addon (an import's every page passes here: a copy side by side cost as much as a third
 * of the hashing), else copied side by side 256 at a time and checked with pagesMismatch (one
 * digestPages call each) rather than one hash call per page, which cost 3-15 us each.
 */
export function firstMismatch(buf: Buffer, n: number): number {
  if (batch?.firstEntryMismatch) return batch.firstEntryMismatch(buf, n);
  return firstMismatchCopied(buf, n);
}

/** firstMismatch without the addon's in-place check (the fallback; tests compare the two). */
export function firstMismatchCopied(buf: Buffer, n: number): number {
  const entry = 32 + 4096;
  checkScratch ??= { pages: Buffer.allocUnsafe(CHECK_BATCH * 4096), digests: { zero: new Uint8Array(CHECK_BATCH), hashes: Buffer.allocUnsafe(CHECK_BATCH * 32) } };
  const { pages, digests } = checkScratch;
  for (let i = 0; i < n; i += CHECK_BATCH) {
    const m = Math.min(CHECK_BATCH, n - i);
    for (let k = 0; k < m; k++) buf.copy(pages, k * 4096, (i + k) * entry + 32, (i + k + 1) * entry);
    const bad = pagesMismatch(pages, m, (k) => buf.subarray((i + k) * entry, (i + k) * entry + 32), digests);
    if (bad >= 0) return i + bad;
  }
  return -1;
}

/**
 * Index of the first of n pages of data (side by side, page-aligned: a frame of pages that
 * arrived) whose hash is not expected(k), or -1: one digestPages call for the lot. digests:
 * reusable buffers sized for at least n pages.
 */
export function pagesMismatch(data: Buffer, n: number, expected: (k: number) => Buffer, digests?: PageDigests): number {
  const d = digests ?? { zero: new Uint8Array(n), hashes: Buffer.allocUnsafe(n * 32) };
  digestPages(data, n, d);
  for (let k = 0; k < n; k++) {
    const got = d.zero[k] === 1 ? ZERO_PAGE_HASH : d.hashes.subarray(k * 32, (k + 1) * 32);
    if (!got.equals(expected(k))) return k;
  }
  return -1;
}

/**
 * pagesMismatch for n pages whose expected hashes lie back to back in `hashes` from page `first`
 * (a stream's consecutive pages): one compare when every page matches, else the first that does not.
 */
export function runMismatch(data: Buffer, n: number, hashes: Buffer, first: number, digests?: PageDigests): number {
  const d = digests ?? { zero: new Uint8Array(n), hashes: Buffer.allocUnsafe(n * 32) };
  digestPages(data, n, d);
  for (let k = 0; k < n; k++) if (d.zero[k] === 1) ZERO_PAGE_HASH.copy(d.hashes, k * 32);
  if (d.hashes.compare(hashes, first * 32, (first + n) * 32, 0, n * 32) === 0) return -1;
  for (let k = 0; k < n; k++) if (d.hashes.compare(hashes, (first + k) * 32, (first + k + 1) * 32, k * 32, (k + 1) * 32) !== 0) return k;
  return -1;
}
