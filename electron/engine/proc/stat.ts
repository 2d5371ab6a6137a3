/**
 * /proc/PID/stat (incl. the mm fields PR_SET_MM_MAP needs), /proc/PID/status, /proc/PID/auxv,
 * /proc/PID/limits, /proc/PID/timers. Pure parsing plus reads; never touches the process otherwise.
 */
import { readFileSync } from 'node:fs';

export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  pgrp: number;
  session: number;
  flags: number;
  numThreads: number;
  /** Field 22, clock ticks after boot, as a decimal string. */
  startTime: string;
  mm: {
    startCode: bigint; endCode: bigint; startStack: bigint; startData: bigint; endData: bigint;
    startBrk: bigint; argStart: bigint; argEnd: bigint; envStart: bigint; envEnd: bigint;
  };
  exitSignal: number;
}

export function parseStat(text: string): ProcStat {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const f = text.slice(close + 2).trim().split(' ');
  // f[i] is field i + 3 (1-based as in proc(5)).
  const n = (field: number): string => f[field - 3] ?? '0';
  const b = (field: number): bigint => BigInt(n(field));
  return {
    pid: Number(text.slice(0, open).trim()),
    comm: text.slice(open + 1, close),
    state: n(3),
    ppid: Number(n(4)),
    pgrp: Number(n(5)),
    session: Number(n(6)),
    flags: Number(n(9)),
    numThreads: Number(n(20)),
    startTime: n(22),
    exitSignal: Number(n(38)),
    mm: {
      startCode: b(26), endCode: b(27), startStack: b(28), startData: b(45), endData: b(46),
      startBrk: b(47), argStart: b(48), argEnd: b(49), envStart: b(50), envEnd: b(51),
    },
  };
}

export function readStat(pid: number, tid?: number): ProcStat {
  return parseStat(readFileSync(tid ? `/proc/${pid}/task/${tid}/stat` : `/proc/${pid}/stat`, 'utf8'));
}

export type ProcStatus = Map<string, string>;

export function parseStatus(text: string): ProcStatus {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return m;
}

export function readStatus(pid: number, tid?: number): ProcStatus {
  return parseStatus(readFileSync(tid ? `/proc/${pid}/task/${tid}/status` : `/proc/${pid}/status`, 'utf8'));
}

/** A hex signal mask field of status (SigPnd, ShdPnd, SigBlk, SigIgn, SigCgt). */
export function statusMask(st: ProcStatus, key: string): bigint {
  const v = st.get(key);
  return v ? BigInt(`0x${v}`) : 0n;
}

/** Real/effective/saved/fs ids from "Uid:" / "Gid:". */
export function statusIds(st: ProcStatus, key: 'Uid' | 'Gid'): number[] {
  return (st.get(key) ?? '').split(/\s+/).filter(Boolean).map(Number);
}

export function readAuxv(pid: number): bigint[] {
  const buf = readFileSync(`/proc/${pid}/auxv`);
  const out: bigint[] = [];
  for (let i = 0; i + 8 <= buf.length; i += 8) out.push(buf.readBigUInt64LE(i));
  return out;
}

export const RLIMIT_NAMES = [
  'cpu', 'fsize', 'data', 'stack', 'core', 'rss', 'nproc', 'nofile', 'memlock', 'as', 'locks',
  'sigpending', 'msgqueue', 'nice', 'rtprio', 'rttime',
] as const;
export const RLIM_INFINITY = 0xffffffffffffffffn;

export interface Rlimit { resource: number; name: string; cur: bigint; max: bigint }

/** /proc/PID/limits lists the resources in kernel order (RLIMIT_CPU = 0 ... RLIMIT_RTTIME = 15). */
export function parseLimits(text: string): Rlimit[] {
  const lines = text.split('\n').slice(1).filter((l) => l.trim().length > 0);
  const out: Rlimit[] = [];
  lines.forEach((line, i) => {
    const cols = line.slice(26).trim().split(/\s+/);
    const val = (s: string | undefined): bigint => (s === undefined || s === 'unlimited' ? RLIM_INFINITY : BigInt(s));
    if (i < RLIMIT_NAMES.length) out.push({ resource: i, name: RLIMIT_NAMES[i]!, cur: val(cols[0]), max: val(cols[1]) });
  });
  return out;
}

export function readLimits(pid: number): Rlimit[] {
  return parseLimits(readFileSync(`/proc/${pid}/limits`, 'utf8'));
}

export interface PosixTimerInfo { id: number; signo: number; sigevValue: bigint; notify: string; notifyTid: number | null; clock: number }

/** /proc/PID/timers: POSIX timers (settings are not there; they need timer_gettime). */
export function parseTimers(text: string): PosixTimerInfo[] {
  const out: PosixTimerInfo[] = [];
  let cur: Partial<PosixTimerInfo> | null = null;
  for (const line of text.split('\n')) {
    const [k, ...rest] = line.split(':');
    const v = rest.join(':').trim();
    if (k === 'ID') {
      cur = { id: Number(v) };
      out.push(cur as PosixTimerInfo);
    } else if (cur && k === 'signal') {
      const [sig, val] = v.split('/');
      cur.signo = Number(sig);
      cur.sigevValue = BigInt(`0x${(val ?? '0').trim()}`);
    } else if (cur && k === 'notify') {
      const [how, tid] = v.split('/');
      // "signal/tid.N" (SIGEV_THREAD_ID) vs "signal/pid.N": the kind is kept, restore needs it.
      cur.notify = tid?.trim().startsWith('tid') ? `${how ?? ''}/tid` : how ?? '';
      cur.notifyTid = tid && /\d/.test(tid) ? Number(tid.replace(/\D/g, '')) : null;
    } else if (cur && k === 'ClockID') cur.clock = Number(v);
  }
  return out;
}

export function readTimers(pid: number): PosixTimerInfo[] {
  try {
    return parseTimers(readFileSync(`/proc/${pid}/timers`, 'utf8'));
  } catch {
    return [];
  }
}

export function readCmdline(pid: number): string[] {
  const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  const parts = raw.split('\0');
  if (parts.length && parts[parts.length - 1] === '') parts.pop();
  return parts;
}

export function readEnviron(pid: number): string[] {
  const parts = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
  if (parts.length && parts[parts.length - 1] === '') parts.pop();
  return parts;
}
