/**
 * A family restored as a tree: a child in its own process group, a vfork()+exec child, a child
 * that stopped itself (it must come back stopped: the SIGSTOP used to be sent after the detach, and
 * the child sometimes ran on to its exit first), and an exited child with SIGCHLD pending.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildFixture } from '../helpers/fixtures';
import { withStore } from './helpers';
import { runZdtm } from './zdtm';

const proctree = buildFixture('restore-proctree');

test('process groups, a vfork+exec child, a stopped child that stays stopped and a pending SIGCHLD with its zombie come back', async () => {
  for (let round = 0; round < 2; round++) {
    await withStore(async (store, dir) => {
      const r = await runZdtm(store, dir, proctree, { tree: true });
      assert.deepEqual(r.lines, ['done pass'], `round ${round}`);
    });
  }
});
