/**
 * Per-thread and per-process kernel state that only the stopped process can tell: registers,
 * xstate, signal mask/pending, rseq, alternate signal stack, clear_child_tid, robust list, signal
 * handlers, brk, interval and POSIX timers. Uses the tracer (GETREGS/GETREGSET, injected system
 * calls with scratch memory below the red zone; registers always put back). Must run while the
 * target is frozen; never resumes it.
 */
import { StasisError } from '../../../shared/errors';
import type { SignalHandlerState, ThreadState, TimerState } from '../state/process-state';
import { REG, SYS, PR, getRseqConfig, syscall, malloc, free, copyFromAddr } from '../native';
import { injectSyscall, injectSyscalls, withScratch, type Tracee } from '../tracer';
import { readStatus, statusMask, readTimers } from '../proc';

const SCRATCH = 256;

function neg(r: bigint): boolean {
  return r < 0n && r > -4096n;
}

function robustList(tid: number): { head: bigint; length: number } | undefined {
  const mem = malloc(16);
  try {
    syscall(SYS.get_robust_list, [BigInt(tid), mem, mem + 8n], 'get_robust_list');
    const b = Buffer.alloc(16);
    copyFromAddr(b, mem);
    const head = b.readBigUInt64LE(0);
    return head === 0n ? undefined : { head, length: Number(b.readBigUInt64LE(8)) };
  } catch {
    return undefined;
  } finally {
    free(mem);
  }
}

export function captureThread(t: Tracee, tid: number, warnings: string[]): ThreadState {
  const regs = t.regs(tid);
  const st = readStatus(t.pid, tid);
  let xstate = '';
  try {
    xstate = t.xstate(tid).toString('base64');
  } catch (e) {
    warnings.push(`thread ${tid}: no NT_X86_XSTATE (${(e as Error).message})`);
  }
  const ts: ThreadState = {
    tid,
    regs,
    xstate,
    sigmask: t.sigmask(tid),
    sigpending: statusMask(st, 'SigPnd'),
    inSyscall: Number(BigInt.asIntN(64, regs[REG.orig_rax]!)),
  };
  try {
    const r = getRseqConfig(tid);
    if (r) ts.rseq = r;
  } catch {
    // kernel without PTRACE_GET_RSEQ_CONFIGURATION
  }
  const rl = robustList(tid);
  if (rl) ts.robustList = rl;
  withScratch(t, tid, SCRATCH, (addr) => {
    const b = Buffer.alloc(24);
    const [alt, tidAddr] = injectSyscalls(t, tid, [
      { nr: SYS.sigaltstack, args: [0n, addr] },
      { nr: SYS.prctl, args: [BigInt(PR.GET_TID_ADDRESS), addr + 32n] },
    ]);
    if (!neg(alt!)) {
      t.read(addr, b);
      const sp = b.readBigUInt64LE(0);
      const flags = b.readInt32LE(8);
      const size = b.readBigUInt64LE(16);
      if (sp !== 0n || size !== 0n) ts.altstack = { sp, flags, size };
    }
    if (!neg(tidAddr!)) {
      t.read(addr + 32n, b.subarray(0, 8));
      ts.clearChildTid = b.readBigUInt64LE(0);
    }
  });
  return ts;
}

