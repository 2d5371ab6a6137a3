/**
 * Freezing a process: PTRACE_SEIZE + PTRACE_INTERRUPT on every thread (repeated until the thread
 * list is stable, so threads created meanwhile are caught), waiting for each stop with a timeout.
 * The returned Tracee owns the frozen threads; `release()` detaches and resumes every one of them
 * and is safe to call on any path, any number of times. freeze() itself releases everything it
 * seized before throwing. This module must never leave a target stopped or traced on purpose:
 * callers put `release()` in a finally block. (If the engine process dies, the kernel detaches
 * its tracees, which then run on.)
 *
 *   const t = freeze(pid, { timeoutMs: 2000 });
 *   try { t.tids; t.regs(tid); t.inject(tid, SYS.brk, [0n]); t.read(addr, buf) } finally { t.release() }
 *
 * Signals that arrive while freezing (signal-delivery-stops) are kept in `deferredSignals` and
 * handed back to the thread on detach, so the program still receives them.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { StasisError } from '../../../shared/errors';
import {
  seize, interrupt, detach, waitTid, getRegs, setRegs, getRegset, setRegset, getSigmask, NT,
  SysError, E, vmRead, vmWrite, openMem, memWrite, closeFd, type WaitStatus,
} from '../native';
import { checkTraceable } from './preflight';
import { sleepMs } from '../sleep-sync';

export interface FreezeOptions {
  /** Give up (and release everything) if a thread has not stopped after this long. Default 2000 ms. */
  timeoutMs?: number;
  /** PTRACE_O_* options for every seized thread. Never include EXITKILL for a target. */
  options?: number;
  /** Skip the identity/traceability checks (already done by the caller). */
  skipChecks?: boolean;
}


export function listThreads(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).map(Number).filter((n) => n > 0).sort((a, b) => a - b);
  } catch {
    return [];
  }
}

interface ThreadSlot {
  tid: number;
  stopped: boolean;
  /** Registers as found at the freeze: what must be put back before detaching. */
  origRegs?: bigint[];
  /** Registers were changed (injection in progress): restore origRegs before detach. */
  dirtyRegs: boolean;
}

export class Tracee {
  readonly pid: number;
  /** Per thread: a signal that arrived during the freeze, re-delivered on detach. */
  readonly deferredSignals = new Map<number, number>();
  /** Time from the first SEIZE until every thread was stopped. */
  freezeMs = 0;
  private readonly slots = new Map<number, ThreadSlot>();
  private released = false;
  private memFd = -1;
  private readonly startedAt: number;

  constructor(pid: number) {
    this.pid = pid;
    this.startedAt = performance.now();
  }

  get tids(): number[] {
    return [...this.slots.keys()].sort((a, b) => (a === this.pid ? -1 : b === this.pid ? 1 : a - b));
  }

  get isReleased(): boolean {
    return this.released;
  }

  /** Milliseconds since the first SEIZE (the target's downtime so far). */
  elapsedMs(): number {
    return performance.now() - this.startedAt;
  }

  /** @internal used by freeze() */
  addSlot(tid: number): void {
    this.slots.set(tid, { tid, stopped: false, dirtyRegs: false });
  }
  /** @internal */
  slot(tid: number): ThreadSlot {
    const s = this.slots.get(tid);
    if (!s) throw new StasisError('INTERNAL', `Thread ${tid} is not frozen by this tracer.`);
    return s;
  }
  /** @internal */
  dropSlot(tid: number): void {
    this.slots.delete(tid);
  }
  /** @internal */
  hasSlot(tid: number): boolean {
    return this.slots.has(tid);
  }

  /** The registers as found at the freeze (cached; a copy). */
  regs(tid: number): bigint[] {
    const s = this.slot(tid);
    if (!s.origRegs) s.origRegs = getRegs(tid);
    return [...s.origRegs];
  }

  /** Marks that registers of tid are about to be changed, remembering the originals first. */
  beginRegChange(tid: number): bigint[] {
    const orig = this.regs(tid);
    this.slot(tid).dirtyRegs = true;
    return orig;
  }

  /** Puts the original registers back (idempotent). */
  restoreRegs(tid: number): void {
    const s = this.slot(tid);
    if (s.dirtyRegs && s.origRegs) {
      setRegs(tid, s.origRegs);
      s.dirtyRegs = false;
    }
  }

  /** Replaces the registers that will be in place after release (e.g. restore sets new ones). */
  setRegsPermanent(tid: number, regs: bigint[]): void {
    setRegs(tid, regs);
    const s = this.slot(tid);
    s.origRegs = [...regs];
    s.dirtyRegs = false;
  }

  xstate(tid: number): Buffer {
    return getRegset(tid, NT.X86_XSTATE);
  }
  setXstate(tid: number, data: Buffer): void {
    setRegset(tid, NT.X86_XSTATE, data);
  }
  sigmask(tid: number): bigint {
    return getSigmask(tid);
  }

  /** process_vm_readv; returns bytes read (short at an unmapped address). */
  read(addr: bigint, buf: Buffer): number {
    return vmRead(this.pid, addr, buf);
  }
  /** process_vm_writev (honours page protections). */
  write(addr: bigint, buf: Buffer): number {
    return vmWrite(this.pid, addr, buf);
  }
  /** Writes through /proc/PID/mem, which may write read-only pages (e.g. text); returns bytes written. */
  pokeMem(addr: bigint, buf: Buffer): number {
    if (this.memFd < 0) this.memFd = openMem(this.pid, true);
    return memWrite(this.memFd, addr, buf);
  }

