/**
 * Segment files on disk: writing one (temp name, blocks, trailer, fsync, rename) and reading pages
 * and hashes back out of committed ones. Owns file descriptors and the on-disk naming; it must
 * never decide what a checkpoint contains or touch the SQLite index.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import { StasisError } from '../../../shared/errors';
import { startWriteback } from '../native/sys';
import {
  BLOCK_CHECKSUMS, BLOCK_HEADER_LEN, BLOCK_PAGES, COMP_NONE, FOOTER_LEN, FORMAT_VERSION, FORMAT_VERSION_COMPRESSED, HASH_LEN, HEADER_LEN, PAGE,
  corrupt, decodeBlockHeader, decodeBlockPayload, decodeFooter, decodeHeader, decodeTrailer, encodeBlockHeader,
  encodeBlockHeaderFields, encodeBlockPayload, encodeHeader, encodeTrailer, segmentName, type BlockRef, type Entry, type TrailerParts,
} from './format';
import type { Compression, LocatedPart } from './api';
import { storeNative, type WriteBehind } from './native-addon';

export const FILE_MODE = 0o600;
const MAX_OPEN = 128;
/**
 * Writeback is started every this many bytes while a segment is written, so the disk works while
 * pages are still being hashed and the final fsync waits only for the tail (measured: fsync of a
 * 700 MB segment alone 0.39-0.49 s on this VM's disk).
 */
const WRITEBACK_BYTES = 16 << 20;
/**
 * Jobs queued on the write-behind thread at most (each in its own buffers of the ring): enough
 * to ride out a slow write while pages keep coming, small enough to stay in the CPU caches.
 */
const RING = 4;
/**
 * Blocks per write-behind job (one pwritev and one wake-up of the thread for them all; at most 32,
 * write_behind.c MAX_BLOCKS). One job per block woke the thread ~4000 times per GiB, and ~110 of
 * those wake-ups stalled the reader by 1 ms or more.
 */
const JOB_BLOCKS = 4;
/** The block header's layout for writeBehindWriteBlocks: its size, then where its checksums go (BLOCK_CHECKSUMS). */
const HEADER_LAYOUT = [BLOCK_HEADER_LEN, BLOCK_CHECKSUMS.payloadAt, BLOCK_CHECKSUMS.headerLen, BLOCK_CHECKSUMS.headerAt];

/**
 * The format's sizes as constants of this module: per-page code read through the imported names
 * goes through a getter per access where the module system makes them (tsx, the benches and tests),
 * ~0.05 s per GiB of a full checkpoint.
 */
const PAGE_BYTES = PAGE;
const HASH_BYTES = HASH_LEN;
const PAGES_PER_BLOCK = BLOCK_PAGES;

/** A write-behind ring slot: a job's pages back to back, and its block headers. */
type RingSlot = { pages: Buffer; headers: Buffer };

/**
 * The ring of the last segment whose write-behind thread stopped, for the next segment of this
 * process: a fresh one is RING MiB whose pages fault in again at every checkpoint. One is kept.
 */
let spareRing: RingSlot[] | null = null;

/**
 * The page hashes buffer's size at the end of the largest segment written so far (at most
 * HASH_HINT_MAX): the next one starts at that size instead of growing to it by doubling, each
 * step a fresh buffer and a copy (the copies ~6 ms per GiB checkpointed in a profile). The buffer
 * itself cannot be handed on: the dedup rows read it after the commit (commit.ts addDedupLater).
 */
let hashHint = 4096 * HASH_LEN;
const HASH_HINT_MAX = 32 << 20;

export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
}

