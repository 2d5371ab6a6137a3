/**
 * The scheduler: on each tick, if it holds the store's scheduler lock, it takes every due run of
 * every active schedule, one at a time. Decides full vs incremental, folds missed slots into one
 * catch-up run, records slots that came due while a run was still going as skipped, retries
 * failures with exponential backoff, ends schedules whose target exited, and applies retention
 * (store.remove) after each successful run. All state lives in schedules.db and is re-read each
 * tick, so schedules added or paused by another process (CLI, UI) take effect at once.
 * Time comes from an injectable Clock; this module never sleeps except in `start()`'s loop.
 */
import { toErrorData } from '../../../shared/errors';
import type { CheckpointMode, DirtyTracking, Store, TargetInfo } from '../store/api';
import type { Clock } from './clock';
import { systemClock } from './clock';
import type { ScheduleDb } from './db';
import { isSameProcess } from './liveness';
import { lockHolder, newLockToken, releaseLock, tryAcquireLock } from './lock';
import { applyQuota, planRetention, type RetentionItem } from './retention';
import { inQuietHours, nextSlot, quietHoursEnd, slotsBetween } from './timing';
import type { LockHolder, RunRecord, Schedule } from './types';

/** What capture's checkpoint() returns (electron/engine/capture/index.ts). */
export interface CaptureResult {
  id: number;
  pid: number;
  mode: CheckpointMode;
  dirtyTracking: DirtyTracking;
  frozenMs: number;
  durationMs: number;
  pagesScanned: number;
  pagesWritten: number;
  bytesWritten: number;
}

export interface CaptureRequest {
  mode: CheckpointMode;
  label?: string | null;
  /** The start time the target must still have (a reused pid is refused, not captured). */
  expectStartTime?: string;
  /** For schedules that follow a program by name: the name its checkpoints are filed under. */
  name?: string;
}

export type CaptureFn = (store: Store, pid: number, opts: CaptureRequest) => CaptureResult | Promise<CaptureResult>;

export interface RetryPolicy {
  /** Retries after the first failed attempt of a slot. */
  max: number;
  baseMs: number;
  capMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { max: 3, baseMs: 5_000, capMs: 5 * 60_000 };

/** The wait before retry number `attempt` (1-based): the base doubled per attempt, up to the cap. */
export function backoffMs(policy: Pick<RetryPolicy, 'baseMs' | 'capMs'>, attempt: number): number {
  return Math.min(policy.capMs, policy.baseMs * 2 ** (attempt - 1));
}
export const GLOBAL_QUOTA_SETTING = 'globalQuotaBytes';
const GC_EVERY_MS = 60_000;

export interface SchedulerOptions {
  db: ScheduleDb;
  store: () => Store;
  capture: CaptureFn;
  kind: 'app' | 'daemon';
  clock?: Clock;
  retry?: RetryPolicy;
  emit?: (event: string, payload: unknown) => void;
  log?: (line: string) => void;
  /** After a run committed a checkpoint (and retention ran): starts background work such as "also send to"; must not throw or wait. */
  onCommitted?: (s: Schedule) => void;
  /** Each tick while acting, after the due runs: background work that waits for its moment (a failed send's retry); must not throw or wait. */
  onTick?: () => void;
}

export interface TickReport {
  acting: boolean;
  holder: LockHolder | null;
  runs: RunRecord[];
}

type Resolved = { pid: number; startTime: string; targets: TargetInfo[] } | { ended: string } | { waiting: string };

export class Scheduler {
  private readonly clock: Clock;
  private readonly retry: RetryPolicy;
  private readonly emit: (event: string, payload: unknown) => void;
  private readonly log: (line: string) => void;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  private stopped = false;
  private readonly lockToken = newLockToken();
  private lastGcAt = Number.NEGATIVE_INFINITY;
  private lastGlobalQuotaPruned = false;
  acting = false;
  holder: LockHolder | null = null;

  constructor(private readonly opts: SchedulerOptions) {
    this.clock = opts.clock ?? systemClock;
    this.retry = opts.retry ?? DEFAULT_RETRY;
    this.emit = opts.emit ?? (() => {});
    this.log = opts.log ?? (() => {});
  }

  private get db(): ScheduleDb {
    return this.opts.db;
  }

  /** One pass: take (or keep) the lock, then every due run. Never runs two ticks at once. */
  async tick(): Promise<TickReport> {
    while (this.running) await this.running;
    const p = this.tickOnce();
    this.running = p;
    try {
      return await p;
    } finally {
      this.running = null;
    }
  }

