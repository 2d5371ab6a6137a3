/**
 * Scheduling and prctl state, given back inside each thread (part of "thread state", after
 * everything else that runs injected calls in it, since a SCHED_IDLE or pinned thread runs them
 * slowly): sched_setattr, CPU affinity, I/O priority, timer slack, parent-death signal; and per
 * process the child-subreaper bit, THP-disable, oom_score_adj and, last, dumpable.
 */
import { writeFileSync } from 'node:fs';
import { StasisError } from '../../../shared/errors';
import type { ProcessState, ThreadSched } from '../state/process-state';
import { NR_SCHED, PR_SET_CHILD_SUBREAPER, PR_SET_DUMPABLE, PR_SET_PDEATHSIG, PR_SET_THP_DISABLE, PR_SET_TIMERSLACK, SCHED_ATTR_SIZE, hexToMask } from '../state/sched-attrs';
import type { Call, Remote } from './remote';
import { NR } from './sysno';

const SCHED_FLAG_RESET_ON_FORK = 1n;
const IOPRIO_WHO_PROCESS = 1n, PRIO_PROCESS = 0n;

/** Bytes of affinity mask to hand sched_setaffinity: whole longs covering the saved mask. */
function maskBytes(hex: string): number {
  return Math.max(8, Math.ceil(hex.length / 16) * 8);
}

/** The calls that set a thread's scheduling again (run in that thread, in this order); their buffers are put in scratch memory. */
export function schedCalls(r: Remote, s: ThreadSched, tid: number): Call[] {
  const calls: Call[] = [];
  if (s.affinity !== '') {
    const mask = hexToMask(s.affinity, maskBytes(s.affinity));
    calls.push({ nr: NR_SCHED.sched_setaffinity, args: [0n, BigInt(mask.length), r.put(mask)], what: `sched_setaffinity (CPUs 0x${s.affinity}) of thread ${tid}` });
  }
  if (s.ioprio !== 0) calls.push({ nr: NR_SCHED.ioprio_set, args: [IOPRIO_WHO_PROCESS, 0n, BigInt(s.ioprio)], what: `ioprio_set of thread ${tid}` });
  calls.push({ nr: NR.prctl, args: [BigInt(PR_SET_TIMERSLACK), s.timerSlackNs, 0n, 0n, 0n], what: `prctl(PR_SET_TIMERSLACK) of thread ${tid}` });
  if (s.pdeathsig !== 0) calls.push({ nr: NR.prctl, args: [BigInt(PR_SET_PDEATHSIG), BigInt(s.pdeathsig), 0n, 0n, 0n], what: `prctl(PR_SET_PDEATHSIG) of thread ${tid}` });
  const attr = Buffer.alloc(SCHED_ATTR_SIZE);
  attr.writeUInt32LE(SCHED_ATTR_SIZE, 0);
  attr.writeUInt32LE(s.policy, 4);
  attr.writeBigUInt64LE(s.flags & SCHED_FLAG_RESET_ON_FORK, 8);
  attr.writeInt32LE(s.nice, 16);
  attr.writeUInt32LE(s.priority, 20);
  attr.writeBigUInt64LE(s.runtime, 24);
  attr.writeBigUInt64LE(s.deadline, 32);
  attr.writeBigUInt64LE(s.period, 40);
  calls.push({ nr: NR_SCHED.sched_setattr, args: [0n, r.put(attr), 0n], what: `sched_setattr (policy ${s.policy}, nice ${s.nice}, priority ${s.priority}) of thread ${tid}` });
  // sched_setattr sets the nice value of SCHED_OTHER and SCHED_BATCH only; a SCHED_IDLE or real-time thread keeps one too (for when it goes back).
  calls.push({ nr: NR_SCHED.setpriority, args: [PRIO_PROCESS, 0n, BigInt(s.nice)], what: `setpriority (nice ${s.nice}) of thread ${tid}` });
  return calls;
}

export function restoreControls(r: Remote, state: ProcessState): void {
  const c = state.controls;
  if (!c) return;
  if (c.childSubreaper) r.call(NR.prctl, [BigInt(PR_SET_CHILD_SUBREAPER), 1n, 0n, 0n, 0n], 'prctl(PR_SET_CHILD_SUBREAPER)');
  if (c.thpDisable) r.call(NR.prctl, [BigInt(PR_SET_THP_DISABLE), 1n, 0n, 0n, 0n], 'prctl(PR_SET_THP_DISABLE)');
  try {
    writeFileSync(`/proc/${r.pid}/oom_score_adj`, String(c.oomScoreAdj));
  } catch (e) {
    throw new StasisError('PERMISSION_DENIED', `Setting oom_score_adj ${c.oomScoreAdj} of the restored process failed (${(e as Error).message}): lowering it needs CAP_SYS_RESOURCE.`);
  }
  // Last: it also decides who may open /proc/PID files of the process.
  if (c.dumpable !== 1) r.call(NR.prctl, [BigInt(PR_SET_DUMPABLE), BigInt(c.dumpable), 0n, 0n, 0n], 'prctl(PR_SET_DUMPABLE)');
}
