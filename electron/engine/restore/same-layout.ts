/**
 * Whether a later round of a prepared restore (restore/index.ts for one process, restore/tree.ts for
 * each member of a tree) can be written over the memory built from an earlier one.
 */
import type { RestorePlan } from './plan';

/** Whether two plans create exactly the same mappings with the same advice (a later round can be written over the earlier one's memory). */
export function sameLayout(a: RestorePlan, b: RestorePlan): boolean {
  if (a.steps.length !== b.steps.length || a.specials.length !== b.specials.length) return false;
  // The advice too (madvise and mlock from the VmFlags): it is applied when the memory is built, so a
  // round that changed it (MADV_DONTFORK, mlock, ... since the first round) is restored from scratch.
  const key = (x: RestorePlan['steps'][number]): string => [x.start, x.end, x.kind, x.prot, x.flags, x.path ?? '', x.offset, x.writeContents, x.anonName ?? '', x.aliasOf ?? '', JSON.stringify(x.advice ?? null)].join('|');
  if (!a.steps.every((x, i) => key(x) === key(b.steps[i]!))) return false;
  return a.specials.every((x, i) => x.to === b.specials[i]!.to && x.kind === b.specials[i]!.kind);
}
