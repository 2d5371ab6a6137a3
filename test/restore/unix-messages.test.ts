/**
 * Messages Stasis cannot save yet used to vanish in a restore that went on without a word: a
 * descriptor in flight over a stream socketpair (SCM_RIGHTS) came back as its bare byte, and the
 * datagrams waiting in a datagram socketpair were gone. Both are now refused by the pre-flight.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { checkpoint, closeTrackers } from '../../electron/engine/capture';
import { preflight, restore } from '../../electron/engine/restore';
import { withStore } from './helpers';
import { startZdtm } from './zdtm';

const unixmsg = buildFixture('restore-unixmsg');

test('a descriptor in flight over a socketpair and queued datagrams are refused in pre-flight, each named', async () => {
  await withStore(async (store, dir) => {
    const t = await startZdtm(unixmsg, dir);
    try {
      const c = checkpoint(store, t.pid, { mode: 'kill' });
      await t.waitExit();
      const fds = preflight(store, c.id).items.find((i) => i.id === 'fds')!;
      assert.equal(fds.ok, false);
      assert.match(fds.reason, /carry descriptors or credentials \(SCM_RIGHTS, SCM_CREDENTIALS\)/);
      assert.match(fds.reason, /UNIX datagram socketpair had messages waiting \(the next one 2 bytes\)/);
      assert.match(fds.fix!, /when those messages have been read/);
      assert.throws(() => restore(store, c.id, { log: join(dir, 'r.log') }), /cannot be restored/);
    } finally {
      t.kill();
      closeTrackers();
    }
  });
});
