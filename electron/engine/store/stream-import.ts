/**
 * Importing a stream (stream-format.ts) while its bytes arrive: each page is checked against its
 * hash (batched through the addon) and written into a new segment through the ordinary segment
 * writer as it comes, the whole-stream SHA-256 is computed on the way, and only once the footer
 * matched is the segment sealed and published in one index transaction. Until then the segment is
 * a temp file that a failure, an abort or a crash throws away (the store's crash rules): nothing
 * of a truncated, damaged or refused stream is ever visible. One pass over the bytes, no spool.
 *
 * Problems found mid-stream are kept, not thrown, and the rest is still read: a receiver stays in
 * step with its sender, and finish() reports them in the order a whole-file check would (an
 * incomplete stream, then its footer and checksum, then what the bytes say), so a stream damaged
 * in transit is called that rather than by the first page the damage hit.
 */
import { StasisError } from '../../../shared/errors';
import { KIND_DATA, pushExtent, type Extent, type ExtentKind } from './extents';
import { HASH_LEN, encodeRecords, type DefEntry, type Entry } from './format';
import { firstMismatch } from './hash';
import { HashSlots, copyHash } from './hash-slots';
import { throwIfCancelled } from './cancel';
import type { SegmentWriter } from './segments';
import { END, ENTRY, FOOTER, HEADER, StreamChecksum, bad, parseManifest, readHeader, type Manifest } from './stream-format';
import type { StreamImport } from './api';
import type { StoreIndex } from './store-index';
import { phases, progress, type Phases, type ProgressFn } from '../progress';

export type { StreamImport };
/** The parts of the index an import reads and writes. */
type ImportIndex = Pick<StoreIndex, 'dir' | 'reader' | 'get' | 'targetEntry' | 'allocate' | 'newSegment' | 'lookupDedup' | 'dedupEmpty' | 'publish' | 'insertFile' | 'applyDef' | 'addDedup' | 'addDedupLater'>;

/** Pages checked and written per batch (1 MiB of pages). */
const BATCH = 256;

export interface StreamImportOptions {
  /** What errors call the stream. */
  name: string;
  signal?: AbortSignal;
  onProgress?: ProgressFn;
  /** Called once, when the import ends either way (the store releases its writer lock). */
  onEnd?: () => void;
  /** Segments whose pages are not deduplicated against (a resume found one of their pages damaged). */
  avoidFiles?: ReadonlySet<number>;
}

/** An import of a stream of `total` bytes into index (the caller holds the store's writer lock). */
export function beginStreamImport(index: ImportIndex, total: number, opts: StreamImportOptions): StreamImport {
  return new Importer(index, total, opts);
}

class Importer implements StreamImport {
  received = 0;
  failure: Error | null = null;
  private readonly sum: StreamChecksum;
  private readonly prog: Phases<'importing'>;
  /** Bytes of an unfinished part (header, manifest, entry, footer) carried to the next push. */
  private carry: Buffer[] = [];
  private carried = 0;
  private manifest: Manifest | null = null;
  private manifestLen = 0;
  private pageCount = 0;
  private version = 0;
  /** Entries done (checked, and written or found elsewhere). */
  private pagesDone = 0;
  private seg: SegmentWriter | null = null;
  /** Where each stream page lives in this store after the import (deduplicated). */
  private locFile = new Int32Array(0);
  private locPage = new Int32Array(0);
  private hashes = Buffer.alloc(0);
  /** The first stream page with each hash (its full hash is in hashes), placed in the new segment or found in the store. */
  private readonly local = new HashSlots();
  /** Nothing stored to find: a fresh receiver's full skips the look-ups (a missing dedup row only stores a page again). */
  private noDedup = false;
  /** The stream pages written into the new segment: their dedup rows, built once inserted. */
  private newPages: number[] = [];
  private footer = Buffer.alloc(0);
  private ended = false;

