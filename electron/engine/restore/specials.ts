/**
 * Restore step "special mappings": moves the stub's [vvar], [vvar_vclock] and [vdso] to where the
 * checkpointed process had them (same kernel, so same images and sizes), first all to free temporary
 * slots, then to their final places, so a move never lands on a mapping still waiting to move.
 * Must run before any checkpoint mapping is created (the destinations must be free).
 */
import { StasisError } from '../../../shared/errors';
import type { Remote } from './remote';
import type { RestorePlan } from './plan';
import { MREMAP_FIXED, MREMAP_MAYMOVE, NR } from './sysno';

export function moveSpecials(r: Remote, plan: RestorePlan): void {
  const flags = BigInt(MREMAP_MAYMOVE | MREMAP_FIXED);
  const move = (from: bigint, size: bigint, to: bigint, what: string): void => {
    if (from === to) return;
    const got = r.raw(NR.mremap, [from, size, size, flags, to]);
    if (got < 0n && got > -4096n) {
      throw new StasisError('UNSUPPORTED', `The kernel refused to move ${what} (errno ${-got}); if it seals system mappings, restore is not possible on it.`);
    }
    if (got !== to) throw new StasisError('INTERNAL', `${what} moved to 0x${got.toString(16)} instead of 0x${to.toString(16)}.`);
  };
  for (const s of plan.specials) move(s.from.start, s.from.end - s.from.start, s.temp, `[${s.kind}]`);
  for (const s of plan.specials) move(s.temp, s.from.end - s.from.start, s.to, `[${s.kind}]`);
}
