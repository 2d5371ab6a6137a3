/**
 * schedules.db: the schedules, their run history, scheduler settings (global quota) and the single
 * scheduler lock row, in its own SQLite file inside the store directory (WAL, versioned migrations).
 * Owns only this file; must never open or touch the store's own index or segments.
 */
import Database from 'better-sqlite3';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { StasisError } from '../../../shared/errors';
import type { LastSend, SendTarget, QuietHours, RetentionPolicy, RunRecord, RunResult, Schedule, ScheduleSpec, ScheduleState, ScheduleTarget, ScheduleTiming } from './types';
import { useWal } from '../store/schema';

export const SCHEDULE_DB_FILE = 'schedules.db';

/** Each entry moves the file from version i to i+1; never edit a released one, append. */
const migrations: string[] = [
  `CREATE TABLE schedules (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     target TEXT NOT NULL,
     timing TEXT NOT NULL,
     full_every INTEGER NOT NULL DEFAULT 0,
     quiet_hours TEXT,
     retention TEXT NOT NULL,
     label TEXT,
     state TEXT NOT NULL CHECK (state IN ('active','paused','ended')),
     ended_reason TEXT,
     created_at INTEGER NOT NULL,
     next_run_at INTEGER,
     last_run_at INTEGER,
     last_result TEXT,
     last_error TEXT,
     incrementals_since_full INTEGER NOT NULL DEFAULT 0,
     failures INTEGER NOT NULL DEFAULT 0
   );
   CREATE TABLE runs (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     schedule_id INTEGER NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
     started_at INTEGER NOT NULL,
     finished_at INTEGER NOT NULL,
     result TEXT NOT NULL CHECK (result IN ('ok','failed','skipped')),
     mode TEXT,
     pid INTEGER,
     checkpoint_id INTEGER,
     duration_ms REAL,
     frozen_ms REAL,
     bytes INTEGER,
     error TEXT,
     attempt INTEGER NOT NULL DEFAULT 1,
     missed INTEGER NOT NULL DEFAULT 0,
     will_retry INTEGER NOT NULL DEFAULT 0,
     pruned TEXT NOT NULL DEFAULT '[]',
     runner_pid INTEGER NOT NULL
   );
   CREATE INDEX runs_by_schedule ON runs(schedule_id, id);
   CREATE INDEX runs_by_checkpoint ON runs(checkpoint_id);
   CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
   CREATE TABLE scheduler_lock (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     pid INTEGER NOT NULL,
     start_time TEXT NOT NULL,
     kind TEXT NOT NULL,
     since INTEGER NOT NULL,
     heartbeat_at INTEGER NOT NULL
   );`,
  `ALTER TABLE schedules ADD COLUMN retry_slot_at INTEGER;`,
  // Which scheduler instance of the holding process: two in one process (two engine hosts) must not both act.
  `ALTER TABLE scheduler_lock ADD COLUMN token TEXT NOT NULL DEFAULT '';`,
  // Which checkpoints a schedule took, apart from the run history, so trimming history never turns
  // a scheduled checkpoint into one retention may not prune. Dropped with the schedule: its
  // checkpoints then count as the user's own (never pruned by any policy or quota).
  `CREATE TABLE schedule_checkpoints (checkpoint_id INTEGER PRIMARY KEY, schedule_id INTEGER NOT NULL);
   INSERT OR IGNORE INTO schedule_checkpoints (checkpoint_id, schedule_id) SELECT checkpoint_id, schedule_id FROM runs WHERE checkpoint_id IS NOT NULL;`,
  // "Also send to": the destination with its pairing token (this file is 0600 in the 0700 store), and the last send's outcome.
  `ALTER TABLE schedules ADD COLUMN send_to TEXT;
   ALTER TABLE schedules ADD COLUMN last_send TEXT;`,
];

