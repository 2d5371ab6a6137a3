// Restore against real processes, a real store and the real capture engine. Every target is started
// detached (not our child); restored processes are our children (posix_spawn) and are killed in
// teardown. The fidelity fixture checks itself (counter, offset, signals, itimer, AVX, MXCSR, vdso
// clock) and reports in each line it writes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readlinkSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached } from '../helpers/spawn';
import { checkpoint, closeTrackers, type CheckpointOptions } from '../../electron/engine/capture';
import { preflight, restore } from '../../electron/engine/restore';
import { StasisError } from '../../shared/errors';
import { REG } from '../../electron/engine/native';
import { openStore, type Store } from '../../electron/engine/store';
import { fields, fileLines, isAlive, isZombie, killQuietly, liveChildren, sleep, spawnUnderLateReaper, waitFor, withStore } from './helpers';

const fidelity = buildFixture('restore-fidelity');

/** Offset of fd 3 (the fixture's output file) in a checkpoint. */
function outPos(store: Store, id: number): number {
  const f = store.getState(id).fds.find((x) => x.fd === 3);
  assert.ok(f, 'checkpoint has fd 3');
  return Number(f.pos);
}

/**
 * The restored process must continue right where checkpoint's file offset was: the line there is its
 * first. `buffered`: the program buffers its output (python3), so a line it had formatted, with its
 * old pid, but not yet written at the freeze is written by the restored process first; the line
 * after it must then be the restored process's own, continuing the counter.
 */
function assertContinues(out: string, pos: number, pid: number, buffered?: { originalPid: number }): Record<string, number> {
  const buf = readFileSync(out);
  const before = buf.subarray(0, pos).toString().split('\n').filter(Boolean);
  const [first, second] = buf.subarray(pos).toString().split('\n');
  const k = fields(before.at(-1)!).c!;
  const f = fields(first!);
  assert.equal(f.c, k + 1, `counter continues from the checkpointed value: ${before.at(-1)} -> ${first}`);
  if (buffered && f.pid === buffered.originalPid) {
    const g = fields(second!);
    assert.equal(g.pid, pid, `after the line buffered at the checkpoint comes the restored process's own: ${first} / ${second}`);
    assert.equal(g.c, k + 2, `counter continues after the buffered line: ${first} -> ${second}`);
    return g;
  }
  assert.equal(f.pid, pid, `line at the checkpoint's offset was written by the restored process: ${first}`);
  return f;
}

async function startFidelity(dir: string): Promise<{ t: ReturnType<typeof spawnDetached>; out: string }> {
  const out = join(dir, 'fid.out');
  const t = spawnDetached([fidelity, out], { cwd: dir });
  await waitFor('the target to write', () => fileLines(out).length >= 4);
  return { t, out };
}

test('a restored program continues exactly: counter, file offset, O_APPEND, signal handler on its alternate stack, itimer, AVX and MXCSR, vdso clock', async () => {
  await withStore(async (store, dir) => {
    const { t, out } = await startFidelity(dir);
    let pid: number | undefined;
    try {
      const c = checkpoint(store, t.pid);
      const pos = outPos(store, c.id);
      t.kill();
      await t.waitExit();
      // A new PID keeps the lines of the original and of the restored process apart.
      const r = restore(store, c.id, { log: join(dir, 'restore.log'), samePid: false });
      pid = r.pid;
      assert.equal(r.samePid, false);
      assert.notEqual(r.pid, t.pid);
      assert.ok(r.durationMs > 0 && r.durationMs < 5000);
      await waitFor('restored lines', () => fileLines(out).some((l) => fields(l).pid === r.pid && fields(l).alrm! >= 0) && fileLines(out).length > 8);
      const first = assertContinues(out, pos, r.pid);
      process.kill(r.pid, 'SIGUSR1');
      const alrmAtStart = first.alrm!;
      await waitFor('SIGUSR1 and SIGALRM after restore', () => {
        const last = fields(fileLines(out).at(-1)!);
        return last.pid === r.pid && last.usr1 === 1 && last.alrm! >= alrmAtStart + 3;
      });
      const mine = fileLines(out).map(fields).filter((f) => f.pid === r.pid);
      for (const f of mine) {
        assert.equal(f.ymm, 1, 'ymm12 held across the restore');
        assert.equal(f.round, 1, 'MXCSR rounding mode held');
        assert.equal(f.clock, 1, 'vdso CLOCK_MONOTONIC moves forward');
      }
      const last = mine.at(-1)!;
      assert.equal(last.alt, 1, 'SIGUSR1 ran on the alternate signal stack');
      for (let i = 1; i < mine.length; i++) assert.equal(mine[i]!.c, mine[i - 1]!.c! + 1);
      const app = fileLines(`${out}.append`).map(fields);
      assert.equal(app.at(-1)!.c, last.c, 'the O_APPEND file got the same lines at its end');
      const fdinfo = readFileSync(`/proc/${r.pid}/fdinfo/4`, 'utf8');
      assert.ok(parseInt(/flags:\s*(\d+)/.exec(fdinfo)![1]!, 8) & 0o2000, 'fd 4 still O_APPEND');
      assert.equal(readFileSync(`/proc/${r.pid}/comm`, 'utf8').trim(), 'restore-fidelit');
      assert.equal(readFileSync(`/proc/${r.pid}/cmdline`, 'utf8').split('\0')[0], fidelity);
      assert.equal(readFileSync(`/proc/${r.pid}/cwd/fid.out`).length > 0, true, 'cwd restored');
    } finally {
      t.kill();
      killQuietly(pid);
    }
  });
});

