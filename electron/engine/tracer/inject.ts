/**
 * Running a system call inside a frozen thread: find the bytes `0f 05` (syscall) in the target's
 * [vdso], set a copy of the thread's registers with rax = number, orig_rax = -1 (else the kernel's
 * restart logic rewrites rip/rax), rip = that address and the arguments in rdi, rsi, rdx, r10, r8,
 * r9; PTRACE_SINGLESTEP; read rax; put the original registers back (orig_rax intact, so a syscall
 * interrupted by the freeze restarts). Every path restores the registers, including errors; if the
 * engine dies in the middle, the target is left with injected registers, which is why the window
 * is kept to a few system calls.
 *
 * Scratch memory for arguments/results: 16-byte aligned below rsp - 128 (the red zone), its old
 * contents saved and written back; when that is not writable (unmapped stack below rsp), an
 * injected anonymous mmap is used and unmapped afterwards.
 *
 *   injectSyscall(t, tid, SYS.brk, [0n]) -> bigint result (negative errno as a negative bigint)
 *   withScratch(t, tid, size, (addr) => ...) -> whatever the callback returns
 */
import { readFileSync } from 'node:fs';
import { StasisError } from '../../../shared/errors';
import { REG, setRegs, singlestep, waitTid, getRegs, interrupt, cont, SYS, PROT, MAP, SYSCALL_LOOP, syscallTable, tableResults, type WaitStatus } from '../native';
import type { Tracee } from './freeze';

const SIGTRAP = 5;
const syscallInsnCache = new Map<string, bigint>();

/** Address of a `syscall` instruction (0f 05) in the target's [vdso]. Cached per process identity. */
export function findSyscallInsn(t: Tracee): bigint {
  const maps = readFileSync(`/proc/${t.pid}/maps`, 'utf8');
  const line = maps.split('\n').find((l) => l.endsWith('[vdso]'));
  if (!line) throw new StasisError('UNSUPPORTED', `Process ${t.pid} has no [vdso] mapping, so Stasis cannot run system calls in it.`);
  const [range] = line.split(' ');
  const [a, b] = range!.split('-').map((x) => BigInt(`0x${x}`));
  const key = `${t.pid}:${a!.toString(16)}`;
  const hit = syscallInsnCache.get(key);
  if (hit !== undefined) return hit;
  const buf = Buffer.alloc(Number(b! - a!));
  const n = t.read(a!, buf);
  for (let i = 0; i + 1 < n; i++) {
    if (buf[i] === 0x0f && buf[i + 1] === 0x05) {
      const addr = a! + BigInt(i);
      syscallInsnCache.set(key, addr);
      return addr;
    }
  }
  throw new StasisError('UNSUPPORTED', `No syscall instruction found in the [vdso] of process ${t.pid}.`);
}

export interface InjectEvent {
  /** PTRACE_EVENT_* seen while the syscall ran (e.g. FORK with TRACEFORK set). */
  event: number;
  status: WaitStatus;
}

/**
 * Runs one system call in thread tid of a frozen Tracee. Returns rax as a signed BigInt
 * (-4095..-1 = -errno). `onEvent` sees ptrace event stops (fork/clone) during the call.
 */
export function injectSyscall(
  t: Tracee,
  tid: number,
  nr: number,
  args: readonly bigint[] = [],
  onEvent?: (e: InjectEvent) => void,
): bigint {
  return injectSyscalls(t, tid, [{ nr, args }], onEvent)[0]!;
}

/**
 * Runs several system calls in a row in thread tid (each sees the results of the ones before,
 * e.g. in scratch memory) and returns their rax values. Between two calls the thread stays in the
 * single-step trap and the next step cancels it; it is parked once, after the last: a trip through
 * the target less per call, and the unsafe window (the engine dying with the trap pending) is no
 * longer in total than with one park per call.
 */