/** Runs kept per schedule; older ones are trimmed (a 1-second schedule would otherwise add 86,400 a day). */
export const HISTORY_PER_SCHEDULE = 1000;

interface ScheduleRow {
  id: number;
  target: string;
  timing: string;
  full_every: number;
  quiet_hours: string | null;
  retention: string;
  label: string | null;
  state: ScheduleState;
  ended_reason: string | null;
  created_at: number;
  next_run_at: number | null;
  last_run_at: number | null;
  last_result: RunResult | null;
  last_error: string | null;
  incrementals_since_full: number;
  failures: number;
  retry_slot_at: number | null;
  send_to: string | null;
  last_send: string | null;
}

interface RunRow {
  id: number;
  schedule_id: number;
  started_at: number;
  finished_at: number;
  result: RunResult;
  mode: 'full' | 'incremental' | null;
  pid: number | null;
  checkpoint_id: number | null;
  duration_ms: number | null;
  frozen_ms: number | null;
  bytes: number | null;
  error: string | null;
  attempt: number;
  missed: number;
  will_retry: number;
  pruned: string;
  runner_pid: number;
}

function toSchedule(r: ScheduleRow): Schedule {
  return {
    id: r.id,
    target: JSON.parse(r.target) as ScheduleTarget,
    timing: JSON.parse(r.timing) as ScheduleTiming,
    fullEvery: r.full_every,
    quietHours: r.quiet_hours ? (JSON.parse(r.quiet_hours) as QuietHours) : null,
    retention: JSON.parse(r.retention) as RetentionPolicy,
    label: r.label,
    state: r.state,
    endedReason: r.ended_reason,
    createdAt: r.created_at,
    nextRunAt: r.next_run_at,
    lastRunAt: r.last_run_at,
    lastResult: r.last_result,
    lastError: r.last_error,
    incrementalsSinceFull: r.incrementals_since_full,
    failures: r.failures,
    retrySlotAt: r.retry_slot_at,
    sendTo: r.send_to ? (JSON.parse(r.send_to) as SendTarget) : null,
    lastSend: r.last_send ? (JSON.parse(r.last_send) as LastSend) : null,
  };
}

function toRun(r: RunRow): RunRecord {
  return {
    id: r.id,
    scheduleId: r.schedule_id,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    result: r.result,
    mode: r.mode,
    pid: r.pid,
    checkpointId: r.checkpoint_id,
    durationMs: r.duration_ms,
    frozenMs: r.frozen_ms,
    bytes: r.bytes,
    error: r.error,
    attempt: r.attempt,
    missed: r.missed,
    willRetry: r.will_retry === 1,
    pruned: JSON.parse(r.pruned) as number[],
    runnerPid: r.runner_pid,
  };
}

export type ScheduleUpdate = Partial<Omit<Schedule, 'id' | 'createdAt'>>;

const columnOf: Record<keyof ScheduleUpdate, string> = {
  target: 'target',
  timing: 'timing',
  fullEvery: 'full_every',
  quietHours: 'quiet_hours',
  retention: 'retention',
  label: 'label',
  state: 'state',
  endedReason: 'ended_reason',
  nextRunAt: 'next_run_at',
  lastRunAt: 'last_run_at',
  lastResult: 'last_result',
  lastError: 'last_error',
  incrementalsSinceFull: 'incrementals_since_full',
  failures: 'failures',
  retrySlotAt: 'retry_slot_at',
  sendTo: 'send_to',
  lastSend: 'last_send',
};
const jsonColumns = new Set(['target', 'timing', 'quietHours', 'retention', 'sendTo', 'lastSend']);

export class ScheduleDb {
  readonly db: Database.Database;
  readonly path: string;

