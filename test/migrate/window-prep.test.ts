/**
 * What each end of a migration does right before its part of the downtime (migrate/window-prep.ts):
 * a real collection of its heap, and every thread of the process at WINDOW_NICE until lowered,
 * each given back its own nice after.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { setImmediate as tick } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { WINDOW_NICE, collectBeforeWindow, lowerPriority, raisePriority } from '../../electron/engine/migrate/window-prep';

/** Nice of each thread of this process, from the kernel's own view (field 19 of stat). */
function nices(): Map<number, number> {
  const out = new Map<number, number>();
  for (const t of readdirSync('/proc/self/task')) {
    try {
      const s = readFileSync(`/proc/self/task/${t}/stat`, 'utf8');
      out.set(Number(t), Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[16]));
    } catch { /* ended meanwhile */ }
  }
  return out;
}

test('collectBeforeWindow collects the heap now: an object nothing holds is gone after it', async () => {
  let ref: WeakRef<object> | null = null;
  (() => { ref = new WeakRef({ big: new Array(1000).fill(1) }); })();
  // A WeakRef's target lives at least until the job that made it ends.
  await tick();
  assert.ok(collectBeforeWindow(), 'V8\'s gc could be had');
  assert.equal(ref!.deref(), undefined, 'the unreachable object was collected');
});

test('raisePriority puts every thread of the process at WINDOW_NICE, once, and lowerPriority gives each its own back', { skip: process.geteuid?.() !== 0 ? 'needs root to raise priority' : false }, async () => {
  // A second thread of its own (besides V8's and libuv's), so "every thread" is more than the main one.
  const w = new Worker('setInterval(() => {}, 1000)', { eval: true });
  await new Promise((r) => w.once('online', r));
  const main = process.pid;
  const before = getPriority(main);
  try {
    // A thread already above the window's priority keeps its own.
    setPriority(main, WINDOW_NICE - 5);
    const was = nices();
    raisePriority();
    const during = nices();
    assert.ok(during.size >= 3, `several threads (${during.size})`);
    for (const [tid, n] of during) {
      if (!was.has(tid)) continue;
      assert.equal(n, tid === main ? WINDOW_NICE - 5 : WINDOW_NICE, `thread ${tid} during the window`);
    }
    // Raised already: a second call changes nothing, and one lower gives everything back.
    setPriority(main, WINDOW_NICE - 5);
    raisePriority();
    lowerPriority();
    for (const [tid, n] of nices()) {
      if (was.has(tid)) assert.equal(n, was.get(tid), `thread ${tid} after the window`);
    }
    lowerPriority();
  } finally {
    setPriority(main, before);
    await w.terminate();
  }
});
