/**
 * Checks before touching a process: exists, not a zombie, not a kernel thread, not already traced,
 * not ourselves, and (optionally) still the same process (start time). Each failure is a
 * StasisError that says what is wrong and what to do; nothing is changed. Owns only reading /proc.
 */
import { readFileSync } from 'node:fs';
import { StasisError } from '../../../shared/errors';

export interface ProcBasics {
  pid: number;
  state: string;
  comm: string;
  ppid: number;
  startTime: string;
  flags: number;
  tracerPid: number;
  uid: number;
}

const PF_KTHREAD = 0x00200000;

export function readBasics(pid: number): ProcBasics | null {
  let stat: string;
  let status: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const close = stat.lastIndexOf(')');
  const comm = stat.slice(stat.indexOf('(') + 1, close);
  const f = stat.slice(close + 2).split(' ');
  // f[0] is field 3 (state); field N is f[N - 3].
  return {
    pid,
    state: f[0]!,
    comm,
    ppid: Number(f[1]),
    flags: Number(f[6]),
    startTime: f[19]!,
    tracerPid: Number(/TracerPid:\s+(\d+)/.exec(status)?.[1] ?? 0),
    uid: Number(/Uid:\s+\d+\s+(\d+)/.exec(status)?.[1] ?? -1),
  };
}

export function isKernelThread(b: ProcBasics): boolean {
  return (b.flags & PF_KTHREAD) !== 0;
}

/** Throws unless pid can be frozen now. `expectStartTime` guards against a reused PID. */
export function checkTraceable(pid: number, expectStartTime?: string): ProcBasics {
  if (!Number.isInteger(pid) || pid <= 0) throw new StasisError('INVALID_INPUT', `"${pid}" is not a process id.`);
  if (pid === process.pid) throw new StasisError('INVALID_INPUT', 'Stasis cannot checkpoint itself.');
  const b = readBasics(pid);
  if (!b) throw new StasisError('PROCESS_GONE', `Process ${pid} does not exist (it may have exited). Check the PID with \`stasis ps\`.`);
  if (expectStartTime !== undefined && b.startTime !== expectStartTime) {
    throw new StasisError('PROCESS_GONE', `Process ${pid} is not the same process any more: its start time changed (${expectStartTime} -> ${b.startTime}), so the PID was reused. Nothing was captured.`);
  }
  if (b.state === 'Z' || b.state === 'X') throw new StasisError('PROCESS_GONE', `Process ${pid} (${b.comm}) is a zombie: it has exited and only waits for its parent to reap it. There is nothing to checkpoint.`);
  if (isKernelThread(b)) throw new StasisError('UNSUPPORTED', `Process ${pid} (${b.comm}) is a kernel thread; only user-space processes can be checkpointed.`);
  if (b.tracerPid !== 0) {
    let tracer = String(b.tracerPid);
    const tb = readBasics(b.tracerPid);
    if (tb) tracer = `${b.tracerPid} (${tb.comm})`;
    throw new StasisError('ALREADY_TRACED', `Process ${pid} (${b.comm}) is already being traced by process ${tracer}, e.g. a debugger. Detach the debugger and try again.`);
  }
  return b;
}
