/**
 * Restore step "memory": the trampoline, dropping the stub's own mappings, creating every mapping of
 * the checkpoint at its address with its protections (file-backed ones from the same file and
 * offset), and writing the saved pages into them. Runs only inside the stub through Remote; must
 * never write page contents into a MAP_SHARED file mapping (that would change the file on disk).
 */
import { StasisError } from '../../../shared/errors';
import type { LocatedPart, LocatedRun, PageRun } from '../store/api';
import { HASH_LEN } from '../store/format';
import { digestPages, ZERO_PAGE_HASH, type PageDigests } from '../store/hash';
import { vmReadScatter } from '../native';
import type { Remote } from './remote';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_PRIVATE, MAP_SHARED, PROT_EXEC, PROT_READ, PROT_WRITE, TRAMPOLINE_CODE, TRAMPOLINE_SIZE, type MapStep, type RestorePlan } from './plan';
import { NR, PR_SET_VMA } from './sysno';
import { O_RDWR } from './fd-plan';
import { UffdFill } from './uffd-fill';
import { PageFill, type FillSource } from './page-fill';
import { currentSegments } from '../state/sysv-shm';
import { MappedGhostFiles } from './mapped-ghosts';

const O_RDONLY = 0, O_CLOEXEC = 0o2000000;

export function setUpTrampoline(r: Remote, plan: RestorePlan): void {
  const got = r.call(NR.mmap, [plan.trampoline, TRAMPOLINE_SIZE, BigInt(PROT_READ | PROT_WRITE | PROT_EXEC),
    BigInt(MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE), -1n, 0n], 'mmap of the restore trampoline');
  if (got !== plan.trampoline) throw new StasisError('INTERNAL', `The restore trampoline landed at 0x${got.toString(16)} instead of 0x${plan.trampoline.toString(16)}.`);
  r.write(plan.trampoline, TRAMPOLINE_CODE);
  r.useTrampoline(plan.trampoline);
}

export function unmapStub(r: Remote, plan: RestorePlan): void {
  for (const u of plan.unmap) r.call(NR.munmap, [u.start, u.end - u.start], `munmap of the stub's ${u.start.toString(16)}`);
  for (const u of plan.dropSpecials) r.call(NR.munmap, [u.start, u.end - u.start], 'munmap of an unused special mapping');
}

