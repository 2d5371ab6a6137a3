/**
 * Waits with a restart block (nanosleep, clock_nanosleep, poll, futex with a timeout) that a stop
 * interrupts go on as `restart_syscall` once the thread resumes, and the kernel keeps what they
 * were waiting for in the thread, not in its registers. A later freeze that finds a thread there
 * has lost the call's number: restore could only end the wait ("slept", "timed out"), so
 * `sleep 1000` would exit at once. Any stop does it: pre-copy's first brief freeze, and the
 * previous checkpoint of the process, by this engine or another one (a one-shot CLI).
 * When the thread is still at the same instruction and stack as when its call was interrupted,
 * the call is put back (its arguments are still in their registers: a restart does not touch
 * them) and restore issues it again.
 */
import { REG } from '../native';
import type { ThreadState } from '../state/process-state';
import type { Store } from '../store/api';

export interface RestartedCall {
  nr: bigint;
  rip: bigint;
  rsp: bigint;
}

/** Per thread id. */
export type RestartedCalls = Map<number, RestartedCall>;

const ERESTART_RESTARTBLOCK = -516n;
const NR_RESTART_SYSCALL = 219n;

function restartBlocked(regs: readonly bigint[]): boolean {
  return BigInt.asIntN(64, regs[REG.rax]!) === ERESTART_RESTARTBLOCK;
}

/** The calls these threads were stopped in with a restart block (threads of a freeze, or of a saved checkpoint). */
export function restartedCalls(threads: readonly { tid: number; regs: readonly bigint[] }[]): RestartedCalls {
  const out: RestartedCalls = new Map();
  for (const { tid, regs } of threads) {
    if (restartBlocked(regs) && regs[REG.orig_rax] !== NR_RESTART_SYSCALL) out.set(tid, { nr: regs[REG.orig_rax]!, rip: regs[REG.rip]!, rsp: regs[REG.rsp]! });
  }
  return out;
}

/** Puts back the call of every thread found in `restart_syscall` where one of `known` (first match wins) says which it was. */
export function putBackRestartedCalls(threads: ThreadState[], ...known: RestartedCalls[]): void {
  for (const th of threads) {
    if (!restartBlocked(th.regs) || th.regs[REG.orig_rax] !== NR_RESTART_SYSCALL) continue;
    for (const k of known) {
      const rec = k.get(th.tid);
      if (rec && th.regs[REG.rip] === rec.rip && th.regs[REG.rsp] === rec.rsp) {
        th.regs[REG.orig_rax] = rec.nr;
        break;
      }
    }
  }
}

/**
 * The calls known from the newest checkpoint of the target (a full one taken now still needs what
 * the stop of any earlier checkpoint of the same process interrupted).
 */
export function latestRestarts(store: Store, targetId: number): RestartedCalls {
  const latest = store.latest(targetId);
  return latest ? restartedCalls(store.getState(latest.id).threads) : new Map();
}
