/**
 * The restore's side of the ptrace conversation with the stub: spawn it (posix_spawn, so libuv never
 * reaps it), seize it with PTRACE_O_EXITKILL (if the engine dies mid-restore the half-built process
 * dies with it), and run system calls inside it by single-stepping over a `syscall` instruction —
 * first the stub's own, then the trampoline's. Unlike tracer/inject.ts (built for live targets whose
 * registers must be put back) nothing here is preserved: the stub's state is thrown away.
 * Owns the stub process until detach() or kill(); must never touch any other process.
 */
import { StasisError } from '../../../shared/errors';
import {
  closeFd, cont, detach, getEventMsg, getRegs, memRead, memWrite, openMem, posixSpawn, PTRACE_O, REG, seize, interrupt, setOptions, setRegs,
  singlestep, syscallTable, tableResults, tryKill, waitTid, errnoName, vmWrite,
} from '../native';
import { STUB_SYSCALL_ADDR, stubPath } from './stub-elf';
import { SCRATCH_OFFSET, TRAMPOLINE_LOOP, TRAMPOLINE_SIZE } from './plan';
import { NR, SIGKILL, SIGSTOP } from './sysno';

/** CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM, as pthread_create. */
const CLONE_THREAD_FLAGS = 0x100n | 0x200n | 0x400n | 0x800n | 0x10000n | 0x40000n;

const SIGTRAP = 5;

export class RemoteError extends StasisError {}

/** One call of a batch that must succeed (Remote.callAll): `what` names it in the error. */
export interface Call { nr: number; args: readonly bigint[]; what: string }

export class Remote {
  private _pid: number;
  private memFd = -1;
  private base: bigint[];
  private insn: bigint = STUB_SYSCALL_ADDR;
  private scratchBase = 0n;
  private scratchEnd = 0n;
  private scratchNext = 0n;
  private done = false;
  private extraTids: number[] = [];
  /** Number of system calls injected so far (for benchmarks and messages). */
  calls = 0;

  /** The writable /proc/PID/mem descriptor of the current target (page fill copies through it on threads). */
  get memDescriptor(): number {
    return this.memFd;
  }

  get pid(): number {
    return this._pid;
  }

  /** `forkedFrom`: a child this engine already traces (auto-attached at clone3), a copy of that Remote's process. */
  private constructor(pid: number, forkedFrom?: Remote) {
    this._pid = pid;
    if (forkedFrom) {
      this.insn = forkedFrom.insn;
      this.scratchBase = forkedFrom.scratchBase;
      this.scratchEnd = forkedFrom.scratchEnd;
      this.scratchNext = forkedFrom.scratchBase;
    } else {
      seize(pid, PTRACE_O.EXITKILL);
      interrupt(pid);
      const st = waitTid(pid);
      if (!st || !st.stopped) throw new StasisError('INTERNAL', `The restore stub (pid ${pid}) ended before it could be taken over.`);
    }
    this.base = getRegs(pid);
    this.memFd = openMem(pid, true);
  }

  /**
   * Starts the stub and takes it over. The stub's environment is empty and its argv is just its
   * name. It is written to the first of `dirs` where it can be executed (a noexec /tmp is common).
   */
  static spawnStub(dirs: (string | undefined)[] = [undefined]): Remote {
    let pid = 0;
    let lastError: unknown = null;
    for (const dir of dirs) {
      try {
        pid = posixSpawn({ file: stubPath(dir), argv: ['stasis-restore'], env: [] });
        break;
      } catch (e) {
        lastError = e;
      }
    }
    if (!pid) {
      throw new StasisError('PERMISSION_DENIED', `Could not start the restore stub in ${dirs.filter(Boolean).join(', ') || 'the temp directory'} (${(lastError as Error)?.message ?? 'unknown error'}); make one of them writable and executable (not mounted noexec).`);
    }
    try {
      return new Remote(pid);
    } catch (e) {
      tryKill(pid, SIGKILL);
      try { waitTid(pid); } catch (_e) { /* already reaped */ }
      throw e;
    }
  }

  /** From now on system calls run at `insn` and scratch memory is [scratch, scratch+size). */
  useTrampoline(trampoline: bigint): void {
    this.insn = trampoline;
    this.scratchBase = trampoline + SCRATCH_OFFSET;
    this.scratchEnd = trampoline + TRAMPOLINE_SIZE;
    this.resetScratch();
  }

  resetScratch(): void {
    this.scratchNext = this.scratchBase;
  }