/** Writes one segment: pages are appended into 64-page blocks; finish() seals, fsyncs and renames. */
export class SegmentWriter {
  readonly fileId: number;
  readonly finalPath: string;
  readonly tmpPath: string;
  private fd: number | null;
  private pos = HEADER_LEN;
  private pending: Buffer = Buffer.allocUnsafe(BLOCK_PAGES * PAGE);
  private pendingPages = 0;
  /** Page hashes, 32 bytes each, in one growing buffer (millions of small Buffers would burden the GC). */
  private hashes: Buffer = Buffer.allocUnsafe(hashHint);
  private blocks: BlockRef[] = [];
  pages = 0;
  /** Bytes handed to startWriteback so far. */
  private kicked = 0;
  /** Stored payload bytes of the blocks written so far (less than pages x 4096 when blocks were compressed). */
  blockBytes = 0;
  /**
   * Raw blocks go to the addon's write-behind thread (native-addon.ts), which also computes their
   * checksums and starts writeback: writing and CRC-32 then run on the second core while the
   * caller reads and hashes the next pages. A job's blocks are assembled in a ring slot: their
   * pages back to back in one buffer (so a read can fill several blocks at once: readRoom), their
   * headers in another; a slot is reused only once its write is done.
   */
  private wb: WriteBehind | null = null;
  private ring: RingSlot[] = [];
  private seqs: number[] = [];
  private slot = 0;
  /** Blocks of the current slot done (their headers written), not queued yet; the file offset of its first; their payload lengths. */
  private jobBlocksIn = 0;
  private jobPos = 0;
  private jobLens: number[] = [];

  /**
   * compression: how this file's blocks are stored (the store's setting; each block may still fall
   * back to raw). writeBehind: use the addon's writer thread for raw blocks where it is built (the
   * same bytes either way; tests compare the two). deferSync: asked at finish() whether the fsyncs
   * wait for a later settle (StoreIndex.deferDurability); true takes them over.
   */
  constructor(segDir: string, fileId: number, private readonly compression: Compression = 'none', writeBehind = true, private readonly deferSync?: (fileId: number, file: string) => boolean) {
    this.fileId = fileId;
    this.finalPath = path.join(segDir, segmentName(fileId));
    this.tmpPath = this.finalPath + '.tmp';
    this.fd = fs.openSync(this.tmpPath, 'wx', FILE_MODE);
    fs.writeSync(this.fd, encodeHeader(fileId, compression === 'none' ? FORMAT_VERSION : FORMAT_VERSION_COMPRESSED), 0, HEADER_LEN, 0);
    // An older addon build lacks writeBehindWriteBlocks: blocks are then written here, the same bytes.
    if (writeBehind && storeNative?.writeBehindWriteBlocks && compression === 'none') {
      this.ring = spareRing ?? Array.from({ length: RING }, () => ({ pages: Buffer.allocUnsafeSlow(JOB_BLOCKS * BLOCK_PAGES * PAGE), headers: Buffer.allocUnsafeSlow(JOB_BLOCKS * BLOCK_HEADER_LEN) }));
      spareRing = null;
      this.seqs = this.ring.map(() => -1);
      this.pending = this.ring[0]!.pages.subarray(0, BLOCK_PAGES * PAGE);
      this.jobPos = this.pos;
      this.wb = storeNative.writeBehindOpen(this.fd, WRITEBACK_BYTES, HEADER_LEN);
    }
  }

  /**
   * Appends one page (the 4096 bytes at offset of data) with its hash (the 32 bytes at hashOffset
   * of hash: a chunk's digests are passed without a view per page); returns its index in this file.
   */
  addPage(data: Buffer, offset: number, hash: Buffer, hashOffset = 0): number {
    data.copy(this.pending, this.pendingPages * PAGE, offset, offset + PAGE);
    return this.appended(hash, hashOffset);
  }

  /**
   * Where pages can be read in place (no copy: they are already where the blocks are assembled):
   * the free page slots of the current ring slot, from page slot `first` of buf, `pages` of them
   * (the current block's and those of the job's next blocks). Null when blocks are not assembled
   * in place (no write-behind: compression, or no addon). Pages read there are part of the file
   * only once kept (keepReadPage).
   */
  readRoom(): { buf: Buffer; first: number; pages: number } | null {
    if (!this.wb) return null;
    const first = this.jobBlocksIn * BLOCK_PAGES + this.pendingPages;
    return { buf: this.ring[this.slot]!.pages, first, pages: JOB_BLOCKS * BLOCK_PAGES - first };
  }

