/**
 * Typed ptrace(2) and waitpid(2). Every call of one ptrace conversation must run on the thread
 * that seized the target (ptrace is per tracer thread) and must not yield to the event loop in
 * between. Owns the request constants, the register layout and status decoding; never decides
 * policy (freezing, detaching on error, injection live in ../tracer/).
 *
 *   seize(pid, opts) / interrupt(tid) / cont(tid, sig) / detach(tid, sig) / singlestep(tid)
 *   getRegs(tid) -> bigint[27] ; setRegs(tid, regs)
 *   getRegset(tid, NT_X86_XSTATE) -> Buffer sized by the kernel ; setRegset(tid, nt, buf)
 *   getSigmask(tid) / setSigmask ; getEventMsg ; getSiginfo ; peekSiginfo ; getRseqConfig
 *   waitTid(tid, flags) -> decoded WaitStatus (null with WNOHANG and nothing to report)
 */
import { c, errno, toBig } from './libc';
import { E, sysError, SysError } from './errors';

export const PTRACE = {
  PEEKDATA: 2, POKEDATA: 5, CONT: 7, KILL: 8, SINGLESTEP: 9, GETREGS: 12, SETREGS: 13, GETFPREGS: 14,
  SETFPREGS: 15, ATTACH: 16, DETACH: 17, SYSCALL: 24, SETOPTIONS: 0x4200, GETEVENTMSG: 0x4201,
  GETSIGINFO: 0x4202, SETSIGINFO: 0x4203, GETREGSET: 0x4204, SETREGSET: 0x4205, SEIZE: 0x4206,
  INTERRUPT: 0x4207, LISTEN: 0x4208, PEEKSIGINFO: 0x4209, GETSIGMASK: 0x420a, SETSIGMASK: 0x420b,
  GET_SYSCALL_INFO: 0x420e, GET_RSEQ_CONFIGURATION: 0x420f,
} as const;

export const PTRACE_O = {
  TRACESYSGOOD: 1, TRACEFORK: 2, TRACEVFORK: 4, TRACECLONE: 8, TRACEEXEC: 0x10, TRACEVFORKDONE: 0x20,
  TRACEEXIT: 0x40, TRACESECCOMP: 0x80, EXITKILL: 0x100000, SUSPEND_SECCOMP: 0x200000,
} as const;

export const PTRACE_EVENT = { FORK: 1, VFORK: 2, CLONE: 3, EXEC: 4, VFORK_DONE: 5, EXIT: 6, SECCOMP: 7, STOP: 128 } as const;

export const NT = { PRSTATUS: 1, PRFPREG: 2, X86_XSTATE: 0x202 } as const;

export const WAIT = { WNOHANG: 1, WUNTRACED: 2, WCONTINUED: 8, WNOTHREAD: 0x20000000, WALL: 0x40000000 } as const;

/** Index of each register in struct user_regs_struct (x86_64), the order of `regs` arrays. */
export const REG = {
  r15: 0, r14: 1, r13: 2, r12: 3, rbp: 4, rbx: 5, r11: 6, r10: 7, r9: 8, r8: 9, rax: 10, rcx: 11,
  rdx: 12, rsi: 13, rdi: 14, orig_rax: 15, rip: 16, cs: 17, eflags: 18, rsp: 19, ss: 20, fs_base: 21,
  gs_base: 22, ds: 23, es: 24, fs: 25, gs: 26,
} as const;
export const USER_REGS_COUNT = 27;
const REGS_BYTES = USER_REGS_COUNT * 8;

function check(op: string, ret: number | bigint, tid: number): void {
  if (Number(ret) === -1) {
    const err = errno();
    throw sysError(`${op} (thread ${tid})`, err, err === E.ESRCH ? 'The thread is gone or not stopped under our control' : undefined);
  }
}

function ptraceI(req: number, tid: number, addr: bigint, data: bigint, op: string): number {
  const r = c.ptraceI(req, tid, addr, data);
  check(op, r, tid);
  return Number(r);
}

function ptraceP(req: number, tid: number, addr: bigint, data: Buffer | null, op: string): number {
  const r = c.ptraceP(req, tid, addr, data);
  check(op, r, tid);
  return Number(r);
}