test('restore #3 of a chain of 10 after deleting #1, #2 and #5; the restored process\'s next checkpoint is incremental on top of it', async () => {
  await withStore(async (store, dir) => {
    const { t, out } = await startFidelity(dir);
    let pid: number | undefined;
    try {
      const ids: number[] = [];
      for (let i = 0; i < 10; i++) {
        ids.push(checkpoint(store, t.pid).id);
        await sleep(25);
      }
      assert.equal(store.get(ids[9]!)!.mode, 'incremental');
      store.remove([ids[0]!, ids[1]!, ids[4]!]);
      const third = ids[2]!;
      const pos = outPos(store, third);
      t.kill();
      await t.waitExit();
      const r = restore(store, third, { samePid: false });
      pid = r.pid;
      await waitFor('restored lines', () => fileLines(out).filter((l) => fields(l).pid === r.pid).length >= 3);
      assertContinues(out, pos, r.pid);

      assert.ok(r.branchCheckpointId);
      const branch = store.get(r.branchCheckpointId)!;
      assert.equal(branch.parentId, third);
      assert.equal(branch.restoredFrom, third);
      const next = checkpoint(store, r.pid);
      const info = store.get(next.id)!;
      assert.equal(next.mode, 'incremental', 'next checkpoint is incremental, not a new full chain');
      assert.equal(info.parentId, r.branchCheckpointId);
      assert.ok(next.pagesWritten < store.get(third)!.stats.logicalBytes / 4096, `only changed pages stored (${next.pagesWritten})`);
    } finally {
      t.kill();
      killQuietly(pid);
    }
  });
});

test('restore while the original still runs: both run on', async () => {
  await withStore(async (store, dir) => {
    const { t, out } = await startFidelity(dir);
    let pid: number | undefined;
    try {
      const c = checkpoint(store, t.pid);
      const r = restore(store, c.id, { log: join(dir, 'restore.log') });
      pid = r.pid;
      await waitFor('lines from both', () => {
        const pids = new Set(fileLines(out).slice(-20).map((l) => fields(l).pid));
        return pids.has(t.pid) && pids.has(r.pid);
      });
      assert.ok(t.alive() && isAlive(r.pid));
    } finally {
      t.kill();
      killQuietly(pid);
    }
  });
});

test('python3 restores and continues', async () => {
  const py = (() => {
    for (const p of ['/usr/bin/python3', '/usr/local/bin/python3']) if (existsSync(p)) return p;
    return 'python3';
  })();
  await withStore(async (store, dir) => {
    const script = join(dir, 'count.py');
    const out = join(dir, 'py.out');
    writeFileSync(script, 'import sys, time, os\nf = open(sys.argv[1], "w")\nn = 0\nd = {}\nwhile True:\n    n += 1\n    d[n % 50] = n * n\n    f.write(f"c={n} sq={d[n % 50]} pid={os.getpid()}\\n"); f.flush()\n    time.sleep(0.02)\n');
    const t = spawnDetached([py, script, out], { cwd: dir });
    let pid: number | undefined;
    try {
      await waitFor('python output', () => fileLines(out).length >= 3, 10_000);
      const c = checkpoint(store, t.pid);
      const pos = Number(store.getState(c.id).fds.find((f) => f.fd === 3)!.pos);
      t.kill();
      await t.waitExit();
      const r = restore(store, c.id, { log: join(dir, 'restore.log'), samePid: false });
      pid = r.pid;
      await waitFor('restored python output', () => fileLines(out).filter((l) => fields(l).pid === r.pid).length >= 3);
      const f = assertContinues(out, pos, r.pid, { originalPid: t.pid });
      assert.equal(f.sq, f.c! * f.c!);
    } finally {
      t.kill();
      killQuietly(pid);
    }
  });
});

