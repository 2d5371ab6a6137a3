/**
 * A process in namespaces of its own came back in the engine's, silently: with the machine's host
 * name, or without the System V objects of its own IPC namespace. Its own UTS namespace is now made
 * again with its names (and the machine's name is left alone); an own IPC namespace is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { buildFixture } from '../helpers/fixtures';
import { checkpoint, closeTrackers } from '../../electron/engine/capture';
import { preflight } from '../../electron/engine/restore';
import { runZdtm, startZdtm } from './zdtm';
import { withStore } from './helpers';

const namespaces = buildFixture('restore-namespaces');

test('a process with its own UTS namespace gets it back with its host and domain names', async () => {
  const machine = hostname();
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, namespaces, { args: ['uts'] });
    assert.deepEqual(r.lines, ['done pass']);
    assert.deepEqual(store.getState(r.checkpointId).namespaces, { kinds: ['uts'], uts: { nodename: 'zdtm-host', domainname: 'zdtm-domain' } });
  });
  assert.equal(hostname(), machine);
});

test('a process with its own IPC namespace is refused in pre-flight, naming it', async () => {
  await withStore(async (store, dir) => {
    const t = await startZdtm(namespaces, dir, ['ipc']);
    try {
      const c = checkpoint(store, t.pid, { mode: 'kill' });
      await t.waitExit();
      const it = preflight(store, c.id).items.find((i) => i.id === 'namespaces')!;
      assert.equal(it.ok, false);
      assert.match(it.reason, /a namespace of its own \(IPC \(System V objects, POSIX message queues\)\)/);
      assert.match(it.fix!, /nsenter/);
    } finally {
      t.kill();
      closeTrackers();
    }
  });
});
