/**
 * Restore step "timers": interval timers (setitimer: real, virtual, prof) with their remaining time
 * and interval, and POSIX timers re-created with their original ids (PR_TIMER_CREATE_RESTORE_IDS,
 * Linux 6.16+) then armed. Wall-clock timers are armed for what is left of them now (state/timer-clock.ts):
 * one that came due while the process was checkpointed, or was due at checkpoint time, fires right away.
 */
import { StasisError } from '../../../shared/errors';
import type { ProcessState } from '../state/process-state';
import type { Remote } from './remote';
import { NR, PR_TIMER_CREATE_RESTORE_IDS } from './sysno';
import { elapsedSince, isWallClock, timerAfter } from '../state/timer-clock';

const WHICH = { real: 0, virtual: 1, prof: 2 } as const;
const SIGEV_SIGNAL = 0, SIGEV_NONE = 1, SIGEV_THREAD_ID = 4;

function tv(us: bigint): [bigint, bigint] {
  return [us / 1_000_000n, us % 1_000_000n];
}
function ts(ns: bigint): [bigint, bigint] {
  return [ns / 1_000_000_000n, ns % 1_000_000_000n];
}

/** What is left of a timer `elapsedNs` after the checkpoint; 1 ns (fire now) when it came due meanwhile. */
function leftNow(valueNs: bigint, intervalNs: bigint, elapsedNs: bigint): bigint {
  if (valueNs === 0n) return intervalNs === 0n ? 0n : 1n;
  const after = timerAfter(valueNs, intervalNs, elapsedNs);
  return after.missed > 0n ? 1n : after.valueNs;
}

/** `tids`: saved tid -> tid in the new process, for timers that signal one thread (SIGEV_THREAD_ID). */
export function restoreTimers(r: Remote, state: ProcessState, tids: ReadonlyMap<number, number>): void {
  const elapsed = elapsedSince(state.timers.clock);
  for (const t of state.timers.itimers ?? []) {
    if (t.valueUs === 0n && t.intervalUs === 0n) continue;
    r.resetScratch();
    const b = Buffer.alloc(32);
    // ITIMER_VIRTUAL and ITIMER_PROF count the process's CPU time, which stood still with it.
    const value = (leftNow(t.valueUs * 1000n, t.intervalUs * 1000n, t.which === 'real' ? elapsed : 0n) + 999n) / 1000n;
    [...tv(t.intervalUs), ...tv(value)].forEach((v, i) => b.writeBigInt64LE(v, i * 8));
    r.call(NR.setitimer, [BigInt(WHICH[t.which]), r.put(b), 0n], `setitimer(${t.which})`);
  }
  const posix = state.timers.posix ?? [];
  if (posix.length === 0) return;
  const on = r.raw(NR.prctl, [BigInt(PR_TIMER_CREATE_RESTORE_IDS), 1n, 0n, 0n, 0n]);
  if (on < 0n) throw new StasisError('UNSUPPORTED', 'This kernel cannot re-create POSIX timers with their original ids (needs Linux 6.16+).');
  for (const t of [...posix].sort((a, b) => a.id - b.id)) {
    r.resetScratch();
    const sev = Buffer.alloc(64);
    const notify = t.notify.toLowerCase();
    sev.writeBigUInt64LE(BigInt.asUintN(64, t.sigevValue), 0);
    sev.writeInt32LE(t.signo, 8);
    if (notify.startsWith('none')) sev.writeInt32LE(SIGEV_NONE, 12);
    // Saved as "signal/tid/N" for SIGEV_THREAD_ID (proc/stat.ts): the thread N of the checkpoint, by its new tid.
    else if (notify.includes('tid')) {
      const saved = Number(/(\d+)$/.exec(notify)?.[1] ?? NaN);
      const tid = tids.get(saved);
      if (tid === undefined) throw new StasisError('INTERNAL', `POSIX timer ${t.id} signals thread ${saved}, which the checkpoint does not hold.`);
      sev.writeInt32LE(SIGEV_SIGNAL | SIGEV_THREAD_ID, 12);
      sev.writeInt32LE(tid, 16);
    }
    else sev.writeInt32LE(SIGEV_SIGNAL, 12);
    const idBuf = Buffer.alloc(4);
    idBuf.writeInt32LE(t.id, 0);
    const idAddr = r.put(idBuf);
    r.call(NR.timer_create, [BigInt(t.clock), r.put(sev), idAddr], `timer_create (POSIX timer ${t.id})`);
    const got = Buffer.alloc(4);
    r.read(idAddr, got);
    if (got.readInt32LE(0) !== t.id) throw new StasisError('INTERNAL', `POSIX timer ${t.id} came back as ${got.readInt32LE(0)}.`);
    if (t.valueNs === 0n && t.intervalNs === 0n) continue;
    const spec = Buffer.alloc(32);
    [...ts(t.intervalNs), ...ts(leftNow(t.valueNs, t.intervalNs, isWallClock(t.clock) ? elapsed : 0n))].forEach((v, i) => spec.writeBigInt64LE(v, i * 8));
    r.call(NR.timer_settime, [BigInt(t.id), 0n, r.put(spec), 0n], `timer_settime (POSIX timer ${t.id})`);
  }
  r.raw(NR.prctl, [BigInt(PR_TIMER_CREATE_RESTORE_IDS), 0n, 0n, 0n, 0n]);
}
