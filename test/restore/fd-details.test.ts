/**
 * Descriptor details: status flags (O_APPEND, O_DIRECT, O_NONBLOCK, O_NOATIME, O_SYNC, O_PATH),
 * close-on-exec bits, fd 1000, a pipe whose both ends the process holds with 64 KiB waiting and its
 * capacity raised to 1 MiB (the bytes used to be written back twice: doubled, or the restore hung
 * once the pipe was full; the capacity came back as 64 KiB), bytes waiting in a named FIFO (lost),
 * /dev/null, /dev/zero, /dev/urandom and a directory read part way.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildFixture } from '../helpers/fixtures';
import { withStore } from './helpers';
import { runZdtm } from './zdtm';

const fdflags = buildFixture('restore-fdflags');

test('descriptor flags, fd 1000, a full self-pipe with its capacity, FIFO bytes, devices and a directory position come back', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, fdflags);
    assert.deepEqual(r.lines.filter((l) => !l.startsWith('note ')), ['done pass']);
    const fds = store.getState(r.checkpointId).fds;
    assert.equal(fds.find((f) => f.kind === 'pipe' && typeof f.info?.pipeData === 'string')?.info?.pipeSize, 1 << 20, 'the pipe capacity was saved');
  });
});
