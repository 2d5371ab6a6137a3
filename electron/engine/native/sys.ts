/**
 * Small typed wrappers: kill/tgkill, prctl, raw syscall(2), ioctl, mmap of our own scratch memory.
 * Errors become SysError (a StasisError naming the errno). Owns no policy.
 */
import { c, errno, toBig } from './libc';
import { sysError } from './errors';

/** x86_64 system call numbers used by the engine (local calls and injection into targets). */
export const SYS = {
  read: 0, write: 1, open: 2, close: 3, mmap: 9, mprotect: 10, munmap: 11, brk: 12, rt_sigaction: 13,
  rt_sigprocmask: 14, ioctl: 16, pread64: 17, pwrite64: 18, madvise: 28, getpid: 39, clone: 56, fork: 57,
  getitimer: 36, setitimer: 38, wait4: 61, kill: 62, umask: 95, getppid: 110, getpgid: 121, getsid: 124,
  sigaltstack: 131, personality: 135, prctl: 157, arch_prctl: 158, gettid: 186, tkill: 200, futex: 202,
  set_tid_address: 218, timer_create: 222, timer_settime: 223, timer_gettime: 224, timer_getoverrun: 225,
  timer_delete: 226, exit_group: 231, tgkill: 234, waitid: 247, set_robust_list: 273, get_robust_list: 274,
  process_vm_readv: 310, process_vm_writev: 311, userfaultfd: 323, rseq: 334, pidfd_open: 434, pidfd_getfd: 438,
  fcntl: 72, tee: 276, pipe2: 293, socket: 41, sendto: 44, recvfrom: 45, recvmsg: 47, socketpair: 53, getsockopt: 55,
  poll: 7, bind: 49, getsockname: 51, getpeername: 52, setsockopt: 54,
  timerfd_gettime: 287,
  mincore: 27,
  uname: 63,
} as const;

export const PR = {
  SET_PDEATHSIG: 1, GET_DUMPABLE: 3, SET_DUMPABLE: 4, SET_NAME: 15, GET_NAME: 16, SET_MM: 35,
  GET_TID_ADDRESS: 40, SET_CHILD_SUBREAPER: 36, SET_PTRACER: 0x59616d61,
} as const;
/** PR_SET_PTRACER_ANY: (unsigned long)-1. */
export const PR_SET_PTRACER_ANY = 0xffffffffffffffffn;

export function kill(pid: number, sig: number): void {
  if (Number(c.kill(pid, sig)) === -1) throw sysError(`kill(${pid}, ${sig})`, errno());
}

/** kill() that reports whether it reached a process instead of throwing (ESRCH -> false). */
export function tryKill(pid: number, sig: number): boolean {
  return Number(c.kill(pid, sig)) === 0;
}

export function tgkill(tgid: number, tid: number, sig: number): void {
  syscall(SYS.tgkill, [BigInt(tgid), BigInt(tid), BigInt(sig)], 'tgkill');
}

/** Raw syscall with up to six integer arguments; returns the result as a BigInt; throws on -1. */
export function syscall(nr: number, args: readonly bigint[] = [], what = `syscall ${nr}`): bigint {
  const a = [...args, 0n, 0n, 0n, 0n, 0n, 0n].slice(0, 6).map((x) => BigInt.asUintN(64, x));
  const r = toBig(c.syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5]));
  if (r === -1n) throw sysError(what, errno());
  return r;
}

export function prctl(option: number, a2: bigint = 0n, a3: bigint = 0n, a4: bigint = 0n, a5: bigint = 0n): number {
  const r = Number(c.prctl(option, a2, a3, a4, a5));
  if (r === -1) throw sysError(`prctl(${option})`, errno());
  return r;
}

export function ioctl(fd: number, req: number, arg: Buffer | bigint): number {
  const r = Number(typeof arg === 'bigint' ? c.ioctlA(fd, req, arg) : c.ioctlP(fd, req, arg));
  if (r === -1) throw sysError(`ioctl(${fd}, 0x${req.toString(16)})`, errno());
  return r;
}

export function ioctlErrno(fd: number, req: number, arg: Buffer | bigint): { ret: number; errno: number } {
  const r = Number(typeof arg === 'bigint' ? c.ioctlA(fd, req, arg) : c.ioctlP(fd, req, arg));
  return { ret: r, errno: r === -1 ? errno() : 0 };
}

export const PROT = { READ: 1, WRITE: 2, EXEC: 4 } as const;
export const MAP = { SHARED: 1, PRIVATE: 2, FIXED: 0x10, ANONYMOUS: 0x20 } as const;

/** Anonymous private memory in our own process (address as BigInt); free with unmapLocal. */
export function mmapLocal(len: number, prot: number = PROT.READ | PROT.WRITE): bigint {
  const r = toBig(c.mmap(0n, len, prot, MAP.PRIVATE | MAP.ANONYMOUS, -1, 0n));
  if (r === 0xffffffffffffffffn) throw sysError('mmap', errno());
  return r;
}

export function unmapLocal(addr: bigint, len: number): void {
  c.munmap(addr, len);
}

export function copyToAddr(addr: bigint, buf: Buffer): void {
  c.copyToAddr(addr, buf, buf.length);
}

export function copyFromAddr(buf: Buffer, addr: bigint): void {
  c.copyFromAddr(buf, addr, buf.length);
}

export function malloc(n: number): bigint {
  return toBig(c.malloc(n));
}

export function free(addr: bigint): void {
  c.free(addr);
}

export function gettid(): number {
  return Number(c.gettid());
}

const SYNC_FILE_RANGE_WRITE = 2;

/**
 * Starts writeback of [offset, offset+len) of fd without waiting for it (sync_file_range
 * SYNC_FILE_RANGE_WRITE), so that a later fsync finds most of the data already on disk. Advisory:
 * it gives no durability by itself, and a failure only means the fsync will do the work.
 */
export function startWriteback(fd: number, offset: number, len: number): void {
  c.syncFileRange(fd, BigInt(offset), BigInt(len), SYNC_FILE_RANGE_WRITE);
}

const SEEK_DATA = 3, SEEK_HOLE = 4;
const ENXIO = 6;

/**
 * The byte ranges of fd that hold data within [from, to) (lseek SEEK_DATA / SEEK_HOLE): for a shmem
 * object, the pages that exist whether or not any process has them mapped.
 */
export function dataRanges(fd: number, from: bigint, to: bigint): { start: bigint; end: bigint }[] {
  const out: { start: bigint; end: bigint }[] = [];
  let pos = from;
  while (pos < to) {
    const d = BigInt(c.lseek(fd, pos, SEEK_DATA));
    if (d < 0n) {
      const e = errno();
      if (e === ENXIO) break; // no data after pos
      throw sysError('lseek(SEEK_DATA)', e);
    }
    if (d >= to) break;
    const h = BigInt(c.lseek(fd, d, SEEK_HOLE));
    if (h < 0n) throw sysError('lseek(SEEK_HOLE)', errno());
    out.push({ start: d, end: h < to ? h : to });
    pos = h;
  }
  return out;
}
