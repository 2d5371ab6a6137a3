import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyQuota, planRetention, type RetentionItem } from '../../electron/engine/schedule/retention';

const H = 3_600_000;
const D = 24 * H;
/** Local-time dates, as the buckets are local. */
const at = (y: number, mo: number, d: number, h = 12, mi = 0) => new Date(y, mo - 1, d, h, mi).getTime();

function items(times: number[], opts: { bytes?: number; pinned?: number[] } = {}): RetentionItem[] {
  return times.map((t, i) => ({ id: i + 1, createdAt: t, bytes: opts.bytes ?? 100, protected: (opts.pinned ?? []).includes(i + 1) }));
}
const kept = (p: ReturnType<typeof planRetention>) => p.keep.map((k) => k.id).sort((a, b) => a - b);
const pruned = (p: ReturnType<typeof planRetention>) => p.prune.map((k) => k.id).sort((a, b) => a - b);

test('no keep rules and no quota keeps everything', () => {
  const p = planRetention(items([at(2026, 1, 1), at(2026, 1, 2)]), {});
  assert.deepEqual(kept(p), [1, 2]);
  assert.deepEqual(p.prune, []);
});

test('keep last N keeps the N newest regardless of input order', () => {
  const base = at(2026, 3, 1);
  const list = items([0, 1, 2, 3, 4, 5].map((i) => base + i * 1000)).reverse();
  const p = planRetention(list, { keepLast: 3 });
  assert.deepEqual(kept(p), [4, 5, 6]);
  assert.deepEqual(pruned(p), [1, 2, 3]);
  assert.ok(p.prune.every((x) => x.reason === 'policy'));
});

test('pinned checkpoints are never pruned, not by rules and not by the quota', () => {
  const base = at(2026, 3, 1);
  const list = items([0, 1, 2, 3, 4].map((i) => base + i * 1000), { pinned: [1, 2], bytes: 1000 });
  const p = planRetention(list, { keepLast: 1, quotaBytes: 10 });
  assert.deepEqual(kept(p), [1, 2, 5]);
  assert.deepEqual(pruned(p), [3, 4]);
  assert.equal(p.overQuota, true, 'pinned + newest alone exceed the quota and the plan says so');
  assert.deepEqual(p.keep.find((k) => k.id === 1)!.reasons, ['protected']);
});

test('hourly keeps the newest of each of the last N hours', () => {
  // 3 per hour over 4 hours: 10:00 10:20 10:40 11:00 ... 13:40
  const times: number[] = [];
  for (let h = 10; h <= 13; h++) for (const m of [0, 20, 40]) times.push(at(2026, 5, 5, h, m));
  const p = planRetention(items(times), { hourly: 3 });
  // newest of 13h (id 12), 12h (id 9), 11h (id 6)
  assert.deepEqual(kept(p), [6, 9, 12]);
  assert.equal(p.prune.length, 9);
});

test('daily, weekly and monthly buckets combine, each counting its own buckets', () => {
  // one checkpoint a day at noon from 2026-01-01 to 2026-03-31 (90 days)
  const times: number[] = [];
  for (let d = 0; d < 90; d++) times.push(at(2026, 1, 1) + d * D);
  const list = items(times);
  const p = planRetention(list, { daily: 7, weekly: 4, monthly: 3 });
  const byId = new Map(list.map((i) => [i.id, new Date(i.createdAt)]));
  const keptDates = kept(p).map((id) => byId.get(id)!);
  // daily: Mar 25..31 (7), weekly: the newest of 4 ISO weeks, monthly: the newest of Mar, Feb, Jan
  const iso = (d: Date) => `${d.getMonth() + 1}-${d.getDate()}`;
  const keptSet = new Set(keptDates.map(iso));
  for (let d = 25; d <= 31; d++) assert.ok(keptSet.has(`3-${d}`), `daily keeps Mar ${d}`);
  assert.ok(keptSet.has('2-28') && keptSet.has('1-31'), 'monthly keeps the last day of Feb and Jan');
  // weeks of 2026: Mar 29 (Sun) closes the week Mar 23-29, Mar 22 closes Mar 16-22, Mar 15 closes Mar 9-15
  for (const d of ['3-22', '3-15']) assert.ok(keptSet.has(d), `weekly keeps ${d}`);
  assert.equal(kept(p).length, 7 + 2 + 2, 'buckets overlapping another rule do not add extra keeps');
  const mar31 = p.keep.find((k) => iso(byId.get(k.id)!) === '3-31')!;
  assert.deepEqual(mar31.reasons.sort(), ['daily', 'monthly', 'newest', 'weekly'].sort());
});

