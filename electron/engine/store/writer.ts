/**
 * The write path of one checkpoint: pages in (hashed, compared with the parent, deduplicated,
 * zero pages detected), one segment file out, then one index transaction (done by the store).
 * Owns the pending segment until commit or abort; it must never make anything visible before
 * commit() and must never leave a half-written file behind on abort.
 */
import { StasisError } from '../../../shared/errors';
import type { ProcessState } from '../state/process-state';
import { encodeState } from '../state/process-state';
import type { BeginOptions, CheckpointInfo, CheckpointStats, CheckpointWriter, PageRead } from './api';
import {
  KIND_ABSENT, KIND_DATA, KIND_ZERO, continues, findExtent, intersect, normalize, overlay, pageCount, pushExtent,
  outside, subtract, subtractIntervals, unionIntervals, window, withoutAbsent, type Extent,
} from './extents';
import { HASH_LEN, PAGE, type DefEntry } from './format';
import { digestPages, type PageDigests } from './hash';
import { storeNative, type StoreNative } from './native-addon';
import { PageSlots } from './page-slots';
import type { SegmentReader, SegmentWriter } from './segments';

/** What the writer needs from the store that created it. */
export interface WriterHost {
  reader: SegmentReader;
  /** Locations of already-stored pages for these hash keys (unverified: the caller checks the full hash). */
  lookupDedup(keys: bigint[]): Map<bigint, { file: number; page: number }>;
  /** Whether the dedup table holds no page at all (asked once per writer). */
  dedupEmpty(): boolean;
  /** Builds the records into a def entry, writes the segment, runs the index transaction; returns the info. */
  commitCheckpoint(w: { seg: SegmentWriter; def: Omit<DefEntry, 'recordsOffset' | 'extents' | 'dataPages'>; records: Extent[]; hashes: Buffer; newPages: number[]; view: Extent[] }): CheckpointInfo;
  /** Releases the writer lock and forgets this writer. */
  finishWriter(): void;
}

/**
 * The constants storeRuns uses per page, as this module's own: read through the imported names they
 * cost a getter call per access where the module system makes them (tsx: benches, tests).
 */
const HASH = HASH_LEN;
const DATA = KIND_DATA;
const ZERO = KIND_ZERO;

/** storeRuns' decision per page. */
const SKIP = 0;
const ZERO_RECORD = 1;
const UNRESOLVED = 2;

/** Pages per read of addPagesRead when it reads into its own buffer. */
const SCRATCH_PAGES = 1024;

const NOTHING_STORED: ReadonlyMap<bigint, { file: number; page: number }> = new Map();

/** Whether e shares a page with the sorted, disjoint intervals of cover (binary search). */
function overlapsAny(cover: { vpn: number; count: number }[], e: Extent): boolean {
  let lo = 0;
  let hi = cover.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cover[mid]!.vpn + cover[mid]!.count <= e.vpn) lo = mid + 1; else hi = mid;
  }
  return lo < cover.length && cover[lo]!.vpn < e.vpn + e.count;
}

/**
 * list as normalize() would return it: list itself when it already is (sorted, no overlap, no
 * neighbours that merge), which is what capture gives when nothing was dropped.
 */
function normalized(list: Extent[]): Extent[] {
  for (let i = 1; i < list.length; i++) {
    const a = list[i - 1]!;
    const b = list[i]!;
    if (a.vpn + a.count > b.vpn || continues(a, b) || b.count <= 0) return normalize(list);
  }
  if (list.length > 0 && list[0]!.count <= 0) return normalize(list);
  return list;
}

/** Whether list is sorted by vpn with no overlap (neighbours that merge allowed). */
function sortedRun(list: Extent[]): boolean {
  for (let i = 1; i < list.length; i++) if (list[i - 1]!.vpn + list[i - 1]!.count > list[i]!.vpn) return false;
  return true;
}