  constructor(private readonly index: ImportIndex, private readonly total: number, private readonly opts: StreamImportOptions) {
    this.prog = phases(progress(opts.onProgress), ['importing']);
    this.sum = new StreamChecksum(total);
    try {
      if (!Number.isSafeInteger(total) || total < HEADER + FOOTER) readHeader(opts.name, Buffer.alloc(HEADER), Math.max(0, total));
    } catch (e) {
      this.failure = e as Error;
    }
  }

  get hopeless(): boolean {
    return this.failure !== null && this.manifestLen === 0;
  }

  push(chunk: Buffer, verified = false): void {
    if (this.ended) throw new StasisError('INTERNAL', 'bytes pushed into a finished import');
    throwIfCancelled(this.opts.signal, 'The import', 'nothing was imported');
    if (this.received + chunk.length > this.total) {
      this.fail(bad(this.opts.name, `it is longer than the ${this.total} bytes announced`));
      chunk = chunk.subarray(0, this.total - this.received);
    }
    this.sum.update(chunk);
    this.received += chunk.length;
    this.prog.at('importing', this.received, this.total, 'bytes');
    if (this.failure) {
      this.keepFooter(chunk);
      return;
    }
    try {
      this.take(chunk, verified);
    } catch (e) {
      this.fail(e as Error);
      this.keepFooter(chunk);
    }
  }

  /** After a failure only the footer matters (finish() compares it): the last FOOTER bytes. */
  private keepFooter(chunk: Buffer): void {
    const start = this.received - chunk.length;
    const footAt = this.total - FOOTER;
    if (this.received <= footAt) return;
    const from = Math.max(0, footAt - start);
    this.footer = Buffer.concat([this.footer.subarray(0, Math.max(0, start - footAt)), chunk.subarray(from)]);
  }

  private fail(e: Error): void {
    if (!this.failure) this.failure = e;
    this.seg?.discard();
  }

  /** Joins the carried bytes and chunk when a part needs both (rare: parts are aligned with chunks on the wire). */
  private need(chunk: Buffer, at: number, len: number): { buf: Buffer; used: number } | null {
    if (this.carried === 0 && chunk.length - at >= len) return { buf: chunk.subarray(at, at + len), used: len };
    const want = len - this.carried;
    const have = chunk.length - at;
    if (have < want) {
      this.carry.push(Buffer.from(chunk.subarray(at)));
      this.carried += have;
      return null;
    }
    const buf = Buffer.concat([...this.carry, chunk.subarray(at, at + want)], len);
    this.carry = [];
    this.carried = 0;
    return { buf, used: want };
  }

  private take(chunk: Buffer, verified: boolean): void {
    let at = 0;
    const name = this.opts.name;
    while (at < chunk.length) {
      if (this.manifest === null && this.manifestLen === 0) {
        const p = this.need(chunk, at, HEADER);
        if (!p) return;
        at += p.used;
        const h = readHeader(name, p.buf, this.total);
        this.manifestLen = h.manifestLen;
        this.pageCount = h.pageCount;
        this.version = h.version;
        continue;
      }
      if (this.manifest === null) {
        const p = this.need(chunk, at, this.manifestLen);
        if (!p) return;
        at += p.used;
        this.manifest = parseManifest(name, p.buf, this.version, this.pageCount);
        // A continuation attaches to a checkpoint of this store: said now, before any page is written.
        checkContinuations(this.index, this.manifest);
        this.locFile = new Int32Array(this.pageCount);
        this.locPage = new Int32Array(this.pageCount);
        this.hashes = Buffer.allocUnsafe(this.pageCount * HASH_LEN);
        this.noDedup = this.index.dedupEmpty();
        this.seg = this.index.newSegment();
        continue;
      }
      if (this.pagesDone < this.pageCount) {
        if (this.carried) {
          const p = this.need(chunk, at, ENTRY);
          if (!p) return;
          at += p.used;
          this.entries(p.buf, 0, 1, verified);
          continue;
        }
        const n = Math.min(this.pageCount - this.pagesDone, Math.floor((chunk.length - at) / ENTRY));
        for (let k = 0; k < n; k += BATCH) this.entries(chunk, at + k * ENTRY, Math.min(BATCH, n - k), verified);
        at += n * ENTRY;
        if (n === 0) { this.need(chunk, at, ENTRY); return; }
        continue;
      }
      this.keepFooter(chunk.subarray(at));
      return;
    }
  }

