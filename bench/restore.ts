/**
 * Restore benchmark, Stasis beside CRIU 4.1.1 in one run on the same target: a process with 1 GiB
 * of incompressible anonymous memory. Both checkpoint it (CRIU: dump --leave-running; Stasis:
 * capture into a fresh store), the original is killed, then each restores it RUNS times. Measured:
 * wall time from the command to a running process (the restore call / command returning with the
 * process running; each run then checks the process really moves on).
 *
 *   node --import tsx bench/restore.ts [--size-mb 1024] [--threads 1] [--runs 3] [--criu PATH]
 * With --threads N the target's memory is filled by N threads that stay alive (the issue-13 case: 8).
 * CRIU: /work/shared/tools/install-criu prints the wrapper path (default ~/.cache/criu4/criu); it runs
 * with CRIU_FAULT=130 (see below). The engine runs three times per round (VARIANTS): as it is, with
 * STASIS_RESTORE_FILL=writev (no UFFDIO_COPY) and with STASIS_RESTORE_THREADS=1 (page fill on one thread).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnDetached } from '../test/helpers/spawn';
import { openStore } from '../electron/engine/store';
import { checkpoint } from '../electron/engine/capture';
import { restore } from '../electron/engine/restore';
import { prctl, PR, waitTid } from '../electron/engine/native';
import { arg } from './args';

const sizeMb = Number(arg('size-mb', '1024'));
const runs = Number(arg('runs', '3'));
const threads = Number(arg('threads', '1'));
const criu = arg('criu', join(homedir(), '.cache/criu4/criu'));
const root = new URL('../', import.meta.url).pathname;
// CRIU's parasite cure sets a hardware breakpoint that never fires in this VM, so a plain dump hangs
// in wait4; 130 is CRIU's own fault-injection switch for its no-breakpoint path (see the Capture
// section of docs/benchmarks.md, where this was found).
const criuEnv = { ...process.env, CRIU_FAULT: process.env.CRIU_FAULT ?? '130' };
// Restore needs it too: without it, `criu restore -d` restores the process and then hangs in its
// final step with the process still stopped under it (seen here with -v4: "Restored", then nothing).
const criuRestoreEnv = criuEnv;
const log = (m: string): void => { process.stderr.write(`[bench] ${m}\n`); };
// The engine's default (UFFDIO_COPY where it applies, the addon's threads), then without UFFDIO_COPY,
// then with the page fill on one thread (the path without the addon).
const VARIANTS = [
  { name: 'default', env: {} as Record<string, string> },
  { name: 'writev', env: { STASIS_RESTORE_FILL: 'writev' } },
  { name: 'one thread', env: { STASIS_RESTORE_THREADS: '1' } },
];

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function readReady(file: string): { counter: number; pid: number } | null {
  try {
    const [c, p] = readFileSync(file, 'utf8').trim().split(' ');
    return c && p ? { counter: Number(c), pid: Number(p) } : null;
  } catch {
    return null;
  }
}

/** Waits until `pid` has bumped its counter at least twice in the ready file: it really runs. */
function waitRunning(file: string, pid: number, timeoutMs = 10_000): void {
  const end = Date.now() + timeoutMs;
  let first: number | null = null;
  for (;;) {
    const r = readReady(file);
    if (r && r.pid === pid) {
      if (first === null) first = r.counter;
      else if (r.counter >= first + 2) return;
    }
    if (Date.now() > end) throw new Error(`process ${pid} does not run after the restore`);
    sleepMs(2);
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

/**
 * Kills a restored process and reaps it. The bench is a child subreaper, so restored processes
 * orphaned by criu, the CLI or the stub land here: reaping frees the PID for CRIU's next same-PID
 * restore even where PID 1 does not reap (this VM's does not).
 */
function killAndReap(pid: number): void {
  try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  try { waitTid(pid); } catch { waitGone(pid); }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

prctl(PR.SET_CHILD_SUBREAPER, 1n);
const work = mkdtempSync(join(tmpdir(), 'stasis-bench-restore-'));
try {
  const bin = join(work, 'restore-target');
  const cc = spawnSync('cc', ['-O2', '-pthread', '-o', bin, join(root, 'bench/restore-target.c')], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(cc.stderr);
  const ready = join(work, 'ready');
  let t = spawnDetached([bin, ready, String(sizeMb), String(threads)], { cwd: work });
  const end = Date.now() + 60_000;
  while (!readReady(ready)) { if (Date.now() > end) throw new Error('target did not start'); sleepMs(20); }

  log(`target ${t.pid} ready with ${sizeMb} MiB`);
  let haveCriu = existsSync(criu);
  let criuProblem: string | null = haveCriu ? null : `no CRIU at ${criu} (run /work/shared/tools/install-criu)`;
  const img = join(work, 'criu-img');
  mkdirSync(img);
  let criuDumpMs = NaN;
  if (haveCriu) {
    const t0 = performance.now();
    const d = spawnSync(criu, ['dump', '-t', String(t.pid), '-D', img, '--leave-running', '--shell-job', '-v4', '-o', 'dump.log'], { encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL', env: criuEnv });
    criuDumpMs = performance.now() - t0;
    if (d.status !== 0) {
      haveCriu = false;
      const tail = (() => { try { return readFileSync(join(img, 'dump.log'), 'utf8').trim().split('\n').slice(-2).join(' | '); } catch { return ''; } })();
      criuProblem = d.signal ? `criu dump did not finish within 60 s (killed); last log lines: ${tail}` : `criu dump failed (exit ${d.status}): ${tail}`;
      log(criuProblem);
      // A killed dump leaves CRIU's parasite mapped in the target: start a clean one for Stasis.
      t.kill();
      await t.waitExit();
      rmSync(ready, { force: true });
      t = spawnDetached([bin, ready, String(sizeMb), String(threads)], { cwd: work });
      const end2 = Date.now() + 60_000;
      while (!readReady(ready) || readReady(ready)!.pid !== t.pid) { if (Date.now() > end2) throw new Error('target did not start'); sleepMs(20); }
    }
  }
  log(`criu dump: ${criuDumpMs.toFixed(0)} ms`);
  let store = openStore(join(work, 'store'));
  const c = checkpoint(store, t.pid);
  log(`stasis checkpoint #${c.id}: ${c.durationMs.toFixed(0)} ms`);
  t.kill();
  await t.waitExit();

  const criuMs: number[] = [];
  const cliMs: number[] = [];
  const memMs: number[] = [];
  const engineMs: Record<string, number[]> = Object.fromEntries(VARIANTS.map((v) => [v.name, []]));
  const stasisMs = engineMs[VARIANTS[0].name];
  for (let i = 0; i < runs; i++) {
    if (haveCriu) {
      const t0 = performance.now();
      const r = spawnSync(criu, ['restore', '-D', img, '-d', '--shell-job', '-v1', '-o', `restore-${i}.log`], { encoding: 'utf8', timeout: 120_000, killSignal: 'SIGKILL', env: criuRestoreEnv });
      const ms = performance.now() - t0;
      if (r.status !== 0) throw new Error(`criu restore failed: ${readFileSync(join(img, `restore-${i}.log`), 'utf8').slice(-2000)}`);
      waitRunning(ready, t.pid);
      criuMs.push(ms);
      log(`criu restore: ${ms.toFixed(0)} ms`);
      killAndReap(t.pid);
    }
    for (const v of VARIANTS) {
      // The same engine three ways in each round: the default, without UFFDIO_COPY, on one thread.
      const saved = Object.fromEntries(Object.keys(v.env).map((k) => [k, process.env[k]]));
      Object.assign(process.env, v.env);
      const t0 = performance.now();
      const r = restore(store, c.id, { log: join(work, 'restore.log') });
      const ms = performance.now() - t0;
      for (const [k, x] of Object.entries(saved)) { if (x === undefined) delete process.env[k]; else process.env[k] = x; }
      waitRunning(ready, r.pid);
      engineMs[v.name].push(ms);
      log(`stasis restore (engine, ${v.name}): ${ms.toFixed(0)} ms (${r.steps.map((x) => `${x.step} ${x.ms}`).join(', ')}; writing pages ${r.writeMs} ms)`);
      if (v.name === VARIANTS[0].name) memMs.push(r.steps.find((s) => s.step === 'memory contents')?.ms ?? NaN);
      killAndReap(r.pid);
    }
    {
      store.close();
      const t0 = performance.now();
      const r = spawnSync(process.execPath, [join(root, 'bin/stasis.js'), '--store', join(work, 'store'), '--json', 'restore', String(c.id)], { encoding: 'utf8' });
      const ms = performance.now() - t0;
      if (r.status !== 0) throw new Error(`stasis restore failed: ${r.stderr}`);
      const pid = (JSON.parse(r.stdout) as { pid: number }).pid;
      waitRunning(ready, pid);
      cliMs.push(ms);
      store = openStore(join(work, 'store'));
      log(`stasis restore (CLI): ${ms.toFixed(0)} ms`);
      killAndReap(pid);
    }
  }
  store.close();
  const result = {
    sizeMb, threads, runs, kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
    criuProblem,
    criu: haveCriu ? { dumpMs: +criuDumpMs.toFixed(1), restoreMs: criuMs.map((x) => +x.toFixed(1)), medianMs: +median(criuMs).toFixed(1) } : null,
    stasisEngine: { restoreMs: stasisMs.map((x) => +x.toFixed(1)), medianMs: +median(stasisMs).toFixed(1), memoryContentsMs: memMs },
    stasisEngineVariants: Object.fromEntries(VARIANTS.slice(1).map((v) => [v.name, { restoreMs: engineMs[v.name].map((x) => +x.toFixed(1)), medianMs: +median(engineMs[v.name]).toFixed(1) }])),
    stasisCli: { restoreMs: cliMs.map((x) => +x.toFixed(1)), medianMs: +median(cliMs).toFixed(1) },
    ratioEngineToCriu: haveCriu && criuMs.length ? +(median(stasisMs) / median(criuMs)).toFixed(3) : null,
    ratioCliToCriu: haveCriu && criuMs.length ? +(median(cliMs) / median(criuMs)).toFixed(3) : null,
  };
  console.log(JSON.stringify(result, null, 2));
} finally {
  // A restored process may still be writing its ready file while we clean up.
  try { rmSync(work, { recursive: true, force: true, maxRetries: 5 }); } catch (e) { log(`could not remove ${work}: ${(e as Error).message}`); }
}
