/**
 * The schedule subsystem's own vocabulary: what a schedule is, how it is timed, what it keeps, and
 * what one run left behind. Plain data only (times are epoch milliseconds); the SQLite file, the
 * scheduler loop and the API contract all speak these shapes. Must never import the store or capture.
 */

/** A running process (pid + /proc start time, so a reused pid is never mistaken for it), or a program
 *  launched by Stasis, by its stable name, so the schedule survives the program's restarts. */
export type ScheduleTarget = { kind: 'pid'; pid: number; startTime: string } | { kind: 'name'; name: string };

export type ScheduleTiming =
  | { kind: 'interval'; everyMs: number }
  | { kind: 'cron'; expr: string }
  | { kind: 'manual' };

/** Local wall-clock window ("22:00"-"07:00" wraps midnight) in which no run starts. */
export interface QuietHours {
  start: string;
  end: string;
}

/** Zero or absent means "no such rule". With no keep rule at all, every checkpoint is kept (quota aside). */
export interface RetentionPolicy {
  keepLast?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  /** Bytes the target's checkpoints may take (sum of bytes each one stored). */
  quotaBytes?: number;
}

/** "Also send to": a `stasis receive --listen --keep` (or the app's Receive page kept listening) and its pairing token (a secret: never logged, emitted or shown back whole). */
export interface SendTarget {
  address: string;
  token: string;
}

/** The last background send of a schedule's checkpoints to its SendTarget. */
export interface LastSend {
  result: 'sending' | 'ok' | 'failed';
  /** When it started ('sending') or ended. */
  at: number;
  /** The newest checkpoint of the schedule it was for. */
  checkpointId: number;
  /** The destination's id of checkpointId, once it holds it. */
  remoteId: number | null;
  /** The newest checkpoint of the schedule the destination confirmed holding (across sends): the next send starts after it. */
  sentThrough: number | null;
  /** Checkpoints, pages and wire bytes this send moved. */
  checkpoints: number;
  pagesSent: number;
  bytes: number;
  error: string | null;
  /** Failed sends in a row (this one included when it failed); 0 after an ok one. Absent in rows written before retries. */
  failures?: number;
  /** A failed send: when the acting scheduler sends again if no run has kicked it before. */
  retryAt?: number | null;
}

export interface ScheduleSpec {
  target: ScheduleTarget;
  timing: ScheduleTiming;
  /** Force a full checkpoint after this many incrementals (0: only the first one is full). */
  fullEvery: number;
  quietHours: QuietHours | null;
  retention: RetentionPolicy;
  label: string | null;
  sendTo?: SendTarget | null;
}

export type ScheduleState = 'active' | 'paused' | 'ended';
export type RunResult = 'ok' | 'failed' | 'skipped';

export interface Schedule extends ScheduleSpec {
  id: number;
  sendTo: SendTarget | null;
  state: ScheduleState;
  endedReason: string | null;
  createdAt: number;
  nextRunAt: number | null;
  lastRunAt: number | null;
  lastResult: RunResult | null;
  lastError: string | null;
  /** Incrementals taken since the last full one; drives `fullEvery`. */
  incrementalsSinceFull: number;
  /** Consecutive failed attempts of the current slot (0 when the last run succeeded). */
  failures: number;
  /** While retrying: the slot the failed run was due at, so retries never shift the regular slots. */
  retrySlotAt: number | null;
  lastSend: LastSend | null;
}

export interface RunRecord {
  id: number;
  scheduleId: number;
  startedAt: number;
  finishedAt: number;
  result: RunResult;
  mode: 'full' | 'incremental' | null;
  pid: number | null;
  checkpointId: number | null;
  durationMs: number | null;
  frozenMs: number | null;
  bytes: number | null;
  error: string | null;
  /** 1 for a slot's first try, 2.. for retries. */
  attempt: number;
  /** Slots that passed unrun (suspend, downtime) and were folded into this one catch-up run. */
  missed: number;
  willRetry: boolean;
  pruned: number[];
  /** Which scheduler process took the run. */
  runnerPid: number;
}

/** Who holds the store's single scheduler lock. */
export interface LockHolder {
  pid: number;
  startTime: string;
  kind: 'app' | 'daemon';
  since: number;
  heartbeatAt: number;
}
