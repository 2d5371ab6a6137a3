/**
 * memfd (fixture restore-memfd.c): a memfd held as a descriptor was refused ("not supported yet");
 * it now comes back with its name, bytes, offset, seals and flags, and one both held and mapped
 * stays one object (a write through the descriptor shows in the mapping). A memfd only mapped came
 * back as "/dev/zero (deleted)" in maps; now under its own name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildFixture } from '../helpers/fixtures';
import { runZdtm } from './zdtm';
import { withStore } from './helpers';

const memfd = buildFixture('restore-memfd');

test('a memfd held as a descriptor and one also mapped come back: name, bytes, offset, seals, one object', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, memfd);
    assert.deepEqual(r.lines, ['done pass']);
  });
});

test('a memfd only mapped keeps its name and offsets in maps', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, memfd, { args: ['maponly'] });
    assert.deepEqual(r.lines, ['done pass']);
  });
});
