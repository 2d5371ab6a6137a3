/**
 * The read stage of a full checkpoint alone, without the writer's bookkeeping, the disk or the
 * write-behind thread: how much main-thread CPU the fused read (store addon readPages: read
 * straight into a segment block and digest there) takes per GiB against the separate steps it
 * replaces (process_vm_readv into a 4 MiB buffer, digest, one copy per kept page into the block).
 * Target: bench/capture-target.c (30% zero pages, the rest random). Variants alternate, ROUNDS
 * rounds; CPU is process.cpuUsage (every thread of the process), main-thread CPU from
 * /proc/self/task/PID/schedstat, medians. BASE_ADDON=path/to/store_native.node adds the fused
 * read of another build of the addon to compare against.
 * usage: MIB=1024 ROUNDS=5 [BASE_ADDON=...] node --import tsx bench/capture-read.ts
 */
import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { storeNative, type StoreNative } from '../electron/engine/store/native-addon';
import { digestPages, type PageDigests } from '../electron/engine/store/hash';
import { vmRead } from '../electron/engine/native';
import { buildCaptureTarget, startCaptureTarget } from './capture-target';
import { formatTable, type Row } from './table';

const PAGE = 4096;
const BLOCK = 64;
/** Pages of a write-behind job's slot (segments.ts JOB_BLOCKS blocks): how far one fused read may reach. */
const SLOT = 4 * BLOCK;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
}

/** The biggest private anonymous mapping of pid: the target's memory. */
function bigMapping(pid: number): { start: bigint; pages: number } {
  let best = { start: 0n, pages: 0 };
  for (const line of readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) rw-p 00000000 00:00 0\s*$/.exec(line);
    if (!m) continue;
    const pages = Number((BigInt(`0x${m[2]}`) - BigInt(`0x${m[1]}`)) / 4096n);
    if (pages > best.pages) best = { start: BigInt(`0x${m[1]}`), pages };
  }
  return best;
}

type Variant = (pid: number, start: bigint, pages: number) => number;

const block = Buffer.allocUnsafeSlow(SLOT * PAGE);
const chunk = Buffer.allocUnsafeSlow(4 << 20);
const d: PageDigests = { zero: new Uint8Array(1024), hashes: Buffer.allocUnsafe(1024 * 32) }; // for up to 1024 pages per call

/** Before: read 4 MiB, digest it, copy each non-zero page into the block. Returns pages kept. */
const separate: Variant = (pid, start, pages) => {
  let kept = 0;
  let fill = 0;
  for (let p = 0; p < pages; p += 1024) {
    const n = Math.min(1024, pages - p);
    vmRead(pid, start + BigInt(p * PAGE), chunk.subarray(0, n * PAGE));
    digestPages(chunk, n, d);
    for (let i = 0; i < n; i++) {
      if (d.zero[i] === 1) continue;
      chunk.copy(block, fill * PAGE, i * PAGE, (i + 1) * PAGE);
      kept++;
      if (++fill === BLOCK) fill = 0;
    }
  }
  return kept;
};

/** The fused read into the free page slots of a job (which squeezes the zero pages out), as the writer does. */
const fused: Variant = (pid, start, pages) => fusedInto(pid, start, pages, SLOT);

/** The same with reads that stop at the end of each block (the first version: ~5 reads per block with 30% zero pages). */
const fusedPerBlock: Variant = (pid, start, pages) => fusedInto(pid, start, pages, BLOCK);

function fusedInto(pid: number, start: bigint, pages: number, window: number, native: StoreNative = storeNative!): number {
  let kept = 0;
  let fill = 0;
  for (let p = 0; p < pages; ) {
    const n = Math.min(window - fill, pages - p);
    native.readPages!(pid, -1, start + BigInt(p * PAGE), block, fill * PAGE, n, d.zero, d.hashes);
    for (let i = 0; i < n; i++) {
      if (d.zero[i] === 1) continue;
      kept++;
      if (++fill === window) fill = 0;
    }
    p += n;
  }
  return kept;
}