  /**
   * Appends the page read in place at page slot `slot` of readRoom's buf, moving it down over the
   * pages read before it that were not kept. Slots must be kept in increasing order, each at most
   * once, before the next readRoom; returns its index in this file.
   */
  keepReadPage(slot: number, hash: Buffer, hashOffset: number): number {
    const at = this.jobBlocksIn * PAGES_PER_BLOCK + this.pendingPages;
    if (!this.wb || slot < at || slot >= JOB_BLOCKS * PAGES_PER_BLOCK) throw new Error(`keepReadPage: slot ${slot} is not a page read in place (next free slot ${at})`);
    if (slot !== at) this.ring[this.slot]!.pages.copyWithin(at * PAGE_BYTES, slot * PAGE_BYTES, (slot + 1) * PAGE_BYTES);
    return this.appended(hash, hashOffset);
  }

  /**
   * keepReadPage for the k pages read in place that lie back to back from readRoom's first slot,
   * whose hashes the caller already put after the file's pages in hashRoom's buffer (the addon's
   * decidePages does both): they become the file's next k pages.
   */
  keptInPlace(k: number): void {
    const at = this.jobBlocksIn * PAGES_PER_BLOCK + this.pendingPages;
    if (!this.wb || !Number.isSafeInteger(k) || k < 0 || at + k > JOB_BLOCKS * PAGES_PER_BLOCK || (this.pages + k) * HASH_BYTES > this.hashes.length) throw new Error(`keptInPlace: ${k} pages from slot ${at} were not read in place`);
    while (k > 0) {
      const take = Math.min(k, PAGES_PER_BLOCK - this.pendingPages);
      this.pendingPages += take;
      this.pages += take;
      k -= take;
      if (this.pendingPages === PAGES_PER_BLOCK) this.flushBlock();
    }
  }

  /** The page hashes buffer with room for n more pages after the file's (see keptInPlace); valid until the next page is added. */
  hashRoom(n: number): Buffer {
    if ((this.pages + n) * HASH_BYTES > this.hashes.length) {
      let len = this.hashes.length * 2;
      while ((this.pages + n) * HASH_BYTES > len) len *= 2;
      const bigger = Buffer.allocUnsafe(len);
      this.hashes.copy(bigger, 0, 0, this.pages * HASH_BYTES);
      this.hashes = bigger;
    }
    return this.hashes;
  }

  /** The page just put at the end of the current block becomes the file's next page. */
  private appended(hash: Buffer, hashOffset: number): number {
    this.pendingPages++;
    this.hashRoom(1);
    // A loop, not hash.copy: 32 bytes through Buffer.copy's binding cost ~0.5 µs, 0.09 s per GiB.
    const out = this.hashes;
    const o = this.pages * HASH_BYTES;
    for (let k = 0; k < HASH_BYTES; k++) out[o + k] = hash[hashOffset + k]!;
    if (this.pendingPages === PAGES_PER_BLOCK) this.flushBlock();
    return this.pages++;
  }

  /** Hash of a page written by this writer (it is not readable through SegmentReader yet). */
  hashOf(page: number): Buffer {
    return this.hashes.subarray(page * HASH_BYTES, (page + 1) * HASH_BYTES);
  }

  /** The dedup key (first 8 hash bytes, signed LE: hash.ts hashKey) of a page written by this writer, without a view. */
  hashKeyOf(page: number): bigint {
    return this.hashes.readBigInt64LE(page * HASH_LEN);
  }

  /** Copies the hashes of count consecutive pages written by this writer into out at outOffset. */
  copyHashes(page: number, count: number, out: Buffer, outOffset: number): void {
    this.hashes.copy(out, outOffset, page * HASH_LEN, (page + count) * HASH_LEN);
  }

  private flushBlock(): void {
    if (this.wb) { this.queueBlock(this.wb); return; }
    if (this.pendingPages === 0) return;
    const { comp, stored } = encodeBlockPayload(this.pending.subarray(0, this.pendingPages * PAGE), this.compression);
    const first = this.blocks.length * BLOCK_PAGES;
    // The block checksum covers the stored bytes: verify checks a compressed block without decompressing it first.
    const header = encodeBlockHeader(first, this.pendingPages, comp, stored);
    fs.writevSync(this.fd!, [header, stored], this.pos);
    this.blocks.push({ offset: this.pos, storedLen: stored.length, comp, pages: this.pendingPages });
    this.pos += BLOCK_HEADER_LEN + stored.length;
    this.blockBytes += stored.length;
    this.pendingPages = 0;
    if (this.pos - this.kicked >= WRITEBACK_BYTES) {
      startWriteback(this.fd!, this.kicked, this.pos - this.kicked);
      this.kicked = this.pos;
    }
  }

