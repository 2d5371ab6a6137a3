/**
 * File locks as /proc/PID/fdinfo/N and /proc/locks print them ("1: POSIX  ADVISORY  WRITE 1234
 * fe:00:2149982 10 19"), read by capture (kept in FdState.info.lock, fdinfo's own lines) and by
 * restore's pre-flight and lock step alike.
 */
import type { FdState } from './process-state';

export type LockKind = 'flock' | 'posix' | 'ofd' | 'lease' | 'other';

export interface FileLock {
  kind: LockKind;
  /** The kernel's word for it (FLOCK, POSIX, OFDLCK, LEASE, DELEG...). */
  name: string;
  write: boolean;
  /** Holder as printed: the pid (flock, POSIX), -1 for OFD locks. */
  pid: number;
  major: number;
  minor: number;
  inode: number;
  start: bigint;
  /** Last byte, inclusive; null: to the end of the file (however far it grows). */
  end: bigint | null;
}

const KINDS: Record<string, LockKind> = { FLOCK: 'flock', POSIX: 'posix', OFDLCK: 'ofd', LEASE: 'lease', DELEG: 'lease' };

/** One lock line, or null for a waiter ("->": a lock requested, not held) or anything unreadable. */
export function parseLockLine(line: string): FileLock | null {
  const m = /^\s*(?:lock:\s*)?\d+:\s+(->\s+)?(\S+)\s+\S+\s+(\S+)\s+(-?\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s+(\d+)\s+(\d+|EOF)\s*$/i.exec(line);
  if (!m || m[1]) return null;
  const name = m[2]!;
  return {
    kind: KINDS[name] ?? 'other', name, write: m[3] === 'WRITE', pid: Number(m[4]),
    major: parseInt(m[5]!, 16), minor: parseInt(m[6]!, 16), inode: Number(m[7]),
    start: BigInt(m[8]!), end: m[9] === 'EOF' ? null : BigInt(m[9]!),
  };
}

/** The locks a descriptor held at capture (fdinfo "lock:" lines; absent: none). */
export function fdLocks(f: Pick<FdState, 'info'>): FileLock[] {
  const raw = f.info?.lock;
  const lines = typeof raw === 'string' ? [raw] : Array.isArray(raw) ? raw.filter((x): x is string => typeof x === 'string') : [];
  return lines.map(parseLockLine).filter((l): l is FileLock => l !== null);
}

/** Whether two locks of the same file exclude each other (flock locks and record locks never meet). */
export function conflicts(a: FileLock, b: FileLock): boolean {
  const family = (l: FileLock): string => (l.kind === 'posix' || l.kind === 'ofd' ? 'record' : l.kind);
  if (family(a) !== family(b) || (!a.write && !b.write)) return false;
  if (a.kind === 'flock') return true;
  const aEnd = a.end ?? -1n, bEnd = b.end ?? -1n;
  return (a.end === null || b.start <= aEnd) && (b.end === null || a.start <= bEnd);
}

export function describeLock(l: FileLock): string {
  const what = l.kind === 'flock' ? `flock(${l.write ? 'LOCK_EX' : 'LOCK_SH'})` : `${l.kind === 'ofd' ? 'OFD' : 'POSIX'} ${l.write ? 'write' : 'read'} lock`;
  return l.kind === 'flock' ? what : `${what} on bytes ${l.start}-${l.end === null ? 'EOF' : l.end}`;
}
