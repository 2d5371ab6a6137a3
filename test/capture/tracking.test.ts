/**
 * The userfaultfds pre-copy keeps between checkpoints (capture/tracking.ts): one per process, and
 * let go of when the process exits, when idle, or when the engine closes them; letting go leaves no
 * registration in the process.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached } from '../helpers/spawn';
import { checkpoint, closeTrackers } from '../../electron/engine/capture';
import { keepTracker, prune, takeTracker, trackerCount } from '../../electron/engine/capture/tracking';
import { probeKernelFeatures } from '../../electron/engine/native';
import { readBasics } from '../../electron/engine/tracer';
import { tempDir, tempStore, waitForFile } from './common';

function registered(pid: number): boolean {
  return /^VmFlags:.*\buw\b/m.test(readFileSync(`/proc/${pid}/smaps`, 'utf8'));
}

test('one tracker per process, closed when idle, when the process exits, or on closeTrackers', { skip: !probeKernelFeatures().uffdWpAsync }, async () => {
  closeTrackers();
  const side = tempDir('capture-tracking');
  const st = tempStore();
  const other = tempStore();
  const target = spawnDetached([buildFixture('capture-pattern'), side.dir, '64']);
  try {
    await waitForFile(join(side.dir, 'info.txt'));
    checkpoint(st.store, target.pid);
    assert.equal(trackerCount(), 1);
    assert.ok(registered(target.pid), 'kept registered for the next checkpoint');
    // A checkpoint into another store replaces it (never two userfaultfds on one process).
    const r = checkpoint(other.store, target.pid);
    assert.equal(r.freeze, 'pre-copy');
    assert.equal(trackerCount(), 1);
    prune(0); // idle for 0 ms: closed
    assert.equal(trackerCount(), 0);
    assert.ok(!registered(target.pid), 'nothing left registered once let go');
    checkpoint(st.store, target.pid);
    assert.equal(trackerCount(), 1);
    target.kill();
    await target.waitExit(5000);
    prune();
    assert.equal(trackerCount(), 0, 'closed once the process is gone');
    const again = spawnDetached([buildFixture('capture-pattern'), side.dir, '64']);
    try {
      await waitForFile(join(side.dir, 'info.txt'));
      checkpoint(st.store, again.pid);
      closeTrackers();
      assert.equal(trackerCount(), 0);
      assert.ok(!registered(again.pid));
    } finally {
      again.kill();
    }
  } finally {
    target.kill();
    st.cleanup();
    other.cleanup();
    side.cleanup();
  }
});

test('a kept tracker handed to the next checkpoint carries no frozen time: its brief freeze was the earlier checkpoint\'s', { skip: !probeKernelFeatures().uffdWpAsync }, async () => {
  closeTrackers();
  const side = tempDir('capture-tracking-frozen');
  const st = tempStore();
  const target = spawnDetached([buildFixture('capture-pattern'), side.dir, '64']);
  try {
    await waitForFile(join(side.dir, 'info.txt'));
    const first = checkpoint(st.store, target.pid);
    assert.equal(first.freeze, 'pre-copy');
    const kept = takeTracker(st.store.dir, target.pid, readBasics(target.pid)!.startTime, first.id);
    assert.ok(kept, 'the tracker was kept for the checkpoint after #' + first.id);
    assert.equal(kept.frozenMs, 0);
    keepTracker(st.store.dir, kept);
  } finally {
    closeTrackers();
    target.kill();
    st.cleanup();
    side.cleanup();
  }
});