/**
 * normalize() of the chunks' records together. A pre-copy round drops a few pages and gives them
 * again, so the records are one large sorted chunk and small ones after it: those are sorted alone
 * and merged into the large one in one pass (sorting all ~52k records of 1 GiB again cost
 * ~0.03 s of every pre-copy full commit).
 */
function merged(chunks: Extent[][]): Extent[] {
  let big = 0;
  for (let j = 1; j < chunks.length; j++) if (chunks[j]!.length > chunks[big]!.length) big = j;
  const head = chunks[big]!;
  const rest: Extent[] = [];
  for (let j = 0; j < chunks.length; j++) if (j !== big) for (const e of chunks[j]!) rest.push(e);
  if (rest.length === 0) return normalized(head);
  if (!sortedRun(head)) return normalize([...head, ...rest]);
  const tail = normalize(rest);
  const out: Extent[] = [];
  let i = 0;
  let k = 0;
  while (i < head.length || k < tail.length) {
    const e = k >= tail.length || (i < head.length && head[i]!.vpn <= tail[k]!.vpn) ? head[i++]! : tail[k++]!;
    if (e.count <= 0) continue;
    const last = out[out.length - 1];
    // The same refusal as normalize()'s, which names the page.
    if (last && last.vpn + last.count > e.vpn) return normalize([...head, ...rest]);
    pushExtent(out, e);
  }
  return out;
}

export class Writer implements CheckpointWriter {
  private state: ProcessState | null = null;
  private records: Extent[] = [];
  /** dropPages calls not applied yet: records[0..at) lose the pages of cover (see settledRecords). */
  private drops: { at: number; cover: { vpn: number; count: number }[] }[] = [];
  private given: { vpn: number; count: number }[] = [];
  private newPages: number[] = [];
  private done = false;
  private readonly started = Date.now();
  /**
   * The first checkpoint of a store has nothing to look up: its look-ups (one SQL query per 500
   * pages) are skipped. Asked once; rows only other processes could add meanwhile are missed,
   * which the table, an accelerator, allows.
   */
  private noDedup: boolean | null = null;

  constructor(
    readonly id: number,
    private readonly opts: BeginOptions,
    private readonly target: DefEntry['target'],
    /** The parent's view with absent pages dropped (sorted), or [] for a root. */
    private readonly parentView: Extent[],
    private readonly seg: SegmentWriter,
    private readonly host: WriterHost,
    /**
     * Pages written into seg so far, by the first 4 bytes of their hash; shared by the members of
     * a tree checkpoint, which write one segment (the tree's then; else this writer's, given back
     * when it is done).
     */
    shared?: PageSlots,
  ) {
    this.local = shared ?? PageSlots.take();
    this.ownsLocal = !shared;
  }

  private readonly local: PageSlots;
  private readonly ownsLocal: boolean;

  private live(): void {
    if (this.done) throw new StasisError('INVALID_INPUT', `Checkpoint ${this.id} was already committed or aborted; begin a new one.`);
  }

  setState(state: ProcessState): void {
    this.live();
    this.state = state;
  }

  private digestBuf: PageDigests = { zero: new Uint8Array(0), hashes: Buffer.alloc(0) };

  /** Digest buffers for n pages, reused across addPages calls (capture gives same-sized chunks). */
  private digests(n: number): PageDigests {
    if (this.digestBuf.zero.length < n) this.digestBuf = { zero: new Uint8Array(n), hashes: Buffer.allocUnsafe(n * HASH_LEN) };
    return this.digestBuf;
  }

  private parentAt(vpn: number): Extent | null {
    const i = findExtent(this.parentView, vpn);
    return i < 0 ? null : this.parentView[i];
  }

  private parentHash(e: Extent, vpn: number): Buffer {
    return this.host.reader.hashOf(e.file, e.page + (vpn - e.vpn));
  }

