/**
 * Stream files: a checkpoint (with its ancestors, flattened into one full, or its whole tree) as
 * one self-checking file, and importing such a file into another store. Import validates the whole
 * file (sizes, checksums, every page hash, every record) before it writes anything, then writes one
 * segment and one index transaction: never a crash, a hang, a huge allocation or a half import.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { StasisError } from '../../../shared/errors';
import type { ExportKind, ExportOptions, ExportResult, PageRun } from './api';
import { KIND_ABSENT, KIND_DATA, pushExtent, type Extent, type ExtentKind } from './extents';
import { HASH_LEN, PAGE, encodeRecords, type DefEntry, type Entry } from './format';
import { firstMismatch, hashKey } from './hash';
import { isCancelled, throwIfCancelled } from './cancel';
import { FILE_MODE } from './segments';
import type { StoreIndex } from './store-index';
import type { ChainViews } from './views';
import { phases, progress, type Phases, type ProgressFn } from '../progress';

/** The parts of the index this module reads and writes. */
export type StreamIndex = Pick<StoreIndex, 'dir' | 'db' | 'reader' | 'checkpointRow' | 'ownExtents' | 'chain' | 'treeMembers' | 'targetEntry' | 'get' | 'allocate' | 'newSegment' | 'lookupDedup' | 'publish' | 'insertFile' | 'applyDef' | 'addDedup'>;
type Views = Pick<ChainViews, 'view'>;

const MAGIC = Buffer.from('STASSTR\0', 'latin1');
const END = Buffer.from('STASSEND', 'latin1');
const VERSION = 1;
/** A continuation (a checkpoint whose parent the receiver already holds): version 1 readers would take it for a whole chain, so they must refuse it. */
const VERSION_CONTINUES = 2;
const HEADER = 32;
const FOOTER = 40;
const ENTRY = HASH_LEN + PAGE;
const MAX_MANIFEST = 256 * 1024 * 1024;
/** The stream file's fixed parts, for a sender that ships it in pieces (engine/migrate/negotiate.ts). */
export const STREAM_LAYOUT = { header: HEADER, footer: FOOTER, entry: ENTRY, maxManifest: MAX_MANIFEST } as const;

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
const manifestSchema = z.object({
  format: z.literal('stasis-stream'), version: z.union([z.literal(VERSION), z.literal(VERSION_CONTINUES)]), kind: z.enum(['one', 'flattened', 'chain']), hash: z.literal('blake3'),
  exportedAt: z.string(), checkpoints: z.array(ckptSchema).min(1).max(100_000),
});
type Manifest = z.infer<typeof manifestSchema>;

function bad(file: string, what: string): StasisError {
  return new StasisError('CORRUPT', `The stream ${path.basename(file)} is not valid: ${what}. Nothing was imported; export it again from the source store.`);
}

/** Which checkpoints an export carries for one checkpoint (a single process's). */
function selectionOf(index: StreamIndex, id: number, how: ExportKind): number[] {
  if (how === 'flattened') return [id];
  const chain = index.chain(id);
  if (how === 'one') return chain;
  const root = chain[0];
  const out = [root];
  const kids = index.db.prepare('SELECT id FROM checkpoints WHERE parent_id = ? ORDER BY id');
  for (let i = 0; i < out.length; i++) for (const r of kids.all(out[i]) as { id: number }[]) out.push(r.id);
  return out;
}

/**
 * Which checkpoints an export carries, parents before children. Every tree checkpoint it touches
 * comes whole: all its members, each with what its kind carries for one process.
 */
function selection(index: StreamIndex, id: number, how: ExportKind): number[] {
  const picked = new Set<number>();
  const todo = [id];
  while (todo.length) {
    const c = todo.pop()!;
    if (picked.has(c)) continue;
    for (const x of selectionOf(index, c, how)) {
      if (picked.has(x)) continue;
      picked.add(x);
      for (const m of index.treeMembers(x)) if (!picked.has(m)) todo.push(m);
    }
  }
  if (how === 'flattened') return [...picked].sort((a, b) => a - b);
  // Parents first (ids alone do not say it: a rebase can give a checkpoint a newer parent).
  const out: number[] = [];
  const done = new Set<number>();
  const parentOf = (c: number): number | null => index.checkpointRow(c).parent_id;
  let left = [...picked].sort((a, b) => a - b);
  while (left.length) {
    const next = left.filter((c) => { const p = parentOf(c); return p === null || !picked.has(p) || done.has(p); });
    if (next.length === 0) throw new StasisError('CORRUPT', `The parent chain of checkpoint ${left[0]} loops; run \`stasis reindex\`.`);
    for (const c of next) { out.push(c); done.add(c); }
    left = left.filter((c) => !done.has(c));
  }
  return out;
}