test('a failure at any step kills the half-built process and names the step', async () => {
  await withStore(async (store, dir) => {
    const { t } = await startFidelity(dir);
    try {
      const c = checkpoint(store, t.pid);
      let stubPid = 0;
      const before = liveChildren();
      assert.throws(
        () => restore(store, c.id, { log: join(dir, 'restore.log') }, {
          afterStep: (step, pid) => {
            stubPid = pid;
            if (step === 'memory contents') throw new Error('injected failure for the test.');
          },
        }),
        (e: unknown) => e instanceof StasisError && /failed at step "memory contents": injected failure/.test(e.message) && /nothing was left running/.test(e.message),
      );
      assert.ok(stubPid > 0);
      // Killed; not reaped by us: after the fork it is an orphan, and PID 1 here (a container's
      // process_api) may leave it a zombie, which is fine — it no longer runs.
      assert.equal(isAlive(stubPid), false, 'the half-built process was killed');
      assert.deepEqual(liveChildren(), before);
      assert.equal(store.list().length, 1, 'nothing recorded for a failed restore');
    } finally {
      t.kill();
    }
  });
});

test('a cancelled restore stops at the next step, kills the half-built process and records nothing', async () => {
  await withStore(async (store, dir) => {
    const { t } = await startFidelity(dir);
    try {
      const c = checkpoint(store, t.pid);
      const controller = new AbortController();
      let stubPid = 0;
      const before = liveChildren();
      assert.throws(
        () => restore(store, c.id, { log: join(dir, 'restore.log'), signal: controller.signal }, {
          afterStep: (step, pid) => {
            stubPid = pid;
            if (step === 'memory layout') controller.abort();
          },
        }),
        (e: unknown) => e instanceof StasisError && e.code === 'CANCELLED' && /failed at step "memory contents": The restore of checkpoint #\d+ was cancelled/.test(e.message),
      );
      assert.ok(stubPid > 0);
      assert.equal(isAlive(stubPid), false, 'the half-built process was killed');
      assert.deepEqual(liveChildren(), before);
      assert.equal(store.list().length, 1, 'nothing recorded for a cancelled restore');
    } finally {
      t.kill();
    }
  });
});

test('pre-flight failures on real checkpoints: changed executable, vanished file, vanished cwd — and no process is started', async () => {
  await withStore(async (store, dir) => {
    const work = join(dir, 'work');
    mkdirSync(work);
    const exe = join(dir, 'fidelity-copy');
    copyFileSync(fidelity, exe);
    const out = join(work, 'fid.out');
    const t = spawnDetached([exe, out], { cwd: work });
    try {
      await waitFor('output', () => fileLines(out).length >= 2);
      const c = checkpoint(store, t.pid);
      t.kill();
      await t.waitExit();
      assert.equal(preflight(store, c.id).ok, true, JSON.stringify(preflight(store, c.id).items.filter((i) => !i.ok)));

      const before = liveChildren();
      appendFileSync(exe, 'changed');
      rmSync(out);
      rmSync(`${out}.append`);
      let pf = preflight(store, c.id);
      assert.match(pf.items.find((i) => i.id === 'exe')!.reason, /fidelity-copy changed size/);
      assert.match(pf.items.find((i) => i.id === 'fds')!.reason, /fd 3: .*fid\.out no longer exists/);
      rmSync(work, { recursive: true });
      pf = preflight(store, c.id);
      assert.match(pf.items.find((i) => i.id === 'cwd')!.reason, /work no longer exists/);
      for (const i of pf.items.filter((x) => !x.ok)) assert.ok(i.fix, `${i.id} has a fix`);
      assert.throws(() => restore(store, c.id), (e: unknown) => e instanceof StasisError && e.code === 'PREFLIGHT_FAILED' && /cannot be restored/.test(e.message));
      assert.deepEqual(liveChildren(), before, 'no process started');
    } finally {
      t.kill();
    }
  });
});

