/**
 * Copy-on-write snapshot of a frozen single-threaded target, so it can run on while its memory is
 * read: a clone() injected into the target with exit_signal 0 and PTRACE_O_TRACECLONE makes a child
 * that is attached to us and stopped at birth (it never runs a user instruction; PTRACE_O_EXITKILL
 * kills it if the engine dies). The target is resumed at once; memory is read from the child.
 *
 * Why exit_signal 0 and not CLONE_PARENT|SIGCHLD: the child must leave no trace a program could
 * trip over. With exit_signal 0 its death sends no SIGCHLD to anyone, and as a "clone child" it is
 * invisible to wait()/waitpid(-1) without __WALL/__WCLONE, so a parent that waits for its own known
 * child (or for any child) never sees it. Its zombie is then reaped by a short second freeze of the
 * target with an injected wait4(child, __WALL) (counted in the frozen time), so nothing is left.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StasisError } from '../../../shared/errors';
import { SYS, PTRACE_EVENT, PTRACE_O, getEventMsg, setOptions, waitTid, tryKill } from '../native';
import { freeze, injectSyscall, type Tracee } from '../tracer';
import { sleepMs } from '../sleep-sync';

export interface SnapshotChild {
  pid: number;
}

/** Target must be frozen with PTRACE_O_TRACECLONE set on thread `t.pid`. Returns the stopped child. */
export function forkSnapshot(t: Tracee): SnapshotChild {
  let child = 0;
  setOptions(t.pid, PTRACE_O.TRACECLONE);
  let r: bigint;
  try {
    r = injectSyscall(t, t.pid, SYS.clone, [0n, 0n, 0n, 0n, 0n], (e) => {
      if (e.event === PTRACE_EVENT.CLONE || e.event === PTRACE_EVENT.FORK) child = Number(getEventMsg(t.pid));
    });
  } finally {
    setOptions(t.pid, 0);
  }
  if (r < 0n && r > -4096n) throw new StasisError('INTERNAL', `Could not make a snapshot of process ${t.pid}: clone failed with errno ${-r}.`);
  if (child === 0) child = Number(r);
  // The new child reports its birth stop to us (it is auto-attached); from then on it dies with us.
  for (;;) {
    const st = waitTid(child);
    if (!st) continue;
    if (!st.stopped) throw new StasisError('PROCESS_GONE', `The snapshot child of process ${t.pid} ended unexpectedly.`);
    break;
  }
  setOptions(child, PTRACE_O.EXITKILL);
  return { pid: child };
}

/**
 * Kills the snapshot child and makes sure no zombie is left in the target: we reap it as its
 * tracer, then the target (its real parent) reaps it through an injected wait4 in a brief freeze.
 * Returns the milliseconds the target was frozen for that. Never throws.
 */
export function disposeSnapshot(targetPid: number, child: SnapshotChild): number {
  tryKill(child.pid, 9);
  try {
    for (;;) {
      const st = waitTid(child.pid);
      if (st && !st.stopped) break;
    }
  } catch {
    // already reaped
  }
  let frozen = 0;
  // The zombie now belongs to the target (exit_signal 0: no SIGCHLD was sent).
  for (let attempt = 0; attempt < 3; attempt++) {
    let t: Tracee | null = null;
    try {
      if (!isZombieChild(child.pid)) return frozen;
      t = freeze(targetPid, { skipChecks: true, timeoutMs: 1000 });
      injectSyscall(t, targetPid, SYS.wait4, [BigInt(child.pid), 0n, 0x40000000n | 1n /* __WALL|WNOHANG */, 0n]);
      frozen += t.elapsedMs();
    } catch {
      // target gone or busy: the zombie goes away with it, or we retry
    } finally {
      t?.release();
    }
    if (!isZombieChild(child.pid)) return frozen;
    sleepMs(2);
  }
  return frozen;
}

function isZombieChild(pid: number): boolean {
  try {
    return /State:\s+Z/.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/*
 * If the engine dies while a snapshot child exists, PTRACE_O_EXITKILL kills the child but nobody
 * reaps its zombie (the target does not wait with __WALL). A marker file per target in the store
 * remembers the child; the next checkpoint of the same process reaps it while the target is frozen.
 */
const PENDING_DIR = 'capture-snapshots';

function pendingPath(storeDir: string, pid: number, startTime: string): string {
  return join(storeDir, PENDING_DIR, `${pid}-${startTime}`);
}

export function recordPendingSnapshot(storeDir: string, pid: number, startTime: string, child: SnapshotChild): void {
  try {
    mkdirSync(join(storeDir, PENDING_DIR), { recursive: true });
    writeFileSync(pendingPath(storeDir, pid, startTime), String(child.pid));
  } catch {
    // best effort: only matters if the engine dies before disposing the child
  }
}

export function clearPendingSnapshot(storeDir: string, pid: number, startTime: string): void {
  rmSync(pendingPath(storeDir, pid, startTime), { force: true });
}

/** Reaps a snapshot child left by an engine that died; the target must be frozen by `t`. */
export function reapLeftoverSnapshot(t: Tracee, storeDir: string, startTime: string): boolean {
  const p = pendingPath(storeDir, t.pid, startTime);
  if (!existsSync(p)) return false;
  const child = Number(readFileSync(p, 'utf8').trim());
  let reaped = false;
  try {
    const stat = readFileSync(`/proc/${child}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (f[0] === 'Z' && Number(f[1]) === t.pid) {
      injectSyscall(t, t.pid, SYS.wait4, [BigInt(child), 0n, 0x40000000n | 1n, 0n]);
      reaped = true;
    }
  } catch {
    // already gone
  }
  rmSync(p, { force: true });
  return reaped;
}
