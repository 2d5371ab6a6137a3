/**
 * Restore step "thread state", once per thread, run inside that thread: per-thread kernel state
 * glibc relies on that /proc does not show — clear_child_tid (set_tid_address), the robust futex
 * list, the rseq area (a new thread has none registered, so registering the checkpointed area is
 * enough), the alternate signal stack (clone with CLONE_VM clears it), and the thread's name.
 */
import type { ThreadState } from '../state/process-state';
import type { Remote } from './remote';
import { NR, PR_SET_NAME } from './sysno';

const SS_ONSTACK = 1, SS_DISABLE = 2;

export function restoreThreadState(r: Remote, th: ThreadState, tid = r.pid): void {
  if (th.clearChildTid !== undefined) r.call(NR.set_tid_address, [th.clearChildTid], 'set_tid_address', tid);
  if (th.robustList && th.robustList.head !== 0n) r.call(NR.set_robust_list, [th.robustList.head, BigInt(th.robustList.length)], 'set_robust_list', tid);
  if (th.rseq && th.rseq.address !== 0n) {
    r.call(NR.rseq, [th.rseq.address, BigInt(th.rseq.length), 0n, BigInt(th.rseq.signature >>> 0)], 'rseq registration', tid);
  }
  if (th.altstack && !(th.altstack.flags & SS_DISABLE)) {
    r.resetScratch();
    const ss = Buffer.alloc(24);
    ss.writeBigUInt64LE(BigInt.asUintN(64, th.altstack.sp), 0);
    ss.writeInt32LE(th.altstack.flags & ~SS_ONSTACK, 8);
    ss.writeBigUInt64LE(BigInt.asUintN(64, th.altstack.size), 16);
    r.call(NR.sigaltstack, [r.put(ss), 0n], 'sigaltstack', tid);
  }
  // The main thread's name is the process's (set with the mm step); only the others differ.
  if (th.comm !== undefined && tid !== r.pid) {
    r.resetScratch();
    r.call(NR.prctl, [BigInt(PR_SET_NAME), r.putString(th.comm.slice(0, 15)), 0n, 0n, 0n], 'prctl(PR_SET_NAME)', tid);
  }
}
