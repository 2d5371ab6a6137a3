/** The throttle every long operation's progress goes through, on a clock the test moves. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { progress, type ProgressReport } from '../../electron/engine/progress';

test('reports pass at most every 100 ms; finish passes once, always, and ends the reporting', () => {
  let now = 0;
  const got: ProgressReport[] = [];
  const p = progress((r) => got.push(r), () => now);
  for (let i = 0; i <= 1000; i++) { now = i; p.report({ done: i, total: 1000, unit: 'pages' }); }
  // t = 0, 100, ..., 1000: the first report passes at once.
  assert.deepEqual(got.map((r) => r.done), [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]);
  p.finish({ total: 1000, unit: 'pages', phase: 'saved' });
  assert.deepEqual(got[got.length - 1], { done: 1000, total: 1000, unit: 'pages', phase: 'saved' });
  now = 5000;
  p.report({ done: 1, total: 1, unit: 'pages' });
  p.finish({ total: 1, unit: 'pages' });
  assert.equal(got.length, 12, 'nothing passes after finish');
});

test('without a callback nothing is called', () => {
  const p = progress(undefined);
  p.report({ done: 1, total: 2, unit: 'steps' });
  p.finish({ total: 2, unit: 'steps' });
});