  private async tickOnce(): Promise<TickReport> {
    const attempt = tryAcquireLock(this.db, this.opts.kind, this.clock.now(), this.lockToken);
    if (attempt.acquired !== this.acting || this.holder === null) {
      this.log(attempt.acquired ? `acting scheduler for ${this.db.path}` : `standing by: ${attempt.holder.kind} pid ${attempt.holder.pid} holds the scheduler lock`);
    }
    this.acting = attempt.acquired;
    this.holder = attempt.holder;
    const runs: RunRecord[] = [];
    if (!this.acting) return { acting: false, holder: attempt.holder, runs };
    for (const due of this.db.dueOrClockBack(this.clock.now())) {
      if (this.stopped) break;
      // Re-read: an earlier run of this tick may have taken long, and the user may have paused or removed it meanwhile.
      let s = this.db.get(due.id);
      if (!s || s.state !== 'active' || s.nextRunAt === null) continue;
      const now = this.clock.now();
      // The wall clock went back past the last run (manual change, bad RTC): re-anchor on now,
      // or the next run would wait for the clock to catch up again.
      if (s.lastRunAt !== null && s.lastRunAt > now && s.nextRunAt > now) {
        s = this.db.update(s.id, { nextRunAt: nextSlot(s.timing, now) ?? now, failures: 0, retrySlotAt: null });
      }
      if (s.nextRunAt === null || now < s.nextRunAt) continue;
      runs.push(...(await this.runDue(s)));
    }
    if (!this.stopped) {
      try { this.opts.onTick?.(); } catch (err) { this.log(`after a tick: ${toErrorData(err).message}`); }
    }
    return { acting: true, holder: attempt.holder, runs };
  }

  /** The earliest moment any active schedule is due (for the loop's timer). */
  nextWakeAt(): number | null {
    return this.db.earliestNextRun();
  }

  private resolveTarget(s: Schedule): Resolved {
    const t = s.target;
    if (t.kind === 'pid') {
      if (!isSameProcess(t.pid, t.startTime)) return { ended: `Process ${t.pid} exited; the schedule ended (its checkpoints are kept).` };
      const targets = this.opts.store().listTargets().filter((x) => x.pid === t.pid && x.startTime === t.startTime);
      return { pid: t.pid, startTime: t.startTime, targets };
    }
    const named = this.opts.store().listTargets().filter((x) => x.name === t.name);
    const live = named.filter((x) => isSameProcess(x.pid, x.startTime)).sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id - a.id);
    if (live.length === 0) return { waiting: `No running process is named "${t.name}"; the schedule waits for it to be started again.` };
    return { pid: live[0]!.pid, startTime: live[0]!.startTime, targets: named };
  }

  private async runDue(s: Schedule): Promise<RunRecord[]> {
    const now = this.clock.now();
    const records: RunRecord[] = [];
    if (inQuietHours(s.quietHours, now)) {
      this.db.update(s.id, { nextRunAt: quietHoursEnd(s.quietHours!, now) });
      return records;
    }
    const resolved = this.resolveTarget(s);
    if ('ended' in resolved) {
      this.db.update(s.id, { state: 'ended', endedReason: resolved.ended, nextRunAt: null });
      this.emit('schedule.ended', { scheduleId: s.id, reason: resolved.ended });
      return records;
    }
    if ('waiting' in resolved) {
      this.db.update(s.id, { nextRunAt: nextSlot(s.timing, now), lastResult: 'skipped', lastError: resolved.waiting });
      return records;
    }

    // A retry keeps its slot; otherwise a gap of several slots (suspend, downtime) becomes one catch-up run.
    const retrying = s.failures > 0 && s.retrySlotAt !== null;
    const missed = retrying ? 0 : slotsBetween(s.timing, s.nextRunAt!, now);
    const anchor = retrying ? s.retrySlotAt! : missed > 0 ? now : s.nextRunAt!;
    const latest = resolved.targets.map((t) => this.opts.store().latest(t.id)).filter((c) => c !== null);
    const mode: CheckpointMode = latest.length === 0 || (s.fullEvery > 0 && s.incrementalsSinceFull >= s.fullEvery) ? 'full' : 'incremental';
    const attempt = s.failures + 1;
    this.emit('schedule.run.started', { scheduleId: s.id, pid: resolved.pid, mode, attempt, missed, at: new Date(now).toISOString() });

    const startedAt = now;
    let result: Awaited<ReturnType<CaptureFn>>;
    try {
      result = await this.opts.capture(this.opts.store(), resolved.pid, { mode, label: s.label ?? `schedule #${s.id}`, expectStartTime: resolved.startTime, ...(s.target.kind === 'name' ? { name: s.target.name } : {}) });
    } catch (err) {
      return this.onFailure(s, err, { startedAt, anchor, attempt, missed, mode, pid: resolved.pid });
    }
    const finishedAt = this.clock.now();
    const run = this.db.recordRun({
      scheduleId: s.id, startedAt, finishedAt, result: 'ok', mode: result.mode, pid: resolved.pid, checkpointId: result.id,
      durationMs: result.durationMs, frozenMs: result.frozenMs, bytes: result.bytesWritten, error: null, attempt, missed,
      willRetry: false, pruned: [], runnerPid: process.pid,
    });
    this.db.update(s.id, {
      lastRunAt: startedAt, lastResult: 'ok', lastError: null, failures: 0, retrySlotAt: null,
      incrementalsSinceFull: result.mode === 'full' ? 0 : s.incrementalsSinceFull + 1,
    });
    try {
      run.pruned = this.applyRetention(this.db.require(s.id));
      if (run.pruned.length) this.db.setPruned(run.id, run.pruned);
    } catch (err) {
      // The checkpoint is safe; a pruning problem is reported, and retried after the next run.
      this.emit('schedule.retention.failed', { scheduleId: s.id, error: toErrorData(err) });
    }
    records.push(run);
    this.emit('schedule.run.done', { run: runJson(run) });
    const now2 = this.db.get(s.id);
    if (now2) {
      try { this.opts.onCommitted?.(now2); } catch (err) { this.log(`after schedule #${s.id}'s run: ${toErrorData(err).message}`); }
    }
    records.push(...this.advance(s, anchor, finishedAt, startedAt));
    return records;
  }