  private static vpnOf(vaddr: bigint): number {
    if (typeof vaddr !== 'bigint' || vaddr < 0n || (vaddr & 0xfffn) !== 0n) throw new StasisError('INVALID_INPUT', `Address ${String(vaddr)} is not a page-aligned address; give pages at multiples of 4096.`);
    return Number(vaddr >> 12n);
  }

  addPages(vaddr: bigint, data: Buffer): void {
    this.live();
    const vpn0 = Writer.vpnOf(vaddr);
    if (data.length % PAGE !== 0) throw new StasisError('INVALID_INPUT', `Page data of ${data.length} bytes at 0x${vaddr.toString(16)} is not a multiple of 4096 bytes.`);
    const n = data.length / PAGE;
    if (n === 0) return;
    this.addRuns([{ vpn: vpn0, count: n }], data, n);
  }

  addPageRuns(runs: { vaddr: bigint; pages: number }[], data: Buffer): void {
    this.live();
    const list = runs.map((r) => {
      if (!Number.isSafeInteger(r.pages) || r.pages < 0) throw new StasisError('INVALID_INPUT', `Page count ${r.pages} is not a non-negative integer.`);
      return { vpn: Writer.vpnOf(r.vaddr), count: r.pages };
    }).filter((r) => r.count > 0);
    const n = list.reduce((k, r) => k + r.count, 0);
    if (data.length !== n * PAGE) throw new StasisError('INVALID_INPUT', `Page data of ${data.length} bytes does not hold the ${n} pages of the runs given (${n * PAGE} bytes).`);
    if (n > 0) this.addRuns(list, data, n);
  }

  /** Read buffer of addPagesRead when the segment does not assemble blocks in place (compression). */
  private scratch: Buffer | null = null;

  addPagesRead(vaddr: bigint, pages: number, read: PageRead): number {
    this.live();
    const vpn0 = Writer.vpnOf(vaddr);
    if (!Number.isSafeInteger(pages) || pages < 0) throw new StasisError('INVALID_INPUT', `Page count ${pages} is not a non-negative integer.`);
    let done = 0;
    while (done < pages) {
      // In place: straight into the block the segment writes, in pieces of its free slots; the
      // pages not kept (zero, unchanged, stored elsewhere) are overwritten by the next ones.
      const room = this.seg.readRoom();
      const want = Math.min(pages - done, room ? room.pages : SCRATCH_PAGES);
      const d = this.digests(want);
      let dst: Buffer;
      let first = 0;
      if (room) {
        dst = room.buf;
        first = room.first;
      } else {
        this.scratch ??= Buffer.allocUnsafeSlow(SCRATCH_PAGES * PAGE);
        dst = this.scratch;
      }
      const got = Math.floor(Math.max(read(vaddr + BigInt(done * PAGE), want, dst, first * PAGE, d.zero, d.hashes), 0) / PAGE);
      if (got > 0) {
        // The read left the non-zero pages back to back: page i is at slot `at` (only pages
        // that are not zero are written, in increasing order).
        let next = 0;
        let at = first;
        const slotOf = (i: number): number => {
          for (; next < i; next++) if (d.zero[next] !== 1) at++;
          return at;
        };
        const run = [{ vpn: vpn0 + done, count: got }];
        if (room) this.storeRuns(run, got, d, (i, h) => this.seg.keepReadPage(slotOf(i), d.hashes, h), { buf: room.buf, first });
        else this.storeRuns(run, got, d, (i, h) => this.seg.addPage(dst, slotOf(i) * PAGE, d.hashes, h));
      }
      done += got;
      if (got < want) break;
    }
    return done;
  }

  /** The n pages of data belong to runs, in order (one batch: one digest pass, one dedup query). */
  private addRuns(runs: { vpn: number; count: number }[], data: Buffer, n: number): void {
    const d = this.digests(n);
    digestPages(data, n, d);
    this.storeRuns(runs, n, d, (i, h) => this.seg.addPage(data, i * PAGE, d.hashes, h));
  }

