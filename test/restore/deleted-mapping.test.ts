/**
 * A file deleted while mapped privately (a library an upgrade replaced under a running program) was
 * refused: its unmodified pages live only in the deleted file. Its bytes are now saved (up to the
 * ghost-file limit) and the file is recreated, unlinked, to map from; above the limit the pre-flight
 * refuses it with the limit to use.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildFixture } from '../helpers/fixtures';
import { checkpoint, closeTrackers } from '../../electron/engine/capture';
import { preflight } from '../../electron/engine/restore';
import { withStore } from './helpers';
import { runZdtm, startZdtm } from './zdtm';

const deletedMap = buildFixture('restore-deleted-map');

test('a privately mapped file deleted before the checkpoint comes back with its own and its changed pages', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, deletedMap);
    assert.deepEqual(r.lines, ['done pass']);
    assert.match(preflight(store, r.checkpointId).items.find((i) => i.id === 'mapped-files')!.reason, /recreated from the checkpoint: .*libfake\.so\.1/);
  });
});

test('above the ghost-file limit the deleted mapped file is refused, naming the limit to use', async () => {
  await withStore(async (store, dir) => {
    const t = await startZdtm(deletedMap, dir);
    try {
      const c = checkpoint(store, t.pid, { mode: 'kill', ghostLimit: 100 });
      await t.waitExit();
      const it = preflight(store, c.id).items.find((i) => i.id === 'mapped-files')!;
      assert.equal(it.ok, false);
      assert.match(it.reason, /libfake\.so\.1 was already deleted at checkpoint time and is 12288 bytes, above the ghost-file limit of 100 bytes/);
      assert.match(it.fix!, /--ghost-limit 12288/);
    } finally {
      t.kill();
      closeTrackers();
    }
  });
});
