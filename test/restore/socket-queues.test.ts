/**
 * Messages waiting in UNIX socketpairs come back exactly (issue 13): datagrams and seqpacket
 * messages each with its boundary and in order, in one process and between parent and child;
 * descriptors in flight (SCM_RIGHTS) as the same kind of file at the same offset, one open file
 * with a descriptor the process also holds; credentials (SO_PASSCRED) naming the restored process.
 * Before, the pre-flight refused every one of them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { buildFixture } from '../helpers/fixtures';
import { checkpoint, checkpointTree, closeTrackers } from '../../electron/engine/capture';
import { preflight, restore } from '../../electron/engine/restore';
import { withStore } from './helpers';
import { runZdtm, startZdtm, verdict } from './zdtm';

const sockqueue = buildFixture('restore-sockqueue');
const unixmsg = buildFixture('restore-unixmsg');

test('datagram and seqpacket socketpairs: every waiting message (empty, 100 KB) comes back with its boundary, in order, both ways', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, sockqueue, { args: ['dgram'] });
    assert.deepEqual(r.lines, ['done pass']);
  });
});

test('a seqpacket socketpair between parent and child (tree): the messages waiting at both ends come back', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, sockqueue, { args: ['tree'], tree: true });
    assert.deepEqual(r.lines, ['done pass']);
  });
});

test('a file in flight from parent to child (tree) comes back at its offset; one the parent also holds is refused, named', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, sockqueue, { args: ['treefd'], tree: true });
    assert.deepEqual(r.lines, ['done pass']);
  });
  await withStore(async (store, dir) => {
    const t = await startZdtm(sockqueue, dir, ['treefd', 'keep']);
    try {
      const c = checkpointTree(store, t.pid, { mode: 'kill' });
      await t.waitExit();
      // The child is the receiving end's holder: its own fds item says why.
      const fds = preflight(store, c.id).items.find((i) => i.id.startsWith('fds@') && !i.ok)!;
      assert.ok(fds, 'a member\'s fds item refuses');
      assert.match(fds.reason, new RegExp(`message 1 of the 1 waiting in fd \\d+ \\(socket:\\[\\d+\\]\\) of a UNIX socketpair carries a descriptor \\(file .*tree-passed.bin\\) that process ${t.pid} also holds \\(fd \\d+\\)`));
    } finally {
      t.kill();
      closeTrackers();
    }
  });
});

test('a file a child sent itself over its own socketpair that its parent holds too (tree) is refused, naming the parent', async () => {
  await withStore(async (store, dir) => {
    const t = await startZdtm(sockqueue, dir, ['treeown']);
    try {
      const c = checkpointTree(store, t.pid, { mode: 'kill' });
      await t.waitExit();
      const fds = preflight(store, c.id).items.find((i) => i.id.startsWith('fds@') && !i.ok);
      assert.ok(fds, 'a member\'s fds item refuses');
      assert.match(fds.reason, new RegExp(`carries a descriptor \\(file .*tree-own.bin\\) that process ${t.pid} of the tree may hold as the same open file \\(fd \\d+\\)`));
    } finally {
      t.kill();
      closeTrackers();
    }
  });
});

test('descriptors in flight: a file at offset 1234, a pipe end in the middle of a stream, a file also held (one offset)', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, sockqueue, { args: ['rights'] });
    assert.deepEqual(r.lines, ['done pass']);
  });
});

test('one end of a socketpair in flight, with a message waiting at it: it comes back connected to the end the process kept', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, sockqueue, { args: ['sockend'] });
    assert.deepEqual(r.lines, ['done pass']);
  });
});

test('SO_PASSCRED: datagrams the process sent itself come back naming the restored process', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, sockqueue, { args: ['creds'] });
    assert.deepEqual(r.lines, ['done pass']);
  });
});

test('a descriptor in flight over a stream socketpair (/dev/null) and two queued datagrams come back', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, unixmsg);
    assert.deepEqual(r.lines, ['done pass']);
  });
});

test('a checkpoint that leaves the process running leaves its queues as they were (the stream ones are taken out and put back)', async () => {
  await withStore(async (store, dir) => {
    for (const mode of ['rights', 'dgram'] as const) {
      const t = await startZdtm(sockqueue, dir, [mode]);
      try {
        checkpoint(store, t.pid, { mode: 'leave-running' });
        assert.deepEqual(await verdict(t.out), ['done pass'], mode);
        await t.waitExit();
      } finally {
        t.kill();
        closeTrackers();
        rmSync(t.out, { force: true });
        rmSync(`${t.out}.go`, { force: true });
      }
    }
  });
});

test('a descriptor in flight that Stasis does not send again (inotify) is refused in pre-flight, named', async () => {
  await withStore(async (store, dir) => {
    const t = await startZdtm(sockqueue, dir, ['unsendable']);
    try {
      const c = checkpoint(store, t.pid, { mode: 'kill' });
      await t.waitExit();
      const fds = preflight(store, c.id).items.find((i) => i.id === 'fds')!;
      assert.equal(fds.ok, false);
      assert.match(fds.reason, /message 1 of the 1 waiting in fd \d+ \(socket:\[\d+\]\) of a UNIX socketpair carries a descriptor \(inotify anon_inode:inotify\), which Stasis does not send again/);
      assert.throws(() => restore(store, c.id, { log: join(dir, 'r.log') }), /cannot be restored/);
    } finally {
      t.kill();
      closeTrackers();
    }
  });
});

test('an empty datagram with a descriptor that the program had peeked at (a walk of the queue skips it) is refused, not dropped', async () => {
  await withStore(async (store, dir) => {
    const t = await startZdtm(sockqueue, dir, ['peeked']);
    try {
      const c = checkpoint(store, t.pid, { mode: 'kill' });
      await t.waitExit();
      const fds = preflight(store, c.id).items.find((i) => i.id === 'fds')!;
      assert.equal(fds.ok, false);
      assert.match(fds.reason, /has messages waiting that cannot come back exactly: the kernel counts 1 descriptors in flight in it, and the walk found 0/);
    } finally {
      t.kill();
      closeTrackers();
    }
  });
});
