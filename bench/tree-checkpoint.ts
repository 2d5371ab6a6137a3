/**
 * Frozen time of a tree checkpoint that leaves the tree running (the app's and the daemon's
 * checkpoints of a process with children, and every round of a tree migration): with pre-copy per
 * member (capture/tree-live.ts: memory read while the tree runs, the common freeze copies only what
 * was written since; later checkpoints tracked by the kept userfaultfds) against every member read
 * while frozen (`snapshot: 'never'`, what a tree checkpoint did before), alternated run by run in
 * one process, CRIU's `dump -t --leave-running` beside (it keeps the tree frozen for its whole dump;
 * its pre-dump needs soft-dirty, which this kernel lacks).
 * The tree: test/fixtures/tree-counter.c, a parent and two children, SIZE MiB split between the
 * three, about PCT% of the pages written per second. Each run: a full checkpoint, then INCR
 * incrementals one second apart, into a fresh store.
 *
 *   node --import tsx bench/tree-checkpoint.ts [--size-mb 1024] [--pct 1] [--runs 3] [--incr 2] [--criu PATH]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkpointTree, closeTrackers, type TreeCheckpointResult } from '../electron/engine/capture';
import { openStore } from '../electron/engine/store';
import { formatTable, type Row } from './table';
import { killTree, startTreeCounter } from './tree-target';
import { sleepMs } from '../electron/engine/sleep-sync';
import { arg } from './args';

const sizeMb = Number(arg('size-mb', '1024'));
const pct = Number(arg('pct', '1'));
const runs = Number(arg('runs', '3'));
const incr = Number(arg('incr', '2'));
const criu = arg('criu', join(homedir(), '.cache/criu4/criu'));
const root = new URL('../', import.meta.url).pathname;
const criuEnv = { ...process.env, CRIU_FAULT: process.env.CRIU_FAULT ?? '130' };
const log = (m: string): void => { process.stderr.write(`[bench] ${m}\n`); };
const perProcess = Math.max(1, Math.floor(sizeMb / 3));
// Pages written per second: each child RATE, the parent 2 x RATE (one per record).
const rate = Math.max(1, Math.round((sizeMb * 256 * pct) / 100 / 4));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
}

const work = mkdtempSync(join(tmpdir(), 'stasis-bench-tree-ckpt-'));
const bin = join(work, 'tree-counter');
const cc = spawnSync('cc', ['-O2', '-o', bin, join(root, 'test/fixtures/tree-counter.c')], { encoding: 'utf8' });
if (cc.status !== 0) throw new Error(cc.stderr);

const startTree = (tag: string): ReturnType<typeof startTreeCounter> => startTreeCounter(bin, work, tag, perProcess, rate);

/** pagesMs: of frozenMs, the part from the state read to the pages read (the rest is freezing and reading state and mappings). */
interface Take { frozenMs: number; pagesMs: number; durationMs: number; cpuMs: number; frozenPages: number; pagesWritten: number; preCopied: number }
interface StasisRun { mode: string; full: Take; incrementals: Take[] }

function take(store: ReturnType<typeof openStore>, pid: number, snapshot: 'auto' | 'never'): Take {
  const c0 = process.cpuUsage();
  const at: Record<string, number> = {};
  const r: TreeCheckpointResult = checkpointTree(store, pid, { snapshot, onPhase: (p) => { at[p] = performance.now(); } });
  const c = process.cpuUsage(c0);
  return {
    frozenMs: r.frozenMs, pagesMs: (at.commit ?? NaN) - (at.frozen ?? NaN), durationMs: r.durationMs, cpuMs: (c.user + c.system) / 1000,
    frozenPages: r.members.reduce((n, m) => n + m.frozenPages, 0), pagesWritten: r.pagesWritten,
    preCopied: r.members.filter((m) => m.freeze === 'pre-copy').length,
  };
}

