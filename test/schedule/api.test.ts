// The schedules.* calls through api/invoke (the path every transport takes): validation, outputs
// that match the contract, errors a user can act on, and the lock holder shown to the other side.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { invoke } from '../../electron/api/invoke';
import type { HandlerContext } from '../../electron/api/context';
import { scheduleDbFor } from '../../electron/engine/schedule';
import { releaseLock, tryAcquireLock } from '../../electron/engine/schedule/lock';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached } from '../helpers/spawn';

test('schedules.* through invoke: add, list with the scheduler holder, update, pause/resume/runNow, history, quota, remove', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'stasis-sched-api-'));
  const target = spawnDetached([buildFixture('schedule-target')]);
  const ctx: HandlerContext = { storeDir: dir, store: () => { throw new Error('the schedule handlers never open the store'); }, emit: () => {}, runtime: 'in-process' };
  const call = async (name: string, input: unknown) => invoke(name, input, ctx);
  try {
    const tooFast = await call('schedules.add', { target: { pid: target.pid }, timing: { kind: 'interval', everyMs: 10 } });
    assert.equal(tooFast.ok, false);
    assert.equal(!tooFast.ok && tooFast.error.code, 'INVALID_INPUT');
    const gone = await call('schedules.add', { target: { pid: 999_999_999 }, timing: { kind: 'manual' } });
    assert.equal(!gone.ok && gone.error.code, 'PROCESS_GONE');
    const badCron = await call('schedules.add', { target: { name: 'x' }, timing: { kind: 'cron', expr: '61 * * * *' } });
    assert.equal(!badCron.ok && badCron.error.code, 'INVALID_INPUT');

    const added = await call('schedules.add', { target: { pid: target.pid }, timing: { kind: 'interval', everyMs: 30_000 }, retention: { keepLast: 5, daily: 7 }, quietHours: { start: '23:00', end: '06:30' } });
    assert.ok(added.ok, JSON.stringify(added));
    const s = added.value as { id: number; state: string; nextRunAt: string; target: { kind: string; startTime: string } };
    assert.equal(s.state, 'active');
    assert.equal(s.target.kind, 'pid');
    assert.match(s.target.startTime, /^\d+$/);
    assert.ok(!Number.isNaN(Date.parse(s.nextRunAt)));

    const l1 = await call('schedules.list', {});
    assert.ok(l1.ok);
    assert.equal((l1.value as { scheduler: unknown }).scheduler, null, 'nobody runs the schedules yet');
    tryAcquireLock(scheduleDbFor(dir), 'daemon', Date.now());
    const l2 = await call('schedules.list', {});
    assert.ok(l2.ok);
    const holder = (l2.value as { scheduler: { pid: number; kind: string; since: string } }).scheduler;
    assert.deepEqual([holder.pid, holder.kind], [process.pid, 'daemon']);
    releaseLock(scheduleDbFor(dir));

    const up = await call('schedules.update', { id: s.id, timing: { kind: 'cron', expr: '0 3 * * *' }, retention: { monthly: 6 }, fullEvery: undefined, quietHours: undefined });
    assert.ok(up.ok);
    const u = up.value as { timing: { kind: string }; retention: Record<string, number>; nextRunAt: string };
    assert.equal(u.timing.kind, 'cron');
    assert.deepEqual(u.retention, { monthly: 6 });
    assert.equal(new Date(u.nextRunAt).getHours(), 3);
    assert.deepEqual((up.value as { quietHours: unknown }).quietHours, { start: '23:00', end: '06:30' }, 'fields not given are unchanged');
    const cleared = await call('schedules.update', { id: s.id, quietHours: null });
    assert.equal(cleared.ok && (cleared.value as { quietHours: unknown }).quietHours, null, 'null clears');

    const paused = await call('schedules.pause', { id: s.id });
    assert.ok(paused.ok && (paused.value as { state: string; nextRunAt: null }).state === 'paused');
    const runPaused = await call('schedules.runNow', { id: s.id });
    assert.equal(!runPaused.ok && runPaused.error.code, 'CONFLICT');
    assert.match(!runPaused.ok ? runPaused.error.message : '', /resume it first/);
    const resumed = await call('schedules.resume', { id: s.id });
    assert.ok(resumed.ok && (resumed.value as { state: string }).state === 'active');
    const now = await call('schedules.runNow', { id: s.id });
    assert.ok(now.ok && Math.abs(Date.parse((now.value as { nextRunAt: string }).nextRunAt) - Date.now()) < 5000);

    const h = await call('schedules.history', { id: s.id });
    assert.deepEqual(h.ok && h.value, { runs: [] });
    const h404 = await call('schedules.history', { id: 12345 });
    assert.equal(!h404.ok && h404.error.code, 'NOT_FOUND');

    const q = await call('schedules.setGlobalQuota', { quotaBytes: 1 << 30 });
    assert.deepEqual(q.ok && q.value, { quotaBytes: 1 << 30 });
    const l3 = await call('schedules.list', {});
    assert.equal(l3.ok && (l3.value as { globalQuotaBytes: number }).globalQuotaBytes, 1 << 30);

    const rm = await call('schedules.remove', { id: s.id });
    assert.deepEqual(rm.ok && rm.value, { removed: s.id });
    const rm2 = await call('schedules.remove', { id: s.id });
    assert.equal(!rm2.ok && rm2.error.code, 'NOT_FOUND');
    const extra = await call('schedules.remove', { id: s.id, force: true });
    assert.equal(!extra.ok && extra.error.code, 'INVALID_INPUT', 'unknown input fields are refused');
  } finally {
    target.kill();
    scheduleDbFor(dir).close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('schedules.add/update sendTo: bad addresses and tokens are INVALID_INPUT naming the field, never echoing the token; the token is never given back, only its end; null stops sending', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'stasis-sched-api-'));
  const target = spawnDetached([buildFixture('schedule-target')]);
  const ctx: HandlerContext = { storeDir: dir, store: () => { throw new Error('the schedule handlers never open the store'); }, emit: () => {}, runtime: 'in-process' };
  const call = async (name: string, input: unknown) => invoke(name, input, ctx);
  const token = `stasis1-${Buffer.alloc(32, 5).toString('base64url')}`;
  const secretish = 'stasis1-SECRETSECRETSECRETSECRETSECRETSECRETSECRET';
  const base = { target: { pid: target.pid }, timing: { kind: 'manual' } };
  try {
    for (const [sendTo, field] of [
      [{ address: '10.0.0.5', token }, /sendTo\.address: give HOST:PORT/],
      [{ address: '10.0.0.5:0', token }, /sendTo\.address: the port must be 1 to 65535/],
      [{ address: '10.0.0.5:7411', token: secretish }, /sendTo\.token: paste the whole pairing token/],
      [{ address: '10.0.0.5:7411' }, /sendTo\.token/],
    ] as const) {
      const r = await call('schedules.add', { ...base, sendTo });
      assert.equal(r.ok, false, JSON.stringify(sendTo));
      if (r.ok) continue;
      assert.equal(r.error.code, 'INVALID_INPUT');
      assert.match(r.error.message, field);
      assert.ok(!r.error.message.includes('SECRET') && !r.error.message.includes(token.slice(8)), r.error.message);
    }
    const added = await call('schedules.add', { ...base, sendTo: { address: '10.0.0.5:7411', token } });
    assert.ok(added.ok, JSON.stringify(added));
    const s = added.value as { id: number; sendTo: unknown; lastSend: unknown };
    assert.deepEqual(s.sendTo, { address: '10.0.0.5:7411', tokenHint: `…${token.slice(-4)}` });
    assert.equal(s.lastSend, null);
    const listed = await call('schedules.list', {});
    assert.ok(listed.ok && !JSON.stringify(listed.value).includes(token.slice(8, -4)), 'the token is in the list');
    // Kept where the scheduler reads it.
    assert.equal(scheduleDbFor(dir).require(s.id).sendTo?.token, token);
    const stopped = await call('schedules.update', { id: s.id, sendTo: null });
    assert.ok(stopped.ok && (stopped.value as { sendTo: unknown }).sendTo === null);
  } finally {
    target.kill();
    scheduleDbFor(dir).close();
    rmSync(dir, { recursive: true, force: true });
  }
});
