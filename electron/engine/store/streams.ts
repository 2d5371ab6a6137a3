/**
 * Stream files: a checkpoint (with its ancestors, flattened into one full, or its whole tree) as
 * one self-checking file, and importing such a file into another store. Import validates the whole
 * file (sizes, checksums, every page hash, every record) before it writes anything, then writes one
 * segment and one index transaction: never a crash, a hang, a huge allocation or a half import.
 */
import * as fs from 'node:fs';
import { StasisError } from '../../../shared/errors';
import type { ExportKind, ExportOptions, ExportResult, PageRun, StreamExport } from './api';

export type { StreamExport };
import { KIND_ABSENT, KIND_DATA } from './extents';
import { HASH_LEN, PAGE } from './format';
import { isCancelled, throwIfCancelled } from './cancel';
import { FILE_MODE } from './segments';
import { END, ENTRY, FOOTER, HEADER, MAX_MANIFEST, StreamChecksum, bad, parseManifest, readHeader, versionFor, writeHeader, type Manifest } from './stream-format';
import { beginStreamImport } from './stream-import';
import { firstMismatch } from './hash';
import { HashSlots, copyHash } from './hash-slots';
import type { StoreIndex } from './store-index';
import type { ChainViews } from './views';
import { phases, progress, type Phases, type ProgressFn } from '../progress';

/** The parts of the index this module reads and writes. */
export type StreamIndex = Pick<StoreIndex, 'dir' | 'db' | 'reader' | 'checkpointRow' | 'ownExtents' | 'chain' | 'treeMembers' | 'targetEntry' | 'get' | 'allocate' | 'newSegment' | 'lookupDedup' | 'dedupEmpty' | 'publish' | 'insertFile' | 'applyDef' | 'addDedup' | 'addDedupLater'>;
type Views = Pick<ChainViews, 'view'>;

/** The stream file's fixed parts, for a sender that ships it in pieces (engine/migrate/negotiate.ts). */
export const STREAM_LAYOUT = { header: HEADER, footer: FOOTER, entry: ENTRY, maxManifest: MAX_MANIFEST } as const;

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
    for (const b of streamChunks(index, plan, cancel, prog)) { fs.writeSync(fd, b, 0, b.length, pos); pos += b.length; }
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
 * The same stream as exportStream, produced while it is sent: the plan (manifest, which pages) is
 * made now, its size is known at once, and chunks() reads the pages from the segments only as the
 * consumer asks for them (no stream file: a migration's rounds and a send go straight into the
 * wire). Each chunk is a fresh buffer of at most STREAM_CHUNK bytes the consumer may keep.
 */
export function openExport(index: StreamIndex, views: Views, id: number, how: ExportKind, opts: ExportOptions = {}): StreamExport {
  const prog = phases(progress(opts.onProgress), ['checkpoints', 'pages']);
  const cancel = (): void => throwIfCancelled(opts.signal, 'The export', 'the stream was cut short (the receiver imports nothing of it)');
  const plan = planStream(index, views, id, how, opts, cancel, prog);
  const head = Buffer.concat([writeHeader(plan.version, plan.manifest.length, plan.pageSrc.length), plan.manifest]);
  return {
    file: '', kind: how, checkpoints: plan.ids, pages: plan.pageSrc.length, bytes: head.length + plan.pageSrc.length * ENTRY + FOOTER, head,
    hashes() {
      return Buffer.from(plan.pageSrc.hashes.subarray(0, plan.pageSrc.length * HASH_LEN));
    },
    *chunks(reuse = false) {
      yield* streamChunks(index, plan, cancel, prog, reuse);
      prog.finish('written');
    },
    footerFromHashes() {
      const n = plan.pageSrc.length;
      const sum = new StreamChecksum(head.length + n * ENTRY + FOOTER);
      sum.update(head);
      if (!sum.hashesOnly) return null;
      sum.updateHashesOnly(plan.pageSrc.hashes.subarray(0, n * HASH_LEN));
      return Buffer.concat([sum.digest(), END]);
    },
    *wantedPages(wanted, out) {
      const { file, page, length } = plan.pageSrc;
      const room = Math.floor(out.length / PAGE);
      let n = 0;
      for (let i = 0; i < length;) {
        if (!wanted(i)) { i++; continue; }
        cancel();
        // A run of wanted pages stored one after another: one read.
        let r = 1;
        while (n + r < room && i + r < length && wanted(i + r) && file[i + r] === file[i] && page[i + r] === page[i]! + r) r++;
        index.reader.readPages(file[i]!, page[i]!, r, out, n * PAGE);
        n += r;
        i += r;
        if (n === room) { prog.at('pages', i, length, 'pages'); yield n; n = 0; }
      }
      if (n) yield n;
      prog.finish('written');
    },
  };
}

