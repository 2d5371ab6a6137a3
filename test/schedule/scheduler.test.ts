// The scheduler core against the real store and real processes, with an injected clock: no sleeps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addSchedule, pauseSchedule, resumeSchedule, runScheduleNow, setGlobalQuota } from '../../electron/engine/schedule/service';
import { processStartTime } from '../../electron/engine/schedule/liveness';
import { makeWorld, minimalState } from './helpers/world';

const S = 1000;
const every = (ms: number) => ({ kind: 'interval' as const, everyMs: ms });
const base = { fullEvery: 0, quietHours: null, retention: {}, label: null };

test('interval runs: baseline full at once, incrementals on each slot, full every N, nothing before due', async () => {
  const w = makeWorld();
  try {
    const p = w.spawn();
    const s = addSchedule(w.db, { ...base, target: { pid: p.pid }, timing: every(30 * S), fullEvery: 2 }, w.clock.now());
    assert.equal(s.nextRunAt, w.clock.now());
    const modes: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await w.scheduler.tick();
      assert.equal(r.acting, true);
      assert.equal(r.runs.length, 1, `run ${i} was taken`);
      assert.equal((await w.scheduler.tick()).runs.length, 0, 'no second run in the same slot');
      w.clock.advance(29 * S);
      assert.equal((await w.scheduler.tick()).runs.length, 0, 'nothing before the slot');
      w.clock.advance(1 * S);
      modes.push(w.ctl.calls.at(-1)!.mode);
    }
    assert.deepEqual(modes, ['full', 'incremental', 'incremental', 'full', 'incremental', 'incremental']);
    const h = w.db.history(s.id);
    assert.equal(h.length, 6);
    assert.ok(h.every((r) => r.result === 'ok' && r.checkpointId !== null && r.frozenMs === 1.5 && r.bytes! >= 0 && r.missed === 0 && r.runnerPid === process.pid));
    assert.equal(w.store.list().length, 6);
    assert.ok(w.events.some((e) => e.event === 'schedule.run.started') && w.events.filter((e) => e.event === 'schedule.run.done').length === 6);
  } finally {
    w.close();
  }
});

test('missed runs after suspend or downtime: one catch-up run, not a burst, then back on schedule', async () => {
  const w = makeWorld();
  try {
    const p = w.spawn();
    const s = addSchedule(w.db, { ...base, target: { pid: p.pid }, timing: every(60 * S) }, w.clock.now());
    await w.scheduler.tick();
    w.clock.advance(10 * 60 * S + 5 * S); // "suspended" for 10 minutes: 10 slots passed
    const r = await w.scheduler.tick();
    assert.equal(r.runs.length, 1, 'exactly one catch-up run');
    assert.equal(r.runs[0]!.missed, 9, 'the 10 due slots are one run plus 9 missed');
    assert.equal((await w.scheduler.tick()).runs.length, 0, 'no burst on the next tick');
    const after = w.db.require(s.id);
    assert.equal(after.nextRunAt, w.clock.now() + 60 * S, 're-anchored on the catch-up run');
    assert.equal(w.ctl.calls.length, 2);
    // the same through cron
    const c = addSchedule(w.db, { ...base, target: { pid: p.pid }, timing: { kind: 'cron', expr: '*/5 * * * *' } }, w.clock.now());
    w.clock.set(w.db.require(c.id).nextRunAt! + 3 * 3600 * S); // 3 hours late: 36 slots
    const r2 = await w.scheduler.tick();
    const cr = r2.runs.filter((x) => x.scheduleId === c.id);
    assert.equal(cr.length, 1);
    assert.equal(cr[0]!.missed, 36);
    assert.ok(w.db.require(c.id).nextRunAt! > w.clock.now());
  } finally {
    w.close();
  }
});

test('a run still going when the next slot is due: that slot is skipped and recorded', async () => {
  const w = makeWorld();
  try {
    const p = w.spawn();
    const s = addSchedule(w.db, { ...base, target: { pid: p.pid }, timing: every(10 * S) }, w.clock.now());
    const t0 = w.clock.now();
    w.ctl.takesMs = 25 * S; // the run takes 2.5 intervals
    const r = await w.scheduler.tick();
    assert.deepEqual(r.runs.map((x) => x.result), ['ok', 'skipped']);
    assert.match(r.runs[1]!.error!, /2 due runs were skipped: the run started at .* was still going/);
    assert.equal(w.db.require(s.id).nextRunAt, t0 + 25 * S + 10 * S, 'next slot counted from the end of the long run');
    assert.ok(w.events.some((e) => e.event === 'schedule.run.skipped'));
  } finally {
    w.close();
  }
});

