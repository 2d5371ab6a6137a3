/**
 * The stream file's layout and the checks of its parts (docs/store-format.md, "Stream file"):
 * header, manifest, `N x (hash + page)`, SHA-256 footer. Shared by the export, the whole-file
 * validation (streams.ts) and the incremental import (stream-import.ts), so the three read one
 * format with one set of checks.
 */
import * as path from 'node:path';
import { createHash, type Hash } from 'node:crypto';
import { z } from 'zod';
import { StasisError } from '../../../shared/errors';
import { KIND_DATA } from './extents';
import { HASH_LEN, PAGE } from './format';

export const MAGIC = Buffer.from('STASSTR\0', 'latin1');
export const END = Buffer.from('STASSEND', 'latin1');
export const VERSION = 1 as const;
/** A continuation (a checkpoint whose parent the receiver already holds): version 1 readers would take it for a whole chain, so they must refuse it. */
export const VERSION_CONTINUES = 2 as const;
/**
 * Versions 3 and 4 are 1 and 2 with the footer's SHA-256 taken over the header, the manifest and
 * each entry's page hash, not over the page bytes: every reader checks every page against its
 * hash anyway, so the checksum binds the same content with one pass less over the pages at each
 * end. Readers of versions 1 and 2 refuse them by their version.
 */
export const VERSION_HASHED = 3 as const;
export const VERSION_HASHED_CONTINUES = 4 as const;
const VERSIONS: readonly number[] = [VERSION, VERSION_CONTINUES, VERSION_HASHED, VERSION_HASHED_CONTINUES];
/** What a stream's footer checksum covers: 'hashes' (versions 3, 4) or every byte before it ('bytes': 1, 2). */
export type StreamChecksumKind = 'hashes' | 'bytes';

/** The version an exporter writes for a stream of that kind. */
export function versionFor(continuation: boolean, checksum: StreamChecksumKind): 1 | 2 | 3 | 4 {
  if (checksum === 'hashes') return continuation ? VERSION_HASHED_CONTINUES : VERSION_HASHED;
  return continuation ? VERSION_CONTINUES : VERSION;
}

export function isContinuationVersion(version: number): boolean {
  return version === VERSION_CONTINUES || version === VERSION_HASHED_CONTINUES;
}
export const HEADER = 32;
export const FOOTER = 40;
export const ENTRY = HASH_LEN + PAGE;
export const MAX_MANIFEST = 256 * 1024 * 1024;
const MAX_VPN = 2 ** 45;

const targetSchema = z.object({
  pid: z.number().int().nonnegative(), startTime: z.string().max(64), exe: z.string().max(4096),
  cmdline: z.array(z.string().max(1 << 20)).max(1 << 16), name: z.string().max(4096).nullable().optional(), createdAt: z.string().max(64),
});
const ckptSchema = z.object({
  ref: z.number().int().positive(),
  parent: z.number().int().positive().nullable(),
  target: targetSchema,
  createdAt: z.string().max(64), label: z.string().max(1 << 16).nullable(), notes: z.string().max(1 << 20).nullable(), pinned: z.boolean(),
  mode: z.enum(['full', 'incremental']), dirtyTracking: z.enum(['soft-dirty', 'hash', 'uffd-wp', 'none']),
  restoredFrom: z.number().int().nullable(), stats: z.record(z.string(), z.number()),
  state: z.string(),
  records: z.array(z.tuple([z.number().int().nonnegative(), z.number().int().positive(), z.number().int().min(0).max(2), z.number().int().nonnegative()])),
  /** Version 2: the receiving store's id of this checkpoint's parent (it is not in the stream). */
  continues: z.number().int().positive().optional(),
  /** Member of a tree checkpoint: the root member's ref and the number of members (all in the stream). */
  tree: z.object({ root: z.number().int().positive(), size: z.number().int().positive().max(100_000) }).nullable().optional(),
});
export const manifestSchema = z.object({
  format: z.literal('stasis-stream'), version: z.union([z.literal(VERSION), z.literal(VERSION_CONTINUES), z.literal(VERSION_HASHED), z.literal(VERSION_HASHED_CONTINUES)]), kind: z.enum(['one', 'flattened', 'chain']), hash: z.literal('blake3'),
  exportedAt: z.string(), checkpoints: z.array(ckptSchema).min(1).max(100_000),
});
export type Manifest = z.infer<typeof manifestSchema>;

