/**
 * mlockall(MCL_FUTURE) used to be dropped silently: memory the restored program mapped afterwards
 * was not locked (CRIU 4.1.1 drops it too). Capture finds it by probing a new page in the frozen
 * target; restore sets it again, with MCL_ONFAULT when it was.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildFixture } from '../helpers/fixtures';
import { runZdtm } from './zdtm';
import { withStore } from './helpers';
import { freeProbePage } from '../../electron/engine/capture/mlock-future';

const mlockall = buildFixture('restore-mlockall');

for (const mode of ['lock', 'onfault'] as const) {
  test(`mlockall(MCL_CURRENT|MCL_FUTURE${mode === 'onfault' ? '|MCL_ONFAULT' : ''}): memory mapped after the restore is locked`, async () => {
    await withStore(async (store, dir) => {
      const r = await runZdtm(store, dir, mlockall, { args: mode === 'onfault' ? ['onfault'] : [] });
      assert.deepEqual(r.lines, ['done pass']);
      assert.equal(store.getState(r.checkpointId).mlockFuture, mode);
    });
  });
}

test('the probe page has a free page on each side, above mmap_min_addr', () => {
  // 0x11000-0x12000 is one free page: too small; 0x13000-0x17000 has room for a page between two free ones.
  assert.equal(freeProbePage('10000-11000 r--p 0 00:00 0\n12000-13000 r--p\n17000-18000 r--p\n'), 0x14000n);
  assert.equal(freeProbePage('400000-401000 r-xp\n'), 0x11000n);
  assert.equal(freeProbePage('10000-7ffffffff000 r--p\n'), null);
});
