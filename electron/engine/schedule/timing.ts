/**
 * When a schedule is due: the next slot after a time (fixed interval or cron via croner), how many
 * slots a gap swallowed (for one catch-up run instead of a burst), and quiet hours. Pure functions of
 * their arguments; never reads the clock itself, never touches the database.
 */
import { Cron } from 'croner';
import { StasisError } from '../../../shared/errors';
import type { QuietHours, ScheduleTiming } from './types';

export const MIN_INTERVAL_MS = 1000;
export const MAX_INTERVAL_MS = 366 * 24 * 3600 * 1000;

/** Throws INVALID_INPUT when the timing can never produce a run (bad cron, too short an interval). */
export function validateTiming(timing: ScheduleTiming): void {
  if (timing.kind === 'interval') {
    if (!Number.isFinite(timing.everyMs) || timing.everyMs < MIN_INTERVAL_MS || timing.everyMs > MAX_INTERVAL_MS) {
      throw new StasisError('INVALID_INPUT', `An interval of ${timing.everyMs} ms is out of range; use between 1 second and 366 days (e.g. --every 30s, 15m, 6h, 1d).`);
    }
  } else if (timing.kind === 'cron') {
    let next: Date | null;
    try {
      next = new Cron(timing.expr, { paused: true }).nextRun();
    } catch (err) {
      throw new StasisError('INVALID_INPUT', `The cron expression "${timing.expr}" is not valid (${(err as Error).message}); use five or six fields, e.g. "*/15 * * * *".`);
    }
    if (!next) throw new StasisError('INVALID_INPUT', `The cron expression "${timing.expr}" never fires again; pick one with a future occurrence.`);
  }
}

/** The first slot strictly after `after`, or null for manual schedules (and cron patterns that ended). */
export function nextSlot(timing: ScheduleTiming, after: number): number | null {
  if (timing.kind === 'interval') return after + timing.everyMs;
  if (timing.kind === 'cron') {
    const d = new Cron(timing.expr, { paused: true }).nextRun(new Date(after));
    return d ? d.getTime() : null;
  }
  return null;
}

/** Where a new (or resumed) schedule starts: interval schedules take a baseline at once. */
export function firstSlot(timing: ScheduleTiming, now: number): number | null {
  if (timing.kind === 'interval') return now;
  return nextSlot(timing, now);
}

/** Slots s with from < s <= to (capped: a month-long gap of 1-second slots is "many", not a loop). */
export function slotsBetween(timing: ScheduleTiming, from: number, to: number, cap = 10_000): number {
  if (to <= from) return 0;
  if (timing.kind === 'interval') return Math.min(cap, Math.floor((to - from) / timing.everyMs));
  if (timing.kind === 'cron') {
    const cron = new Cron(timing.expr, { paused: true });
    let n = 0;
    let t: Date | null = new Date(from);
    while (n < cap && (t = cron.nextRun(t)) && t.getTime() <= to) n++;
    return n;
  }
  return 0;
}

function parseHm(s: string): number {
  const m = /^(\d{1,2}):(\d{2})$/.exec(s);
  if (!m || Number(m[1]) > 23 || Number(m[2]) > 59) {
    throw new StasisError('INVALID_INPUT', `Quiet hours "${s}" is not a time of day; write it as HH:MM, e.g. 22:30.`);
  }
  return Number(m[1]) * 60 + Number(m[2]);
}

export function validateQuietHours(q: QuietHours): void {
  if (parseHm(q.start) === parseHm(q.end)) {
    throw new StasisError('INVALID_INPUT', `Quiet hours ${q.start}-${q.end} are empty; give two different times.`);
  }
}

/** Whether local time t falls inside the window [start, end). */
export function inQuietHours(q: QuietHours | null, t: number): boolean {
  if (!q) return false;
  const start = parseHm(q.start);
  const end = parseHm(q.end);
  const d = new Date(t);
  const m = d.getHours() * 60 + d.getMinutes();
  return start < end ? m >= start && m < end : m >= start || m < end;
}

/** The first moment after t at which the quiet window is over (t must be inside it). */
export function quietHoursEnd(q: QuietHours, t: number): number {
  const end = parseHm(q.end);
  const d = new Date(t);
  const candidate = new Date(d.getFullYear(), d.getMonth(), d.getDate(), Math.floor(end / 60), end % 60, 0, 0);
  if (candidate.getTime() <= t) candidate.setDate(candidate.getDate() + 1);
  return candidate.getTime();
}
