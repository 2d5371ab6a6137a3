// `stasis daemon` as a real process, on a real store, checkpointing real processes with the real
// capture engine: 1-second schedules, pruning, target exit, two daemons, failures retried.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScheduleDb } from '../../electron/engine/schedule/db';
import { lockHolder } from '../../electron/engine/schedule/lock';
import { addSchedule } from '../../electron/engine/schedule/service';
import { openStore } from '../../electron/engine/store';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached, type DetachedProcess } from '../helpers/spawn';

const root = new URL('../../', import.meta.url).pathname;
const cli = join(root, 'bin/stasis.js');
// bin/stasis.js runs the esbuild bundle when it is up to date (CI builds first: fast start), else the sources through tsx.
const env = { ...process.env };

interface Daemon {
  child: ChildProcess;
  log(): string;
  stop(): Promise<number | null>;
}

function startDaemon(dir: string, extra: string[] = []): Daemon {
  const child = spawn(process.execPath, [cli, '--store', dir, 'daemon', '--tick', '200ms', ...extra], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  return {
    child,
    log: () => log,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

async function until<T>(what: string, f: () => T | undefined | null | false, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function world() {
  const dir = mkdtempSync(join(tmpdir(), 'stasis-daemon-'));
  const bin = buildFixture('schedule-target');
  const procs: DetachedProcess[] = [];
  const daemons: Daemon[] = [];
  const db = new ScheduleDb(dir);
  const w = {
    dir, db,
    target() {
      const p = spawnDetached([bin]);
      procs.push(p);
      return p;
    },
    daemon(extra: string[] = []) {
      const d = startDaemon(dir, extra);
      daemons.push(d);
      return d;
    },
    /** The daemons' logs and the run history, for a failure message. */
    diagnostics(): string {
      const runs = w.db.history(undefined, 50).map((r) => `${r.id} s${r.scheduleId} ${r.result} a${r.attempt} by ${r.runnerPid} ${new Date(r.startedAt).toISOString()} ${r.error ?? ''}`);
      return [...daemons.map((d) => `daemon ${d.child.pid} (exit ${d.child.exitCode}):\n${d.log()}`), 'runs:', ...runs].join('\n');
    },
    async close() {
      for (const d of daemons) if (d.child.exitCode === null) d.child.kill('SIGKILL');
      for (const p of procs) p.kill();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return w;
}

/** Runs a test body; a failure carries the daemons' logs and the run history. */
async function explained(w: ReturnType<typeof world>, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n--- diagnostics ---\n${w.diagnostics()}`, { cause: err });
  }
}

test('a daemon with a 1-second schedule takes checkpoints, prunes to the policy, ends the schedule when the target exits, and stops cleanly on SIGTERM', async () => {
  const w = world();
  try {
    await explained(w, async () => {
      const p = w.target();
      const add = spawnSync(process.execPath, [cli, '--store', w.dir, '--json', 'schedule', 'add', String(p.pid), '--every', '1s', '--keep', '2', '--full-every', '3'], { env, encoding: 'utf8' });
      assert.equal(add.status, 0, add.stderr);
      const sched = JSON.parse(add.stdout) as { id: number };
      const d = w.daemon();
      const ok = await until('4 successful runs', () => {
        const runs = w.db.history(sched.id).filter((r) => r.result === 'ok');
        return runs.length >= 4 && runs;
      });
      assert.ok(ok.every((r) => r.runnerPid === d.child.pid && r.checkpointId !== null && r.frozenMs !== null && r.bytes !== null && r.durationMs !== null));
      assert.equal(lockHolder(w.db, Date.now())?.kind, 'daemon');
      p.kill();
      await until('the schedule to end', () => w.db.require(sched.id).state === 'ended');
      assert.match(w.db.require(sched.id).endedReason!, new RegExp(`Process ${p.pid} exited`));
      assert.equal(await d.stop(), 0, 'SIGTERM: exit status 0');
      assert.match(d.log(), /SIGTERM: stopping[\s\S]*stopped/);
      assert.equal(lockHolder(w.db, Date.now()), null, 'the lock was released');

      const store = openStore(w.dir);
      try {
        const ours = w.db.checkpointIdsOf(sched.id);
        const left = store.list().filter((c) => ours.has(c.id));
        assert.equal(left.length, 2, `kept the last 2 of ${ours.size}: ${left.map((c) => c.id).join(',')}`);
        const runs = w.db.history(sched.id).filter((r) => r.result === 'ok');
        assert.deepEqual(left.map((c) => c.id), runs.slice(0, 2).map((r) => r.checkpointId).reverse(), 'the two newest');
        assert.equal(runs.flatMap((r) => r.pruned).length, runs.length - 2, 'every other one was pruned, and recorded');
      assert.equal(ours.size, 2, 'pruned checkpoints are forgotten by the schedule');
        assert.ok(runs.some((r) => r.mode === 'full') && runs.some((r) => r.mode === 'incremental'));
        for (const c of left) assert.ok([...store.materialize(c.id)].length > 0, `kept checkpoint ${c.id} still materializes`);
        assert.ok(store.verify().ok, JSON.stringify(store.verify().problems));
      } finally {
        store.close();
      }
    });
  } finally {
    await w.close();
  }
});

test('two daemons on one store: one acts, the other stands by and takes over when it stops', async () => {
  const w = world();
  try {
    await explained(w, async () => {
      const p = w.target();
      const s = addSchedule(w.db, { target: { pid: p.pid }, timing: { kind: 'interval', everyMs: 1000 }, fullEvery: 0, quietHours: null, retention: { keepLast: 3 }, label: null }, Date.now());
      const d1 = w.daemon();
      await until('d1 to act', () => lockHolder(w.db, Date.now())?.pid === d1.child.pid);
      const d2 = w.daemon();
      await until('d2 to stand by', () => /standing by: daemon pid \d+ holds the scheduler lock/.test(d2.log()));
      await until('3 runs', () => w.db.history(s.id).filter((r) => r.result === 'ok').length >= 3);
      const ls = spawnSync(process.execPath, [cli, '--store', w.dir, 'schedule', 'ls'], { env, encoding: 'utf8' });
      assert.equal(ls.status, 0, ls.stderr);
      assert.match(ls.stdout, new RegExp(`Scheduler: daemon \\(pid ${d1.child.pid}\\)`), 'the other side sees who holds the lock');
      const runners = new Set(w.db.history(s.id).map((r) => r.runnerPid));
      assert.deepEqual([...runners], [d1.child.pid], 'only the lock holder ran');
      assert.equal(await d1.stop(), 0);
      await until('d2 to take over', () => lockHolder(w.db, Date.now())?.pid === d2.child.pid);
      await until('a run by d2', () => w.db.history(s.id).some((r) => r.runnerPid === d2.child.pid && r.result === 'ok'));
      assert.match(d2.log(), /acting scheduler/);
      // never two runs in one slot (by either daemon): at most one per second of elapsed time, allowing
      // each run to start up to a second late on a loaded machine
      const starts = w.db.history(s.id).filter((r) => r.result === 'ok').map((r) => r.startedAt).sort((a, b) => a - b);
      const bound = Math.floor((starts.at(-1)! - starts[0]! + 999) / 1000) + 1;
      assert.ok(starts.length <= bound, `${starts.length} runs within ${starts.at(-1)! - starts[0]!} ms`);
      assert.equal(await d2.stop(), 0);
    });
  } finally {
    await w.close();
  }
});

test('a failing capture (another tracer holds the target) is retried with backoff, reported, and succeeds once it is free', async () => {
  const w = world();
  try {
    await explained(w, async () => {
      const p = w.target();
      const d = w.daemon(['--retries', '6', '--retry-delay', '400ms']);
      await until('the daemon to act', () => lockHolder(w.db, Date.now())?.pid === d.child.pid);
      const log = join(w.dir, 'tracer.log');
      const tracer = spawnDetached([buildFixture('schedule-tracer'), String(p.pid), '3000'], { log });
      try {
        await until('the tracer to attach', () => existsSync(log) && readFileSync(log, 'utf8').includes('seized'), 5000);
        const s = addSchedule(w.db, { target: { pid: p.pid }, timing: { kind: 'interval', everyMs: 60_000 }, fullEvery: 0, quietHours: null, retention: {}, label: null }, Date.now());
        const ok = await until('a successful retry', () => w.db.history(s.id).find((r) => r.result === 'ok'), 20_000);
        const failed = w.db.history(s.id).filter((r) => r.result === 'failed').reverse();
        assert.ok(failed.length >= 2, `failed ${failed.length} times first`);
        assert.match(failed[0]!.error!, /already being traced by process \d+ \(schedule-tracer\)/, 'the real reason is recorded');
        assert.deepEqual(failed.map((r) => r.attempt), failed.map((_r, i) => i + 1));
        assert.ok(failed.every((r) => r.willRetry && r.error && r.error.length > 10));
        assert.equal(ok.attempt, failed.length + 1);
        for (let i = 1; i < failed.length; i++) {
          const gap = failed[i]!.startedAt - failed[i - 1]!.finishedAt;
          assert.ok(gap >= 400 * 2 ** (i - 1) - 50, `backoff ${i}: ${gap} ms`);
        }
        assert.equal(w.db.require(s.id).lastResult, 'ok');
        assert.match(d.log(), /run failed \(attempt 1, will retry\)/, 'reported in the daemon log');
        // and through the CLI
        const h = spawnSync(process.execPath, [cli, '--store', w.dir, 'schedule', 'history', String(s.id)], { env, encoding: 'utf8' });
        assert.equal(h.status, 0, h.stderr);
        assert.match(h.stdout, /failed .*will retry/);
        assert.equal(await d.stop(), 0);
      } finally {
        tracer.kill();
      }
    });
  } finally {
    await w.close();
  }
});
