/**
 * The store's public surface, as the rest of the engine (capture/, restore/, schedule/, api/) sees it.
 * The implementation lives beside this file; nothing outside store/ may touch segment files or the
 * SQLite index directly. Synchronous on purpose: the engine runs in a worker thread, ptrace
 * conversations must never yield to the event loop, and better-sqlite3 is synchronous.
 *
 * Page addressing: a page is identified by its virtual page number (vaddr >> 12) within a target.
 * A checkpoint's mappings (from its ProcessState) say which pages exist in it.
 */
import type { ProcessState } from '../state/process-state';
import type { ProgressFn } from '../progress';

export const PAGE_SIZE = 4096;

/** How a store writes new page blocks; every block records its own, so a store may hold any mix. */
export const COMPRESSIONS = ['none', 'lz4'] as const;
export type Compression = (typeof COMPRESSIONS)[number];

export interface TargetIdentity {
  pid: number;
  /** /proc/PID/stat field 22, as a decimal string. */
  startTime: string;
  exe: string;
  cmdline: string[];
  /** Stable name for programs launched by Stasis (survives restarts/restores); optional. */
  name?: string;
}

export interface TargetInfo extends TargetIdentity {
  id: number;
  createdAt: string;
}

export type CheckpointMode = 'full' | 'incremental';
export type DirtyTracking = 'soft-dirty' | 'hash' | 'uffd-wp' | 'none';

export interface CheckpointStats {
  pagesScanned: number;
  pagesWritten: number; // new bytes actually stored (after dedup)
  pagesChanged: number; // page records added by this checkpoint (data + zero + absent)
  bytesWritten: number; // stored bytes of those pages (less than pagesWritten x 4096 when blocks were compressed)
  logicalBytes: number; // bytes of all pages the checkpoint materializes
  frozenMs?: number;
  durationMs?: number;
}

export interface CheckpointInfo {
  id: number;
  targetId: number;
  parentId: number | null;
  createdAt: string; // ISO 8601
  label: string | null;
  notes: string | null;
  pinned: boolean;
  mode: CheckpointMode;
  dirtyTracking: DirtyTracking;
  /** Set when this checkpoint's chain starts from a restore of another checkpoint (a branch). */
  restoredFrom?: number | null;
  stats: CheckpointStats;
  /**
   * Set on every member of a tree checkpoint (a process and its descendants taken at one instant):
   * root = the checkpoint id of the tree's root process (the tree's id), size = members in all.
   */
  tree?: TreeRef | null;
}

export interface TreeRef { root: number; size: number }

/**
 * The write path of a tree checkpoint: one CheckpointWriter per member (fill each like a single
 * checkpoint, never commit them one by one), then commit() makes every member durable and
 * visible in one segment and one index transaction, or none of them.
 */
export interface TreeWriter {
  /** In the order of the members given to beginTree; [0] is the root. */
  readonly writers: CheckpointWriter[];
  commit(stats: Partial<CheckpointStats>[]): CheckpointInfo[];
  abort(): void;
}

export interface BeginOptions {
  targetId: number;
  parentId: number | null;
  mode: CheckpointMode;
  dirtyTracking: DirtyTracking;
  /**
   * 'complete': the writer is given every present page of every mapping; the store compares with the
   *   parent (by content hash) and records only changes, and marks as absent every page the parent
   *   had that was not given (unmapped, MADV_DONTNEED...). Used by hash-mode incrementals and fulls.
   * 'delta': only changed pages are given (soft-dirty / uffd-wp); anything not given inherits from the
   *   parent, except pages outside the new mappings, which become absent.
   */
  coverage: 'complete' | 'delta';
  label?: string | null;
  restoredFrom?: number | null;
}

export interface CheckpointWriter {
  readonly id: number;
  /** Process metadata; must be set once before commit. Its mappings define the address space. */
  setState(state: ProcessState): void;
  /** Pages at vaddr (page aligned); data.length a multiple of PAGE_SIZE. Zero pages are detected. */
  addPages(vaddr: bigint, data: Buffer): void;
  /** Pages of several runs, their data back to back in `data` (in the order of the runs). */
  addPageRuns(runs: { vaddr: bigint; pages: number }[], data: Buffer): void;
  /**
   * `pages` pages at vaddr, read by `read` straight into where the writer keeps them (the segment
   * block being assembled, when it can: no copy through the caller), in pieces. Returns the pages
   * given: fewer when a read came back short (the pages after it are not given).
   */
  addPagesRead(vaddr: bigint, pages: number, read: PageRead): number;
  addZeroPages(vaddr: bigint, count: number): void;
  /** Pages that exist in a mapping but hold nothing to save (e.g. file-backed and unmodified). */
  addAbsentPages(vaddr: bigint, count: number): void;
  /**
   * Takes back pages given earlier to this checkpoint, as if they had never been given (a live
   * capture read them from a running process and they changed afterwards); they may be given again.
   * Data already written for them stays in the segment, unreferenced, until gc.
   */
  dropPages(runs: { vaddr: bigint; pages: number }[]): void;
  /**
   * Pages the caller knows are unchanged since the parent (dirty tracking said so): given, without
   * data. Only pages the parent holds (see parentPages) may be kept.
   */
  keepPages(runs: { vaddr: bigint; pages: number }[]): void;
  /** The pages the parent checkpoint holds (data or zero), as sorted, merged page-number intervals. */
  parentPresent(): { vpn: number; count: number }[];
  /** Durable (fsync) then visible (one index transaction). Returns the final info. If it throws, the writer is aborted (nothing becomes visible). */
  commit(stats?: Partial<CheckpointStats>): CheckpointInfo;
  /** Removes everything written; nothing becomes visible. Safe to call twice. */
  abort(): void;
}

