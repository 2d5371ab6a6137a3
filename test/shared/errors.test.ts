import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StasisError, toErrorData } from '../../shared/errors';

test('a StasisError keeps its code and detail across the wire shape', () => {
  const e = new StasisError('PROCESS_GONE', 'Process 42 exited during the checkpoint; nothing was saved.', { pid: 42 });
  assert.deepEqual(toErrorData(e), { code: 'PROCESS_GONE', message: e.message, detail: { pid: 42 } });
});

test('an unknown error becomes INTERNAL with its message', () => {
  assert.deepEqual(toErrorData(new Error('boom')), { code: 'INTERNAL', message: 'boom' });
  assert.deepEqual(toErrorData({ code: 'NOPE', message: 'x' }), { code: 'INTERNAL', message: '[object Object]' });
});