export function bad(file: string, what: string): StasisError {
  return new StasisError('CORRUPT', `The stream ${path.basename(file)} is not valid: ${what}. Nothing was imported; export it again from the source store.`);
}

/** The 32-byte header of a stream that is size bytes long; throws what is wrong with it. */
export function readHeader(file: string, h: Buffer, size: number): { version: number; manifestLen: number; pageCount: number } {
  if (size < HEADER + FOOTER) throw bad(file, `it is ${size} bytes, too short to be a stream`);
  if (!h.subarray(0, 8).equals(MAGIC)) throw bad(file, 'it does not start with the stream magic (is it a Stasis stream?)');
  const version = h.readUInt32LE(8);
  if (!VERSIONS.includes(version)) throw bad(file, `it is stream version ${version}, this Stasis reads versions ${VERSIONS.join(', ')}`);
  if (h.readUInt32LE(12) !== PAGE) throw bad(file, `its page size is ${h.readUInt32LE(12)}, not ${PAGE}`);
  const mlen = h.readBigUInt64LE(16);
  const count = h.readBigUInt64LE(24);
  if (mlen > BigInt(MAX_MANIFEST) || mlen === 0n) throw bad(file, `its manifest length ${mlen} is out of range`);
  if (BigInt(HEADER) + mlen + count * BigInt(ENTRY) + BigInt(FOOTER) !== BigInt(size)) throw bad(file, 'its size does not match its header (truncated or padded)');
  return { version, manifestLen: Number(mlen), pageCount: Number(count) };
}

/** The header of a stream: what an exporter writes first. */
export function writeHeader(version: number, manifestLen: number, pages: number): Buffer {
  const header = Buffer.alloc(HEADER);
  MAGIC.copy(header, 0);
  header.writeUInt32LE(version, 8);
  header.writeUInt32LE(PAGE, 12);
  header.writeBigUInt64LE(BigInt(manifestLen), 16);
  header.writeBigUInt64LE(BigInt(pages), 24);
  return header;
}

/** The manifest's bytes, parsed and checked against the header (records, parents, trees, state documents). */
export function parseManifest(file: string, mbuf: Buffer, version: number, pageCount: number): Manifest {
  let raw: unknown;
  try { raw = JSON.parse(mbuf.toString('utf8')); } catch (_e) { throw bad(file, 'its manifest is not JSON'); }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw bad(file, `its manifest is malformed at ${i.path.join('.') || '(root)'}: ${i.message}`);
  }
  const manifest = parsed.data;
  if (manifest.version !== version) throw bad(file, `its header says version ${version}, its manifest ${manifest.version}`);
  const seen = new Set<number>();
  for (const c of manifest.checkpoints) {
    if (seen.has(c.ref)) throw bad(file, `checkpoint ${c.ref} appears twice`);
    if (c.continues !== undefined && (!isContinuationVersion(version) || c.parent !== null || c.mode !== 'incremental' || c.tree)) throw bad(file, `checkpoint ${c.ref} continues another store's checkpoint but is not a continuation (version 2 or 4) incremental without a parent in the stream`);
    if (c.parent !== null && !seen.has(c.parent)) throw bad(file, `checkpoint ${c.ref} names parent ${c.parent}, which does not precede it in the stream`);
    seen.add(c.ref);
    let prevEnd = -1;
    for (const [vpn, n, kind, sp] of c.records) {
      if (vpn < prevEnd) throw bad(file, `the records of checkpoint ${c.ref} overlap or are not sorted`);
      if (vpn + n > MAX_VPN) throw bad(file, `a record of checkpoint ${c.ref} lies beyond the address space`);
      if (kind === KIND_DATA && sp + n > pageCount) throw bad(file, `a record of checkpoint ${c.ref} points past the ${pageCount} pages in the stream`);
      prevEnd = vpn + n;
    }
    try {
      const st = JSON.parse(c.state) as { mappings?: unknown };
      if (!st || typeof st !== 'object' || !Array.isArray(st.mappings)) throw new Error('no mappings');
    } catch (_e) {
      throw bad(file, `the process state of checkpoint ${c.ref} is not a valid state document`);
    }
  }
  // Tree checkpoints must be whole: their root and every member they count.
  const treeMembers = new Map<number, number>();
  for (const c of manifest.checkpoints) if (c.tree) treeMembers.set(c.tree.root, (treeMembers.get(c.tree.root) ?? 0) + 1);
  for (const c of manifest.checkpoints) {
    if (!c.tree) continue;
    const root = manifest.checkpoints.find((x) => x.ref === c.tree!.root);
    if (!root || root.tree?.root !== c.tree.root || treeMembers.get(c.tree.root) !== c.tree.size) throw bad(file, `tree checkpoint ${c.tree.root} is not whole in the stream (checkpoint ${c.ref} is one of its ${c.tree.size} processes)`);
  }
  return manifest;
}