/**
 * The same stream as exportStream, in memory: nothing touches the disk (a migration's last round,
 * sent while the process is frozen, needs no durable copy on the way). Refused above maxBytes.
 */
export function exportStreamBytes(index: StreamIndex, views: Views, id: number, how: ExportKind, opts: ExportOptions & { maxBytes: number; into?: Buffer }): ExportResult & { data: Buffer } {
  const prog = phases(progress(opts.onProgress), ['checkpoints', 'pages']);
  const cancel = (): void => throwIfCancelled(opts.signal, 'The export', 'nothing was sent');
  const plan = planStream(index, views, id, how, { checksum: 'bytes', ...opts }, cancel, prog);
  if (plan.pageSrc.length * ENTRY > opts.maxBytes) {
    throw new StasisError('INVALID_INPUT', `Checkpoint #${id} as a stream holds ${plan.pageSrc.length} pages, more than the ${opts.maxBytes} bytes an in-memory export takes; export it to a file.`);
  }
  const total = HEADER + plan.manifest.length + plan.pageSrc.length * ENTRY + FOOTER;
  const result = { file: '', kind: how, checkpoints: plan.ids, pages: plan.pageSrc.length, bytes: total };
  // Into the caller's memory when it fits: its pages are already there (a migration's last round is
  // exported while the process is frozen, and each fresh page costs a fault: docs/benchmarks.md).
  if (opts.into && opts.into.length >= total) {
    const out = opts.into;
    let pos = 0;
    for (const b of streamChunks(index, plan, cancel, prog, false, out)) {
      if (b.buffer !== out.buffer || b.byteOffset !== out.byteOffset + pos) b.copy(out, pos);
      pos += b.length;
    }
    prog.finish('written');
    return { ...result, data: out.subarray(0, total) };
  }
  const parts: Buffer[] = [];
  let bytes = 0;
  for (const b of streamChunks(index, plan, cancel, prog)) { parts.push(b); bytes += b.length; }
  prog.finish('written');
  return { ...result, bytes, data: Buffer.concat(parts, bytes) };
}

interface StreamPlan { ids: number[]; pageSrc: PageList; manifest: Buffer; version: number }

/**
 * The distinct pages of a stream in stream order: where each is read from (segment file, page)
 * and its hash. A page whose hash is already listed is not listed again (the stream carries each
 * content once); found by hash through HashSlots, no string or object per page.
 */
class PageList {
  length = 0;
  file = new Int32Array(1024);
  page = new Int32Array(1024);
  hashes = Buffer.allocUnsafe(1024 * HASH_LEN);
  private readonly slots = new HashSlots();

  /** The index of the page with the hash at h[at..at+32] (listed from file/page when it is new). */
  place(h: Buffer, at: number, file: number, page: number): number {
    const sp = this.slots.findOrAdd(this.hashes, h, at, this.length);
    if (sp >= 0) return sp;
    if (this.length === this.file.length) {
      const n = this.length * 2;
      const f = new Int32Array(n); f.set(this.file); this.file = f;
      const p = new Int32Array(n); p.set(this.page); this.page = p;
      const hs = Buffer.allocUnsafe(n * HASH_LEN); this.hashes.copy(hs, 0, 0, this.length * HASH_LEN); this.hashes = hs;
    }
    this.file[this.length] = file;
    this.page[this.length] = page;
    copyHash(h, at, this.hashes, this.length * HASH_LEN);
    return this.length++;
  }
}