  /** Copies `data` into the trampoline's scratch area and returns its address in the stub (valid until resetScratch). */
  put(data: Buffer): bigint {
    const addr = (this.scratchNext + 15n) & ~15n;
    if (addr + BigInt(data.length) > this.scratchEnd) throw new StasisError('INTERNAL', 'The restore trampoline ran out of scratch memory.');
    this.write(addr, data);
    this.scratchNext = addr + BigInt(data.length);
    return addr;
  }

  putString(s: string): bigint {
    return this.put(Buffer.from(s + '\0', 'utf8'));
  }

  /** Reserves `size` zeroed scratch bytes (for results the kernel writes). */
  reserve(size: number): bigint {
    return this.put(Buffer.alloc(size));
  }

  write(addr: bigint, data: Buffer): void {
    const n = memWrite(this.memFd, addr, data);
    if (n !== data.length) throw new StasisError('INTERNAL', `Could not write ${data.length} bytes at 0x${addr.toString(16)} in the new process (wrote ${n}).`);
  }

  /**
   * Bulk write into writable pages: process_vm_writev is several times faster than /proc/PID/mem
   * but refuses read-only pages, so whatever it could not write goes through /proc/PID/mem.
   */
  writeBulk(addr: bigint, data: Buffer): void {
    let n: number;
    try { n = vmWrite(this.pid, addr, data); } catch (_e) { n = 0; }
    if (n < data.length) this.write(addr + BigInt(n), data.subarray(n));
  }

  read(addr: bigint, buf: Buffer): number {
    return memRead(this.memFd, addr, buf);
  }

  /** Runs one system call in thread `tid` (default: the main thread); returns rax as a signed BigInt (-4095..-1 = -errno). */
  raw(nr: number, args: readonly bigint[] = [], tid = this._pid): bigint {
    const r = [...this.base];
    r[REG.rax] = BigInt(nr);
    r[REG.orig_rax] = 0xffffffffffffffffn;
    r[REG.rip] = this.insn;
    r[REG.rsp] = 0n;
    const argRegs = [REG.rdi, REG.rsi, REG.rdx, REG.r10, REG.r8, REG.r9];
    for (let i = 0; i < argRegs.length; i++) r[argRegs[i]!] = BigInt.asUintN(64, args[i] ?? 0n);
    setRegs(tid, r);
    singlestep(tid);
    this.calls++;
    for (;;) {
      const st = waitTid(tid);
      if (!st) continue;
      if (!st.stopped) throw new StasisError('PROCESS_GONE', `The new process ended while running system call ${nr}${st.termSig ? ` (signal ${st.termSig})` : ''}.`);
      if (st.event !== 0 || st.stopSig === SIGTRAP) break;
      // Any other signal is an accident of the half-built process (e.g. SIGSEGV): report it.
      throw new StasisError('INTERNAL', `The new process received signal ${st.stopSig} while running system call ${nr}.`);
    }
    return BigInt.asIntN(64, getRegs(tid)[REG.rax]!);
  }

  /**
   * Runs several system calls in thread tid (default: the main thread) in one trip: the trampoline's loop (plan.ts
   * TRAMPOLINE_CODE) takes them from a table in scratch memory and traps once after the last. A
   * single-stepped call costs a round trip through this tracer (~30 us here), the loop one for all.
   * Only for calls that do not stop the thread (no fork, clone or exec) and that need nothing but
   * scratch memory put before; before the trampoline exists they run one by one. Returns each rax.
   */
  batch(calls: readonly { nr: number; args: readonly bigint[] }[], tid = this._pid): bigint[] {
    if (calls.length === 0) return [];
    if (this.insn === STUB_SYSCALL_ADDR) return calls.map((c) => this.raw(c.nr, c.args, tid));
    const table = syscallTable(calls);
    const at = this.put(table);
    const r = [...this.base];
    r[REG.rip] = this.insn + TRAMPOLINE_LOOP;
    r[REG.rbx] = at;
    r[REG.orig_rax] = 0xffffffffffffffffn;
    r[REG.rsp] = 0n;
    setRegs(tid, r);
    cont(tid, 0);
    this.calls += calls.length;
    for (;;) {
      const st = waitTid(tid);
      if (!st) continue;
      if (!st.stopped) throw new StasisError('PROCESS_GONE', `The new process ended while running ${calls.length} system calls (the first ${calls[0]!.nr})${st.termSig ? ` (signal ${st.termSig})` : ''}.`);
      if (st.event === 0 && st.stopSig === SIGTRAP) break;
      throw new StasisError('INTERNAL', `The new process ${st.event !== 0 ? `stopped with ptrace event ${st.event}` : `received signal ${st.stopSig}`} while running a batch of ${calls.length} system calls.`);
    }
    const done = Buffer.alloc(table.length);
    if (this.read(at, done) !== done.length) throw new StasisError('INTERNAL', 'Could not read the results of a batch of system calls in the new process.');
    return tableResults(done, calls.length);
  }