test('a failing capture is retried with backoff, reported, and then succeeds; past the retries it waits for the next slot', async () => {
  const w = makeWorld({ retry: { max: 2, baseMs: 1000, capMs: 60_000 } });
  try {
    const p = w.spawn();
    const s = addSchedule(w.db, { ...base, target: { pid: p.pid }, timing: every(60 * S) }, w.clock.now());
    const t0 = w.clock.now();
    w.ctl.failTimes = 2;
    const r1 = await w.scheduler.tick();
    assert.deepEqual(r1.runs.map((x) => [x.result, x.attempt, x.willRetry]), [['failed', 1, true]]);
    assert.match(r1.runs[0]!.error!, /traced by another program/);
    assert.equal(w.db.require(s.id).nextRunAt, t0 + 1000, 'first retry after 1 s');
    assert.equal(w.db.require(s.id).lastResult, 'failed');
    w.clock.advance(999);
    assert.equal((await w.scheduler.tick()).runs.length, 0);
    w.clock.advance(1);
    const r2 = await w.scheduler.tick();
    assert.deepEqual(r2.runs.map((x) => [x.result, x.attempt, x.willRetry]), [['failed', 2, true]]);
    assert.equal(w.db.require(s.id).nextRunAt, w.clock.now() + 2000, 'backoff doubles');
    w.clock.advance(2000);
    const r3 = await w.scheduler.tick();
    assert.deepEqual(r3.runs.map((x) => [x.result, x.attempt, x.missed]), [['ok', 3, 0]]);
    assert.equal(w.db.require(s.id).nextRunAt, t0 + 60 * S, 'the retry did not move the regular slot');
    const failed = w.events.filter((e) => e.event === 'schedule.run.failed');
    assert.equal(failed.length, 2);
    assert.equal(failed[0]!.payload.code, 'BUSY');

    // three failures in a row with max 2 retries: the third is final and the next regular slot takes over
    w.clock.set(t0 + 60 * S);
    w.ctl.failTimes = 3;
    await w.scheduler.tick();
    w.clock.advance(1000);
    await w.scheduler.tick();
    w.clock.advance(2000);
    const last = await w.scheduler.tick();
    assert.deepEqual(last.runs.map((x) => [x.result, x.attempt, x.willRetry]), [['failed', 3, false]]);
    const after = w.db.require(s.id);
    assert.equal(after.nextRunAt, t0 + 120 * S);
    assert.equal(after.failures, 0);
    assert.equal(after.state, 'active');
  } finally {
    w.close();
  }
});

test('target exit ends the schedule; its checkpoints stay', async () => {
  const w = makeWorld();
  try {
    const p = w.spawn();
    const s = addSchedule(w.db, { ...base, target: { pid: p.pid }, timing: every(5 * S) }, w.clock.now());
    await w.scheduler.tick();
    p.kill();
    await p.waitExit();
    w.clock.advance(5 * S);
    const r = await w.scheduler.tick();
    assert.equal(r.runs.length, 0);
    const after = w.db.require(s.id);
    assert.equal(after.state, 'ended');
    assert.match(after.endedReason!, /exited; the schedule ended/);
    assert.equal(after.nextRunAt, null);
    assert.equal(w.store.list().length, 1, 'the checkpoint stays');
    assert.ok(w.events.some((e) => e.event === 'schedule.ended' && e.payload.scheduleId === s.id));
    assert.throws(() => resumeSchedule(w.db, s.id, w.clock.now()), /has ended/);
  } finally {
    w.close();
  }
});

test('a named program: the schedule follows its restarts and waits (not ends) while it is not running', async () => {
  const w = makeWorld();
  try {
    const register = (pid: number) => {
      const startTime = processStartTime(pid)!;
      w.store.upsertTarget({ pid, startTime, exe: '/bin/sleeper', cmdline: ['sleeper'], name: 'editor' });
    };
    const p1 = w.spawn();
    register(p1.pid);
    const s = addSchedule(w.db, { ...base, target: { name: 'editor' }, timing: every(10 * S) }, w.clock.now());
    await w.scheduler.tick();
    assert.equal(w.ctl.calls.at(-1)!.pid, p1.pid);
    p1.kill();
    await p1.waitExit();
    w.clock.advance(10 * S);
    assert.equal((await w.scheduler.tick()).runs.length, 0);
    assert.equal(w.db.require(s.id).state, 'active');
    assert.match(w.db.require(s.id).lastError!, /No running process is named "editor"/);
    const p2 = w.spawn();
    register(p2.pid);
    w.clock.advance(10 * S);
    const r = await w.scheduler.tick();
    assert.equal(r.runs.length, 1);
    assert.equal(w.ctl.calls.at(-1)!.pid, p2.pid);
  } finally {
    w.close();
  }
});

