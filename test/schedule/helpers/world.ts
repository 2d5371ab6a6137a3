/**
 * Test support for the scheduler: a temp store (the real store, real SQLite), schedules.db beside it,
 * real target processes (detached), and `storeCapture`, a CaptureFn that writes a small real
 * checkpoint of the process into the store (so scheduler tests do not need ptrace) and can be told
 * to fail or to take "long" (by moving the injected clock).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../../electron/engine/store';
import type { Store } from '../../../electron/engine/store/api';
import { STATE_VERSION, type ProcessState } from '../../../electron/engine/state/process-state';
import { ScheduleDb } from '../../../electron/engine/schedule/db';
import { processStartTime } from '../../../electron/engine/schedule/liveness';
import { Scheduler, type CaptureFn, type RetryPolicy } from '../../../electron/engine/schedule/scheduler';
import { ManualClock } from '../../../electron/engine/schedule/clock';
import { StasisError } from '../../../shared/errors';
import { scheduleEvents } from '../../../shared/contract/schedule';
import { buildFixture } from '../../helpers/fixtures';
import { spawnDetached, type DetachedProcess } from '../../helpers/spawn';

export function minimalState(pid: number, startTime: string): ProcessState {
  return {
    version: STATE_VERSION, pid, startTime, ppid: 1, pgid: pid, sid: pid, uid: 0, gid: 0, comm: 'sleeper',
    exe: '/bin/sleeper', cmdline: ['sleeper'], cwd: '/', root: '/', umask: 0o22, personality: 0, rlimits: [],
    mm: { startCode: 0n, endCode: 0n, startData: 0n, endData: 0n, startBrk: 0n, brk: 0n, startStack: 0n, argStart: 0n, argEnd: 0n, envStart: 0n, envEnd: 0n },
    auxv: [], threads: [], sigactions: [], sharedPending: 0n, fds: [], timers: {}, kernel: { release: 'test' }, warnings: [],
    mappings: [{ start: 0x10000n, end: 0x12000n, perms: 'rw-p', offset: 0n, dev: '00:00', inode: 0, path: '', deleted: false, kind: 'anon', vmFlags: ['rd', 'wr'] }],
  };
}

export interface CaptureControl {
  /** Throw this many times before succeeding. */
  failTimes: number;
  /** Move the clock by this much during each capture (a "long" run). */
  takesMs: number;
  calls: { pid: number; mode: string; at: number }[];
}

export function storeCapture(clock: ManualClock, ctl: CaptureControl): CaptureFn {
  let n = 0;
  return (store, pid, opts) => {
    ctl.calls.push({ pid, mode: opts.mode, at: clock.now() });
    clock.advance(ctl.takesMs);
    if (ctl.failTimes > 0) {
      ctl.failTimes--;
      throw new StasisError('BUSY', `Process ${pid} is being traced by another program; try again when it has detached.`);
    }
    const startTime = processStartTime(pid);
    if (!startTime) throw new StasisError('PROCESS_GONE', `Process ${pid} exited.`);
    const t = store.upsertTarget({ pid, startTime, exe: '/bin/sleeper', cmdline: ['sleeper'] });
    const parent = opts.mode === 'incremental' ? store.latest(t.id) : null;
    const w = store.begin({ targetId: t.id, parentId: parent?.id ?? null, mode: opts.mode, dirtyTracking: 'hash', coverage: 'complete', label: opts.label ?? null });
    w.setState(minimalState(pid, startTime));
    w.addPages(0x10000n, Buffer.alloc(4096, ++n));
    w.addPages(0x11000n, Buffer.alloc(4096, 0xee));
    const info = w.commit({ frozenMs: 1.5, durationMs: 3 });
    return { id: info.id, pid, mode: info.mode, dirtyTracking: info.dirtyTracking, frozenMs: 1.5, durationMs: 3, pagesScanned: 2, pagesWritten: info.stats.pagesWritten, bytesWritten: info.stats.bytesWritten };
  };
}

export interface World {
  dir: string;
  store: Store;
  db: ScheduleDb;
  clock: ManualClock;
  ctl: CaptureControl;
  events: { event: string; payload: Record<string, unknown> }[];
  scheduler: Scheduler;
  spawn(): DetachedProcess;
  close(): void;
}

export function makeWorld(opts: { retry?: RetryPolicy; start?: number } = {}): World {
  const dir = mkdtempSync(join(tmpdir(), 'stasis-sched-'));
  const store = openStore(dir);
  const db = new ScheduleDb(dir);
  const clock = new ManualClock(opts.start ?? new Date(2026, 5, 10, 12, 0, 0).getTime());
  const ctl: CaptureControl = { failTimes: 0, takesMs: 0, calls: [] };
  const events: World['events'] = [];
  const procs: DetachedProcess[] = [];
  const scheduler = new Scheduler({
    db, store: () => store, capture: storeCapture(clock, ctl), kind: 'app', clock,
    retry: opts.retry ?? { max: 2, baseMs: 1000, capMs: 60_000 },
    emit: (event, payload) => {
      // Every event must match its declaration in the contract (the UI and the transports validate them).
      const schema = (scheduleEvents as Record<string, { safeParse(v: unknown): { success: boolean; error?: unknown } }>)[event];
      if (!schema) throw new Error(`event ${event} is not declared in shared/contract/schedule.ts`);
      const r = schema.safeParse(payload);
      if (!r.success) throw new Error(`event ${event} does not match the contract: ${String(r.error)}`);
      events.push({ event, payload: payload as Record<string, unknown> });
    },
  });
  const bin = buildFixture('schedule-target');
  return {
    dir, store, db, clock, ctl, events, scheduler,
    spawn() {
      const p = spawnDetached([bin]);
      procs.push(p);
      return p;
    },
    close() {
      for (const p of procs) p.kill();
      db.close();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
