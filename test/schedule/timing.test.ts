import { test } from 'node:test';
import assert from 'node:assert/strict';
import { firstSlot, inQuietHours, nextSlot, quietHoursEnd, slotsBetween, validateQuietHours, validateTiming } from '../../electron/engine/schedule/timing';
import { parseDuration, parseSize } from '../../electron/engine/schedule/units';
import { StasisError } from '../../shared/errors';

const local = (h: number, m = 0, d = 10) => new Date(2026, 5, d, h, m).getTime();

test('interval slots follow the anchor; a new interval schedule runs at once', () => {
  const t = { kind: 'interval' as const, everyMs: 30_000 };
  assert.equal(firstSlot(t, 1000), 1000);
  assert.equal(nextSlot(t, 1000), 31_000);
  assert.equal(slotsBetween(t, 1000, 1000 + 95_000), 3);
  assert.equal(slotsBetween(t, 1000, 1000), 0);
  assert.equal(slotsBetween({ kind: 'interval', everyMs: 1000 }, 0, 1e12), 10_000, 'capped, never a loop over a year of seconds');
});

test('cron slots come from croner; manual has none', () => {
  const t = { kind: 'cron' as const, expr: '*/15 * * * *' };
  const base = local(10, 7);
  assert.equal(nextSlot(t, base), local(10, 15));
  assert.equal(firstSlot(t, base), local(10, 15));
  assert.equal(slotsBetween(t, local(10, 0), local(12, 0)), 8);
  assert.equal(nextSlot({ kind: 'manual' }, base), null);
  assert.equal(firstSlot({ kind: 'manual' }, base), null);
});

test('invalid timings are refused with an actionable message', () => {
  assert.throws(() => validateTiming({ kind: 'cron', expr: 'every tuesday' }), (e: unknown) => e instanceof StasisError && e.code === 'INVALID_INPUT' && /cron expression/.test(e.message));
  assert.throws(() => validateTiming({ kind: 'interval', everyMs: 10 }), /out of range/);
  validateTiming({ kind: 'interval', everyMs: 1000 });
  validateTiming({ kind: 'cron', expr: '0 3 * * *' });
  validateTiming({ kind: 'manual' });
});

test('quiet hours: a plain window and one that wraps midnight, end exclusive', () => {
  const day = { start: '09:00', end: '17:30' };
  assert.equal(inQuietHours(day, local(8, 59)), false);
  assert.equal(inQuietHours(day, local(9, 0)), true);
  assert.equal(inQuietHours(day, local(17, 29)), true);
  assert.equal(inQuietHours(day, local(17, 30)), false);
  assert.equal(quietHoursEnd(day, local(12, 0)), local(17, 30));
  const night = { start: '22:00', end: '07:00' };
  assert.equal(inQuietHours(night, local(23, 0)), true);
  assert.equal(inQuietHours(night, local(3, 0)), true);
  assert.equal(inQuietHours(night, local(7, 0)), false);
  assert.equal(inQuietHours(night, local(12, 0)), false);
  assert.equal(quietHoursEnd(night, local(23, 0)), local(7, 0, 11), 'ends the next morning');
  assert.equal(quietHoursEnd(night, local(3, 0)), local(7, 0));
  assert.equal(inQuietHours(null, local(3, 0)), false);
  assert.throws(() => validateQuietHours({ start: '25:00', end: '07:00' }), /HH:MM/);
  assert.throws(() => validateQuietHours({ start: '07:00', end: '07:00' }), /empty/);
});

test('durations and sizes parse from their CLI forms', () => {
  assert.equal(parseDuration('30s'), 30_000);
  assert.equal(parseDuration('15m'), 900_000);
  assert.equal(parseDuration('1.5h'), 5_400_000);
  assert.equal(parseDuration('2d'), 172_800_000);
  assert.equal(parseDuration('45'), 45_000);
  assert.throws(() => parseDuration('soon'), /not a duration/);
  assert.equal(parseSize('500M'), 500 * 1024 ** 2);
  assert.equal(parseSize('1.5GiB'), Math.round(1.5 * 1024 ** 3));
  assert.equal(parseSize('4096'), 4096);
  assert.throws(() => parseSize('big'), /not a size/);
});

test('notifications: final failures, ended schedules and quotas are shown; routine retries are not', async () => {
  const { scheduleNotice } = await import('../../electron/engine/schedule/notices');
  assert.equal(scheduleNotice('schedule.run.failed', { run: { scheduleId: 1, willRetry: true, error: 'x' } }), null);
  assert.match(scheduleNotice('schedule.run.failed', { run: { scheduleId: 1, pid: 9, willRetry: false, error: 'Process 9 is traced.' } })!.body, /Schedule #1 \(pid 9\): Process 9 is traced\. It will try again/);
  assert.equal(scheduleNotice('schedule.ended', { scheduleId: 2, reason: 'Process 5 exited.' })!.title, 'Schedule ended');
  assert.match(scheduleNotice('schedule.quota', { scheduleId: 3, scope: 'target', quotaBytes: 1024, pruned: [1, 2], overQuota: false })!.body, /the 2 oldest checkpoints were deleted/);
  assert.match(scheduleNotice('schedule.quota', { scheduleId: null, scope: 'global', quotaBytes: 1024, pruned: [], overQuota: true })!.body, /global checkpoint quota \(1.0 KiB\) is still exceeded/);
  assert.equal(scheduleNotice('schedule.quota', { scheduleId: 3, scope: 'target', quotaBytes: 1, pruned: [], overQuota: false }), null);
  assert.equal(scheduleNotice('schedule.run.done', {}), null);
});
