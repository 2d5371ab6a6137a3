/**
 * SEM_UNDO records of a process checkpointed to be killed. Its death applies them (semadj added to
 * each semaphore): the restored process would hold a semaphore the kernel has already given back,
 * and nobody would give it back at its own exit. The kernel shows the records nowhere, so they are
 * measured: while the process is frozen, every thread calls unshare(CLONE_SYSVSEM) (the last one
 * applies the list, as exit would) and the values before and after, changed by this pid, are the
 * records (state.semUndo). Only for `--kill`: in a process left running this would release its
 * semaphores. If the checkpoint then fails, `putBackSemUndo` takes them again before release.
 */
import type { ProcessState } from '../state/process-state';
import { readSemSets, semSetIds, undoApplied, SYS_SEMOP, SEM_UNDO, IPC_NOWAIT } from '../state/sysv-sem';
import { runProbes } from './threads';
import { injectSyscalls, withScratch, type Tracee } from '../tracer';

const SYS_UNSHARE = 272, CLONE_SYSVSEM = 0x40000n;

export function captureSemUndo(t: Tracee, state: ProcessState): void {
  if (semSetIds().length === 0) return;
  const before = readSemSets();
  for (const tid of t.tids) {
    runProbes(t, tid, [{ scratch: 0, calls: () => [{ nr: SYS_UNSHARE, args: [CLONE_SYSVSEM] }], read: () => {} }]);
  }
  const undo = undoApplied(state.pid, before, readSemSets());
  if (undo.length) state.semUndo = undo;
}

/** The records again in the still-frozen process (a failed checkpoint): semop(-adj, SEM_UNDO). */
export function putBackSemUndo(t: Tracee, state: ProcessState): void {
  for (const u of state.semUndo ?? []) {
    withScratch(t, t.pid, 16, (addr) => {
      const op = Buffer.alloc(6);
      op.writeUInt16LE(u.num, 0);
      op.writeInt16LE(-u.adj, 2);
      op.writeInt16LE(SEM_UNDO | IPC_NOWAIT, 4);
      t.write(addr, op);
      injectSyscalls(t, t.pid, [{ nr: SYS_SEMOP, args: [BigInt(u.semid), addr, 1n] }]);
    });
  }
}