  /**
   * flushBlock through the write-behind thread: the block's pages are already in the current ring
   * slot, after the job's earlier blocks; its header goes beside the others. The job is queued
   * once it holds JOB_BLOCKS blocks or ends with a partial block (the last: only full blocks sit
   * before another in a job), or when nothing is pending (flushBlocks, finish).
   */
  private queueBlock(wb: WriteBehind): void {
    const { pages: buf, headers } = this.ring[this.slot]!;
    const pages = this.pendingPages;
    if (pages > 0) {
      const len = pages * PAGE;
      encodeBlockHeaderFields(headers.subarray(this.jobBlocksIn * BLOCK_HEADER_LEN), this.blocks.length * BLOCK_PAGES, pages, COMP_NONE, len);
      this.jobLens.push(len);
      this.blocks.push({ offset: this.pos, storedLen: len, comp: COMP_NONE, pages });
      this.pos += BLOCK_HEADER_LEN + len;
      this.blockBytes += len;
      this.pendingPages = 0;
      this.jobBlocksIn++;
    }
    if (this.jobBlocksIn === 0) return;
    if (this.jobBlocksIn < JOB_BLOCKS && pages === BLOCK_PAGES) {
      this.pending = buf.subarray(this.jobBlocksIn * BLOCK_PAGES * PAGE, (this.jobBlocksIn + 1) * BLOCK_PAGES * PAGE);
      return;
    }
    const native = storeNative!;
    this.seqs[this.slot] = native.writeBehindWriteBlocks!(wb, headers, buf, this.jobLens, this.jobPos, HEADER_LAYOUT);
    this.jobLens = [];
    this.jobBlocksIn = 0;
    this.jobPos = this.pos;
    this.slot = (this.slot + 1) % RING;
    native.writeBehindWait(wb, this.seqs[this.slot]!);
    this.pending = this.ring[this.slot]!.pages.subarray(0, BLOCK_PAGES * PAGE);
  }

  /** Waits for the write-behind thread to write everything queued and stops it (throws its first write error). */
  private drain(): void {
    const wb = this.wb;
    if (!wb) return;
    this.wb = null;
    try {
      storeNative!.writeBehindClose(wb);
    } finally {
      // The thread is stopped (close joins it even when it throws): nothing reads the ring now, and
      // nothing writes it (no page is added after drain).
      spareRing = this.ring;
      this.ring = [];
    }
  }

  /** Writes the last, partial block now (no page may be added after it); returns the stored block bytes of the file. */
  flushBlocks(): number {
    this.flushBlock();
    return this.blockBytes;
  }

  /** Seals the file (trailer + footer), fsyncs it, renames it into place and fsyncs the directory (the fsyncs deferred: see deferSync). */
  finish(entries: Entry[], records: Buffer): { bytes: number; pages: number; blockBytes: number } {
    const out = this.seal(entries, records);
    this.place();
    return out;
  }

  /** Set by seal(): whether place() fsyncs (false when deferSync took the fsyncs over). */
  private syncs = true;

  /**
   * finish() in two steps, so that a commit's index rows go in while the file reaches the disk:
   * seal() writes the trailer + footer and starts the fsync, on the write-behind thread when there
   * is one (the trailer is encoded while the thread still writes the last blocks); place() waits
   * for both, then renames the file into place and fsyncs the directory. Nothing is visible to a
   * reader before place() returned, and an index transaction that names the file must commit only
   * after it (StoreIndex.publish).
   */
  seal(entries: Entry[], records: Buffer): { bytes: number; pages: number; blockBytes: number } {
    this.flushBlock();
    const parts: TrailerParts = { pages: this.pages, hashes: this.hashes.subarray(0, this.pages * HASH_LEN), blocks: this.blocks, entries, records };
    if (this.hashes.length > hashHint && this.hashes.length <= HASH_HINT_MAX) hashHint = this.hashes.length;
    const trailer = encodeTrailer(this.pos, parts);
    const bytes = this.pos + trailer.length;
    this.syncs = this.deferSync?.(this.fileId, this.finalPath) !== true;
    const native = storeNative;
    if (this.wb && native?.writeBehindSync) {
      native.writeBehindWrite(this.wb, trailer, trailer.length, this.pos, []);
      if (this.syncs) native.writeBehindSync(this.wb);
    } else {
      this.drain();
      fs.writeSync(this.fd!, trailer, 0, trailer.length, this.pos);
      if (this.syncs) fs.fsyncSync(this.fd!);
    }
    return { bytes, pages: this.pages, blockBytes: this.blockBytes };
  }

