/**
 * Restore step "signals": every disposition (the stub inherited the engine's, e.g. Node ignores
 * SIGPIPE), and the pending signals (re-raised while everything is blocked, with their saved
 * siginfo and every queued instance when the checkpoint has the queues; thread-directed ones to
 * the thread's new tid). The alternate stack is per thread (thread-state.ts). The final blocked mask is set with PTRACE_SETSIGMASK at detach time (registers step),
 * because an injected rt_sigprocmask would let a pending signal arrive mid-restore.
 */
import { StasisError } from '../../../shared/errors';
import type { ProcessState } from '../state/process-state';
import type { Remote } from './remote';
import { errnoName, SIGINFO_BYTES } from '../native';
import { NR, SIGKILL, SIGSTOP } from './sysno';

export function setSignalHandlers(r: Remote, state: ProcessState): void {
  const saved = new Map(state.sigactions.map((a) => [a.signo, a]));
  r.resetScratch();
  // All 62 in one batch: one trip through the new process instead of one each.
  const calls: { signo: number; nr: number; args: bigint[] }[] = [];
  for (let signo = 1; signo <= 64; signo++) {
    if (signo === SIGKILL || signo === SIGSTOP) continue;
    const a = saved.get(signo);
    const act = Buffer.alloc(32);
    if (a) {
      act.writeBigUInt64LE(BigInt.asUintN(64, a.handler), 0);
      act.writeBigUInt64LE(BigInt.asUintN(64, a.flags), 8);
      act.writeBigUInt64LE(BigInt.asUintN(64, a.restorer), 16);
      act.writeBigUInt64LE(BigInt.asUintN(64, a.mask), 24);
    }
    calls.push({ signo, nr: NR.rt_sigaction, args: [BigInt(signo), r.put(act), 0n, 8n] });
  }
  const rets = r.batch(calls);
  calls.forEach((c, i) => {
    const ret = rets[i]!;
    // 32/33 are glibc-internal and may be refused on some kernels only when invalid; anything else is real.
    if (ret < 0n && ret > -4096n && saved.has(c.signo)) {
      throw new StasisError('INTERNAL', `rt_sigaction(${c.signo}) failed: ${errnoName(Number(-ret))}.`, { errno: errnoName(Number(-ret)) });
    }
  });
}

/**
 * Re-raises the checkpoint's pending signals: process-directed ones from the main thread, thread-
 * directed ones inside the thread that had them (`tids`: saved tid -> tid in the new process). They
 * stay pending until each thread's final mask allows them. Returns warnings for the user.
 */
export function raisePending(r: Remote, state: ProcessState, tids: ReadonlyMap<number, number>): string[] {
  const warnings: string[] = [];
  raiseQueue(r, state.sharedPending, state.sharedQueue, null, 'the process', warnings);
  for (const th of state.threads) {
    const tid = tids.get(th.tid);
    if (tid === undefined) throw new StasisError('INTERNAL', `Thread ${th.tid} of the checkpoint has no thread in the new process.`);
    raiseQueue(r, th.sigpending, th.sigqueue, tid, `thread ${th.tid}`, warnings);
  }
  return warnings;
}

const SI_TIMER = -2;

/**
 * One pending set (`tid` null: the process-wide one). With the saved queue, every record is queued
 * again in order with its siginfo (rt_sigqueueinfo / rt_tgsigqueueinfo), so each instance of a
 * real-time signal comes back with its payload; a signal pending without a record (older
 * checkpoints, or one the kernel kept without siginfo) is raised once with kill / tgkill.
 * The calls run inside the new process, so the kernel sees it signal itself: that is what lets
 * it accept siginfo with si_code >= 0 or SI_TKILL, which it refuses from any other sender
 * (thread-directed ones must come from that very thread for the same reason).
 */
function raiseQueue(r: Remote, mask: bigint, queue: readonly string[] | undefined, tid: number | null, who: string, warnings: string[]): void {
  const pid = BigInt(r.pid);
  const raise = (signo: number): void => {
    if (tid === null) r.call(NR.kill, [pid, BigInt(signo)], `re-raising pending signal ${signo}`);
    else r.call(NR.tgkill, [pid, BigInt(tid), BigInt(signo)], `re-raising pending signal ${signo} of ${who}`, tid);
  };
  const pending = (signo: number): boolean => signo >= 1 && signo <= 64 && signo !== SIGKILL && signo !== SIGSTOP && ((mask >> BigInt(signo - 1)) & 1n) !== 0n;
  const queued = new Set<number>();
  for (const rec of queue ?? []) {
    const info = Buffer.from(rec, 'base64');
    const signo = info.length === SIGINFO_BYTES ? info.readInt32LE(0) : 0;
    if (!pending(signo)) continue;
    queued.add(signo);
    // A POSIX timer's record can carry the kernel's private timer sequence (_sys_private); the
    // kernel clears it on delivery, and this copy is delivered as a plain queued signal.
    if (info.readInt32LE(8) === SI_TIMER) info.writeInt32LE(0, 32);
    r.resetScratch();
    const ret = tid === null
      ? r.raw(NR.rt_sigqueueinfo, [pid, BigInt(signo), r.put(info)])
      : r.raw(NR.rt_tgsigqueueinfo, [pid, BigInt(tid), BigInt(signo), r.put(info)], tid);
    if (ret >= 0n || ret <= -4096n) continue;
    // E.g. EAGAIN over RLIMIT_SIGPENDING: the signal still comes back, only its siginfo is new.
    warnings.push(`Pending signal ${signo} of ${who} (si_code ${info.readInt32LE(8)}) could not be queued again with its siginfo (${errnoName(Number(-ret))}); it was re-raised with a new one.`);
    raise(signo);
  }
  for (let signo = 1; signo <= 64; signo++) if (pending(signo) && !queued.has(signo)) raise(signo);
}