/** Creates every mapping; files are opened once each inside the process and closed at the end. */
export function mapAll(r: Remote, plan: RestorePlan, shared: ReadonlyMap<string, number> = new Map()): void {
  const fds = new Map<string, bigint>();
  // Deleted files mapped privately, recreated once per inode (the bytes are on one of its mappings).
  const ghosts = new MappedGhostFiles(plan.steps.flatMap((s) => (s.ghost ? [s.ghost] : [])));
  // Shared memory one object for several processes of a tree: mapped from it, at its offset. A
  // memfd's mappings are mapped from a memfd of the same name made again here (maps shows
  // "/memfd:NAME (deleted)" at the same offsets, not "/dev/zero (deleted)").
  const memfds = new Map<string, bigint>();
  const memfdFor = (s: MapStep): bigint => {
    const key = s.object!.key;
    let fd = memfds.get(key);
    if (fd === undefined) {
      const size = plan.steps.filter((x) => x.object?.key === key).reduce((n, x) => (x.object!.offset + (x.end - x.start) > n ? x.object!.offset + (x.end - x.start) : n), 0n);
      r.resetScratch();
      fd = r.call(NR.memfd_create, [r.putString(s.memfdName!), MFD_CLOEXEC], `memfd_create(${s.memfdName}) for ${s.label}`);
      memfds.set(key, fd);
      r.call(NR.ftruncate, [fd, size], `ftruncate of memfd ${s.memfdName} to ${size} bytes`);
    }
    return fd;
  };
  const fromObject = (s: MapStep): bigint | undefined => {
    if (s.object === undefined) return undefined;
    const parked = shared.get(s.object.key);
    if (parked !== undefined) return BigInt(parked);
    return s.memfdName !== undefined ? memfdFor(s) : undefined;
  };
  try {
    for (const s of plan.steps) {
      if (s.aliasOf !== undefined && fromObject(s) === undefined) continue; // after its primary exists (below)
      if (s.shm) { attachSegment(r, s, s.shm); continue; }
      const obj = fromObject(s);
      if (obj !== undefined) {
        const got = r.call(NR.mmap, [s.start, s.end - s.start, BigInt(s.prot | (needsWritableWhileFilling(s) ? PROT_WRITE : 0)), BigInt(MAP_SHARED | MAP_FIXED), obj, s.object!.offset], `mmap of ${s.label} (from its shared object)`);
        if (got !== s.start) throw new StasisError('INTERNAL', `mmap of ${s.label} landed at 0x${got.toString(16)}.`);
        nameMapping(r, s);
        continue;
      }
      let fd = -1n;
      if (s.path !== undefined) {
        const path = s.ghost ? ghosts.pathFor(s.ghost) : s.path;
        const key = `${s.kind}:${path}`;
        let f = fds.get(key);
        if (f === undefined) {
          r.resetScratch();
          const flags = (s.kind === 'file-shared' && (s.prot & PROT_WRITE) ? O_RDWR : O_RDONLY) | O_CLOEXEC;
          f = r.call(NR.open, [r.putString(path), BigInt(flags), 0n], `open(${s.path}${s.ghost ? ', recreated' : ''}) for its mapping`);
          fds.set(key, f);
        }
        fd = f;
      }
      const got = r.call(NR.mmap, [s.start, s.end - s.start, BigInt(s.prot | (needsWritableWhileFilling(s) ? PROT_WRITE : 0)), BigInt(s.flags), fd, s.offset], `mmap of ${s.label}`);
      if (got !== s.start) throw new StasisError('INTERNAL', `mmap of ${s.label} landed at 0x${got.toString(16)}.`);
      if (s.anonName) {
        r.resetScratch();
        r.call(NR.prctl, [BigInt(PR_SET_VMA), 0n /* PR_SET_VMA_ANON_NAME */, s.start, s.end - s.start, r.putString(s.anonName)], `naming ${s.label}`);
      }
    }
    for (const s of plan.steps) {
      if (s.aliasOf === undefined || fromObject(s) !== undefined) continue;
      // old_size 0: a second mapping of the same shmem pages, not a move.
      const got = r.call(NR.mremap, [s.aliasOf, 0n, s.end - s.start, BigInt(MREMAP_MAYMOVE | MREMAP_FIXED), s.start], `mremap (shared alias) of ${s.label}`);
      if (got !== s.start) throw new StasisError('INTERNAL', `The shared alias ${s.label} landed at 0x${got.toString(16)}.`);
      const prot = s.prot | (needsWritableWhileFilling(s) ? PROT_WRITE : 0);
      r.call(NR.mprotect, [s.start, s.end - s.start, BigInt(prot)], `mprotect of ${s.label}`);
      if (s.anonName) {
        r.resetScratch();
        r.call(NR.prctl, [BigInt(PR_SET_VMA), 0n /* PR_SET_VMA_ANON_NAME */, s.start, s.end - s.start, r.putString(s.anonName)], `naming ${s.label}`);
      }
    }
  } finally {
    for (const fd of [...fds.values(), ...memfds.values()]) r.raw(NR.close, [fd]);
    ghosts.close();
  }
}

const MREMAP_MAYMOVE = 1, MREMAP_FIXED = 2;
const MFD_CLOEXEC = 1n;

function nameMapping(r: Remote, s: MapStep): void {
  if (!s.anonName) return;
  r.resetScratch();
  r.call(NR.prctl, [BigInt(PR_SET_VMA), 0n /* PR_SET_VMA_ANON_NAME */, s.start, s.end - s.start, r.putString(s.anonName)], `naming ${s.label}`);
}

/**
 * A System V segment attached again (the pre-flight checked it still exists): shmat anywhere, the
 * saved part moved to its address with mremap (a mapping may hold only part of a segment), the
 * rest of the attach dropped, the saved protection set.
 */
function attachSegment(r: Remote, s: MapStep, shm: { shmid: number; flags: number }): void {
  const len = s.end - s.start;
  const base = r.call(NR.shmat, [BigInt(shm.shmid), 0n, BigInt(shm.flags)], `shmat of System V segment ${shm.shmid} for ${s.label}`);
  const got = r.call(NR.mremap, [base + s.offset, len, len, BigInt(MREMAP_MAYMOVE | MREMAP_FIXED), s.start], `mremap of System V segment ${shm.shmid} to ${s.label}`);
  if (got !== s.start) throw new StasisError('INTERNAL', `System V segment ${shm.shmid} landed at 0x${got.toString(16)} instead of ${s.label}.`);
  const size = segmentSize(shm.shmid);
  if (s.offset > 0n) r.call(NR.munmap, [base, s.offset], `munmap of the rest of System V segment ${shm.shmid}`);
  if (size > s.offset + len) r.call(NR.munmap, [base + s.offset + len, size - s.offset - len], `munmap of the rest of System V segment ${shm.shmid}`);
  r.call(NR.mprotect, [s.start, len, BigInt(s.prot)], `mprotect of ${s.label}`);
}

/** The segment's size rounded up to pages (what shmat maps). */
function segmentSize(shmid: number): bigint {
  const seg = currentSegments().find((x) => x.shmid === shmid);
  return seg ? (seg.size + 4095n) & ~4095n : 0n;
}