  /**
   * The n pages of runs, digested in d: records them, and hands the ones to write to write(index
   * in the batch, offset of its hash in d.hashes), in increasing order; it returns the page's index in the segment.
   * inPlace: the pages were read in place (one run; readRoom's buf, non-zero pages back to back
   * from slot first), so the addon may decide the whole batch (decideInPlace) instead.
   */
  private storeRuns(runs: { vpn: number; count: number }[], n: number, d: PageDigests, write: (i: number, h: number) => number, inPlace?: { buf: Buffer; first: number }): void {
    const root = this.parentView.length === 0;
    const native = inPlace && root && runs.length === 1 ? this.decide : null;
    if (native && (this.noDedup ??= this.host.dedupEmpty())) { this.decideInPlace(native, runs[0]!, n, d, inPlace!); return; }
    const vpns = new Float64Array(n);
    let k = 0;
    for (const r of runs) {
      this.given.push(r);
      for (let j = 0; j < r.count; j++) vpns[k++] = r.vpn + j;
    }
    const hashes = d.hashes;
    // First pass: zero pages and pages unchanged since the parent. Pages are named by their index
    // in the chunk; their hashes stay in the digest buffer (no Buffer per page).
    const what = this.decisions(n);
    const unresolved: number[] = [];
    for (let i = 0; i < n; i++) {
      const vpn = vpns[i]!;
      const p = root ? null : this.parentAt(vpn);
      if (d.zero[i] === 1) {
        what[i] = !p || p.kind !== ZERO ? ZERO_RECORD : SKIP;
        continue;
      }
      if (p && p.kind === DATA && this.parentHash(p, vpn).compare(hashes, i * HASH, (i + 1) * HASH) === 0) { what[i] = SKIP; continue; }
      what[i] = UNRESOLVED;
      unresolved.push(i);
    }
    // Second pass, in page order (the records come out sorted and merged into runs: a record
    // object per page, and a sort at commit when zero and data pages alternate, cost ~0.1 s per
    // GiB): pages already stored anywhere in the store are referenced, the rest written.
    this.noDedup ??= this.host.dedupEmpty();
    const found = unresolved.length === 0 || this.noDedup ? NOTHING_STORED : this.host.lookupDedup(unresolved.map((i) => hashes.readBigInt64LE(i * HASH)));
    if (native && found.size === 0) { this.decideInPlace(native, runs[0]!, n, d, inPlace!, false); return; }
    let run: Extent | null = null;
    const add = (vpn: number, kind: number, file: number, page: number): void => {
      if (run && run.vpn + run.count === vpn && run.kind === kind && (kind !== DATA || (run.file === file && run.page + run.count === page))) { run.count++; return; }
      if (run) this.record(run);
      run = { vpn, count: 1, kind, file, page } as Extent;
    };
    for (let i = 0; i < n; i++) {
      const w = what[i]!;
      if (w === SKIP) continue;
      const vpn = vpns[i]!;
      if (w === ZERO_RECORD) { add(vpn, ZERO, 0, 0); continue; }
      const h = i * HASH;
      // Pages this checkpoint already wrote (checked here, not in the first pass: for a full
      // checkpoint, where almost every page is new, that cost a map lookup per page).
      // The page's key in `local`: its first 4 hash bytes as readInt32LE gives them (that call cost
      // ~0.1 s per GiB in a full checkpoint's profile; the bytes are read once here for both uses).
      const key = hashes[h]! | (hashes[h + 1]! << 8) | (hashes[h + 2]! << 16) | (hashes[h + 3]! << 24);
      // With nothing stored elsewhere (a full checkpoint's usual case), a page this checkpoint
      // does not hold yet is written next: one probe of the table both asks and records it as the
      // segment's next page. Otherwise it is only asked: the page may be found elsewhere, and the
      // table must never name a page this checkpoint has not written.
      const next = this.seg.pages;
      const held = found.size === 0 ? this.local.claim(key, next) : this.local.get(key);
      if (held >= 0 && this.seg.hashOf(held).compare(hashes, h, h + HASH) === 0) { add(vpn, DATA, this.seg.fileId, held); continue; }
      if (found.size > 0) {
        const loc = found.get(hashes.readBigInt64LE(h));
        if (loc && this.storedHashMatches(loc, hashes, h)) { add(vpn, DATA, loc.file, loc.page); continue; }
      }
      const page = write(i, h);
      if (found.size > 0 || held >= 0 || page !== next) this.local.set(key, page);
      this.newPages.push(page);
      add(vpn, DATA, this.seg.fileId, page);
    }
    if (run) this.record(run);
  }

