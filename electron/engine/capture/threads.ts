/**
 * Per-thread and per-process kernel state that only the stopped process can tell: registers,
 * xstate, signal mask/pending, rseq, alternate signal stack, clear_child_tid, robust list, signal
 * handlers, brk, interval and POSIX timers. Uses the tracer (GETREGS/GETREGSET, injected system
 * calls with scratch memory below the red zone; registers always put back). Must run while the
 * target is frozen; never resumes it.
 */
import { readFileSync } from 'node:fs';
import { StasisError } from '../../../shared/errors';
import type { SignalHandlerState, ThreadState, TimerState } from '../state/process-state';
import { REG, SYS, PR, getRseqConfig, peekSiginfo, syscall, malloc, free, copyFromAddr } from '../native';
import { injectSyscalls, withScratch, type Tracee } from '../tracer';
import { readStatus, statusMask, readTimers } from '../proc';
import { schedProbe } from './sched';


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

/**
 * The queued siginfo records (raw 128 bytes each, base64) of a frozen thread's private pending
 * signals or, with `shared`, of the process's, oldest first: restore queues them again so a
 * real-time signal comes back with every instance and its payload. Only records of signals in
 * `mask` are kept, so the queue never says more than the mask saved beside it. Undefined when the
 * kernel would not tell (restore then re-raises from the mask alone).
 */
export function pendingQueue(tid: number, shared: boolean, mask: bigint, warnings: string[]): string[] | undefined {
  try {
    return peekSiginfo(tid, shared)
      .filter((info) => {
        const signo = info.readInt32LE(0);
        return signo >= 1 && signo <= 64 && ((mask >> BigInt(signo - 1)) & 1n) !== 0n;
      })
      .map((info) => info.toString('base64'));
  } catch (e) {
    warnings.push(`${shared ? 'process' : `thread ${tid}`}: pending signals saved without their siginfo (${(e as Error).message})`);
    return undefined;
  }
}

/**
 * Injected system calls whose results land in scratch memory, so that several of them (a thread's
 * own, the timers, the handlers, brk) run in one batch: one park of the thread instead of one per
 * group (tracer/inject.ts), a measurable part of the frozen time.
 */
export interface Probe {
  /** Bytes of scratch memory the calls write to. */
  scratch: number;
  calls(addr: bigint): { nr: number; args: bigint[] }[];
  /** Gets the calls' results and the scratch memory after them. */
  read(results: bigint[], mem: Buffer): void;
}

/** Runs every probe's calls in thread tid in one batch. */
export function runProbes(t: Tracee, tid: number, probes: Probe[]): void {
  const sizes = probes.map((p) => (p.scratch + 15) & ~15);
  const total = Math.max(16, sizes.reduce((n, x) => n + x, 0));
  withScratch(t, tid, total, (addr) => {
    const calls: { nr: number; args: bigint[] }[] = [];
    const counts: number[] = [];
    let off = 0;
    probes.forEach((p, i) => {
      const cs = p.calls(addr + BigInt(off));
      calls.push(...cs);
      counts.push(cs.length);
      off += sizes[i]!;
    });
    const rs = injectSyscalls(t, tid, calls);
    const mem = Buffer.alloc(total);
    t.read(addr, mem);
    let k = 0;
    off = 0;
    probes.forEach((p, i) => {
      p.read(rs.slice(k, k + counts[i]!), mem.subarray(off, off + sizes[i]!));
      k += counts[i]!;
      off += sizes[i]!;
    });
  });
}

/**
 * A thread's registers, xstate, masks, rseq and robust list, and (injected, with `extra` probes
 * in the same batch) its alternate signal stack and clear_child_tid.
 */
