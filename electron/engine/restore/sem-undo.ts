/**
 * Restore step "semaphore undo": the SEM_UNDO records a --kill checkpoint measured
 * (capture/sem-undo.ts) are taken again by the restored process: semop(-adj, SEM_UNDO) puts each
 * semaphore back to what the process held (the original's death had given it back) and records
 * the same undo for its own exit. After the threads: they share the undo list (CLONE_SYSVSEM).
 */
import { StasisError } from '../../../shared/errors';
import type { ProcessState } from '../state/process-state';
import { SYS_SEMOP, SEM_UNDO, IPC_NOWAIT } from '../state/sysv-sem';
import type { Remote } from './remote';

export function restoreSemUndo(r: Remote, state: Pick<ProcessState, 'semUndo'>): void {
  for (const u of state.semUndo ?? []) {
    r.resetScratch();
    const op = Buffer.alloc(6);
    op.writeUInt16LE(u.num, 0);
    op.writeInt16LE(-u.adj, 2);
    op.writeInt16LE(SEM_UNDO | IPC_NOWAIT, 4);
    const got = r.raw(SYS_SEMOP, [BigInt(u.semid), r.put(op), 1n]);
    if (got < 0n) throw new StasisError('CONFLICT', `Taking semaphore ${u.num} of System V set ${u.semid} again (SEM_UNDO ${u.adj}) failed with errno ${-got}: another process changed it since the pre-flight.`);
  }
}
