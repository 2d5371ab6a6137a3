/**
 * The store: segment files (the truth) + the SQLite index (the accelerator) under one directory.
 * The top of the store's layers: composes the index (store-index.ts, over segments.ts), the read
 * path (views.ts, read.ts), the write path (writer.ts, commit.ts, tree-commit.ts) and the
 * maintenance operations (edits, gc, verify, reindex, rebase, diff, streams, flatten) into the Store
 * interface, and owns what ties them to one handle: the writer lock, the writer in progress and
 * closing. Nothing below imports this file (test/lint/store-layers.test.ts checks it).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type Database from 'better-sqlite3';
import { StasisError } from '../../../shared/errors';
import type { ProcessState } from '../state/process-state';
import {
  COMPRESSIONS, type CancelOptions, type BeginOptions, type ExportKind, type ExportOptions, type PageRecord, type ExportResult, type CheckpointInfo,
  type CheckpointStats, type CheckpointWriter, type DiffResult, type LocatedRun, type PageRun, type Store, type StoreConfig, type StoreStats, type StoredExtent,
  type TargetIdentity, type TargetInfo, type TreeWriter, type VerifyProblem, type FlattenResult,
} from './api';
import { parseSegmentName, PAGE } from './format';
import { WriterLock } from './lock';
import { fsyncDir, type SegmentReader } from './segments';
import { StoreIndex } from './store-index';
import { ChainViews } from './views';
import * as read from './read';
import { Writer, type WriterHost } from './writer';
import { commitCheckpoint } from './commit';
import { TreeCommit } from './tree-commit';
import { removeCheckpoints, setAttrs } from './edits';
import { computeDiff } from './diff';
import { verifyStore } from './verify';
import { reindexStore, type ReindexResult } from './reindex';
import { gcStore } from './gc';
import { rebaseCheckpoint } from './rebase';
import { exportStream, exportStreamBytes, importStream, openExport, type StreamExport } from './streams';
import { beginStreamImport, type StreamImport } from './stream-import';
import { flattenCheckpoint, viewFiles } from './flatten';

const LOCK_TIMEOUT_MS = 30_000;
/** StoreConfig.flattenAfter when the store has no setting (docs/benchmarks.md, Store, says why). */
export const DEFAULT_FLATTEN_AFTER = 0;

export interface StoreOptions {
  /** How long a writer waits for another process's writer lock (default 30 s). */
  lockTimeoutMs?: number;
  /** Told the outcome of every flatten a commit started (the store's flattenAfter setting). */
  onFlatten?: (outcome: FlattenResult | Error) => void;
}

export class SqliteStore implements Store {
  readonly dir: string;
  private readonly index: StoreIndex;
  private readonly views: ChainViews;
  private readonly lock: WriterLock;
  private writer: Writer | null = null;
  /** A checkpoint to flatten when the engine is next idle (see flattenLater). */
  private pendingFlatten: number | null = null;
  private closed = false;
  private dedupScheduled = false;
  /** holdIdleWork holders, and whether idle work came due meanwhile. */
  private idleHeld = 0;
  private idleMissed = false;
  private readonly lockTimeoutMs: number;
  private readonly onFlatten: StoreOptions['onFlatten'];
  /** What a single checkpoint's Writer sees of the store. */
  private readonly host: WriterHost;

  constructor(dir: string, opts: StoreOptions = {}) {
    this.index = new StoreIndex(dir);
    this.dir = this.index.dir;
    this.views = new ChainViews(this.index);
    this.lockTimeoutMs = opts.lockTimeoutMs ?? LOCK_TIMEOUT_MS;
    this.onFlatten = opts.onFlatten;
    this.lock = new WriterLock(this.index.db);
    this.host = {
      reader: this.index.reader,
      lookupDedup: (keys) => this.index.lookupDedup(keys),
      dedupEmpty: () => this.index.dedupEmpty(),
      commitCheckpoint: (w) => {
        const info = commitCheckpoint(this.index, this.views, w);
        this.dedupLater();
        this.flattenLater(info.id);
        return info;
      },
      finishWriter: () => { this.writer = null; this.lock.release(); },
    };
    this.cleanLeftovers();
  }

