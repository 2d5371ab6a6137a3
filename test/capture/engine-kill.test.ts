/**
 * Killing the engine in the middle of a capture must leave the target running and untraced
 * (TracerPid 0), whether it was frozen throughout or already resumed from a snapshot; the next
 * checkpoint works and cleans up what the dead engine left (the snapshot child's zombie).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached, type DetachedProcess } from '../helpers/spawn';
import { checkpoint, closeTrackers } from '../../electron/engine/capture';
import { openStore } from '../../electron/engine/store';
import { probeKernelFeatures } from '../../electron/engine/native';
import { tempDir, waitFor, waitForFile, procStatus, readInfo } from './common';

const root = new URL('../..', import.meta.url).pathname;
const script = new URL('./run-checkpoint.ts', import.meta.url).pathname;

/** Whether any mapping of pid is registered with a userfaultfd for write-protect (VmFlags "uw"). */
function uffdRegistered(pid: number): boolean {
  return /^VmFlags:.*\buw\b/m.test(readFileSync(`/proc/${pid}/smaps`, 'utf8'));
}

function childrenOf(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
}

describe('engine killed mid-capture', () => {
  let side: ReturnType<typeof tempDir>;
  let target: DetachedProcess;
  before(async () => {
    side = tempDir('capture-enginekill');
    target = spawnDetached([buildFixture('capture-pattern'), side.dir, '2000']);
    await waitForFile(join(side.dir, 'info.txt'));
  });
  after(() => {
    target.kill();
    side.cleanup();
  });

  // pre-copy hangs while it reads memory live, its userfaultfd registered on the target.
  const modes = [
    { mode: 'all-threads', snapshot: 'never', at: 'pages' },
    { mode: 'snapshot', snapshot: 'fork', at: 'pages' },
    { mode: 'pre-copy', snapshot: 'precopy', at: 'live', skip: !probeKernelFeatures().uffdWpAsync },
  ] as const;
  for (const { mode, snapshot, at, ...rest } of modes) {
    test(`${mode}: the target runs on untraced`, { skip: 'skip' in rest && rest.skip }, async () => {
      const storeDir = join(side.dir, `store-${mode}`);
      const marker = join(side.dir, `hang-${mode}`);
      const args = ['--import', 'tsx', script, storeDir, String(target.pid), '--snapshot', snapshot, '--hang-at', at, marker];
      const engine = spawn(process.execPath, args, { cwd: root, stdio: 'ignore' });
      const exited = new Promise((res) => engine.on('exit', res));
      await waitForFile(marker, 30_000);
      if (mode === 'all-threads') assert.equal(procStatus(target.pid)!.tracerPid, engine.pid, 'frozen by the engine while it hangs');
      if (mode === 'pre-copy') assert.ok(uffdRegistered(target.pid), 'memory registered with the engine\'s userfaultfd while it hangs');
      engine.kill('SIGKILL');
      await exited;
      await waitFor('TracerPid 0', () => procStatus(target.pid)?.tracerPid === 0);
      const ticks = readInfo(side.dir).ticks;
      await waitFor('the target to make progress', () => readInfo(side.dir).ticks > ticks + 2);
      assert.ok(target.alive());
      assert.doesNotMatch(procStatus(target.pid)!.state, /[tT]/);
      // The engine's userfaultfd died with it: nothing of the target stays registered.
      await waitFor('no uffd registration', () => !uffdRegistered(target.pid));

      // The next checkpoint works, and leaves no child of the target behind (it reaps a leftover zombie).
      const store = openStore(storeDir);
      try {
        const r = checkpoint(store, target.pid);
        assert.ok(store.get(r.id));
        if (mode === 'snapshot') assert.ok(r.warnings.some((w) => w.includes('reaped a snapshot child')), JSON.stringify(r.warnings));
      } finally {
        store.close();
      }
      // That checkpoint kept its userfaultfd for the next one (tracking.ts): as when this engine stops.
      closeTrackers();
      assert.ok(!uffdRegistered(target.pid), 'no registration left once the engine lets go');
      assert.deepEqual(childrenOf(target.pid), []);
      assert.equal(procStatus(target.pid)!.tracerPid, 0);
    });
  }
});
