/**
 * 64 threads, half of them in futex waits with a 60 s timeout and one in pthread_cond_timedwait,
 * each with its own TLS value: after the restore none has timed out early, each still has its TLS
 * and tid, and pthread_kill reaches the thread it names.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildFixture } from '../helpers/fixtures';
import { withStore } from './helpers';
import { runZdtm } from './zdtm';

const many = buildFixture('restore-manythreads');

test('64 threads in timed and untimed futex waits come back with their TLS, tids and thread-directed signals', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, many);
    assert.deepEqual(r.lines, ['done pass']);
  });
});
