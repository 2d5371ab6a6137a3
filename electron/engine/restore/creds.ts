/**
 * Credentials at restore: whose rights the restored process would run with. The stub is started by
 * the engine, so it runs as the engine's user (root, usually); Stasis does not yet switch to the
 * checkpointed uid/gid, so restore must refuse any checkpoint taken under other ids rather than hand
 * a uid-1000 program root's rights. Pure: it compares the saved ids with the engine's; it must never
 * change credentials itself.
 */
import type { ProcessState } from '../state/process-state';
import type { HostFacts } from './host-facts';

export interface CredsCheck {
  ok: boolean;
  reason: string;
  fix: string;
}

export function checkCredentials(state: ProcessState, host: HostFacts): CredsCheck {
  const full = (u: number[], g: number[]): string => `uids ${u.join('/')}, gids ${g.join('/')} (real/effective/saved/fs)`;
  const want = state.ids ? full(state.ids.uid, state.ids.gid) : `uid ${state.uid}, gid ${state.gid}`;
  const have = state.ids ? full(host.ids.uid, host.ids.gid) : `uid ${host.euid}, gid ${host.egid}`;
  // -1: /proc status had no Uid/Gid line at capture; the ids are unknown, so nothing proves a match.
  const known = state.uid >= 0 && state.gid >= 0;
  // Older checkpoints have only the effective ids; newer ones all four, so a process whose real or
  // saved uid differs (a setuid program) cannot come back with the engine's there either.
  const same = (a: number[] | undefined, b: number[]): boolean => a === undefined || (a.length === b.length && a.every((x, i) => x === b[i]));
  const allSame = same(state.ids?.uid, host.ids.uid) && same(state.ids?.gid, host.ids.gid);
  const ok = known && state.uid === host.euid && state.gid === host.egid && allSame;
  return {
    ok,
    reason: ok ? `The process ran as ${want}, as Stasis does now.`
      : !known ? 'The checkpoint does not record which user the process ran as, so restore cannot prove it would come back with the same rights.'
        : `The process ran as ${want}; restored now it would run as ${have} (the user Stasis runs as), because Stasis does not yet switch a restored process to its saved user and groups. A process must not come back with another user's rights.`,
    fix: known ? `Run the restore as uid ${state.uid} and gid ${state.gid} (with cap_sys_resource,cap_checkpoint_restore on Stasis if that user is not root).`
      : 'Take a new checkpoint of the process with this version of Stasis.',
  };
}
