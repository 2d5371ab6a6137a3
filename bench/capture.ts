/**
 * Capture benchmark, Stasis and CRIU 4.1.1 side by side in the same run, on one target
 * (bench/capture-target.c: MIB MiB of private anonymous memory, 30% zero pages, the rest random):
 *   - full checkpoint: wall time, frozen time (CRIU: "Seized task" to "Unseizing" in its log), in
 *     Stasis's default live mode (pre-copy where the kernel allows) and with the fork snapshot
 *   - incremental after the target dirtied 1% of its pages: wall time and bytes written, with the
 *     userfaultfd kept from the full (uffd-wp tracking, as the app and `stasis daemon` run) and
 *     without (hash: every page compared, as a one-shot `stasis checkpoint`)
 * Also what durability costs, so the two are compared on equal terms: CRIU's dump followed by an
 * fsync of its images (Stasis commits only after its segment is fsynced), and the floor of this
 * machine's disk: Stasis's bytes written and fsynced by a plain loop (bench/floors).
 * Then a program that rewrites its memory without pause (heavyWriter), where pre-copy gives way,
 * and the one-shot CLI (a fresh process per checkpoint, CLI_MIB MiB target) as shipped, without
 * the rehearsal of the frozen path and without the store addon, alternating.
 * The floor column: the same bytes written and fsynced by a plain loop right after each
 * checkpoint; ratios are medians of the per-run ratios (both sides measured under the same load).
 * The load average is printed at the start and the end.
 * Medians over RUNS runs. usage: npm run bench -- capture   (env: MIB=1024 RUNS=3 CLI_MIB=256 CRIU=path)
 *
 * CRIU runs with CRIU_FAULT=130 (its own "no hardware breakpoints" path): in this VM the debug
 * registers its parasite cure relies on never fire and a plain `criu dump` hangs forever.
 * CRIU's incremental dumps (--track-mem / pre-dump) need soft-dirty, which this kernel lacks; the
 * attempt is made and its error reported.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnDetached } from '../test/helpers/spawn';
import { openStore } from '../electron/engine/store';
import { checkpoint, closeTrackers } from '../electron/engine/capture';
import { probeKernelFeatures } from '../electron/engine/native';
import { formatTable, type Row } from './table';
import { durableWriteSecs } from './floors';

const MIB = Number(process.env.MIB ?? 1024);
const RUNS = Number(process.env.RUNS ?? 3);
const here = new URL('.', import.meta.url).pathname;
const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'stasis-bench-capture-'));

function criuPath(): string | null {
  if (process.env.CRIU) return process.env.CRIU;
  const r = spawnSync('/work/shared/tools/install-criu', [], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim().split('\n').pop()! : null;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN;
}

async function waitFile(p: string, ms = 120_000): Promise<string> {
  const end = Date.now() + ms;
  while (!existsSync(p)) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${p}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return readFileSync(p, 'utf8');
}

/** Seconds between "Seized task" and "Unseizing" in a CRIU -v4 log. */
function criuFrozenMs(log: string): number {
  const t = (re: RegExp): number => Number(re.exec(log)?.[1] ?? NaN);
  return (t(/\((\d+\.\d+)\)\s+Unseizing/) - t(/\((\d+\.\d+)\)\s+Seized task/)) * 1000;
}

function criuDump(criu: string, pid: number, dir: string, extra: string[] = []): { ok: boolean; wallMs: number; frozenMs: number; bytes: number; error: string } {
  mkdirSync(dir, { recursive: true });
  const t0 = performance.now();
  const r = spawnSync(criu, ['dump', '-t', String(pid), '-D', dir, '-o', 'dump.log', '-v4', '--leave-running', ...extra], {
    env: { ...process.env, CRIU_FAULT: '130' },
    encoding: 'utf8',
    timeout: 300_000,
  });
  const wallMs = performance.now() - t0;
  const log = existsSync(join(dir, 'dump.log')) ? readFileSync(join(dir, 'dump.log'), 'utf8') : '';
  const ok = r.status === 0;
  const pagesImg = readdirSync(dir).filter((f) => f.startsWith('pages-')).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
  const error = ok ? '' : (log.split('\n').filter((l) => /Error|error/.test(l)).slice(-1)[0] ?? r.stderr.trim()).slice(0, 160);
  return { ok, wallMs, frozenMs: criuFrozenMs(log), bytes: pagesImg, error };
}