export function injectSyscalls(t: Tracee, tid: number, calls: readonly { nr: number; args?: readonly bigint[] }[], onEvent?: (e: InjectEvent) => void): bigint[] {
  if (calls.length >= LOOP_MIN && !onEvent) {
    const looped = runLooped(t, tid, calls);
    if (looped) return looped;
  }
  const insn = findSyscallInsn(t);
  const orig = t.beginRegChange(tid);
  const out: bigint[] = [];
  try {
    for (const { nr, args = [] } of calls) {
      const r = [...orig];
      r[REG.rax] = BigInt(nr);
      r[REG.orig_rax] = 0xffffffffffffffffn;
      r[REG.rip] = insn;
      const argRegs = [REG.rdi, REG.rsi, REG.rdx, REG.r10, REG.r8, REG.r9];
      for (let i = 0; i < argRegs.length; i++) r[argRegs[i]!] = BigInt.asUintN(64, args[i] ?? 0n);
      setRegs(tid, r);
      singlestep(tid);
      for (;;) {
        const st = waitTid(tid);
        if (!st) continue;
        if (!st.stopped) throw new StasisError('PROCESS_GONE', `Thread ${tid} ended while running an injected system call (${nr}).`);
        if (st.event !== 0) {
          onEvent?.({ event: st.event, status: st });
          singlestep(tid);
          continue;
        }
        if (st.stopSig === SIGTRAP) break;
        // Another signal arrived during the step: keep it for detach and step on.
        if (st.stopSig !== null) t.deferredSignals.set(tid, st.stopSig);
        singlestep(tid);
      }
      out.push(BigInt.asIntN(64, getRegs(tid)[REG.rax]!));
    }
    return out;
  } finally {
    t.restoreRegs(tid);
    park(t, tid);
  }
}

/** Batches at least this long run through the loop (its page costs two single-stepped calls of its own). */
const LOOP_MIN = 16;
/** Batches that ran through the loop (a test tells them from the single-stepped fallback). */
export const loopStats = { batches: 0 };
/** SIGILL, SIGTRAP aside, SIGBUS, SIGFPE, SIGSEGV: what the loop's own instructions could raise. */
const FAULTS = new Set([4, 7, 8, 11]);

/**
 * Runs calls through native/syscall-loop.ts's loop in a page mapped in the frozen process for the
 * purpose (code and table; unmapped right after): one trip through the target for all of them
 * (a capture's frozen-state batch has ~70: the 64 signal dispositions among them). Null when the
 * page cannot be had (no PROT_EXEC allowed, the memory lock limit under mlockall): the caller
 * single-steps them. Calls that stop the thread (fork, clone, exec) must not be in it.
 */
function runLooped(t: Tracee, tid: number, calls: readonly { nr: number; args?: readonly bigint[] }[]): bigint[] | null {
  // Under a seccomp filter a writable and executable mapping may be what the filter kills for
  // (W^X policies): its calls are single-stepped, as they always were.
  if (underSeccomp(t.pid, tid)) return null;
  const table = syscallTable(calls);
  const len = BigInt((64 + table.length + 4095) & ~4095);
  const m = injectSyscall(t, tid, SYS.mmap, [0n, len, BigInt(PROT.READ | PROT.WRITE | PROT.EXEC), BigInt(MAP.PRIVATE | MAP.ANONYMOUS), 0xffffffffffffffffn, 0n]);
  if (m < 0n && m > -4096n) return null;
  const page = BigInt.asUintN(64, m);
  try {
    if (t.write(page, SYSCALL_LOOP) !== SYSCALL_LOOP.length || t.write(page + 64n, table) !== table.length) return null;
    const orig = t.beginRegChange(tid);
    try {
      const r = [...orig];
      r[REG.rip] = page;
      r[REG.rbx] = page + 64n;
      r[REG.orig_rax] = 0xffffffffffffffffn;
      setRegs(tid, r);
      cont(tid, 0);
      for (;;) {
        const st = waitTid(tid);
        if (!st) continue;
        if (!st.stopped) throw new StasisError('PROCESS_GONE', `Thread ${tid} ended while running ${calls.length} injected system calls.`);
        if (st.event === 0 && st.stopSig === SIGTRAP) break;
        // A fault of the loop itself would come back at once, forever.
        if (st.event === 0 && st.stopSig !== null && FAULTS.has(st.stopSig)) throw new StasisError('INTERNAL', `Thread ${tid} got signal ${st.stopSig} while running ${calls.length} injected system calls.`);
        // Another signal arrived meanwhile: keep it for detach and go on.
        if (st.event === 0 && st.stopSig !== null) t.deferredSignals.set(tid, st.stopSig);
        cont(tid, 0);
      }
    } finally {
      t.restoreRegs(tid);
    }
    const done = Buffer.alloc(table.length);
    if (t.read(page + 64n, done) !== done.length) throw new StasisError('INTERNAL', `Could not read the results of ${calls.length} injected system calls in process ${t.pid}.`);
    loopStats.batches++;
    return tableResults(done, calls.length);
  } finally {
    injectSyscall(t, tid, SYS.munmap, [page, len]);
  }
}