export function exportStream(index: StreamIndex, views: Views, id: number, file: string, how: ExportKind = 'one', opts: ExportOptions = {}): ExportResult {
  const prog = phases(progress(opts.onProgress), ['checkpoints', 'pages']);
  // Nothing exists at file until the final rename, and a cancel before it removes the partial temp file.
  const cancel = (): void => throwIfCancelled(opts.signal, 'The export', `no file was written at ${file}`);
  const plan = planStream(index, views, id, how, opts, cancel, prog);
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w', FILE_MODE);
  let pos = 0;
  try {
    writeStream(index, plan, (b) => { fs.writeSync(fd, b, 0, b.length, pos); pos += b.length; }, cancel, prog);
    fs.fsyncSync(fd);
    cancel();
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
  } catch (e) {
    try { fs.closeSync(fd); } catch (_e) { /* closed */ }
    fs.rmSync(tmp, { force: true });
    if (isCancelled(e)) throw e;
    throw new StasisError('INVALID_INPUT', `Cannot write the stream to ${file} (${(e as Error).message}); choose a writable path.`);
  }
  prog.finish('written');
  return { file, kind: how, checkpoints: plan.ids, pages: plan.pageSrc.length, bytes: pos };
}

/**
 * The same stream as exportStream, in memory: nothing touches the disk (a migration's last round,
 * sent while the process is frozen, needs no durable copy on the way). Refused above maxBytes.
 */
export function exportStreamBytes(index: StreamIndex, views: Views, id: number, how: ExportKind, opts: ExportOptions & { maxBytes: number }): ExportResult & { data: Buffer } {
  const prog = phases(progress(opts.onProgress), ['checkpoints', 'pages']);
  const cancel = (): void => throwIfCancelled(opts.signal, 'The export', 'nothing was sent');
  const plan = planStream(index, views, id, how, opts, cancel, prog);
  if (plan.pageSrc.length * ENTRY > opts.maxBytes) {
    throw new StasisError('INVALID_INPUT', `Checkpoint #${id} as a stream holds ${plan.pageSrc.length} pages, more than the ${opts.maxBytes} bytes an in-memory export takes; export it to a file.`);
  }
  const parts: Buffer[] = [];
  let bytes = 0;
  writeStream(index, plan, (b) => { parts.push(Buffer.from(b)); bytes += b.length; }, cancel, prog);
  prog.finish('written');
  return { file: '', kind: how, checkpoints: plan.ids, pages: plan.pageSrc.length, bytes, data: Buffer.concat(parts, bytes) };
}

interface StreamPlan { ids: number[]; pageSrc: { file: number; page: number }[]; manifest: Buffer; version: number }