/** The fused read with the zero pages moved over in JS, one copyWithin per kept page after one (as keepReadPage does for pages not kept for other reasons): what compaction in C saves. */
const fusedMovesInJs: Variant = (pid, start, pages) => {
  const native = storeNative!;
  let kept = 0;
  let fill = 0;
  for (let p = 0; p < pages; ) {
    const n = Math.min(BLOCK - fill, pages - p);
    native.readPages!(pid, -1, start + BigInt(p * PAGE), block, fill * PAGE, n, d.zero, d.hashes);
    // Undo nothing: the pages are already compacted; this moves each kept page once more, in place.
    const first = fill;
    let j = 0;
    for (let i = 0; i < n; i++) {
      if (d.zero[i] === 1) continue;
      if (j !== i) block.copyWithin((first + j) * PAGE, (first + j) * PAGE, (first + j + 1) * PAGE);
      j++;
      kept++;
      if (++fill === BLOCK) fill = 0;
    }
    p += n;
  }
  return kept;
};

/** The fused read alone, 64 pages per call into the same place: its floor (no page kept is moved). */
const fusedOnly: Variant = (pid, start, pages) => {
  const native = storeNative!;
  for (let p = 0; p < pages; p += BLOCK) native.readPages!(pid, -1, start + BigInt(p * PAGE), block, 0, Math.min(BLOCK, pages - p), d.zero, d.hashes);
  return 0;
};

/** CPU time of this thread (the main thread), ms. */
function mainThreadMs(): number {
  return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
}

async function main(): Promise<void> {
  if (!storeNative?.readPages) throw new Error('the store addon here has no readPages: build native/store-native');
  const MIB = Number(process.env.MIB ?? 1024);
  const ROUNDS = Number(process.env.ROUNDS ?? 5);
  const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'stasis-bench-read-'));
  const load0 = loadavg()[0]!;
  const started = startCaptureTarget(buildCaptureTarget(work), join(work, 'target'), MIB);
  const target = started.target;
  const variants: [string, Variant][] = [['separate read, digest, copy', separate], ['fused read, up to a job (256 pages)', fused], ['fused read, up to a block (64 pages)', fusedPerBlock], ['fused read, moves in JS', fusedMovesInJs], ['fused read alone, 64 pages per call', fusedOnly]];
  if (process.env.BASE_ADDON) {
    const base = createRequire(import.meta.url)(process.env.BASE_ADDON) as StoreNative;
    variants.splice(2, 0, [`fused read, up to a job, addon ${process.env.BASE_ADDON}`, (pid, start, pages) => fusedInto(pid, start, pages, SLOT, base)]);
  }
  const res = variants.map(() => ({ cpu: [] as number[], main: [] as number[], wall: [] as number[] }));
  try {
    const pid = await started.ready();
    const { start, pages } = bigMapping(pid);
    for (const [, v] of variants) v(pid, start, Math.min(pages, 4096)); // warm-up
    for (let r = 0; r < ROUNDS; r++) {
      for (const [i, [, v]] of variants.entries()) {
        const c0 = process.cpuUsage();
        const m0 = mainThreadMs();
        const t0 = performance.now();
        v(pid, start, pages);
        const t1 = performance.now();
        const c = process.cpuUsage(c0);
        res[i]!.main.push((mainThreadMs() - m0) / (pages / 262144));
        res[i]!.cpu.push((c.user + c.system) / 1000 / (pages / 262144));
        res[i]!.wall.push((t1 - t0) / (pages / 262144));
      }
    }
  } finally {
    target.kill();
    await target.waitExit(10_000).catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  }
  const rows: Row[] = variants.map(([name], i) => ({
    variant: name, 'CPU ms/GiB': `${median(res[i]!.cpu).toFixed(0)} (${res[i]!.cpu.map((x) => x.toFixed(0)).join(', ')})`, 'main-thread CPU ms/GiB': median(res[i]!.main).toFixed(0), 'wall ms/GiB': median(res[i]!.wall).toFixed(0),
  }));
  process.stdout.write(`capture read stage: ${MIB} MiB target, ${ROUNDS} rounds, load average ${load0.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end\n\n${formatTable(rows)}\n\n${formatTable(rows, true)}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench/capture-read failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