  /** The second step of finish() (see seal): throws the first write or fsync error, the file then discarded. */
  place(): void {
    try {
      this.drain();
    } catch (e) {
      this.discard();
      throw e;
    }
    fs.closeSync(this.fd!);
    this.fd = null;
    try {
      fs.renameSync(this.tmpPath, this.finalPath);
    } catch (e) {
      fs.rmSync(this.tmpPath, { force: true });
      throw e;
    }
    if (this.syncs) fsyncDir(path.dirname(this.finalPath));
  }

  /** Throws the half-written file away. Safe to call twice, and after finish() (then it does nothing). */
  discard(): void {
    if (this.fd !== null) {
      // The writer thread must be done with the descriptor before it is closed (and its number reused).
      try { this.drain(); } catch (_e) { /* the file is thrown away */ }
      try { fs.closeSync(this.fd); } catch (_e) { /* already closed */ }
      this.fd = null;
      fs.rmSync(this.tmpPath, { force: true });
    }
  }
}

interface OpenSegment {
  fd: number;
  /** The file's path (locate hands it out once per piece: a deduplicated view names thousands). */
  path: string;
  where: string;
  pages: number;
  blocks: BlockRef[];
  hashes: Buffer;
  /** The last compressed block decompressed: materialize reads a block's pages in several runs. */
  decoded: { block: number; pages: Buffer } | null;
}

/** Header, footer and checksummed trailer of an open segment: all a reader needs before any block. */
function readTrailer(fd: number, where: string): { size: number; fileId: number; parts: TrailerParts } {
  const size = fs.fstatSync(fd).size;
  if (size < HEADER_LEN + FOOTER_LEN) throw corrupt(where, 'it is too short');
  const head = Buffer.alloc(HEADER_LEN);
  fs.readSync(fd, head, 0, HEADER_LEN, 0);
  const { fileId } = decodeHeader(head, where);
  const foot = Buffer.alloc(FOOTER_LEN);
  fs.readSync(fd, foot, 0, FOOTER_LEN, size - FOOTER_LEN);
  const { trailerOffset, trailerLen, crc } = decodeFooter(foot, size, where);
  const body = Buffer.alloc(trailerLen);
  fs.readSync(fd, body, 0, trailerLen, trailerOffset);
  if (crc32(body) !== crc) throw corrupt(where, 'its trailer checksum does not match');
  return { size, fileId, parts: decodeTrailer(body, trailerOffset, where) };
}

/**
 * Read side: caches one descriptor, the block table and the last decompressed block per segment file
 * (at most MAX_OPEN files, so at most MAX_OPEN x 256 KiB of decompressed pages).
 */
export class SegmentReader {
  private open = new Map<number, OpenSegment>();
  /** Compressed blocks decompressed so far: how well the per-segment cache works (bench and tests read it). */
  blocksDecompressed = 0;
  constructor(private readonly segDir: string) {}

  pathOf(fileId: number): string {
    return path.join(this.segDir, segmentName(fileId));
  }

