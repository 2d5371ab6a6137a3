/**
 * Tree checkpoints: a process and its descendants taken at one instant (`checkpointTree`) and
 * brought back as the same tree (`restore` of a tree checkpoint): each child forked from its
 * restored parent with its old PID, so the parent's wait() reaps it with the status the child
 * computes itself; a pipe between parent and child with bytes in flight; a session with two
 * process groups; exited children still waiting to be reaped; a file description parent and child share. Each fixture checks itself
 * (test/fixtures/tree-family.c); a single-process checkpoint of the same parent cannot do any of it.
 * And a real `sh -c 'a | b'` pipeline interrupted mid-stream finishes with the uninterrupted output.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached } from '../helpers/spawn';
import { checkpointTree } from '../../electron/engine/capture';
import { probeKernelFeatures } from '../../electron/engine/native';
import { preflight, restore } from '../../electron/engine/restore';
import { fields, fileLines, isZombie, killQuietly, sleep, spawnUnderLateReaper, waitFor, withStore } from './helpers';

const fixture = buildFixture('tree-family');

/** Runs MODE, checkpoints its tree (killing it), restores it, lets it run its checks; returns the result line's fields. */
async function roundTrip(mode: string, expectMembers: number, opts: { incremental?: boolean } = {}): Promise<{ result: Record<string, number>; preflight: string }> {
  return withStore(async (store, dir) => {
    const out = join(dir, 'out.txt');
    const t = spawnDetached([fixture, mode, out], { cwd: dir });
    const restored: number[] = [];
    try {
      await waitFor('the tree to be built', () => fileLines(out).includes('ready'));
      // Optionally a first tree checkpoint that leaves it running: the second is then incremental per process.
      const first = opts.incremental ? checkpointTree(store, t.pid) : null;
      const c = checkpointTree(store, t.pid, { mode: 'kill' });
      if (first) {
        assert.equal(c.mode, 'incremental');
        c.members.forEach((m, i) => assert.equal(store.get(m.id)!.parentId, first.members[i]!.id, 'each process builds on its own previous checkpoint'));
      }
      assert.equal(c.members.length, expectMembers, `members: ${JSON.stringify(c.members)}`);
      assert.equal(store.get(c.id)?.tree?.size, expectMembers);
      assert.deepEqual(store.treeMembers(c.id), c.members.map((m) => m.id));
      await t.waitExit();
      // Same PIDs need the old ones free: the killed children are reaped by init meanwhile.
      const pids = [...c.members.map((m) => m.pid), ...c.members.flatMap((m) => m.zombies)];
      await waitFor('the original processes to be gone', () => pids.every((p) => !existsSync(`/proc/${p}`)));
      const pf = preflight(store, c.id, { log: join(dir, 'restore.log') });
      assert.equal(pf.ok, true, JSON.stringify(pf.items.filter((i) => !i.ok)));
      const r = restore(store, c.id, { log: join(dir, 'restore.log') });
      restored.push(...(r.members ?? []).flatMap((m) => [m.pid, ...m.zombies]));
      assert.equal(r.members?.length, expectMembers);
      assert.ok(r.members!.every((m) => m.samePid), `same PIDs: ${JSON.stringify(r.members)}`);
      assert.equal(r.pid, t.pid);
      process.kill(r.pid, 'SIGUSR1');
      await waitFor('the restored tree\'s checks', () => fileLines(out).some((l) => l.startsWith(`pid=${r.pid} `)), 10_000);
      return { result: fields(fileLines(out).find((l) => l.startsWith(`pid=${r.pid} `))!), preflight: pf.items.map((i) => i.reason).join('\n') };
    } finally {
      t.kill();
      for (const p of restored) killQuietly(p);
    }
  });
}

test('a parent restored with its two children reaps them with wait(); each still sees it as getppid() (from an incremental tree checkpoint)', async () => {
  const { result } = await roundTrip('wait', 3, { incremental: true });
  assert.equal(result.c1, 11);
  assert.equal(result.c2, 12);
  assert.equal(result.reaped, 2);
});