/**
 * /proc/PID/mem can force writes into read-only private pages (copy-on-write) but not into read-only
 * shared ones: those are mapped writable, filled, then given their real protection (sealProtections).
 */
function needsWritableWhileFilling(s: MapStep): boolean {
  return s.kind === 'shared-anon' && s.writeContents && (s.prot & PROT_WRITE) === 0;
}

export function sealProtections(r: Remote, plan: RestorePlan): void {
  for (const s of plan.steps) {
    if (needsWritableWhileFilling(s)) r.call(NR.mprotect, [s.start, s.end - s.start, BigInt(s.prot)], `mprotect of ${s.label}`);
  }
}

/** One page the self-check reads back after every page is in: where, in which mapping, and its content hash or (pages given in memory) its bytes. */
type Sample = { va: bigint; label: string } & ({ hash: Buffer } | { bytes: Buffer });


/**
 * Writes the checkpoint's pages (read ones, PageRun, or located ones, LocatedRun, which the page fill
 * copies straight from the segment files): into fresh private anonymous memory that no transparent
 * huge page can back with UFFDIO_COPY (restore/uffd-fill.ts: each page allocated and filled in one
 * step, no zeroing fault first), elsewhere with process_vm_writev or /proc/PID/mem (page-fill.ts).
 * Zero runs are skipped where the mapping is anonymous (already zero) but written into private file
 * mappings (where zero differs from the file's bytes).
 * Self-check: once all pages are in, the first page of every write and of every skipped zero run is
 * read back from the new process and its content hash compared with the stored one; a page that
 * differs (a write that landed in the wrong place, a later run overwriting an earlier one, a mapping
 * that was not fresh) fails the step instead of handing back different bytes.
 */
export function writePages(r: Remote, plan: RestorePlan, pages: Iterable<PageRun | LocatedRun>, opts: { fresh?: boolean; onWritten?: (pages: number) => void } = {}): { bytes: number; pages: number; writeMs: number; checkedPages: number } {
  // Over memory that already holds an earlier round's pages (a prepared restore), zero runs must be written too.
  const fresh = opts.fresh !== false;
  const steps = plan.steps;
  let si = 0;
  let bytes = 0;
  const samples: Sample[] = [];
  // STASIS_RESTORE_FILL=writev turns UFFDIO_COPY off (bench/restore.ts compares both in one run).
  const uffd = fresh && process.env.STASIS_RESTORE_FILL !== 'writev' ? UffdFill.open(r, steps) : null;
  const fill = new PageFill(r, uffd);
  // Progress: the pages of the runs whose every byte is in (or needs none), counted after each batch.
  let runsDone = 0;
  if (opts.onWritten) fill.onFlushed = () => opts.onWritten!(runsDone);
  try {
    for (const run of pages) {
      const parts = 'parts' in run ? run.parts : run.data ? [{ pages: run.pages, data: run.data }] : null;
      let va = run.vaddr;
      const end = run.vaddr + BigInt(run.pages) * 4096n;
      while (va < end) {
        while (si < steps.length && steps[si].end <= va) si++;
        const s: MapStep | undefined = steps[si];
        if (!s || s.start > va) {
          // Pages of no mapping we create: only the moved kernel mappings ([vdso]) may hold them.
          const to = !s || s.start >= end ? end : s.start;
          if (!inSpecial(plan, va, to)) throw new StasisError('INTERNAL', `The checkpoint holds pages at 0x${va.toString(16)}-0x${to.toString(16)} that lie in none of its mappings; the restore was abandoned rather than leaving them out (a Stasis bug: please report it).`);
          va = to;
          continue;
        }
        const stop = s.end < end ? s.end : end;
        const len = Number(stop - va);
        if (s.writeContents) {
          if (parts) {
            const first = Number(va - run.vaddr) / 4096;
            const method = uffd?.covers(va, stop) ? 'uffd' : (s.prot & PROT_WRITE) || needsWritableWhileFilling(s) ? 'write' : 'mem';
            for (const piece of slice(parts, first, len / 4096)) fill.add(va + BigInt(piece.at) * 4096n, piece.pages * 4096, method, piece.source);
            // Pages in memory are compared byte for byte (hashing each run's first page here cost ~5 us a run).
            samples.push('hashes' in run
              ? { va, label: s.label, hash: run.hashes.subarray(first * HASH_LEN, (first + 1) * HASH_LEN) }
              : { va, label: s.label, bytes: run.data!.subarray(first * 4096, (first + 1) * 4096) });
            bytes += len;
          } else if (s.kind !== 'file-private' && fresh) {
            samples.push({ va, label: s.label, hash: ZERO_PAGE_HASH });
          } else {
            for (let off = 0; off < len; off += ZEROS.length) {
              const n = Math.min(ZEROS.length, len - off);
              fill.add(va + BigInt(off), n, (s.prot & PROT_WRITE) || needsWritableWhileFilling(s) ? 'write' : 'mem', { data: ZEROS, offset: 0 });
            }
            bytes += len;
          }
        }
        va = stop;
      }
      runsDone += run.pages;
    }
    fill.flush();
    opts.onWritten?.(runsDone);
  } finally {
    uffd?.close();
  }
  checkSamples(r, samples);
  return { bytes, pages: bytes / 4096, writeMs: fill.ms, checkedPages: samples.length };
}

