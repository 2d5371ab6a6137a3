/**
 * System V shared memory used to come back as a private copy of its pages: two attaches of one
 * segment no longer shared, and the segment id named memory the process no longer saw. Now the
 * restore attaches the live segment again, and the pre-flight refuses one that was removed.
 * Semaphores and message queues live in the kernel, not in the process: they are just still there.
 * POSIX shm still linked in /dev/shm is a shared file mapping like any other.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { checkpoint, closeTrackers } from '../../electron/engine/capture';
import { preflight, restore } from '../../electron/engine/restore';
import { fileLines, withStore } from './helpers';
import { runZdtm, startZdtm } from './zdtm';

const ipc = buildFixture('restore-ipc');

/** Removes the fixture's SysV objects (named in its "ids" line) in case it did not get to. */
function removeIds(out: string): void {
  const ids = fileLines(out).find((l) => l.startsWith('ids '));
  const m = ids ? /shm=(\d+) sem=(\d+) msg=(\d+)/.exec(ids) : null;
  if (m) spawnSync('ipcrm', ['-m', m[1]!, '-s', m[2]!, '-q', m[3]!], { stdio: 'ignore' });
}

test('SysV shm (attached twice), semaphores and a message queue, and POSIX shm in /dev/shm come back as the same objects', async () => {
  await withStore(async (store, dir) => {
    try {
      const r = await runZdtm(store, dir, ipc);
      assert.deepEqual(r.lines.filter((l) => !l.startsWith('ids ')), ['done pass']);
    } finally {
      removeIds(join(dir, 'zdtm.out'));
    }
  });
});

test('a SysV segment removed since the checkpoint is refused in pre-flight, naming it', async () => {
  await withStore(async (store, dir) => {
    const t = await startZdtm(ipc, dir, ['sysv']);
    try {
      const c = checkpoint(store, t.pid, { mode: 'kill' });
      await t.waitExit();
      const shm = store.getState(c.id).mappings.find((m) => m.path.startsWith('/SYSV'))!;
      assert.equal(spawnSync('ipcrm', ['-m', String(shm.inode)]).status, 0);
      const it = preflight(store, c.id).items.find((i) => i.id === 'sysv-shm')!;
      assert.equal(it.ok, false);
      assert.match(it.reason, new RegExp(`segment ${shm.inode} \\(key 0x00000000\\) attached at ${shm.start.toString(16)} no longer exists`));
      assert.throws(() => restore(store, c.id, { log: join(dir, 'r.log') }), /cannot be restored/);
    } finally {
      t.kill();
      removeIds(t.out);
      closeTrackers();
    }
  });
});
