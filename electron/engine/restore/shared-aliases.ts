/**
 * Shared memory seen at more than one address: MAP_SHARED anonymous (or SysV, memfd) mappings of the
 * same shmem object whose object ranges overlap (mremap(old_size=0), shmat twice, one memfd mapped
 * twice). Restore creates one new object per primary mapping; a mapping whose object range lies
 * inside a primary's is recreated from it with mremap(old_size=0), so both addresses share pages
 * again (aliasFor). One that only partly overlaps cannot be recreated that way and is refused
 * (sharedAliases, pre-flight). Pure: reads the checkpoint's mapping list only.
 */
import type { MappingState } from '../state/process-state';
import { attachesLive } from '../state/sysv-shm';

export interface SharedAlias {
  a: MappingState;
  b: MappingState;
}

interface Grouped { primaries: MappingState[]; aliases: Map<bigint, bigint>; partial: SharedAlias[] }

const len = (m: MappingState): bigint => m.end - m.start;

function group(mappings: readonly MappingState[]): Grouped {
  const byObject = new Map<string, MappingState[]>();
  for (const m of mappings) {
    // inode 0: no object identity to compare (never seen for shmem, which always has an inode).
    // SysV segments are attached again as themselves (restore/memory.ts), every address of them.
    if (m.kind !== 'shared-anon' || m.inode === 0 || attachesLive(m)) continue;
    const key = `${m.dev}:${m.inode}`;
    const list = byObject.get(key);
    if (list) list.push(m);
    else byObject.set(key, [m]);
  }
  const out: Grouped = { primaries: [], aliases: new Map(), partial: [] };
  for (const list of byObject.values()) {
    // Object ranges [offset, offset + length), longest first at equal offsets: mprotect-split
    // pieces of one mapping are adjacent and never overlap; an alias does.
    const sorted = [...list].sort((x, y) => (x.offset !== y.offset ? (x.offset < y.offset ? -1 : 1) : len(x) > len(y) ? -1 : len(x) < len(y) ? 1 : 0));
    const prim: MappingState[] = [];
    for (const cur of sorted) {
      const inside = prim.find((p) => cur.offset >= p.offset && cur.offset + len(cur) <= p.offset + len(p));
      if (inside) { out.aliases.set(cur.start, inside.start + (cur.offset - inside.offset)); continue; }
      const touching = prim.find((p) => cur.offset < p.offset + len(p) && p.offset < cur.offset + len(cur));
      if (touching) { out.partial.push({ a: touching, b: cur }); continue; }
      prim.push(cur);
    }
    out.primaries.push(...prim);
  }
  return out;
}

/**
 * Mappings that show part of another's object range only partly (first pair per mapping): restore
 * would have to cut one object across mappings it cannot recreate; refused in pre-flight.
 */
export function sharedAliases(mappings: readonly MappingState[]): SharedAlias[] {
  return group(mappings).partial;
}

/**
 * For each alias mapping (by its start address): the address inside its primary, as restored at
 * the same addresses, to mremap(old_size = 0) from.
 */
export function aliasFor(mappings: readonly MappingState[]): Map<bigint, bigint> {
  return group(mappings).aliases;
}