/**
 * The footer's SHA-256 of a stream of total bytes, fed its bytes in order in pieces of any size
 * (the footer's own bytes are ignored). The header says what it covers: every byte (versions 1
 * and 2), or the header, the manifest and the 32-byte hash of each entry (3 and 4), gathered
 * so the digest sees them in one piece per 1024 entries. Exporter and importers share it, so both
 * ends compute one definition. A header that does not parse leaves the digest meaningless; the
 * readers refuse such a stream for its header first.
 */
export class StreamChecksum {
  private readonly sha: Hash = createHash('sha256');
  private readonly end: number;
  private pos = 0;
  private readonly head = Buffer.alloc(HEADER);
  /** Where the entries begin when only their hashes count (-1: not known yet, or every byte counts). */
  private pagesAt = -1;
  private readonly gathered = Buffer.allocUnsafe(1024 * HASH_LEN);
  private held = 0;

  constructor(total: number) {
    this.end = Math.max(0, total - FOOTER);
  }

  update(chunk: Buffer): void {
    const start = this.pos;
    const stop = Math.min(this.end, start + chunk.length);
    this.pos += chunk.length;
    let p = start;
    if (p < HEADER && p < stop) {
      const n = Math.min(HEADER, stop) - p;
      chunk.copy(this.head, p, 0, n);
      this.sha.update(chunk.subarray(0, n));
      p += n;
      if (p === HEADER) this.modeFromHeader();
    }
    if (p >= stop) return;
    if (this.pagesAt < 0 || stop <= this.pagesAt) { this.sha.update(chunk.subarray(p - start, stop - start)); return; }
    if (p < this.pagesAt) { this.sha.update(chunk.subarray(p - start, this.pagesAt - start)); p = this.pagesAt; }
    // Entries: only bytes [0, HASH_LEN) of each count.
    while (p < stop) {
      const w = (p - this.pagesAt) % ENTRY;
      if (w >= HASH_LEN) { p += Math.min(ENTRY - w, stop - p); continue; }
      const n = Math.min(HASH_LEN - w, stop - p);
      if (this.held + n > this.gathered.length) this.drain();
      // A loop, not chunk.copy: a 32-byte copy through Buffer.copy's binding costs ~0.5 µs, 0.13 s per GiB.
      const g = this.gathered, from = p - start;
      for (let k = 0; k < n; k++) g[this.held + k] = chunk[from + k]!;
      this.held += n;
      p += n;
    }
  }

  /**
   * The entries' part of a stream whose checksum covers only their hashes (versions 3 and 4), from
   * the hashes alone (concatenated, in order): what update() would take from those entries. Only
   * at the first entry, after the head went through update().
   */
  updateHashesOnly(hashes: Buffer): void {
    if (this.pagesAt < 0 || this.pos !== this.pagesAt) throw new StasisError('INTERNAL', 'updateHashesOnly: not a hashed stream at its first entry');
    this.drain();
    this.sha.update(hashes);
    this.pos += (hashes.length / HASH_LEN) * ENTRY;
  }

  /** Whether the checksum covers the entries' hashes only (known once the header went through update()). */
  get hashesOnly(): boolean {
    return this.pagesAt >= 0;
  }

  digest(): Buffer {
    this.drain();
    return this.sha.digest();
  }

  private drain(): void {
    if (this.held) this.sha.update(this.gathered.subarray(0, this.held));
    this.held = 0;
  }

  private modeFromHeader(): void {
    const v = this.head.readUInt32LE(8);
    if (v !== VERSION_HASHED && v !== VERSION_HASHED_CONTINUES) return;
    const mlen = this.head.readBigUInt64LE(16);
    if (mlen <= BigInt(MAX_MANIFEST)) this.pagesAt = HEADER + Number(mlen);
  }
}
