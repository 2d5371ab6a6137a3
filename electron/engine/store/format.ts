/**
 * The segment file format, byte by byte (documented in docs/store-format.md): header, checksummed
 * page blocks, trailer (page hashes, block table, entries JSON, binary page records) and footer.
 * Owns encoding and bounds-checked decoding of those bytes; it must never decide what is live or
 * touch the SQLite index.
 */
import { crc32 } from 'node:zlib';
import { compressSync, uncompressSync } from 'lz4-napi';
import { StasisError } from '../../../shared/errors';
import type { Compression } from './api';
import { KIND_ABSENT, KIND_DATA, KIND_ZERO, type ExtentKind } from './extents';
import { HASH_ID } from './hash';

export const FORMAT_VERSION = 1;
/**
 * Written by segments that may hold compressed blocks: a Stasis from before compression ignored the
 * block compression field and would read compressed bytes as pages, so it must refuse these files.
 */
export const FORMAT_VERSION_COMPRESSED = 2;
export const PAGE = 4096;
export const BLOCK_PAGES = 64;
export const HASH_LEN = 32;
export const HEADER_LEN = 64;
export const BLOCK_HEADER_LEN = 32;
export const TRAILER_HEADER_LEN = 48;
export const FOOTER_LEN = 32;
export const BLOCK_TABLE_ENTRY = 16;
export const RECORD_LEN = 16;
export const COMP_NONE = 0;
/** LZ4 block format with a u32 LE decompressed length in front (lz4-napi compressSync / lz4_flex compress_prepend_size). */
export const COMP_LZ4 = 1;
const LZ4_PREFIX = 4;
/** A block is stored compressed only when that saves at least this share of its bytes: incompressible memory then costs nothing to read. */
const MIN_SAVING = 1 / 8;

export const SEG_MAGIC = Buffer.from('STASSEG\0', 'latin1');
export const BLOCK_MAGIC = Buffer.from('BLK\0', 'latin1');
export const TRAILER_MAGIC = Buffer.from('TRLR', 'latin1');
export const END_MAGIC = Buffer.from('STASEND\0', 'latin1');

export function segmentName(fileId: number): string {
  return `${String(fileId).padStart(10, '0')}.seg`;
}
export function parseSegmentName(name: string): number | null {
  const m = /^(\d{10})\.seg$/.exec(name);
  return m ? Number(m[1]) : null;
}

export function encodeHeader(fileId: number, version = FORMAT_VERSION): Buffer {
  const b = Buffer.alloc(HEADER_LEN);
  SEG_MAGIC.copy(b, 0);
  b.writeUInt32LE(version, 8);
  b.writeUInt32LE(HEADER_LEN, 12);
  b.writeBigUInt64LE(BigInt(fileId), 16);
  b.writeUInt32LE(PAGE, 24);
  b.writeUInt32LE(BLOCK_PAGES, 28);
  b.writeUInt32LE(HASH_ID, 32);
  b.writeUInt32LE(crc32(b.subarray(0, 60)), 60);
  return b;
}

export function decodeHeader(b: Buffer, where: string): { fileId: number } {
  if (b.length < HEADER_LEN || !b.subarray(0, 8).equals(SEG_MAGIC)) throw corrupt(where, 'it does not start with the segment magic');
  if (b.readUInt32LE(60) !== crc32(b.subarray(0, 60))) throw corrupt(where, 'its header checksum does not match');
  const version = b.readUInt32LE(8);
  if (version !== FORMAT_VERSION && version !== FORMAT_VERSION_COMPRESSED) {
    throw new StasisError('UNSUPPORTED', `${where} uses segment format ${version}; this Stasis reads formats ${FORMAT_VERSION} and ${FORMAT_VERSION_COMPRESSED}. Upgrade Stasis.`);
  }
  if (b.readUInt32LE(24) !== PAGE || b.readUInt32LE(28) !== BLOCK_PAGES) throw corrupt(where, 'its page or block size is not the one this Stasis writes');
  if (b.readUInt32LE(32) !== HASH_ID) throw new StasisError('UNSUPPORTED', `${where} uses content hash ${b.readUInt32LE(32)}; this Stasis uses ${HASH_ID} (BLAKE3). Upgrade Stasis.`);
  return { fileId: Number(b.readBigUInt64LE(16)) };
}

