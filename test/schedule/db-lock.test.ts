import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ScheduleDb } from '../../electron/engine/schedule/db';
import { HEARTBEAT_EVERY_MS, LOCK_STALE_MS, lockHolder, newLockToken, releaseLock, tryAcquireLock } from '../../electron/engine/schedule/lock';
import { processStartTime } from '../../electron/engine/schedule/liveness';
import type { ScheduleSpec } from '../../electron/engine/schedule/types';

const tmp = () => mkdtempSync(join(tmpdir(), 'stasis-sched-db-'));
const spec: ScheduleSpec = {
  target: { kind: 'pid', pid: 4242, startTime: '123' },
  timing: { kind: 'interval', everyMs: 30_000 },
  fullEvery: 5,
  quietHours: { start: '22:00', end: '07:00' },
  retention: { keepLast: 3, daily: 7, quotaBytes: 1 << 30 },
  label: null,
};

test('schedules and runs persist across reopen; WAL; migrations are versioned and idempotent', () => {
  const dir = tmp();
  try {
    let db = new ScheduleDb(dir);
    const s = db.add(spec, 1000, 1000);
    assert.equal(s.state, 'active');
    db.update(s.id, { state: 'paused', nextRunAt: null, incrementalsSinceFull: 2, fullEvery: undefined, label: undefined });
    db.recordRun({ scheduleId: s.id, startedAt: 1000, finishedAt: 1100, result: 'ok', mode: 'full', pid: 4242, checkpointId: 17, durationMs: 100, frozenMs: 12.5, bytes: 4096, error: null, attempt: 1, missed: 2, willRetry: false, pruned: [], runnerPid: 1 });
    const r2 = db.recordRun({ scheduleId: s.id, startedAt: 2000, finishedAt: 2100, result: 'failed', mode: 'incremental', pid: 4242, checkpointId: null, durationMs: 100, frozenMs: null, bytes: null, error: 'boom', attempt: 2, missed: 0, willRetry: true, pruned: [], runnerPid: 1 });
    db.setPruned(r2.id, [3, 4]);
    db.setSetting('globalQuotaBytes', '1000');
    db.close();

    db = new ScheduleDb(dir);
    const back = db.require(s.id);
    assert.deepEqual({ ...back }, { ...s, state: 'paused', nextRunAt: null, incrementalsSinceFull: 2 });
    const h = db.history(s.id);
    assert.deepEqual(h.map((r) => [r.result, r.attempt, r.willRetry, r.pruned, r.missed]), [['failed', 2, true, [3, 4], 0], ['ok', 1, false, [], 2]]);
    assert.deepEqual([...db.checkpointIdsOf(s.id)], [17]);
    assert.equal(db.getSetting('globalQuotaBytes'), '1000');
    db.setSetting('globalQuotaBytes', null);
    assert.equal(db.getSetting('globalQuotaBytes'), null);
    db.remove(s.id);
    assert.equal(db.history(s.id).length, 0, 'history goes with its schedule');
    assert.throws(() => db.remove(s.id), /no schedule #/);
    assert.throws(() => db.update(999, { state: 'active' }), /no schedule #999/);
    db.close();

    const raw = new Database(join(dir, 'schedules.db'));
    assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(raw.pragma('user_version', { simple: true }), 5);
    raw.pragma('user_version = 99');
    raw.close();
    assert.throws(() => new ScheduleDb(dir), /newer Stasis/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function startHolder(dir: string, kind: string) {
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'helpers/lock-holder.ts'), dir, kind], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = new Promise<string>((res, rej) => {
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      if (buf.includes('\n')) res(buf.trim());
    });
    child.on('exit', (c) => rej(new Error(`lock holder exited ${c}`)));
  });
  return { child, line };
}

test('one scheduler holds the lock; another process sees who (pid, kind, since) and takes over when it dies', async () => {
  const dir = tmp();
  const db = new ScheduleDb(dir);
  const h = startHolder(dir, 'daemon');
  try {
    assert.equal(await h.line, 'held');
    const seen = tryAcquireLock(db, 'app', Date.now());
    assert.equal(seen.acquired, false);
    assert.equal(seen.holder.pid, h.child.pid);
    assert.equal(seen.holder.kind, 'daemon');
    assert.ok(Date.now() - seen.holder.since < 30_000);
    assert.equal(lockHolder(db, Date.now())?.pid, h.child.pid);

    // a third process also only stands by
    const h3 = startHolder(dir, 'app');
    assert.equal(await h3.line, `standby ${h.child.pid}`);
    h3.child.kill('SIGKILL');

    h.child.kill('SIGKILL');
    await new Promise((r) => h.child.once('exit', r));
    await new Promise((r) => setTimeout(r, 50)); // the zombie is reaped by now
    assert.equal(lockHolder(db, Date.now()), null, 'a dead holder holds nothing');
    const t0 = Date.now();
    const mine = tryAcquireLock(db, 'app', t0);
    assert.equal(mine.acquired, true);
    assert.deepEqual([mine.holder.pid, mine.holder.kind, mine.holder.startTime], [process.pid, 'app', processStartTime(process.pid)]);
    assert.equal(tryAcquireLock(db, 'app', t0 + 10).holder.heartbeatAt, t0, 'no disk write on every tick');
    assert.equal(tryAcquireLock(db, 'app', t0 + HEARTBEAT_EVERY_MS).holder.heartbeatAt, t0 + HEARTBEAT_EVERY_MS, 'our own re-acquire is the heartbeat');
    releaseLock(db);
    assert.equal(lockHolder(db, Date.now()), null);
  } finally {
    h.child.kill('SIGKILL');
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a live holder whose heartbeat went stale may be replaced', () => {
  const dir = tmp();
  const db = new ScheduleDb(dir);
  try {
    // Forge a row for our parent process (alive, and not us) with an old heartbeat.
    const ppid = process.ppid;
    db.db.prepare('INSERT INTO scheduler_lock (id, pid, start_time, kind, since, heartbeat_at, token) VALUES (1, ?, ?, ?, ?, ?, ?)').run(ppid, processStartTime(ppid), 'daemon', 0, 0, 'x');
    const now = LOCK_STALE_MS - 1;
    assert.equal(tryAcquireLock(db, 'app', now).acquired, false, 'fresh enough');
    assert.equal(tryAcquireLock(db, 'app', LOCK_STALE_MS + 1).acquired, true, 'stale: taken over');
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('two schedulers in one process (two engine hosts): only one acts', () => {
  const dir = tmp();
  const db = new ScheduleDb(dir);
  try {
    const a = newLockToken();
    const b = newLockToken();
    assert.equal(tryAcquireLock(db, 'app', 1000, a).acquired, true);
    const other = tryAcquireLock(db, 'app', 1000, b);
    assert.equal(other.acquired, false);
    assert.equal(other.holder.pid, process.pid);
    releaseLock(db, b);
    assert.equal(tryAcquireLock(db, 'app', 1001, b).acquired, false, 'b cannot release what a holds');
    releaseLock(db, a);
    assert.equal(tryAcquireLock(db, 'app', 1002, b).acquired, true);
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('run history is trimmed per schedule, but which checkpoints a schedule took is not forgotten', () => {
  const dir = tmp();
  const db = new ScheduleDb(dir);
  try {
    const s = db.add(spec, 0, 0);
    const other = db.add(spec, 0, 0);
    for (let i = 1; i <= 250; i++) {
      db.recordRun({ scheduleId: s.id, startedAt: i, finishedAt: i, result: 'ok', mode: 'full', pid: 1, checkpointId: i, durationMs: 1, frozenMs: 1, bytes: 1, error: null, attempt: 1, missed: 0, willRetry: false, pruned: [], runnerPid: 1 });
    }
    db.recordRun({ scheduleId: other.id, startedAt: 1, finishedAt: 1, result: 'ok', mode: 'full', pid: 1, checkpointId: 999, durationMs: 1, frozenMs: 1, bytes: 1, error: null, attempt: 1, missed: 0, willRetry: false, pruned: [], runnerPid: 1 });
    db.trimHistory(s.id, 10);
    const h = db.history(s.id, 1000);
    assert.equal(h.length, 10);
    assert.equal(h[0]!.checkpointId, 250, 'the newest are kept');
    assert.equal(db.history(other.id).length, 1, 'other schedules untouched');
    assert.equal(db.checkpointIdsOf(s.id).size, 250, 'trimmed runs still count as this schedule\'s checkpoints');
    db.forgetCheckpoints([1, 2, 3]);
    assert.equal(db.checkpointIdsOf(s.id).size, 247);
    assert.equal(db.scheduledCheckpoints().get(999), other.id);
    db.remove(other.id);
    assert.equal(db.scheduledCheckpoints().has(999), false, 'a removed schedule\'s checkpoints become the user\'s own');
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