  /** n whole entries at buf[off..]: checked against their hashes, then found in this store or written. */
  private entries(buf: Buffer, off: number, n: number, verified: boolean): void {
    const base = this.pagesDone;
    if (!verified) {
      const badAt = firstMismatch(off === 0 && buf.length === n * ENTRY ? buf : buf.subarray(off, off + n * ENTRY), n);
      if (badAt >= 0) throw bad(this.opts.name, `page ${base + badAt} does not match its hash`);
    }
    // The dedup table's keys only when it is looked up (a fresh receiver's full skips it).
    let found: Map<bigint, { file: number; page: number }> | null = null;
    if (!this.noDedup) {
      const keys: bigint[] = new Array<bigint>(n);
      for (let k = 0; k < n; k++) keys[k] = buf.readBigInt64LE(off + k * ENTRY);
      found = this.index.lookupDedup(keys);
    }
    const seg = this.seg!;
    const hashes = this.hashes;
    for (let k = 0; k < n; k++) {
      const i = base + k;
      const o = off + k * ENTRY;
      const at = i * HASH_LEN;
      copyHash(buf, o, hashes, at);
      // The stream carried this content before: where that page went (the new segment or the store).
      const first = this.local.findOrAdd(hashes, hashes, at, i);
      if (first >= 0) { this.locFile[i] = this.locFile[first]!; this.locPage[i] = this.locPage[first]!; continue; }
      const f = found?.get(hashes.readBigInt64LE(at));
      if (f && !this.opts.avoidFiles?.has(f.file)) {
        let ok: boolean;
        try { ok = this.index.reader.hashOf(f.file, f.page).compare(hashes, at, at + HASH_LEN) === 0; } catch (_e) { ok = false; }
        if (ok) { this.locFile[i] = f.file; this.locPage[i] = f.page; continue; }
      }
      const p = seg.addPage(buf, o + HASH_LEN, hashes, at);
      this.newPages.push(i);
      this.locFile[i] = seg.fileId;
      this.locPage[i] = p;
    }
    this.pagesDone += n;
  }

  finish(): { ids: number[] } {
    if (this.ended) throw new StasisError('INTERNAL', 'an import finished twice');
    try {
      const name = this.opts.name;
      // A header that does not parse (another version, not a stream) is the verdict: a reader stops
      // there (hopeless), so the stream would otherwise be called short.
      if (this.failure && this.manifestLen === 0) throw this.failure;
      if (this.received < this.total) throw bad(name, `it ended early, after ${this.received} of its ${this.total} bytes`);
      if (this.footer.length !== FOOTER || !this.footer.subarray(32).equals(END)) throw bad(name, 'its footer magic is missing');
      if (!this.sum.digest().equals(this.footer.subarray(0, 32))) throw bad(name, 'its checksum does not match (damaged in transit?)');
      if (this.failure) throw this.failure;
      return this.publish();
    } catch (e) {
      this.seg?.discard();
      throw e;
    } finally {
      this.end();
    }
  }

  abort(): void {
    this.seg?.discard();
    if (!this.ended) this.end();
  }