export function encodeBlockHeader(firstPage: number, pages: number, comp: number, payload: Buffer): Buffer {
  const b = Buffer.alloc(BLOCK_HEADER_LEN);
  encodeBlockHeaderFields(b, firstPage, pages, comp, payload.length);
  b.writeUInt32LE(crc32(payload), BLOCK_CHECKSUMS.payloadAt);
  b.writeUInt32LE(crc32(b.subarray(0, BLOCK_CHECKSUMS.headerLen)), BLOCK_CHECKSUMS.headerAt);
  return b;
}

/** Where a block header keeps its two CRC-32s: of the payload, then of the header's first headerLen bytes (which include the first). */
export const BLOCK_CHECKSUMS = { payloadAt: 20, headerLen: 28, headerAt: 28 } as const;

/** A block header without its checksums, into out[0, BLOCK_HEADER_LEN) (for a writer that computes them later, in BLOCK_CHECKSUMS order). */
export function encodeBlockHeaderFields(out: Buffer, firstPage: number, pages: number, comp: number, storedLen: number): void {
  BLOCK_MAGIC.copy(out, 0);
  out.writeUInt32LE(firstPage, 4);
  out.writeUInt32LE(pages, 8);
  out.writeUInt32LE(comp, 12);
  out.writeUInt32LE(storedLen, 16);
  // The checksums come later; the reserved word between them must not carry whatever the
  // (reused) buffer held before: the header checksum covers it, and segments are deterministic.
  out.fill(0, 20, BLOCK_HEADER_LEN);
}

/** The stored form of a block of whole pages: compressed when the setting asks for it and it pays off, else raw. */
export function encodeBlockPayload(raw: Buffer, compression: Compression): { comp: number; stored: Buffer } {
  if (compression === 'lz4') {
    const c = compressSync(raw);
    if (c.length <= raw.length * (1 - MIN_SAVING)) return { comp: COMP_LZ4, stored: c };
  }
  return { comp: COMP_NONE, stored: raw };
}

/**
 * The pages of a block from its stored bytes (already checksummed by the caller). Hostile bytes get
 * a CORRUPT error: the decompressed length is checked before anything is allocated, and the result
 * must be exactly pages x 4096 bytes.
 */
export function decodeBlockPayload(stored: Buffer, comp: number, pages: number, where: string, block: number): Buffer {
  const want = pages * PAGE;
  if (comp === COMP_NONE) {
    if (stored.length !== want) throw corrupt(where, `block ${block} holds ${stored.length} bytes, not ${want}`);
    return stored;
  }
  if (comp !== COMP_LZ4) throw corrupt(where, `block ${block} uses unknown compression ${comp}`);
  if (stored.length <= LZ4_PREFIX || stored.readUInt32LE(0) !== want) throw corrupt(where, `compressed block ${block} does not decompress to its ${pages} pages`);
  let out: Buffer;
  try {
    out = uncompressSync(stored);
  } catch (e) {
    throw corrupt(where, `compressed block ${block} does not decompress (${(e as Error).message})`);
  }
  if (out.length !== want) throw corrupt(where, `compressed block ${block} decompresses to ${out.length} bytes, not ${want}`);
  return out;
}

/** Checks a block table entry's compression and stored length (before any block is read). */
function blockRefProblem(b: BlockRef): string | null {
  if (b.comp === COMP_NONE) return b.storedLen === b.pages * PAGE ? null : 'an uncompressed block of the wrong length';
  if (b.comp === COMP_LZ4) return b.storedLen > LZ4_PREFIX && b.storedLen < b.pages * PAGE ? null : 'a compressed block of impossible length';
  return `unknown compression ${b.comp}`;
}

export interface BlockHeader { firstPage: number; pages: number; comp: number; storedLen: number; crc: number }

export function decodeBlockHeader(b: Buffer, where: string): BlockHeader {
  if (b.length < BLOCK_HEADER_LEN || !b.subarray(0, 4).equals(BLOCK_MAGIC)) throw corrupt(where, 'a block header lacks its magic');
  if (b.readUInt32LE(28) !== crc32(b.subarray(0, 28))) throw corrupt(where, 'a block header checksum does not match');
  return { firstPage: b.readUInt32LE(4), pages: b.readUInt32LE(8), comp: b.readUInt32LE(12), storedLen: b.readUInt32LE(16), crc: b.readUInt32LE(20) };
}

/** One entry of a segment's trailer: a checkpoint definition, a deletion, or changed attributes. */
export type Entry = DefEntry | TombstoneEntry | AttrsEntry;

