/**
 * The single-acting-scheduler lock of a store: exactly one scheduler (the app's or a `stasis daemon`)
 * takes runs; every other one stands by and can show who holds it (pid, app|daemon, since). The lock
 * is a row in schedules.db taken in an IMMEDIATE transaction; a holder is live while its pid exists
 * with the same start time and its heartbeat is fresh, so a crashed holder never blocks the store.
 * Owns the lock row only.
 */
import { randomUUID } from 'node:crypto';
import { StasisError } from '../../../shared/errors';
import type { ScheduleDb } from './db';
import { isSameProcess, processStartTime } from './liveness';
import type { LockHolder } from './types';

/**
 * A live holder whose heartbeat is older than this is presumed hung and may be replaced. Long: the
 * heartbeat stops during a (synchronous) capture, and a huge process can take minutes to capture.
 */
export const LOCK_STALE_MS = 15 * 60_000;
/** How often the holder rewrites its heartbeat (ticks in between only check it). */
export const HEARTBEAT_EVERY_MS = 60_000;

interface LockRow {
  pid: number;
  start_time: string;
  kind: 'app' | 'daemon';
  since: number;
  heartbeat_at: number;
  token: string;
}

/** Identifies one scheduler instance; by default one per module instance (i.e. per thread). */
export function newLockToken(): string {
  return randomUUID();
}
const defaultToken = newLockToken();

const toHolder = (r: LockRow): LockHolder => ({ pid: r.pid, startTime: r.start_time, kind: r.kind, since: r.since, heartbeatAt: r.heartbeat_at });

export function isHolderLive(h: LockHolder, now: number): boolean {
  return isSameProcess(h.pid, h.startTime) && now - h.heartbeatAt < LOCK_STALE_MS;
}

/** The current live holder, or null (a dead holder's row counts as free). */
export function lockHolder(db: ScheduleDb, now: number): LockHolder | null {
  const r = db.db.prepare('SELECT * FROM scheduler_lock WHERE id = 1').get() as LockRow | undefined;
  if (!r) return null;
  const h = toHolder(r);
  return isHolderLive(h, now) ? h : null;
}

export interface LockAttempt {
  acquired: boolean;
  holder: LockHolder;
}

/** Takes the lock for this process, or refreshes it if already ours (the heartbeat). */
export function tryAcquireLock(db: ScheduleDb, kind: 'app' | 'daemon', now: number, token = defaultToken): LockAttempt {
  const me = process.pid;
  const myStart = processStartTime(me);
  if (!myStart) throw new StasisError('INTERNAL', 'Cannot read this process\'s own /proc entry; is /proc mounted?');
  return db.db.transaction((): LockAttempt => {
    const r = db.db.prepare('SELECT * FROM scheduler_lock WHERE id = 1').get() as LockRow | undefined;
    if (r && r.pid === me && r.start_time === myStart && r.token === token) {
      if (now >= r.heartbeat_at && now - r.heartbeat_at < HEARTBEAT_EVERY_MS) return { acquired: true, holder: toHolder(r) };
      db.db.prepare('UPDATE scheduler_lock SET heartbeat_at = ? WHERE id = 1').run(now);
      return { acquired: true, holder: { ...toHolder(r), heartbeatAt: now } };
    }
    if (r && isHolderLive(toHolder(r), now)) return { acquired: false, holder: toHolder(r) };
    db.db
      .prepare('INSERT INTO scheduler_lock (id, pid, start_time, kind, since, heartbeat_at, token) VALUES (1, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET pid = excluded.pid, start_time = excluded.start_time, kind = excluded.kind, since = excluded.since, heartbeat_at = excluded.heartbeat_at, token = excluded.token')
      .run(me, myStart, kind, now, now, token);
    return { acquired: true, holder: { pid: me, startTime: myStart, kind, since: now, heartbeatAt: now } };
  }).immediate();
}

/** Gives the lock up if this process holds it. */
export function releaseLock(db: ScheduleDb, token = defaultToken): void {
  if (!db.db.open) return;
  db.db.prepare('DELETE FROM scheduler_lock WHERE id = 1 AND pid = ? AND start_time = ? AND token = ?').run(process.pid, processStartTime(process.pid) ?? '', token);
}