/** Handlers of caught signals via injected rt_sigaction; ignored ones as SIG_IGN; default ones omitted. */
export function captureSigactions(t: Tracee): SignalHandlerState[] {
  const st = readStatus(t.pid);
  const caught = statusMask(st, 'SigCgt');
  const ignored = statusMask(st, 'SigIgn');
  const out: SignalHandlerState[] = [];
  const tid = t.pid;
  const sigs = Array.from({ length: 64 }, (_, i) => i + 1);
  const isCaught = (sig: number): boolean => (caught & (1n << BigInt(sig - 1))) !== 0n;
  const caughtSigs = sigs.filter(isCaught);
  // One struct sigaction (32 bytes) per caught signal, all read in one batch of calls.
  const got = new Map<number, SignalHandlerState>();
  if (caughtSigs.length) {
    withScratch(t, tid, 32 * caughtSigs.length, (addr) => {
      const rs = injectSyscalls(t, tid, caughtSigs.map((sig, i) => ({ nr: SYS.rt_sigaction, args: [BigInt(sig), 0n, addr + BigInt(32 * i), 8n] })));
      const b = Buffer.alloc(32 * caughtSigs.length);
      t.read(addr, b);
      caughtSigs.forEach((sig, i) => {
        if (neg(rs[i]!)) throw new StasisError('INTERNAL', `rt_sigaction(${sig}) failed inside process ${t.pid}: errno ${-rs[i]!}.`);
        const o = 32 * i;
        got.set(sig, { signo: sig, handler: b.readBigUInt64LE(o), flags: b.readBigUInt64LE(o + 8), restorer: b.readBigUInt64LE(o + 16), mask: b.readBigUInt64LE(o + 24) });
      });
    });
  }
  for (const sig of sigs) {
    const h = got.get(sig);
    if (h) out.push(h);
    else if (ignored & (1n << BigInt(sig - 1))) out.push({ signo: sig, handler: 1n, flags: 0n, restorer: 0n, mask: 0n });
  }
  return out;
}

export function captureBrk(t: Tracee): bigint {
  const r = injectSyscall(t, t.pid, SYS.brk, [0n]);
  if (neg(r)) throw new StasisError('INTERNAL', `brk(0) failed inside process ${t.pid}: errno ${-r}.`);
  return BigInt.asUintN(64, r);
}

const WHICH = ['real', 'virtual', 'prof'] as const;

export function captureTimers(t: Tracee, warnings: string[]): TimerState {
  const out: TimerState = { itimers: [], posix: [] };
  const tid = t.pid;
  const posix = readTimers(t.pid);
  // Every result has its own 32-byte slot: the three itimers, then one per POSIX timer; all the
  // calls run in one batch.
  withScratch(t, tid, 32 * (WHICH.length + posix.length), (addr) => {
    const slot = (i: number): bigint => addr + BigInt(32 * i);
    const rs = injectSyscalls(t, tid, [
      ...WHICH.map((_, i) => ({ nr: SYS.getitimer, args: [BigInt(i), slot(i)] })),
      ...posix.flatMap((p, j) => [
        { nr: SYS.timer_gettime, args: [BigInt(p.id), slot(WHICH.length + j)] },
        { nr: SYS.timer_getoverrun, args: [BigInt(p.id)] },
      ]),
    ]);
    const all = Buffer.alloc(32 * (WHICH.length + posix.length));
    t.read(addr, all);
    WHICH.forEach((which, i) => {
      if (neg(rs[i]!)) return;
      const b = all.subarray(32 * i);
      const intervalUs = b.readBigInt64LE(0) * 1_000_000n + b.readBigInt64LE(8);
      const valueUs = b.readBigInt64LE(16) * 1_000_000n + b.readBigInt64LE(24);
      if (intervalUs !== 0n || valueUs !== 0n) out.itimers!.push({ which, intervalUs, valueUs });
    });
    for (const [j, p] of posix.entries()) {
      const r = rs[WHICH.length + 2 * j]!;
      if (neg(r)) {
        warnings.push(`POSIX timer ${p.id}: timer_gettime failed (errno ${-r})`);
        continue;
      }
      const b = all.subarray(32 * (WHICH.length + j));
      const overrun = rs[WHICH.length + 2 * j + 1]!;
      out.posix!.push({
        id: p.id, clock: p.clock, signo: p.signo, notify: p.notifyTid !== null ? `${p.notify}/${p.notifyTid}` : p.notify,
        sigevValue: p.sigevValue,
        intervalNs: b.readBigInt64LE(0) * 1_000_000_000n + b.readBigInt64LE(8),
        valueNs: b.readBigInt64LE(16) * 1_000_000_000n + b.readBigInt64LE(24),
        overrun: neg(overrun) ? 0 : Number(overrun),
      });
    }
  });
  return out;
}
