/**
 * Shared memory that used to come back wrong without a word: pages of a MAP_SHARED mapping that
 * only a child wrote (present in the object, absent from this process's page tables) read back as
 * zeros; a POSIX shm object unlinked after mmap was refused; and a shared mapping inherited by the
 * processes of a tree came back as one private copy each, so they no longer saw each other's writes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildFixture } from '../helpers/fixtures';
import { withStore } from './helpers';
import { runZdtm } from './zdtm';

const shmem = buildFixture('restore-shmem');
const treeShm = buildFixture('restore-tree-shm');

test('shared pages the process never touched (written by an exited child, or by write() before mmap) and an unlinked POSIX shm object come back', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, shmem);
    assert.deepEqual(r.lines, ['done pass']);
  });
});

test('the same, through a fork snapshot taken while the process runs', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, shmem, { checkpoint: { snapshot: 'fork' } });
    assert.equal(r.freeze, 'snapshot');
    assert.deepEqual(r.lines, ['done pass']);
  });
});

test('a shared anonymous mapping inherited by a child is one object again after a tree restore: each sees the other\'s writes', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, treeShm, { tree: true });
    assert.ok(store.get(r.checkpointId)?.tree, 'a tree checkpoint');
    assert.deepEqual(r.lines, ['done pass']);
  });
});