test('quiet hours defer a run to their end; pause stops runs and resume does not catch up', async () => {
  const w = makeWorld({ start: new Date(2026, 5, 10, 23, 0).getTime() });
  try {
    const p = w.spawn();
    const s = addSchedule(w.db, { ...base, target: { pid: p.pid }, timing: every(15 * 60 * S), quietHours: { start: '22:00', end: '07:00' } }, w.clock.now());
    assert.equal((await w.scheduler.tick()).runs.length, 0);
    const morning = new Date(2026, 5, 11, 7, 0).getTime();
    assert.equal(w.db.require(s.id).nextRunAt, morning);
    w.clock.set(morning);
    const r = await w.scheduler.tick();
    assert.equal(r.runs.length, 1);
    assert.equal(r.runs[0]!.missed, 0, 'quiet hours are not "missed"');

    pauseSchedule(w.db, s.id);
    w.clock.advance(5 * 3600 * S);
    assert.equal((await w.scheduler.tick()).runs.length, 0, 'paused: nothing runs');
    const resumed = resumeSchedule(w.db, s.id, w.clock.now());
    assert.equal(resumed.nextRunAt, w.clock.now());
    const r2 = await w.scheduler.tick();
    assert.equal(r2.runs.length, 1);
    assert.equal(r2.runs[0]!.missed, 0, 'no catch-up for the paused time');
  } finally {
    w.close();
  }
});

test('manual schedules run only when asked', async () => {
  const w = makeWorld();
  try {
    const p = w.spawn();
    const s = addSchedule(w.db, { ...base, target: { pid: p.pid }, timing: { kind: 'manual' } }, w.clock.now());
    assert.equal(s.nextRunAt, null);
    w.clock.advance(3600 * S);
    assert.equal((await w.scheduler.tick()).runs.length, 0);
    runScheduleNow(w.db, s.id, w.clock.now());
    assert.equal((await w.scheduler.tick()).runs.length, 1);
    assert.equal(w.db.require(s.id).nextRunAt, null);
  } finally {
    w.close();
  }
});

test('retention prunes this schedule\'s own checkpoints to the policy through store.remove; pinned and manual ones stay; every kept one still materializes', async () => {
  const w = makeWorld();
  try {
    const p = w.spawn();
    const s = addSchedule(w.db, { ...base, target: { pid: p.pid }, timing: every(10 * S), retention: { keepLast: 3 } }, w.clock.now());
    await w.scheduler.tick(); // #1
    const first = w.store.list()[0]!;
    w.store.setPinned(first.id, true);
    // a manual checkpoint of the same target, not made by the schedule
    const t = w.store.getTarget(first.targetId)!;
    const wr = w.store.begin({ targetId: t.id, parentId: first.id, mode: 'incremental', dirtyTracking: 'hash', coverage: 'complete', label: 'by hand' });
    wr.setState(minimalState(p.pid, t.startTime));
    wr.addPages(0x10000n, Buffer.alloc(4096, 0x77));
    const manual = wr.commit();
    for (let i = 0; i < 6; i++) {
      w.clock.advance(10 * S);
      await w.scheduler.tick();
    }
    const ours = w.db.checkpointIdsOf(s.id);
    const left = w.store.list();
    const leftOurs = left.filter((c) => ours.has(c.id) && !c.pinned).map((c) => c.id);
    assert.equal(leftOurs.length, 3, `keep last 3 of ours, got ${leftOurs.join(',')}`);
    assert.ok(left.some((c) => c.id === first.id), 'pinned kept');
    assert.ok(left.some((c) => c.id === manual.id), 'manual kept');
    const pruned = w.db.history(s.id).flatMap((r) => r.pruned);
    assert.equal(pruned.length, 3);
    for (const c of left) assert.ok([...w.store.materialize(c.id)].length > 0, `checkpoint ${c.id} still reads`);
    assert.ok(w.store.verify().ok, JSON.stringify(w.store.verify().problems));
  } finally {
    w.close();
  }
});

