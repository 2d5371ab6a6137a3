/**
 * Pre-copy live snapshot (userfaultfd write-protect in async mode, kernel 6.7+): most of the memory
 * is copied while the target runs, and the freeze only has to copy what changed meanwhile.
 *
 *   1. A brief freeze creates a userfaultfd in the target with UFFD_FEATURE_WP_ASYNC (uffd.ts) and
 *      registers its private anonymous mappings for write-protect, exactly as they are then.
 *      Registering changes the target's mappings (a range registered is split off its mapping), so
 *      it is never done while the target runs: a range read from /proc/PID/maps a moment earlier
 *      may by then cut through a mapping the program made since, and its own mremap of that
 *      mapping would fail (EFAULT), or move only part of it (Linux 6.17+ moves several mappings).
 *   2. Target running: the present pages of the registered mappings are protected (this changes
 *      page tables only), then read into the checkpoint. In async mode a write to a protected
 *      page is resolved by the kernel itself (no message, the writer never waits on us) and clears
 *      the page's protection, which PAGEMAP_SCAN reports as "written".
 *   3. Rounds, target still running: the pages written since the last round are taken back from
 *      the checkpoint, protected again in the same walk (PM_SCAN_WP_MATCHING) and read again, while
 *      the set shrinks, so what is left for the freeze is small.
 *   4. The freeze: state as in every mode, then one PAGEMAP_SCAN over the private mappings. A page
 *      present and still protected holds what was read into the checkpoint; every other present
 *      page (written since, populated since, or in a mapping we did not register: a new mmap, a
 *      file mapping, one another userfaultfd owns) is copied now; a page given earlier that is not
 *      there any more (munmap, MADV_DONTNEED) is taken back. The image is the memory at that freeze.
 *
 *
 * Dirty tracking between checkpoints (an engine that lives on: the app, `stasis daemon`): after a
 * checkpoint the userfaultfd is kept (tracking.ts) with every page of the registered mappings
 * protected again at the freeze (mappings made since are registered there, while frozen), so the
 * next checkpoint of the same process, on top of that one,
 * reads only the pages written since (step 3 from the start) and keeps the others as they are in
 * its parent. Such checkpoints record dirty tracking 'uffd-wp'.
 *
 * Cost for the target: its first write to each protected page takes a minor fault, until the
 * userfaultfd is closed (closing unregisters and unprotects everything, which walks the page
 * tables once more while it runs). Frozen time grows with how much the target writes during the
 * last round, not with its size.
 * Not used (the caller falls back to the fork snapshot) without uffd-wp async, or when the target
 * has an io_uring: the kernel writes into its registered buffers through pinned pages without a
 * fault, so a protected page could change unseen.
 */
import { readdirSync, readlinkSync } from 'node:fs';
import { StasisError } from '../../../shared/errors';
import { PAGE_SIZE, type CheckpointWriter } from '../store/api';
import type { MappingState, ThreadState } from '../state/process-state';
import { closeFd, vmRead, vmReadScatter, SCATTER_MAX, E } from '../native';
import { freeze, readBasics } from '../tracer';
import { openPagemap, closePagemap, scanRanges, scanWritten, protectWrittenAgain, isWpAsyncRegistered, readMaps, type PageRange } from '../proc';
import { subtractIntervals, unionIntervals } from '../store/extents';
import { pagePolicy, readable, toMappingState } from './mappings';
import { createTargetUffd, registerWp, writeProtect, isWpMapping, UFFD_FEATURE } from './uffd';
import { putBackRestartedCalls, restartedCalls, type RestartedCalls } from './restarts';
import { fusedRead, givePages } from './page-read';

const PAGE = BigInt(PAGE_SIZE);
/** Stop the live rounds once this few pages are left to copy while frozen (~1 ms of reading). */
const FROZEN_BUDGET_PAGES = 1024;
/** Above this many ranges to protect again at the freeze, rebase lets the kernel walk each mapping. */
const REPROTECT_ONE_BY_ONE = 64;
const MAX_ROUNDS = 4;
const CHUNK = 4 << 20;
const IO_URING = 'anon_inode:[io_uring]';

