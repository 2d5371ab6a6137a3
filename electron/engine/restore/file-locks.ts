/**
 * File locks, part of the restore step "fds": each saved lock is taken again on its descriptor once
 * every descriptor is in place — flock() for flock locks (owned by the open file description),
 * fcntl(F_SETLK) for POSIX record locks (owned by the process) and fcntl(F_OFD_SETLK) for OFD
 * locks — never waiting: a lock someone else holds now fails the restore naming it (the pre-flight
 * refuses that case first, from /proc/locks). Leases are refused by the pre-flight.
 */
import { readFileSync } from 'node:fs';
import { StasisError } from '../../../shared/errors';
import { conflicts, describeLock, fdLocks, parseLockLine, type FileLock } from '../state/file-lock';
import type { FdState, ProcessState } from '../state/process-state';
import type { Remote } from './remote';
import { NR } from './sysno';

const LOCK_SH = 1n, LOCK_EX = 2n, LOCK_NB = 4n;
const F_SETLK = 6n, F_OFD_SETLK = 37n;
const F_RDLCK = 0, F_WRLCK = 1;

/** The locks to take again: one per lock, on the lowest descriptor that showed it. */
export function plannedLocks(state: Pick<ProcessState, 'fds'>): { fd: FdState; lock: FileLock }[] {
  const seen = new Set<string>();
  const out: { fd: FdState; lock: FileLock }[] = [];
  for (const f of [...state.fds].sort((a, b) => a.fd - b.fd)) {
    for (const lock of fdLocks(f)) {
      // POSIX locks show on every descriptor of the file; flock and OFD ones on each dup of their description.
      const owner = lock.kind === 'posix' ? 'process' : String(f.sharesWith ?? f.fd);
      const key = `${lock.kind}:${lock.inode}:${lock.start}:${lock.end}:${lock.write}:${owner}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ fd: f, lock });
    }
  }
  return out;
}

/**
 * Locks held now (/proc/locks) that would keep a saved one from being taken again. /proc/locks is
 * read only when the process held locks: the first read in a while costs the kernel an RCU grace
 * period (12-16 ms here), which a migration's last round would wait for in its downtime.
 */
export function lockConflicts(state: Pick<ProcessState, 'fds'>, held?: readonly FileLock[]): { fd: FdState; lock: FileLock; holder: FileLock }[] {
  const out: { fd: FdState; lock: FileLock; holder: FileLock }[] = [];
  const planned = plannedLocks(state);
  if (planned.length === 0) return out;
  held ??= currentLocks();
  for (const p of planned) {
    const holder = held.find((h) => h.inode === p.lock.inode && h.major === p.lock.major && h.minor === p.lock.minor && conflicts(h, p.lock));
    if (holder) out.push({ ...p, holder });
  }
  return out;
}

export function currentLocks(): FileLock[] {
  try {
    return readFileSync('/proc/locks', 'utf8').split('\n').map(parseLockLine).filter((l): l is FileLock => l !== null);
  } catch {
    return [];
  }
}

export function restoreLocks(r: Remote, state: ProcessState): void {
  for (const { fd, lock } of plannedLocks(state)) {
    r.resetScratch();
    const what = `${describeLock(lock)} on ${fd.target} (fd ${fd.fd})`;
    let res: bigint;
    if (lock.kind === 'flock') {
      res = r.raw(NR.flock, [BigInt(fd.fd), (lock.write ? LOCK_EX : LOCK_SH) | LOCK_NB]);
    } else if (lock.kind === 'posix' || lock.kind === 'ofd') {
      const fl = Buffer.alloc(32);
      fl.writeInt16LE(lock.write ? F_WRLCK : F_RDLCK, 0); // l_whence 0: SEEK_SET
      fl.writeBigInt64LE(lock.start, 8);
      fl.writeBigInt64LE(lock.end === null ? 0n : lock.end - lock.start + 1n, 16);
      res = r.raw(NR.fcntl, [BigInt(fd.fd), lock.kind === 'ofd' ? F_OFD_SETLK : F_SETLK, r.put(fl)]);
    } else {
      throw new StasisError('UNSUPPORTED', `The ${lock.name} on ${fd.target} (fd ${fd.fd}) cannot be taken again.`);
    }
    if (res < 0n && res > -4096n) {
      const busy = res === -11n || res === -13n; // EAGAIN, EACCES
      throw new StasisError(busy ? 'CONFLICT' : 'INTERNAL', busy
        ? `The ${what} is held by another process now; the process would run without it. End that process (see /proc/locks) and restore again.`
        : `Taking the ${what} again failed (errno ${-res}).`);
    }
  }
}