test('restore after export and import into another store directory', async () => {
  await withStore(async (store, dir) => {
    const { t, out } = await startFidelity(dir);
    let pid: number | undefined;
    const other = openStore(join(dir, 'other-store'));
    try {
      checkpoint(store, t.pid);
      await sleep(40);
      const c = checkpoint(store, t.pid);
      const pos = outPos(store, c.id);
      t.kill();
      await t.waitExit();
      const file = join(dir, 'export.stasis');
      store.exportStream(c.id, file, 'one');
      const { ids } = other.importStream(file);
      const imported = ids.at(-1)!;
      assert.equal(outPos(other, imported), pos);
      const r = restore(other, imported, { log: join(dir, 'restore.log'), samePid: false });
      pid = r.pid;
      await waitFor('restored lines', () => fileLines(out).filter((l) => fields(l).pid === r.pid).length >= 3);
      assertContinues(out, pos, r.pid);
    } finally {
      other.close();
      t.kill();
      killQuietly(pid);
    }
  });
});

test('same PID when it is free and we are privileged (clone3 with set_tid); a new one when the original runs', async () => {
  await withStore(async (store, dir) => {
    const { t, out } = await startFidelity(dir);
    let pid: number | undefined;
    try {
      const c = checkpoint(store, t.pid);
      const busy = preflight(store, c.id).items.find((i) => i.id === 'pid')!;
      assert.match(busy.reason, new RegExp(`PID ${t.pid} is in use`));
      const origStart = readFileSync(`/proc/${t.pid}/stat`, 'utf8');
      t.kill();
      await t.waitExit();
      assert.match(preflight(store, c.id).items.find((i) => i.id === 'pid')!.reason, /is free: the restored process gets its original PID back/);
      const n = fileLines(out).length;
      const r = restore(store, c.id, { log: join(dir, 'restore.log') });
      pid = r.pid;
      assert.equal(r.samePid, true);
      assert.equal(r.pid, t.pid);
      assert.notEqual(readFileSync(`/proc/${r.pid}/stat`, 'utf8'), origStart, 'a new process under the old PID');
      await waitFor('the same-PID process to write', () => fileLines(out).length >= n + 3);
      const lines = fileLines(out).map(fields);
      for (let i = 1; i < lines.length; i++) assert.equal(lines[i]!.c, lines[i - 1]!.c! + 1, 'the counter continues without a gap or a repeat');
      assert.ok(lines.every((l) => l.pid === t.pid && l.ymm === 1));
    } finally {
      t.kill();
      killQuietly(pid);
    }
  });
});

test('a process killed right before its restore and not reaped yet still gets its PID back: the restore waits a moment for the zombie to go', async () => {
  await withStore(async (store, dir) => {
    const out = join(dir, 'fid.out');
    const late = await spawnUnderLateReaper([fidelity, out], dir);
    let pid: number | undefined;
    try {
      await waitFor('the target to write', () => fileLines(out).length >= 4);
      const c = checkpoint(store, late.pid, { mode: 'kill' });
      await waitFor('the original to be a zombie', () => isZombie(late.pid));
      late.reap();
      const r = restore(store, c.id, { log: join(dir, 'restore.log') });
      pid = r.pid;
      assert.equal(r.samePid, true, 'the zombie was reaped meanwhile, so its PID is given back');
      assert.equal(r.pid, late.pid);
      const n = fileLines(out).length;
      await waitFor('the restored process to write', () => fileLines(out).length >= n + 2);
    } finally {
      late.reaper.kill();
      killQuietly(pid);
    }
  });
});

