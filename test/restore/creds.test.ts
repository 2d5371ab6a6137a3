/**
 * Credentials: a real process that dropped to another user (nobody, 65534) is checkpointed by root;
 * restore must refuse it before anything starts instead of bringing it back as root. A root process
 * that narrowed its capabilities comes back with exactly them; one under seccomp is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnDetached } from '../helpers/spawn';
import { checkpoint, closeTrackers } from '../../electron/engine/capture';
import { preflight, restore } from '../../electron/engine/restore';
import { StasisError } from '../../shared/errors';
import { fileLines, killQuietly, liveChildren, waitFor, withStore } from './helpers';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';

const root = process.geteuid?.() === 0;

test('a process running as another user is refused by pre-flight and restore, never restored as root', { skip: !root && 'needs root' }, async () => {
  // python3 drops all ids to nobody itself, then waits: no setuid helper in between.
  const t = spawnDetached(['python3', '-c', 'import os,time\nos.setgroups([])\nos.setresgid(65534,65534,65534)\nos.setresuid(65534,65534,65534)\nprint("ready",flush=True)\ntime.sleep(60)']);
  try {
    await waitFor('the target to drop to nobody', () => /^Uid:\s+65534\s/m.test(readFileSync(`/proc/${t.pid}/status`, 'utf8')));
    await withStore(async (store) => {
      const c = checkpoint(store, t.pid);
      const pf = preflight(store, c.id);
      const it = pf.items.find((i) => i.id === 'credentials')!;
      assert.equal(it.ok, false);
      assert.match(it.reason, /ran as uids 65534\/65534\/65534\/65534, gids 65534\/65534\/65534\/65534 \(real\/effective\/saved\/fs\); restored now it would run as uids 0\/0\/0\/0, gids 0\/0\/0\/0/);
      assert.match(it.fix!, /uid 65534 and gid 65534/);
      const before = liveChildren().length;
      assert.throws(() => restore(store, c.id), (e: unknown) => e instanceof StasisError && e.code === 'PREFLIGHT_FAILED' && /uids 65534\//.test(e.message));
      assert.equal(liveChildren().length, before, 'nothing was started');
    });
  } finally {
    t.kill();
    closeTrackers();
  }
});

const capsFixture = buildFixture('restore-caps');

test('a root process that narrowed its capabilities (all five sets, in two threads) and set no_new_privs comes back with exactly them, not with root\'s full set', { skip: !root && 'needs root' }, async () => {
  await withStore(async (store, dir) => {
    const out = join(dir, 'out.txt');
    const t = spawnDetached([capsFixture, 'drop'], { log: out });
    let pid = 0;
    try {
      await waitFor('the target to narrow its capabilities', () => fileLines(out).includes('ready'));
      const c = checkpoint(store, t.pid, { mode: 'kill' });
      await t.waitExit();
      const pf = preflight(store, c.id);
      const it = pf.items.find((i) => i.id === 'capabilities')!;
      assert.equal(it.ok, true, it.reason);
      assert.match(it.reason, /narrower than Stasis's own/);
      const r = restore(store, c.id, { stdout: out, stderr: out });
      pid = r.pid;
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      assert.match(status, /^CapEff:\s+000001fffcffdfff$/m, 'NET_RAW and SYS_TIME stay dropped');
      assert.match(status, /^CapBnd:\s+000001fff6ffffff$/m, 'MKNOD stays out of the bounding set');
      assert.match(status, /^CapAmb:\s+0000000000000400$/m);
      assert.match(status, /^NoNewPrivs:\s+1$/m);
      process.kill(pid, 'SIGUSR1');
      await waitFor('the restored process\'s own check', () => fileLines(out).some((l) => l.startsWith('same=')), 10_000);
      assert.ok(fileLines(out).includes('same=1 thread=1 mknod=0'), fileLines(out).join('\n'));
    } finally {
      t.kill();
      killQuietly(pid);
      closeTrackers();
    }
  });
});

test('a process under a seccomp filter is refused by pre-flight: it would come back without its sandbox', { skip: !root && 'needs root' }, async () => {
  await withStore(async (store, dir) => {
    const out = join(dir, 'out.txt');
    const t = spawnDetached([capsFixture, 'seccomp'], { log: out });
    try {
      await waitFor('the target to install its filter', () => fileLines(out).includes('ready'));
      const c = checkpoint(store, t.pid);
      const it = preflight(store, c.id).items.find((i) => i.id === 'capabilities')!;
      assert.equal(it.ok, false);
      assert.match(it.reason, /ran under seccomp \(a filter\), which Stasis cannot install again/);
      assert.throws(() => restore(store, c.id), (e: unknown) => e instanceof StasisError && e.code === 'PREFLIGHT_FAILED' && /seccomp/.test(e.message));
    } finally {
      t.kill();
      closeTrackers();
    }
  });
});
