/**
 * inotify events waiting unread at the checkpoint used to vanish: the restored program never saw
 * them (CRIU 4.1.1 drops them too). Nothing can queue them again, so the pre-flight refuses it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { checkpoint, closeTrackers } from '../../electron/engine/capture';
import { preflight, restore } from '../../electron/engine/restore';
import { withStore } from './helpers';
import { startZdtm } from './zdtm';

const inoqueue = buildFixture('restore-inoqueue');

test('unread inotify events are refused in pre-flight, with the bytes waiting', async () => {
  await withStore(async (store, dir) => {
    const t = await startZdtm(inoqueue, dir);
    try {
      const c = checkpoint(store, t.pid, { mode: 'kill' });
      await t.waitExit();
      const fds = preflight(store, c.id).items.find((i) => i.id === 'fds')!;
      assert.equal(fds.ok, false);
      // Three IN_CREATE events with names "f0".."f2" (16 bytes of header + 16 of padded name each).
      assert.match(fds.reason, /fd 3 \(inotify\): 96 bytes of events were waiting unread/);
      assert.match(fds.fix!, /once the program has read its inotify events/);
      assert.throws(() => restore(store, c.id, { log: join(dir, 'r.log') }), /cannot be restored/);
    } finally {
      t.kill();
      closeTrackers();
    }
  });
});