test('kernel objects come back: eventfd count, timerfd, signalfd, epoll set, POSIX timer, shared anonymous pages (one read-only), inotify watch numbers, umask, rlimit, cwd', async () => {
  await withStore(async (store, dir) => {
    const out = join(dir, 'kinds.out');
    const t = spawnDetached([buildFixture('restore-kinds'), out], { cwd: dir });
    let pid: number | undefined;
    const line = (): Record<string, number> => fields((fileLines(out)[0] ?? '').trim());
    try {
      await waitFor('the target to run', () => (line().it ?? 0) >= 3 && (line().ptimer ?? 0) >= 1);
      const c = checkpoint(store, t.pid);
      const st = store.getState(c.id);
      assert.ok((st.timers.posix ?? []).length === 1, 'capture saw the POSIX timer');
      t.kill();
      await t.waitExit();
      const pf = preflight(store, c.id);
      assert.equal(pf.ok, true, JSON.stringify(pf.items.filter((i) => !i.ok)));
      const r = restore(store, c.id, { log: join(dir, 'restore.log'), samePid: false });
      pid = r.pid;
      await waitFor('the restored process to write', () => line().pid === r.pid);
      const start = line();
      process.kill(r.pid, 'SIGUSR2');
      await waitFor('timers to tick and SIGUSR2 through the signalfd', () => {
        const l = line();
        return l.sfd === 1 && l.efd === 5 && l.tfd! >= start.tfd! + 3 && l.ptimer! >= start.ptimer! + 3;
      });
      const l = line();
      assert.equal(l.umask, 27);
      assert.equal(l.nofile, 777);
      assert.equal(l.cwd, 1);
      assert.equal(l.shm, 1);
      assert.equal(l.ro, 1, 'read-only MAP_SHARED page contents restored');
      assert.equal(l.named, 1);
      // Only where the kernel has CONFIG_ANON_VMA_NAME (this VM's does not): the name comes back too.
      if (st.mappings.some((m) => m.path === '[anon:stasis-test]')) {
        assert.match(readFileSync(`/proc/${r.pid}/maps`, 'utf8'), /\[anon:stasis-test\]/, 'the anonymous mapping keeps its name');
      }
      const inoBefore = l.ino!;
      writeFileSync(join(dir, 'created-after-restore'), 'x');
      await waitFor('the inotify watch (wd 2) to see the new file', () => line().ino! > inoBefore);
      assert.ok(l.it! > start.it!);
    } finally {
      t.kill();
      killQuietly(pid);
    }
  });
});

test('calls the kernel restarts through a restart block (poll, nanosleep with a timeout, also already restarted once) go on after a restore, never fail with EINTR', async (tc) => {
  await withStore(async (store, dir) => {
    const out = join(dir, 'waiters.out');
    const t = spawnDetached([buildFixture('restore-waiters'), out, '300'], { cwd: dir });
    const restored: number[] = [];
    const other = openStore(join(dir, 'other'));
    try {
      await waitFor('the target to tick', () => fileLines(out).length >= 1);
      // Checkpoints in pairs: each lands in poll or in nanosleep (the program spends its time
      // there); the second of a pair, a few ms after the first released the target, lands in
      // restart_syscall: the kernel's restart of the call the first one's freeze interrupted.
      // The second goes to another store, which knows nothing of the first (in the same one the
      // capture puts the call back from it), so the restore meets restart_syscall itself.
      const ids: { s: Store; id: number }[] = [];
      for (let i = 0; i < 3; i++) {
        ids.push({ s: store, id: checkpoint(store, t.pid, { full: true }).id });
        ids.push({ s: other, id: checkpoint(other, t.pid, { full: true }).id });
        await sleep(120);
      }
      t.kill();
      await t.waitExit();
      const interrupted = ids.map(({ s, id }) => s.getState(id).threads[0]!).filter((th) => BigInt.asIntN(64, th.regs[REG.rax]!) === -516n);
      assert.ok(interrupted.length >= 1, 'at least one checkpoint caught the program inside a restartable wait');
      tc.diagnostic(`interrupted calls: ${interrupted.map((th) => String(th.regs[REG.orig_rax])).join(', ')} (219 = restart_syscall)`);
      assert.ok(interrupted.some((th) => th.regs[REG.orig_rax] === 219n), 'at least one checkpoint caught a call already restarted once');
      for (const [k, { s, id }] of ids.entries()) {
        const r = restore(s, id, { log: join(dir, `restore-${k}.log`), samePid: false });
        restored.push(r.pid);
        await waitFor(`restored ${r.pid} to tick`, () => fileLines(out).filter((l) => l.endsWith(` pid ${r.pid}`)).length >= 2);
        assert.ok(isAlive(r.pid), `restored ${r.pid} still runs`);
        assert.deepEqual(fileLines(out).filter((l) => l.startsWith('EINTR') || !l.startsWith('tick')), [], 'no call failed');
        killQuietly(r.pid);
      }
    } finally {
      t.kill();
      for (const p of restored) killQuietly(p);
      other.close();
    }
  });
});