/** What a stream of id carries: its checkpoints' manifest and where each distinct page is read from. */
function planStream(index: StreamIndex, views: Views, id: number, how: ExportKind, opts: ExportOptions, cancel: () => void, prog: Phases<'checkpoints' | 'pages'>): StreamPlan {
  const { continues } = opts;
  const row = index.checkpointRow(id);
  if (continues !== undefined) {
    if (how !== 'one' || row.parent_id === null || (row.tree_root !== null && opts.memberAlone !== true)) {
      throw new StasisError('INVALID_INPUT', `Checkpoint #${id} cannot be sent as a continuation: ${row.parent_id === null ? 'it is a full checkpoint (it has no parent to continue)' : row.tree_root !== null ? 'it belongs to a tree checkpoint' : `only kind 'one' continues a chain`}.`);
    }
  }
  const ids = continues !== undefined ? [id] : selection(index, id, how);
  const pageSrc = new PageList();
  const checkpoints: Manifest['checkpoints'] = [];
  // An extent's hashes, copied once per extent (not a view and a lookup per page).
  let scratch = Buffer.allocUnsafe(256 * HASH_LEN);
  for (const [i, c] of ids.entries()) {
    cancel();
    prog.at('checkpoints', i, ids.length, 'steps');
    const r = index.checkpointRow(c);
    const records = how === 'flattened' ? views.view(c) : index.ownExtents(c);
    const t = index.targetEntry(r.target_id);
    const recs: [number, number, number, number][] = [];
    for (const e of records) {
      if (e.kind !== KIND_DATA) { recs.push([e.vpn, e.count, e.kind, 0]); continue; }
      if (scratch.length < e.count * HASH_LEN) scratch = Buffer.allocUnsafe(e.count * HASH_LEN);
      index.reader.copyHashes(e.file, e.page, e.count, scratch, 0);
      for (let i = 0; i < e.count; i++) {
        const sp = pageSrc.place(scratch, i * HASH_LEN, e.file, e.page + i);
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
      ...(r.tree_root !== null && continues === undefined ? { tree: { root: r.tree_root, size: r.tree_size ?? 1 } } : {}),
      ...(continues !== undefined ? { continues } : {}),
    });
  }
  const version = versionFor(continues !== undefined, opts.checksum ?? 'hashes');
  const manifest = Buffer.from(JSON.stringify({ format: 'stasis-stream', version, kind: how, hash: 'blake3', exportedAt: new Date().toISOString(), checkpoints } satisfies Manifest), 'utf8');
  return { ids, pageSrc, manifest, version };
}

/** Bytes per chunk of a produced stream (a wire data frame carries one). */
export const STREAM_CHUNK = 1 << 20;
/** Entries per chunk of pages. */
const PER_CHUNK = Math.floor(STREAM_CHUNK / ENTRY);

/**
 * The stream of plan in order (header, manifest, hash + page entries, checksum footer), one fresh
 * buffer of at most STREAM_CHUNK bytes at a time (with reuse, one buffer for every chunk of
 * entries: the consumer is done with each before it asks for the next). Runs of consecutive stored
 * pages are read with one readv per block, straight into their entries.
 */
function* streamChunks(index: StreamIndex, plan: StreamPlan, cancel: () => void, prog: Phases<'checkpoints' | 'pages'>, reuse = false, into?: Buffer): Generator<Buffer> {
  const { pageSrc, manifest, version } = plan;
  const head = Buffer.concat([writeHeader(version, manifest.length, pageSrc.length), manifest]);
  const sum = new StreamChecksum(head.length + pageSrc.length * ENTRY + FOOTER);
  sum.update(head);
  for (let o = 0; o < head.length; o += STREAM_CHUNK) yield head.subarray(o, Math.min(head.length, o + STREAM_CHUNK));
  const shared = reuse && pageSrc.length ? Buffer.allocUnsafe(Math.min(PER_CHUNK, pageSrc.length) * ENTRY) : null;
  for (let i = 0; i < pageSrc.length; i += PER_CHUNK) {
    cancel();
    prog.at('pages', i, pageSrc.length, 'pages');
    const n = Math.min(PER_CHUNK, pageSrc.length - i);
    // into: the entries are read straight into where the whole stream goes (exportStreamBytes).
    const at = head.length + i * ENTRY;
    const buf = into ? into.subarray(at, at + n * ENTRY) : shared ? shared.subarray(0, n * ENTRY) : Buffer.allocUnsafe(n * ENTRY);
    const { file, page } = pageSrc;
    for (let k = 0; k < n;) {
      const f = file[i + k]!, p = page[i + k]!;
      let r = 1;
      while (k + r < n && file[i + k + r] === f && page[i + k + r] === p + r) r++;
      const first = k;
      index.reader.readEntries(f, p, r, buf, (j) => (first + j) * ENTRY);
      k += r;
    }
    sum.update(buf);
    yield buf;
  }
  yield Buffer.concat([sum.digest(), END]);
}

interface ParsedStream { manifest: Manifest; pageCount: number; pagesAt: number }

