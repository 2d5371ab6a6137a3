// The engine host runs calls in a real worker thread against a real store: replies, events pushed
// to the host, cancellation through the shared flag, and a clean shutdown.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { EngineHost } from '../../electron/engine/host/engine-host';

let dir: string;
let host: EngineHost;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'stasis-host-'));
  host = new EngineHost(join(dir, 'store'));
});
after(async () => {
  await host.close();
  rmSync(dir, { recursive: true, force: true });
});

test('calls run in the worker thread and open the real store there (0700)', async () => {
  assert.equal(threadId, 0);
  const status = await host.call('engine.status', {});
  assert.ok(status.ok);
  assert.equal((status.value as { runtime: string }).runtime, 'worker');
  const list = await host.call('checkpoints.list', {});
  assert.ok(list.ok, JSON.stringify(list));
  assert.deepEqual((list.value as { checkpoints: unknown[] }).checkpoints, []);
  assert.equal(statSync(join(dir, 'store')).mode & 0o777, 0o700);
  assert.ok(readdirSync(join(dir, 'store')).length > 0, 'the store wrote its index');
});

test('events emitted by a handler reach host listeners', async () => {
  const seen: [string, unknown][] = [];
  const off = host.onEvent((event, payload) => seen.push([event, payload]));
  const r = await host.call('store.reindex', {});
  assert.ok(r.ok, JSON.stringify(r));
  // The event is posted before the reply, on the same port: it has arrived.
  off();
  assert.ok(seen.some(([e]) => e === 'store.changed'), JSON.stringify(seen));
});

test('a cancelled call replies CANCELLED (the shared flag is visible to synchronous handlers)', async () => {
  const r = await host.call('engine.status', {}, AbortSignal.abort());
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.error.code, 'CANCELLED');
  const again = await host.call('engine.status', {});
  assert.ok(again.ok, 'the engine keeps serving after a cancel');
});

test('invalid input and unknown calls are refused inside the worker too', async () => {
  const bad = await host.call('checkpoints.remove', { ids: 'all' });
  assert.equal(!bad.ok && bad.error.code, 'INVALID_INPUT');
  const unknown = await host.call('engine.reboot', {});
  assert.equal(!unknown.ok && unknown.error.code, 'NOT_FOUND');
});

test('a worker that dies is reported (engine.crashed) and replaced on the next call', async () => {
  const events: string[] = [];
  const off = host.onEvent((event) => events.push(event));
  const worker = (host as unknown as { worker: { terminate(): Promise<number> } | null }).worker;
  assert.ok(worker, 'a worker is running');
  await worker.terminate();
  await new Promise((r) => setImmediate(r));
  assert.ok(events.includes('engine.crashed'), JSON.stringify(events));
  const r = await host.call('engine.status', {});
  assert.ok(r.ok, 'a fresh worker serves the next call');
  off();
});

test('keepAlive starts the worker without a call and restarts it after it dies', async () => {
  const other = new EngineHost(join(dir, 'store-keepalive'));
  try {
    const workerOf = (): { threadId: number; terminate(): Promise<number> } | null =>
      (other as unknown as { worker: { threadId: number; terminate(): Promise<number> } | null }).worker;
    assert.equal(workerOf(), null, 'no worker before keepAlive');
    other.keepAlive();
    const first = workerOf();
    assert.ok(first, 'keepAlive started a worker');
    const firstId = first.threadId;
    await first.terminate();
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (workerOf() === null || workerOf()?.threadId === firstId)) await new Promise((r) => setTimeout(r, 100));
    const second = workerOf();
    assert.ok(second && second.threadId !== firstId, 'a new worker replaced the dead one without any call');
  } finally {
    await other.close();
  }
});