test('a full checkpoint (--full, --kill) of a sleep an earlier checkpoint interrupted saves the sleep, not restart_syscall: the restored sleep goes on', async () => {
  await withStore(async (store, dir) => {
    const t = spawnDetached(['sleep', '1000'], { cwd: dir });
    let pid: number | undefined;
    try {
      await sleep(200);
      checkpoint(store, t.pid);
      const c = checkpoint(store, t.pid, { full: true, mode: 'kill' });
      assert.notEqual(store.getState(c.id).threads[0]!.regs[REG.orig_rax], 219n, 'the call itself, not restart_syscall');
      await t.waitExit();
      const r = restore(store, c.id, { log: join(dir, 'restore.log'), samePid: false });
      pid = r.pid;
      await sleep(1500);
      assert.ok(isAlive(r.pid), 'the restored sleep 1000 still sleeps');
    } finally {
      t.kill();
      killQuietly(pid);
    }
  });
});

for (const kind of ['pipe', 'socketpair'] as const) {
  test(`a ${kind} whose both ends the process holds comes back with the bytes waiting in it, its numbers, flags and close-on-exec bits`, async () => {
    await withStore(async (store, dir) => {
      const out = join(dir, `self-${kind}.out`);
      const t = spawnDetached([buildFixture('restore-selfpipe'), out, ...(kind === 'socketpair' ? ['socket'] : [])], { cwd: dir });
      let pid: number | undefined;
      try {
        await waitFor('the target to tick', () => fileLines(out).length >= 3);
        const c = checkpoint(store, t.pid);
        // (Descriptors the test runner itself passed down, such as a pipe at 251, are not the fixture's.)
        const chan = store.getState(c.id).fds.filter((f) => (f.kind === 'pipe' || f.kind === 'socket') && f.fd < 100);
        assert.deepEqual(chan.map((f) => f.fd).sort((a, b) => a - b), [5, 7, 9]);
        const waiting = (fd: number): number => chan.filter((f) => f.target === chan.find((x) => x.fd === fd)!.target)
          .map((f) => String(f.info?.[kind === 'pipe' ? 'pipeData' : 'socketData'] ?? '')).reduce((n, d) => n + Buffer.from(d, 'base64').length, 0);
        assert.equal(waiting(9), 5, 'the 5 bytes waiting at fd 9 are in the checkpoint');
        if (kind === 'socketpair') assert.equal(waiting(5), 3, 'and the 3 waiting at fd 5');
        assert.ok(fileLines(out).length >= 3 && isAlive(t.pid), 'the original was not disturbed');
        t.kill();
        await t.waitExit();
        const pre = preflight(store, c.id);
        assert.equal(pre.ok, true, JSON.stringify(pre.items.filter((i) => !i.ok)));
        const r = restore(store, c.id, { log: join(dir, `self-${kind}-restore.log`), samePid: false });
        pid = r.pid;
        await waitFor('restored rounds', () => fileLines(out).filter((l) => l.endsWith(` pid ${r.pid}`)).length >= 5);
        assert.deepEqual(fileLines(out).filter((l) => l.startsWith('BAD')), []);
        assert.ok(isAlive(r.pid));
        const fd = (n: number): string => readFileSync(`/proc/${r.pid}/fdinfo/${n}`, 'utf8');
        const flags = (n: number): number => parseInt(/^flags:\s+(\d+)/m.exec(fd(n))![1]!, 8);
        const link = (n: number): string => readlinkSync(`/proc/${r.pid}/fd/${n}`);
        assert.match(link(9), kind === 'pipe' ? /^pipe:\[\d+\]$/ : /^socket:\[\d+\]$/);
        if (kind === 'pipe') assert.equal(link(5), link(9));
        else assert.notEqual(link(5), link(9), 'two sockets, one per end');
        assert.equal(link(7), link(5));
        assert.equal(flags(9) & 0o4000, 0o4000, 'fd 9 O_NONBLOCK');
        if (kind === 'pipe') { assert.equal(flags(9) & 3, 0); assert.equal(flags(5) & 3, 1); }
        assert.equal(flags(7) & 0o2000000, 0o2000000, 'fd 7 close-on-exec');
        assert.equal(flags(5) & 0o2000000, 0, 'fd 5 not close-on-exec');
      } finally {
        t.kill();
        killQuietly(pid);
      }
    });
  });
}

