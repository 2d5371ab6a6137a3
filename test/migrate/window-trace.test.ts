/**
 * The downtime window's trace (migrate/window-trace.ts, read by bench/window-trace.ts): real
 * processes with STASIS_WINDOW_TRACE set, one per end, a real V8 collection inside the window at
 * one of them and one outside it at the other; the reader finds the one inside, at the right end,
 * and nothing else.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readWindowTrace } from '../../bench/window-trace';

const module = new URL('../../electron/engine/migrate/window-trace.ts', import.meta.url).pathname;

/** Runs one end in its own node process: marks named, with a full collection where 'gc' stands. */
function end(file: string, role: 'source' | 'destination', steps: string[]): void {
  const code = `import { startWindowTrace, windowMark } from ${JSON.stringify(module)};
startWindowTrace(${JSON.stringify(role)});
const t0 = performance.now();
const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
for (const s of ${JSON.stringify(steps)}) {
  if (s === 'gc') globalThis.gc();
  else if (s === 'sleep') sleep(20);
  else if (s === 'freeze began') windowMark(s, t0);
  else windowMark(s);
}
// The observer's entries arrive on a later turn.
setTimeout(() => undefined, 50);`;
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', code], { encoding: 'utf8', env: { ...process.env, STASIS_WINDOW_TRACE: file } });
  assert.equal(r.status, 0, r.stderr);
}

test('the window trace: a collection inside the window is found at its end, one outside it is not, and the timeline holds both ends\' marks', () => {
  const dir = mkdtempSync(join(tmpdir(), 'stasis-window-trace-'));
  try {
    const file = join(dir, 'trace.jsonl');
    // The source's window spans its whole run (freeze began at its start, restored at its end);
    // the destination runs after it, so its collection falls outside.
    end(file, 'source', ['frozen', 'sleep', 'gc', 'sleep', 'restored', 'freeze began']);
    end(file, 'destination', ['gc', 'last round announced', 'running']);
    const w = readWindowTrace(file);
    assert.ok(w, 'both ends traced');
    assert.equal(w.gcCount.source, 1, 'the source\'s collection inside the window');
    assert.ok(w.gcMs.source > 0);
    assert.equal(w.gcCount.destination, 0, 'the destination\'s collection came after the window');
    assert.ok(w.windowMs >= 40, `the window spans the source's two sleeps (${w.windowMs} ms)`);
    assert.ok(Number.isFinite(w.runDelayMs.source) && w.runDelayMs.source >= 0);
    assert.match(w.timeline, /s:frozen@[\d.]+\(.*s:restored@/);
    assert.match(w.timeline, /source gc: major/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

