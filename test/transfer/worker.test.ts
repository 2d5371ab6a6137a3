// The receiver lives in the real engine worker (app, browser mode): the listen reply carries the
// token while the pushed event does not, and shutting the engine down while it listens closes the
// listener, so the worker exits at once instead of being terminated after the grace period.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineHost } from '../../electron/engine/host/engine-host';

test('a listening receiver in the worker: token in the reply only; close() ends it without waiting out the grace period', async () => {
  process.env.STASIS_SCHEDULER = '0';
  const dir = mkdtempSync(join(tmpdir(), 'stasis-receiver-worker-'));
  const host = new EngineHost(join(dir, 'store'));
  try {
    const events: unknown[] = [];
    host.onEvent((event, payload) => { if (event === 'transfer.receiver') events.push(payload); });
    const r = await host.call('transfer.listen', { address: '127.0.0.1:0' });
    assert.ok(r.ok, JSON.stringify(r));
    const { token, listening } = r.value as { token: string; listening: boolean };
    assert.equal(listening, true);
    const deadline = Date.now() + 5000;
    while (events.length === 0 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
    assert.equal(events.length, 1);
    assert.equal(JSON.stringify(events).includes(token), false);
    const t0 = Date.now();
    await host.close(15_000);
    assert.ok(Date.now() - t0 < 5000, `the worker took ${Date.now() - t0} ms to exit`);
  } finally {
    await host.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
