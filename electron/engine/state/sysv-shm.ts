/**
 * System V shared memory segments: a mapping "/SYSV<key in hex> (deleted)" whose inode number is
 * the segment id, and /proc/sysvipc/shm, the segments that exist now. Read by the restore plan
 * and its pre-flight: a segment outlives the processes attached to it, so the restore attaches the
 * same segment again instead of a private copy of its pages.
 */
import { readFileSync } from 'node:fs';
import type { MappingState } from './process-state';

export function isSysvShm(m: Pick<MappingState, 'path' | 'perms'>): boolean {
  return m.perms[3] === 's' && /^\/SYSV[0-9a-f]{8}$/i.test(m.path);
}

/** A segment that outlives the process, attached again by id at restore (else: a private copy). */
export function attachesLive(m: Pick<MappingState, 'path' | 'perms' | 'sysv'>): boolean {
  return isSysvShm(m) && m.sysv !== undefined && !m.sysv.removed;
}

const SHM_DEST = 0o1000;

/** Marks SysV mappings with whether their segment was marked for removal (perms column of /proc/sysvipc/shm). */
export function markSysvMappings(mappings: MappingState[]): void {
  const sysv = mappings.filter(isSysvShm);
  if (!sysv.length) return;
  let text: string;
  try { text = readFileSync('/proc/sysvipc/shm', 'utf8'); } catch { return; }
  const perms = new Map<number, number>();
  for (const f of text.split('\n').slice(1).map((l) => l.trim().split(/\s+/))) if (f.length >= 4) perms.set(Number(f[1]), parseInt(f[2]!, 8));
  for (const m of sysv) {
    const p = perms.get(m.inode);
    m.sysv = { removed: p === undefined || (p & SHM_DEST) !== 0 };
  }
}

export function sysvKey(m: Pick<MappingState, 'path'>): number {
  return parseInt(m.path.slice(5), 16) | 0;
}

export interface ShmSegment { key: number; shmid: number; size: bigint }

export function currentSegments(): ShmSegment[] {
  let text: string;
  try { text = readFileSync('/proc/sysvipc/shm', 'utf8'); } catch { return []; }
  return text.split('\n').slice(1).map((l) => l.trim().split(/\s+/)).filter((f) => f.length >= 4 && /^-?\d+$/.test(f[0]!))
    .map((f) => ({ key: Number(f[0]), shmid: Number(f[1]), size: BigInt(f[3]!) }));
}

/** Why the segment a mapping attached cannot be attached again now, or null when it can. */
export function segmentProblem(m: MappingState, segments: readonly ShmSegment[]): string | null {
  const seg = segments.find((s) => s.shmid === m.inode);
  const key = sysvKey(m);
  if (!seg || seg.key !== key) return `the System V shared memory segment ${m.inode} (key 0x${(key >>> 0).toString(16).padStart(8, '0')}) attached at ${m.start.toString(16)} no longer exists${seg ? ' (its id now names another segment)' : ''}`;
  if (seg.size < m.offset + (m.end - m.start) - 4095n) return `the System V shared memory segment ${m.inode} is now ${seg.size} bytes, smaller than the part attached at ${m.start.toString(16)}`;
  return null;
}