  /** batch() of calls that must all succeed: the first failure throws, named by its `what`, as call() does. */
  callAll(calls: readonly Call[], tid = this._pid): bigint[] {
    const rets = this.batch(calls, tid);
    rets.forEach((r, i) => {
      if (r < 0n && r > -4096n) throw new RemoteError('INTERNAL', `${calls[i]!.what} failed: ${errnoName(Number(-r))}.`, { errno: errnoName(Number(-r)) });
    });
    return rets;
  }

  /** Like raw(), but a -errno result throws an error naming `what`. */
  call(nr: number, args: readonly bigint[], what: string, tid = this._pid): bigint {
    const r = this.raw(nr, args, tid);
    if (r < 0n && r > -4096n) throw new RemoteError('INTERNAL', `${what} failed: ${errnoName(Number(-r))}.`, { errno: errnoName(Number(-r)) });
    return r;
  }

  /**
   * One clone3 injected into `tid` with the given flags and exit signal (set_tid = [want] when
   * given); the new task is auto-attached (TRACEFORK/TRACECLONE) and waited for at its first stop.
   * Returns its tid, or null when the kernel refused (e.g. EEXIST: the wanted id is taken).
   */
  private clone3(tid: number, flags: bigint, exitSignal: bigint, want: number | null): number | null {
    setOptions(tid, PTRACE_O.EXITKILL | PTRACE_O.TRACEFORK | PTRACE_O.TRACECLONE);
    this.resetScratch();
    const tidBuf = Buffer.alloc(4);
    tidBuf.writeInt32LE(want ?? 0, 0);
    const tidAddr = this.put(tidBuf);
    const args = Buffer.alloc(88); // struct clone_args
    args.writeBigUInt64LE(flags, 0);
    args.writeBigUInt64LE(exitSignal, 32);
    if (want !== null) {
      args.writeBigUInt64LE(tidAddr, 64);
      args.writeBigUInt64LE(1n, 72);
    }
    const argsAddr = this.put(args);
    const r = [...this.base];
    r[REG.rax] = BigInt(NR.clone3);
    r[REG.orig_rax] = 0xffffffffffffffffn;
    r[REG.rip] = this.insn;
    r[REG.rsp] = 0n;
    r[REG.rdi] = argsAddr;
    r[REG.rsi] = 88n;
    setRegs(tid, r);
    singlestep(tid);
    let child = 0;
    for (;;) {
      const st = waitTid(tid);
      if (!st || !st.stopped) throw new StasisError('PROCESS_GONE', 'The new process ended during clone3.');
      if (st.event !== 0) {
        child = Number(getEventMsg(tid));
        singlestep(tid);
        continue;
      }
      if (st.stopSig === SIGTRAP) break;
      throw new StasisError('INTERNAL', `The new process received signal ${st.stopSig} during clone3.`);
    }
    this.calls++;
    const ret = BigInt.asIntN(64, getRegs(tid)[REG.rax]!);
    setOptions(tid, PTRACE_O.EXITKILL);
    if (ret < 0n || child <= 0 || (want !== null && child !== want)) {
      if (child > 0) { tryKill(child, SIGKILL); try { waitTid(child); } catch (_e) { /* reaped */ } }
      return null;
    }
    const st = waitTid(child);
    if (!st || !st.stopped) throw new StasisError('PROCESS_GONE', `The new task ${child} ended right after clone3.`);
    setOptions(child, PTRACE_O.EXITKILL);
    return child;
  }

