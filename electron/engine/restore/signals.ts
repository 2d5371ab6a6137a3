/**
 * Restore step "signals": every disposition (the stub inherited the engine's, e.g. Node ignores
 * SIGPIPE), and the pending signals (re-raised while everything is blocked; thread-directed ones
 * to the thread's new tid). The alternate stack is per thread (thread-state.ts). The final blocked mask is set with PTRACE_SETSIGMASK at detach time (registers step),
 * because an injected rt_sigprocmask would let a pending signal arrive mid-restore.
 */
import { StasisError } from '../../../shared/errors';
import type { ProcessState } from '../state/process-state';
import type { Remote } from './remote';
import { NR, SIGKILL, SIGSTOP } from './sysno';

export function setSignalHandlers(r: Remote, state: ProcessState): void {
  const saved = new Map(state.sigactions.map((a) => [a.signo, a]));
  for (let signo = 1; signo <= 64; signo++) {
    if (signo === SIGKILL || signo === SIGSTOP) continue;
    const a = saved.get(signo);
    r.resetScratch();
    const act = Buffer.alloc(32);
    if (a) {
      act.writeBigUInt64LE(BigInt.asUintN(64, a.handler), 0);
      act.writeBigUInt64LE(BigInt.asUintN(64, a.flags), 8);
      act.writeBigUInt64LE(BigInt.asUintN(64, a.restorer), 16);
      act.writeBigUInt64LE(BigInt.asUintN(64, a.mask), 24);
    }
    const ret = r.raw(NR.rt_sigaction, [BigInt(signo), r.put(act), 0n, 8n]);
    // 32/33 are glibc-internal and may be refused on some kernels only when invalid; anything else is real.
    if (ret < 0n && a) r.call(NR.rt_sigaction, [BigInt(signo), r.put(act), 0n, 8n], `rt_sigaction(${signo})`);
  }
}

/**
 * Re-raises the checkpoint's pending signals: process-directed ones with kill, thread-directed ones
 * with tgkill to the thread that had them (`tids`: saved tid -> tid in the new process). They stay
 * pending until each thread's final mask allows them.
 */
export function raisePending(r: Remote, state: ProcessState, tids: ReadonlyMap<number, number>): void {
  const pid = BigInt(r.pid);
  for (let signo = 1; signo <= 64; signo++) {
    const bit = 1n << BigInt(signo - 1);
    if (signo === SIGKILL || signo === SIGSTOP) continue;
    if (state.sharedPending & bit) r.call(NR.kill, [pid, BigInt(signo)], `re-raising pending signal ${signo}`);
    for (const th of state.threads) {
      if (!(th.sigpending & bit)) continue;
      const tid = tids.get(th.tid);
      if (tid === undefined) throw new StasisError('INTERNAL', `Thread ${th.tid} of the checkpoint has no thread in the new process.`);
      r.call(NR.tgkill, [pid, BigInt(tid), BigInt(signo)], `re-raising pending signal ${signo} of thread ${th.tid}`);
    }
  }
}