  constructor(storeDir: string) {
    // 0700 like the store itself: the history names processes and the store holds their memory.
    mkdirSync(storeDir, { recursive: true, mode: 0o700 });
    this.path = join(storeDir, SCHEDULE_DB_FILE);
    try {
      this.db = new Database(this.path);
    } catch (err) {
      throw new StasisError('PERMISSION_DENIED', `Cannot open the schedule database ${this.path} (${(err as Error).message}); check that the store directory is writable.`);
    }
    // It may hold a schedule's pairing token: readable by this user only (the WAL and shm files SQLite creates take this mode).
    for (const f of [this.path, `${this.path}-wal`, `${this.path}-shm`]) {
      try { chmodSync(f, 0o600); } catch { /* not created yet, or not ours to change: the 0700 directory still guards it */ }
    }
    useWal(this.db, 5000);
    this.db.pragma('foreign_keys = ON');
    this.migrate();
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > migrations.length) {
      throw new StasisError('UNSUPPORTED', `${this.path} was written by a newer Stasis (schema ${version}, this one knows ${migrations.length}); upgrade Stasis.`);
    }
    // IMMEDIATE: two processes opening a fresh store at once must not both run migration 1.
    this.db.transaction(() => {
      const v = this.db.pragma('user_version', { simple: true }) as number;
      for (let i = v; i < migrations.length; i++) {
        this.db.exec(migrations[i]!);
        this.db.pragma(`user_version = ${i + 1}`);
      }
    }).immediate();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  add(spec: ScheduleSpec, now: number, nextRunAt: number | null): Schedule {
    const r = this.db
      .prepare(`INSERT INTO schedules (target, timing, full_every, quiet_hours, retention, label, state, created_at, next_run_at, send_to)
                VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?, ?)`)
      .run(JSON.stringify(spec.target), JSON.stringify(spec.timing), spec.fullEvery, spec.quietHours ? JSON.stringify(spec.quietHours) : null, JSON.stringify(spec.retention), spec.label, now, nextRunAt, spec.sendTo ? JSON.stringify(spec.sendTo) : null);
    return this.get(Number(r.lastInsertRowid))!;
  }

  get(id: number): Schedule | null {
    const r = this.db.prepare('SELECT * FROM schedules WHERE id = ?').get(id) as ScheduleRow | undefined;
    return r ? toSchedule(r) : null;
  }

  require(id: number): Schedule {
    const s = this.get(id);
    if (!s) throw new StasisError('NOT_FOUND', `There is no schedule #${id}; list them with \`stasis schedule ls\`.`);
    return s;
  }

  list(): Schedule[] {
    return (this.db.prepare('SELECT * FROM schedules ORDER BY id').all() as ScheduleRow[]).map(toSchedule);
  }

  /** Active schedules due at `now`, or whose last run is after `now` (the clock went back). */
  dueOrClockBack(now: number): Schedule[] {
    const rows = this.db
      .prepare("SELECT * FROM schedules WHERE state = 'active' AND next_run_at IS NOT NULL AND (next_run_at <= ? OR last_run_at > ?) ORDER BY next_run_at, id")
      .all(now, now) as ScheduleRow[];
    return rows.map(toSchedule);
  }

  /** The earliest next run of any active schedule. */
  earliestNextRun(): number | null {
    const r = this.db.prepare("SELECT MIN(next_run_at) AS t FROM schedules WHERE state = 'active'").get() as { t: number | null };
    return r.t;
  }

  update(id: number, patch: ScheduleUpdate): Schedule {
    // An absent field (undefined) means "unchanged"; null clears a nullable one.
    const keys = (Object.keys(patch) as (keyof ScheduleUpdate)[]).filter((k) => patch[k] !== undefined);
    if (keys.length) {
      const sets = keys.map((k) => `${columnOf[k]} = ?`).join(', ');
      const values = keys.map((k) => {
        const v = patch[k];
        if (v === null || v === undefined) return null;
        return jsonColumns.has(k) ? JSON.stringify(v) : (v as string | number);
      });
      const r = this.db.prepare(`UPDATE schedules SET ${sets} WHERE id = ?`).run(...values, id);
      if (r.changes === 0) this.require(id);
    }
    return this.require(id);
  }

