/**
 * A program whose executable was deleted while it ran (an upgrade removed it) was refused by the
 * `exe` pre-flight item. Its file comes back from the bytes saved with its mapping (like a deleted
 * library, within the ghost-file limit), deleted again, and /proc/PID/exe names it as before.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { checkpoint, closeTrackers } from '../../electron/engine/capture';
import { preflight } from '../../electron/engine/restore';
import { runZdtm, startZdtm } from './zdtm';
import { withStore } from './helpers';

const deletedExe = buildFixture('restore-deleted-exe');

test('a deleted executable comes back from the checkpoint, deleted again, with /proc/PID/exe as before', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, deletedExe);
    assert.deepEqual(r.lines, ['done pass']);
    assert.equal(store.getState(r.checkpointId).exeDeleted, true);
  });
});

test('a deleted executable above the ghost-file limit is refused, naming the limit to use', async () => {
  await withStore(async (store, dir) => {
    const t = await startZdtm(deletedExe, dir);
    try {
      const c = checkpoint(store, t.pid, { mode: 'kill', ghostLimit: 1024 });
      await t.waitExit();
      const exe = preflight(store, c.id).items.find((i) => i.id === 'exe')!;
      assert.equal(exe.ok, false);
      assert.match(exe.reason, new RegExp(`${join(dir, 'exe-copy')} was already deleted at checkpoint time and is \\d+ bytes, above the ghost-file limit of 1024 bytes`));
      assert.match(exe.fix!, /--ghost-limit \d+/);
    } finally {
      t.kill();
      closeTrackers();
    }
  });
});
