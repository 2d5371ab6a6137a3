/**
 * userfaultfd plumbing shared by capture (write-protect snapshots) and restore (filling memory):
 * taking over a descriptor a traced process made (its userfaultfd is bound to its own mm), the API
 * handshake and registering a range. Owns only these calls; who injects the userfaultfd() call and
 * what the ranges are is the caller's.
 */
import { ioctlErrno, syscall, SYS } from './sys';
import { closeFd } from './memory';

const UFFDIO_API = 0xc018aa3f;
const UFFDIO_REGISTER = 0xc020aa00;
export const UFFDIO_REGISTER_MODE = { MISSING: 1n, WP: 2n } as const;

/** Our own copy of descriptor fd of process pid (pidfd_getfd); the caller closes theirs. */
export function takeFd(pid: number, fd: number): number {
  const pidfd = Number(syscall(SYS.pidfd_open, [BigInt(pid), 0n], 'pidfd_open'));
  try {
    return Number(syscall(SYS.pidfd_getfd, [BigInt(pidfd), BigInt(fd), 0n], 'pidfd_getfd'));
  } finally {
    closeFd(pidfd);
  }
}

/** The UFFDIO_API handshake asking for features; false (fd closed) when the kernel lacks one. */
export function uffdHandshake(uffd: number, features: bigint): boolean {
  const api = Buffer.alloc(24);
  api.writeBigUInt64LE(0xaan, 0);
  api.writeBigUInt64LE(features, 8);
  if (ioctlErrno(uffd, UFFDIO_API, api).ret === 0) return true;
  closeFd(uffd);
  return false;
}

/** Registers [start, end) in mode; returns 0 or the errno (EBUSY: another userfaultfd has it). */
export function uffdRegister(uffd: number, start: bigint, end: bigint, mode: bigint): number {
  const reg = Buffer.alloc(32);
  reg.writeBigUInt64LE(start, 0);
  reg.writeBigUInt64LE(end - start, 8);
  reg.writeBigUInt64LE(mode, 16);
  const r = ioctlErrno(uffd, UFFDIO_REGISTER, reg);
  return r.ret === 0 ? 0 : r.errno;
}
