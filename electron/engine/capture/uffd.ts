/**
 * The userfaultfd plumbing both live-snapshot modes share: a userfaultfd created inside the frozen
 * target (injected syscall, so it is bound to the target's mm), taken over with pidfd_getfd and
 * closed in the target, so only we hold it; registering mappings in write-protect mode; and
 * (un)protecting ranges. Closing our descriptor unregisters everything and wakes any thread blocked
 * in a fault, which is why an engine that dies never leaves the target stuck.
 */
import { StasisError } from '../../../shared/errors';
import { SYS, ioctlErrno, E, O, takeFd, uffdHandshake, uffdRegister, UFFDIO_REGISTER_MODE } from '../native';
import type { MappingState } from '../state/process-state';
import { readable } from './mappings';
import { injectSyscall, type Tracee } from '../tracer';

const UFFDIO_WRITEPROTECT = 0xc018aa06;
const UFFDIO_WRITEPROTECT_MODE_WP = 1n;
const UFFD_USER_MODE_ONLY = 1n;
const O_CLOEXEC = BigInt(O.CLOEXEC);
const O_NONBLOCK = 0o4000n;

/** The mappings both live modes write-protect: private anonymous memory, heap and stack. */
export function isWpMapping(m: MappingState): boolean {
  return (m.kind === 'anon' || m.kind === 'heap' || m.kind === 'stack') && m.perms[3] === 'p' && readable(m);
}

export const UFFD_FEATURE = {
  PAGEFAULT_FLAG_WP: 1n,
  /** The kernel resolves write faults itself (no message, never blocks); PAGEMAP_SCAN reports written pages. */
  WP_ASYNC: 1n << 15n,
} as const;

function failed(r: bigint): boolean {
  return r < 0n && r > -4096n;
}

/**
 * A userfaultfd of the frozen target `t` with `features`, or null when the target may not create
 * one or the kernel lacks a feature. `userModeOnly` is allowed where vm.unprivileged_userfaultfd=0
 * stops an unprivileged target from making a full one; only safe when no fault is ever delivered
 * to us (WP_ASYNC), since a kernel-mode fault on a user-mode-only registration fails the syscall.
 */
export function createTargetUffd(t: Tracee, features: bigint, userModeOnly = false): number | null {
  const pid = t.pid;
  let r = injectSyscall(t, pid, SYS.userfaultfd, [O_CLOEXEC | O_NONBLOCK]);
  if (failed(r) && userModeOnly) r = injectSyscall(t, pid, SYS.userfaultfd, [O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY]);
  if (failed(r)) return null; // EPERM (unprivileged_userfaultfd=0) or ENOSYS
  const targetFd = Number(r);
  let uffd: number;
  try {
    uffd = takeFd(pid, targetFd);
  } finally {
    injectSyscall(t, pid, SYS.close, [BigInt(targetFd)]);
  }
  if (!uffdHandshake(uffd, features)) return null;
  return uffd;
}

/** Registers [start, end) for write-protect; returns 0 or the errno (EBUSY: another userfaultfd has it). */
export function registerWp(uffd: number, start: bigint, end: bigint): number {
  return uffdRegister(uffd, start, end, UFFDIO_REGISTER_MODE.WP);
}

/** (Un)protects [start, start+len). A range or target that went away meanwhile is not an error. */
export function writeProtect(uffd: number, start: bigint, len: bigint, on: boolean): void {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(start, 0);
  b.writeBigUInt64LE(len, 8);
  b.writeBigUInt64LE(on ? UFFDIO_WRITEPROTECT_MODE_WP : 0n, 16);
  for (;;) {
    const r = ioctlErrno(uffd, UFFDIO_WRITEPROTECT, b);
    if (r.ret === 0) return;
    if (r.errno === E.EAGAIN) continue; // mm changing under us: retry
    if (r.errno === E.ENOENT || r.errno === E.EINVAL || r.errno === E.ESRCH) return; // range gone / target gone
    throw new StasisError('INTERNAL', `UFFDIO_WRITEPROTECT failed at 0x${start.toString(16)} (errno ${r.errno}).`);
  }
}