  /**
   * The addon's decidePages (page_decide.c), or null: an older build, or STASIS_PAGE_DECIDE=0 (to
   * compare the two, as the tests do). Asked once per writer.
   */
  private readonly decide: StoreNative['decidePages'] | null = process.env.STASIS_PAGE_DECIDE === '0' ? null : storeNative?.decidePages?.bind(storeNative) ?? null;
  private decideState = new Int32Array(3);
  private runBuf = new Int32Array(0);

  /**
   * storeRuns' second pass for a root checkpoint's batch read in place with nothing found elsewhere
   * in the store, in the addon: the same decisions, records and segment bytes (the tests compare
   * the two), ~0.06 s less main-thread CPU per GiB (bench/capture-writer.ts). note: whether the run
   * is still to be noted as given (false when storeRuns' first pass did).
   */
  private decideInPlace(decide: NonNullable<StoreNative['decidePages']>, run: { vpn: number; count: number }, n: number, d: PageDigests, at: { buf: Buffer; first: number }, note = true): void {
    if (note) this.given.push(run);
    const slots = this.local;
    slots.reserve(n);
    const { keys, vals } = slots.arrays;
    const seg = this.seg;
    const segHashes = seg.hashRoom(n);
    const p0 = seg.pages;
    const st = this.decideState;
    st[0] = slots.entries;
    st[1] = p0;
    if (this.runBuf.length < 4 * n) this.runBuf = new Int32Array(4 * n);
    const runs = this.runBuf;
    const count = decide(d.zero, d.hashes, n, keys, vals, segHashes, at.buf, at.first, runs, st);
    slots.entries = st[0]!;
    const kept = st[2]!;
    seg.keptInPlace(kept);
    for (let j = 0; j < kept; j++) this.newPages.push(p0 + j);
    const file = seg.fileId;
    for (let j = 0; j < count; j++) {
      const o = 4 * j;
      const kind = runs[o + 2]!;
      this.record(kind === DATA ? { vpn: run.vpn + runs[o]!, count: runs[o + 1]!, kind: DATA, file, page: runs[o + 3]! } : { vpn: run.vpn + runs[o]!, count: runs[o + 1]!, kind: ZERO, file: 0, page: 0 });
    }
  }

  private decisionBuf = new Uint8Array(0);

  /** A per-page scratch of storeRuns for n pages (reused across calls). */
  private decisions(n: number): Uint8Array {
    if (this.decisionBuf.length < n) this.decisionBuf = new Uint8Array(n);
    return this.decisionBuf;
  }

  /** The dedup table is an accelerator: a stale or colliding entry is simply not used. */
  private storedHashMatches(loc: { file: number; page: number }, hashes: Buffer, h: number): boolean {
    try {
      return this.host.reader.hashOf(loc.file, loc.page).compare(hashes, h, h + HASH) === 0;
    } catch (_e) {
      return false;
    }
  }

