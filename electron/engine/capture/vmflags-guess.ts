/**
 * A held capture's VmFlags guessed from its parent checkpoint, so the last round of a migration
 * can commit and travel while /proc/PID/smaps is still being walked (smaps-ahead.ts: ~20 ms for
 * 1 GiB of page tables, the largest step of the cut-over). The guess is only ever a draft: the
 * caller must keep the checkpoint invisible and the process from running anywhere until
 * `differences` against the exact read (taken while the process is still frozen) comes back
 * empty. VmFlags change only through the program's own calls (madvise, mlock, mprotect ...), so
 * between two rounds of a running program the guess nearly always holds.
 */
import type { MapEntry } from '../proc/maps';
import type { MappingState } from '../state/process-state';
import { vmFlagsByStart } from './state';

const key = (m: Pick<MappingState, 'start' | 'end' | 'perms' | 'offset' | 'inode' | 'path'>): string => `${m.start}-${m.end} ${m.perms} ${m.offset} ${m.inode} ${m.path}`;

/**
 * Sets each mapping's VmFlags to those of the parent's mapping with the same range, permissions
 * and backing; false (nothing set) when any mapping has no such counterpart (the layout changed:
 * the exact flags are waited for).
 */
export function guessVmFlags(mappings: MappingState[], parent: readonly MappingState[]): boolean {
  const before = new Map(parent.map((m) => [key(m), m.vmFlags]));
  const flags = mappings.map((m) => before.get(key(m)));
  if (flags.some((f) => f === undefined)) return false;
  mappings.forEach((m, i) => { m.vmFlags = [...flags[i]!]; });
  return true;
}

/** The mappings whose exact VmFlags (smaps, without our own "uw", as applyVmFlags takes them) differ from what they hold; [] when the guess was exact. */
export function vmFlagsDifferences(mappings: readonly MappingState[], smaps: readonly MapEntry[]): string[] {
  const exact = vmFlagsByStart(smaps);
  const out: string[] = [];
  for (const m of mappings) {
    const real = exact.get(m.start) ?? [];
    if (real.join(' ') !== m.vmFlags.join(' ')) out.push(`${m.start.toString(16)}-${m.end.toString(16)}${m.path ? ` ${m.path}` : ''}: ${m.vmFlags.join(' ')} -> ${real.join(' ')}`);
  }
  return out;
}