/**
 * Reads `pages` pages at vaddr into dst from byte dstOffset and digests the whole pages read as
 * hash.ts digestPages does (zero[i], hashes[32i..]), leaving in dst only the pages that are not
 * zero, back to back and in order; returns the bytes read, zero pages included (short: the range
 * ends there), or throws.
 */
export type PageRead = (vaddr: bigint, pages: number, dst: Buffer, dstOffset: number, zero: Uint8Array, hashes: Buffer) => number;

export interface PageRun {
  vaddr: bigint;
  pages: number;
  /** null: zero pages. */
  data: Buffer | null;
}

/**
 * Where some pages' bytes are, without reading them: `pages` pages at `offset` of the file at `path`
 * (stored raw), or in `data` (decoded from a compressed block).
 */
export type LocatedPart = { pages: number; path: string; offset: number } | { pages: number; data: Buffer };

/** A PageRun that says where its bytes are instead of holding them (materializeLocated). */
export interface LocatedRun {
  vaddr: bigint;
  pages: number;
  /** null: zero pages. Otherwise parts in address order, adding up to `pages`. */
  parts: LocatedPart[] | null;
  /** The stored content hash (BLAKE3, 32 bytes) of each page, concatenated; empty for zero pages. */
  hashes: Buffer;
}

/**
 * A run of a checkpoint's pages with where their bytes are stored: `file`/`page` name `count`
 * consecutive stored pages (null file: zero pages). Pages are deduplicated by content, so runs of
 * any checkpoints that name the same stored page hold the same bytes: a reader that groups by it
 * reads each distinct page once.
 */
export interface StoredExtent {
  vpn: number;
  count: number;
  file: number | null;
  page: number;
}

export interface DiffMapping {
  start: string; // hex
  end: string;
  path: string;
  changedPages: number;
  addedPages: number;
  removedPages: number;
  bytes: number;
}

export interface DiffResult {
  a: number;
  b: number;
  changedPages: number;
  addedPages: number;
  removedPages: number;
  bytes: number;
  mappings: DiffMapping[];
}

export interface VerifyProblem {
  what: string;
  where: string;
  affects: number[];
}

export interface StoreStats {
  checkpoints: number;
  targets: number;
  storeBytes: number; // bytes on disk (segments + index)
  logicalBytes: number; // sum of every checkpoint's materialized size
  uniquePages: number;
  dedupRatio: number;
  /** Stored page bytes / stored block bytes (1 when nothing is compressed). */
  compressionRatio: number;
  /** How new blocks are written (the store's setting). */
  compression: Compression;
}

/** Per-store settings, kept in the index's meta table. */
export interface StoreConfig {
  compression: Compression;
  /**
   * Flatten a new checkpoint (see Store.flatten) when its pages are read from more than this many
   * segment files; 0: never. Runs after the commit has returned, when the engine is idle.
   */
  flattenAfter: number;
}

export interface FlattenResult {
  id: number;
  /** The new segment (null: the checkpoint's pages were already in one segment, or it holds none). */
  file: number | null;
  pages: number;
  bytes: number;
  /** Checkpoints whose records now point into the new segment. */
  checkpointsRewritten: number;
}