export interface DefEntry {
  type: 'def';
  ckpt: number;
  target: { pid: number; startTime: string; exe: string; cmdline: string[]; name?: string | null; createdAt: string };
  parent: number | null;
  createdAt: string;
  label: string | null;
  notes: string | null;
  pinned: boolean;
  mode: string;
  dirtyTracking: string;
  restoredFrom: number | null;
  stats: Record<string, number>;
  /** Member of a tree checkpoint: the root member's checkpoint id and how many members the tree has. Absent otherwise. */
  tree?: { root: number; size: number } | null;
  /** encodeState() JSON of the ProcessState. */
  state: string;
  /** Where this checkpoint's records start in the records section, how many extents, how many data pages. */
  recordsOffset: number;
  extents: number;
  dataPages: number;
}
export interface TombstoneEntry { type: 'tombstone'; ckpt: number }
export interface AttrsEntry { type: 'attrs'; ckpt: number; label: string | null; notes: string | null; pinned: boolean }

/** A page record as written in a segment: data pages carry their content hashes, not locations. */
export interface WireExtent { vpn: number; count: number; kind: ExtentKind }

/** Records section of one def: extents (16 bytes each) followed by the hashes of its data pages. */
export function encodeRecords(extents: WireExtent[], hashes: Buffer): Buffer {
  const b = Buffer.alloc(extents.length * RECORD_LEN);
  extents.forEach((e, i) => {
    b.writeBigUInt64LE(BigInt(e.vpn), i * RECORD_LEN);
    b.writeUInt32LE(e.count, i * RECORD_LEN + 8);
    b.writeUInt32LE(e.kind, i * RECORD_LEN + 12);
  });
  return Buffer.concat([b, hashes]);
}

export function decodeRecords(section: Buffer, def: DefEntry, where: string): { extents: WireExtent[]; hashes: Buffer } {
  const extLen = def.extents * RECORD_LEN;
  const end = def.recordsOffset + extLen + def.dataPages * HASH_LEN;
  if (!Number.isSafeInteger(end) || def.recordsOffset < 0 || end > section.length) throw corrupt(where, `the records of checkpoint ${def.ckpt} lie outside the records section`);
  const extents: WireExtent[] = [];
  let data = 0;
  let prevEnd = -1;
  for (let i = 0; i < def.extents; i++) {
    const o = def.recordsOffset + i * RECORD_LEN;
    const vpn = Number(section.readBigUInt64LE(o));
    const count = section.readUInt32LE(o + 8);
    const kind = section.readUInt32LE(o + 12);
    if (kind !== KIND_DATA && kind !== KIND_ZERO && kind !== KIND_ABSENT) throw corrupt(where, `a record of checkpoint ${def.ckpt} has unknown kind ${kind}`);
    if (count === 0 || vpn < prevEnd || vpn + count > 2 ** 52) throw corrupt(where, `the records of checkpoint ${def.ckpt} are not sorted, empty or out of range`);
    prevEnd = vpn + count;
    if (kind === KIND_DATA) data += count;
    extents.push({ vpn, count, kind: kind as ExtentKind });
  }
  if (data !== def.dataPages) throw corrupt(where, `checkpoint ${def.ckpt} says ${def.dataPages} data pages but its records hold ${data}`);
  const h0 = def.recordsOffset + extLen;
  return { extents, hashes: section.subarray(h0, h0 + data * HASH_LEN) };
}

export interface BlockRef { offset: number; storedLen: number; comp: number; pages: number }

export interface TrailerParts { pages: number; hashes: Buffer; blocks: BlockRef[]; entries: Entry[]; records: Buffer }

/** Trailer header + sections, then the footer pointing back at it. */
export function encodeTrailer(trailerOffset: number, parts: TrailerParts): Buffer {
  const meta = Buffer.from(JSON.stringify({ entries: parts.entries }), 'utf8');
  const th = Buffer.alloc(TRAILER_HEADER_LEN);
  TRAILER_MAGIC.copy(th, 0);
  th.writeBigUInt64LE(BigInt(parts.pages), 8);
  th.writeBigUInt64LE(BigInt(parts.blocks.length), 16);
  th.writeBigUInt64LE(BigInt(meta.length), 24);
  th.writeBigUInt64LE(BigInt(parts.records.length), 32);
  const bt = Buffer.alloc(parts.blocks.length * BLOCK_TABLE_ENTRY);
  parts.blocks.forEach((b, i) => {
    bt.writeBigUInt64LE(BigInt(b.offset), i * BLOCK_TABLE_ENTRY);
    bt.writeUInt32LE(b.storedLen, i * BLOCK_TABLE_ENTRY + 8);
    bt.writeUInt16LE(b.comp, i * BLOCK_TABLE_ENTRY + 12);
    bt.writeUInt16LE(b.pages, i * BLOCK_TABLE_ENTRY + 14);
  });
  const body = Buffer.concat([th, parts.hashes, bt, meta, parts.records]);
  const f = Buffer.alloc(FOOTER_LEN);
  f.writeBigUInt64LE(BigInt(trailerOffset), 0);
  f.writeBigUInt64LE(BigInt(body.length), 8);
  f.writeUInt32LE(crc32(body), 16);
  END_MAGIC.copy(f, 24);
  return Buffer.concat([body, f]);
}