  /** The index database and segment reader, for tests that look under the Store interface. */
  get db(): Database.Database { return this.index.db; }
  get reader(): SegmentReader { return this.index.reader; }

  /** Runs fn holding the store-wide writer lock (fails with BUSY after the timeout). */
  private withWriteLock<T>(fn: () => T): T {
    this.open();
    this.notDeferring();
    if (this.writer) throw new StasisError('BUSY', `Checkpoint ${this.writer.id} is being written through this store handle; commit or abort it first.`);
    this.lock.acquire(this.lockTimeoutMs);
    try {
      this.index.flushDedup(); // maintenance sees (and reindex rebuilds) a complete table
      return fn();
    } finally {
      this.lock.release();
    }
  }

  /**
   * The dedup rows a commit left for later (StoreIndex.addDedupLater) go in once the caller has its
   * result and the engine is idle, or at the next dedup look-up or close(), whichever comes first.
   */
  private dedupLater(): void {
    if (this.dedupScheduled) return;
    this.dedupScheduled = true;
    setImmediate(() => {
      this.dedupScheduled = false;
      if (this.idleHeld > 0) { this.idleMissed = true; return; }
      if (!this.closed) this.index.flushDedup();
    });
  }

  /**
   * Idle work (the deferred dedup rows, a pending flatten) waits until release(): the caller is
   * busy although its event loop looks idle (a stream being sent: 0.3 s of dedup inserts of a
   * 1 GiB capture would stall the link). A dedup look-up or close() still flushes first.
   */
  holdIdleWork(): () => void {
    this.idleHeld++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.idleHeld > 0 || !this.idleMissed) return;
      this.idleMissed = false;
      if (this.index.hasDedupLater()) this.dedupLater();
      if (this.pendingFlatten !== null) setImmediate(() => this.flattenPending());
    };
  }

  private open(): void {
    if (this.closed) throw new StasisError('INVALID_INPUT', `The store at ${this.dir} was closed; open it again.`);
  }

  /**
   * Leftovers of a crash: temp files, and pending segments the index never took in (or already
   * dropped). Unknown segments that were never pending are kept: an index that lost them is repaired
   * by reindex, never by deleting the truth. An index with no segments at all is rebuilt here.
   */
  private cleanLeftovers(): void {
    if (!this.lock.tryAcquire()) return; // someone else is writing: their files are not leftovers
    try {
      const { db, segDir, reader } = this.index;
      let removed = 0;
      const names = fs.readdirSync(segDir);
      for (const name of names) {
        if (name.endsWith('.tmp')) { fs.rmSync(path.join(segDir, name), { force: true }); removed++; }
      }
      const known = new Set((db.prepare('SELECT id FROM files').all() as { id: number }[]).map((r) => r.id));
      for (const { file } of db.prepare('SELECT file FROM pending').all() as { file: number }[]) {
        if (!known.has(file)) { fs.rmSync(reader.pathOf(file), { force: true }); removed++; }
        db.prepare('DELETE FROM pending WHERE file = ?').run(file);
      }
      if (removed) fsyncDir(segDir);
      if (known.size === 0 && names.some((n) => parseSegmentName(n) !== null)) reindexStore(this.index);
    } finally {
      this.lock.release();
    }
  }

  /** A parent a new checkpoint of targetId may have: of the same target, or crossing only as a branch. */
  private checkParent(m: BeginOptions): void {
    if (m.parentId === null) return;
    const p = this.index.checkpointRow(m.parentId);
    // A chain may cross targets only as a branch (restore then checkpoint); otherwise it is a caller bug.
    if (p.target_id !== m.targetId && !m.restoredFrom) throw new StasisError('INVALID_INPUT', `Checkpoint ${m.parentId} belongs to target ${p.target_id}, not ${m.targetId}; give a parent of the same target.`);
  }

  /**
   * After a commit: when the new checkpoint reads from more segments than the store's flattenAfter
   * setting allows, flatten it and gc the copies it superseded, once the caller has its result and
   * the engine is idle (setImmediate), or at close() when the handle is closed first (a one-shot CLI command). It never waits for the
   * writer lock: if anyone writes at that moment it is skipped, and the chain's next commit tries
   * again. Failures go to onFlatten (the checkpoint stays as committed, which is always valid).
   */
  private flattenLater(id: number): void {
    const limit = this.flattenAfter();
    if (limit <= 0 || viewFiles(this.views, id).size <= limit) return;
    this.pendingFlatten = id;
    setImmediate(() => this.flattenPending());
  }

  private flattenPending(): void {
    // Not inside deferred commits: settle() schedules it again.
    if (this.index.deferring && !this.closed) return;
    // Not while idle work is held: the release schedules it again.
    if (this.idleHeld > 0 && !this.closed) { this.idleMissed = true; return; }
    const id = this.pendingFlatten;
    this.pendingFlatten = null;
    if (id === null || this.closed || this.writer || !this.index.get(id) || !this.lock.tryAcquire()) return;
    try {
      const r = flattenCheckpoint(this.index, this.views, id);
      // The copies it superseded are garbage now: reclaimed at once, or every flatten would leave a
      // view's worth of bytes behind until someone runs gc.
      if (r.file !== null) {
        gcStore(this.index);
        const indexed = this.index.db.prepare('SELECT 1 FROM files WHERE id = ?');
        this.views.keepIfFilesAlive(id, (f) => indexed.get(f) !== undefined);
      }
      this.onFlatten?.(r);
    } catch (e) {
      this.onFlatten?.(e as Error);
    } finally {
      this.lock.release();
    }
  }

  private flattenAfter(): number {
    return this.index.meta('flatten_after', DEFAULT_FLATTEN_AFTER);
  }

  /**
   * Commits made from now on (the checkpoint being written included) become visible to this handle
   * only, without their fsyncs, until settle() makes them durable and visible to all; discard(),
   * closing the handle or a crash throws them away whole. Meanwhile this handle writes nothing else
   * (begin, remove, gc ... fail with BUSY; a pending flatten waits). A migration's last round: the
   * source's checkpoint of it is exported from here at once, made durable after the destination
   * runs the process.
   */
  deferDurability(): { settle(): void; discard(): void } {
    this.open();
    this.index.beginDeferred();
    return {
      settle: () => { this.index.settleDeferred(); if (this.pendingFlatten !== null) setImmediate(() => this.flattenPending()); },
      discard: () => this.index.discardDeferred(),
    };
  }

  private notDeferring(): void {
    if (this.index.deferring) throw new StasisError('BUSY', `The store at ${this.dir} is finishing a migration's last round; try again in a moment.`);
  }

  close(): void {
    if (this.closed) return;
    this.writer?.abort();
    this.flattenPending();
    this.closed = true;
    this.lock.release();
    this.index.close();
  }

  upsertTarget(identity: TargetIdentity): TargetInfo { this.open(); return this.index.upsertTarget(identity); }
  getTarget(id: number): TargetInfo | null { this.open(); return this.index.getTarget(id); }
  listTargets(): TargetInfo[] { this.open(); return this.index.listTargets(); }

  begin(opts: BeginOptions): CheckpointWriter {
    this.open();
    this.notDeferring();
    if (this.writer) throw new StasisError('BUSY', `Checkpoint ${this.writer.id} is still being written through this store handle; commit or abort it first.`);
    const target = this.index.targetEntry(opts.targetId);
    this.lock.acquire(this.lockTimeoutMs);
    try {
      this.checkParent(opts);
      const parentView = opts.parentId === null ? [] : this.views.view(opts.parentId);
      const id = this.index.allocate('next_ckpt');
      const seg = this.index.newSegment();
      this.writer = new Writer(id, opts, target, parentView, seg, this.host);
      return this.writer;
    } catch (e) {
      this.lock.release();
      throw e;
    }
  }

  beginTree(members: BeginOptions[]): TreeWriter {
    this.open();
    if (this.writer) throw new StasisError('BUSY', `Checkpoint ${this.writer.id} is still being written through this store handle; commit or abort it first.`);
    if (members.length === 0) throw new StasisError('INVALID_INPUT', 'A tree checkpoint needs at least one member.');
    const targets = members.map((m) => this.index.targetEntry(m.targetId));
    this.lock.acquire(this.lockTimeoutMs);
    try {
      const views = members.map((m) => {
        this.checkParent(m);
        return m.parentId === null ? [] : this.views.view(m.parentId);
      });
      const ids = members.map(() => this.index.allocate('next_ckpt'));
      const tree = new TreeCommit(this.index, this.views, this.index.newSegment(), ids, () => { this.writer = null; this.lock.release(); this.dedupLater(); });
      tree.writers = members.map((m, i) => new Writer(ids[i]!, m, targets[i]!, views[i]!, tree.seg, tree.hostFor(i), tree.local));
      this.writer = tree.writers[0] as Writer;
      return tree;
    } catch (e) {
      this.lock.release();
      throw e;
    }
  }

  treeMembers(id: number): number[] { this.open(); return this.index.treeMembers(id); }
  get(id: number): CheckpointInfo | null { this.open(); return this.index.get(id); }
  getState(id: number): ProcessState { this.open(); return this.index.getState(id); }
  list(filter?: { targetId?: number }): CheckpointInfo[] { this.open(); return this.index.list(filter); }
  latest(targetId: number): CheckpointInfo | null { this.open(); return this.index.latest(targetId); }
  chain(id: number): number[] { this.open(); return this.index.chain(id); }
  records(id: number): PageRecord[] { this.open(); return read.records(this.index, id); }

  materialize(id: number): Iterable<PageRun> { this.open(); return read.materialize(this.index, this.views, id); }
  materializeLocated(id: number): Iterable<LocatedRun> { this.open(); return read.materializeLocated(this.index, this.views, id); }
  changes(id: number): { runs: Iterable<PageRun>; absent: { vaddr: bigint; pages: number }[] } { this.open(); return read.changes(this.index, id); }
  layout(id: number): StoredExtent[] { this.open(); return read.layout(this.views, id); }
  readStored(file: number, page: number, count: number, out?: Buffer, outOffset = 0): Buffer {
    this.open();
    return read.readStored(this.index, file, page, count, out, outOffset);
  }
  readPage(id: number, vaddr: bigint): Buffer | null { this.open(); return read.readPage(this.index, id, vaddr); }
  locatePages(hashes: Buffer): ({ file: number; page: number } | null)[] { this.open(); return read.locatePages(this.index, hashes); }

  remove(ids: number[]): void { this.withWriteLock(() => removeCheckpoints(this.index, ids)); }
  setPinned(id: number, pinned: boolean): void { this.withWriteLock(() => setAttrs(this.index, id, { pinned })); }
  setLabel(id: number, label: string | null): void { this.withWriteLock(() => setAttrs(this.index, id, { label })); }
  setNotes(id: number, notes: string | null): void { this.withWriteLock(() => setAttrs(this.index, id, { notes })); }

  gc(opts: CancelOptions = {}): { bytesReclaimed: number; segmentsRewritten: number } {
    return this.withWriteLock(() => gcStore(this.index, opts.signal, opts.onProgress));
  }

  /** Stores checkpoint id as an incremental on top of onto (e.g. two fulls); every view stays identical. */
  rebase(id: number, onto: number): { id: number; parentId: number; pagesChanged: number } {
    return this.withWriteLock(() => rebaseCheckpoint(this.index, this.views, id, onto));
  }

  exportStream(id: number, file: string, how: ExportKind = 'one', opts: ExportOptions = {}): ExportResult {
    this.open();
    return this.index.db.transaction(() => exportStream(this.index, this.views, id, file, how, opts)).deferred();
  }

  exportStreamBytes(id: number, how: ExportKind, opts: ExportOptions & { maxBytes: number; into?: Buffer }): ExportResult & { data: Buffer } {
    this.open();
    return this.index.db.transaction(() => exportStreamBytes(this.index, this.views, id, how, opts)).deferred();
  }

  openExport(id: number, how: ExportKind, opts: ExportOptions = {}): StreamExport {
    this.open();
    // The plan reads one snapshot of the index; the pages are read later from segments it names (a stored checkpoint's pages do not change).
    return this.index.db.transaction(() => openExport(this.index, this.views, id, how, opts)).deferred();
  }

  beginImport(total: number, opts: CancelOptions & { name?: string; avoidFiles?: ReadonlySet<number> } = {}): StreamImport {
    this.open();
    this.notDeferring();
    if (this.writer) throw new StasisError('BUSY', `Checkpoint ${this.writer.id} is being written through this store handle; commit or abort it first.`);
    this.lock.acquire(this.lockTimeoutMs);
    try {
      this.index.flushDedup();
      return beginStreamImport(this.index, total, { name: opts.name ?? 'incoming stream', ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.onProgress ? { onProgress: opts.onProgress } : {}), ...(opts.avoidFiles ? { avoidFiles: opts.avoidFiles } : {}), onEnd: () => { this.lock.release(); this.dedupLater(); } });
    } catch (e) {
      this.lock.release();
      throw e;
    }
  }

  importStream(file: string, opts: CancelOptions = {}): { ids: number[] } {
    const r = this.withWriteLock(() => importStream(this.index, file, opts.signal, opts.onProgress));
    this.dedupLater();
    return r;
  }

  diff(a: number, b: number): DiffResult {
    this.open();
    return computeDiff(this.index, this.views, a, b);
  }

  verify(opts: CancelOptions = {}): { ok: boolean; problems: VerifyProblem[] } {
    this.open();
    return verifyStore(this.index, this.views, opts.signal, opts.onProgress);
  }

  reindex(): ReindexResult {
    return this.withWriteLock(() => reindexStore(this.index));
  }

  flatten(id: number, opts: CancelOptions = {}): FlattenResult {
    return this.withWriteLock(() => flattenCheckpoint(this.index, this.views, id, opts.signal, opts.onProgress));
  }

  stats(): StoreStats {
    this.open();
    const { db } = this.index;
    const n = (sql: string): number => (db.prepare(sql).get() as { n: number | null }).n ?? 0;
    const segBytes = n('SELECT SUM(bytes) AS n FROM files');
    const storedPages = n('SELECT SUM(pages) AS n FROM files');
    const blockBytes = n('SELECT SUM(COALESCE(block_bytes, pages * 4096)) AS n FROM files');
    let indexBytes = 0;
    for (const f of ['index.sqlite', 'index.sqlite-wal', 'dedup.sqlite', 'dedup.sqlite-wal']) {
      try { indexBytes += fs.statSync(path.join(this.dir, f)).size; } catch (_e) { /* not there */ }
    }
    const rows = db.prepare('SELECT stats FROM checkpoints').all() as { stats: string }[];
    const logicalBytes = rows.reduce((s, r) => s + ((JSON.parse(r.stats) as CheckpointStats).logicalBytes ?? 0), 0);
    const uniquePages = this.index.livePages().total;
    return {
      checkpoints: rows.length,
      targets: n('SELECT COUNT(*) AS n FROM targets'),
      storeBytes: segBytes + indexBytes,
      logicalBytes,
      uniquePages,
      dedupRatio: uniquePages ? logicalBytes / (uniquePages * PAGE) : 0,
      compressionRatio: blockBytes ? (storedPages * PAGE) / blockBytes : 0,
      compression: this.index.compression(),
    };
  }

  config(): StoreConfig {
    this.open();
    return { compression: this.index.compression(), flattenAfter: this.flattenAfter() };
  }

  setConfig(patch: Partial<StoreConfig>): StoreConfig {
    if (patch.compression !== undefined && !(COMPRESSIONS as readonly string[]).includes(patch.compression)) {
      throw new StasisError('INVALID_INPUT', `Compression "${String(patch.compression)}" is not one of ${COMPRESSIONS.join(', ')}.`);
    }
    if (patch.flattenAfter !== undefined && !(Number.isSafeInteger(patch.flattenAfter) && patch.flattenAfter >= 0)) {
      throw new StasisError('INVALID_INPUT', `flattenAfter ${String(patch.flattenAfter)} is not a number of segments (0 or more; 0 turns flattening off).`);
    }
    // Under the writer lock: a checkpoint being written keeps the setting it started with.
    this.withWriteLock(() => {
      if (patch.compression !== undefined) this.index.db.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES ('compression', ?)").run(patch.compression);
      if (patch.flattenAfter !== undefined) this.index.setMeta('flatten_after', patch.flattenAfter);
    });
    return this.config();
  }
}
