/**
 * Restore step "thread state", once per thread, run inside that thread: per-thread kernel state
 * glibc relies on that /proc does not show — clear_child_tid (set_tid_address), the robust futex
 * list, the rseq area (a new thread has none registered, so registering the checkpointed area is
 * enough), the alternate signal stack (clone with CLONE_VM clears it), and the thread's name.
 * Then its scheduling (restore/sched.ts). Last, its credentials: no_new_privs and the capability sets, narrowed from the engine's (a root
 * program that dropped capabilities must not come back with all of them).
 */
import type { ThreadState } from '../state/process-state';
import type { Call, Remote } from './remote';
import { readFileSync } from 'node:fs';
import { schedCalls } from './sched';
import { NR, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, PR_CAP_AMBIENT_RAISE, PR_CAPBSET_DROP, PR_SET_NAME, PR_SET_NO_NEW_PRIVS } from './sysno';

const SS_ONSTACK = 1, SS_DISABLE = 2;

export function restoreThreadState(r: Remote, th: ThreadState, tid = r.pid): void {
  r.resetScratch();
  // One batch, in this order, run in the thread itself: one trip through it instead of ten or more.
  const calls: Call[] = [];
  if (th.clearChildTid !== undefined) calls.push({ nr: NR.set_tid_address, args: [th.clearChildTid], what: 'set_tid_address' });
  if (th.robustList && th.robustList.head !== 0n) calls.push({ nr: NR.set_robust_list, args: [th.robustList.head, BigInt(th.robustList.length)], what: 'set_robust_list' });
  if (th.rseq && th.rseq.address !== 0n) {
    calls.push({ nr: NR.rseq, args: [th.rseq.address, BigInt(th.rseq.length), 0n, BigInt(th.rseq.signature >>> 0)], what: 'rseq registration' });
  }
  if (th.altstack && !(th.altstack.flags & SS_DISABLE)) {
    const ss = Buffer.alloc(24);
    ss.writeBigUInt64LE(BigInt.asUintN(64, th.altstack.sp), 0);
    ss.writeInt32LE(th.altstack.flags & ~SS_ONSTACK, 8);
    ss.writeBigUInt64LE(BigInt.asUintN(64, th.altstack.size), 16);
    calls.push({ nr: NR.sigaltstack, args: [r.put(ss), 0n], what: 'sigaltstack' });
  }
  // The main thread's name is the process's (set with the mm step); only the others differ.
  if (th.comm !== undefined && tid !== r.pid) {
    calls.push({ nr: NR.prctl, args: [BigInt(PR_SET_NAME), r.putString(th.comm.slice(0, 15)), 0n, 0n, 0n], what: 'prctl(PR_SET_NAME)' });
  }
  // Before the capabilities: a higher priority or lower nice may need CAP_SYS_NICE the thread drops.
  if (th.sched) calls.push(...schedCalls(r, th.sched, tid));
  calls.push(...capabilityCalls(r, th));
  r.callAll(calls, tid);
}

const CAPSET_VERSION_3 = 0x20080522;

/** The engine's own bounding and ambient sets: the stub, and so every restored thread, starts with them. */
function engineCaps(): { bounding: bigint; ambient: bigint } {
  const st = readFileSync('/proc/self/status', 'utf8');
  const field = (k: string): bigint => BigInt('0x' + (new RegExp(`${k}:\\s*([0-9a-f]+)`).exec(st)?.[1] ?? '0'));
  return { bounding: field('CapBnd'), ambient: field('CapAmb') };
}

function lastCap(): number {
  try { return Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim()); } catch { return 40; }
}

/** The calls that set the thread's saved no_new_privs, bounding set, capabilities and ambient set (pre-flight checked they are within ours). */
function capabilityCalls(r: Remote, th: ThreadState): Call[] {
  const calls: Call[] = [];
  if (th.noNewPrivs) calls.push({ nr: NR.prctl, args: [BigInt(PR_SET_NO_NEW_PRIVS), 1n, 0n, 0n, 0n], what: 'prctl(PR_SET_NO_NEW_PRIVS)' });
  const c = th.caps;
  if (!c) return calls;
  // Bounding first: dropping needs CAP_SETPCAP, which the capset below may take away.
  const last = lastCap();
  const ours = engineCaps();
  const drop = ours.bounding & ~c.bounding;
  for (let cap = 0; cap <= last; cap++) {
    if ((drop >> BigInt(cap)) & 1n) calls.push({ nr: NR.prctl, args: [BigInt(PR_CAPBSET_DROP), BigInt(cap), 0n, 0n, 0n], what: `dropping capability ${cap} from the bounding set` });
  }
  const hdr = Buffer.alloc(8);
  hdr.writeUInt32LE(CAPSET_VERSION_3, 0);
  const data = Buffer.alloc(24);
  [c.effective, c.permitted, c.inheritable].forEach((v, i) => {
    data.writeUInt32LE(Number(v & 0xffffffffn), i * 4);
    data.writeUInt32LE(Number((v >> 32n) & 0xffffffffn), 12 + i * 4);
  });
  calls.push({ nr: NR.capset, args: [r.put(hdr), r.put(data)], what: 'capset (the saved capabilities)' });
  // Ambient capabilities need to be permitted and inheritable, hence after capset.
  if (ours.ambient !== 0n) calls.push({ nr: NR.prctl, args: [BigInt(PR_CAP_AMBIENT), BigInt(PR_CAP_AMBIENT_CLEAR_ALL), 0n, 0n, 0n], what: 'clearing the ambient capabilities' });
  for (let cap = 0; cap <= last; cap++) {
    if ((c.ambient >> BigInt(cap)) & 1n) calls.push({ nr: NR.prctl, args: [BigInt(PR_CAP_AMBIENT), BigInt(PR_CAP_AMBIENT_RAISE), BigInt(cap), 0n, 0n], what: `raising ambient capability ${cap}` });
  }
  return calls;
}
