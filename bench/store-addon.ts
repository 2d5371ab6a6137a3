/**
 * The store addon's effect on a full checkpoint (native/store-native: page hashes per chunk and
 * write-behind of segment blocks), A/B in one run: one fresh process per checkpoint of the same
 * MIB MiB target (bench/capture-target.c), STASIS_STORE_NATIVE=1 and =0 alternating, RUNS pairs,
 * the rehearsal off in both (STASIS_REHEARSAL=0, so only the store differs), each followed by the
 * floor (the same bytes written + fsynced by a plain loop). Medians, per-run ratios to the floor,
 * load average at the start and the end. usage: npm run bench -- store-addon   (env: MIB=1024 RUNS=5)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../electron/engine/store';
import { checkpoint } from '../electron/engine/capture';
import { durableWriteSecs } from './floors';
import { buildCaptureTarget, startCaptureTarget } from './capture-target';
import { formatTable, type Row } from './table';

const self = new URL(import.meta.url).pathname;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
}

/** Child: one full checkpoint of pid into a new store under dir; prints its numbers as JSON. */
function child(pid: number, dir: string): void {
  const store = openStore(dir);
  try {
    const t0 = process.cpuUsage();
    const r = checkpoint(store, pid, { full: true });
    const cpu = process.cpuUsage(t0);
    process.stdout.write(JSON.stringify({ wall: r.durationMs, bytes: r.bytesWritten, cpuMs: (cpu.user + cpu.system) / 1000 }));
  } finally {
    store.close();
  }
}

async function main(): Promise<void> {
  const MIB = Number(process.env.MIB ?? 1024);
  const RUNS = Number(process.env.RUNS ?? 5);
  const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'stasis-bench-addon-'));
  const load0 = loadavg()[0]!;
  const started = startCaptureTarget(buildCaptureTarget(work), join(work, 'target'), MIB);
  const target = started.target;
  const arms = [{ name: 'store addon (default)', env: '1' }, { name: 'without it (STASIS_STORE_NATIVE=0)', env: '0' }];
  const res = arms.map(() => ({ wall: [] as number[], cpu: [] as number[], ratio: [] as number[], floor: [] as number[] }));
  try {
    const pid = await started.ready();
    for (let run = 0; run < RUNS; run++) {
      for (const [i, arm] of arms.entries()) {
        const dir = join(work, `store-${run}-${i}`);
        const r = spawnSync(process.execPath, ['--import', 'tsx', self, '--child', String(pid), dir], { env: { ...process.env, STASIS_STORE_NATIVE: arm.env, STASIS_REHEARSAL: '0' }, encoding: 'utf8', timeout: 300_000 });
        rmSync(dir, { recursive: true, force: true });
        if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
        const out = JSON.parse(r.stdout) as { wall: number; bytes: number; cpuMs: number };
        const floor = durableWriteSecs(work, out.bytes) * 1000;
        res[i]!.wall.push(out.wall);
        res[i]!.cpu.push(out.cpuMs);
        res[i]!.floor.push(floor);
        res[i]!.ratio.push(out.wall / floor);
        process.stderr.write(`run ${run + 1}, ${arm.name}: wall ${out.wall.toFixed(0)} ms, CPU ${out.cpuMs.toFixed(0)} ms, floor ${floor.toFixed(0)} ms\n`);
      }
    }
  } finally {
    target.kill();
    await target.waitExit(10_000).catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  }
  const rows: Row[] = arms.map((a, i) => ({
    variant: a.name,
    'full wall ms': `${median(res[i]!.wall).toFixed(0)} (${res[i]!.wall.map((x) => x.toFixed(0)).join(', ')})`,
    'CPU ms (all threads)': median(res[i]!.cpu).toFixed(0),
    'floor ms': median(res[i]!.floor).toFixed(0),
    'wall/floor': median(res[i]!.ratio).toFixed(2),
  }));
  process.stdout.write(`Full checkpoint of a ${MIB} MiB target (capture-target), one fresh process each, alternating, ${RUNS} runs each; load average ${load0.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end\n\n${formatTable(rows)}\n\n${formatTable(rows, true)}\n`);
}

if (process.argv[2] === '--child') child(Number(process.argv[3]), process.argv[4]!);
else {
  main().catch((e: unknown) => {
    process.stderr.write(`bench/store-addon failed: ${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  });
}