export function seize(tid: number, options = 0): void {
  ptraceI(PTRACE.SEIZE, tid, 0n, BigInt(options), 'PTRACE_SEIZE');
}
export function interrupt(tid: number): void {
  ptraceI(PTRACE.INTERRUPT, tid, 0n, 0n, 'PTRACE_INTERRUPT');
}
export function setOptions(tid: number, options: number): void {
  ptraceI(PTRACE.SETOPTIONS, tid, 0n, BigInt(options), 'PTRACE_SETOPTIONS');
}
export function cont(tid: number, sig = 0): void {
  ptraceI(PTRACE.CONT, tid, 0n, BigInt(sig), 'PTRACE_CONT');
}
export function listen(tid: number): void {
  ptraceI(PTRACE.LISTEN, tid, 0n, 0n, 'PTRACE_LISTEN');
}
export function detach(tid: number, sig = 0): void {
  ptraceI(PTRACE.DETACH, tid, 0n, BigInt(sig), 'PTRACE_DETACH');
}
export function singlestep(tid: number, sig = 0): void {
  ptraceI(PTRACE.SINGLESTEP, tid, 0n, BigInt(sig), 'PTRACE_SINGLESTEP');
}
export function ptraceKill(tid: number): void {
  ptraceI(PTRACE.KILL, tid, 0n, 0n, 'PTRACE_KILL');
}

export function getRegs(tid: number): bigint[] {
  const buf = Buffer.alloc(REGS_BYTES);
  ptraceP(PTRACE.GETREGS, tid, 0n, buf, 'PTRACE_GETREGS');
  const out: bigint[] = new Array<bigint>(USER_REGS_COUNT);
  for (let i = 0; i < USER_REGS_COUNT; i++) out[i] = buf.readBigUInt64LE(i * 8);
  return out;
}

export function setRegs(tid: number, regs: readonly bigint[]): void {
  if (regs.length !== USER_REGS_COUNT) throw new Error(`setRegs needs ${USER_REGS_COUNT} registers, got ${regs.length}.`);
  const buf = Buffer.alloc(REGS_BYTES);
  for (let i = 0; i < USER_REGS_COUNT; i++) buf.writeBigUInt64LE(BigInt.asUintN(64, regs[i]!), i * 8);
  ptraceP(PTRACE.SETREGS, tid, 0n, buf, 'PTRACE_SETREGS');
}

// One malloc'd iovec per process: its address must not move while the kernel fills it.
let iovAddr = 0n;
function iov(): bigint {
  if (iovAddr === 0n) iovAddr = toBig(c.malloc(16));
  return iovAddr;
}

/** The kernel's size of a regset (e.g. NT_X86_XSTATE: 2432 bytes with AVX-512), probed once per type. */
const regsetSizes = new Map<number, number>();

/** Reads a register set; the returned Buffer has exactly the size the kernel reported. */
export function getRegset(tid: number, nt: number): Buffer {
  let size = regsetSizes.get(nt) ?? 16384;
  const data = Buffer.alloc(size);
  const hdr = Buffer.alloc(16);
  const base = toBig(c.malloc(size));
  try {
    hdr.writeBigUInt64LE(base, 0);
    hdr.writeBigUInt64LE(BigInt(size), 8);
    c.copyToAddr(iov(), hdr, 16);
    const r = c.ptraceI(PTRACE.GETREGSET, tid, BigInt(nt), iov());
    check(`PTRACE_GETREGSET(${nt.toString(16)})`, r, tid);
    c.copyFromAddr(hdr, iov(), 16);
    size = Number(hdr.readBigUInt64LE(8));
    regsetSizes.set(nt, size);
    c.copyFromAddr(data, base, size);
  } finally {
    c.free(base);
  }
  return data.subarray(0, size);
}

export function setRegset(tid: number, nt: number, data: Buffer): void {
  const base = toBig(c.malloc(data.length));
  try {
    c.copyToAddr(base, data, data.length);
    const hdr = Buffer.alloc(16);
    hdr.writeBigUInt64LE(base, 0);
    hdr.writeBigUInt64LE(BigInt(data.length), 8);
    c.copyToAddr(iov(), hdr, 16);
    const r = c.ptraceI(PTRACE.SETREGSET, tid, BigInt(nt), iov());
    check(`PTRACE_SETREGSET(${nt.toString(16)})`, r, tid);
  } finally {
    c.free(base);
  }
}

export function getSigmask(tid: number): bigint {
  const buf = Buffer.alloc(8);
  ptraceP(PTRACE.GETSIGMASK, tid, 8n, buf, 'PTRACE_GETSIGMASK');
  return buf.readBigUInt64LE(0);
}