test('a pipe from parent to child comes back with its bytes in flight and keeps working', async () => {
  const { result, preflight } = await roundTrip('pipe', 2);
  assert.match(preflight, /pipe:\[\d+\] is reattached to the other processes of the tree/, 'the pre-flight says the pipe comes back, not that it is redirected');
  assert.equal(result.child, 0, 'the child read "hello-from-parent" then "end"');
});

test('a socketpair between parent and child comes back with the bytes waiting in both directions and its O_NONBLOCK, and keeps working', async () => {
  const { result, preflight } = await roundTrip('socketpair', 2);
  assert.match(preflight, /socket:\[\d+\] is reattached to the other processes of the tree/);
  assert.deepEqual({ child: result.child, parent: result.parent, nonblock: result.nonblock }, { child: 0, parent: 1, nonblock: 1 });
});

test('a session leader with a process-group leader child and a child in that group come back in the same session and groups', async () => {
  const { result } = await roundTrip('session', 3);
  assert.deepEqual({ sid: result.sid, a: result.a, b: result.b }, { sid: 1, a: 21, b: 22 });
});

test('children that exited before the checkpoint are reaped after restore with their exit status and signal', async () => {
  const { result } = await roundTrip('zombie', 1);
  assert.deepEqual({ code1: result.code1, sig2: result.sig2 }, { code1: 7, sig2: 15 });
});

test('a file opened before fork keeps one shared offset between parent and child after restore', async () => {
  const { result } = await roundTrip('shared', 2);
  assert.deepEqual({ same: result.same, child: result.child }, { same: 1, child: 0 });
});

test("a shell pipeline (sh -c 'loop | md5sum') checkpointed mid-stream comes back and prints the same digest as an uninterrupted run", async () => {
  await withStore(async (store, dir) => {
    const out = join(dir, 'digest.txt');
    const lines = 'i=0; while [ $i -lt 150 ]; do echo line$i; i=$((i+1))';
    const expected = execFileSync('sh', ['-c', `${lines}; done | md5sum`], { encoding: 'utf8' });
    const t = spawnDetached(['sh', '-c', `${lines}; sleep 0.01; done | md5sum > ${out}`], { cwd: dir });
    const restored: number[] = [];
    try {
      await sleep(500);
      const c = checkpointTree(store, t.pid, { mode: 'kill' });
      const comms = c.members.map((m) => m.comm);
      // sh, the loop's subshell, md5sum (and the loop's sleep when it was caught sleeping).
      assert.ok(comms.filter((x) => x === 'sh').length === 2 && comms.includes('md5sum'), comms.join(','));
      await t.waitExit();
      const pids = c.members.map((m) => m.pid);
      await waitFor('the original pipeline to be gone', () => pids.every((p) => !existsSync(`/proc/${p}`)));
      assert.equal(existsSync(out) ? readFileSync(out, 'utf8') : '', '', 'md5sum had not finished when it was killed');
      const r = restore(store, c.id, { log: join(dir, 'restore.log') });
      restored.push(...r.members!.map((m) => m.pid));
      await waitFor('the restored pipeline to finish', () => existsSync(out) && readFileSync(out, 'utf8').length > 0, 15_000);
      assert.equal(readFileSync(out, 'utf8'), expected);
    } finally {
      t.kill();
      for (const p of restored) killQuietly(p);
    }
  });
});