  /**
   * Ends an import that broke off but keeps its pages: the segment is sealed and published with no
   * checkpoint in it (nothing becomes visible: no checkpoint names these pages, and gc removes them
   * if no later import does) and its dedup rows go in at once, so a resend finds the pages in the
   * store. Only pages checked against their hashes were placed. A failed import keeps nothing.
   */
  salvage(): { file: number; pages: number } | null {
    if (this.ended) return null;
    const seg = this.seg;
    try {
      if (this.failure || !seg || this.newPages.length === 0) { seg?.discard(); return null; }
      const { bytes, pages, blockBytes } = seg.finish([], Buffer.alloc(0));
      this.index.publish(seg.fileId, () => this.index.insertFile(seg.fileId, bytes, pages, [], blockBytes));
      const { hashes, locPage } = this;
      this.index.addDedup(this.newPages.map((i) => ({ key: hashes.readBigInt64LE(i * HASH_LEN), file: seg.fileId, page: locPage[i]! })));
      return { file: seg.fileId, pages };
    } catch (_e) {
      // Keeping them is a courtesy to the resend: without it the pages are asked for again.
      seg?.discard();
      return null;
    } finally {
      this.end();
    }
  }

  private end(): void {
    this.ended = true;
    this.opts.onEnd?.();
  }

  /** The checkpoints' records into the segment and the index, in one transaction. */
  private publish(): { ids: number[] } {
    const index = this.index;
    const manifest = this.manifest!;
    const seg = this.seg!;
    const refMap = new Map<number, number>();
    // Ids first: a tree member names its root, which may come later in the stream.
    for (const c of manifest.checkpoints) refMap.set(c.ref, index.allocate('next_ckpt'));
    const defs: { def: DefEntry; extents: Extent[] }[] = [];
    const recBufs: Buffer[] = [];
    let recOff = 0;
    for (const c of manifest.checkpoints) {
      const id = refMap.get(c.ref)!;
      const extents: Extent[] = [];
      const dataHashes: Buffer[] = [];
      for (const [vpn, n, kind, sp] of c.records) {
        if (kind !== KIND_DATA) { pushExtent(extents, { vpn, count: n, kind: kind as ExtentKind, file: 0, page: 0 }); continue; }
        for (let i = 0; i < n; i++) {
          pushExtent(extents, { vpn: vpn + i, count: 1, kind: KIND_DATA, file: this.locFile[sp + i]!, page: this.locPage[sp + i]! });
          dataHashes.push(this.hashes.subarray((sp + i) * HASH_LEN, (sp + i + 1) * HASH_LEN));
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
    // Last chance: after finish() the segment is no longer a temp file discard() removes.
    throwIfCancelled(this.opts.signal, 'The import', 'nothing was imported');
    const { bytes, pages, blockBytes } = seg.finish(entries, Buffer.concat(recBufs));
    index.publish(seg.fileId, () => {
      index.insertFile(seg.fileId, bytes, pages, entries, blockBytes);
      for (const d of defs) index.applyDef(d.def, seg.fileId, d.extents);
    });
    // As a commit's: the table is an accelerator, and inserting a full's rows (0.4 s per 512 MiB)
    // would hold the receiver's answer; they go in when the engine is next idle (StoreIndex.addDedupLater).
    const { newPages, hashes, locPage } = this;
    const rows = (): { key: bigint; file: number; page: number }[] => newPages.map((i) => ({ key: hashes.readBigInt64LE(i * HASH_LEN), file: seg.fileId, page: locPage[i]! }));
    // Rows naming an avoided (damaged) segment must go at once: a later commit would dedup against them.
    if (this.opts.avoidFiles?.size) index.addDedup(rows(), true);
    else index.addDedupLater(rows);
    this.prog.finish('imported');
    return { ids: defs.map((d) => d.def.ckpt) };
  }
}

/** A continuation must continue a checkpoint of this store, of the same process. */
function checkContinuations(index: ImportIndex, manifest: Manifest): void {
  for (const c of manifest.checkpoints) {
    if (c.continues === undefined) continue;
    const base = index.get(c.continues);
    const t = base ? index.targetEntry(base.targetId) : null;
    if (!t || t.startTime !== c.target.startTime || t.pid !== c.target.pid) {
      throw new StasisError('INVALID_INPUT', `The stream continues checkpoint #${c.continues} of process ${c.target.pid}, which ${t ? 'is of another process' : 'is not'} in ${index.dir}; nothing was imported. Send the chain from its full checkpoint again.`);
    }
  }
}
