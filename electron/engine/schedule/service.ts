/**
 * The operations the API and the CLI perform on schedules (add, update, pause, resume, run now,
 * remove, global quota), with their validation. Writes schedules.db only; never captures or prunes
 * (that is the acting scheduler's job, which sees these changes on its next tick).
 */
import { StasisError } from '../../../shared/errors';
import type { Store } from '../store/api';
import type { ScheduleDb } from './db';
import { readTargetIdentity } from '../proc/identity';
import { processStartTime } from './liveness';
import { GLOBAL_QUOTA_SETTING } from './scheduler';
import { firstSlot, validateQuietHours, validateTiming } from './timing';
import type { QuietHours, RetentionPolicy, Schedule, ScheduleTiming, SendTarget } from './types';
import { parseAddress, tokenKey } from '../transfer/tls-link';

export interface AddInput {
  /** {pid, name}: follow the program by name, starting with this running process (registered under the name now). */
  target: { pid: number } | { name: string } | { pid: number; name: string };
  timing: ScheduleTiming;
  fullEvery: number;
  quietHours: QuietHours | null;
  retention: RetentionPolicy;
  label: string | null;
  sendTo?: SendTarget | null;
}

/** A destination is checked here too (the CLI and tests call this without the contract): a clear error before anything is stored. */
function validateSendTo(t: SendTarget | null | undefined): void {
  if (!t) return;
  parseAddress(t.address, false);
  tokenKey(t.token);
}

export function addSchedule(db: ScheduleDb, input: AddInput, now: number, store?: () => Store): Schedule {
  validateTiming(input.timing);
  if (input.quietHours) validateQuietHours(input.quietHours);
  validateSendTo(input.sendTo);
  let target: Schedule['target'];
  if ('pid' in input.target) {
    const pid = input.target.pid;
    const startTime = processStartTime(pid);
    if (startTime === null) throw new StasisError('PROCESS_GONE', `There is no running process ${pid}; check the pid with \`stasis ps\`.`);
    if ('name' in input.target) {
      if (!store) throw new StasisError('INTERNAL', 'Scheduling a process by name needs the store to register it.');
      // The scheduler finds a named program through the store's targets; register this process now
      // so the first run does not wait for a checkpoint that gave it its name.
      store().upsertTarget(readTargetIdentity(pid, input.target.name));
      target = { kind: 'name', name: input.target.name };
    } else {
      target = { kind: 'pid', pid, startTime };
    }
  } else {
    target = { kind: 'name', name: input.target.name };
  }
  return db.add({ target, timing: input.timing, fullEvery: input.fullEvery, quietHours: input.quietHours, retention: input.retention, label: input.label, sendTo: input.sendTo ?? null }, now, firstSlot(input.timing, now));
}

export interface UpdateInput {
  timing?: ScheduleTiming;
  fullEvery?: number;
  quietHours?: QuietHours | null;
  retention?: RetentionPolicy;
  label?: string | null;
  /** null: stop sending. */
  sendTo?: SendTarget | null;
}

export function updateSchedule(db: ScheduleDb, id: number, input: UpdateInput, now: number): Schedule {
  const s = db.require(id);
  if (input.timing) validateTiming(input.timing);
  if (input.quietHours) validateQuietHours(input.quietHours);
  validateSendTo(input.sendTo);
  const patch: Parameters<ScheduleDb['update']>[1] = { ...input };
  // Another destination (or none) holds none of what the last one confirmed: its status starts over.
  if (input.sendTo !== undefined) patch.lastSend = null;
  if (input.timing && s.state === 'active') patch.nextRunAt = firstSlot(input.timing, now);
  return db.update(id, patch);
}

export function pauseSchedule(db: ScheduleDb, id: number): Schedule {
  const s = db.require(id);
  assertNotEnded(s);
  return db.update(id, { state: 'paused', nextRunAt: null, failures: 0, retrySlotAt: null });
}

export function resumeSchedule(db: ScheduleDb, id: number, now: number): Schedule {
  const s = db.require(id);
  assertNotEnded(s);
  if (s.state === 'active') return s;
  // No catch-up for the paused time: pausing means "not now", not "later, all at once".
  return db.update(id, { state: 'active', nextRunAt: firstSlot(s.timing, now), failures: 0, retrySlotAt: null });
}

export function runScheduleNow(db: ScheduleDb, id: number, now: number): Schedule {
  const s = db.require(id);
  assertNotEnded(s);
  if (s.state === 'paused') throw new StasisError('CONFLICT', `Schedule #${id} is paused; resume it first (\`stasis schedule resume ${id}\`).`);
  return db.update(id, { nextRunAt: now, failures: 0, retrySlotAt: null });
}

export function removeSchedule(db: ScheduleDb, id: number): void {
  db.remove(id);
}

export function getGlobalQuota(db: ScheduleDb): number | null {
  const v = db.getSetting(GLOBAL_QUOTA_SETTING);
  return v === null ? null : Number(v);
}

export function setGlobalQuota(db: ScheduleDb, bytes: number | null): number | null {
  db.setSetting(GLOBAL_QUOTA_SETTING, bytes ? String(bytes) : null);
  return getGlobalQuota(db);
}

function assertNotEnded(s: Schedule): void {
  if (s.state === 'ended') throw new StasisError('CONFLICT', `Schedule #${s.id} has ended (${s.endedReason ?? 'its target is gone'}); remove it, or add a new one for the running process.`);
}