test('a tree with a member traced by another program is refused, naming it; nothing is saved and every process runs on untraced', async () => {
  await withStore(async (store, dir) => {
    const out = join(dir, 'out.txt');
    const log = join(dir, 'tracer.log');
    const t = spawnDetached([fixture, 'wait', out], { cwd: dir });
    let tracer: ReturnType<typeof spawnDetached> | undefined;
    try {
      await waitFor('the tree to be built', () => fileLines(out).includes('ready'));
      const kid = Number(readFileSync(`/proc/${t.pid}/task/${t.pid}/children`, 'utf8').trim().split(/\s+/)[0]);
      tracer = spawnDetached([buildFixture('schedule-tracer'), String(kid), '5000'], { log });
      await waitFor('the tracer to attach', () => fileLines(log).includes('seized'));
      assert.throws(() => checkpointTree(store, t.pid), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'UNSUPPORTED');
        assert.match(e.message, new RegExp(`Process ${kid} \\(tree-family\\), a child of ${t.pid}, is traced by process ${tracer!.pid} \\(schedule-tracer\\)`));
        return true;
      });
      assert.equal(store.list().length, 0);
      const tracerOf = (p: number): number => Number(/TracerPid:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1]);
      assert.equal(tracerOf(t.pid), 0, 'the root was released');
      assert.equal(tracerOf(kid), tracer.pid, 'the traced child keeps its own tracer');
      // Still working: the tree finishes its own checks.
      process.kill(t.pid, 'SIGUSR1');
      tracer.kill();
      await waitFor('the original tree\'s checks', () => fileLines(out).some((l) => l.startsWith(`pid=${t.pid} `)), 10_000);
      assert.deepEqual(fields(fileLines(out).find((l) => l.startsWith(`pid=${t.pid} `))!), { pid: t.pid, c1: 11, c2: 12, reaped: 2 });
    } finally {
      tracer?.kill();
      t.kill();
    }
  });
});

