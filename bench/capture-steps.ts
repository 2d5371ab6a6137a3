/**
 * Where a full checkpoint's time goes, and A/B of variants in one run: full checkpoints of one
 * MIB MiB target (bench/capture-target.c, as bench/capture.ts), each variant in its own child
 * process (an environment of its own), the variants alternating, RUNS rounds. A child warms up with
 * one checkpoint, then times CKPTS more: wall, the capture phases (live read, frozen, pages,
 * commit), CPU of the whole process (all threads) and of the main thread, and the floor (the
 * bytes written, written and fsynced by a plain loop right after). Medians, the load average at
 * the start and the end.
 * usage: node --import tsx bench/capture-steps.ts [NAME=ENV=VALUE,ENV=VALUE ...]
 *   (env: MIB=1024 RUNS=3 CKPTS=2; no argument: the code as it is, 'default'; a variant with
 *   STEPS_ROOT=DIR runs the checkout in DIR instead, e.g. `base=STEPS_ROOT=/tmp/main-copy`)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../electron/engine/store';
import { checkpoint, type CapturePhase } from '../electron/engine/capture';
import { durableWriteSecs } from './floors';
import { buildCaptureTarget, startCaptureTarget } from './capture-target';
import { formatTable, type Row } from './table';

const self = new URL(import.meta.url).pathname;

interface Sample { wall: number; live: number; frozenPart: number; pages: number; commit: number; frozen: number; cpu: number; mainCpu: number; floor: number; bytes: number }

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
}

/** Main-thread CPU (ms) from /proc/self/task/<tid = pid>/stat (utime + stime, clock ticks of 10 ms). */
function mainThreadCpuMs(): number {
  const f = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) * 10;
}

function child(pid: number, dir: string, ckpts: number, work: string): void {
  const out: Sample[] = [];
  for (let k = 0; k <= ckpts; k++) {
    const storeDir = join(dir, `s${k}`);
    const store = openStore(storeDir);
    try {
      const at: Partial<Record<CapturePhase, number>> = {};
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      const m0 = mainThreadCpuMs();
      const r = checkpoint(store, pid, { full: true, onPhase: (p) => { at[p] = performance.now(); } });
      const t1 = performance.now();
      const cpu = process.cpuUsage(c0);
      const m1 = mainThreadCpuMs();
      if (k === 0) continue; // warm-up
      const live = (at.live ?? t0) - t0;
      out.push({
        wall: r.durationMs, live, frozenPart: (at.pages ?? t0) - (at.live ?? t0), pages: (at.commit ?? t0) - (at.pages ?? t0), commit: t1 - (at.commit ?? t1),
        frozen: r.frozenMs, cpu: (cpu.user + cpu.system) / 1000, mainCpu: m1 - m0, floor: durableWriteSecs(work, r.bytesWritten) * 1000, bytes: r.bytesWritten,
      });
    } finally {
      store.close();
      rmSync(storeDir, { recursive: true, force: true });
    }
  }
  process.stdout.write(JSON.stringify(out));
}

async function main(): Promise<void> {
  const MIB = Number(process.env.MIB ?? 1024);
  const RUNS = Number(process.env.RUNS ?? 3);
  const CKPTS = Number(process.env.CKPTS ?? 2);
  const variants = (process.argv.slice(2).length ? process.argv.slice(2) : ['default']).map((a) => {
    const [name, ...kv] = a.split('=');
    const env: Record<string, string> = {};
    const spec = kv.join('=');
    if (spec) for (const p of spec.split(',')) { const [k, v] = p.split('='); env[k!] = v ?? ''; }
    return { name: name!, env };
  });
  const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'stasis-bench-steps-'));
  const load0 = loadavg()[0]!;
  const started = startCaptureTarget(buildCaptureTarget(work), join(work, 'target'), MIB);
  const target = started.target;
  const res = variants.map(() => [] as Sample[]);
  try {
    const pid = await started.ready();
    for (let run = 0; run < RUNS; run++) {
      for (const [i, v] of variants.entries()) {
        const dir = join(work, `v${i}-${run}`);
        // STEPS_ROOT: another checkout (its own copy of this file), e.g. the code before a change.
        const script = v.env.STEPS_ROOT ? join(v.env.STEPS_ROOT, 'bench', 'capture-steps.ts') : self;
        const r = spawnSync(process.execPath, ['--import', 'tsx', script, '--child', String(pid), dir, String(CKPTS), work], { cwd: v.env.STEPS_ROOT ?? process.cwd(), env: { ...process.env, STASIS_REHEARSAL: '0', ...v.env }, encoding: 'utf8', timeout: 600_000 });
        rmSync(dir, { recursive: true, force: true });
        if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
        const got = JSON.parse(r.stdout) as Sample[];
        res[i]!.push(...got);
        for (const s of got) process.stderr.write(`run ${run + 1} ${v.name}: wall ${s.wall.toFixed(0)} (live ${s.live.toFixed(0)}, frozen part ${s.frozenPart.toFixed(0)}, pages ${s.pages.toFixed(0)}, commit ${s.commit.toFixed(0)}) frozen ${s.frozen.toFixed(1)} cpu ${s.cpu.toFixed(0)} main ${s.mainCpu.toFixed(0)} floor ${s.floor.toFixed(0)}\n`);
      }
    }
  } finally {
    target.kill();
    await target.waitExit(10_000).catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  }
  const f = (xs: number[]): string => median(xs).toFixed(0);
  const rows: Row[] = variants.map((v, i) => {
    const s = res[i]!;
    return {
      variant: v.name, 'wall ms': `${f(s.map((x) => x.wall))} (${s.map((x) => x.wall.toFixed(0)).join(', ')})`, 'live read': f(s.map((x) => x.live)), 'freeze..pages': f(s.map((x) => x.frozenPart)),
      'pages': f(s.map((x) => x.pages)), commit: f(s.map((x) => x.commit)), 'frozen ms': median(s.map((x) => x.frozen)).toFixed(1), 'CPU ms': f(s.map((x) => x.cpu)), 'main-thread CPU ms': f(s.map((x) => x.mainCpu)),
      'floor ms': f(s.map((x) => x.floor)), 'wall/floor': median(s.map((x) => x.wall / x.floor)).toFixed(2), 'MiB written': (median(s.map((x) => x.bytes)) / 2 ** 20).toFixed(1),
    };
  });
  process.stdout.write(`capture steps: ${MIB} MiB target, ${RUNS} rounds x ${CKPTS} checkpoints per variant (after one warm-up each), load average ${load0.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end\n\n${formatTable(rows)}\n\n${formatTable(rows, true)}\n`);
}

if (process.argv[2] === '--child') child(Number(process.argv[3]), process.argv[4]!, Number(process.argv[5]), process.argv[6]!);
else {
  main().catch((e: unknown) => {
    process.stderr.write(`bench/capture-steps failed: ${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  });
}
