/**
 * The tracer: freeze a process (seize + interrupt every thread, with a timeout), read and set
 * registers (GETREGS/SETREGS, GETREGSET/SETREGSET with NT_PRSTATUS / NT_X86_XSTATE sized by the
 * kernel), run system calls inside it (injection at a `0f 05` in its [vdso], scratch memory below
 * the red zone), read/write its memory (process_vm_readv/writev, /proc/PID/mem), and release it.
 * Built on ../native; shared by capture/ and restore/.
 *
 *   import { freeze, injectSyscall, withScratch, checkTraceable } from '../tracer';
 *   const t = freeze(pid);                 // throws StasisError; nothing left traced on error
 *   try {
 *     const regs = t.regs(tid);            // bigint[27], user_regs_struct order (REG.rip ...)
 *     const xs = t.xstate(tid);            // Buffer, NT_X86_XSTATE as the kernel sized it
 *     const brk = injectSyscall(t, pid, SYS.brk, [0n]);
 *     withScratch(t, tid, 64, (addr) => { injectSyscall(t, tid, SYS.getitimer, [0n, addr]); t.read(addr, buf) });
 *   } finally { t.release() }              // restores registers, detaches, resumes (or { kill: true })
 */
export * from './freeze';
export * from './inject';
export * from './preflight';