/** What a stream of id carries: its checkpoints' manifest and where each distinct page is read from. */
function planStream(index: StreamIndex, views: Views, id: number, how: ExportKind, opts: ExportOptions, cancel: () => void, prog: Phases<'checkpoints' | 'pages'>): StreamPlan {
  const { continues } = opts;
  const row = index.checkpointRow(id);
  if (continues !== undefined) {
    if (how !== 'one' || row.parent_id === null || row.tree_root !== null) {
      throw new StasisError('INVALID_INPUT', `Checkpoint #${id} cannot be sent as a continuation: ${row.parent_id === null ? 'it is a full checkpoint (it has no parent to continue)' : row.tree_root !== null ? 'it belongs to a tree checkpoint' : `only kind 'one' continues a chain`}.`);
    }
  }
  const ids = continues !== undefined ? [id] : selection(index, id, how);
  const pageIndex = new Map<string, number>();
  const pageSrc: { file: number; page: number }[] = [];
  const checkpoints: Manifest['checkpoints'] = [];
  for (const [i, c] of ids.entries()) {
    cancel();
    prog.at('checkpoints', i, ids.length, 'steps');
    const r = index.checkpointRow(c);
    const records = how === 'flattened' ? views.view(c) : index.ownExtents(c);
    const t = index.targetEntry(r.target_id);
    const recs: [number, number, number, number][] = [];
    for (const e of records) {
      if (e.kind !== KIND_DATA) { recs.push([e.vpn, e.count, e.kind, 0]); continue; }
      for (let i = 0; i < e.count; i++) {
        const h = index.reader.hashOf(e.file, e.page + i).toString('latin1');
        let sp = pageIndex.get(h);
        if (sp === undefined) { sp = pageSrc.length; pageIndex.set(h, sp); pageSrc.push({ file: e.file, page: e.page + i }); }
        const last = recs[recs.length - 1];
        if (last && last[2] === KIND_DATA && last[0] + last[1] === e.vpn + i && last[3] + last[1] === sp) last[1]++;
        else recs.push([e.vpn + i, 1, KIND_DATA, sp]);
      }
    }
    const state = (index.db.prepare('SELECT state FROM checkpoints WHERE id = ?').get(c) as { state: string }).state;
    checkpoints.push({
      ref: c, parent: how === 'flattened' ? null : r.parent_id && ids.includes(r.parent_id) ? r.parent_id : null,
      target: { pid: t.pid, startTime: t.startTime, exe: t.exe, cmdline: t.cmdline, name: t.name ?? null, createdAt: t.createdAt },
      createdAt: r.created_at, label: r.label, notes: r.notes, pinned: r.pinned === 1,
      mode: how === 'flattened' ? 'full' : (r.mode as 'full' | 'incremental'), dirtyTracking: r.dirty_tracking as Manifest['checkpoints'][number]['dirtyTracking'],
      restoredFrom: r.restored_from, stats: JSON.parse(r.stats) as Record<string, number>, state, records: recs,
      ...(r.tree_root !== null ? { tree: { root: r.tree_root, size: r.tree_size ?? 1 } } : {}),
      ...(continues !== undefined ? { continues } : {}),
    });
  }
  const version = continues !== undefined ? VERSION_CONTINUES : VERSION;
  const manifest = Buffer.from(JSON.stringify({ format: 'stasis-stream', version, kind: how, hash: 'blake3', exportedAt: new Date().toISOString(), checkpoints } satisfies Manifest), 'utf8');
  return { ids, pageSrc, manifest, version };
}

/** Writes the stream of plan through put (header, manifest, hash + page entries, checksum footer). */
function writeStream(index: StreamIndex, plan: StreamPlan, put0: (b: Buffer) => void, cancel: () => void, prog: Phases<'checkpoints' | 'pages'>): void {
  const { pageSrc, manifest, version } = plan;
  const header = Buffer.alloc(HEADER);
  MAGIC.copy(header, 0);
  header.writeUInt32LE(version, 8);
  header.writeUInt32LE(PAGE, 12);
  header.writeBigUInt64LE(BigInt(manifest.length), 16);
  header.writeBigUInt64LE(BigInt(pageSrc.length), 24);
  const sha = createHash('sha256');
  const put = (b: Buffer): void => { sha.update(b); put0(b); };
  put(header);
  put(manifest);
  const buf = Buffer.allocUnsafe(256 * ENTRY);
  for (let i = 0; i < pageSrc.length; i += 256) {
    cancel();
    prog.at('pages', i, pageSrc.length, 'pages');
    const n = Math.min(256, pageSrc.length - i);
    for (let k = 0; k < n; k++) {
      const s = pageSrc[i + k];
      index.reader.hashOf(s.file, s.page).copy(buf, k * ENTRY);
      index.reader.readPages(s.file, s.page, 1, buf, k * ENTRY + HASH_LEN);
    }
    put(buf.subarray(0, n * ENTRY));
  }
  put0(Buffer.concat([sha.digest(), END]));
}

interface ParsedStream { manifest: Manifest; pageCount: number; pagesAt: number }

