// The Electron IPC cancel bookkeeping (electron/main/call-cancels.ts): a cancel message from the
// window aborts exactly the call it named, only for the sender that started it. Electron itself
// cannot run here; ipc.ts only forwards (sender id, call id) to this class.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CallCancels } from '../../electron/main/call-cancels';

test('cancel(id) aborts that call and no other', () => {
  const c = new CallCancels();
  const a = c.begin(1, 'c1');
  const b = c.begin(1, 'c2');
  assert.equal(c.cancel(1, 'c1'), true);
  assert.equal(a.signal.aborted, true);
  assert.equal(b.signal.aborted, false);
});

test('another sender cannot cancel a call, and unknown or malformed ids are ignored', () => {
  const c = new CallCancels();
  const a = c.begin(1, 'c1');
  assert.equal(c.cancel(2, 'c1'), false);
  assert.equal(c.cancel(1, 'nope'), false);
  assert.equal(c.cancel(1, 42), false);
  assert.equal(c.cancel(1, 'x'.repeat(65)), false);
  assert.equal(a.signal.aborted, false);
});

test('a finished call is forgotten: cancelling it later does nothing, and an id can be reused', () => {
  const c = new CallCancels();
  const a = c.begin(1, 'c1');
  a.end();
  assert.equal(c.size, 0);
  assert.equal(c.cancel(1, 'c1'), false);
  assert.equal(a.signal.aborted, false);
  const again = c.begin(1, 'c1');
  assert.equal(c.cancel(1, 'c1'), true);
  assert.equal(again.signal.aborted, true);
});

test('a call without an id gets a signal but is not tracked', () => {
  const c = new CallCancels();
  const a = c.begin(1, undefined);
  assert.equal(c.size, 0);
  assert.equal(a.signal.aborted, false);
  a.end();
});