  /**
   * Detaches every thread (after putting original registers back) and resumes it, re-delivering a
   * deferred signal. Never throws; safe to call twice. `kill` sends SIGKILL instead of resuming.
   */
  release(opts: { kill?: boolean } = {}): void {
    if (this.released) return;
    this.released = true;
    if (this.memFd >= 0) {
      closeFd(this.memFd);
      this.memFd = -1;
    }
    if (opts.kill) {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    // The leader last: after a SIGKILL its exit is reported to us (its tracer) only once every other
    // thread has been reaped, and until we take it its parent cannot reap the process (seen: a
    // 5-thread target killed after its checkpoint stayed a traced zombie while the engine lived).
    const slots = [...this.slots.values()].sort((a, b) => Number(a.tid === this.pid) - Number(b.tid === this.pid));
    for (const s of slots) {
      try {
        if (!opts.kill && s.dirtyRegs && s.origRegs) setRegs(s.tid, s.origRegs);
      } catch {
        // thread gone
      }
      detachOne(s, this.deferredSignals.get(s.tid) ?? 0);
    }
    this.slots.clear();
  }
}

function detachOne(s: ThreadSlot, sig: number): void {
  try {
    detach(s.tid, sig);
    return;
  } catch (e) {
    if (!(e instanceof SysError) || e.errno !== E.ESRCH) return;
  }
  // ESRCH: either gone, or seized but not yet in a stop (PTRACE_DETACH needs a stopped tracee).
  // Wait briefly for its stop, then detach again.
  const end = performance.now() + 500;
  while (performance.now() < end) {
    let st: WaitStatus | null;
    try {
      st = waitTid(s.tid, 1 /* WNOHANG */);
    } catch {
      return; // not ours any more (gone)
    }
    if (st && !st.stopped) return; // exited
    if (st) {
      try {
        detach(s.tid, sig);
      } catch {
        // nothing more we can do
      }
      return;
    }
    sleepMs(1);
  }
}

/** Waits for one thread's stop; null on timeout. Handles signal-delivery-stops by deferring the signal. */
function waitStop(t: Tracee, tid: number, deadline: number): 'stopped' | 'gone' | null {
  const spinUntil = performance.now() + 5;
  for (;;) {
    let st: WaitStatus | null;
    try {
      st = waitTid(tid, 1 /* WNOHANG */);
    } catch (e) {
      if (e instanceof SysError && e.errno === E.ECHILD) return 'gone';
      throw e;
    }
    if (st) {
      if (!st.stopped) return 'gone';
      // Signal-delivery-stop (no event): the signal was about to be delivered. Keep it, re-deliver on detach.
      if (st.event === 0 && st.stopSig !== null) t.deferredSignals.set(tid, st.stopSig);
      return 'stopped';
    }
    const now = performance.now();
    if (now > deadline) return null;
    // Spin first: a stop usually arrives within microseconds, and every millisecond here is downtime.
    if (now > spinUntil) sleepMs(1);
  }
}

/**
 * Seizes and interrupts every thread of pid. Throws a StasisError (and leaves nothing traced) when
 * the process is gone, not ours to trace, already traced, or does not stop in time.
 */
export function freeze(pid: number, opts: FreezeOptions = {}): Tracee {
  if (!opts.skipChecks) checkTraceable(pid);
  const timeoutMs = opts.timeoutMs ?? 2000;
  const t = new Tracee(pid);
  const deadline = performance.now() + timeoutMs;
  try {
    // Seize until no new thread appears (a running process may create threads meanwhile).
    for (let round = 0; ; round++) {
      const tids = listThreads(pid).filter((tid) => !t.hasSlot(tid));
      if (tids.length === 0) break;
      if (round > 100) throw new StasisError('BUSY', `Process ${pid} keeps creating threads; could not freeze it. Try again.`);
      for (const tid of tids) {
        try {
          seize(tid, opts.options ?? 0);
        } catch (e) {
          if (e instanceof SysError && e.errno === E.ESRCH) continue; // thread exited meanwhile
          if (e instanceof SysError && e.errno === E.EPERM && t.tids.length === 0) throw permissionError(pid, e);
          throw e;
        }
        t.addSlot(tid);
        try {
          interrupt(tid);
        } catch (e) {
          if (!(e instanceof SysError && e.errno === E.ESRCH)) throw e;
        }
      }
    }
    if (!t.hasSlot(pid)) throw new StasisError('PROCESS_GONE', `Process ${pid} exited while it was being frozen.`);
    for (const tid of t.tids) {
      const r = waitStop(t, tid, deadline);
      if (r === 'gone') {
        if (tid === pid) throw new StasisError('PROCESS_GONE', `Process ${pid} exited while it was being frozen.`);
        t.dropSlot(tid);
        continue;
      }
      if (r === null) {
        throw new StasisError('BUSY', `Thread ${tid} of process ${pid} did not stop within ${timeoutMs} ms (it may be in uninterruptible sleep, state D). Nothing was changed; try again.`);
      }
      t.slot(tid).stopped = true;
    }
    t.freezeMs = t.elapsedMs();
    return t;
  } catch (e) {
    t.release();
    throw e;
  }
}

function permissionError(pid: number, e: SysError): StasisError {
  let yama: string | null;
  try {
    yama = readFileSync('/proc/sys/kernel/yama/ptrace_scope', 'utf8').trim();
  } catch {
    yama = null;
  }
  const hint = yama !== null && yama !== '0'
    ? ` Yama restricts ptrace here (kernel.yama.ptrace_scope=${yama}): start the program with \`stasis launch\`, or run \`sudo sysctl kernel.yama.ptrace_scope=0\`${yama === '3' ? ' (scope 3 cannot be lowered without a reboot)' : ''}, or run Stasis as root.`
    : ' The process belongs to another user or is not dumpable; run Stasis as that user or as root.';
  return new StasisError('PERMISSION_DENIED', `Not allowed to trace process ${pid} (${e.errnoName}).${hint}`);
}
