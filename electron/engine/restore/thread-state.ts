/**
 * Restore step "thread": per-thread kernel state glibc relies on that /proc does not show —
 * clear_child_tid (set_tid_address), the robust futex list, and the rseq area (the stub never
 * registered one, so registering the checkpointed area is enough).
 */
import type { ThreadState } from '../state/process-state';
import type { Remote } from './remote';
import { NR } from './sysno';

export function restoreThreadState(r: Remote, th: ThreadState): void {
  if (th.clearChildTid !== undefined) r.call(NR.set_tid_address, [th.clearChildTid], 'set_tid_address');
  if (th.robustList && th.robustList.head !== 0n) r.call(NR.set_robust_list, [th.robustList.head, BigInt(th.robustList.length)], 'set_robust_list');
  if (th.rseq && th.rseq.address !== 0n) {
    r.call(NR.rseq, [th.rseq.address, BigInt(th.rseq.length), 0n, BigInt(th.rseq.signature >>> 0)], 'rseq registration');
  }
}
