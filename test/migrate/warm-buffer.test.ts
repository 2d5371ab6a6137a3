/**
 * The last round's memory held ready (migrate/warm-buffer.ts): sized within its bounds, handed out
 * once (a round taken again after a retract must not overwrite one still queued on the link).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_WARM, MIN_WARM, WarmBuffer } from '../../electron/engine/migrate/warm-buffer';

test('a warm buffer is at least MIN_WARM and at most MAX_WARM, grows with reserve, and is handed out once', () => {
  const w = new WarmBuffer();
  assert.equal(w.take(1), null, 'nothing before a reserve');
  w.reserve(0);
  w.reserve(MAX_WARM * 4);
  assert.equal(w.take(MAX_WARM + 1), null, 'never more than MAX_WARM');
  const b = w.take(MIN_WARM + 10);
  assert.ok(b);
  assert.equal(b.length, MIN_WARM + 10);
  assert.equal(w.take(1), null, 'handed out once');
  assert.equal(w.takeAll(), null);
  w.reserve(MIN_WARM);
  assert.equal(w.take(1), null, 'no second buffer once one was taken');
  const v = new WarmBuffer();
  v.reserve(1);
  const all = v.takeAll();
  assert.equal(all?.length, MIN_WARM);
  assert.ok(all!.every((x) => x === 0), 'every page touched (filled) before it is handed out');
});