test('stasis checkpoint of a process with children takes the tree by default (--no-tree: it alone, with a warning); list and restore through the CLI: one row with the number of processes, the whole tree restored', async () => {
  await withStore(async (_store, dir) => {
    const root = new URL('../..', import.meta.url).pathname;
    const storeDir = join(dir, 'cli-store');
    const stasis = (args: string[], store = storeDir): { code: number; out: string; err: string } => {
      const r = spawnSync(process.execPath, [join(root, 'bin/stasis.js'), '--store', store, ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });
      return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
    };
    const out = join(dir, 'out.txt');
    const t = spawnDetached([fixture, 'wait', out], { cwd: dir });
    const restored: number[] = [];
    try {
      await waitFor('the tree to be built', () => fileLines(out).includes('ready'));
      const alone = stasis(['--json', 'checkpoint', String(t.pid), '--no-tree'], join(dir, 'alone-store'));
      assert.equal(alone.code, 0, alone.err);
      const a = JSON.parse(alone.out) as { members?: unknown; warnings: string[] };
      assert.equal(a.members, undefined, 'a single-process checkpoint');
      assert.ok(a.warnings.some((w) => /2 child processes .* not in the checkpoint/.test(w)), a.warnings.join('; '));
      const kids = readFileSync(`/proc/${t.pid}/task/${t.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
      assert.equal(kids.length, 2);
      // Left running (another store): the text says how each member's memory was read.
      const running = stasis(['checkpoint', String(t.pid)], join(dir, 'running-store'));
      assert.equal(running.code, 0, running.err);
      const f0 = probeKernelFeatures();
      assert.match(running.out, f0.uffdWpAsync && f0.pagemapScan && !f0.softDirty ? /Frozen [\d.]+ ms \(pre-copy: the memory of 3 of 3 processes read while the tree ran, \d+ pages read frozen\)/ : /every process frozen throughout/);
      const c = stasis(['checkpoint', String(t.pid), '--kill']);
      assert.equal(c.code, 0, c.err);
      assert.match(c.out, new RegExp(`Tree checkpoint #1 of pid ${t.pid} and its descendants: 3 processes, full, all killed afterwards`));
      const rows = JSON.parse(stasis(['--json', 'list']).out) as { id: number; processes?: number }[];
      assert.deepEqual(rows.map((r) => [r.id, r.processes]), [[1, 3]], 'one row for the tree');
      const listed = stasis(['list']).out;
      assert.match(listed, /\[tree: 3 processes\]/);
      await t.waitExit();
      // The killed children are reaped by init, which may take a while on a busy machine: until
      // then their PIDs are taken and the restore is refused (the next test).
      await waitFor('the original tree to be gone', () => [t.pid, ...kids].every((p) => !existsSync(`/proc/${p}`)), 20_000);
      const r = stasis(['--json', 'restore', '2']); // a member's id restores the whole tree
      assert.equal(r.code, 0, r.err);
      const res = JSON.parse(r.out) as { pid: number; members: { pid: number }[] };
      restored.push(...res.members.map((m) => m.pid));
      assert.equal(res.members.length, 3);
      process.kill(res.pid, 'SIGUSR1');
      await waitFor('the restored tree\'s checks', () => fileLines(out).some((l) => l.startsWith(`pid=${res.pid} `)), 10_000);
      const f = fields(fileLines(out).find((l) => l.startsWith(`pid=${res.pid} `))!);
      assert.equal(f.reaped, 2);
    } finally {
      t.kill();
      for (const p of restored) killQuietly(p);
    }
  });
});

test('a tree whose PIDs are taken is refused by restore, --check and the pre-flight, naming each PID and what holds it; --no-pid restores it under new PIDs and says so', async () => {
  await withStore(async (store, dir) => {
    const root = new URL('../..', import.meta.url).pathname;
    const stasis = (args: string[]): { code: number; out: string; err: string } => {
      const r = spawnSync(process.execPath, [join(root, 'bin/stasis.js'), '--store', store.dir, ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });
      return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
    };
    const out = join(dir, 'out.txt');
    const t = spawnDetached([fixture, 'wait', out], { cwd: dir });
    const restored: number[] = [];
    const originals: number[] = [];
    try {
      await waitFor('the tree to be built', () => fileLines(out).includes('ready'));
      // Left running: the originals hold every PID of the checkpoint.
      const c = checkpointTree(store, t.pid);
      originals.push(...c.members.slice(1).map((m) => m.pid));
      const kid = c.members[1]!.pid;
      const pf = preflight(store, c.id, { log: join(dir, 'restore.log') });
      const item = pf.items.find((i) => i.id === 'tree-pids');
      assert.equal(pf.ok, false);
      assert.equal(item?.ok, false);
      assert.match(item!.reason, new RegExp(`PID ${kid} is taken \\(tree-family, running\\)`));
      assert.match(item!.fix ?? '', /--no-pid/);
      assert.equal(pf.items.filter((i) => i.id.startsWith('pid')).length, 0, 'no per-process PID note contradicts it');
      const check = stasis(['restore', String(c.id), '--check']);
      assert.equal(check.code, 1);
      assert.match(check.out, new RegExp(`PID ${t.pid} is taken`));
      const refused = stasis(['restore', String(c.id)]);
      assert.notEqual(refused.code, 0);
      assert.match(refused.err, new RegExp(`PID ${kid} is taken`));
      assert.equal(fileLines(join(dir, 'restore.log')).length, 0, 'nothing was started');
      assert.deepEqual(readFileSync(`/proc/${t.pid}/task/${t.pid}/children`, 'utf8').trim().split(/\s+/).map(Number).sort(), c.members.slice(1).map((m) => m.pid).sort(), 'the originals run on untouched');
      const r = stasis(['--json', 'restore', String(c.id), '--no-pid']);
      assert.equal(r.code, 0, r.err);
      const res = JSON.parse(r.out) as { pid: number; warning?: string; members: { pid: number; originalPid: number; samePid: boolean }[] };
      restored.push(...res.members.map((m) => m.pid));
      assert.equal(res.members.length, 3);
      assert.ok(res.members.every((m) => !m.samePid && m.pid !== m.originalPid), JSON.stringify(res.members));
      assert.match(res.warning ?? '', new RegExp(`process ${kid} came back as ${res.members[1]!.pid}`));
    } finally {
      // The original children too: left running on purpose, they outlive their parent's kill.
      for (const k of originals) killQuietly(k);
      t.kill();
      for (const p of restored) killQuietly(p);
    }
  });
});

test('killed right before the restore, the tree\'s processes are still zombies: the restore waits for their reaping instead of refusing', async () => {
  await withStore(async (store, dir) => {
    const out = join(dir, 'out.txt');
    const late = await spawnUnderLateReaper([fixture, 'wait', out], dir);
    const restored: number[] = [];
    try {
      await waitFor('the tree to be built', () => fileLines(out).includes('ready'));
      const c = checkpointTree(store, late.pid, { mode: 'kill' });
      const pids = c.members.map((m) => m.pid);
      await waitFor('every member to be a zombie', () => pids.every(isZombie));
      late.reap();
      const pf = preflight(store, c.id, { log: join(dir, 'restore.log') });
      assert.equal(pf.ok, true, JSON.stringify(pf.items.filter((i) => !i.ok)));
      const r = restore(store, c.id, { log: join(dir, 'restore.log') });
      restored.push(...(r.members ?? []).flatMap((m) => [m.pid, ...m.zombies]));
      assert.ok(r.members!.every((m) => m.samePid), `same PIDs: ${JSON.stringify(r.members)}`);
      process.kill(r.pid, 'SIGUSR1');
      await waitFor('the restored tree\'s checks', () => fileLines(out).some((l) => l.startsWith(`pid=${r.pid} `)), 10_000);
      assert.equal(fields(fileLines(out).find((l) => l.startsWith(`pid=${r.pid} `))!).reaped, 2);
    } finally {
      late.reaper.kill();
      for (const p of restored) killQuietly(p);
    }
  });
});

/**
 * A `sleep 1000` child, stopped once by an earlier freeze, waits on in restart_syscall; the
 * checkpoint must save the call itself (restarts.ts), or the restored sleep ends at once. take:
 * the checkpoint(s) of the running tree, the last one taken with the tree killed.
 */
async function sleepSurvives(script: string, take: (store: Parameters<typeof checkpointTree>[0], pid: number) => ReturnType<typeof checkpointTree>): Promise<void> {
  await withStore(async (store, dir) => {
    const t = spawnDetached(['bash', '-c', script], { cwd: dir });
    const restored: number[] = [];
    try {
      await sleep(300);
      const c = take(store, t.pid);
      const sleeper = c.members.find((m) => m.comm === 'sleep');
      assert.ok(sleeper, `a member is the sleep: ${JSON.stringify(c.members)}`);
      const pids = c.members.map((m) => m.pid);
      for (const p of pids) killQuietly(p);
      await waitFor('the original tree to be gone', () => pids.every((p) => !existsSync(`/proc/${p}`)), 20_000);
      const r = restore(store, c.id, { log: join(dir, 'restore.log'), samePid: false });
      restored.push(...(r.members ?? []).flatMap((m) => [m.pid, ...m.zombies]));
      const again = r.members!.find((m) => m.originalPid === sleeper.pid)!;
      await sleep(1500);
      assert.ok(existsSync(`/proc/${again.pid}`) && !/\) Z /.test(readFileSync(`/proc/${again.pid}/stat`, 'utf8')), 'the restored sleep 1000 still sleeps');
    } finally {
      t.kill();
      for (const p of restored) killQuietly(p);
    }
  });
}