test('per-target and global quotas prune the oldest and tell the user', async () => {
  const w = makeWorld();
  try {
    const p = w.spawn();
    const p2 = w.spawn();
    const a = addSchedule(w.db, { ...base, target: { pid: p.pid }, timing: every(10 * S), retention: { quotaBytes: 1 } }, w.clock.now());
    for (let i = 0; i < 3; i++) {
      await w.scheduler.tick();
      w.clock.advance(10 * S);
    }
    const quota = w.events.filter((e) => e.event === 'schedule.quota' && e.payload.scope === 'target');
    assert.ok(quota.length >= 1);
    assert.equal(w.store.list().length, 1, 'only the newest survives a 1-byte quota');
    assert.equal(quota.at(-1)!.payload.overQuota, true, 'and the user is told it is still over');

    w.db.update(a.id, { retention: {} });
    addSchedule(w.db, { ...base, target: { pid: p2.pid }, timing: every(10 * S) }, w.clock.now());
    setGlobalQuota(w.db, 1);
    for (let i = 0; i < 2; i++) {
      await w.scheduler.tick();
      w.clock.advance(10 * S);
    }
    const byTarget = new Map<number, number>();
    for (const c of w.store.list()) byTarget.set(c.targetId, (byTarget.get(c.targetId) ?? 0) + 1);
    assert.deepEqual([...byTarget.values()], [1, 1], 'the global quota keeps only the newest of each target');
    assert.ok(w.events.some((e) => e.event === 'schedule.quota' && e.payload.scope === 'global'));
  } finally {
    w.close();
  }
});

test('the wall clock going back past the last run re-anchors the schedule instead of waiting for it to catch up', async () => {
  const w = makeWorld();
  try {
    const p = w.spawn();
    const s = addSchedule(w.db, { ...base, target: { pid: p.pid }, timing: every(60 * S) }, w.clock.now());
    await w.scheduler.tick();
    w.clock.advance(-3 * 3600 * S); // clock set back 3 hours
    assert.equal((await w.scheduler.tick()).runs.length, 0);
    assert.equal(w.db.require(s.id).nextRunAt, w.clock.now() + 60 * S);
    w.clock.advance(60 * S);
    assert.equal((await w.scheduler.tick()).runs.length, 1);
  } finally {
    w.close();
  }
});

test('a retry deferred by quiet hours runs at their end without inventing skipped runs', async () => {
  const w = makeWorld({ start: new Date(2026, 5, 10, 21, 59, 59).getTime() });
  try {
    const p = w.spawn();
    const s = addSchedule(w.db, { ...base, target: { pid: p.pid }, timing: every(15 * 60 * S), quietHours: { start: '22:00', end: '07:00' } }, w.clock.now());
    w.ctl.failTimes = 1;
    assert.deepEqual((await w.scheduler.tick()).runs.map((r) => [r.result, r.willRetry]), [['failed', true]]);
    w.clock.advance(1000); // 22:00:00: the retry is due, but quiet hours began
    assert.equal((await w.scheduler.tick()).runs.length, 0);
    const morning = new Date(2026, 5, 11, 7, 0).getTime();
    assert.equal(w.db.require(s.id).nextRunAt, morning);
    w.clock.set(morning);
    const r = await w.scheduler.tick();
    assert.deepEqual(r.runs.map((x) => [x.result, x.attempt]), [['ok', 2]]);
    assert.equal(w.db.require(s.id).nextRunAt, morning + 15 * 60 * S);
    assert.equal(w.db.history(s.id).filter((x) => x.result === 'skipped').length, 0);
  } finally {
    w.close();
  }
});

test('pid + name: the running process is registered under the name at once, and the schedule follows the name', async () => {
  const w = makeWorld();
  try {
    const p = w.spawn();
    const s = addSchedule(w.db, { ...base, target: { pid: p.pid, name: 'worker' }, timing: every(10 * S) }, w.clock.now(), () => w.store);
    assert.deepEqual(s.target, { kind: 'name', name: 'worker' });
    const t = w.store.listTargets().find((x) => x.name === 'worker');
    assert.equal(t?.pid, p.pid);
    assert.equal(t?.startTime, processStartTime(p.pid));
    assert.ok(t!.exe.endsWith('/schedule-target'), t!.exe);
    assert.equal((await w.scheduler.tick()).runs.length, 1);
    assert.equal(w.ctl.calls[0]!.pid, p.pid);
  } finally {
    w.close();
  }
});
