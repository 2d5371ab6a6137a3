/**
 * The writer's share of a full checkpoint alone: a 1 GiB root checkpoint given through
 * addPagesRead (the fused read's path) by a read that only hands over digests computed beforehand
 * (30% zero pages in the capture target's pattern, the rest distinct), so what is timed is the
 * per-page decisions, the segment's bookkeeping, the write-behind thread and the commit; no
 * process is read. Main-thread CPU (from /proc/self/task/PID/schedstat) apart for the pages and the
 * commit, process CPU for both. Each variant runs in its own child, the variants alternating;
 * medians and minimums (the minimum is the least disturbed by other load).
 * usage: node --import tsx bench/capture-writer.ts [NAME=DIR ...]   (env: MIB=1024 ROUNDS=5)
 *   NAME=DIR: the writer of the checkout in DIR (e.g. `base=/tmp/main-copy`); NAME=ENV=VALUE: this
 *   checkout's with that environment (e.g. `js=STASIS_PAGE_DECIDE=0`); none: this checkout.
 */
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type { Store } from '../electron/engine/store/api';
import type { MappingState } from '../electron/engine/state/process-state';
import { formatTable, type Row } from './table';

const PAGE = 4096;
const self = new URL(import.meta.url).pathname;
const here = new URL('..', import.meta.url).pathname;

interface Sample { pagesWall: number; pagesMain: number; commitWall: number; commitMain: number; cpu: number }

function mainThreadMs(): number {
  return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
}

function child(root: string, mib: number, dir: string): void {
  // Loaded as the benches and the engine's own imports load them (CommonJS through tsx), not as ES
  // modules: the module system decides how an imported constant is read.
  const load = createRequire(join(root, 'bench', 'x.ts'));
  const { openStore } = load(join(root, 'electron/engine/store/index.ts')) as { openStore(d: string): Store };
  const { makeState } = load(join(root, 'test/store/model.ts')) as { makeState(m: MappingState[]): never };
  const pages = mib * 256;
  const call = 256;
  const zeroAll = new Uint8Array(pages);
  for (let i = 0; i < pages; i++) zeroAll[i] = i % 10 < 3 ? 1 : 0; // bench/capture-target.c
  const hashAll = randomFillSync(Buffer.alloc(pages * 32));
  const base = 0x10000000n;
  const read = (vaddr: bigint, n: number, _dst: Buffer, _offset: number, zero: Uint8Array, hashes: Buffer): number => {
    const p0 = Number((vaddr - base) >> 12n);
    zero.set(zeroAll.subarray(p0, p0 + n));
    hashAll.copy(hashes, 0, p0 * 32, (p0 + n) * 32);
    return n * PAGE;
  };
  const out: Sample[] = [];
  for (let k = 0; k <= 2; k++) {
    const storeDir = join(dir, `s${k}`);
    const store = openStore(storeDir);
    try {
      const tg = store.upsertTarget({ pid: 4242, startTime: '1', exe: '/bench', cmdline: ['bench'], name: 'bench' } as never);
      const w = store.begin({ targetId: tg.id, parentId: null, mode: 'full', dirtyTracking: 'hash', coverage: 'complete' });
      w.setState(makeState([{ start: base, end: base + BigInt(pages * PAGE), perms: 'rw-p', offset: 0n, dev: '00:00', inode: 0, path: '' } as unknown as MappingState]));
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const m0 = mainThreadMs();
      for (let p = 0; p < pages; p += call) w.addPagesRead(base + BigInt(p * PAGE), Math.min(call, pages - p), read);
      const t1 = performance.now();
      const m1 = mainThreadMs();
      w.commit();
      const t2 = performance.now();
      const m2 = mainThreadMs();
      const c = process.cpuUsage(c0);
      if (k > 0) out.push({ pagesWall: t1 - t0, pagesMain: m1 - m0, commitWall: t2 - t1, commitMain: m2 - m1, cpu: (c.user + c.system) / 1000 }); // k = 0: warm-up
    } finally {
      store.close();
      rmSync(storeDir, { recursive: true, force: true });
    }
  }
  process.stdout.write(JSON.stringify(out));
}

async function main(): Promise<void> {
  const MIB = Number(process.env.MIB ?? 1024);
  const ROUNDS = Number(process.env.ROUNDS ?? 5);
  const variants = (process.argv.length > 2 ? process.argv.slice(2) : ['this']).map((a) => {
    const [name, spec, value] = a.split('=');
    if (value !== undefined) return { name: name!, root: here, env: { [spec!]: value } };
    return { name: name!, root: spec ?? here, env: {} };
  });
  const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'stasis-bench-writer-'));
  const load0 = loadavg()[0]!;
  const res = variants.map(() => [] as Sample[]);
  try {
    for (let r = 0; r < ROUNDS; r++) {
      for (const [i, v] of variants.entries()) {
        const dir = join(work, `v${i}-${r}`);
        const c = spawnSync(process.execPath, ['--import', 'tsx', self, '--child', v.root, String(MIB), dir], { cwd: v.root, env: { ...process.env, ...v.env }, encoding: 'utf8', timeout: 600_000 });
        rmSync(dir, { recursive: true, force: true });
        if (c.status !== 0) throw new Error(`child failed: ${c.stderr}`);
        res[i]!.push(...(JSON.parse(c.stdout) as Sample[]));
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const stat = (xs: number[]): string => {
    const s = [...xs].sort((a, b) => a - b);
    return `${s[Math.floor((s.length - 1) / 2)]!.toFixed(0)} (min ${s[0]!.toFixed(0)})`;
  };
  const rows: Row[] = variants.map((v, i) => {
    const s = res[i]!;
    return {
      variant: v.name, 'pages: wall ms': stat(s.map((x) => x.pagesWall)), 'pages: main-thread CPU ms': stat(s.map((x) => x.pagesMain)),
      'commit: wall ms': stat(s.map((x) => x.commitWall)), 'commit: main-thread CPU ms': stat(s.map((x) => x.commitMain)), 'process CPU ms': stat(s.map((x) => x.cpu)),
    };
  });
  process.stdout.write(`capture writer: ${MIB} MiB root checkpoint through addPagesRead (digests given), ${ROUNDS} rounds x 2 checkpoints per variant after a warm-up, load average ${load0.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end\n\n${formatTable(rows)}\n\n${formatTable(rows, true)}\n`);
}

if (process.argv[2] === '--child') {
  child(process.argv[3]!, Number(process.argv[4]), process.argv[5]!);
} else {
  main().catch((e: unknown) => {
    process.stderr.write(`bench/capture-writer failed: ${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  });
}
