/**
 * Restore step "thread state", once per thread, run inside that thread: per-thread kernel state
 * glibc relies on that /proc does not show — clear_child_tid (set_tid_address), the robust futex
 * list, the rseq area (a new thread has none registered, so registering the checkpointed area is
 * enough), the alternate signal stack (clone with CLONE_VM clears it), and the thread's name.
 * Then its scheduling (restore/sched.ts). Last, its credentials: no_new_privs and the capability sets, narrowed from the engine's (a root
 * program that dropped capabilities must not come back with all of them).
 */
import type { ThreadState } from '../state/process-state';
import type { Remote } from './remote';
import { readFileSync } from 'node:fs';
import { restoreSched } from './sched';
import { NR, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, PR_CAP_AMBIENT_RAISE, PR_CAPBSET_DROP, PR_SET_NAME, PR_SET_NO_NEW_PRIVS } from './sysno';

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
  // Before the capabilities: a higher priority or lower nice may need CAP_SYS_NICE the thread drops.
  if (th.sched) restoreSched(r, th.sched, tid);
  restoreCapabilities(r, th, tid);
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

/** Sets the thread's saved no_new_privs, bounding set, capabilities and ambient set (pre-flight checked they are within ours). */
function restoreCapabilities(r: Remote, th: ThreadState, tid: number): void {
  if (th.noNewPrivs) r.call(NR.prctl, [BigInt(PR_SET_NO_NEW_PRIVS), 1n, 0n, 0n, 0n], 'prctl(PR_SET_NO_NEW_PRIVS)', tid);
  const c = th.caps;
  if (!c) return;
  // Bounding first: dropping needs CAP_SETPCAP, which the capset below may take away.
  const last = lastCap();
  const ours = engineCaps();
  const drop = ours.bounding & ~c.bounding;
  for (let cap = 0; cap <= last; cap++) {
    if ((drop >> BigInt(cap)) & 1n) r.call(NR.prctl, [BigInt(PR_CAPBSET_DROP), BigInt(cap), 0n, 0n, 0n], `dropping capability ${cap} from the bounding set`, tid);
  }
  r.resetScratch();
  const hdr = Buffer.alloc(8);
  hdr.writeUInt32LE(CAPSET_VERSION_3, 0);
  const data = Buffer.alloc(24);
  [c.effective, c.permitted, c.inheritable].forEach((v, i) => {
    data.writeUInt32LE(Number(v & 0xffffffffn), i * 4);
    data.writeUInt32LE(Number((v >> 32n) & 0xffffffffn), 12 + i * 4);
  });
  r.call(NR.capset, [r.put(hdr), r.put(data)], 'capset (the saved capabilities)', tid);
  // Ambient capabilities need to be permitted and inheritable, hence after capset.
  if (ours.ambient !== 0n) r.call(NR.prctl, [BigInt(PR_CAP_AMBIENT), BigInt(PR_CAP_AMBIENT_CLEAR_ALL), 0n, 0n, 0n], 'clearing the ambient capabilities', tid);
  for (let cap = 0; cap <= last; cap++) {
    if ((c.ambient >> BigInt(cap)) & 1n) r.call(NR.prctl, [BigInt(PR_CAP_AMBIENT), BigInt(PR_CAP_AMBIENT_RAISE), BigInt(cap), 0n, 0n], `raising ambient capability ${cap}`, tid);
  }
}
