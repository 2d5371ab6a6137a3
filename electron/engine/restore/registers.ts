/**
 * Restore step "registers": the last injected call drops the trampoline (a single-step trap arrives
 * right after the syscall instruction, before the vanished next byte would run), then the saved
 * general registers (incl. fs_base), the xstate (FPU/SSE/AVX...) and the blocked-signal mask go in.
 * A call interrupted by the freeze restarts by itself on resume (orig_rax kept, the kernel's restart
 * codes in rax), except -ERESTART_RESTARTBLOCK (poll, nanosleep, futex waits with a timeout): it
 * restarts through the thread's restart block, which the new process does not have, so it would
 * fail with EINTR, and programs such as `tail -f` exit on that ("error waiting for inotify and
 * output events: Interrupted system call", seen here). Instead:
 * - orig_rax is the call itself: it becomes -ERESTARTNOHAND, so the call is issued again with its
 *   original arguments (its timeout starts over), and a signal handler that runs first still gets
 *   EINTR, as with the restart block;
 * - orig_rax is restart_syscall (the freeze caught a call that an earlier stop, such as an earlier
 *   checkpoint's, had already restarted): the original call's number is gone, so the call returns
 *   0 without a restart: "timed out" for poll, "slept" for nanosleep, "woken" for a futex wait,
 *   results each caller must already handle (and time has passed since the checkpoint).
 */
import { NT, REG, setRegs, setRegset, setSigmask } from '../native';
import type { ThreadState } from '../state/process-state';
import type { Remote } from './remote';
import { TRAMPOLINE_SIZE } from './plan';
import { NR } from './sysno';

const ERESTART_RESTARTBLOCK = -516n;
const ERESTARTNOHAND = -514n;
const NO_SYSCALL = BigInt.asUintN(64, -1n);

export function dropTrampoline(r: Remote, trampoline: bigint): void {
  r.call(NR.munmap, [trampoline, TRAMPOLINE_SIZE], 'munmap of the restore trampoline');
}

/** Registers of thread `tid` (default: the main thread) from the saved thread `th`. */
export function setRegisters(r: Remote, th: ThreadState, tid = r.pid): void {
  const regs = [...th.regs];
  if (BigInt.asIntN(64, regs[REG.rax]!) === ERESTART_RESTARTBLOCK) {
    if (regs[REG.orig_rax] === BigInt(NR.restart_syscall)) {
      regs[REG.rax] = 0n;
      regs[REG.orig_rax] = NO_SYSCALL;
    } else {
      regs[REG.rax] = BigInt.asUintN(64, ERESTARTNOHAND);
    }
  }
  setRegs(tid, regs);
  if (th.xstate) setRegset(tid, NT.X86_XSTATE, Buffer.from(th.xstate, 'base64'));
  else if (th.fpregs) setRegset(tid, NT.PRFPREG, Buffer.from(th.fpregs, 'base64'));
  setSigmask(tid, th.sigmask);
}
