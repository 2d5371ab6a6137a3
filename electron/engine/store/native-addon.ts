/**
 * The optional native addon (native/store-native, built by node-gyp at npm install): page hashes of
 * a whole chunk in one call (hash.ts), write-behind of segment blocks on a thread of its own
 * (segments.ts), and restore's page fill on threads (restore/page-fill.ts). When it is missing (the
 * build failed: no compiler, say) every caller falls back to what it did without it, with the same
 * bytes on disk and in the restored process. STASIS_STORE_NATIVE=0 turns it off (benchmarks
 * compare both).
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

/** An open write-behind queue (opaque). */
export type WriteBehind = { readonly __writeBehind: unique symbol };

export interface StoreNative {
  /** zero[i] = 1 for an all-zero page i of data (n pages), else 0 and hashes[32i..] = BLAKE3 of the page. */
  digest(data: Uint8Array, n: number, zero: Uint8Array, hashes: Uint8Array): void;
  /** Starts the writer thread for fd; it starts writeback each writebackBytes written past kickedFrom. */
  writeBehindOpen(fd: number, writebackBytes: number, kickedFrom: number): WriteBehind;
  /** Queues buf[0, len) for offset pos, after storing CRC-32 of buf[from, to) at `at` for each (from, to, at) of crcs; returns its sequence number. */
  writeBehindWrite(wb: WriteBehind, buf: Uint8Array, len: number, pos: number, crcs: number[]): number;
  /** Returns once write seq is on its way to the kernel (its buffer may be reused); throws the first write error. */
  writeBehindWait(wb: WriteBehind, seq: number): void;
  /** Waits for every write and stops the thread; throws the first write error. */
  writeBehindClose(wb: WriteBehind): void;
  /**
   * Restore's page fill (page_fill.c) on `threads` threads: 6 u64 per job = destination address, length,
   * method (0 UFFDIO_COPY on uffd, 1 process_vm_writev, 2 /proc/PID/mem on memFd), source kind (0
   * fds[index], 1 buffers[index]), index, offset. Throws the first failure. Absent from an older build.
   */
  fill?(pid: number, uffd: number, memFd: number, jobs: BigUint64Array, buffers: Uint8Array[], fds: Int32Array, threads: number): void;
  /**
   * Capture's fused read (page_read.c): `pages` pages of process pid at addr (process_vm_readv, or
   * pread of memFd, a /proc/PID/mem descriptor, when memFd >= 0) straight into dst at dstOffset,
   * the whole pages read digested as digest() does and the all-zero ones squeezed out (the others
   * back to back from dstOffset, in order). Returns the bytes read, zero pages included (short at
   * an unmapped hole), or a negative errno. Absent from an older build.
   */
  readPages?(pid: number, memFd: number, addr: bigint, dst: Uint8Array, dstOffset: number, pages: number, zero: Uint8Array, hashes: Uint8Array): number;
  /**
   * The writer's per-page decisions for a batch of a root checkpoint with nothing found elsewhere in
   * the store (page_decide.c; writer.ts storeRuns in JS): each non-zero page is found in the page
   * table keys/vals (PageSlots' arrays) with the same full hash in segHashes, or becomes the
   * segment's next page (its hash appended to segHashes, the table told, its bytes moved down to
   * the next kept slot of buf from page slot `first`). state: in [0] table entries, [1] segment
   * pages; out the same and [2] pages kept. Writes the batch's records into runs (4 per run: first
   * page, count, kind, segment page) and returns how many. Absent from an older build.
   */
  decidePages?(zero: Uint8Array, hashes: Uint8Array, n: number, keys: Int32Array, vals: Int32Array, segHashes: Uint8Array, buf: Uint8Array, first: number, runs: Int32Array, state: Int32Array): number;
  /**
   * Queues blocks (at most 32) for offset pos: their headers, layout[0] bytes each, back to back in
   * headers; their payloads, lens[i] bytes each, back to back in payload. Before the write, each
   * header gets the CRC-32 of its payload at layout[1], then the CRC-32 of its bytes [0, layout[2])
   * at layout[3]; the file gets header 0, payload 0, header 1, ... Returns its sequence number (as
   * writeBehindWrite). Absent from an older build.
   */
  writeBehindWriteBlocks?(wb: WriteBehind, headers: Uint8Array, payload: Uint8Array, lens: number[], pos: number, layout: number[]): number;
  /**
   * Queues an fsync of the file after the writes queued before it; returns its sequence number (its
   * error, like a write's, is thrown by the next call). Absent from an older build.
   */
  writeBehindSync?(wb: WriteBehind): number;
  /**
   * The index of the first of the n stream entries at buf (a 32-byte hash, then its page) whose
   * page does not hash to it, or -1; the pages hashed where they lie (entry_check.c). Absent from
   * an older build.
   */
  firstEntryMismatch?(buf: Uint8Array, n: number): number;
}

function load(): StoreNative | null {
  if (process.env.STASIS_STORE_NATIVE === '0') return null;
  // import.meta.url is undefined where this module is bundled as CommonJS (test children).
  const self = (import.meta.url as string | undefined) ?? pathToFileURL(__filename).href;
  const require = createRequire(self);
  // The checkout's own build first (from the sources, electron/engine/store/, or a dist/ bundle):
  // node_modules may be shared with another checkout whose addon lacks this one's functions or
  // differs in them; the installed package is the fallback.
  const built = 'native/store-native/build/Release/store_native.node';
  for (const id of [new URL(`../../../${built}`, self).pathname, new URL(`../${built}`, self).pathname, '@stasis/store-native']) {
    try {
      const m = require(id) as Partial<StoreNative>;
      if (typeof m.digest === 'function' && typeof m.writeBehindOpen === 'function') return m as StoreNative;
    } catch (_e) { /* not built here: try the next */ }
  }
  return null;
}

export const storeNative = load();