/** Checks a stream completely without writing anything; bounded memory (the manifest plus 1 MiB). */
export type ImportPhase = 'checksum' | 'page hashes' | 'importing';

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
    const h = Buffer.alloc(HEADER);
    if (size >= HEADER) fd.read(h, 0, HEADER, 0);
    const { version, manifestLen, pageCount } = readHeader(file, h, size);
    // Whole-file checksum first: later checks then read bytes that are known to be what was exported
    // (their metadata and page hashes; the pages themselves are checked against those below).
    const sum = new StreamChecksum(size);
    const chunk = Buffer.allocUnsafe(1 << 20);
    for (let pos = 0; pos < size - FOOTER;) {
      cancel();
      prog?.at('checksum', pos, size - FOOTER, 'bytes');
      const n = fd.read(chunk, 0, Math.min(chunk.length, size - FOOTER - pos), pos);
      if (n <= 0) throw bad(file, 'it ended early while being read');
      sum.update(chunk.subarray(0, n));
      pos += n;
    }
    const f = Buffer.alloc(FOOTER);
    fd.read(f, 0, FOOTER, size - FOOTER);
    if (!f.subarray(32).equals(END)) throw bad(file, 'its footer magic is missing');
    if (!sum.digest().equals(f.subarray(0, 32))) throw bad(file, 'its checksum does not match (damaged in transit?)');
    const mbuf = Buffer.alloc(manifestLen);
    fd.read(mbuf, 0, manifestLen, HEADER);
    const manifest = parseManifest(file, mbuf, version, pageCount);
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

/**
 * validateSource's checks on a stream held in memory, read where it lies: the checksum and the page
 * hashes run over data itself (no copy into fresh buffers, whose page faults cost more than the
 * checks on a migration's last round).
 */
function validateBuffer(name: string, data: Buffer): ParsedStream {
  const size = data.length;
  const h = Buffer.alloc(HEADER);
  data.copy(h, 0, 0, Math.min(HEADER, size));
  const { version, manifestLen, pageCount } = readHeader(name, h, size);
  const sum = new StreamChecksum(size);
  sum.update(data.subarray(0, size - FOOTER));
  const f = data.subarray(size - FOOTER);
  if (!f.subarray(32).equals(END)) throw bad(name, 'its footer magic is missing');
  if (!sum.digest().equals(f.subarray(0, 32))) throw bad(name, 'its checksum does not match (damaged in transit?)');
  const manifest = parseManifest(name, data.subarray(HEADER, HEADER + manifestLen), version, pageCount);
  const pagesAt = HEADER + manifestLen;
  for (let i = 0; i < pageCount; i += 256) {
    const n = Math.min(256, pageCount - i);
    const k = firstMismatch(data.subarray(pagesAt + i * ENTRY, pagesAt + (i + n) * ENTRY), n);
    if (k >= 0) throw bad(name, `page ${i + k} does not match its hash`);
  }
  return { manifest, pageCount, pagesAt };
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
export function streamDelta(name: string, data: Buffer, scratch?: Buffer): StreamDelta {
  const { manifest, pagesAt } = validateBuffer(name, data);
  const c = manifest.checkpoints[0]!;
  if (manifest.checkpoints.length !== 1 || c.continues === undefined) throw bad(name, 'it is not a continuation of one checkpoint');
  const runs: PageRun[] = [];
  const absent: StreamDelta['absent'] = [];
  // The runs' pages go side by side into scratch when it holds them all (memory already faulted in: a
  // migration's last round is read here inside the downtime), else each into a fresh buffer.
  const dataPages = c.records.reduce((k, r) => k + (r[2] === KIND_DATA ? r[1] : 0), 0);
  let free = scratch && scratch.length >= dataPages * PAGE ? scratch : null;
  for (const [vpn, n, kind, sp] of c.records) {
    const vaddr = BigInt(vpn) << 12n;
    if (kind === KIND_ABSENT) { absent.push({ vaddr, pages: n }); continue; }
    if (kind !== KIND_DATA) { runs.push({ vaddr, pages: n, data: null }); continue; }
    let out: Buffer;
    if (free) { out = free.subarray(0, n * PAGE); free = free.subarray(n * PAGE); } else out = Buffer.allocUnsafe(n * PAGE);
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

/**
 * Imports a whole stream from src through the incremental importer (stream-import.ts): one pass,
 * every check of the format, nothing visible unless all of them passed.
 */
function importSource(index: StreamIndex, src: ByteSource, signal?: AbortSignal, onProgress?: ProgressFn): { ids: number[] } {
  const imp = beginStreamImport(index, src.size, { name: src.name, ...(signal ? { signal } : {}), ...(onProgress ? { onProgress } : {}) });
  try {
    const buf = Buffer.allocUnsafe(STREAM_CHUNK);
    for (let pos = 0; pos < src.size && !imp.hopeless;) {
      const n = src.read(buf, 0, Math.min(buf.length, src.size - pos), pos);
      if (n <= 0) break;
      imp.push(buf.subarray(0, n));
      pos += n;
    }
    return imp.finish();
  } finally {
    imp.abort();
    src.close();
  }
}