  private get(fileId: number): OpenSegment {
    let s = this.open.get(fileId);
    if (s) {
      this.open.delete(fileId); // most recently used last
      this.open.set(fileId, s);
      return s;
    }
    // Stores hold thousands of segments: keep a bounded number of descriptors open.
    while (this.open.size >= MAX_OPEN) this.forget(this.open.keys().next().value as number);
    const where = `Segment file ${segmentName(fileId)}`;
    let fd: number;
    try {
      fd = fs.openSync(this.pathOf(fileId), 'r');
    } catch (e) {
      throw new StasisError('CORRUPT', `${where} is missing (${(e as Error).message}). Run \`stasis verify\` to see which checkpoints it affects.`);
    }
    try {
      const { parts } = readTrailer(fd, where);
      s = { fd, path: this.pathOf(fileId), where, pages: parts.pages, blocks: parts.blocks, hashes: Buffer.from(parts.hashes), decoded: null }; // a copy: the rest of the trailer is not kept
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    this.open.set(fileId, s);
    return s;
  }

  pagesIn(fileId: number): number {
    return this.get(fileId).pages;
  }

  hashOf(fileId: number, page: number): Buffer {
    const s = this.get(fileId);
    if (page < 0 || page >= s.pages) throw corrupt(s.where, `page ${page} is referenced but the file holds ${s.pages}`);
    return s.hashes.subarray(page * HASH_LEN, (page + 1) * HASH_LEN);
  }

  /** Copies the hashes of count consecutive pages of a file into out at outOffset. */
  copyHashes(fileId: number, page: number, count: number, out: Buffer, outOffset: number): void {
    const s = this.get(fileId);
    if (page < 0 || page + count > s.pages) throw corrupt(s.where, `pages ${page}..${page + count} are referenced but the file holds ${s.pages}`);
    s.hashes.copy(out, outOffset, page * HASH_LEN, (page + count) * HASH_LEN);
  }

  /** Reads count consecutive pages of a file into out at outOffset. */
  readPages(fileId: number, page: number, count: number, out: Buffer, outOffset: number): void {
    let o = outOffset;
    for (const { s, bi, b, slot, n } of this.pieces(fileId, page, count)) {
      const len = n * PAGE;
      if (b.comp === COMP_NONE) {
        const got = fs.readSync(s.fd, out, o, len, b.offset + BLOCK_HEADER_LEN + slot * PAGE);
        if (got !== len) throw corrupt(s.where, `block ${bi} is truncated`);
      } else {
        this.decodedBlock(s, bi).copy(out, o, slot * PAGE, slot * PAGE + len);
      }
      o += len;
    }
  }

  /**
   * Reads count consecutive pages of a file with their hashes, each page k's hash to out at at(k)
   * and the page right after it (a stream's hash + page entries): one readv per raw block straight
   * into the entries, no copy in between.
   */
  readEntries(fileId: number, page: number, count: number, out: Buffer, at: (k: number) => number): void {
    let k = 0;
    for (const { s, bi, b, slot, n } of this.pieces(fileId, page, count)) {
      // A loop per hash, not Buffer.copy: its binding costs ~0.5 µs a call, 0.13 s per GiB sent.
      for (let j = 0; j < n; j++) {
        const from = (bi * BLOCK_PAGES + slot + j) * HASH_LEN, to = at(k + j), hs = s.hashes;
        for (let b = 0; b < HASH_LEN; b++) out[to + b] = hs[from + b]!;
      }
      if (b.comp === COMP_NONE) {
        const views: Buffer[] = [];
        for (let j = 0; j < n; j++) views.push(out.subarray(at(k + j) + HASH_LEN, at(k + j) + HASH_LEN + PAGE));
        if (fs.readvSync(s.fd, views, b.offset + BLOCK_HEADER_LEN + slot * PAGE) !== n * PAGE) throw corrupt(s.where, `block ${bi} is truncated`);
      } else {
        const d = this.decodedBlock(s, bi);
        for (let j = 0; j < n; j++) d.copy(out, at(k + j) + HASH_LEN, (slot + j) * PAGE, (slot + j + 1) * PAGE);
      }
      k += n;
    }
  }

  /**
   * Where count consecutive pages of a file are: raw blocks as offsets in the file, compressed ones
   * decoded (a copy: the block cache moves on). Adjacent pieces of one kind are not merged.
   */
  locate(fileId: number, page: number, count: number): LocatedPart[] {
    const out: LocatedPart[] = [];
    for (const { s, bi, b, slot, n } of this.pieces(fileId, page, count)) {
      if (b.comp === COMP_NONE) out.push({ pages: n, path: s.path, offset: b.offset + BLOCK_HEADER_LEN + slot * PAGE });
      else out.push({ pages: n, data: Buffer.from(this.decodedBlock(s, bi).subarray(slot * PAGE, (slot + n) * PAGE)) });
    }
    return out;
  }

  /** count consecutive pages of a file, block by block: n pages from slot of block bi. */
  private *pieces(fileId: number, page: number, count: number): Generator<{ s: OpenSegment; bi: number; b: BlockRef; slot: number; n: number }> {
    const s = this.get(fileId);
    if (page < 0 || page + count > s.pages) throw corrupt(s.where, `pages ${page}..${page + count} are referenced but the file holds ${s.pages}`);
    let p = page;
    while (p < page + count) {
      const bi = Math.floor(p / BLOCK_PAGES);
      const b = s.blocks[bi];
      const slot = p % BLOCK_PAGES;
      const n = Math.min(b.pages - slot, page + count - p);
      yield { s, bi, b, slot, n };
      p += n;
    }
  }

  /** The pages of compressed block bi, checked against its header and checksum (a damaged one is CORRUPT, never garbage). */
  private decodedBlock(s: OpenSegment, bi: number): Buffer {
    if (s.decoded?.block === bi) return s.decoded.pages;
    const b = s.blocks[bi];
    const raw = Buffer.allocUnsafe(BLOCK_HEADER_LEN + b.storedLen);
    if (fs.readSync(s.fd, raw, 0, raw.length, b.offset) !== raw.length) throw corrupt(s.where, `block ${bi} is truncated`);
    const stored = checkBlock(raw, b, bi, s.where);
    s.decoded = { block: bi, pages: decodeBlockPayload(stored, b.comp, b.pages, s.where, bi) };
    this.blocksDecompressed++;
    return s.decoded.pages;
  }

  /** Drops the cached descriptor (before the file is deleted or replaced). */
  forget(fileId: number): void {
    const s = this.open.get(fileId);
    if (s) { try { fs.closeSync(s.fd); } catch (_e) { /* gone */ } this.open.delete(fileId); }
  }

  closeAll(): void {
    for (const id of [...this.open.keys()]) this.forget(id);
  }
}

export interface SegmentScan {
  fileId: number;
  bytes: number;
  parts: TrailerParts;
  /** Blocks whose header or payload checksum failed, by index. */
  badBlocks: number[];
}

/** The stored bytes of block bi from its header + payload, once header, block table and checksum agree. */
function checkBlock(raw: Buffer, b: BlockRef, bi: number, where: string): Buffer {
  const h = decodeBlockHeader(raw, where);
  if (h.storedLen !== b.storedLen || h.pages !== b.pages || h.comp !== b.comp || h.firstPage !== bi * BLOCK_PAGES) throw corrupt(where, `block ${bi} disagrees with the block table`);
  const stored = raw.subarray(BLOCK_HEADER_LEN, BLOCK_HEADER_LEN + h.storedLen);
  if (crc32(stored) !== h.crc) throw corrupt(where, `block ${bi} checksum does not match`);
  return stored;
}

/** Reads and checks a whole segment (every block checksum; compressed blocks must also decompress). Throws CORRUPT when the trailer is unusable. */
/** beforeBlock runs before each block is checked (verify's cancellation point); what it throws propagates. */
export function scanSegment(file: string, beforeBlock?: () => void): SegmentScan {
  const where = `Segment file ${path.basename(file)}`;
  const fd = fs.openSync(file, 'r');
  try {
    const { size, fileId, parts } = readTrailer(fd, where);
    const badBlocks: number[] = [];
    // decodeTrailer bounded every stored length by a block of raw pages.
    const buf = Buffer.alloc(BLOCK_HEADER_LEN + BLOCK_PAGES * PAGE);
    parts.blocks.forEach((b, i) => {
      beforeBlock?.();
      try {
        const raw = buf.subarray(0, BLOCK_HEADER_LEN + b.storedLen);
        if (fs.readSync(fd, raw, 0, raw.length, b.offset) !== raw.length) throw corrupt(where, `block ${i} is truncated`);
        const stored = checkBlock(raw, b, i, where);
        // A checksummed block that does not decompress would fail every reader: it is damage too.
        if (b.comp !== COMP_NONE) decodeBlockPayload(stored, b.comp, b.pages, where, i);
      } catch (_e) {
        badBlocks.push(i);
      }
    });
    return { fileId, bytes: size, parts, badBlocks };
  } finally {
    fs.closeSync(fd);
  }
}
