/**
 * Restore step "memory advice": the per-mapping properties a program sets after mmap and the kernel
 * shows only as smaps VmFlags: mlock/mlock2(MLOCK_ONFAULT) ("lo", "lf"), MADV_DONTFORK ("dc"),
 * MADV_WIPEONFORK ("wf"), MADV_DONTDUMP ("dd"), MADV_HUGEPAGE / MADV_NOHUGEPAGE ("hg", "nh").
 * Without them a restored program forks children that see memory they must not (wipe-on-fork
 * secrets, DONTFORK DMA buffers) and loses its locked pages. Applied after the contents are in
 * (mlock would otherwise fault in pages only to have them overwritten).
 */
import type { MappingState, ProcessState } from '../state/process-state';
import type { Remote } from './remote';
import type { RestorePlan } from './plan';
import { NR } from './sysno';

export const MADV_HUGEPAGE = 14, MADV_NOHUGEPAGE = 15, MADV_DONTFORK = 10, MADV_DONTDUMP = 16, MADV_WIPEONFORK = 18;
const MLOCK_ONFAULT = 1;
const MCL_FUTURE = 2n, MCL_ONFAULT = 4n;

/** VmFlags mnemonic -> the madvise() that sets it. */
const ADVICE: ReadonlyArray<[string, number, string]> = [
  ['dc', MADV_DONTFORK, 'MADV_DONTFORK'],
  ['wf', MADV_WIPEONFORK, 'MADV_WIPEONFORK'],
  ['dd', MADV_DONTDUMP, 'MADV_DONTDUMP'],
  ['hg', MADV_HUGEPAGE, 'MADV_HUGEPAGE'],
  ['nh', MADV_NOHUGEPAGE, 'MADV_NOHUGEPAGE'],
];

export interface VmaAdvice { advice: { value: number; name: string }[]; lock: 'none' | 'lock' | 'onfault' }

export function adviceFor(m: Pick<MappingState, 'vmFlags'>): VmaAdvice {
  const advice = ADVICE.filter(([flag]) => m.vmFlags.includes(flag)).map(([, value, name]) => ({ value, name }));
  const lock = !m.vmFlags.includes('lo') ? 'none' : m.vmFlags.includes('lf') ? 'onfault' : 'lock';
  return { advice, lock };
}

export function applyAdvice(r: Remote, plan: RestorePlan): void {
  for (const s of plan.steps) if (s.advice) adviseRange(r, s.start, s.end, s.advice, s.label);
}

export function adviseRange(r: Remote, start: bigint, end: bigint, advice: VmaAdvice, label: string): void {
  const len = end - start;
  for (const a of advice.advice) r.call(NR.madvise, [start, len, BigInt(a.value)], `madvise(${a.name}) of ${label}`);
  if (advice.lock === 'lock') r.call(NR.mlock, [start, len], `mlock of ${label} (raise RLIMIT_MEMLOCK or run as root)`);
  else if (advice.lock === 'onfault') r.call(NR.mlock2, [start, len, BigInt(MLOCK_ONFAULT)], `mlock2(MLOCK_ONFAULT) of ${label} (raise RLIMIT_MEMLOCK or run as root)`);
}

/**
 * mlockall(MCL_FUTURE[|MCL_ONFAULT]) again (capture/mlock-future.ts): memory the program maps after
 * the restore is locked as before. Without MCL_CURRENT: the mappings it had carry their own locks.
 */
export function restoreMlockFuture(r: Remote, state: Pick<ProcessState, 'mlockFuture'>): void {
  if (!state.mlockFuture) return;
  r.call(NR.mlockall, [MCL_FUTURE | (state.mlockFuture === 'onfault' ? MCL_ONFAULT : 0n)], 'mlockall(MCL_FUTURE)');
}