  addZeroPages(vaddr: bigint, count: number): void {
    this.live();
    const vpn0 = Writer.vpnOf(vaddr);
    if (!Number.isSafeInteger(count) || count < 0) throw new StasisError('INVALID_INPUT', `Zero page count ${count} is not a non-negative integer.`);
    if (count === 0) return;
    this.given.push({ vpn: vpn0, count });
    // Only the pages whose parent was not already zero need a record.
    const range = [{ vpn: vpn0, count, kind: KIND_ZERO, file: 0, page: 0 } as Extent];
    // Capture calls this once per zero run: look only at the parent's extents around it.
    const parentZero = window(this.parentView, vpn0, vpn0 + count).filter((e) => e.kind === KIND_ZERO);
    for (const e of subtract(range, parentZero)) this.record(e);
  }

  addAbsentPages(vaddr: bigint, count: number): void {
    this.live();
    const vpn0 = Writer.vpnOf(vaddr);
    if (!Number.isSafeInteger(count) || count < 0) throw new StasisError('INVALID_INPUT', `Absent page count ${count} is not a non-negative integer.`);
    if (count === 0) return;
    this.given.push({ vpn: vpn0, count });
    for (const e of intersect(window(this.parentView, vpn0, vpn0 + count), [{ vpn: vpn0, count }])) this.record({ vpn: e.vpn, count: e.count, kind: KIND_ABSENT, file: 0, page: 0 });
  }

  dropPages(runs: { vaddr: bigint; pages: number }[]): void {
    this.live();
    const cover = unionIntervals(runs.map((r) => {
      if (!Number.isSafeInteger(r.pages) || r.pages < 0) throw new StasisError('INVALID_INPUT', `Page count ${r.pages} is not a non-negative integer.`);
      return { vpn: Writer.vpnOf(r.vaddr), count: r.pages };
    }));
    if (cover.length === 0) return;
    // Applied at commit (settledRecords): re-sorting every record at each drop cost 30-180 ms per
    // pre-copy round for 300 MB, time in which the program wrote more pages for the freeze.
    this.drops.push({ at: this.records.length, cover });
    this.given = subtractIntervals(this.given, cover);
  }

  keepPages(runs: { vaddr: bigint; pages: number }[]): void {
    this.live();
    for (const r of runs) {
      const vpn = Writer.vpnOf(r.vaddr);
      if (r.pages === 0) continue;
      const held = pageCount(intersect(window(this.parentView, vpn, vpn + r.pages), [{ vpn, count: r.pages }]));
      if (held !== r.pages) throw new StasisError('INVALID_INPUT', `Pages at 0x${r.vaddr.toString(16)} (${r.pages}) are not all in the parent checkpoint (see parentPresent), so they cannot be kept unchanged; give their contents.`);
      this.given.push({ vpn, count: r.pages });
    }
  }

  parentPresent(): { vpn: number; count: number }[] {
    return unionIntervals(this.parentView);
  }

  private record(e: Extent): void {
    // Never merge into a record given before the last drop: the drop applies to that one only.
    const lastDrop = this.drops.length ? this.drops[this.drops.length - 1]!.at : 0;
    if (this.records.length > lastDrop) pushExtent(this.records, e);
    else if (e.count > 0) this.records.push({ ...e });
  }

  /**
   * The records with every drop applied: a drop takes back the pages it covers from the records
   * given before it, not from those given after (the page read again). Overlaps left are caller
   * bugs; normalize() names the page. A drop covers a few pages of tens of thousands of records
   * (1 GiB: 52k), so only the records it touches are cut; the rest are kept as they are, and the
   * list is re-sorted only when the drops made it unsorted (re-sorting and copying every record
   * cost 0.05-0.5 s of a 1 GiB commit).
   */
  private settledRecords(): Extent[] {
    if (this.drops.length === 0) return normalized(this.records);
    let later: { vpn: number; count: number }[] = []; // covers of the drops after the current chunk
    let end = this.records.length;
    const chunks: Extent[][] = [];
    for (let j = this.drops.length; j >= 0; j--) {
      // Chunk j: the records given after drop j-1 and before drop j.
      const start = j > 0 ? this.drops[j - 1]!.at : 0;
      const chunk: Extent[] = [];
      for (let i = start; i < end; i++) {
        const e = this.records[i]!;
        if (later.length === 0 || !overlapsAny(later, e)) chunk.push(e);
        else for (const part of subtract([e], later)) chunk.push(part);
      }
      chunks.push(chunk);
      end = start;
      if (j > 0) later = unionIntervals([...later, ...this.drops[j - 1]!.cover]);
    }
    return merged(chunks);
  }

