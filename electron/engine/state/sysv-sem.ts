/**
 * System V semaphores as the engine sees them from outside: every set in /proc/sysvipc/sem with
 * each semaphore's value and the pid of the last process that changed it (semctl GETALL, GETPID).
 * The kernel shows a process's undo records (SEM_UNDO) nowhere; capture/sem-undo.ts finds them
 * by what applying them does to these values.
 */
import { readFileSync } from 'node:fs';
import { syscall, malloc, free, copyFromAddr } from '../native/sys';

export const SYS_SEMOP = 65, SYS_SEMCTL = 66;
const GETPID = 11, GETALL = 13;
export const SEM_UNDO = 0x1000, IPC_NOWAIT = 0o4000;

export interface SemSet { semid: number; key: number; values: number[]; pids: number[] }

/** The undo a process holds on one semaphore: its exit adds `adj` to the value. */
export interface SemUndo { semid: number; key: number; num: number; adj: number }

/** semid -> key and size, from /proc/sysvipc/sem. */
export function semSetIds(): { semid: number; key: number; nsems: number }[] {
  let text: string;
  try { text = readFileSync('/proc/sysvipc/sem', 'utf8'); } catch { return []; }
  return text.split('\n').slice(1).map((l) => l.trim().split(/\s+/)).filter((f) => f.length >= 4)
    .map((f) => ({ key: Number(f[0]) | 0, semid: Number(f[1]), nsems: Number(f[3]) }));
}

/** Every set's values and last pids (sets removed meanwhile are left out). */
export function readSemSets(): Map<number, SemSet> {
  const out = new Map<number, SemSet>();
  for (const s of semSetIds()) {
    const buf = malloc(Math.max(2, s.nsems * 2));
    try {
      syscall(SYS_SEMCTL, [BigInt(s.semid), 0n, BigInt(GETALL), buf], 'semctl(GETALL)');
      const vals = Buffer.alloc(s.nsems * 2);
      copyFromAddr(vals, buf);
      const values = Array.from({ length: s.nsems }, (_, i) => vals.readUInt16LE(i * 2));
      const pids = values.map((_, i) => Number(syscall(SYS_SEMCTL, [BigInt(s.semid), BigInt(i), BigInt(GETPID), 0n], 'semctl(GETPID)')));
      out.set(s.semid, { semid: s.semid, key: s.key, values, pids });
    } catch {
      // removed meanwhile, or not ours to read
    } finally {
      free(buf);
    }
  }
  return out;
}

/** What `pid`'s undo records did between `before` and `after` (its exit or unshare applied them). */
export function undoApplied(pid: number, before: Map<number, SemSet>, after: Map<number, SemSet>): SemUndo[] {
  const out: SemUndo[] = [];
  for (const [semid, a] of after) {
    const b = before.get(semid);
    if (!b || b.key !== a.key) continue;
    a.values.forEach((v, num) => {
      if (a.pids[num] === pid && v !== b.values[num]) out.push({ semid, key: a.key, num, adj: v - b.values[num]! });
    });
  }
  return out;
}

/** Why the undo records cannot be taken again now (the set gone, or the semaphore taken), or null. */
export function semUndoProblem(undo: readonly SemUndo[], now: Map<number, SemSet> = readSemSets()): string | null {
  for (const u of undo) {
    const s = now.get(u.semid);
    if (!s || s.key !== u.key) return `semaphore set ${u.semid} (key ${u.key}), on which the process held SEM_UNDO records, no longer exists`;
    const v = s.values[u.num] ?? 0;
    if (v - u.adj < 0) return `semaphore ${u.num} of set ${u.semid} is ${v} now: the process held ${u.adj} of it, which someone else has taken since`;
  }
  return null;
}
