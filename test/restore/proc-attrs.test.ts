/**
 * Scheduling and prctl state that used to be dropped silently: per thread the policy, nice, CPU
 * affinity, I/O priority, timer slack and parent-death signal; per process the child-subreaper
 * bit, dumpable, THP-disable and oom_score_adj. The fixture also checks personality, itimers,
 * alarm(), sigaltstack, cmdline and environ, which came back already.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildFixture } from '../helpers/fixtures';
import { runZdtm } from './zdtm';
import { withStore } from './helpers';
import { join } from 'node:path';
import { preflightState } from '../../electron/engine/restore/preflight';
import { hexToMask, maskToHex } from '../../electron/engine/state/sched-attrs';

const procattrs = buildFixture('restore-procattrs');

test('scheduling, affinity, ioprio, timer slack, pdeathsig per thread and subreaper, dumpable, THP, oom_score_adj come back', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, procattrs);
    assert.deepEqual(r.lines, ['done pass']);
    // The same checkpoint with its worker pinned to CPUs this machine lacks is refused, naming them.
    const state = store.getState(r.checkpointId);
    const worker = state.threads.find((t) => t.tid !== state.pid)!;
    assert.equal(state.threads.find((t) => t.tid === state.pid)!.sched!.affinity, '1', 'main thread pinned to CPU 0');
    worker.sched!.affinity = '300000000'; // CPUs 32 and 33
    const it = preflightState(state, { log: join(dir, 'r.log') }).items.find((i) => i.id === 'cpu-affinity')!;
    assert.equal(it.ok, false);
    assert.match(it.reason, new RegExp(`Thread\\(s\\) ${worker.tid} \\(CPUs 32, 33\\)`));
  });
});

test('affinity masks round-trip between the kernel\'s bytes and hex', () => {
  const b = Buffer.from([0x05, 0x00, 0x01, 0, 0, 0, 0, 0]);
  assert.equal(maskToHex(b), '10005');
  assert.deepEqual(hexToMask('10005', 8), b);
  assert.equal(maskToHex(Buffer.alloc(8)), '0');
});