export function captureThread(t: Tracee, tid: number, warnings: string[], extra: Probe[] = []): ThreadState {
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
  const queue = pendingQueue(tid, false, ts.sigpending, warnings);
  if (queue) ts.sigqueue = queue;
  try {
    const r = getRseqConfig(tid);
    if (r) ts.rseq = r;
  } catch {
    // kernel without PTRACE_GET_RSEQ_CONFIGURATION
  }
  const rl = robustList(tid);
  if (rl) ts.robustList = rl;
  // Credentials a root program may have narrowed for itself; restore must not hand back more.
  ts.caps = {
    inheritable: statusMask(st, 'CapInh'), permitted: statusMask(st, 'CapPrm'), effective: statusMask(st, 'CapEff'),
    bounding: statusMask(st, 'CapBnd'), ambient: statusMask(st, 'CapAmb'),
  };
  if (st.get('NoNewPrivs') === '1') ts.noNewPrivs = true;
  const seccomp = Number(st.get('Seccomp') ?? '0');
  if (seccomp) ts.seccomp = seccomp;
  try {
    ts.comm = readFileSync(`/proc/${t.pid}/task/${tid}/comm`, 'utf8').replace(/\n$/, '');
  } catch {
    // the thread ended meanwhile: its registers above were read, its name is not needed
  }
  const own: Probe = {
    scratch: 32 + 8,
    calls: (addr) => [
      { nr: SYS.sigaltstack, args: [0n, addr] },
      { nr: SYS.prctl, args: [BigInt(PR.GET_TID_ADDRESS), addr + 32n] },
    ],
    read: ([alt, tidAddr], b) => {
      if (!neg(alt!)) {
        const sp = b.readBigUInt64LE(0);
        const flags = b.readInt32LE(8);
        const size = b.readBigUInt64LE(16);
        if (sp !== 0n || size !== 0n) ts.altstack = { sp, flags, size };
      }
      if (!neg(tidAddr!)) ts.clearChildTid = b.readBigUInt64LE(32);
    },
  };
  runProbes(t, tid, [own, schedProbe(ts), ...extra]);
  return ts;
}

/**
 * Handlers of caught signals via injected rt_sigaction; ignored ones as SIG_IGN; default ones
 * omitted (masks from /proc/PID/status). Fills `out` when the probe runs.
 */
export function sigactionsProbe(pid: number, out: SignalHandlerState[]): Probe {
  const st = readStatus(pid);
  const caught = statusMask(st, 'SigCgt');
  const ignored = statusMask(st, 'SigIgn');
  const sigs = Array.from({ length: 64 }, (_, i) => i + 1);
  const caughtSigs = sigs.filter((sig) => (caught & (1n << BigInt(sig - 1))) !== 0n);
  return {
    // One struct sigaction (32 bytes) per caught signal.
    scratch: 32 * caughtSigs.length,
    calls: (addr) => caughtSigs.map((sig, i) => ({ nr: SYS.rt_sigaction, args: [BigInt(sig), 0n, addr + BigInt(32 * i), 8n] })),
    read: (rs, b) => {
      const got = new Map<number, SignalHandlerState>();
      caughtSigs.forEach((sig, i) => {
        if (neg(rs[i]!)) throw new StasisError('INTERNAL', `rt_sigaction(${sig}) failed inside process ${pid}: errno ${-rs[i]!}.`);
        const o = 32 * i;
        got.set(sig, { signo: sig, handler: b.readBigUInt64LE(o), flags: b.readBigUInt64LE(o + 8), restorer: b.readBigUInt64LE(o + 16), mask: b.readBigUInt64LE(o + 24) });
      });
      for (const sig of sigs) {
        const h = got.get(sig);
        if (h) out.push(h);
        else if (ignored & (1n << BigInt(sig - 1))) out.push({ signo: sig, handler: 1n, flags: 0n, restorer: 0n, mask: 0n });
      }
    },
  };
}

/** The exact program break (not in /proc): brk(0). */
export function brkProbe(pid: number, set: (brk: bigint) => void): Probe {
  return {
    scratch: 0,
    calls: () => [{ nr: SYS.brk, args: [0n] }],
    read: ([r]) => {
      if (neg(r!)) throw new StasisError('INTERNAL', `brk(0) failed inside process ${pid}: errno ${-r!}.`);
      set(BigInt.asUintN(64, r!));
    },
  };
}

const WHICH = ['real', 'virtual', 'prof'] as const;

/** Interval timers and POSIX timers (ids and notification from /proc); fills `out` when the probe runs. */
export function timersProbe(pid: number, out: TimerState, warnings: string[]): Probe {
  out.itimers = [];
  out.posix = [];
  const posix = readTimers(pid);
  // Every result has its own 32-byte slot: the three itimers, then one per POSIX timer.
  return {
    scratch: 32 * (WHICH.length + posix.length),
    calls: (addr) => {
      const slot = (i: number): bigint => addr + BigInt(32 * i);
      return [
        ...WHICH.map((_, i) => ({ nr: SYS.getitimer, args: [BigInt(i), slot(i)] })),
        ...posix.flatMap((p, j) => [
          { nr: SYS.timer_gettime, args: [BigInt(p.id), slot(WHICH.length + j)] },
          { nr: SYS.timer_getoverrun, args: [BigInt(p.id)] },
        ]),
      ];
    },
    read: (rs, all) => {
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
    },
  };
}
