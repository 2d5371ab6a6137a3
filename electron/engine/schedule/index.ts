/**
 * Public surface of the schedule subsystem: `startScheduler` (for the engine worker while the window
 * is closed, and for `stasis daemon`), the per-store schedules.db handle the API handlers share, and
 * re-exports. Owns the lifetime of the scheduler loop it starts; never touches the store's index.
 */
import type { Store } from '../store/api';
import type { Clock } from './clock';
import { ScheduleDb } from './db';
import { DEFAULT_RETRY, Scheduler, type CaptureFn, type RetryPolicy } from './scheduler';
import { ScheduleSendTo } from './send-to';

export { ScheduleDb } from './db';
export { Scheduler, DEFAULT_RETRY, runJson, type CaptureFn, type CaptureResult, type RetryPolicy } from './scheduler';
export * from './service';
export { lockHolder } from './lock';
export { ScheduleSendTo, lastSendJson } from './send-to';
export type * from './types';

const open = new Map<string, ScheduleDb>();

/** One schedules.db handle per store directory per thread (better-sqlite3 handles are not shared across threads). */
export function scheduleDbFor(storeDir: string): ScheduleDb {
  let db = open.get(storeDir);
  if (!db || !db.db.open) {
    db = new ScheduleDb(storeDir);
    open.set(storeDir, db);
  }
  return db;
}

export interface StartSchedulerOptions {
  storeDir: string;
  kind: 'app' | 'daemon';
  /** The store this scheduler captures into (opened by the caller; kept open while running). */
  store: () => Store;
  capture: CaptureFn;
  emit?: (event: string, payload: unknown) => void;
  log?: (line: string) => void;
  /** Longest time between ticks (ms): how soon changes made by other processes are seen. Default 1000. */
  tickMs?: number;
  clock?: Clock;
  retry?: RetryPolicy;
}

export interface RunningScheduler {
  readonly scheduler: Scheduler;
  /** Stops the loop, waits for a run in progress, releases the lock and closes schedules.db. */
  stop(): Promise<void>;
}

/**
 * Starts the scheduler loop on a store. It acts only while it holds the store's scheduler lock;
 * otherwise it stands by (and takes over when the holder exits). Safe to call from the engine worker.
 */
export function startScheduler(opts: StartSchedulerOptions): RunningScheduler {
  // A private handle: the loop's transactions must not interleave with the handlers' on one connection.
  const db = new ScheduleDb(opts.storeDir);
  const sendTo = new ScheduleSendTo({ db, store: opts.store, emit: opts.emit, retry: opts.retry ?? DEFAULT_RETRY });
  const scheduler = new Scheduler({
    db, store: opts.store, capture: opts.capture, kind: opts.kind, clock: opts.clock, retry: opts.retry, emit: opts.emit, log: opts.log,
    onCommitted: (s) => { if (s.sendTo) sendTo.kick(s.id); },
    // Wall-clock time: a send's times (at, retryAt) are taken from it, not from the scheduler's clock.
    onTick: () => sendTo.retryDue(Date.now()),
  });
  scheduler.start(opts.tickMs ?? 1000);
  return {
    scheduler,
    async stop() {
      await scheduler.stop();
      await sendTo.stop();
      db.close();
    },
  };
}
