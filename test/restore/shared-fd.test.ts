/**
 * One open file description held by two fds (dup2) comes back as one: capture marks it with kcmp,
 * restore dups it, so a read through one fd moves the other and status flags are shared; a second
 * open of the same file stays separate.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached } from '../helpers/spawn';
import { checkpoint, closeTrackers } from '../../electron/engine/capture';
import { restore } from '../../electron/engine/restore';
import { fields, fileLines, killQuietly, waitFor, withStore } from './helpers';

const fixture = buildFixture('restore-shared-fd');

test('fds sharing one open file description share offset and flags after restore; a separate open does not', async () => {
  await withStore(async (store, dir) => {
    const data = join(dir, 'data.txt');
    const out = join(dir, 'out.txt');
    writeFileSync(data, 'abcdefghijklmnopqrstuvwxyz');
    const t = spawnDetached([fixture, data, out], { cwd: dir });
    let pid: number | undefined;
    try {
      await waitFor('the fixture to start', () => fileLines(out).some((l) => l.startsWith('ready')));
      process.kill(t.pid, 'SIGUSR1');
      await waitFor('the original check', () => fileLines(out).some((l) => l.startsWith(`pid=${t.pid} `)));
      assert.deepEqual(fields(fileLines(out).at(-1)!), { pid: t.pid, shared: 1, separate: 1, flags: 1 }, 'the kernel behaves as the fixture expects');
      const c = checkpoint(store, t.pid);
      const fds = store.getState(c.id).fds;
      assert.equal(fds.find((f) => f.fd === 5)?.sharesWith, 3, 'fd 5 holds fd 3\'s description');
      assert.equal(fds.find((f) => f.fd === 4)?.sharesWith, undefined, 'fd 4 is its own open');
      t.kill();
      await t.waitExit();
      const r = restore(store, c.id, { log: join(dir, 'restore.log'), samePid: false });
      pid = r.pid;
      process.kill(r.pid, 'SIGUSR1');
      await waitFor('the restored check', () => fileLines(out).some((l) => l.startsWith(`pid=${r.pid} `)));
      assert.deepEqual(fields(fileLines(out).at(-1)!), { pid: r.pid, shared: 1, separate: 1, flags: 1 });
    } finally {
      t.kill();
      killQuietly(pid);
      closeTrackers();
    }
  });
});