  private onFailure(s: Schedule, err: unknown, r: { startedAt: number; anchor: number; attempt: number; missed: number; mode: CheckpointMode; pid: number }): RunRecord[] {
    const finishedAt = this.clock.now();
    const error = toErrorData(err);
    const gone = error.code === 'PROCESS_GONE' || (s.target.kind === 'pid' && !isSameProcess(s.target.pid, s.target.startTime));
    const regular = nextSlot(s.timing, r.anchor);
    const retryAt = finishedAt + backoffMs(this.retry, r.attempt);
    // Past the retries, or when the next regular slot comes first, the regular slot takes over.
    const willRetry = !gone && r.attempt <= this.retry.max && (regular === null || retryAt < regular);
    const run = this.db.recordRun({
      scheduleId: s.id, startedAt: r.startedAt, finishedAt, result: 'failed', mode: r.mode, pid: r.pid, checkpointId: null,
      durationMs: finishedAt - r.startedAt, frozenMs: null, bytes: null, error: error.message, attempt: r.attempt, missed: r.missed,
      willRetry, pruned: [], runnerPid: process.pid,
    });
    this.emit('schedule.run.failed', { run: runJson(run), code: error.code });
    this.db.update(s.id, { lastRunAt: r.startedAt, lastResult: 'failed', lastError: error.message, failures: willRetry ? r.attempt : 0, retrySlotAt: willRetry ? r.anchor : null });
    if (gone && s.target.kind === 'pid') {
      const reason = `Process ${s.target.pid} exited; the schedule ended (its checkpoints are kept).`;
      this.db.update(s.id, { state: 'ended', endedReason: reason, nextRunAt: null });
      this.emit('schedule.ended', { scheduleId: s.id, reason });
      return [run];
    }
    if (willRetry) {
      this.db.update(s.id, { nextRunAt: retryAt });
      return [run];
    }
    return [run, ...this.advance(s, r.anchor, finishedAt, r.startedAt)];
  }

  /**
   * Sets the next slot after a run that was due at `anchor`. Slots that came due while it ran are
   * recorded as skipped; slots between `anchor` and its start (a retry, or a run deferred by quiet
   * hours) are covered by this run and re-anchor the schedule on its end.
   */
  private advance(s: Schedule, anchor: number, finishedAt: number, startedAt: number): RunRecord[] {
    const next = nextSlot(s.timing, anchor);
    if (next === null || next > finishedAt) {
      this.db.update(s.id, { nextRunAt: next });
      return [];
    }
    const skipped = slotsBetween(s.timing, Math.max(anchor, startedAt), finishedAt);
    this.db.update(s.id, { nextRunAt: nextSlot(s.timing, finishedAt) });
    if (skipped === 0) return [];
    const run = this.db.recordRun({
      scheduleId: s.id, startedAt: nextSlot(s.timing, Math.max(anchor, startedAt))!, finishedAt, result: 'skipped', mode: null, pid: null, checkpointId: null,
      durationMs: null, frozenMs: null, bytes: null,
      error: `${skipped} due run${skipped === 1 ? ' was' : 's were'} skipped: the run started at ${new Date(startedAt).toISOString()} was still going.`,
      attempt: 1, missed: 0, willRetry: false, pruned: [], runnerPid: process.pid,
    });
    this.emit('schedule.run.skipped', { run: runJson(run) });
    return [run];
  }

