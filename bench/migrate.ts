/**
 * Live-migration benchmark, Stasis beside CRIU 4.1.1 in one run: a counter with SIZE MiB of
 * touched memory that writes PCT% of its pages per second (test/fixtures/migrate-counter.c), moved
 * to a second store on this machine.
 *   Stasis: `stasis migrate PID --pipe 'stasis --store DST receive'` (two CLI processes, the
 *   session over a pipe as with ssh). Downtime as the source reports it: the last freeze to the
 *   destination's restore returning with the process running.
 *   CRIU: `pre-dump --track-mem` while it runs, images copied to the destination directory, then
 *   `dump --prev-images-dir --track-mem` (the freeze), the final images copied, `restore -d`.
 *   Downtime: dump start to restore returning.
 * Each run then checks the moved process goes on counting. Prints per-run rows and one JSON document.
 *
 *   node --import tsx bench/migrate.ts [--size-mb 1024] [--pct 1] [--runs 3] [--criu PATH] [--baseline BIN] [--guess never|auto] [--trace-window]
 * --skip-floors: no disk and pipe floors before each run (for many runs of the downtime alone).
 * --trace-window: each run's downtime window as both ends lived it (STASIS_WINDOW_TRACE,
 * bench/window-trace.ts): GC inside it, the main threads' waits for a core, page faults, a timeline.
 * --baseline: another build's bin/stasis.js (e.g. /work/main/bin/stasis.js), run alternately with
 * this one in the same run (A, B, A, B ...) so a change is compared under the same load.
 * --guess MODE: this build's runs pass `migrate --guess-vmflags MODE` (the baseline's do not):
 * `--guess never --baseline bin/stasis.js` is an A/B of the guessed VmFlags in one build.
 * Also prints the downtime step by step (the source's `cutover` steps and the destination's).
 *
 * Full round (issue 14: within 1.5x of the slower of the disk and the link): round 1's bytes over
 * its sendMs as the source reports it, beside two floors measured in the same run, before each
 * run: the durable-write speed of the disk the stores are on (bench/floors, 1 MiB writes + fsync,
 * SIZE MiB), and the link's raw throughput (SIZE MiB from one node process into another through a
 * pipe, as the migration's `--pipe` carries it). CPU per side from /usr/bin/time around each CLI
 * (the receiving one wrapped inside the --pipe command; the source's own = its total minus it).
 * A build before the streamed rounds (a --baseline from then) starts sendMs after its export to a
 * spool file: its full round MiB/s leaves that pass out (favours it); wall s is the whole migrate.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnDetached, type DetachedProcess } from '../test/helpers/spawn';
import { prctl, PR, waitTid } from '../electron/engine/native';
import { formatTable, type Row } from './table';
import { durableWriteSecs } from './floors';
import { arg } from './args';
import { readWindowTrace } from './window-trace';

const sizeMb = Number(arg('size-mb', '1024'));
const pct = Number(arg('pct', '1'));
const runs = Number(arg('runs', '3'));
const criu = arg('criu', join(homedir(), '.cache/criu4/criu'));
const baseline = arg('baseline', '');
const root = new URL('../', import.meta.url).pathname;
const stasisBin = join(root, 'bin/stasis.js');
const guessMode = arg('guess', '');
// Each run's downtime window as both ends lived it (GC, waits for a core, page faults: bench/window-trace.ts).
const traceWindow = process.argv.includes('--trace-window');
// Downtime only: no disk or pipe floor before each run (the full round's table then has no floors).
const skipFloors = process.argv.includes('--skip-floors');
// See bench/restore.ts: CRIU's breakpoint path hangs in this VM; 130 takes its other path.
const criuEnv = { ...process.env, CRIU_FAULT: process.env.CRIU_FAULT ?? '130' };
const log = (m: string): void => { process.stderr.write(`[bench] ${m}\n`); };
const rate = Math.max(1, Math.round((sizeMb * 256 * pct) / 100));

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : NaN;
}
function size(file: string): number {
  try { return statSync(file).size; } catch { return 0; }
}
/** The counter appends a line per step: growth of its file means it runs. */
function waitCounting(out: string, timeoutMs = 20_000): void {
  const first = size(out);
  const end = Date.now() + timeoutMs;
  while (size(out) < first + 200) {
    if (Date.now() > end) throw new Error('the moved process does not count');
    sleepMs(5);
  }
}
function waitGone(pid: number): void {
  const end = Date.now() + 10_000;
  while (existsSync(`/proc/${pid}`)) {
    const s = (() => { try { return readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { return ''; } })();
    if (s && s.slice(s.lastIndexOf(')') + 2)[0] === 'Z') return;
    if (Date.now() > end) throw new Error(`process ${pid} did not exit`);
    sleepMs(5);
  }
}
function killAndReap(pid: number): void {
  try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  try { waitTid(pid); } catch { waitGone(pid); }
}
function duBytes(dir: string): number {
  const r = spawnSync('du', ['-sb', dir], { encoding: 'utf8' });
  return Number(r.stdout.split(/\s/)[0]);
}

prctl(PR.SET_CHILD_SUBREAPER, 1n);
const work = mkdtempSync(join(tmpdir(), 'stasis-bench-migrate-'));
const bin = join(work, 'counter');
const cc = spawnSync('cc', ['-O2', '-o', bin, join(root, 'test/fixtures/migrate-counter.c')], { encoding: 'utf8' });
if (cc.status !== 0) throw new Error(cc.stderr);

function startTarget(tag: string): { t: DetachedProcess; out: string } {
  const out = join(work, `${tag}.out`);
  const t = spawnDetached([bin, out, String(sizeMb), String(rate)], { cwd: work });
  const end = Date.now() + 120_000;
  while (!readFileSync(out, { encoding: 'utf8', flag: 'a+' }).includes('ready\n')) { if (Date.now() > end) throw new Error('target did not start'); sleepMs(20); }
  sleepMs(1000); // a second of writing at the rate, so the first incremental has something to carry
  return { t, out };
}

interface StasisRun { vmFlags: string; srcCpuMs: number; dstCpuMs: number; steps: { step: string; ms: number }[]; downtimeMs: number; frozenMs: number; restoreMs: number; bytesSent: number; lackedBytes: number; rounds: number; finalPages: number; wallMs: number; fullSendMs: number; fullBytes: number }
function stasisRun(i: number, bin = stasisBin, guessVm = guessMode): StasisRun {
  const { t, out } = startTarget(`stasis-${i}`);
  const src = join(work, `src-${i}`);
  const dst = join(work, `dst-${i}`);
  const t0 = performance.now();
  const srcTime = join(work, `time-src-${i}`);
  const dstTime = join(work, `time-dst-${i}`);
  // --guess MODE: this build's runs only (`migrate --guess-vmflags`), so a --baseline of the same build is the other mode.
  const guess = guessVm ? ['--guess-vmflags', guessVm] : [];
  const traceFile = join(work, `window-${i}.jsonl`);
  const env = traceWindow ? { ...process.env, STASIS_WINDOW_TRACE: traceFile } : process.env;
  const r = spawnSync('/usr/bin/time', ['-f', '%U %S', '-o', srcTime, process.execPath, bin, '--store', src, '--json', 'migrate', String(t.pid), ...guess, '--pipe', `/usr/bin/time -f '%U %S' -o ${dstTime} ${process.execPath} ${bin} --store ${dst} receive`], { encoding: 'utf8', timeout: 600_000, env });
  const wallMs = performance.now() - t0;
  if (r.status !== 0) throw new Error(`stasis migrate failed: ${r.stderr}`);
  // The source's rusage includes the receiving command it waited for.
  const dstCpuMs = cpuMs(dstTime);
  const srcCpuMs = cpuMs(srcTime) - dstCpuMs;
  const m = JSON.parse(r.stdout) as { downtimeMs: number; frozenMs: number; bytesSent: number; rounds: { pages: number; bytes: number; sendMs: number }[]; destination: { pid: number; restoreMs: number; steps?: { step: string; ms: number }[] }; cutover?: { step: string; ms: number }[]; vmFlags?: string };
  waitCounting(out);
  killAndReap(m.destination.pid);
  t.kill();
  rmSync(src, { recursive: true, force: true });
  rmSync(dst, { recursive: true, force: true });
  const pages = m.rounds.reduce((a, x) => a + x.pages, 0);
  log(`stasis run ${i}: downtime ${m.downtimeMs} ms (frozen ${m.frozenMs}, restore ${m.destination.restoreMs}; VmFlags ${m.vmFlags ?? 'read'}), rounds ${m.rounds.map((x) => x.pages).join('/')} pages, ${(m.bytesSent / 2 ** 20).toFixed(1)} MiB sent, wall ${wallMs.toFixed(0)} ms`);
  const steps = [...(m.cutover ?? []).map((x) => ({ step: `source: ${x.step}`, ms: x.ms })), ...(m.destination.steps ?? []).map((x) => ({ step: `  of which there: ${x.step}`, ms: x.ms }))];
  const w = traceWindow ? readWindowTrace(traceFile) : null;
  if (w) {
    log(`  window ${w.windowMs.toFixed(1)} ms: gc source ${w.gcMs.source.toFixed(1)} (${w.gcCount.source}), destination ${w.gcMs.destination.toFixed(1)} (${w.gcCount.destination}); waited for a core: source ${w.runDelayMs.source.toFixed(1)}, destination ${w.runDelayMs.destination.toFixed(1)}; minor faults ${w.minflt.source}/${w.minflt.destination}`);
    log(`  ${w.timeline}`);
    steps.push(
      { step: 'trace: V8 GC inside the window, source', ms: w.gcMs.source }, { step: 'trace: V8 GC inside the window, destination', ms: w.gcMs.destination },
      { step: 'trace: main thread waited for a core, source (frozen..restored)', ms: w.runDelayMs.source }, { step: 'trace: main thread waited for a core, destination (announced..running)', ms: w.runDelayMs.destination },
      { step: 'trace: minor page faults, source (count)', ms: w.minflt.source }, { step: 'trace: minor page faults, destination (count)', ms: w.minflt.destination },
    );
  }
  return {
    vmFlags: m.vmFlags ?? 'read', srcCpuMs, dstCpuMs, steps, downtimeMs: m.downtimeMs, frozenMs: m.frozenMs, restoreMs: m.destination.restoreMs, bytesSent: m.bytesSent, lackedBytes: pages * 4096,
    rounds: m.rounds.length, finalPages: m.rounds.at(-1)!.pages, wallMs, fullSendMs: m.rounds[0]!.sendMs, fullBytes: m.rounds[0]!.bytes,
  };
}

/** User + system ms from a /usr/bin/time -f '%U %S' output file. */
function cpuMs(file: string): number {
  const [u, sys] = readFileSync(file, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  return ((u ?? NaN) + (sys ?? NaN)) * 1000;
}

/** MiB/s of durable writes (1 MiB writes, then fsync) of SIZE MiB into the directory the stores use. */
function diskFloor(): number {
  return sizeMb / durableWriteSecs(work, sizeMb * 2 ** 20);
}

/**
 * MiB/s of SIZE MiB of random bytes from one node process into another through a pipe (what the
 * migration's --pipe carries), from the reader's first byte to its last; with each side's CPU.
 */
function pipeLink(): { mibps: number; writerCpuMs: number; readerCpuMs: number } {
  const writer = `const b=require('crypto').randomBytes(1<<20);let i=0;const go=()=>{while(i<${sizeMb}){i++;if(!process.stdout.write(b)){process.stdout.once('drain',go);return;}}process.stdout.end();const u=process.cpuUsage();require('fs').writeSync(2,JSON.stringify({cpu:(u.user+u.system)/1000}));};go();`;
  const reader = `let n=0,t0=0;process.stdin.on('data',(d)=>{if(!n)t0=performance.now();n+=d.length;});process.stdin.on('end',()=>{const u=process.cpuUsage();process.stdout.write(JSON.stringify({n,ms:performance.now()-t0,cpu:(u.user+u.system)/1000}));});`;
  const r = spawnSync('/bin/sh', ['-c', `${process.execPath} -e "${writer}" | ${process.execPath} -e "${reader}"`], { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`pipe link measurement failed: ${r.stderr}`);
  const got = JSON.parse(r.stdout) as { n: number; ms: number; cpu: number };
  const w = JSON.parse(r.stderr.trim().split('\n').pop()!) as { cpu: number };
  if (got.n !== sizeMb * 2 ** 20) throw new Error(`the pipe carried ${got.n} bytes`);
  return { mibps: got.n / 2 ** 20 / (got.ms / 1000), writerCpuMs: w.cpu, readerCpuMs: got.cpu };
}

let criuPreDump = true;
let criuNote: string | null = null;

interface CriuRun { downtimeMs: number; dumpMs: number; copyMs: number; restoreMs: number; finalBytes: number; preBytes: number }
function criuRun(i: number): CriuRun {
  const { t, out } = startTarget(`criu-${i}`);
  const srcDir = join(work, `criu-src-${i}`);
  const dstDir = join(work, `criu-dst-${i}`);
  mkdirSync(join(srcDir, 'pre'), { recursive: true });
  mkdirSync(join(srcDir, 'final'));
  mkdirSync(dstDir);
  const run = (args: string[], what: string): void => {
    const r = spawnSync(criu, args, { encoding: 'utf8', timeout: 300_000, killSignal: 'SIGKILL', env: criuEnv });
    if (r.status !== 0) throw new Error(`criu ${what} failed (exit ${r.status}): ${r.stderr.slice(-1500)}`);
  };
  try {
    // CRIU's pre-copy needs soft-dirty (--track-mem); without it (this kernel) CRIU can only stop
    // and copy everything, which is then its migration.
    if (criuPreDump) {
      try {
        run(['pre-dump', '-t', String(t.pid), '-D', join(srcDir, 'pre'), '--track-mem', '--shell-job', '-v1', '-o', 'pre.log'], 'pre-dump');
      } catch (e) {
        const why = (() => { try { return readFileSync(join(srcDir, 'pre', 'pre.log'), 'utf8').trim().split('\n').pop() ?? ''; } catch { return ''; } })();
        criuPreDump = false;
        criuNote = `criu pre-dump refused (${why || (e as Error).message}): CRIU stops and copies everything`;
        log(criuNote);
      }
    }
    // The pre-dump's images travel while the process runs (outside the downtime).
    if (criuPreDump) spawnSync('cp', ['-a', join(srcDir, 'pre'), join(dstDir, 'pre')]);
    const t0 = performance.now();
    run(['dump', '-t', String(t.pid), '-D', join(srcDir, 'final'), ...(criuPreDump ? ['--prev-images-dir', '../pre', '--track-mem'] : []), '--shell-job', '-v1', '-o', 'dump.log'], 'dump');
    const t1 = performance.now();
    spawnSync('cp', ['-a', join(srcDir, 'final'), join(dstDir, 'final')]);
    const t2 = performance.now();
    run(['restore', '-D', join(dstDir, 'final'), '-d', '--shell-job', '-v1', '-o', 'restore.log'], 'restore');
    const t3 = performance.now();
    waitCounting(out);
    const r: CriuRun = { downtimeMs: t3 - t0, dumpMs: t1 - t0, copyMs: t2 - t1, restoreMs: t3 - t2, finalBytes: duBytes(join(srcDir, 'final')), preBytes: duBytes(join(srcDir, 'pre')) };
    log(`criu run ${i}: downtime ${r.downtimeMs.toFixed(0)} ms (dump ${r.dumpMs.toFixed(0)}, copy ${r.copyMs.toFixed(0)}, restore ${r.restoreMs.toFixed(0)}); images ${(r.preBytes / 2 ** 20).toFixed(1)} + ${(r.finalBytes / 2 ** 20).toFixed(1)} MiB`);
    killAndReap(t.pid);
    return r;
  } finally {
    t.kill();
    rmSync(srcDir, { recursive: true, force: true });
    rmSync(dstDir, { recursive: true, force: true });
  }
}

try {
  log(`target: ${sizeMb} MiB, ${rate} pages written per second (${pct}%)`);
  const haveCriu = existsSync(criu);
  let criuProblem: string | null = haveCriu ? null : `no CRIU at ${criu} (run /work/shared/tools/install-criu)`;
  const s: StasisRun[] = [];
  const c: CriuRun[] = [];
  const b: StasisRun[] = [];
  const floors: { disk: number; link: number; linkCpu: string }[] = [];
  for (let i = 0; i < runs; i++) {
    if (!skipFloors) {
      const disk = diskFloor();
      const l = pipeLink();
      floors.push({ disk, link: l.mibps, linkCpu: `${(l.writerCpuMs / 1000).toFixed(2)} + ${(l.readerCpuMs / 1000).toFixed(2)}` });
      log(`floors: disk ${disk.toFixed(0)} MiB/s durable, pipe ${l.mibps.toFixed(0)} MiB/s (cpu s writer ${(l.writerCpuMs / 1000).toFixed(2)}, reader ${(l.readerCpuMs / 1000).toFixed(2)})`);
    }
    log(`run ${i}: load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
    // A and B alternate, in a different order each run.
    if (baseline && i % 2 === 1) { log(`baseline ${baseline}:`); b.push(stasisRun(100 + i, baseline, '')); }
    s.push(stasisRun(i));
    if (baseline && i % 2 === 0) { log(`baseline ${baseline}:`); b.push(stasisRun(100 + i, baseline, '')); }
    if (haveCriu && !criuProblem) {
      try { c.push(criuRun(i)); } catch (e) { criuProblem = (e as Error).message; log(criuProblem); }
    }
  }
  const ms = (xs: number[]): number => +median(xs).toFixed(1);
  // The target is every run, not the median: how many are at or under 50 ms, and the worst.
  const tail = (xs: StasisRun[]): Row => ({ '<= 50 ms': `${xs.filter((x) => x.downtimeMs <= 50).length}/${xs.length}`, 'max ms': Math.max(...xs.map((x) => x.downtimeMs)) });
  const rows: Row[] = [
    { tool: 'stasis migrate (pipe)', 'downtime ms': ms(s.map((x) => x.downtimeMs)), ...tail(s), 'frozen/dump ms': ms(s.map((x) => x.frozenMs)), 'restore ms': ms(s.map((x) => x.restoreMs)), 'wire/lacked': +median(s.map((x) => x.bytesSent / x.lackedBytes)).toFixed(3), 'final round': `${median(s.map((x) => x.finalPages))} pages` },
    ...(b.length ? [{ tool: `baseline ${baseline}`, 'downtime ms': ms(b.map((x) => x.downtimeMs)), ...tail(b), 'frozen/dump ms': ms(b.map((x) => x.frozenMs)), 'restore ms': ms(b.map((x) => x.restoreMs)), 'wire/lacked': +median(b.map((x) => x.bytesSent / x.lackedBytes)).toFixed(3), 'final round': `${median(b.map((x) => x.finalPages))} pages` }] : []),
    ...(c.length ? [{ tool: criuPreDump ? 'criu pre-dump + dump + cp + restore' : 'criu dump + cp + restore (no pre-dump here)', 'downtime ms': ms(c.map((x) => x.downtimeMs)), '<= 50 ms': '-', 'max ms': Math.max(...c.map((x) => x.downtimeMs)), 'frozen/dump ms': ms(c.map((x) => x.dumpMs)), 'restore ms': ms(c.map((x) => x.restoreMs)), 'wire/lacked': '-', 'final round': `${(median(c.map((x) => x.finalBytes)) / 2 ** 20).toFixed(1)} MiB images` }] : []),
  ];
  process.stderr.write(`\n${formatTable(rows)}\n\n`);
  process.stderr.write(`downtimes, in run order: this build ${s.map((x) => x.downtimeMs).join(', ')}${b.length ? `; baseline ${b.map((x) => x.downtimeMs).join(', ')}` : ''}\n\n`);
  // The downtime step by step (medians over the runs that report the step), this build's, then the baseline's.
  const stepTable = (xs: StasisRun[]): Row[] => [...new Set(xs.flatMap((x) => x.steps.map((y) => y.step)))].map((n) => {
    const v = xs.flatMap((x) => x.steps.filter((y) => y.step === n).map((y) => y.ms));
    return { step: n, 'median ms': +median(v).toFixed(2), runs: `${v.map((x) => x.toFixed(1)).join(', ')}` };
  });
  const stepRows = stepTable(s);
  if (stepRows.length) process.stderr.write(`${formatTable(stepRows)}\n\n`);
  const baseStepRows = stepTable(b);
  if (baseStepRows.length) process.stderr.write(`baseline ${baseline}, step by step:\n${formatTable(baseStepRows)}\n\n`);
  const fullMBps = median(s.map((x) => x.fullBytes / 2 ** 20 / (x.fullSendMs / 1000)));
  // The full round against the floors measured in this run (the target: slower floor / full round <= 1.5).
  const disk = median(floors.map((f) => f.disk));
  const link = median(floors.map((f) => f.link));
  const fullRow = (tool: string, xs: StasisRun[]): Row => {
    const mibps = median(xs.map((x) => x.fullBytes / 2 ** 20 / (x.fullSendMs / 1000)));
    return {
      tool, 'full round MiB/s': +mibps.toFixed(1), 'runs MiB/s': xs.map((x) => (x.fullBytes / 2 ** 20 / (x.fullSendMs / 1000)).toFixed(0)).join(', '),
      'disk floor MiB/s': +disk.toFixed(0), 'pipe MiB/s': +link.toFixed(0), 'slower floor / full round': +(Math.min(disk, link) / mibps).toFixed(2),
      'cpu s source / dest': `${(median(xs.map((x) => x.srcCpuMs)) / 1000).toFixed(2)} / ${(median(xs.map((x) => x.dstCpuMs)) / 1000).toFixed(2)}`,
      'wall s': +(median(xs.map((x) => x.wallMs)) / 1000).toFixed(2),
    };
  };
  const fullRows: Row[] = [fullRow('stasis migrate (pipe)', s), ...(b.length ? [fullRow(`baseline ${baseline}`, b)] : [])];
  process.stderr.write(`${formatTable(fullRows)}\n(floors per run: ${floors.map((f) => `disk ${f.disk.toFixed(0)}, pipe ${f.link.toFixed(0)} (cpu s ${f.linkCpu})`).join('; ')})\n\n`);
  console.log(JSON.stringify({
    sizeMb, pct, rate, runs, kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(), criuProblem, criuNote,
    stasis: s, baseline: b, criu: c, floors,
    fullRoundMarkdown: formatTable(fullRows, true),
    medians: { stasisDowntimeMs: ms(s.map((x) => x.downtimeMs)), criuDowntimeMs: c.length ? ms(c.map((x) => x.downtimeMs)) : null, fullSendMiBps: +fullMBps.toFixed(1) },
    ratioDowntimeToCriu: c.length ? +(median(s.map((x) => x.downtimeMs)) / median(c.map((x) => x.downtimeMs))).toFixed(3) : null,
    markdown: formatTable(rows, true),
    stepsMarkdown: stepRows.length ? formatTable(stepRows, true) : null,
    baselineStepsMarkdown: baseStepRows.length ? formatTable(baseStepRows, true) : null,
  }, null, 2));
} finally {
  try { rmSync(work, { recursive: true, force: true, maxRetries: 5 }); } catch (e) { log(`could not remove ${work}: ${(e as Error).message}`); }
}
