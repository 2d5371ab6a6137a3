/**
 * Shared memory between the processes of a tree (a MAP_SHARED|MAP_ANONYMOUS mapping made before a
 * fork, a /dev/zero or memfd mapping inherited): restored one object per shmem object, so a write
 * by one process shows in the others as before. The root creates a memfd per object before any
 * fork and parks it (key `shm:DEV:INODE`); each member maps its part of it (restore/memory.ts
 * mapAll) and writes its pages into it, the same bytes each, taken at the same instant.
 * Without it each process got its own copy: they silently stopped seeing each other's writes.
 */
import type { MappingState, ProcessState } from '../state/process-state';
import { attachesLive } from '../state/sysv-shm';
import type { ParkedFds } from './fds';
import type { Remote } from './remote';
import { NR } from './sysno';

const F_DUPFD = 0n;

/** A shmem object's identity, as the maps of every process that maps it show it. */
export function shmObjectKey(m: Pick<MappingState, 'kind' | 'dev' | 'inode' | 'path' | 'perms' | 'sysv'>): string | null {
  if (m.kind !== 'shared-anon' || m.inode === 0 || attachesLive(m)) return null;
  return `shm:${m.dev}:${m.inode}`;
}

/** Objects mapped by two or more members, with the size that covers every member's part. */
export function treeSharedMemory(states: readonly ProcessState[]): { key: string; size: bigint }[] {
  const seen = new Map<string, { members: Set<number>; size: bigint }>();
  for (const s of states) {
    for (const m of s.mappings) {
      const key = shmObjectKey(m);
      if (!key) continue;
      const e = seen.get(key) ?? { members: new Set<number>(), size: 0n };
      e.members.add(s.pid);
      const end = m.offset + (m.end - m.start);
      if (end > e.size) e.size = end;
      seen.set(key, e);
    }
  }
  return [...seen].filter(([, e]) => e.members.size > 1).map(([key, e]) => ({ key, size: e.size }));
}

/** In the root before any fork: one memfd per object, parked from `from` on. Returns the next free number. */
export function parkSharedMemory(r: Remote, objects: readonly { key: string; size: bigint }[], from: number, parked: ParkedFds): number {
  let next = from;
  for (const o of objects) {
    r.resetScratch();
    const fd = r.call(NR.memfd_create, [r.putString('stasis-shared'), 0n], `memfd_create for shared memory ${o.key}`);
    r.call(NR.ftruncate, [fd, o.size], `ftruncate of shared memory ${o.key} to ${o.size} bytes`);
    const at = r.call(NR.fcntl, [fd, F_DUPFD, BigInt(next)], `parking shared memory ${o.key}`);
    r.raw(NR.close, [fd]);
    parked.set(o.key, Number(at));
    next = Number(at) + 1;
  }
  return next;
}