export interface PreCopy {
  pid: number;
  startTime: string;
  uffd: number;
  /**
   * The checkpoint at whose freeze every page of the registered mappings was protected again
   * (dirty tracking since then), or null for a userfaultfd made for this checkpoint.
   */
  base: number | null;
  /** Time the target spent frozen so far (the brief freeze that made the userfaultfd). */
  frozenMs: number;
  /** Pages given to the checkpoint while the target ran, as page-number intervals (unsorted). */
  given: { vpn: number; count: number }[];
  /** The mappings registered with this userfaultfd (as they were when registered). */
  ranges: { start: bigint; end: bigint }[];
  /** Per thread, the call a freeze interrupted with a restart block (see keepRestartedCalls). */
  restarts: RestartedCalls;
  /** Non-zero: the errno with which the brief freeze's registration was refused (another userfaultfd has a mapping). */
  refused: number;
  rounds: number;
  /**
   * copyLive's read buffer, every page of it touched, handed to readFrozenCopy (which gives it away
   * with the frozen copy). Fresh memory is not free while frozen: each first touch of a page is a
   * fault, 12-33 µs on this VM (a C loop over a new 1.5 MiB mapping), so reading 373 pages of a
   * python3 process into a new buffer cost 5-17 ms of its downtime and 0.5 ms into a touched one.
   */
  scratch: Buffer | null;
}

export interface FrozenCopy {
  /** Pages to take back from the checkpoint (given live, not valid at the freeze). */
  drop: { vaddr: bigint; pages: number }[];
  data: { vaddr: bigint; data: Buffer }[];
  zero: { vaddr: bigint; pages: number }[];
  /** Pages unchanged since the parent (tracking): kept as the parent has them. */
  unchanged: { vaddr: bigint; pages: number }[];
  /**
   * False when an io_uring appeared during the live read: nothing read live was kept, and the
   * userfaultfd must not be kept for tracking either.
   */
  trusted: boolean;
  pagesScanned: number;
  /** What must still be read as it was at the freeze (readFrozenCopy fills `data` from it). */
  toRead: { start: bigint; pages: number }[];
}

/**
 * Puts back calls a stop turned into `restart_syscall` (restarts.ts): those this checkpoint's first
 * brief freeze (or, for a tracker, the previous freeze) interrupted, else those of `fromParent`
 * (the parent checkpoint's). Then remembers this freeze's calls for the next checkpoint.
 */
export function keepRestartedCalls(pc: PreCopy, threads: ThreadState[], fromParent: RestartedCalls): void {
  putBackRestartedCalls(threads, pc.restarts, fromParent);
  pc.restarts = restartedCalls(threads);
}

