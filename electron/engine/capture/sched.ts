/**
 * Scheduling and prctl state the kernel shows nowhere in /proc, read with calls injected into the
 * frozen threads (in the same batch as the rest of each thread's probes): per thread its
 * sched_getattr, CPU affinity, I/O priority, timer slack and parent-death signal; per process the
 * child-subreaper bit, dumpable and THP-disable (and oom_score_adj from /proc).
 */
import { readFileSync } from 'node:fs';
import type { ProcessControls, ProcessState, ThreadSched, ThreadState } from '../state/process-state';
import { SYS, copyFromAddr, free, malloc, syscall } from '../native';
import { NR_SCHED, PR_GET_CHILD_SUBREAPER, PR_GET_DUMPABLE, PR_GET_PDEATHSIG, PR_GET_THP_DISABLE, SCHED_ATTR_SIZE, maskToHex, parseCpuList } from '../state/sched-attrs';
import type { Probe } from './threads';

/** Bytes of affinity mask asked for: 8192 CPUs. */
const MASK_BYTES = 1024;
const IOPRIO_WHO_PROCESS = 1n;

const neg = (v: bigint): boolean => v < 0n && v > -4096n;

let allOnline: string | null | undefined;

/** '' for a mask of every online CPU (the default nobody chose), else the mask. */
function unpinned(mask: string): string {
  if (allOnline === undefined) {
    try {
      const cpus = parseCpuList(readFileSync('/sys/devices/system/cpu/online', 'utf8'));
      allOnline = maskToHex(Buffer.from(cpus.reduce((acc, c) => { acc[c >> 3] = (acc[c >> 3] ?? 0) | (1 << (c & 7)); return acc; }, new Array<number>(Math.ceil((Math.max(...cpus) + 1) / 8)).fill(0))));
    } catch {
      allOnline = null;
    }
  }
  return mask === allOnline ? '' : mask;
}

/**
 * sched_getattr, sched_getaffinity and ioprio_get take a tid and /proc/TID/timerslack_ns names any
 * thread, so the engine asks the kernel itself (microseconds); only the parent-death signal needs a
 * call in the thread (each injected call costs about 0.1 ms of the freeze: five per thread made a
 * 65-thread freeze 40 ms longer).
 */
export function schedProbe(ts: ThreadState): Probe {
  return {
    scratch: 8,
    calls: (addr) => [{ nr: SYS.prctl, args: [BigInt(PR_GET_PDEATHSIG), addr] }],
    read: ([pdeath], b) => {
      const own = readSchedOf(ts.tid);
      if (own) ts.sched = { ...own, pdeathsig: neg(pdeath!) ? 0 : b.readInt32LE(0) };
    },
  };
}

/** A thread's scheduling attributes, CPU affinity, I/O priority and timer slack, asked by tid; null if it is gone. */
function readSchedOf(tid: number): Omit<ThreadSched, 'pdeathsig'> | null {
  const mem = malloc(SCHED_ATTR_SIZE + MASK_BYTES);
  try {
    syscall(NR_SCHED.sched_getattr, [BigInt(tid), mem, BigInt(SCHED_ATTR_SIZE), 0n], `sched_getattr(${tid})`);
    const aff = Number(syscall(NR_SCHED.sched_getaffinity, [BigInt(tid), BigInt(MASK_BYTES), mem + BigInt(SCHED_ATTR_SIZE)], `sched_getaffinity(${tid})`));
    const ioprio = Number(syscall(NR_SCHED.ioprio_get, [IOPRIO_WHO_PROCESS, BigInt(tid)], `ioprio_get(${tid})`));
    const timerSlackNs = BigInt(readFileSync(`/proc/${tid}/timerslack_ns`, 'utf8').trim());
    const b = Buffer.alloc(SCHED_ATTR_SIZE + aff);
    copyFromAddr(b, mem);
    return {
      policy: b.readUInt32LE(4), flags: b.readBigUInt64LE(8), nice: b.readInt32LE(16), priority: b.readUInt32LE(20),
      runtime: b.readBigUInt64LE(24), deadline: b.readBigUInt64LE(32), period: b.readBigUInt64LE(40),
      affinity: unpinned(maskToHex(b.subarray(SCHED_ATTR_SIZE, SCHED_ATTR_SIZE + aff))), ioprio, timerSlackNs,
    };
  } catch {
    return null;
  } finally {
    free(mem);
  }
}

export function controlsProbe(pid: number, state: ProcessState): Probe {
  return {
    scratch: 8,
    calls: (addr) => [
      { nr: SYS.prctl, args: [BigInt(PR_GET_CHILD_SUBREAPER), addr] },
      { nr: SYS.prctl, args: [BigInt(PR_GET_DUMPABLE)] },
      { nr: SYS.prctl, args: [BigInt(PR_GET_THP_DISABLE), 0n, 0n, 0n, 0n] },
    ],
    read: ([sub, dumpable, thp], b) => {
      if (neg(sub!) || neg(dumpable!) || neg(thp!)) return;
      let oomScoreAdj = 0;
      try { oomScoreAdj = Number(readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8').trim()); } catch { /* gone: restore keeps the default */ }
      const controls: ProcessControls = { childSubreaper: b.readInt32LE(0) !== 0, dumpable: Number(dumpable), thpDisable: thp !== 0n, oomScoreAdj };
      state.controls = controls;
    },
  };
}