  /** Prunes this schedule's own checkpoints by its policy, then the store-wide quota. Returns removed ids. */
  applyRetention(s: Schedule): number[] {
    const store = this.opts.store();
    const ours = this.db.checkpointIdsOf(s.id);
    const targets = this.targetsOf(s, store);
    const items: RetentionItem[] = targets.flatMap((t) => store.list({ targetId: t.id })).map((c) => ({
      id: c.id, createdAt: Date.parse(c.createdAt), bytes: c.stats.bytesWritten, protected: c.pinned || !ours.has(c.id),
    }));
    const plan = planRetention(items, s.retention);
    const removed = this.removeEach(store, plan.prune.map((p) => p.id), s.id);
    if (plan.prune.some((p) => p.reason === 'quota') || plan.overQuota) {
      this.emit('schedule.quota', { scheduleId: s.id, scope: 'target', quotaBytes: s.retention.quotaBytes ?? 0, totalBytes: plan.totalBytes, keptBytes: plan.keptBytes, pruned: plan.prune.filter((p) => p.reason === 'quota').map((p) => p.id), overQuota: plan.overQuota });
    }
    removed.push(...this.applyGlobalQuota(store, s.id));
    // gc rewrites segments: after quota pruning at once (the space is the point), else at most once a minute.
    const quotaPruned = plan.prune.some((p) => p.reason === 'quota') || this.lastGlobalQuotaPruned;
    if (removed.length && (quotaPruned || this.clock.now() - this.lastGcAt >= GC_EVERY_MS)) {
      store.gc();
      this.lastGcAt = this.clock.now();
    }
    return removed;
  }

  /**
   * One at a time: a checkpoint pinned (or removed) by the user since the plan was made must not
   * stop the others from being pruned. Failures are reported, and retried after the next run.
   */
  private removeEach(store: Store, ids: number[], scheduleId: number): number[] {
    const done: number[] = [];
    const gone: number[] = [];
    for (const id of ids) {
      try {
        store.remove([id]);
        done.push(id);
      } catch (err) {
        if (store.get(id) === null) gone.push(id); // already removed by the user: nothing to do
        else this.emit('schedule.retention.failed', { scheduleId, error: toErrorData(err) });
      }
    }
    this.db.forgetCheckpoints([...done, ...gone]);
    return done;
  }

  private targetsOf(s: Schedule, store: Store): TargetInfo[] {
    const t = s.target;
    return store.listTargets().filter((x) => (t.kind === 'pid' ? x.pid === t.pid && x.startTime === t.startTime : x.name === t.name));
  }

  private applyGlobalQuota(store: Store, scheduleId: number): number[] {
    const quota = Number(this.db.getSetting(GLOBAL_QUOTA_SETTING) ?? 0);
    if (!quota) return [];
    const scheduled = this.db.scheduledCheckpoints();
    const items: RetentionItem[] = store.list().map((c) => ({
      id: c.id, createdAt: Date.parse(c.createdAt), bytes: c.stats.bytesWritten, protected: c.pinned || !scheduled.has(c.id), group: c.targetId,
    }));
    const q = applyQuota(items, quota);
    const removed = this.removeEach(store, q.prune, scheduleId);
    this.lastGlobalQuotaPruned = removed.length > 0;
    if (q.prune.length || q.overQuota) {
      this.emit('schedule.quota', { scheduleId: null, scope: 'global', quotaBytes: quota, totalBytes: items.reduce((a, i) => a + i.bytes, 0), pruned: removed, overQuota: q.overQuota });
    }
    return removed;
  }

  /** Runs ticks until stop(): wakes at the earliest due run, and at least every `tickMs` to see other processes' changes. */
  start(tickMs = 1000): void {
    this.stopped = false;
    let lastError: string | null = null;
    const loop = async () => {
      this.timer = null;
      if (this.stopped) return;
      try {
        await this.tick();
        lastError = null;
      } catch (err) {
        // Once per distinct problem, not once a second.
        const message = toErrorData(err).message;
        if (message !== lastError) this.log(`scheduler tick failed: ${message}`);
        lastError = message;
      }
      if (this.stopped) return;
      const now = this.clock.now();
      const due = this.acting ? this.nextWakeAt() : null;
      const wait = Math.max(0, Math.min(tickMs, due === null ? tickMs : due - now));
      this.timer = setTimeout(loop, wait);
    };
    this.timer = setTimeout(loop, 0);
  }

  /** Stops the loop, waits for a run in progress, and gives the lock up. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    while (this.running) await this.running.catch(() => {});
    releaseLock(this.db, this.lockToken);
    this.acting = false;
  }

  currentHolder(): LockHolder | null {
    return lockHolder(this.db, this.clock.now());
  }
}

export function runJson(r: RunRecord) {
  return {
    ...r,
    startedAt: new Date(r.startedAt).toISOString(),
    finishedAt: new Date(r.finishedAt).toISOString(),
  };
}