function stasisRun(i: number, snapshot: 'auto' | 'never'): StasisRun {
  const mode = snapshot === 'auto' ? 'pre-copy' : 'frozen read';
  const { t, pids } = startTree(`stasis-${i}-${snapshot}`);
  const dir = join(work, `store-${i}-${snapshot}`);
  const store = openStore(dir);
  try {
    const full = take(store, t.pid, snapshot);
    const incrementals: Take[] = [];
    for (let k = 0; k < incr; k++) {
      sleepMs(1000);
      incrementals.push(take(store, t.pid, snapshot));
    }
    log(`${mode} run ${i}: full frozen ${full.frozenMs.toFixed(1)} ms (pages ${full.pagesMs.toFixed(1)} ms, ${full.frozenPages} pages frozen), incrementals frozen ${incrementals.map((x) => `${x.frozenMs.toFixed(1)} ms (pages ${x.pagesMs.toFixed(1)} ms)/${x.frozenPages} pages`).join(', ')}`);
    return { mode, full, incrementals };
  } finally {
    closeTrackers();
    store.close();
    killTree(pids);
    t.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

interface CriuRun { dumpMs: number; imageBytes: number }
function criuRun(i: number): CriuRun {
  const { t, pids } = startTree(`criu-${i}`);
  const dir = join(work, `criu-${i}`);
  mkdirSync(dir);
  try {
    const t0 = performance.now();
    const r = spawnSync(criu, ['dump', '-t', String(t.pid), '-D', dir, '--shell-job', '--leave-running', '-v1', '-o', 'dump.log'], { encoding: 'utf8', timeout: 600_000, killSignal: 'SIGKILL', env: criuEnv });
    const dumpMs = performance.now() - t0;
    if (r.status !== 0) throw new Error(`criu dump failed (exit ${r.status}): ${(() => { try { return readFileSync(join(dir, 'dump.log'), 'utf8').trim().split('\n').slice(-3).join(' | '); } catch { return r.stderr.slice(-800); } })()}`);
    const imageBytes = Number(spawnSync('du', ['-sb', dir], { encoding: 'utf8' }).stdout.split(/\s/)[0]);
    log(`criu run ${i}: dump --leave-running ${dumpMs.toFixed(0)} ms, images ${(imageBytes / 2 ** 20).toFixed(1)} MiB`);
    return { dumpMs, imageBytes };
  } finally {
    killTree(pids);
    t.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

try {
  log(`tree: 3 processes x ${perProcess} MiB, ${rate * 4} pages written per second (${pct}% of ${sizeMb} MiB); load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  let criuProblem: string | null = existsSync(criu) ? null : `no CRIU at ${criu}`;
  const pre: StasisRun[] = [];
  const old: StasisRun[] = [];
  const c: CriuRun[] = [];
  for (let i = 0; i < runs; i++) {
    // Alternated, so each sees the same load.
    if (i % 2 === 0) { pre.push(stasisRun(i, 'auto')); old.push(stasisRun(i, 'never')); } else { old.push(stasisRun(i, 'never')); pre.push(stasisRun(i, 'auto')); }
    if (!criuProblem) { try { c.push(criuRun(i)); } catch (e) { criuProblem = (e as Error).message; log(criuProblem); } }
  }
  const f = (xs: number[]): number => +median(xs).toFixed(1);
  const row = (tool: string, s: StasisRun[]): Row => {
    const inc = s.flatMap((x) => x.incrementals);
    return {
      tool,
      'full: frozen ms': f(s.map((x) => x.full.frozenMs)), 'full: of which pages ms': f(s.map((x) => x.full.pagesMs)), 'full: pages read frozen': median(s.map((x) => x.full.frozenPages)), 'full: wall ms': f(s.map((x) => x.full.durationMs)), 'full: cpu ms': f(s.map((x) => x.full.cpuMs)),
      'incr: frozen ms': f(inc.map((x) => x.frozenMs)), 'incr: of which pages ms': f(inc.map((x) => x.pagesMs)), 'incr: pages read frozen': median(inc.map((x) => x.frozenPages)), 'incr: wall ms': f(inc.map((x) => x.durationMs)), 'incr: cpu ms': f(inc.map((x) => x.cpuMs)),
    };
  };
  const rows: Row[] = [
    row('stasis tree checkpoint, pre-copy per member', pre),
    row('stasis tree checkpoint, every member read frozen', old),
    ...(c.length ? [{ tool: 'criu dump -t --leave-running (frozen throughout)', 'full: frozen ms': f(c.map((x) => x.dumpMs)), 'full: of which pages ms': '-', 'full: pages read frozen': Math.round(median(c.map((x) => x.imageBytes)) / 4096), 'full: wall ms': f(c.map((x) => x.dumpMs)), 'full: cpu ms': '-', 'incr: frozen ms': '-', 'incr: of which pages ms': '-', 'incr: pages read frozen': '-', 'incr: wall ms': '-', 'incr: cpu ms': '-' }] : []),
  ];
  process.stderr.write(`\n${formatTable(rows)}\n${criuProblem ? `(CRIU: ${criuProblem})\n` : ''}\n`);
  console.log(JSON.stringify({ sizeMb, pct, rate, runs, incr, criuProblem, preCopy: pre, frozenRead: old, criu: c, markdown: formatTable(rows, true) }, null, 2));
} finally {
  try { rmSync(work, { recursive: true, force: true, maxRetries: 5 }); } catch (e) { log(`could not remove ${work}: ${(e as Error).message}`); }
}