  remove(id: number): void {
    const r = this.db.transaction(() => {
      this.db.prepare('DELETE FROM schedule_checkpoints WHERE schedule_id = ?').run(id);
      return this.db.prepare('DELETE FROM schedules WHERE id = ?').run(id);
    })();
    if (r.changes === 0) this.require(id);
  }

  recordRun(run: Omit<RunRecord, 'id'>): RunRecord {
    const r = this.db
      .prepare(`INSERT INTO runs (schedule_id, started_at, finished_at, result, mode, pid, checkpoint_id, duration_ms, frozen_ms, bytes, error, attempt, missed, will_retry, pruned, runner_pid)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(run.scheduleId, run.startedAt, run.finishedAt, run.result, run.mode, run.pid, run.checkpointId, run.durationMs, run.frozenMs, run.bytes, run.error, run.attempt, run.missed, run.willRetry ? 1 : 0, JSON.stringify(run.pruned), run.runnerPid);
    const id = Number(r.lastInsertRowid);
    if (run.checkpointId !== null) {
      this.db.prepare('INSERT OR REPLACE INTO schedule_checkpoints (checkpoint_id, schedule_id) VALUES (?, ?)').run(run.checkpointId, run.scheduleId);
    }
    if (id % 100 === 0) this.trimHistory(run.scheduleId);
    return { ...run, id };
  }

  trimHistory(scheduleId: number, keep = HISTORY_PER_SCHEDULE): void {
    this.db
      .prepare('DELETE FROM runs WHERE schedule_id = ? AND id < (SELECT id FROM runs WHERE schedule_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)')
      .run(scheduleId, scheduleId, keep - 1);
  }

  /** Forget checkpoints that no longer exist (pruned). */
  forgetCheckpoints(ids: number[]): void {
    const del = this.db.prepare('DELETE FROM schedule_checkpoints WHERE checkpoint_id = ?');
    this.db.transaction(() => ids.forEach((id) => del.run(id)))();
  }

  setPruned(runId: number, pruned: number[]): void {
    this.db.prepare('UPDATE runs SET pruned = ? WHERE id = ?').run(JSON.stringify(pruned), runId);
  }

  /** Newest first. */
  history(scheduleId?: number, limit = 100): RunRecord[] {
    const rows = (scheduleId === undefined
      ? this.db.prepare('SELECT * FROM runs ORDER BY id DESC LIMIT ?').all(limit)
      : this.db.prepare('SELECT * FROM runs WHERE schedule_id = ? ORDER BY id DESC LIMIT ?').all(scheduleId, limit)) as RunRow[];
    return rows.map(toRun);
  }

  /** Checkpoint ids this schedule created (the only ones its retention may prune). */
  checkpointIdsOf(scheduleId: number): Set<number> {
    const rows = this.db.prepare('SELECT checkpoint_id FROM schedule_checkpoints WHERE schedule_id = ?').all(scheduleId) as { checkpoint_id: number }[];
    return new Set(rows.map((r) => r.checkpoint_id));
  }

  /** Every checkpoint any schedule created, with its schedule. */
  scheduledCheckpoints(): Map<number, number> {
    const rows = this.db.prepare('SELECT checkpoint_id, schedule_id FROM schedule_checkpoints').all() as { checkpoint_id: number; schedule_id: number }[];
    return new Map(rows.map((r) => [r.checkpoint_id, r.schedule_id]));
  }

  getSetting(key: string): string | null {
    const r = this.db.prepare('SELECT value FROM settings WHERE key = ?').get(key) as { value: string } | undefined;
    return r?.value ?? null;
  }

  setSetting(key: string, value: string | null): void {
    if (value === null) this.db.prepare('DELETE FROM settings WHERE key = ?').run(key);
    else this.db.prepare('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
  }
}
