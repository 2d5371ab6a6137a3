// The app's scheduler: the engine worker (as the Electron main process and browser mode start it)
// runs the schedules with the window closed, pushes their events to the host, and gives the lock
// back when the engine shuts down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineHost } from '../../electron/engine/host/engine-host';
import { ScheduleDb } from '../../electron/engine/schedule/db';
import { lockHolder } from '../../electron/engine/schedule/lock';
import { addSchedule } from '../../electron/engine/schedule/service';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached } from '../helpers/spawn';

test('the engine worker runs schedules as the "app" scheduler, emits run events, and releases the lock on shutdown', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'stasis-sched-app-'));
  const target = spawnDetached([buildFixture('schedule-target')]);
  const db = new ScheduleDb(dir);
  let host: EngineHost | null = null;
  try {
    const s = addSchedule(db, { target: { pid: target.pid }, timing: { kind: 'interval', everyMs: 1000 }, fullEvery: 0, quietHours: null, retention: { keepLast: 1 }, label: null }, Date.now());
    host = new EngineHost(dir);
    const events: [string, Record<string, unknown>][] = [];
    host.onEvent((event, payload) => events.push([event, payload as Record<string, unknown>]));
    void host.call('schedules.list', {}); // the worker starts on its first call (the app makes one at startup)
    const end = Date.now() + 20_000;
    while (events.filter(([e]) => e === 'schedule.run.done').length < 2) {
      if (Date.now() > end) throw new Error(`no two runs in 20 s; events: ${JSON.stringify(events)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(events.some(([e]) => e === 'schedule.run.started'));
    const holder = lockHolder(db, Date.now());
    assert.deepEqual([holder?.kind, holder?.pid], ['app', process.pid]);
    const list = await host.call('schedules.list', {});
    assert.ok(list.ok);
    assert.equal((list.value as { scheduler: { kind: string } }).scheduler.kind, 'app', 'the API shows who runs the schedules');
    const runs = db.history(s.id).filter((r) => r.result === 'ok');
    assert.ok(runs.length >= 2 && runs.every((r) => r.runnerPid === process.pid));
    await host.close();
    host = null;
    assert.equal(lockHolder(db, Date.now()), null, 'shutdown released the lock');
  } finally {
    await host?.close();
    target.kill();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