test('a reader of a named FIFO is restored reading that FIFO again (opened by its path), not /dev/null', async () => {
  await withStore(async (store, dir) => {
    const fifo = join(dir, 'fifo');
    const out = join(dir, 'got');
    assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
    // Our own read-write end keeps the FIFO open: the reader never sees EOF while we hold it.
    const w = openSync(fifo, 'r+');
    const py = `import os\nfd = os.open(${JSON.stringify(fifo)}, os.O_RDONLY)\nwhile True:\n  b = os.read(fd, 100)\n  open(${JSON.stringify(out)}, "ab").write(b"[%d]" % os.getpid() + b)\n`;
    const t = spawnDetached(['python3', '-c', py], { cwd: dir });
    let pid: number | undefined;
    try {
      writeSync(w, 'one\n');
      await waitFor('the first line', () => existsSync(out) && readFileSync(out, 'utf8').includes('one'));
      const c = checkpoint(store, t.pid);
      const fds = preflight(store, c.id).items.find((i) => i.id === 'fds')!;
      assert.ok(fds.ok, fds.reason);
      assert.match(fds.reason, /fifo\) is opened again by its path/);
      t.kill();
      await t.waitExit();
      pid = restore(store, c.id, { log: join(dir, 'restore.log'), samePid: false }).pid;
      writeSync(w, 'two\n');
      await waitFor('the restored reader to read the FIFO', () => readFileSync(out, 'utf8').includes(`[${pid}]two`));
      assert.ok(isAlive(pid), 'still reading');
    } finally {
      t.kill();
      killQuietly(pid);
      closeSync(w);
    }
  });
});

test('network sockets: the pre-flight says which address each one needs and what to do while it is taken, and restores them once free', async () => {
  await withStore(async (store, dir) => {
    const py = [
      'import socket, time, os',
      'l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()',
      'u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u.bind(("::1", 0))',
      'x = socket.socket(socket.AF_UNIX)',
      `open(${JSON.stringify(join(dir, 'fds'))}, "w").write(f"{l.fileno()} {u.fileno()}")`,
      'time.sleep(1000)',
    ].join('\n');
    const t = spawnDetached(['python3', '-c', py], { cwd: dir });
    try {
      await waitFor('the sockets', () => existsSync(join(dir, 'fds')) && readFileSync(join(dir, 'fds'), 'utf8').includes(' '));
      const [lfd, ufd] = readFileSync(join(dir, 'fds'), 'utf8').split(' ').map(Number);
      const c = checkpoint(store, t.pid);
      const fds = preflight(store, c.id).items.find((i) => i.id === 'fds')!;
      assert.equal(fds.ok, false);
      // The original still holds the addresses: TCP and UDP sockets would come back, but not here and now.
      assert.match(fds.reason, new RegExp(`fd ${lfd} \\(listening TCP socket on 127\\.0\\.0\\.1:\\d+\\) cannot be bound on this machine now: EADDRINUSE`), fds.reason);
      assert.match(fds.reason, new RegExp(`fd ${ufd} \\(UDP socket on \\[::1\\]:\\d+\\) cannot be bound on this machine now: EADDRINUSE`), fds.reason);
      assert.match(fds.fix ?? '', /Stop what uses TCP port \d+ here/);
      t.kill();
      await t.waitExit();
      const after = preflight(store, c.id).items.find((i) => i.id === 'fds')!;
      // Once the addresses are free all three come back: the unconnected UNIX socket is made again too.
      assert.equal(after.ok, true, after.reason);
      assert.match(after.reason, new RegExp(`fd ${lfd}: TCP socket listening on 127\\.0\\.0\\.1:\\d+ again`));
      assert.match(after.reason, new RegExp(`fd ${ufd}: UDP socket on \\[::1\\]:\\d+ made again`));
      assert.match(after.reason, /UNIX stream socket made again/);
    } finally {
      t.kill();
    }
  });
});