  commit(stats?: Partial<CheckpointStats>): CheckpointInfo {
    this.live();
    try {
      if (!this.state) throw new StasisError('INVALID_INPUT', `Checkpoint ${this.id} has no process state; call setState() before commit().`);
      const given = unionIntervals(this.given);
      // Overlapping addPages calls are caller bugs; normalize() names the page.
      let records = this.settledRecords();
      const parentPresent = this.parentView;
      let gone: Extent[];
      if (this.opts.coverage === 'complete') {
        gone = outside(parentPresent, given);
      } else {
        const maps = unionIntervals(this.state.mappings.map((m) => ({ vpn: Number(m.start >> 12n), count: Number((m.end - m.start) >> 12n) })));
        gone = subtract(outside(parentPresent, maps), given);
      }
      if (gone.length) {
        records = normalize([...records, ...gone.map((e) => ({ vpn: e.vpn, count: e.count, kind: KIND_ABSENT, file: 0, page: 0 } as Extent))]);
      }
      // A root's view is its records (shared: neither list is changed after this).
      const view = parentPresent.length === 0 ? withoutAbsent(records) : overlay(parentPresent, records, true);
      const seg = this.seg;
      const info = this.host.commitCheckpoint({
        seg,
        def: {
          type: 'def',
          ckpt: this.id,
          target: this.target,
          parent: this.opts.parentId,
          createdAt: new Date(this.started).toISOString(),
          label: this.opts.label ?? null,
          notes: null,
          pinned: false,
          mode: this.opts.mode,
          dirtyTracking: this.opts.dirtyTracking,
          restoredFrom: this.opts.restoredFrom ?? null,
          stats: {
            pagesScanned: stats?.pagesScanned ?? pageCount(given),
            pagesWritten: seg.pages,
            pagesChanged: pageCount(records),
            bytesWritten: 0, // filled by the store with the segment's size
            logicalBytes: pageCount(view) * PAGE,
            ...(stats?.frozenMs !== undefined ? { frozenMs: stats.frozenMs } : {}),
            durationMs: stats?.durationMs ?? Date.now() - this.started,
          },
          state: encodeState(this.state),
        },
        records,
        hashes: this.dataHashes(records),
        newPages: this.newPages,
        view,
      });
      this.done = true;
      if (this.ownsLocal) this.local.give();
      this.host.finishWriter();
      return info;
    } catch (e) {
      this.abort();
      throw e;
    }
  }

  /** Hashes of the data pages of records, in order (for the segment's def entry). */
  private dataHashes(records: Extent[]): Buffer {
    const out = Buffer.allocUnsafe(pageCount(records, KIND_DATA) * HASH_LEN);
    let o = 0;
    for (const e of records) {
      if (e.kind !== KIND_DATA) continue;
      // An extent's pages are consecutive in one file, and so are their hashes: one copy per extent.
      if (e.file === this.seg.fileId) this.seg.copyHashes(e.page, e.count, out, o);
      else this.host.reader.copyHashes(e.file, e.page, e.count, out, o);
      o += e.count * HASH_LEN;
    }
    return out;
  }

  abort(): void {
    if (this.done) return;
    this.done = true;
    this.seg.discard();
    if (this.ownsLocal) this.local.give();
    this.host.finishWriter();
  }
}
