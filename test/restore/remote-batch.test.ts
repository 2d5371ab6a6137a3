// Remote.batch runs a table of system calls inside the restore stub through the trampoline's loop
// (plan.ts TRAMPOLINE_CODE): each result comes back in order, a failing call does not stop the
// ones after it, memory they write is there, and single-stepped calls work again afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Remote } from '../../electron/engine/restore/remote';
import { setUpTrampoline } from '../../electron/engine/restore/memory';
import { NR } from '../../electron/engine/restore/sysno';
import type { RestorePlan } from '../../electron/engine/restore/plan';

test('a batch of system calls in the stub: results in order, errors in place, memory written, single steps afterwards', () => {
  const r = Remote.spawnStub();
  try {
    // Before the trampoline: one by one (same results).
    assert.deepEqual(r.batch([{ nr: NR.getpid, args: [] }]), [BigInt(r.pid)]);
    setUpTrampoline(r, { trampoline: 0x100000000000n } as RestorePlan);
    r.resetScratch();
    const uts = r.reserve(390);
    const before = r.calls;
    const out = r.batch([
      { nr: NR.getpid, args: [] },
      { nr: NR.close, args: [9999n] },
      { nr: 63 /* uname */, args: [uts] },
      { nr: NR.getpid, args: [] },
    ]);
    assert.deepEqual(out, [BigInt(r.pid), -9n, 0n, BigInt(r.pid)], 'getpid, EBADF, 0, getpid');
    assert.equal(r.calls, before + 4);
    const buf = Buffer.alloc(390);
    r.read(uts, buf);
    assert.equal(buf.subarray(0, 5).toString(), 'Linux', 'uname wrote its struct into the stub');
    assert.equal(r.raw(NR.getpid), BigInt(r.pid), 'a single-stepped call after the batch');
    assert.deepEqual(r.batch([]), []);
  } finally {
    r.kill();
  }
});

test('callAll throws the first failing call of a batch by its name, after running the batch', () => {
  const r = Remote.spawnStub();
  try {
    setUpTrampoline(r, { trampoline: 0x100000000000n } as RestorePlan);
    r.resetScratch();
    assert.throws(() => r.callAll([
      { nr: NR.getpid, args: [], what: 'getpid' },
      { nr: NR.close, args: [9999n], what: 'closing fd 9999' },
      { nr: NR.close, args: [9998n], what: 'closing fd 9998' },
    ]), /^.*closing fd 9999 failed: EBADF/);
    assert.deepEqual(r.callAll([{ nr: NR.getpid, args: [], what: 'getpid' }]), [BigInt(r.pid)]);
  } finally {
    r.kill();
  }
});
