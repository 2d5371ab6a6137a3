/**
 * Restore step "signals": every disposition (the stub inherited the engine's, e.g. Node ignores
 * SIGPIPE), the alternate signal stack, and the pending signals (re-raised while everything is
 * blocked). The final blocked mask is set with PTRACE_SETSIGMASK at detach time (registers step),
 * because an injected rt_sigprocmask would let a pending signal arrive mid-restore.
 */
import type { ProcessState } from '../state/process-state';
import type { Remote } from './remote';
import { NR, SIGKILL, SIGSTOP } from './sysno';

const SS_ONSTACK = 1, SS_DISABLE = 2;

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
  const th = state.threads[0];
  if (th?.altstack && !(th.altstack.flags & SS_DISABLE)) {
    r.resetScratch();
    const ss = Buffer.alloc(24);
    ss.writeBigUInt64LE(BigInt.asUintN(64, th.altstack.sp), 0);
    ss.writeInt32LE(th.altstack.flags & ~SS_ONSTACK, 8);
    ss.writeBigUInt64LE(BigInt.asUintN(64, th.altstack.size), 16);
    r.call(NR.sigaltstack, [r.put(ss), 0n], 'sigaltstack');
  }
}

/** Re-raises the checkpoint's pending signals; they stay pending until the final mask allows them. */
export function raisePending(r: Remote, state: ProcessState): void {
  const pid = BigInt(r.pid);
  for (let signo = 1; signo <= 64; signo++) {
    const bit = 1n << BigInt(signo - 1);
    if (signo === SIGKILL || signo === SIGSTOP) continue;
    if (state.sharedPending & bit) r.call(NR.kill, [pid, BigInt(signo)], `re-raising pending signal ${signo}`);
    if ((state.threads[0]?.sigpending ?? 0n) & bit) r.call(NR.tgkill, [pid, pid, BigInt(signo)], `re-raising pending signal ${signo}`);
  }
}
