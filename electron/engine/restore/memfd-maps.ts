/**
 * A memfd both held as a descriptor and mapped shared: the memory step makes its mappings as plain
 * shared memory (filled with the checkpoint's pages), and the fds step makes the memfd again from
 * its saved bytes (ghost-files.ts). Two objects where the program had one: a write through the
 * mapping would no longer be read through the descriptor. Once the descriptor is in place, each
 * such mapping is made again from it at the same address, offset and protection (the bytes are the
 * same: both were read at the same frozen instant), and its madvise/mlock flags given back.
 * A memfd only mapped (its descriptor closed) stays plain shared memory, as before.
 */
import type { FdState, MappingState } from '../state/process-state';
import type { FdAction } from './fd-plan';
import type { Remote } from './remote';
import { NR } from './sysno';
import { adviceFor, adviseRange } from './vma-advice';

const O_RDONLY = 0n, O_RDWR = 2n, O_CLOEXEC = 0o2000000n;
const MAP_SHARED = 1n, MAP_FIXED = 0x10n;

function prot(perms: string): bigint {
  return (perms[0] === 'r' ? 1n : 0n) | (perms[1] === 'w' ? 2n : 0n) | (perms[2] === 'x' ? 4n : 0n);
}

/** The descriptor that holds the memfd a mapping maps, when that memfd comes back as a memfd. */
export function memfdHolder(m: MappingState, fds: readonly FdState[], plans: ReadonlyMap<number, FdAction>): FdState | undefined {
  if (m.kind !== 'shared-anon' || !m.path.startsWith('/memfd:')) return undefined;
  const recreated = (f: FdState): boolean => { const p = plans.get(f.fd); return p?.action === 'ghost' && p.memfd !== undefined; };
  return fds.find((f) => f.kind === 'memfd' && f.inode === m.inode && f.target.replace(/ \(deleted\)$/, '') === m.path && recreated(f));
}

export function remapMemfds(r: Remote, mappings: readonly MappingState[], fds: readonly FdState[], plans: ReadonlyMap<number, FdAction>): void {
  for (const m of mappings) {
    const f = memfdHolder(m, fds, plans);
    if (!f) continue;
    const label = `${m.path} at ${m.start.toString(16)}`;
    r.resetScratch();
    // Opened read-write only when the mapping could ever be written (VM_MAYWRITE): its flags then match.
    const fd = r.call(NR.open, [r.putString(`/proc/self/fd/${f.fd}`), (m.vmFlags.includes('mw') ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0n], `opening the memfd of fd ${f.fd} for ${label}`);
    try {
      r.call(NR.mmap, [m.start, m.end - m.start, prot(m.perms), MAP_SHARED | MAP_FIXED, fd, m.offset], `mapping ${label} from its memfd`);
    } finally {
      r.raw(NR.close, [fd]);
    }
    adviseRange(r, m.start, m.end, adviceFor(m), label);
  }
}