/** Checks a stream completely without writing anything; bounded memory (the manifest plus 1 MiB). */
export type ImportPhase = 'checksum' | 'page hashes' | 'importing';
const IMPORT_PHASES: readonly ImportPhase[] = ['checksum', 'page hashes', 'importing'];

/** Where a stream's bytes are read from: a file, or a buffer (a migration's last round, never spooled). */
interface ByteSource { name: string; size: number; read(buf: Buffer, off: number, len: number, pos: number): number; close(): void }

function fileSource(file: string): ByteSource {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new StasisError('NOT_FOUND', `Cannot open the stream ${file} (${(e as Error).message}).`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    return { name: file, size, read: (buf, off, len, pos) => fs.readSync(fd, buf, off, len, pos), close: () => fs.closeSync(fd) };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

function bufferSource(name: string, data: Buffer): ByteSource {
  return { name, size: data.length, read: (buf, off, len, pos) => data.copy(buf, off, pos, Math.min(pos + len, data.length)), close: () => undefined };
}

export function validateStream(file: string, signal?: AbortSignal, prog?: Phases<ImportPhase>): ParsedStream & { src: ByteSource } {
  return validateSource(fileSource(file), signal, prog);
}

/** Validates src completely (closed when it throws); bounded memory besides the source itself. */
function validateSource(src: ByteSource, signal?: AbortSignal, prog?: Phases<ImportPhase>): ParsedStream & { src: ByteSource } {
  const cancel = (): void => throwIfCancelled(signal, 'The import', 'nothing was imported');
  const file = src.name;
  const fd = src;
  try {
    const size = src.size;
    if (size < HEADER + FOOTER) throw bad(file, `it is ${size} bytes, too short to be a stream`);
    const h = Buffer.alloc(HEADER);
    fd.read(h, 0, HEADER, 0);
    if (!h.subarray(0, 8).equals(MAGIC)) throw bad(file, 'it does not start with the stream magic (is it a Stasis stream?)');
    const version = h.readUInt32LE(8);
    if (version !== VERSION && version !== VERSION_CONTINUES) throw bad(file, `it is stream version ${version}, this Stasis reads versions ${VERSION} and ${VERSION_CONTINUES}`);
    if (h.readUInt32LE(12) !== PAGE) throw bad(file, `its page size is ${h.readUInt32LE(12)}, not ${PAGE}`);
    const mlen = h.readBigUInt64LE(16);
    const count = h.readBigUInt64LE(24);
    if (mlen > BigInt(MAX_MANIFEST) || mlen === 0n) throw bad(file, `its manifest length ${mlen} is out of range`);
    if (BigInt(HEADER) + mlen + count * BigInt(ENTRY) + BigInt(FOOTER) !== BigInt(size)) throw bad(file, 'its size does not match its header (truncated or padded)');
    const manifestLen = Number(mlen);
    const pageCount = Number(count);
    // Whole-file checksum first: later checks then read bytes that are known to be what was exported.
    const sha = createHash('sha256');
    const chunk = Buffer.allocUnsafe(1 << 20);
    for (let pos = 0; pos < size - FOOTER;) {
      cancel();
      prog?.at('checksum', pos, size - FOOTER, 'bytes');
      const n = fd.read(chunk, 0, Math.min(chunk.length, size - FOOTER - pos), pos);
      if (n <= 0) throw bad(file, 'it ended early while being read');
      sha.update(chunk.subarray(0, n));
      pos += n;
    }
    const f = Buffer.alloc(FOOTER);
    fd.read(f, 0, FOOTER, size - FOOTER);
    if (!f.subarray(32).equals(END)) throw bad(file, 'its footer magic is missing');
    if (!sha.digest().equals(f.subarray(0, 32))) throw bad(file, 'its checksum does not match (damaged in transit?)');
    const mbuf = Buffer.alloc(manifestLen);
    fd.read(mbuf, 0, manifestLen, HEADER);
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
      if (c.continues !== undefined && (version !== VERSION_CONTINUES || c.parent !== null || c.mode !== 'incremental' || c.tree)) throw bad(file, `checkpoint ${c.ref} continues another store's checkpoint but is not a version 2 incremental without a parent in the stream`);
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
    // Every page must be what its hash says.
    const pagesAt = HEADER + manifestLen;
    const buf = Buffer.allocUnsafe(256 * ENTRY);
    for (let i = 0; i < pageCount; i += 256) {
      cancel();
      prog?.at('page hashes', i, pageCount, 'pages');
      const n = Math.min(256, pageCount - i);
      fd.read(buf, 0, n * ENTRY, pagesAt + i * ENTRY);
      const k = firstMismatch(buf, n);
      if (k >= 0) throw bad(file, `page ${i + k} does not match its hash`);
    }
    return { src, manifest, pageCount, pagesAt };
  } catch (e) {
    src.close();
    throw e;
  }
}

/** A continuation stream's one checkpoint, as what it changes on top of the receiver's #continues. */
export interface StreamDelta {
  continues: number;
  /** The process state document (state/process-state.ts decodeState reads it). */
  state: string;
  runs: PageRun[];
  absent: { vaddr: bigint; pages: number }[];
}

/**
 * Validates a continuation stream held in memory with every check of an import and returns its
 * changes, without touching a store: a migration's last round is written into the waiting process
 * first and imported (durably) once that process runs.
 */
export function streamDelta(name: string, data: Buffer): StreamDelta {
  const { src, manifest, pagesAt } = validateSource(bufferSource(name, data));
  src.close();
  const c = manifest.checkpoints[0]!;
  if (manifest.checkpoints.length !== 1 || c.continues === undefined) throw bad(name, 'it is not a continuation of one checkpoint');
  const runs: PageRun[] = [];
  const absent: StreamDelta['absent'] = [];
  for (const [vpn, n, kind, sp] of c.records) {
    const vaddr = BigInt(vpn) << 12n;
    if (kind === KIND_ABSENT) { absent.push({ vaddr, pages: n }); continue; }
    if (kind !== KIND_DATA) { runs.push({ vaddr, pages: n, data: null }); continue; }
    const out = Buffer.allocUnsafe(n * PAGE);
    for (let i = 0; i < n; i++) {
      const at = pagesAt + (sp + i) * ENTRY + HASH_LEN;
      data.copy(out, i * PAGE, at, at + PAGE);
    }
    runs.push({ vaddr, pages: n, data: out });
  }
  return { continues: c.continues, state: c.state, runs, absent };
}

export function importStream(index: StreamIndex, file: string, signal?: AbortSignal, onProgress?: ProgressFn): { ids: number[] } {
  return importSource(index, fileSource(file), signal, onProgress);
}

/** importStream of a stream held in memory (name: what errors call it). */
export function importStreamBytes(index: StreamIndex, name: string, data: Buffer, signal?: AbortSignal, onProgress?: ProgressFn): { ids: number[] } {
  return importSource(index, bufferSource(name, data), signal, onProgress);
}

function importSource(index: StreamIndex, source: ByteSource, signal?: AbortSignal, onProgress?: ProgressFn): { ids: number[] } {
  // Every check comes before the index transaction; a cancel discards the new segment like any failure.
  const cancel = (): void => throwIfCancelled(signal, 'The import', 'nothing was imported');
  const prog = phases(progress(onProgress), IMPORT_PHASES);
  const { src: fd, manifest, pageCount, pagesAt } = validateSource(source, signal, prog);
  try {
    const seg = index.newSegment();
    try {
      // Where each stream page lives in this store after import (deduplicated).
      const loc = new Array<{ file: number; page: number } | undefined>(pageCount);
      const hashes = Buffer.alloc(pageCount * HASH_LEN);
      const newPages: { key: bigint; file: number; page: number }[] = [];
      const local = new Map<string, number>();
      const buf = Buffer.allocUnsafe(256 * ENTRY);
      for (let i = 0; i < pageCount; i += 256) {
        cancel();
        prog.at('importing', i, pageCount, 'pages');
        const n = Math.min(256, pageCount - i);
        fd.read(buf, 0, n * ENTRY, pagesAt + i * ENTRY);
        const keys: bigint[] = [];
        for (let k = 0; k < n; k++) keys.push(hashKey(buf.subarray(k * ENTRY, k * ENTRY + HASH_LEN)));
        const found = index.lookupDedup(keys);
        for (let k = 0; k < n; k++) {
          const h = Buffer.from(buf.subarray(k * ENTRY, k * ENTRY + HASH_LEN));
          h.copy(hashes, (i + k) * HASH_LEN);
          const hs = h.toString('latin1');
          const mine = local.get(hs);
          if (mine !== undefined) { loc[i + k] = { file: seg.fileId, page: mine }; continue; }
          const f = found.get(keys[k]);
          if (f) {
            let ok = false;
            try { ok = index.reader.hashOf(f.file, f.page).equals(h); } catch (_e) { ok = false; }
            if (ok) { loc[i + k] = f; continue; }
          }
          const p = seg.addPage(buf, k * ENTRY + HASH_LEN, h);
          local.set(hs, p);
          newPages.push({ key: keys[k], file: seg.fileId, page: p });
          loc[i + k] = { file: seg.fileId, page: p };
        }
      }
      // A continuation attaches to a checkpoint of this store: it must be there, of the same process.
      for (const c of manifest.checkpoints) {
        if (c.continues === undefined) continue;
        const base = index.get(c.continues);
        const t = base ? index.targetEntry(base.targetId) : null;
        if (!t || t.startTime !== c.target.startTime || t.pid !== c.target.pid) {
          throw new StasisError('INVALID_INPUT', `The stream continues checkpoint #${c.continues} of process ${c.target.pid}, which ${t ? 'is of another process' : 'is not'} in ${index.dir}; nothing was imported. Send the chain from its full checkpoint again.`);
        }
      }
      const refMap = new Map<number, number>();
      // Ids first: a tree member names its root, which may come later in the stream.
      for (const c of manifest.checkpoints) refMap.set(c.ref, index.allocate('next_ckpt'));
      const defs: { def: DefEntry; extents: Extent[] }[] = [];
      const recBufs: Buffer[] = [];
      let recOff = 0;
      for (const c of manifest.checkpoints) {
        cancel();
        const id = refMap.get(c.ref)!;
        const extents: Extent[] = [];
        const dataHashes: Buffer[] = [];
        for (const [vpn, n, kind, sp] of c.records) {
          if (kind !== KIND_DATA) { pushExtent(extents, { vpn, count: n, kind: kind as ExtentKind, file: 0, page: 0 }); continue; }
          for (let i = 0; i < n; i++) {
            const l = loc[sp + i]!;
            pushExtent(extents, { vpn: vpn + i, count: 1, kind: KIND_DATA, file: l.file, page: l.page });
            dataHashes.push(hashes.subarray((sp + i) * HASH_LEN, (sp + i + 1) * HASH_LEN));
          }
        }
        const rb = encodeRecords(extents.map((e) => ({ vpn: e.vpn, count: e.count, kind: e.kind })), Buffer.concat(dataHashes));
        const def: DefEntry = {
          type: 'def', ckpt: id, target: { ...c.target, name: c.target.name ?? null }, parent: c.continues ?? (c.parent === null ? null : refMap.get(c.parent)!),
          createdAt: c.createdAt, label: c.label, notes: c.notes, pinned: c.pinned, mode: c.mode, dirtyTracking: c.dirtyTracking,
          restoredFrom: null, stats: c.stats, state: c.state, recordsOffset: recOff, extents: extents.length, dataPages: dataHashes.length,
          ...(c.tree ? { tree: { root: refMap.get(c.tree.root)!, size: c.tree.size } } : {}),
        };
        recBufs.push(rb);
        recOff += rb.length;
        defs.push({ def, extents });
      }
      const entries: Entry[] = defs.map((d) => d.def);
      cancel(); // last chance: after finish() the segment is no longer a temp file discard() removes
      const { bytes, pages, blockBytes } = seg.finish(entries, Buffer.concat(recBufs));
      index.publish(seg.fileId, () => {
        index.insertFile(seg.fileId, bytes, pages, entries, blockBytes);
        for (const d of defs) index.applyDef(d.def, seg.fileId, d.extents);
      });
      index.addDedup(newPages);
      prog.finish('imported');
      return { ids: defs.map((d) => d.def.ckpt) };
    } catch (e) {
      seg.discard();
      throw e;
    }
  } finally {
    fd.close();
  }
}
