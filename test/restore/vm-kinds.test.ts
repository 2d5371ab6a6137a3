/**
 * Memory kinds beyond contents: mlock, MAP_GROWSDOWN, mremap, mprotect stripes, madvise flags
 * (DONTFORK, WIPEONFORK, DONTDUMP), a private file mapping written past EOF, a 2 GiB sparse
 * mapping and a shared /dev/zero mapping. The fixture compares its whole layout (ranges,
 * protections, VmFlags) before and after, and the contents, and what a child it forks sees.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildFixture } from '../helpers/fixtures';
import { checkpoint, closeTrackers } from '../../electron/engine/capture';
import { runZdtm, startZdtm } from './zdtm';
import { withStore } from './helpers';

const vmkinds = buildFixture('restore-vmkinds');

test('mlock, madvise flags, growsdown, mremap, mprotect stripes, COW past EOF, sparse 2 GiB, /dev/zero shared: all come back', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, vmkinds);
    assert.deepEqual(r.lines, ['done pass']);
  });
});

test('mlock comes back from a fork snapshot too (a fork child does not inherit it)', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, vmkinds, { args: ['no-fork-advice'], checkpoint: { snapshot: 'fork' } });
    assert.equal(r.freeze, 'snapshot');
    assert.deepEqual(r.lines, ['done pass']);
  });
});

test('a fork snapshot of a process with MADV_DONTFORK / MADV_WIPEONFORK memory is refused, not saved without it', async () => {
  await withStore(async (store, dir) => {
    const t = await startZdtm(vmkinds, dir);
    try {
      assert.throws(() => checkpoint(store, t.pid, { snapshot: 'fork' }), /MADV_DONTFORK.*MADV_WIPEONFORK.*default snapshot mode/s);
      assert.equal(store.list().length, 0, 'nothing was saved');
    } finally {
      t.kill();
      closeTrackers();
    }
  });
});