test('a tree taken with --kill after a live checkpoint: a child\'s sleep the first checkpoint interrupted is saved as the sleep and goes on after restore', async () => {
  await sleepSurvives('sleep 1000 & wait', (store, pid) => {
    checkpointTree(store, pid);
    return checkpointTree(store, pid, { mode: 'kill' });
  });
});

test('a tree that forks while its memory is read live is read whole at the freeze, and a child\'s sleep that the pre-copy\'s brief freeze interrupted still goes on after restore', async () => {
  await sleepSurvives('sleep 1000 & while :; do /bin/true; done', (store, pid) => {
    for (let i = 0; ; i++) {
      const c = checkpointTree(store, pid, { full: true });
      if (c.warnings.some((w) => /while the tree ran|tree changed while its memory was read live/.test(w)) || i === 9) {
        assert.ok(c.warnings.some((w) => /while the tree ran|tree changed while its memory was read live/.test(w)), `the live phase was given up: ${c.warnings.join('; ')}`);
        return c;
      }
    }
  });
});

test('children that exit while the tree is being frozen are taken as the zombies they become, never a failed checkpoint', async () => {
  await withStore(async (store, dir) => {
    // A shell forking short-lived children without pause: some exit between the listing and their freeze.
    const t = spawnDetached(['sh', '-c', 'while :; do /bin/true; done'], { cwd: dir });
    try {
      await sleep(100);
      let members = 0;
      for (let i = 0; i < 30; i++) members += checkpointTree(store, t.pid).members.length;
      assert.ok(members >= 30, `every checkpoint holds at least the shell: ${members}`);
      assert.ok(t.alive());
    } finally {
      t.kill();
    }
  });
});