function underSeccomp(pid: number, tid: number): boolean {
  try {
    return !/^Seccomp:\s*0$/m.test(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'));
  } catch {
    return true;
  }
}

/**
 * After the single-step the thread sits in a signal-delivery-stop for SIGTRAP. If the engine died
 * now, the kernel would deliver that SIGTRAP on detach and kill the target. So the thread is moved
 * back into a harmless PTRACE_EVENT_STOP: PTRACE_INTERRUPT, then PTRACE_CONT with signal 0 cancels
 * the SIGTRAP, and get_signal() takes the pending interrupt trap before any user instruction runs.
 */
function park(t: Tracee, tid: number): void {
  try {
    interrupt(tid);
    cont(tid, 0);
    for (;;) {
      const st = waitTid(tid);
      if (!st) continue;
      if (!st.stopped) return;
      if (st.event !== 0) return;
      // A real signal arrived meanwhile: keep it for detach (it is delivered if we die, as it should).
      if (st.stopSig !== null && st.stopSig !== SIGTRAP) t.deferredSignals.set(tid, st.stopSig);
      if (st.stopSig === SIGTRAP) cont(tid, 0);
      else return;
    }
  } catch {
    // thread gone; release() copes
  }
}

/** Like injectSyscall, but throws a StasisError naming the call when the result is -errno. */
export function injectChecked(t: Tracee, tid: number, nr: number, args: readonly bigint[], what: string): bigint {
  const r = injectSyscall(t, tid, nr, args);
  if (r < 0n && r > -4096n) throw new StasisError('INTERNAL', `${what} failed inside process ${t.pid}: errno ${-r}.`);
  return r;
}

/**
 * Gives `fn` `size` bytes of writable memory in the target, then puts everything back.
 * `fn` may write/read the area with t.write/t.read and pass its address to injected calls.
 */
export function withScratch<T>(t: Tracee, tid: number, size: number, fn: (addr: bigint) => T): T {
  const rsp = t.regs(tid)[REG.rsp]!;
  const addr = (rsp - 128n - BigInt(size)) & ~15n;
  const saved = Buffer.alloc(size);
  if (t.read(addr, saved) === size && t.write(addr, saved) === size) {
    try {
      return fn(addr);
    } finally {
      t.write(addr, saved);
    }
  }
  // Stack not mapped that far down: borrow an anonymous page-aligned mapping instead.
  const len = BigInt((size + 4095) & ~4095);
  const m = injectSyscall(t, tid, SYS.mmap, [0n, len, BigInt(PROT.READ | PROT.WRITE), BigInt(MAP.PRIVATE | MAP.ANONYMOUS), 0xffffffffffffffffn, 0n]);
  if (m < 0n && m > -4096n) throw new StasisError('INTERNAL', `Could not get scratch memory in process ${t.pid} (mmap: errno ${-m}).`);
  try {
    return fn(BigInt.asUintN(64, m));
  } finally {
    injectSyscall(t, tid, SYS.munmap, [BigInt.asUintN(64, m), len]);
  }
}