/** Whether the process holds an io_uring (see the module comment); unreadable fds count as none. */
export function hasIoUring(pid: number): boolean {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  return fds.some((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`) === IO_URING;
    } catch {
      return false;
    }
  });
}

/**
 * Step 1. Freezes the target briefly to give it an async-WP userfaultfd; null (nothing changed)
 * when it cannot have one. Never leaves the target stopped.
 */
export function openPreCopy(pid: number, startTime: string, timeoutMs?: number): PreCopy | null {
  const t = freeze(pid, { skipChecks: true, timeoutMs });
  try {
    const now = readBasics(pid);
    if (!now || now.startTime !== startTime) throw new StasisError('PROCESS_GONE', `Process ${pid} exited and its PID was reused while Stasis was attaching. Nothing was captured.`);
    const restarts = restartedCalls(t.tids.map((tid) => ({ tid, regs: t.regs(tid) })));
    // User-mode-only is fine here: in async mode no fault is ever delivered to us.
    const uffd = createTargetUffd(t, UFFD_FEATURE.PAGEFAULT_FLAG_WP | UFFD_FEATURE.WP_ASYNC, true);
    if (uffd === null) return null;
    const pc: PreCopy = { pid, startTime, uffd, base: null, frozenMs: 0, given: [], ranges: [], restarts, refused: 0, rounds: 0, scratch: null };
    pc.refused = registerFrozen(pc, readMaps(pid).map((e) => toMappingState(pid, e, false)));
    pc.frozenMs = t.elapsedMs();
    return pc;
  } finally {
    t.release();
  }
}

/** Reads [start, end) of the running target into the writer; returns the pages read (a range unmapped meanwhile ends the read early). */
function readLive(pc: PreCopy, writer: CheckpointWriter, buffer: Buffer, start: bigint, end: bigint): number {
  let pages = 0;
  const src = { pid: pc.pid, memFd: -1 };
  const read = fusedRead(src);
  for (let a = start; a < end; ) {
    const len = Number(end - a) > buffer.length ? buffer.length : Number(end - a);
    const whole = givePages(writer, src, read, buffer, a, len);
    if (whole > 0) {
      pc.given.push({ vpn: Number(a / PAGE), count: whole / PAGE_SIZE });
      pages += whole / PAGE_SIZE;
    }
    // Short read: the target unmapped or remapped this range; the freeze decides what it holds.
    if (whole < len) return pages;
    a += BigInt(len);
  }
  return pages;
}

/**
 * Gives many (small, scattered) ranges of the running target: batches read with one
 * process_vm_readv each and given to the writer in one call each (per-range calls cost a system
 * call and a dedup query per page, the bulk of an incremental's time).
 */
function giveScattered(pc: PreCopy, writer: CheckpointWriter, buffer: Buffer, ranges: PageRange[]): void {
  let batch: PageRange[] = [];
  let bytes = 0;
  const flush = (): void => {
    if (batch.length === 0) return;
    const n = vmReadScatter(pc.pid, batch.map((r) => ({ addr: r.start, len: Number(r.end - r.start) })), buffer);
    if (n === bytes) {
      writer.addPageRuns(batch.map((r) => ({ vaddr: r.start, pages: Number((r.end - r.start) / PAGE) })), buffer.subarray(0, bytes));
      for (const r of batch) pc.given.push({ vpn: Number(r.start / PAGE), count: Number((r.end - r.start) / PAGE) });
    } else {
      // Something was unmapped meanwhile: range by range (readLive gives what is still there).
      for (const r of batch) readLive(pc, writer, buffer, r.start, r.end);
    }
    batch = [];
    bytes = 0;
  };
  for (const r of ranges) {
    const len = Number(r.end - r.start);
    if ((r.zeroPfn && !r.swapped) || len > buffer.length) {
      giveLive(pc, writer, buffer, r);
      continue;
    }
    if (bytes + len > buffer.length || batch.length === SCATTER_MAX) flush();
    batch.push(r);
    bytes += len;
  }
  flush();
}

function giveLive(pc: PreCopy, writer: CheckpointWriter, buffer: Buffer, r: PageRange): number {
  if (r.zeroPfn && !r.swapped) {
    const pages = Number((r.end - r.start) / PAGE);
    writer.addZeroPages(r.start, pages);
    pc.given.push({ vpn: Number(r.start / PAGE), count: pages });
    return pages;
  }
  return readLive(pc, writer, buffer, r.start, r.end);
}

/**
 * Registers, while the target is frozen, each of `mappings` (its address space at this freeze) that
 * pre-copy reads, and makes them pc.ranges: one registered before is registered again (a no-op for
 * the kernel), one unmapped or moved since is forgotten. Returns the errno of a refusal, else 0.
 * EINVAL: a mapping userfaultfd cannot handle, copied while frozen. Anything else (EBUSY: another
 * userfaultfd has it, the program's own or another Stasis engine's; or our userfaultfd outlived the
 * address space it was made for, after an exec): the caller takes another way.
 */
function registerFrozen(pc: PreCopy, mappings: readonly MappingState[]): number {
  let refused = 0;
  const ranges: PreCopy['ranges'] = [];
  for (const m of mappings) {
    if (!isWpMapping(m)) continue;
    const err = registerWp(pc.uffd, m.start, m.end);
    if (err === 0) ranges.push({ start: m.start, end: m.end });
    else if (err !== E.EINVAL) refused ||= err;
  }
  pc.ranges = ranges;
  return refused;
}

/**
 * Step 2a, while the target runs: write-protects the present pages of its private anonymous
 * mappings (`mappings`: its address space now) that the brief freeze registered (a mapping made
 * since is read at the freeze). Returns what to read (copyLive).
 */
export function protectLive(pc: PreCopy, mappings: MappingState[]): LivePlan {
  const plan: LivePlan = { registered: [], ranges: [], refused: pc.refused };
  if (pc.refused) return plan;
  const pm = openPagemap(pc.pid);
  try {
    for (const m of mappings) {
      if (!isWpMapping(m)) continue;
      // Still registered, whole: the program may have unmapped, moved or replaced it since.
      if (!pc.ranges.some((r) => r.start <= m.start && m.end <= r.end) || !isWpAsyncRegistered(pm, m.start, m.end)) continue;
      plan.registered.push(m);
      // Tracked since the base: only what was written since is read (copyLive's rounds).
      if (pc.base !== null) continue;
      // Only present pages are protected: protecting a whole sparse mapping would make the
      // kernel build page tables for all of it (WP_ASYNC implies WP_UNPOPULATED markers).
      const ranges = scanRanges(pm, m.start, m.end, true, { noFile: true });
      for (const r of ranges) writeProtect(pc.uffd, r.start, r.end - r.start, true);
      plan.ranges.push(...ranges);
    }
  } finally {
    closePagemap(pm);
  }
  return plan;
}

export interface LivePlan {
  registered: MappingState[];
  ranges: PageRange[];
  /** Non-zero: the errno with which a mapping's registration was refused; nothing can be trusted. */
  refused: number;
}

/**
 * Steps 2b and 3, while the target runs: reads the protected pages into the checkpoint, then
 * rounds of re-reading what was written meanwhile. onPages gets the pages given so far (progress).
 */
export function copyLive(pc: PreCopy, writer: CheckpointWriter, plan: LivePlan, onPages?: (pages: number) => void): LiveCopy {
  const buffer = Buffer.allocUnsafeSlow(CHUNK);
  let given = 0;
  let lastRound = 0;
  for (const r of plan.ranges) {
    given += giveLive(pc, writer, buffer, r);
    onPages?.(given);
  }
  const pm = openPagemap(pc.pid);
  try {
    let last = Infinity;
    for (pc.rounds = 1; pc.rounds <= MAX_ROUNDS; pc.rounds++) {
      // The scan protects the pages it reports again, so they must be read again whatever comes next.
      const written: PageRange[] = [];
      for (const m of plan.registered) written.push(...scanWritten(pm, m.start, m.end, true));
      const pages = written.reduce((n, r) => n + Number((r.end - r.start) / PAGE), 0);
      lastRound = pages;
      if (pages > 0) {
        writer.dropPages(written.map((r) => ({ vaddr: r.start, pages: Number((r.end - r.start) / PAGE) })));
        pc.given = subtractIntervals(pc.given, written.map((r) => ({ vpn: Number(r.start / PAGE), count: Number((r.end - r.start) / PAGE) })));
        giveScattered(pc, writer, buffer, written);
      }
      if (pages <= FROZEN_BUDGET_PAGES || pages > last / 2) break; // little left, or not converging
      last = pages;
    }
  } finally {
    closePagemap(pm);
  }
  // The reads above touched only as much of it as their largest batch: touch the rest now, while
  // the target runs, so the frozen read faults nothing in. (Sizing it to the last round instead
  // was tried: touching tens of MiB of fresh memory here took ~95 ms on this VM, all of it time in
  // which the program wrote more pages for the freeze to copy.)
  buffer.fill(0);
  pc.scratch = buffer;
  freshPageMs(); // measured now, while the target runs, if not yet
  return { given, lastRound };
}

/**
 * One more of copyLive's rounds, for a freeze that comes well after its own rounds ended (a tree:
 * the other members were read live meanwhile, and this one wrote on): what it wrote since is
 * taken back and read again, so the freeze finds only what it writes from now on. Reads through
 * copyLive's touched buffer (pc.scratch: still scratch until the frozen read).
 */
export function catchUpLive(pc: PreCopy, writer: CheckpointWriter, plan: LivePlan): void {
  const buffer = pc.scratch;
  if (!buffer) return;
  const pm = openPagemap(pc.pid);
  try {
    const written: PageRange[] = [];
    for (const m of plan.registered) written.push(...scanWritten(pm, m.start, m.end, true));
    if (written.length === 0) return;
    writer.dropPages(written.map((r) => ({ vaddr: r.start, pages: Number((r.end - r.start) / PAGE) })));
    pc.given = subtractIntervals(pc.given, written.map((r) => ({ vpn: Number(r.start / PAGE), count: Number((r.end - r.start) / PAGE) })));
    giveScattered(pc, writer, buffer, written);
  } finally {
    closePagemap(pm);
  }
}

/** What the live read found: pages given in its first pass, and pages written again during its last round. */
export interface LiveCopy {
  given: number;
  lastRound: number;
}

/**
 * Whether the program writes faster than the live rounds read (a compressor, a big in-memory
 * sort): its last round still found more pages written than the buffer holds and more than an
 * eighth of what the first pass read. Finishing with pre-copy would then copy them while it is
 * stopped, or fork at the freeze after a scan of every page, and store most pages two or three
 * times; a plain fork snapshot stops it for a page-table copy only (a 300 MB program rewriting
 * itself: 330-1090 ms frozen and 2-3x the pages stored with pre-copy, 21-31 ms with the fork
 * snapshot), so the caller starts over with that.
 */
export function outrunsPreCopy(c: LiveCopy): boolean {
  return c.lastRound > CHUNK / PAGE_SIZE && c.lastRound > c.given / 8;
}

/** Step 4's scan, taken while frozen: every present or swapped page range of the private mappings worth saving, with its mapping. */
export interface FrozenScan {
  ranges: { m: MappingState; r: PageRange }[];
  /** Pages in those ranges. */
  pages: number;
  /** Pages not protected any more (written or populated since the live read), in those ranges. */
  unprotected: number;
  /** The address space at the freeze. */
  mappings: readonly MappingState[];
}

/**
 * Step 4, with the target frozen and `mappings` its address space now: the page-table scan (one
 * PAGEMAP_SCAN per run of consecutive mappings, see scanFrozen). What it means for the checkpoint
 * is worked out by copyFrozen, which needs only this scan: with a fork snapshot it runs after the
 * target is released.
 */
export function scanAtFreeze(pc: PreCopy, mappings: MappingState[]): FrozenScan {
  const scan: FrozenScan = { ranges: [], pages: 0, unprotected: 0, mappings };
  const pm = openPagemap(pc.pid);
  try {
    for (const x of scanFrozen(pm, mappings)) {
      const pages = Number((x.r.end - x.r.start) / PAGE);
      scan.ranges.push(x);
      scan.pages += pages;
      if (!x.r.wp) scan.unprotected += pages;
    }
  } finally {
    closePagemap(pm);
  }
  return scan;
}

/**
 * From the freeze's scan: what the checkpoint keeps from the live read, takes back, and must still
 * read as it was at the freeze (`toRead`: readFrozenCopy reads it, from the frozen target or from a
 * fork snapshot of it). Applied to the writer after the resume (applyFrozenCopy). Shared mappings
 * are left to the caller (read after the resume, as in every live mode). `parentPresent`
 * (tracking only: the writer's parentPresent(), asked before the freeze) is what the parent
 * checkpoint holds.
 */
export function copyFrozen(pc: PreCopy, scan: FrozenScan, fdTargets: string[], parentPresent: { vpn: number; count: number }[] = []): FrozenCopy {
  // An io_uring that appeared during the live read may have written pages unseen: trust nothing.
  const trusted = !fdTargets.includes(IO_URING);
  const out: FrozenCopy = { drop: [], data: [], zero: [], unchanged: [], pagesScanned: scan.pages, trusted, toRead: [] };
  const given = trusted ? unionIntervals(pc.given) : [];
  if (!trusted && pc.given.length > 0) out.drop.push(...unionIntervals(pc.given).map((g) => ({ vaddr: BigInt(g.vpn) * PAGE, pages: g.count })));
  const keep: { vpn: number; count: number }[] = [];
  const toRead = out.toRead;
  // The scan's ranges come in address order: cursors walk given and parentPresent alongside.
  const givenAt = new IntervalCursor(given);
  const parentAt = new IntervalCursor(trusted && pc.base !== null ? parentPresent : []);
  for (const { m, r } of scan.ranges) {
    if (pagePolicy(m) === 'cow' && r.file) continue; // still the file's page
    const pages = Number((r.end - r.start) / PAGE);
    const vpn = Number(r.start / PAGE);
    // Still protected: unchanged since it was read, if it was read (see copyLive), or else
    // since the base, if the parent has it (tracking).
    const { inside: valid, outside: rest } = r.wp ? givenAt.split(vpn, pages) : { inside: [], outside: [{ vpn, count: pages }] };
    keep.push(...valid);
    for (const g of rest) {
      const { inside: unchanged, outside: gaps } = r.wp ? parentAt.split(g.vpn, g.count) : { inside: [], outside: [g] };
      for (const u of unchanged) out.unchanged.push({ vaddr: BigInt(u.vpn) * PAGE, pages: u.count });
      for (const gap of gaps) {
        const start = BigInt(gap.vpn) * PAGE;
        if (r.zeroPfn && !r.swapped) out.zero.push({ vaddr: start, pages: gap.count });
        else toRead.push({ start, pages: gap.count });
      }
    }
  }
  // Everything given live that is not kept is taken back: changed since, or gone.
  if (given.length === 0) return out;
  for (const g of subtractIntervals(given, keep)) out.drop.push({ vaddr: BigInt(g.vpn) * PAGE, pages: g.count });
  return out;
}

type Run = { vpn: number; count: number };

/**
 * Walks sorted, merged page intervals alongside ranges that come in increasing address order
 * (the freeze-time scan), so the frozen path neither sorts nor searches per range.
 */
class IntervalCursor {
  private i = 0;
  constructor(private readonly list: Run[]) {}

  /** [vpn, vpn + count) split into its parts inside the list and outside it, each in order. */
  split(vpn: number, count: number): { inside: Run[]; outside: Run[] } {
    const end = vpn + count;
    const list = this.list;
    while (this.i < list.length && list[this.i]!.vpn + list[this.i]!.count <= vpn) this.i++;
    const inside: Run[] = [];
    const outside: Run[] = [];
    let cur = vpn;
    for (let j = this.i; j < list.length && list[j]!.vpn < end; j++) {
      const s0 = Math.max(list[j]!.vpn, vpn);
      const e0 = Math.min(list[j]!.vpn + list[j]!.count, end);
      if (s0 > cur) outside.push({ vpn: cur, count: s0 - cur });
      inside.push({ vpn: s0, count: e0 - s0 });
      cur = e0;
    }
    if (cur < end) outside.push({ vpn: cur, count: end - cur });
    return { inside, outside };
  }
}

/** Costs for choosing how to finish a pre-copy (see readsBetterFromFork), measured on this VM. */
const COST = {
  /** Reading one page while frozen into the buffer touched beforehand (373 pages of python3: 0.5 ms). */
  touchedPageMs: 0.0013,
  /** fork's page-table copy, per resident page (a 1 GiB target: 30-40 ms). */
  forkPageMs: 0.00013,
  /** Reaping the snapshot child afterwards takes a second brief freeze. */
  forkFixedMs: 5,
};

let freshPageMsCache: number | null = null;

/**
 * What a first touch of a fresh page costs in this process, measured once on 1 MiB: 12-33 µs on
 * this VM (the host backs guest memory lazily), well under 1 µs on most machines, so it decides
 * between copying while frozen and forking, and cannot be a constant.
 */
function freshPageMs(): number {
  if (freshPageMsCache === null) {
    const t0 = performance.now();
    Buffer.allocUnsafeSlow(1 << 20).fill(1);
    freshPageMsCache = Math.max(COST.touchedPageMs, (performance.now() - t0) / 256);
  }
  return freshPageMsCache;
}

/**
 * Whether the rest of a pre-copy is cheaper to read from a fork snapshot than while frozen: when
 * the program wrote faster than the live rounds could read (a compressor, a big in-memory sort),
 * copying what it wrote keeps it stopped for that whole copy (470-510 ms for xz -9e, 0.45-1.1 s for
 * a program rewriting 300 MB), while fork stops it for a page-table copy plus the reaping of the
 * child. The estimate uses the costs above: the pages beyond the touched buffer cost a fault each.
 */
export function readsBetterFromFork(pc: PreCopy, scan: FrozenScan): boolean {
  const room = (pc.scratch?.length ?? 0) / PAGE_SIZE;
  const u = scan.unprotected;
  if (u <= room) return false;
  const copyMs = room * COST.touchedPageMs + (u - room) * freshPageMs();
  const forkMs = scan.pages * COST.forkPageMs + COST.forkFixedMs;
  return forkMs < copyMs;
}

/** Reads what copyFrozen found to read, from `fromPid`: the frozen target, or a fork snapshot of it taken at the freeze. */
export function readFrozenCopy(pc: PreCopy, c: FrozenCopy, fromPid: number): void {
  c.data = readFrozen(fromPid, c.toRead, pc.scratch);
  pc.scratch = null; // c.data may point into it until applyFrozenCopy
  c.toRead = [];
}

/** Largest mapping that joins its page-cache neighbours' scan (the page-cache category costs a look at each page's struct page). */
const SMALL_MAPPING = 1n << 20n;
const FROZEN_READ_BATCH = 8 << 20;

/**
 * The present or swapped pages of the private mappings worth saving, each range with its mapping.
 * Consecutive mappings are scanned with one PAGEMAP_SCAN (one ioctl per mapping cost 0.1-0.2 ms of
 * frozen time each, and programs have hundreds of mappings); only ranges holding file-private
 * mappings ask for the page-cache category. A range the kernel returns across two mappings is
 * split at their boundary.
 */
function* scanFrozen(pm: number, mappings: MappingState[]): Generator<{ m: MappingState; r: PageRange }> {
  const wanted = (m: MappingState): boolean => pagePolicy(m) !== 'none' && readable(m) && m.perms[3] !== 's';
  const needsFile = (m: MappingState): boolean => pagePolicy(m) === 'cow' || m.end - m.start <= SMALL_MAPPING;
  let i = 0;
  while (i < mappings.length) {
    if (!wanted(mappings[i]!)) { i++; continue; }
    const file = needsFile(mappings[i]!);
    let j = i + 1;
    while (j < mappings.length && wanted(mappings[j]!) && needsFile(mappings[j]!) === file) j++;
    const group = mappings.slice(i, j);
    let k = 0;
    for (const r of scanRanges(pm, group[0]!.start, group[group.length - 1]!.end, true, { noFile: !file })) {
      for (let start = r.start; start < r.end; ) {
        while (k < group.length && group[k]!.end <= start) k++;
        const m = group[k];
        if (!m) break;
        if (m.start >= r.end) break;
        const s0 = start > m.start ? start : m.start;
        const e0 = r.end < m.end ? r.end : m.end;
        yield { m, r: { ...r, start: s0, end: e0 } };
        start = e0;
      }
    }
    i = j;
  }
}

/** Reads ranges of the frozen process, many per process_vm_readv. */
function readFrozen(pid: number, ranges: { start: bigint; pages: number }[], scratch: Buffer | null): { vaddr: bigint; data: Buffer }[] {
  const out: { vaddr: bigint; data: Buffer }[] = [];
  let free = scratch; // what is left of it; batches that fit are carved from it
  const fail = (at: bigint): never => { throw new StasisError('PROCESS_GONE', `Could not read 0x${at.toString(16)} of frozen process ${pid}.`); };
  let i = 0;
  while (i < ranges.length) {
    const first = ranges[i]!;
    if (first.pages * PAGE_SIZE > FROZEN_READ_BATCH) {
      const data = Buffer.allocUnsafeSlow(first.pages * PAGE_SIZE);
      if (vmRead(pid, first.start, data) !== data.length) fail(first.start);
      out.push({ vaddr: first.start, data });
      i++;
      continue;
    }
    let bytes = 0;
    let j = i;
    while (j < ranges.length && j - i < SCATTER_MAX && bytes + ranges[j]!.pages * PAGE_SIZE <= FROZEN_READ_BATCH) bytes += ranges[j++]!.pages * PAGE_SIZE;
    let buf: Buffer;
    if (free && free.length >= Math.max(bytes, 4096)) {
      buf = free.subarray(0, Math.max(bytes, 4096));
      free = free.subarray(buf.length);
    } else buf = Buffer.allocUnsafeSlow(Math.max(bytes, 4096));
    const batch = ranges.slice(i, j);
    if (vmReadScatter(pid, batch.map((r) => ({ addr: r.start, len: r.pages * PAGE_SIZE })), buf) !== bytes) fail(first.start);
    let o = 0;
    for (const r of batch) {
      out.push({ vaddr: r.start, data: buf.subarray(o, o + r.pages * PAGE_SIZE) });
      o += r.pages * PAGE_SIZE;
    }
    i = j;
  }
  return out;
}

/**
 * Still frozen, after scanAtFreeze: protects again the pages written since they were protected, so
 * that from this freeze on every registered page is tracked (the next checkpoint's base). A few
 * ranges are protected one by one; many (a program that wrote all over its memory) by one
 * PAGEMAP_SCAN with PM_SCAN_WP_MATCHING per registered mapping, which protects the same pages
 * (written, present or swapped: no marker is left in unpopulated page tables) in the kernel's own
 * walk: one ioctl per range cost ~5 µs each, 95-120 ms for 19,000 ranges.
 */
export function rebase(pc: PreCopy, scan: FrozenScan, fdTargets: string[]): void {
  if (fdTargets.includes(IO_URING)) return; // not kept for tracking (copyFrozen trusts nothing)
  // The registered mappings become those of the address space now, registered while frozen (see
  // step 1): those made since the last freeze too, so the next checkpoint reads them live. One the
  // kernel refuses stays unprotected (read at each freeze).
  registerFrozen(pc, scan.mappings);
  const ranges = scan.ranges.filter(({ m, r }) => !r.wp && isWpMapping(m)).map(({ r }) => r);
  if (ranges.length <= REPROTECT_ONE_BY_ONE) {
    for (const r of ranges) writeProtect(pc.uffd, r.start, r.end - r.start, true);
    return;
  }
  const registered = [...pc.ranges].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const pm = openPagemap(pc.pid);
  try {
    let i = 0;
    for (const reg of registered) {
      while (i < ranges.length && ranges[i]!.end <= reg.start) {
        writeProtect(pc.uffd, ranges[i]!.start, ranges[i]!.end - ranges[i]!.start, true); // outside every registered mapping
        i++;
      }
      const first = i;
      while (i < ranges.length && ranges[i]!.start >= reg.start && ranges[i]!.end <= reg.end) i++;
      if (i === first) continue;
      try {
        protectWrittenAgain(pm, reg.start, reg.end);
      } catch {
        // The mapping changed since it was registered (the scan refuses unregistered parts): one by one.
        for (let k = first; k < i; k++) writeProtect(pc.uffd, ranges[k]!.start, ranges[k]!.end - ranges[k]!.start, true);
      }
    }
    for (; i < ranges.length; i++) writeProtect(pc.uffd, ranges[i]!.start, ranges[i]!.end - ranges[i]!.start, true);
  } finally {
    closePagemap(pm);
  }
}

export function applyFrozenCopy(writer: CheckpointWriter, c: FrozenCopy): void {
  writer.dropPages(c.drop);
  writer.keepPages(c.unchanged);
  for (const z of c.zero) writer.addZeroPages(z.vaddr, z.pages);
  for (const d of c.data) writer.addPages(d.vaddr, d.data);
}

/** Closes our userfaultfd: the kernel unregisters every mapping and drops the protection. */
export function closePreCopy(pc: PreCopy | null): void {
  if (pc && pc.uffd >= 0) {
    closeFd(pc.uffd);
    pc.uffd = -1;
  }
}
