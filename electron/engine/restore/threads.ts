/**
 * Restore step "threads": every thread but the main one is created again inside the rebuilt process
 * (clone3 from the main thread, the flags pthread_create uses), in the saved order, with its saved
 * tid (clone3 set_tid) when the main thread got its saved pid back; then each gets its own kernel
 * state (thread-state.ts). Registers and masks go in at the end, with the main thread's.
 *
 * A thread that cannot have its saved tid gets a new one. Runtimes keep a thread's tid in user
 * memory (glibc's `struct pthread.tid`, used by pthread_kill and friends), and that word is the one
 * the kernel clears at thread exit, i.e. the thread's clear_child_tid address: where it still holds
 * the saved tid, it is rewritten with the new one, so signals between threads keep their target.
 */
import { StasisError } from '../../../shared/errors';
import type { ProcessState, ThreadState } from '../state/process-state';
import type { Remote } from './remote';
import { restoreThreadState } from './thread-state';

/** The thread whose tid is the process id (the leader); threads[0] in checkpoints of a live leader. */
export function mainThread(state: ProcessState): ThreadState {
  const th = state.threads.find((t) => t.tid === state.pid) ?? state.threads[0];
  if (!th) throw new StasisError('CORRUPT', 'The checkpoint holds no thread.');
  return th;
}

export interface ThreadMap {
  /** saved tid -> tid in the new process, for every thread (the main one included). */
  tids: Map<number, number>;
  /** Saved tids of the other threads that could not be kept (the main thread's is the result's samePid). */
  changed: number[];
}

export function createThreads(r: Remote, state: ProcessState, keepTids: boolean): ThreadMap {
  const main = mainThread(state);
  const tids = new Map<number, number>([[main.tid, r.pid]]);
  const changed: number[] = [];
  for (const th of state.threads) {
    if (th === main) continue;
    const tid = (keepTids ? r.cloneThread(th.tid) : null) ?? r.cloneThread(null);
    if (tid === null) throw new StasisError('INTERNAL', `clone3 of thread ${th.tid} was refused by the kernel.`);
    tids.set(th.tid, tid);
    if (tid !== th.tid) changed.push(th.tid);
    restoreThreadState(r, th, tid);
  }
  for (const th of state.threads) fixTidWord(r, th, tids.get(th.tid)!);
  return { tids, changed };
}

function fixTidWord(r: Remote, th: ThreadState, tid: number): void {
  if (tid === th.tid || !th.clearChildTid) return;
  const word = Buffer.alloc(4);
  if (r.read(th.clearChildTid, word) !== 4 || word.readInt32LE(0) !== th.tid) return;
  word.writeInt32LE(tid, 0);
  r.write(th.clearChildTid, word);
}
