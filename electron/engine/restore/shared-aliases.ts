/**
 * Shared memory seen at more than one address: two MAP_SHARED anonymous (or SysV, memfd) mappings of
 * the same shmem object whose object ranges overlap (mremap(old_size=0), shmat twice, one memfd
 * mapped twice). Restore creates one new object per mapping, so such a process would come back
 * with two independent copies: equal bytes at first, different as soon as it writes through one.
 * Pure: reads the checkpoint's mapping list only; never decides anything else about a restore.
 */
import type { MappingState } from '../state/process-state';

export interface SharedAlias {
  a: MappingState;
  b: MappingState;
}

/** Pairs of shared-anon mappings that show the same pages of one object (first pair per object). */
export function sharedAliases(mappings: readonly MappingState[]): SharedAlias[] {
  const byObject = new Map<string, MappingState[]>();
  for (const m of mappings) {
    // inode 0: no object identity to compare (never seen for shmem, which always has an inode).
    if (m.kind !== 'shared-anon' || m.inode === 0) continue;
    const key = `${m.dev}:${m.inode}`;
    const list = byObject.get(key);
    if (list) list.push(m);
    else byObject.set(key, [m]);
  }
  const out: SharedAlias[] = [];
  for (const list of byObject.values()) {
    if (list.length < 2) continue;
    // Object ranges [offset, offset + length): mprotect-split pieces of one mapping are adjacent and
    // never overlap; an alias does.
    const sorted = [...list].sort((x, y) => (x.offset < y.offset ? -1 : x.offset > y.offset ? 1 : 0));
    let reach = sorted[0]!; // the mapping reaching furthest into the object so far
    for (const cur of sorted.slice(1)) {
      if (cur.offset < reach.offset + (reach.end - reach.start)) { out.push({ a: reach, b: cur }); break; }
      if (cur.offset + (cur.end - cur.start) > reach.offset + (reach.end - reach.start)) reach = cur;
    }
  }
  return out;
}