test('a process checkpointed while stopped (SIGSTOP) stays stopped, and is restored stopped; SIGCONT resumes both', async () => {
  await withStore(async (store, dir) => {
    const t = spawnDetached([buildFixture('capture-sleeper'), join(dir, 'ready')], { cwd: dir });
    let pid: number | undefined;
    const state = (p: number): string => /^State:\s+(\S)/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'))![1]!;
    try {
      await waitFor('the sleeper to start', () => existsSync(join(dir, 'ready')));
      process.kill(t.pid, 'SIGSTOP');
      await waitFor('the stop', () => state(t.pid) === 'T');
      const c = checkpoint(store, t.pid);
      assert.equal(store.getState(c.id).stopped, true);
      assert.equal(state(t.pid), 'T', 'the checkpoint left it stopped');
      process.kill(t.pid, 'SIGCONT');
      await waitFor('the original to resume', () => state(t.pid) !== 'T');
      t.kill();
      await t.waitExit();
      const r = restore(store, c.id, { log: join(dir, 'stopped.log'), samePid: false });
      pid = r.pid;
      await waitFor('the restored process to be stopped', () => state(r.pid) === 'T');
      process.kill(r.pid, 'SIGCONT');
      await waitFor('the restored process to resume', () => state(r.pid) === 'S' || state(r.pid) === 'R');
      const running = checkpoint(store, r.pid);
      assert.equal(store.getState(running.id).stopped, undefined, 'a running process is not marked stopped');
    } finally {
      t.kill();
      killQuietly(pid);
    }
  });
});

const sleepCases: { name: string; second: CheckpointOptions; oneShot: boolean }[] = [
  { name: 'a pre-copy full and a tracked incremental', second: {}, oneShot: false },
  { name: 'a pre-copy full and a one-shot incremental (what two `stasis checkpoint` runs do)', second: {}, oneShot: true },
  { name: 'a pre-copy full and a fork-snapshot incremental', second: { snapshot: 'fork' }, oneShot: true },
];
for (const sc of sleepCases) {
  test(`/bin/sleep in the middle of its nanosleep comes back still sleeping, from ${sc.name} (every stop turns the wait into restart_syscall: the call is issued again, not ended)`, async () => {
    await withStore(async (store, dir) => {
      // /bin/sleep itself: one clock_nanosleep of 1000 s, and it exits as soon as that returns.
      const t = spawnDetached(['/bin/sleep', '1000'], { cwd: dir });
      const restored: number[] = [];
      try {
        await sleep(200);
        const full = checkpoint(store, t.pid, { full: true });
        await sleep(100);
        // A one-shot engine keeps nothing from the last checkpoint: only the store knows the call.
        if (sc.oneShot) closeTrackers();
        const inc = checkpoint(store, t.pid, sc.second);
        assert.equal(inc.mode, 'incremental');
        t.kill();
        await t.waitExit();
        for (const c of [full, inc]) {
          const th = store.getState(c.id).threads[0]!;
          // Stopped before this freeze: without the fix orig_rax is restart_syscall (219).
          assert.notEqual(th.regs[REG.orig_rax], 219n, `checkpoint ${c.id} (${c.freeze}, ${c.dirtyTracking}) keeps the interrupted call's number`);
          const r = restore(store, c.id, { log: join(dir, `sleep-${c.id}.log`), samePid: false });
          restored.push(r.pid);
          await sleep(300);
          assert.ok(isAlive(r.pid), `restored ${r.pid} from checkpoint ${c.id} still sleeps`);
          assert.equal(readFileSync(`/proc/${r.pid}/syscall`, 'utf8').split(' ')[0], '230', 'inside clock_nanosleep');
          killQuietly(r.pid);
        }
      } finally {
        t.kill();
        for (const p of restored) killQuietly(p);
      }
    });
  });
}

test('a working directory removed while the process was in it: the pre-flight says it was gone at checkpoint time, not "PATH (deleted) no longer exists"', async () => {
  await withStore(async (store, dir) => {
    const gone = join(dir, 'gone');
    mkdirSync(gone);
    const t = spawnDetached(['sleep', '60'], { cwd: gone });
    try {
      rmSync(gone, { recursive: true });
      await waitFor('the cwd to read as deleted', () => readlinkSync(`/proc/${t.pid}/cwd`).endsWith(' (deleted)'));
      const c = checkpoint(store, t.pid);
      const item = preflight(store, c.id).items.find((i) => i.id === 'cwd')!;
      assert.equal(item.ok, false);
      assert.equal(item.reason, `The working directory ${gone} had already been deleted when the checkpoint was taken (the process was running in a removed directory).`);
      assert.doesNotMatch(item.fix ?? '', /\(deleted\)/);
    } finally {
      t.kill();
    }
  });
});