/** fsync of every file in dir, then of dir: what CRIU's images need to survive a crash of the machine. */
function fsyncTreeMs(dir: string): number {
  const t0 = performance.now();
  for (const name of [...readdirSync(dir), '.']) {
    const fd = openSync(join(dir, name), 'r');
    try { fsyncSync(fd); } finally { closeSync(fd); }
  }
  return performance.now() - t0;
}

/**
 * A program that writes faster than any live read (test/fixtures/capture-twins.c: two arrays of
 * WRITER_MIB/2 MiB each, scattered single-byte writes without pause): frozen time and pages
 * stored per full checkpoint, in the default mode (which gives up pre-copy for the fork snapshot
 * here), pre-copy forced, the fork snapshot, and CRIU.
 */
async function heavyWriter(criu: string | null): Promise<Row[]> {
  const mib = Number(process.env.WRITER_MIB ?? 300);
  const pages = Math.round((mib / 2) * 256);
  const bin = join(work, 'capture-twins');
  const fixtures = join(here, '..', 'test', 'fixtures');
  const cc = spawnSync('cc', ['-O2', '-I', fixtures, '-o', bin, join(fixtures, 'capture-twins.c')], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(cc.stderr);
  const side = join(work, 'twins');
  mkdirSync(side);
  const target = spawnDetached(['setsid', bin, side, String(pages), '0']);
  const rows: Row[] = [];
  try {
    await waitFile(join(side, 'info.txt'));
    const modes: { name: string; snapshot?: 'precopy' | 'fork' }[] = [{ name: 'default' }, { name: 'pre-copy (forced)', snapshot: 'precopy' }, { name: 'fork snapshot', snapshot: 'fork' }];
    const res = new Map<string, { frozen: number[]; pages: number[]; wall: number[]; how: string }>();
    const c = { frozen: [] as number[], wall: [] as number[] };
    for (let run = 0; run < RUNS; run++) {
      for (const m of modes) {
        const storeDir = join(work, `twins-store-${run}`);
        const store = openStore(storeDir);
        try {
          closeTrackers();
          const r = checkpoint(store, target.pid, { full: true, ...(m.snapshot ? { snapshot: m.snapshot } : {}) });
          const e = res.get(m.name) ?? { frozen: [], pages: [], wall: [], how: r.freeze };
          e.frozen.push(r.frozenMs);
          e.pages.push(r.pagesWritten);
          e.wall.push(r.durationMs);
          res.set(m.name, e);
        } finally {
          store.close();
          rmSync(storeDir, { recursive: true, force: true });
        }
      }
      if (criu) {
        const d = join(work, `twins-criu-${run}`);
        const fr = criuDump(criu, target.pid, d);
        if (fr.ok) { c.frozen.push(fr.frozenMs); c.wall.push(fr.wallMs); }
        rmSync(d, { recursive: true, force: true });
      }
    }
    for (const [name, e] of res) {
      rows.push({ mode: `stasis, ${name} -> ${e.how}`, 'frozen ms': `${median(e.frozen).toFixed(1)} (${e.frozen.map((x) => x.toFixed(0)).join(', ')})`, 'wall ms': median(e.wall).toFixed(0), 'pages stored / resident': (median(e.pages) / (pages * 2)).toFixed(2) });
    }
    if (c.frozen.length) rows.push({ mode: 'criu dump', 'frozen ms': `${median(c.frozen).toFixed(1)} (${c.frozen.map((x) => x.toFixed(0)).join(', ')})`, 'wall ms': median(c.wall).toFixed(0), 'pages stored / resident': '' });
  } finally {
    closeTrackers();
    target.kill();
    await target.waitExit(10_000).catch(() => undefined);
  }
  return rows;
}

const CLI_MIB = Number(process.env.CLI_MIB ?? 256);

/**
 * The one-shot CLI (a fresh engine each time, so its code is cold) on a CLI_MIB MiB target, full
 * checkpoints: as shipped (the frozen path rehearsed first, the store addon), without the
 * rehearsal (STASIS_REHEARSAL=0), and without the store addon (STASIS_STORE_NATIVE=0), alternating
 * so that the three see the same load. Runs bin/stasis.js (the dist/ bundle when it is up to date).
 */
async function oneShotCli(): Promise<Row[]> {
  const bin = join(work, 'capture-target');
  const side = join(work, 'cli-target');
  mkdirSync(side);
  const target = spawnDetached(['setsid', bin, side, String(CLI_MIB)]);
  const variants = [
    { name: 'as shipped (rehearsed, store addon)', env: {} },
    { name: 'no rehearsal (STASIS_REHEARSAL=0)', env: { STASIS_REHEARSAL: '0' } },
    { name: 'no store addon (STASIS_STORE_NATIVE=0)', env: { STASIS_STORE_NATIVE: '0' } },
  ];
  const res = variants.map(() => ({ frozen: [] as number[], wall: [] as number[], floor: [] as number[] }));
  try {
    const pid = Number((await waitFile(join(side, 'ready'))).trim());
    for (let run = 0; run < RUNS * 2; run++) {
      for (const [i, v] of variants.entries()) {
        const storeDir = join(work, `cli-store-${run}-${i}`);
        const r = spawnSync(process.execPath, [join(here, '..', 'bin', 'stasis.js'), '--store', storeDir, 'checkpoint', String(pid), '--full', '--json'], { env: { ...process.env, ...v.env }, encoding: 'utf8', timeout: 300_000 });
        rmSync(storeDir, { recursive: true, force: true });
        if (r.status !== 0) throw new Error(`stasis checkpoint failed: ${r.stderr || r.stdout}`);
        const out = JSON.parse(r.stdout) as { frozenMs: number; durationMs: number; bytesWritten: number };
        res[i]!.frozen.push(out.frozenMs);
        res[i]!.wall.push(out.durationMs);
        res[i]!.floor.push(durableWriteSecs(work, out.bytesWritten) * 1000);
        process.stderr.write(`cli run ${run + 1}, ${v.name}: frozen ${out.frozenMs.toFixed(1)} ms, wall ${out.durationMs.toFixed(0)} ms\n`);
      }
    }
  } finally {
    target.kill();
    await target.waitExit(10_000).catch(() => undefined);
  }
  return variants.map((v, i) => {
    const e = res[i]!;
    return { variant: v.name, 'frozen ms': `${median(e.frozen).toFixed(1)} (${e.frozen.map((x) => x.toFixed(1)).join(', ')})`, 'wall ms': median(e.wall).toFixed(0), 'floor ms': median(e.floor).toFixed(0), 'wall/floor': median(e.wall.map((w, k) => w / e.floor[k]!)).toFixed(2) };
  });
}

async function main(): Promise<void> {

  const bin = join(work, 'capture-target');
  const cc = spawnSync('cc', ['-O2', '-o', bin, join(here, 'capture-target.c')], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(cc.stderr);
  const criu = criuPath();
  const features = probeKernelFeatures();
  const side = join(work, 'target');
  mkdirSync(side);
  // setsid: its own session, so CRIU can dump it without --shell-job.
  const target = spawnDetached(['setsid', bin, side, String(MIB)]);
  const pid = Number((await waitFile(join(side, 'ready'))).trim());
  let dirty = 0;
  const dirtyOnce = async (): Promise<number> => {
    dirty++;
    process.kill(pid, 'SIGUSR1');
    return Number((await waitFile(join(side, `dirty-${dirty}`))).trim());
  };
  const fork = { wall: [] as number[], frozen: [] as number[] };
  const hashInc = { wall: [] as number[], frozen: [] as number[], bytes: [] as number[], dirtyBytes: [] as number[], tracking: '' };
  let incTracking = '';
  let how = '';
  const floor: number[] = [];
  const incFloor: number[] = [];
  const load0 = loadavg()[0]!;
  const s = { fullWall: [] as number[], fullCommit: [] as number[], fullFrozen: [] as number[], fullBytes: [] as number[], incWall: [] as number[], incFrozen: [] as number[], incBytes: [] as number[], dirtyBytes: [] as number[] };
  const c = { fullWall: [] as number[], fullDurable: [] as number[], fullFrozen: [] as number[], fullBytes: [] as number[], incWall: [] as number[], incBytes: [] as number[], incError: '' };
  try {
    for (let run = 0; run < RUNS; run++) {
      const storeDir = join(work, `store-${run}`);
      const store = openStore(storeDir);
      try {
        let commitAt = NaN;
        const full = checkpoint(store, pid, { full: true, onPhase: (p) => { if (p === 'commit') commitAt = performance.now(); } });
        s.fullCommit.push(performance.now() - commitAt);
        how = full.freeze;
        s.fullWall.push(full.durationMs);
        floor.push(durableWriteSecs(work, full.bytesWritten) * 1000);
        s.fullFrozen.push(full.frozenMs);
        s.fullBytes.push(full.bytesWritten);
        const pages = await dirtyOnce();
        const inc = checkpoint(store, pid);
        incTracking = inc.dirtyTracking;
        s.incWall.push(inc.durationMs);
        s.incFrozen.push(inc.frozenMs);
        s.incBytes.push(inc.bytesWritten);
        s.dirtyBytes.push(pages * 4096);
        incFloor.push(durableWriteSecs(work, inc.bytesWritten) * 1000);
        process.stderr.write(`run ${run + 1}: stasis full ${full.durationMs.toFixed(0)} ms (frozen ${full.frozenMs.toFixed(1)}), incremental (${inc.dirtyTracking}) ${inc.durationMs.toFixed(0)} ms, ${inc.bytesWritten} B for ${pages * 4096} B dirty\n`);
        if (inc.dirtyTracking !== 'hash') {
          // What a one-shot `stasis checkpoint` gets: no userfaultfd kept from the last checkpoint.
          closeTrackers();
          const pages2 = await dirtyOnce();
          const h = checkpoint(store, pid);
          hashInc.tracking = h.dirtyTracking;
          hashInc.wall.push(h.durationMs);
          hashInc.frozen.push(h.frozenMs);
          hashInc.bytes.push(h.bytesWritten);
          hashInc.dirtyBytes.push(pages2 * 4096);
          process.stderr.write(`run ${run + 1}: stasis incremental (${h.dirtyTracking}) ${h.durationMs.toFixed(0)} ms, ${h.bytesWritten} B for ${pages2 * 4096} B dirty\n`);
        }
      } finally {
        store.close();
        rmSync(storeDir, { recursive: true, force: true });
      }
      // The fork snapshot (the default where pre-copy is not possible), for comparison.
      if (how !== 'snapshot') {
        const forkStore = openStore(join(work, `store-fork-${run}`));
        try {
          const f = checkpoint(forkStore, pid, { full: true, snapshot: 'fork' });
          fork.wall.push(f.durationMs);
          fork.frozen.push(f.frozenMs);
          process.stderr.write(`run ${run + 1}: stasis full, fork snapshot ${f.durationMs.toFixed(0)} ms (frozen ${f.frozenMs.toFixed(1)})\n`);
        } finally {
          forkStore.close();
          rmSync(join(work, `store-fork-${run}`), { recursive: true, force: true });
        }
      }
      if (criu) {
        const d1 = join(work, `criu-${run}-full`);
        const fr = criuDump(criu, pid, d1);
        if (fr.ok) {
          c.fullWall.push(fr.wallMs);
          c.fullDurable.push(fr.wallMs + fsyncTreeMs(d1));
          c.fullFrozen.push(fr.frozenMs);
          c.fullBytes.push(fr.bytes);
        }
        await dirtyOnce();
        const d2 = join(work, `criu-${run}-inc`);
        const inc = criuDump(criu, pid, d2, ['--track-mem', '--prev-images-dir', d1]);
        if (inc.ok) {
          c.incWall.push(inc.wallMs);
          c.incBytes.push(inc.bytes);
        } else c.incError = inc.error || 'failed';
        if (!fr.ok && !c.incError) c.incError = fr.error;
        process.stderr.write(`run ${run + 1}: criu full ${fr.ok ? fr.wallMs.toFixed(0) : 'failed'} ms (frozen ${fr.frozenMs.toFixed(1)}), incremental ${inc.ok ? `${inc.wallMs.toFixed(0)} ms` : `failed: ${inc.error}`}\n`);
        rmSync(d1, { recursive: true, force: true });
        rmSync(d2, { recursive: true, force: true });
      }
    }
  } finally {
    target.kill();
    await target.waitExit(10_000).catch(() => undefined);
  }
  const mib = (b: number): string => (b / 2 ** 20).toFixed(1);
  const ratio = (a: number, b: number): string => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? (a / b).toFixed(2) : 'n/a');
  /** Median of the per-run ratios a[i] / b[i] (the two measured in the same run, so under the same load). */
  const pairRatio = (a: number[], b: number[]): string => {
    const r = a.slice(0, b.length).map((x, i) => x / b[i]!).filter(Number.isFinite);
    return r.length ? median(r).toFixed(2) : 'n/a';
  };
  const none = { floor: '', 'stasis/floor': '' };
  const rows: Row[] = [
    { metric: 'full checkpoint wall (ms)', stasis: median(s.fullWall).toFixed(0), criu: c.fullWall.length ? median(c.fullWall).toFixed(0) : 'n/a', 'stasis/criu': pairRatio(s.fullWall, c.fullWall), floor: median(floor).toFixed(0), 'stasis/floor': pairRatio(s.fullWall, floor) },
    { metric: 'full: of which commit, fsync + index (ms)', stasis: median(s.fullCommit).toFixed(0), criu: '', 'stasis/criu': '', ...none },
    { metric: 'full wall vs criu dump + fsync of its images (ms)', stasis: median(s.fullWall).toFixed(0), criu: c.fullDurable.length ? median(c.fullDurable).toFixed(0) : 'n/a', 'stasis/criu': pairRatio(s.fullWall, c.fullDurable), floor: median(floor).toFixed(0), 'stasis/floor': pairRatio(s.fullWall, floor) },
    { metric: 'floor: write + fsync of the bytes Stasis wrote (ms)', stasis: median(floor).toFixed(0), criu: '', 'stasis/criu': pairRatio(floor, c.fullDurable), ...none },
    { metric: 'full: frozen (ms)', stasis: median(s.fullFrozen).toFixed(1), criu: c.fullFrozen.length ? median(c.fullFrozen).toFixed(1) : 'n/a', 'stasis/criu': ratio(median(s.fullFrozen), median(c.fullFrozen)), ...none },
    ...(fork.wall.length
      ? [
          { metric: 'full wall, fork snapshot (ms)', stasis: median(fork.wall).toFixed(0), criu: '', 'stasis/criu': pairRatio(fork.wall, c.fullDurable), floor: median(floor).toFixed(0), 'stasis/floor': pairRatio(fork.wall, floor) },
          { metric: 'full frozen, fork snapshot (ms)', stasis: median(fork.frozen).toFixed(1), criu: '', 'stasis/criu': ratio(median(fork.frozen), median(c.fullFrozen)), ...none },
        ]
      : []),
    { metric: 'full: bytes written (MiB)', stasis: mib(median(s.fullBytes)), criu: c.fullBytes.length ? mib(median(c.fullBytes)) : 'n/a', 'stasis/criu': ratio(median(s.fullBytes), median(c.fullBytes)), ...none },
    { metric: `incremental 1% dirty wall (ms), ${incTracking}`, stasis: median(s.incWall).toFixed(0), criu: c.incWall.length ? median(c.incWall).toFixed(0) : `n/a: ${c.incError.replace(/^\(\d+\.\d+\)\s*/, '').replace(/\|/g, '/')}`, 'stasis/criu': ratio(median(s.incWall), median(c.incWall)), floor: median(incFloor).toFixed(0), 'stasis/floor': pairRatio(s.incWall, incFloor) },
    { metric: 'incremental: frozen (ms)', stasis: median(s.incFrozen).toFixed(1), criu: 'n/a', 'stasis/criu': 'n/a', ...none },
    ...(hashInc.wall.length
      ? [
          { metric: `incremental 1% dirty wall (ms), ${hashInc.tracking} (one-shot CLI)`, stasis: median(hashInc.wall).toFixed(0), criu: '', 'stasis/criu': '', ...none },
          { metric: `incremental frozen (ms), ${hashInc.tracking}`, stasis: median(hashInc.frozen).toFixed(1), criu: '', 'stasis/criu': '', ...none },
          { metric: `incremental written / dirty bytes, ${hashInc.tracking}`, stasis: ratio(median(hashInc.bytes), median(hashInc.dirtyBytes)), criu: '', 'stasis/criu': '', ...none },
        ]
      : []),
    { metric: 'incremental: bytes written (MiB)', stasis: mib(median(s.incBytes)), criu: c.incBytes.length ? mib(median(c.incBytes)) : 'n/a', 'stasis/criu': ratio(median(s.incBytes), median(c.incBytes)), ...none },
    { metric: 'incremental: written / dirty bytes', stasis: ratio(median(s.incBytes), median(s.dirtyBytes)), criu: c.incBytes.length ? ratio(median(c.incBytes), median(s.dirtyBytes)) : 'n/a', 'stasis/criu': '', ...none },
  ];
  const writer = await heavyWriter(criu);
  const cli = await oneShotCli();
  const header = `Capture: load average ${load0.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end; ${MIB} MiB target (30% zero pages, rest random), median of ${RUNS} runs; Stasis default live mode: ${how}; kernel ${features.kernel}, soft-dirty ${features.softDirty ? 'yes' : 'no'}, PAGEMAP_SCAN ${features.pagemapScan ? 'yes' : 'no'}; CRIU ${criu ? 'with CRIU_FAULT=130' : 'not available'}`;
  process.stdout.write(`${header}\n\n${formatTable(rows)}\n\n${formatTable(rows, true)}\n`);
  process.stdout.write(`\nOne-shot CLI (\`stasis checkpoint PID --full\`, a fresh process each, ${CLI_MIB} MiB target, the variants alternating), median of ${RUNS * 2}:\n\n${formatTable(cli)}\n\n${formatTable(cli, true)}\n`);
  process.stdout.write(`\nA program rewriting its memory without pause (${process.env.WRITER_MIB ?? 300} MiB, capture-twins), full checkpoints, median of ${RUNS}:\n\n${formatTable(writer)}\n\n${formatTable(writer, true)}\n`);
  mkdirSync(join(here, 'results'), { recursive: true });
  writeFileSync(join(here, 'results', `capture-${new Date().toISOString().replace(/[:.]/g, '-')}.json`), JSON.stringify({ header, stasis: s, floor, incFloor, writer, cli, fork, hashInc, criu: c }, null, 2));
}

main()
  .catch((e: unknown) => {
    process.stderr.write(`bench/capture failed: ${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  })
  .finally(() => rmSync(work, { recursive: true, force: true }));
