/**
 * Breadth coverage of kinds that already come back (or are refused by name), so they stay that way:
 * futexes (a PI mutex with a waiter in FUTEX_LOCK_PI, a robust mutex whose owner died, a pthread
 * barrier), and UNIX stream sockets bound to a path (a listening socket with an accepted connection
 * and one in its backlog: refused in pre-flight, each named, never restored half-way). And a
 * pseudo-terminal pair the program made (as script or tmux do): it used to come back as a new
 * /dev/ptmx cut off from its /dev/pts side (the program hung reading it), then was refused by
 * name; now it comes back (restore/ptys.ts, more in ptys.test.ts).
 * A POSIX message queue was refused ("/NAME no longer exists": looked up on the root file system);
 * it is opened again by name while it exists, and refused once unlinked (it was taken for a deleted
 * file: a plain file holding the queue's status text would have come back).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildFixture } from '../helpers/fixtures';
import { checkpoint, closeTrackers } from '../../electron/engine/capture';
import { preflight } from '../../electron/engine/restore';
import { runZdtm, startZdtm } from './zdtm';
import { withStore } from './helpers';

const futexes = buildFixture('restore-futexes');
const unixlisten = buildFixture('restore-unixlisten');
const ptymq = buildFixture('restore-ptymq');

test('PI futex with a waiter, robust futex of a dead owner and a barrier come back', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, futexes);
    assert.deepEqual(r.lines, ['done pass']);
  });
});

test('listening UNIX sockets (a path with its mode, an abstract name with SO_PASSCRED) come back and accept; an accepted connection inside the process keeps its bytes', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, unixlisten, { args: ['clean'] });
    assert.deepEqual(r.lines, ['done pass']);
  });
});

test('a UNIX socket path or abstract name still bound (the original runs) is refused; once it is gone, its stale socket file is no obstacle', async () => {
  await withStore(async (store, dir) => {
    const t = await startZdtm(unixlisten, dir, ['clean']);
    try {
      const c = checkpoint(store, t.pid, { mode: 'leave-running' });
      const busy = preflight(store, c.id).items.find((i) => i.id === 'fds')!;
      assert.equal(busy.ok, false);
      assert.match(busy.reason, /fd 3 \(listening UNIX stream socket on \/.*\/sock\) cannot be bound on this machine now: EADDRINUSE \(a socket is bound to/);
      assert.match(busy.reason, /\(listening UNIX stream socket on @stasis-abstract-\d+\) cannot be bound on this machine now: EADDRINUSE/);
      t.kill();
      await t.waitExit();
      const free = preflight(store, c.id).items.find((i) => i.id === 'fds')!;
      assert.equal(free.ok, true, free.reason);
      assert.match(free.reason, /UNIX stream socket listening on \/.*\/sock again/);
    } finally {
      t.kill();
      closeTrackers();
    }
  });
});

test('a listening UNIX socket with a connection waiting to be accepted is refused in pre-flight, each socket named', async () => {
  await withStore(async (store, dir) => {
    const t = await startZdtm(unixlisten, dir);
    try {
      const c = checkpoint(store, t.pid, { mode: 'kill' });
      await t.waitExit();
      const fds = preflight(store, c.id).items.find((i) => i.id === 'fds')!;
      assert.equal(fds.ok, false);
      assert.match(fds.reason, /fd 3 \(listening UNIX stream socket on \/.*\/sock\) had connections waiting to be accepted: they would be lost/);
      assert.match(fds.reason, /is a UNIX stream socket connected to another process/);
    } finally {
      t.kill();
      closeTrackers();
    }
  });
});

test('a pseudo-terminal pair the program made comes back with the line waiting at its slave side and its echo at the master', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, ptymq, { args: ['pty'] });
    assert.deepEqual(r.lines, ['done pass']);
  });
});

test('a POSIX message queue comes back by name with its message; one unlinked is refused', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, ptymq, { args: ['mq'] });
    assert.deepEqual(r.lines, ['done pass']);
  });
  await withStore(async (store, dir) => {
    const t = await startZdtm(ptymq, dir, ['mqgone']);
    try {
      const c = checkpoint(store, t.pid, { mode: 'kill' });
      await t.waitExit();
      const fds = preflight(store, c.id).items.find((i) => i.id === 'fds')!;
      assert.equal(fds.ok, false);
      assert.match(fds.reason, /fd 3 is the POSIX message queue \/zdtm-mq-\d+: it was already removed \(mq_unlink\)/);
    } finally {
      t.kill();
      closeTrackers();
    }
  });
});