export interface Store {
  readonly dir: string;
  close(): void;
  upsertTarget(identity: TargetIdentity): TargetInfo;
  getTarget(id: number): TargetInfo | null;
  listTargets(): TargetInfo[];
  begin(opts: BeginOptions): CheckpointWriter;
  /** A tree checkpoint: members[0] is the root process, the rest its descendants (see TreeWriter). */
  beginTree(members: BeginOptions[]): TreeWriter;
  /** Member checkpoint ids of the tree checkpoint id belongs to (root first), or [id] for a single-process one. */
  treeMembers(id: number): number[];
  get(id: number): CheckpointInfo | null;
  /** The ProcessState saved with a checkpoint. */
  getState(id: number): ProcessState;
  list(filter?: { targetId?: number }): CheckpointInfo[];
  latest(targetId: number): CheckpointInfo | null;
  /** Every stored page of checkpoint #id, in address order (absent pages are skipped). */
  materialize(id: number): Iterable<PageRun>;
  /**
   * The same runs as materialize, naming where the bytes are instead of reading them (raw pages as
   * file offsets, compressed ones decoded), with each page's content hash: for a reader that copies
   * straight from the files (restore's page fill).
   */
  materializeLocated(id: number): Iterable<LocatedRun>;
  readPage(id: number, vaddr: bigint): Buffer | null;
  /**
   * What checkpoint #id itself changed since its parent, with the bytes: data and zero runs
   * (zero: data null), and the pages that went away (absent). Applied to a copy of the parent's
   * memory it gives #id's (a prepared restore catching up with a migration round).
   */
  changes(id: number): { runs: Iterable<PageRun>; absent: { vaddr: bigint; pages: number }[] };
  /**
   * The same view as materialize (newest record <= id per page, absent pages skipped), as sorted
   * runs naming where each run is stored, without reading any page. Neighbouring runs that
   * continue each other in one file are merged.
   */
  layout(id: number): StoredExtent[];
  /** count stored pages starting at (file, page) as named by layout(); into out at outOffset when given (returned). */
  readStored(file: number, page: number, count: number, out?: Buffer, outOffset?: number): Buffer;
  /** Where this store holds each page of hashes (32-byte content hashes, concatenated), readable with readStored; null where it holds none. */
  locatePages(hashes: Buffer): ({ file: number; page: number } | null)[];
  /** Deletes any checkpoints; a member of a tree checkpoint takes the whole tree with it (children keep their contents: records are folded into them). Refuses a pinned one (CONFLICT); space comes back with gc(). */
  remove(ids: number[]): void;
  setPinned(id: number, pinned: boolean): void;
  setLabel(id: number, label: string | null): void;
  setNotes(id: number, notes: string | null): void;
  /** Cancelling (opts.signal) leaves every checkpoint intact: nothing is compacted. */
  gc(opts?: CancelOptions): { bytesReclaimed: number; segmentsRewritten: number };
  diff(a: number, b: number): DiffResult;
  /** Read-only; cancelling (opts.signal) just stops it. */
  verify(opts?: CancelOptions): { ok: boolean; problems: VerifyProblem[] };
  reindex(): { checkpoints: number; problems?: { what: string; where: string }[] };
  /**
   * Copies the pages of checkpoint id into one new segment in address order and points every
   * record naming those pages there (one index transaction), so it reads like a full checkpoint
   * however long its chain. No view changes; the old copies are reclaimed by gc().
   */
  flatten(id: number, opts?: CancelOptions): FlattenResult;
  stats(): StoreStats;
  config(): StoreConfig;
  /** Changes settings; they apply to every segment written afterwards (checkpoints, import, gc), existing ones stay as they are. */
  setConfig(patch: Partial<StoreConfig>): StoreConfig;
  /** Checkpoint ids from the root of id's chain to id. */
  chain(id: number): number[];
  /** The page records checkpoint id itself holds (what changed since its parent), sorted by address. */
  records(id: number): PageRecord[];
  /** "Incremental from two fulls": store id as changes on top of onto; both keep materializing identically. */
  rebase(id: number, onto: number): { id: number; parentId: number; pagesChanged: number };
  /**
   * Writes checkpoint id as one stream file: with its ancestors ('one'), as one full ('flattened'),
   * or its whole tree ('chain'). With opts.continues (kind 'one'): id alone, as a continuation of
   * the receiving store's checkpoint #continues, which holds id's parent (a migration round).
   */
  exportStream(id: number, file: string, how?: ExportKind, opts?: ExportOptions): ExportResult;
  /**
   * Commits from now on (the checkpoint being written included) stay visible to this handle only
   * and skip their fsyncs until settle() makes them durable and visible to all; discard(), a close
   * or a crash throws them away whole (never half-visible). Meanwhile the handle writes nothing
   * else (BUSY). A migration's last round, exported at once and made durable after the cut-over.
   */
  deferDurability(): { settle(): void; discard(): void };
  /**
   * Work this handle does when the event loop is idle (a commit's deferred dedup rows, a pending
   * flatten) waits until the returned release() (then runs when idle again): for a caller whose
   * idle loop is not idle (a round streaming out). Look-ups and close() still flush first.
   */
  holdIdleWork(): () => void;
  /**
   * The same stream in memory (nothing written, no fsync), refused above opts.maxBytes of pages: a
   * migration's last round. into: written there (data is a view of it) when the stream fits, else
   * into fresh memory.
   */
  exportStreamBytes(id: number, how: ExportKind, opts: ExportOptions & { maxBytes: number; into?: Buffer }): ExportResult & { data: Buffer };
  /** Validates a stream file completely, then imports it atomically (deduplicating); returns the new ids. */
  importStream(file: string, opts?: CancelOptions): { ids: number[] };
  /**
   * The stream of exportStream without a file: its size now, its bytes from chunks() as they are
   * asked for (read from the segments then; at most 1 MiB each). What a send puts on the wire.
   */
  openExport(id: number, how: ExportKind, opts?: ExportOptions): StreamExport;
  /**
   * Imports a stream of total bytes as it arrives (push its bytes in order, then finish()): every
   * check of importStream, pages written as they come, nothing visible before finish() succeeded.
   * Holds the store's writer lock until finish() or abort() (other writers wait, as for a commit).
   */
  beginImport(total: number, opts?: CancelOptions & { name?: string; avoidFiles?: ReadonlySet<number> }): StreamImport;
}