const ZEROS = Buffer.alloc(1 << 20);

/** The pieces of parts covering pages [from, from + count) of their run: `at` counts pages from `from`. */
function* slice(parts: readonly LocatedPart[], from: number, count: number): Generator<{ at: number; pages: number; source: FillSource }> {
  let base = 0; // first page of the current part within the run
  for (const p of parts) {
    const lo = Math.max(from, base);
    const hi = Math.min(from + count, base + p.pages);
    if (lo < hi) {
      const skip = (lo - base) * 4096;
      const source: FillSource = 'path' in p ? { path: p.path, offset: p.offset + skip } : { data: p.data, offset: skip };
      yield { at: lo - from, pages: hi - lo, source };
    }
    base += p.pages;
    if (base >= from + count) return;
  }
}

/**
 * Pages a later round no longer has (absent), in memory an earlier round filled: private pages
 * are dropped (MADV_DONTNEED: anonymous ones read as zero again, file ones as the file), as a
 * fresh restore that never wrote them would leave them; shared anonymous ones are zeroed (dropping
 * would keep the shmem page).
 */
export function dropPages(r: Remote, plan: RestorePlan, absent: readonly { vaddr: bigint; pages: number }[]): void {
  const MADV_DONTNEED = 4n;
  for (const a of absent) {
    const end = a.vaddr + BigInt(a.pages) * 4096n;
    for (const s of plan.steps) {
      const from = s.start > a.vaddr ? s.start : a.vaddr;
      const to = s.end < end ? s.end : end;
      if (from >= to || !s.writeContents) continue;
      if (s.kind === 'shared-anon') writePages(r, plan, [{ vaddr: from, pages: Number((to - from) / 4096n), data: null }], { fresh: false });
      else r.call(NR.madvise, [from, to - from, MADV_DONTNEED], `madvise(DONTNEED) of ${s.label}`);
    }
  }
}

function inSpecial(plan: RestorePlan, start: bigint, end: bigint): boolean {
  return plan.specials.some((x) => start >= x.to && end <= x.to + (x.from.end - x.from.start));
}

/** Samples read back per process_vm_readv (its iovec limit is higher; this bounds the buffer). */
const CHECK_BATCH = 256;

function checkSamples(r: Remote, samples: Sample[]): void {
  const buf = Buffer.alloc(CHECK_BATCH * 4096);
  const digests: PageDigests = { zero: new Uint8Array(CHECK_BATCH), hashes: Buffer.alloc(CHECK_BATCH * HASH_LEN) };
  for (let i = 0; i < samples.length; i += CHECK_BATCH) {
    const part = samples.slice(i, i + CHECK_BATCH);
    // One read for the lot; what it could not read (a mapping without PROT_READ stops it) page by
    // page through /proc/PID/mem.
    let got: number;
    try { got = Math.floor(vmReadScatter(r.pid, part.map((x) => ({ addr: x.va, len: 4096 })), buf) / 4096); } catch { got = 0; }
    for (let k = got; k < part.length; k++) {
      if (r.read(part[k].va, buf.subarray(k * 4096, (k + 1) * 4096)) !== 4096) selfCheckFailed(part[k], 'could not be read back');
    }
    if (part.some((x) => 'hash' in x)) digestPages(buf, part.length, digests);
    part.forEach((x, k) => {
      const same = 'bytes' in x
        ? x.bytes.compare(buf, k * 4096, (k + 1) * 4096) === 0
        : x.hash.equals(ZERO_PAGE_HASH) ? digests.zero[k] === 1 : digests.zero[k] === 0 && digests.hashes.subarray(k * HASH_LEN, (k + 1) * HASH_LEN).equals(x.hash);
      if (!same) selfCheckFailed(x, 'holds different bytes than the checkpoint');
    });
  }
}

function selfCheckFailed(x: Sample, what: string): never {
  throw new StasisError('INTERNAL', `Restore self-check: the page at 0x${x.va.toString(16)} (mapping ${x.label}) ${what} after all pages were written. The restore was abandoned rather than handing back wrong memory (a Stasis bug: please report it).`);
}