export function decodeFooter(f: Buffer, fileSize: number, where: string): { trailerOffset: number; trailerLen: number; crc: number } {
  if (f.length !== FOOTER_LEN || !f.subarray(24, 32).equals(END_MAGIC)) throw corrupt(where, 'it has no footer (a write that never finished?)');
  if (f.readUInt32LE(20) !== 0) throw corrupt(where, 'its footer has non-zero reserved bytes');
  const trailerOffset = Number(f.readBigUInt64LE(0));
  const trailerLen = Number(f.readBigUInt64LE(8));
  if (!Number.isSafeInteger(trailerOffset) || !Number.isSafeInteger(trailerLen) || trailerOffset < HEADER_LEN || trailerOffset + trailerLen + FOOTER_LEN !== fileSize || trailerLen < TRAILER_HEADER_LEN) {
    throw corrupt(where, 'its footer points outside the file');
  }
  return { trailerOffset, trailerLen, crc: f.readUInt32LE(16) };
}

/** Parses a whole trailer body (already checksummed by the caller) with every length bounds-checked. */
export function decodeTrailer(body: Buffer, trailerOffset: number, where: string): TrailerParts {
  if (!body.subarray(0, 4).equals(TRAILER_MAGIC)) throw corrupt(where, 'its trailer lacks its magic');
  const pages = Number(body.readBigUInt64LE(8));
  const nblocks = Number(body.readBigUInt64LE(16));
  const metaLen = Number(body.readBigUInt64LE(24));
  const recLen = Number(body.readBigUInt64LE(32));
  const need = TRAILER_HEADER_LEN + pages * HASH_LEN + nblocks * BLOCK_TABLE_ENTRY + metaLen + recLen;
  if (![pages, nblocks, metaLen, recLen, need].every(Number.isSafeInteger) || need !== body.length) throw corrupt(where, 'its trailer section lengths do not add up');
  let o = TRAILER_HEADER_LEN;
  const hashes = body.subarray(o, (o += pages * HASH_LEN));
  const blocks: BlockRef[] = [];
  let expectPage = 0;
  for (let i = 0; i < nblocks; i++, o += BLOCK_TABLE_ENTRY) {
    const b = { offset: Number(body.readBigUInt64LE(o)), storedLen: body.readUInt32LE(o + 8), comp: body.readUInt16LE(o + 12), pages: body.readUInt16LE(o + 14) };
    if (b.offset < HEADER_LEN || b.offset + BLOCK_HEADER_LEN + b.storedLen > trailerOffset || b.pages === 0 || b.pages > BLOCK_PAGES) throw corrupt(where, `block ${i} of its block table is out of range`);
    if (i < nblocks - 1 && b.pages !== BLOCK_PAGES) throw corrupt(where, `block ${i} is short but not the last one`);
    const problem = blockRefProblem(b);
    if (problem) throw corrupt(where, `block ${i} of its block table names ${problem}`);
    expectPage += b.pages;
    blocks.push(b);
  }
  if (expectPage !== pages) throw corrupt(where, 'its block table does not cover its pages');
  let entries: Entry[];
  try {
    const parsed = JSON.parse(body.subarray(o, o + metaLen).toString('utf8')) as { entries?: unknown };
    if (!parsed || !Array.isArray(parsed.entries)) throw new Error('no entries');
    entries = parsed.entries as Entry[];
  } catch (_e) {
    throw corrupt(where, 'its trailer metadata is not valid JSON');
  }
  o += metaLen;
  return { pages, hashes, blocks, entries, records: body.subarray(o, o + recLen) };
}

export function corrupt(where: string, what: string): StasisError {
  return new StasisError('CORRUPT', `${where} is damaged: ${what}. Run \`stasis verify\` to see which checkpoints it affects.`);
}