/** For the store's long operations: a cancelled one throws CANCELLED and leaves the store as it was. */
/** A stream produced while it is sent (Store.openExport). */
export interface StreamExport extends ExportResult {
  /** Its header and manifest: the first bytes of chunks(). */
  head: Buffer;
  /** Its pages' BLAKE3 hashes, concatenated in stream order (from the segments' trailers: no page is read). */
  hashes(): Buffer;
  /**
   * Its bytes in order, at most 1 MiB each: the head, then whole hash + page entries, then the
   * footer alone. Fresh buffers the consumer may keep, or with reuse one buffer for every chunk of
   * entries, for a consumer done with each chunk before it asks for the next (a fresh 1 MiB per
   * chunk cost its page faults).
   */
  chunks(reuse?: boolean): Generator<Buffer>;
  /**
   * Its footer from the head and the hashes alone, when its checksum covers no page byte (stream
   * versions 3 and 4); null otherwise (the footer then comes from chunks()).
   */
  footerFromHashes(): Buffer | null;
  /**
   * The bytes of the pages wanted(i) says yes to, in stream order, packed into out (reused: each
   * yield is the number of pages now at its start; the consumer is done with them before the next):
   * the other pages are not read (a receiver holds them).
   */
  wantedPages(wanted: (i: number) => boolean, out: Buffer): Generator<number>;
}

/** A stream imported as its bytes arrive (Store.beginImport). */
export interface StreamImport {
  /** The next bytes of the stream, in order (a chunk may end anywhere). verified: the caller already checked these bytes' pages against their hashes. */
  push(chunk: Buffer, verified?: boolean): void;
  /** Bytes pushed so far. */
  readonly received: number;
  /** The first problem found so far (finish() throws it, or a worse one); pushing on is harmless. */
  readonly failure: Error | null;
  /** True when the rest of the stream cannot change the verdict (its header is wrong): a reader may stop. */
  readonly hopeless: boolean;
  /** Checks the whole stream, then publishes its checkpoints at once; throws (leaving nothing) otherwise. */
  finish(): { ids: number[] };
  /** Throws away what was written; safe after finish() and twice. */
  abort(): void;
  /**
   * Ends the import without publishing a checkpoint but keeps the pages it placed, as a segment no
   * checkpoint names (gc removes it unless a later import uses them); null when nothing was kept.
   */
  salvage(): { file: number; pages: number } | null;
}


export interface CancelOptions {
  /** Read synchronously at natural boundaries (per checkpoint, segment or block of pages). */
  signal?: AbortSignal;
  /** Progress at the same boundaries (throttled, engine/progress.ts); the last report only on success. */
  onProgress?: ProgressFn;
}

export interface PageRecord {
  vaddr: bigint;
  pages: number;
  kind: 'data' | 'zero' | 'absent';
}

export type ExportKind = 'one' | 'flattened' | 'chain';

export interface ExportOptions extends CancelOptions {
  /** The receiving store's id of id's parent: the stream carries id alone, continuing it. */
  continues?: number;
  /**
   * With continues: id may be a member of a tree checkpoint, sent alone as one process's
   * continuation (a tree migration's round, member by member; the receiver groups the members
   * into a tree again: migrate/tree-group.ts).
   */
  memberAlone?: boolean;
  /**
   * What the stream's footer checksum covers (docs/store-format.md, "Stream file"): 'hashes'
   * (stream versions 3 and 4, the default: the pages are bound by their hashes, which every reader
   * checks) or 'bytes' (versions 1 and 2, for a receiver from before them; exportStreamBytes's
   * default, as its small in-memory rounds go to receivers of either age).
   */
  checksum?: 'hashes' | 'bytes';
}

export interface ExportResult {
  file: string;
  kind: ExportKind;
  checkpoints: number[];
  pages: number;
  bytes: number;
}
