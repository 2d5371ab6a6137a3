/**
 * Each refusal of capture, with real processes: gone, zombie, kernel thread, PID reused, already
 * traced, permission denied (another user), and gone in the middle of a capture. Every case must
 * leave the store without a checkpoint and the target (if any) running untraced.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { buildFixture } from '../helpers/fixtures';
import { procState, spawnDetached, type DetachedProcess } from '../helpers/spawn';
import { checkpoint } from '../../electron/engine/capture';
import { freeze } from '../../electron/engine/tracer';
import { StasisError } from '../../shared/errors';
import { tempDir, tempStore, waitForFile, procStatus } from './common';

function killAndWaitDead(pid: number): void {
  process.kill(pid, 'SIGKILL');
  const end = Date.now() + 5000;
  for (;;) {
    const state = procState(pid);
    if (state === null || state === 'Z' || state === 'X' || Date.now() > end) return;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
  }
}

function rejects(f: () => unknown, code: string, re: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof StasisError, `a StasisError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, re);
    return true;
  });
}

describe('capture refuses with a clear error and writes nothing', () => {
  let st: ReturnType<typeof tempStore>;
  let sleeper: DetachedProcess;
  before(() => {
    st = tempStore();
    sleeper = spawnDetached([buildFixture('capture-sleeper')]);
  });
  after(() => {
    sleeper.kill();
    st.cleanup();
  });
  const nothingWritten = (): void => assert.equal(st.store.list().length, 0);

  test('process gone', async () => {
    const p = spawnDetached([buildFixture('capture-sleeper'), '/dev/null', '0']);
    await p.waitExit();
    rejects(() => checkpoint(st.store, p.pid), 'PROCESS_GONE', /does not exist|zombie/);
    nothingWritten();
  });

  test('zombie', async () => {
    const side = tempDir('capture-zombie');
    const parent = spawnDetached([buildFixture('capture-zombie'), join(side.dir, 'z')]);
    try {
      const z = Number((await waitForFile(join(side.dir, 'z'))).trim());
      rejects(() => checkpoint(st.store, z), 'PROCESS_GONE', /zombie/);
      nothingWritten();
    } finally {
      parent.kill();
      side.cleanup();
    }
  });

  test('kernel thread', () => {
    rejects(() => checkpoint(st.store, 2), 'UNSUPPORTED', /kernel thread/);
    nothingWritten();
  });

  test('PID reused (start time differs)', () => {
    rejects(() => checkpoint(st.store, sleeper.pid, { expectStartTime: '1' }), 'PROCESS_GONE', /reused/);
    nothingWritten();
    assert.equal(procStatus(sleeper.pid)!.tracerPid, 0);
  });

  test('already traced by someone else', () => {
    const t = freeze(sleeper.pid);
    try {
      rejects(() => checkpoint(st.store, sleeper.pid), 'ALREADY_TRACED', new RegExp(`traced by process ${process.pid}`));
    } finally {
      t.release();
    }
    nothingWritten();
    assert.equal(procStatus(sleeper.pid)!.tracerPid, 0);
  });

  test('gone in the middle of a capture (all threads frozen)', () => {
    const victim = spawnDetached([buildFixture('capture-sleeper')]);
    try {
      rejects(
        // Killed and dead (its memory gone) before the pages are read: a SIGKILL alone takes effect
        // a moment later, and a fast read could still copy the memory of the frozen process.
        () => checkpoint(st.store, victim.pid, { snapshot: 'never', onPhase: (p) => { if (p === 'pages') killAndWaitDead(victim.pid); } }),
        'PROCESS_GONE',
        /exited|changed|gone/,
      );
      nothingWritten();
    } finally {
      victim.kill();
    }
  });

  test('cancelled: at any phase up to the commit, nothing is saved and the target runs on untraced', () => {
    for (const at of ['frozen', 'resumed', 'pages', 'commit'] as const) {
      const controller = new AbortController();
      rejects(
        () => checkpoint(st.store, sleeper.pid, { signal: controller.signal, onPhase: (p) => { if (p === at) controller.abort(); } }),
        'CANCELLED',
        /cancelled; nothing was saved/,
      );
      nothingWritten();
      const ps = procStatus(sleeper.pid);
      assert.equal(ps?.tracerPid, 0, `untraced after a cancel at ${at}`);
      assert.match(ps?.state ?? '', /[SR]/, `running after a cancel at ${at}`);
    }
  });

  test('permission denied: another user cannot checkpoint our process', () => {
    const tmp = tempDir('capture-perm');
    try {
      chmodSync(tmp.dir, 0o777);
      const storeDir = join(tmp.dir, 'store');
      const script = new URL('./run-checkpoint.ts', import.meta.url).pathname;
      const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--import', 'tsx', script, storeDir, String(sleeper.pid)], {
        cwd: new URL('../..', import.meta.url).pathname,
        env: { ...process.env, HOME: tmp.dir, TMPDIR: tmp.dir },
        encoding: 'utf8',
        timeout: 30_000,
      });
      const out = JSON.parse(r.stdout) as { error?: { code: string; message: string } };
      assert.ok(out.error, `expected an error, got ${r.stdout} ${r.stderr}`);
      assert.equal(out.error.code, 'PERMISSION_DENIED', out.error.message);
      assert.match(out.error.message, /another user|Yama|root/);
      assert.equal(procStatus(sleeper.pid)!.tracerPid, 0);
      assert.ok(sleeper.alive());
    } finally {
      tmp.cleanup();
    }
  });
});