  /**
   * Forks the stub with clone3 — with set_tid = [pid] for a same-PID restore (needs
   * CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN, and the PID free) — takes the child over (auto-attached
   * through TRACEFORK), kills the stub, and from then on works on the child, a copy of the stub with
   * the trampoline. The restored process is then an orphan (re-parented to init or the nearest
   * subreaper), never a child of the engine, which would have to reap it. Returns false (and keeps
   * the stub) when the kernel refuses.
   */
  forkAway(pid: number | null): boolean {
    const stub = this._pid;
    const child = this.clone3(stub, 0n, 17n, pid);
    if (child === null) return false;
    // The stub has served its purpose; the child (our tracee, the stub's child) carries on.
    closeFd(this.memFd);
    tryKill(stub, SIGKILL);
    try { for (;;) { const s2 = waitTid(stub); if (!s2 || s2.exited || s2.signaled) break; } } catch (_e) { /* reaped */ }
    this._pid = child;
    this.base = getRegs(child);
    this.memFd = openMem(child, true);
    return true;
  }

  /**
   * Forks this process (a tree restore: the child of a restored parent must be its real child, so
   * getppid() and wait() work) with clone3 and exit signal SIGCHLD — set_tid = [pid] when asked —
   * and returns the child as a Remote of its own, a copy of this one (trampoline included), or
   * null when the kernel refuses (e.g. the PID is taken).
   */
  forkChild(pid: number | null): Remote | null {
    const child = this.clone3(this._pid, 0n, 17n, pid);
    return child === null ? null : new Remote(child, this);
  }

  /**
   * Hands the process over to exit at once with a zombie's wait status (a tree restore's exited
   * child): exit_group(code), or killed by the signal with its default action. Its parent's wait() gets it.
   */
  exitAs(status: number): void {
    const sig = status & 0x7f;
    if (sig !== 0) {
      // Default action for the signal (the stub may have inherited an ignore), and it unblocked.
      this.resetScratch();
      const act = this.reserve(32);
      this.call(NR.rt_sigaction, [BigInt(sig), act, 0n, 8n], `default action for signal ${sig}`);
      const mask = Buffer.alloc(8);
      mask.writeBigUInt64LE(1n << BigInt(sig - 1), 0);
      this.call(NR.rt_sigprocmask, [1n /* SIG_UNBLOCK */, this.put(mask), 0n, 8n], `unblocking signal ${sig}`);
    }
    const r = [...this.base];
    r[REG.rax] = 231n; // exit_group
    r[REG.orig_rax] = 0xffffffffffffffffn;
    r[REG.rip] = this.insn;
    r[REG.rdi] = BigInt((status >> 8) & 0xff);
    setRegs(this._pid, r);
    closeFd(this.memFd);
    this.memFd = -1;
    detach(this._pid, sig);
    this.done = true;
  }

  /**
   * A new thread of the process (clone3 from the main thread with the flags pthread_create uses),
   * with set_tid = [tid] when `tid` is given. It starts stopped, with the main thread's blocked
   * mask and no alternate stack; its registers are set later like the main thread's. Returns its
   * tid, or null when the kernel refused the wanted tid.
   */
  cloneThread(tid: number | null): number | null {
    const child = this.clone3(this._pid, CLONE_THREAD_FLAGS, 0n, tid);
    if (child !== null) this.extraTids.push(child);
    return child;
  }

  /** The threads made by cloneThread, in creation order. */
  get threadTids(): readonly number[] {
    return this.extraTids;
  }

  /** Final hand-over: the process keeps running without us (the other threads are let go first, the main thread last). */
  /**
   * Lets the process run. `stopped`: it was checkpointed stopped (SIGSTOP, SIGTSTP) and must come
   * back stopped: the SIGSTOP is queued while every thread is still in its ptrace stop, so none
   * runs an instruction before the stop (sent after the detach, a stopped child of a tree was
   * seen running on to its exit first).
   */
  detach(stopped = false): void {
    closeFd(this.memFd);
    this.memFd = -1;
    if (stopped) tryKill(this._pid, SIGSTOP);
    for (const tid of this.extraTids) detach(tid, 0);
    detach(this._pid, 0);
    this.done = true;
  }

  /** Kills the half-built process and reaps it, so nothing is left behind. Safe to call twice. */
  kill(): void {
    if (this.done) return;
    this.done = true;
    if (this.memFd >= 0) closeFd(this.memFd);
    tryKill(this.pid, SIGKILL);
    // Traced threads are reaped by their tracer, and the leader only after all of them.
    for (const tid of [...this.extraTids, this.pid]) {
      try {
        for (;;) {
          const st = waitTid(tid);
          if (!st || st.exited || st.signaled) break;
        }
      } catch (_e) {
        // ECHILD: already reaped
      }
    }
  }

  get syscallAddr(): bigint {
    return this.insn;
  }
}