export function setSigmask(tid: number, mask: bigint): void {
  const buf = Buffer.alloc(8);
  buf.writeBigUInt64LE(BigInt.asUintN(64, mask), 0);
  ptraceP(PTRACE.SETSIGMASK, tid, 8n, buf, 'PTRACE_SETSIGMASK');
}

export function getEventMsg(tid: number): bigint {
  const buf = Buffer.alloc(8);
  ptraceP(PTRACE.GETEVENTMSG, tid, 0n, buf, 'PTRACE_GETEVENTMSG');
  return buf.readBigUInt64LE(0);
}

/** Raw siginfo_t (128 bytes); si_signo at 0, si_errno at 4, si_code at 8. */
export function getSiginfo(tid: number): Buffer {
  const buf = Buffer.alloc(128);
  ptraceP(PTRACE.GETSIGINFO, tid, 0n, buf, 'PTRACE_GETSIGINFO');
  return buf;
}

/** Size of one siginfo_t record, in and out of the kernel. */
export const SIGINFO_BYTES = 128;
const PEEKSIGINFO_SHARED = 1;
const PEEK_BATCH = 32;

/**
 * The queued siginfo records of a stopped thread's pending signals, oldest first: its private queue,
 * or with `shared` the process-wide one (any thread of the process can read it). A pending signal
 * the kernel could not queue (RLIMIT_SIGPENDING) has its bit set but no record here.
 */
export function peekSiginfo(tid: number, shared: boolean): Buffer[] {
  // struct ptrace_peeksiginfo_args { u64 off; u32 flags; s32 nr; }
  const args = Buffer.alloc(16);
  const buf = Buffer.alloc(PEEK_BATCH * SIGINFO_BYTES);
  const out: Buffer[] = [];
  for (;;) {
    args.writeBigUInt64LE(BigInt(out.length), 0);
    args.writeUInt32LE(shared ? PEEKSIGINFO_SHARED : 0, 8);
    args.writeInt32LE(PEEK_BATCH, 12);
    const n = Number(c.ptracePP(PTRACE.PEEKSIGINFO, tid, args, buf));
    check('PTRACE_PEEKSIGINFO', n, tid);
    if (n === 0) return out;
    for (let i = 0; i < n; i++) out.push(Buffer.from(buf.subarray(i * SIGINFO_BYTES, (i + 1) * SIGINFO_BYTES)));
  }
}

export interface RseqConfig { address: bigint; length: number; flags: number; signature: number }

/** null when the thread has no rseq registered. Throws UNSUPPORTED (EIO) on kernels before 5.13. */
export function getRseqConfig(tid: number): RseqConfig | null {
  const buf = Buffer.alloc(24);
  ptraceP(PTRACE.GET_RSEQ_CONFIGURATION, tid, 24n, buf, 'PTRACE_GET_RSEQ_CONFIGURATION');
  const address = buf.readBigUInt64LE(0);
  if (address === 0n) return null;
  return { address, length: buf.readUInt32LE(8), signature: buf.readUInt32LE(12), flags: buf.readUInt32LE(16) };
}

export interface WaitStatus {
  pid: number;
  raw: number;
  exited: boolean;
  exitCode: number | null;
  signaled: boolean;
  termSig: number | null;
  stopped: boolean;
  stopSig: number | null;
  /** PTRACE_EVENT_* in bits 16..23 of the status (0 if none). */
  event: number;
}

export function decodeStatus(pid: number, s: number): WaitStatus {
  const stopped = (s & 0xff) === 0x7f;
  const exited = (s & 0x7f) === 0;
  const signaled = !stopped && !exited;
  return {
    pid,
    raw: s,
    exited,
    exitCode: exited ? (s >> 8) & 0xff : null,
    signaled,
    termSig: signaled ? s & 0x7f : null,
    stopped,
    stopSig: stopped ? (s >> 8) & 0xff : null,
    event: stopped ? (s >>> 16) & 0xff : 0,
  };
}

/** waitpid(tid, flags | __WALL); returns null when WNOHANG found nothing. EINTR is retried. */
export function waitTid(tid: number, flags = 0): WaitStatus | null {
  const st = Buffer.alloc(4);
  for (;;) {
    const r = Number(c.waitpid(tid, st, flags | WAIT.WALL));
    if (r === -1) {
      const err = errno();
      if (err === E.EINTR) continue;
      throw sysError(`waitpid(${tid})`, err);
    }
    if (r === 0) return null;
    return decodeStatus(r, st.readInt32LE(0));
  }
}

export { SysError };
