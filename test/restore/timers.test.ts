/**
 * Timers, counters and signals (fixture restore-timers.c): wall-clock timers (timerfd, POSIX timers,
 * ITIMER_REAL) keep their deadline across the time the process spent checkpointed, a periodic
 * timerfd keeps the expirations nobody read yet, eventfd counts (plain and EFD_SEMAPHORE), the
 * signalfd mask, blocked pending signals, every rlimit and a fired EPOLLONESHOT watch come back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildFixture } from '../helpers/fixtures';
import { runZdtm } from './zdtm';
import { sleep, withStore } from './helpers';
import { timerAfter } from '../../electron/engine/state/timer-clock';

const timers = buildFixture('restore-timers');

test('timers keep their deadlines and unread expirations; counters, signalfd, pending signals and rlimits come back', async () => {
  await withStore(async (store, dir) => {
    // Two seconds checkpointed: a timer armed again for its old remaining time would be 2 s late.
    const r = await runZdtm(store, dir, timers, { beforeRestore: () => sleep(2000) });
    assert.deepEqual(r.lines, ['done pass']);
  });
});

test('a timer after a wait: what is left, and the expirations missed', () => {
  assert.deepEqual(timerAfter(100n, 0n, 30n), { valueNs: 70n, missed: 0n });
  assert.deepEqual(timerAfter(100n, 0n, 100n), { valueNs: 0n, missed: 1n });
  assert.deepEqual(timerAfter(100n, 20n, 150n), { valueNs: 10n, missed: 3n });
  assert.deepEqual(timerAfter(0n, 20n, 150n), { valueNs: 0n, missed: 0n });
});