test('ISO week boundaries: Sunday and Monday fall in different weeks; Jan 1 2027 belongs to 2026-W53', () => {
  const sun = at(2026, 12, 27);
  const mon = at(2026, 12, 28);
  const fri = at(2027, 1, 1);
  const sat = at(2027, 1, 2);
  const p = planRetention(items([sun, mon, fri, sat]), { weekly: 5 });
  // weeks: W52 {sun}, W53 {mon, fri, sat} -> newest of W53 is sat (id 4), of W52 is sun (id 1)
  assert.deepEqual(kept(p), [1, 4]);
});

test('the newest checkpoint survives even a rule that would not pick it', () => {
  const p = planRetention(items([at(2026, 1, 1), at(2026, 1, 2)]), { monthly: 0, keepLast: 0, daily: 0, hourly: 0, weekly: 0 });
  assert.deepEqual(kept(p), [1, 2], 'all-zero rules mean no rules');
  const q = planRetention(items([at(2026, 1, 1, 10), at(2026, 1, 1, 11)]), { daily: 1 });
  assert.deepEqual(kept(q), [2]);
});

test('quota prunes the oldest kept checkpoints until the kept bytes fit', () => {
  const base = at(2026, 2, 2);
  const list = items([0, 1, 2, 3, 4, 5].map((i) => base + i * 1000), { bytes: 100 });
  const p = planRetention(list, { keepLast: 5, quotaBytes: 350 });
  assert.deepEqual(pruned(p), [1, 2, 3]);
  assert.deepEqual(p.prune.map((x) => [x.id, x.reason]).sort(), [[1, 'policy'], [2, 'quota'], [3, 'quota']]);
  assert.equal(p.keptBytes, 300);
  assert.equal(p.totalBytes, 600);
  assert.equal(p.overQuota, false);
});

test('quota alone (no keep rules) prunes oldest first and keeps the newest even if it alone is too big', () => {
  const list: RetentionItem[] = [
    { id: 1, createdAt: 1, bytes: 50, protected: false },
    { id: 2, createdAt: 2, bytes: 50, protected: false },
    { id: 3, createdAt: 3, bytes: 500, protected: false },
  ];
  const p = planRetention(list, { quotaBytes: 100 });
  assert.deepEqual(pruned(p), [1, 2]);
  assert.deepEqual(kept(p), [3]);
  assert.equal(p.overQuota, true);
});

test('global quota keeps the newest of every target and prunes the oldest across targets', () => {
  const list: RetentionItem[] = [
    { id: 1, createdAt: 10, bytes: 100, protected: false, group: 'a' },
    { id: 2, createdAt: 20, bytes: 100, protected: false, group: 'b' },
    { id: 3, createdAt: 30, bytes: 100, protected: false, group: 'a' },
    { id: 4, createdAt: 40, bytes: 100, protected: true, group: 'b' },
    { id: 5, createdAt: 50, bytes: 100, protected: false, group: 'b' },
  ];
  assert.deepEqual(applyQuota(list, 300), { prune: [1, 2], overQuota: false });
  assert.deepEqual(applyQuota(list, 100), { prune: [1, 2], overQuota: true });
  assert.deepEqual(applyQuota(list, 1000), { prune: [], overQuota: false });
  assert.deepEqual(applyQuota(list, undefined), { prune: [], overQuota: false });
});

test('ties in time are broken by id so the plan is deterministic', () => {
  const list: RetentionItem[] = [3, 1, 2].map((id) => ({ id, createdAt: 5, bytes: 1, protected: false }));
  assert.deepEqual(kept(planRetention(list, { keepLast: 1 })), [3]);
});
