/**
 * Credentials: a real process that dropped to another user (nobody, 65534) is checkpointed by root;
 * restore must refuse it before anything starts instead of bringing it back as root.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnDetached } from '../helpers/spawn';
import { checkpoint, closeTrackers } from '../../electron/engine/capture';
import { preflight, restore } from '../../electron/engine/restore';
import { StasisError } from '../../shared/errors';
import { liveChildren, waitFor, withStore } from './helpers';
import { readFileSync } from 'node:fs';

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
