/**
 * Live migration of a process TREE, Stasis beside CRIU 4.1.1 in one run (the tree row of
 * bench/migrate.ts, kept in its own script so the single-process bench stays as it is): a parent
 * and two children of test/fixtures/tree-counter.c, SIZE MiB of touched memory split between the
 * three (each its own pages), the children counting RATE steps per second each and the parent one
 * step per record they send it through a pipe, so about PCT% of the pages are written per second.
 *   Stasis: `stasis migrate PID --no-pid --pipe 'stasis --store DST receive'`. --no-pid: both stores
 *   are on this machine, where the source tree holds its PIDs until the destination runs it.
 *   Downtime as the source reports it: the freeze of the last tree checkpoint to the destination's
 *   restore of the whole tree returning (the tree built there from round 1 and each later round
 *   absorbed, so the restore is the last round's changes and the kernel state; "prepared" says
 *   whether each run used that, else it was restored from scratch).
 *   --baseline DIR: every run also done with the Stasis checkout in DIR (both ends), alternated
 *   with this one in the same run (A/B: e.g. a `git archive` of the commit before, `npm run build` in it).
 *   CRIU: `dump -t ROOT` of the tree (pre-dump needs soft-dirty, which this kernel lacks), images
 *   copied, `restore -d`. Downtime: dump start to restore returning.
 * Each run checks that the moved tree counts on. Prints a table, the downtime step by step and JSON.
 *
 *   node --import tsx bench/migrate-tree.ts [--size-mb 1024] [--pct 1] [--runs 3] [--criu PATH] [--baseline DIR]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { prctl, PR, waitTid } from '../electron/engine/native';
import { formatTable, type Row } from './table';
import { killTree, startTreeCounter } from './tree-target';
import { arg } from './args';

const sizeMb = Number(arg('size-mb', '1024'));
const pct = Number(arg('pct', '1'));
const runs = Number(arg('runs', '3'));
const criu = arg('criu', join(homedir(), '.cache/criu4/criu'));
const baseline = arg('baseline', '');
const root = new URL('../', import.meta.url).pathname;
const stasisBin = join(root, 'bin/stasis.js');
const criuEnv = { ...process.env, CRIU_FAULT: process.env.CRIU_FAULT ?? '130' };
const log = (m: string): void => { process.stderr.write(`[bench] ${m}\n`); };
const perProcess = Math.max(1, Math.floor(sizeMb / 3));
// Pages written per second: each child RATE, the parent 2 x RATE (one per record).
const rate = Math.max(1, Math.round((sizeMb * 256 * pct) / 100 / 4));

function sleepMs(ms: number): void { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms); }
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
}
function size(file: string): number { try { return statSync(file).size; } catch { return 0; } }
function waitCounting(out: string, timeoutMs = 20_000): void {
  const first = size(out);
  const end = Date.now() + timeoutMs;
  while (size(out) < first + 400) {
    if (Date.now() > end) throw new Error('the moved tree does not count');
    sleepMs(5);
  }
}
/** Reaps the processes of a tree that died (orphans come to this subreaper), so their PIDs are free again. */
function reap(pids: number[]): void {
  for (const p of pids) {
    try { waitTid(p); } catch {
      const end = Date.now() + 10_000;
      while (existsSync(`/proc/${p}`) && Date.now() < end) sleepMs(5);
    }
  }
}
function duBytes(dir: string): number { return Number(spawnSync('du', ['-sb', dir], { encoding: 'utf8' }).stdout.split(/\s/)[0]); }
/** The destination's tree restore steps ("memory contents (PID)" per member) summed per step over the members, largest first. */
function byStep(steps: { step: string; ms: number }[]): { step: string; ms: number }[] {
  const sum = new Map<string, number>();
  for (const x of steps) { const k = `${x.step.replace(/ \(\d+\)$/, '')} (all members)`; sum.set(k, (sum.get(k) ?? 0) + x.ms); }
  return [...sum].map(([step, ms]) => ({ step, ms: +ms.toFixed(2) })).sort((a, b) => b.ms - a.ms);
}
function cpuMs(file: string): number {
  const [u, sys] = readFileSync(file, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  return ((u ?? NaN) + (sys ?? NaN)) * 1000;
}

// Reparented orphans (a killed tree's children) come to us and are reaped by node.
prctl(PR.SET_CHILD_SUBREAPER, 1n);
const work = mkdtempSync(join(tmpdir(), 'stasis-bench-migrate-tree-'));
const bin = join(work, 'tree-counter');
const cc = spawnSync('cc', ['-O2', '-o', bin, join(root, 'test/fixtures/tree-counter.c')], { encoding: 'utf8' });
if (cc.status !== 0) throw new Error(cc.stderr);

const startTree = (tag: string): ReturnType<typeof startTreeCounter> => startTreeCounter(bin, work, tag, perProcess, rate);

interface StasisRun { prepared: boolean; downtimeMs: number; frozenMs: number; restoreMs: number; bytesSent: number; rounds: number; finalSent: number; srcCpuMs: number; dstCpuMs: number; wallMs: number; steps: { step: string; ms: number }[] }
function stasisRun(i: number, cli = stasisBin): StasisRun {
  const { t, out, pids } = startTree(`stasis-${i}`);
  const src = join(work, `src-${i}`);
  const dst = join(work, `dst-${i}`);
  const srcTime = join(work, `time-src-${i}`);
  const dstTime = join(work, `time-dst-${i}`);
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%U %S', '-o', srcTime, process.execPath, cli, '--store', src, '--json', 'migrate', String(t.pid), '--no-pid', '--pipe', `/usr/bin/time -f '%U %S' -o ${dstTime} ${process.execPath} ${cli} --store ${dst} receive`], { encoding: 'utf8', timeout: 900_000 });
  const wallMs = performance.now() - t0;
  try {
    if (r.status !== 0) throw new Error(`stasis migrate failed: ${r.stderr}`);
    const m = JSON.parse(r.stdout) as { downtimeMs: number; frozenMs: number; bytesSent: number; rounds: { pagesSent: number }[]; destination: { restoreMs: number; prepared: boolean; steps: { step: string; ms: number }[] }; cutover?: { step: string; ms: number }[]; tree: { members: { destinationPid: number }[] } };
    const moved = m.tree.members.map((x) => x.destinationPid);
    waitCounting(out);
    killTree(moved);
    const dstCpuMs = cpuMs(dstTime);
    log(`stasis run ${i}${cli === stasisBin ? '' : ` (${cli})`}: downtime ${m.downtimeMs} ms (frozen ${m.frozenMs}, restore ${m.destination.restoreMs}${m.destination.prepared ? ', prepared' : ', from scratch'}), rounds ${m.rounds.map((x) => x.pagesSent).join('/')} pages sent, ${(m.bytesSent / 2 ** 20).toFixed(1)} MiB, wall ${wallMs.toFixed(0)} ms`);
    return {
      prepared: m.destination.prepared === true, downtimeMs: m.downtimeMs, frozenMs: m.frozenMs, restoreMs: m.destination.restoreMs, bytesSent: m.bytesSent, rounds: m.rounds.length, finalSent: m.rounds.at(-1)!.pagesSent,
      srcCpuMs: cpuMs(srcTime) - dstCpuMs, dstCpuMs, wallMs,
      steps: [...(m.cutover ?? []).map((x) => ({ step: `source: ${x.step}`, ms: x.ms })), ...byStep(m.destination.steps).slice(0, 6).map((x) => ({ step: `  of which there: ${x.step}`, ms: x.ms }))],
    };
  } finally {
    killTree(pids);
    t.kill();
    rmSync(src, { recursive: true, force: true });
    rmSync(dst, { recursive: true, force: true });
  }
}

interface CriuRun { downtimeMs: number; dumpMs: number; copyMs: number; restoreMs: number; imageBytes: number }
function criuRun(i: number): CriuRun {
  const { t, out, pids } = startTree(`criu-${i}`);
  const srcDir = join(work, `criu-src-${i}`);
  const dstDir = join(work, `criu-dst-${i}`);
  mkdirSync(srcDir);
  const run = (args: string[], what: string, dir: string): void => {
    const r = spawnSync(criu, args, { encoding: 'utf8', timeout: 600_000, killSignal: 'SIGKILL', env: criuEnv });
    if (r.status !== 0) {
      const tail = (() => { try { return readFileSync(join(dir, `${what}.log`), 'utf8').trim().split('\n').slice(-3).join(' | '); } catch { return r.stderr.slice(-800); } })();
      throw new Error(`criu ${what} failed (exit ${r.status}): ${tail}`);
    }
  };
  try {
    const t0 = performance.now();
    run(['dump', '-t', String(t.pid), '-D', srcDir, '--shell-job', '-v1', '-o', 'dump.log'], 'dump', srcDir);
    const t1 = performance.now();
    // The dumped tree was killed; its PIDs must be free for the restore (as on another machine): not counted.
    reap(pids);
    const reapMs = performance.now() - t1;
    spawnSync('cp', ['-a', srcDir, dstDir]);
    const t2 = performance.now();
    run(['restore', '-D', dstDir, '-d', '--shell-job', '-v1', '-o', 'restore.log'], 'restore', dstDir);
    const t3 = performance.now();
    waitCounting(out);
    const r: CriuRun = { downtimeMs: t3 - t0 - reapMs, dumpMs: t1 - t0, copyMs: t2 - t1 - reapMs, restoreMs: t3 - t2, imageBytes: duBytes(srcDir) };
    log(`criu run ${i}: downtime ${r.downtimeMs.toFixed(0)} ms (dump ${r.dumpMs.toFixed(0)}, copy ${r.copyMs.toFixed(0)}, restore ${r.restoreMs.toFixed(0)}); images ${(r.imageBytes / 2 ** 20).toFixed(1)} MiB`);
    return r;
  } finally {
    // CRIU restores the same PIDs: the restored tree is killed by them.
    killTree(pids);
    t.kill();
    rmSync(srcDir, { recursive: true, force: true });
    rmSync(dstDir, { recursive: true, force: true });
  }
}

try {
  log(`tree: 3 processes x ${perProcess} MiB, ${rate * 4} pages written per second (${pct}% of ${sizeMb} MiB); load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  let criuProblem: string | null = existsSync(criu) ? null : `no CRIU at ${criu}`;
  const s: StasisRun[] = [];
  const b: StasisRun[] = [];
  const baseBin = baseline ? join(baseline, 'bin/stasis.js') : null;
  const c: CriuRun[] = [];
  for (let i = 0; i < runs; i++) {
    // Alternated, so all see the same load.
    if (i % 2 === 0) s.push(stasisRun(i));
    if (baseBin) b.push(stasisRun(i + 1000, baseBin));
    if (!criuProblem) { try { c.push(criuRun(i)); } catch (e) { criuProblem = (e as Error).message; log(criuProblem); } }
    if (i % 2 === 1) s.push(stasisRun(i));
  }
  const ms = (xs: number[]): number => +median(xs).toFixed(1);
  const row = (tool: string, s: StasisRun[]): Row => ({ tool: `${tool} (prepared ${s.filter((x) => x.prepared).length}/${s.length})`, 'downtime ms': ms(s.map((x) => x.downtimeMs)), 'frozen/dump ms': ms(s.map((x) => x.frozenMs)), 'restore ms': ms(s.map((x) => x.restoreMs)), rounds: median(s.map((x) => x.rounds)), 'final round': `${median(s.map((x) => x.finalSent))} pages sent`, 'MiB sent': +(median(s.map((x) => x.bytesSent)) / 2 ** 20).toFixed(1), 'cpu s src / dst': `${(median(s.map((x) => x.srcCpuMs)) / 1000).toFixed(2)} / ${(median(s.map((x) => x.dstCpuMs)) / 1000).toFixed(2)}` });
  const rows: Row[] = [
    row('stasis migrate, tree of 3 (pipe)', s),
    ...(b.length ? [row(`baseline ${baseline}`, b)] : []),
    ...(c.length ? [{ tool: 'criu dump -t (tree) + cp + restore', 'downtime ms': ms(c.map((x) => x.downtimeMs)), 'frozen/dump ms': ms(c.map((x) => x.dumpMs)), 'restore ms': ms(c.map((x) => x.restoreMs)), rounds: 1, 'final round': `${(median(c.map((x) => x.imageBytes)) / 2 ** 20).toFixed(1)} MiB images`, 'MiB sent': '-', 'cpu s src / dst': '-' }] : []),
  ];
  process.stderr.write(`\n${formatTable(rows)}\n${criuProblem ? `(CRIU: ${criuProblem})\n` : ''}\n`);
  const stepRowsOf = (s: StasisRun[], prefix: string): Row[] => [...new Set(s.flatMap((x) => x.steps.map((y) => y.step)))].map((n) => {
    const v = s.flatMap((x) => x.steps.filter((y) => y.step === n).map((y) => y.ms));
    return { step: `${prefix}${n}`, 'median ms': +median(v).toFixed(1), runs: v.map((x) => x.toFixed(0)).join(', ') };
  });
  const stepRows: Row[] = [...stepRowsOf(s, ''), ...stepRowsOf(b, 'baseline: ')];
  if (stepRows.length) process.stderr.write(`${formatTable(stepRows)}\n\n`);
  console.log(JSON.stringify({ sizeMb, pct, rate, runs, criuProblem, stasis: s, ...(b.length ? { baseline, baselineRuns: b } : {}), criu: c, markdown: formatTable(rows, true), stepsMarkdown: formatTable(stepRows, true) }, null, 2));
} finally {
  try { rmSync(work, { recursive: true, force: true, maxRetries: 5 }); } catch (e) { log(`could not remove ${work}: ${(e as Error).message}`); }
}
