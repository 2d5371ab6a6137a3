/**
 * The per-process restore steps, from "close inherited fds" to "registers", run on a process the
 * fork step left as a copy of the stub with the trampoline. One function for a single restore
 * (index.ts) and for every member of a tree restore (tree.ts), so both run the same steps in the
 * same order. Touches only the Remote it is given.
 */
import { StasisError } from '../../../shared/errors';
import type { PageRun, Store } from '../store/api';
import type { ProcessState } from '../state/process-state';
import type { RestorePlan } from './plan';
import type { Remote } from './remote';
import { dropPages, mapAll, sealProtections, unmapStub, writePages } from './memory';
import { moveSpecials } from './specials';
import { applyAdvice, restoreMlockFuture } from './vma-advice';
import { setMm } from './mm';
import { setFsState } from './fs-state';
import { raisePending, setSignalHandlers } from './signals';
import { closeInheritedFds, closeParked, restoreFds, takeForeground, type ParkedFds } from './fds';
import { restoreTimers } from './timers';
import { restoreSemUndo } from './sem-undo';
import { restoreLocks } from './file-locks';
import { restoreControls } from './sched';
import { restoreThreadState } from './thread-state';
import { dropTrampoline, setRegisters } from './registers';
import { createThreads, mainThread, type ThreadMap } from './threads';
import type { RedirectOptions } from './fd-plan';
import { claimOwnPty } from './ptys';

/** The options of a restore this module reads (RestoreOptions in index.ts). */
interface StepOptions { signal?: AbortSignal }

/**
 * Runs fn; any failure kills what the restore made so far (kill) and becomes one error naming the
 * step it failed at (step(), asked afterwards): what(message of the failure) says which restore and
 * what was killed.
 */
export function killOnFailure<T>(fn: () => T, kill: () => void, step: () => string, what: (msg: string) => string): T {
  try {
    return fn();
  } catch (e) {
    kill();
    const msg = e instanceof Error ? e.message : String(e);
    const code = e instanceof StasisError && e.code !== 'INTERNAL' ? e.code : 'INTERNAL';
    throw new StasisError(code, what(msg), { step: step() });
  }
}

export function throwIfCancelled(signal: AbortSignal | undefined, id: number): void {
  if (signal?.aborted) throw new StasisError('CANCELLED', `The restore of checkpoint #${id} was cancelled.`);
}

/** Page runs from the store, with a cancellation check between runs (the longest step). */
export function* cancellable<T extends { pages: number }>(runs: Iterable<T>, signal: AbortSignal | undefined, id: number): Generator<T> {
  for (const run of runs) {
    throwIfCancelled(signal, id);
    yield run;
  }
}

/**
 * A later round's changes written over the memory an earlier round filled (a prepared restore's
 * absorb, one process or a tree member): its pages, and the pages it no longer has dropped.
 */
export function writeChanges(r: Remote, plan: RestorePlan, ch: { runs: Iterable<PageRun>; absent: { vaddr: bigint; pages: number }[] }, signal: AbortSignal | undefined, id: number): { bytes: number; writeMs: number } {
  const w = writePages(r, plan, cancellable(ch.runs, signal, id), { fresh: false });
  dropPages(r, plan, ch.absent);
  return w;
}

/** Runs one named restore step (timed, reported, a cancellation point). */
export type StepFn = <T>(name: string, fn: () => T) => T;

/** What the per-process steps need besides the process: where its pages and redirections come from. */
export interface RebuildContext {
  store: Store;
  /** The checkpoint of this process. */
  id: number;
  opts: StepOptions;
  redirect: RedirectOptions;
  /** Pages written so far during "memory contents", of the checkpoint's pages. */
  report?: (pages: number, total: number) => void;
  /**
   * Tree restores: descriptors the root opened before forking (pipes between members) parked at
   * `from` and above; kept through "close inherited fds", dup'ed by "fds", then closed. Session and
   * process group are set at fork time, so "fs state" leaves them.
   */
  tree?: { parked: ParkedFds; from: number };
}

/**
 * The steps from "close inherited fds" to "registers" for one process that the fork step left as a
 * copy of the stub with the trampoline: its memory, mm, fs state, signals, fds, timers, thread state
 * and registers. Shared by a single restore and every member of a tree restore.
 */
export function rebuildSteps(step: StepFn, r: Remote, plan: RestorePlan, state: ProcessState, ctx: RebuildContext): { bytesWritten: number; writeMs: number; threads: ThreadMap; warnings: string[] } {
  const mem = rebuildMemory(step, r, plan, ctx);
  return { ...mem, ...rebuildRest(step, r, plan, state, ctx) };
}

/**
 * The memory half: "close inherited fds", "memory layout", "memory contents" (with the mappings'
 * madvise flags and mlocks). With seal false the
 * shared read-only mappings stay writable, so later rounds can still be written in (a prepared
 * restore); sealProtections then comes before the rest.
 */
export function rebuildMemory(step: StepFn, r: Remote, plan: RestorePlan, ctx: RebuildContext, seal = true): { bytesWritten: number; writeMs: number } {
  const { store, id, opts } = ctx;
  let bytesWritten = 0;
  let writeMs = 0;
  step('close inherited fds', () => closeInheritedFds(r, ctx.tree?.from));
  step('memory layout', () => {
    unmapStub(r, plan);
    moveSpecials(r, plan);
    mapAll(r, plan, ctx.tree?.parked);
  });
  step('memory contents', () => {
    // The checkpoint's size says how many pages the store will hand out (zero runs included).
    const pages = Math.ceil((store.get(id)?.stats.logicalBytes ?? 0) / 4096);
    const w = writePages(r, plan, cancellable(store.materializeLocated(id), opts.signal, id), { onWritten: (n) => ctx.report?.(n, pages) });
    bytesWritten = w.bytes;
    writeMs = w.writeMs;
    if (seal) sealProtections(r, plan);
    // Later rounds of a prepared restore write through /proc/PID/mem, which neither flag hinders.
    applyAdvice(r, plan);
  });
  return { bytesWritten, writeMs };
}

/** The rest, from "mm" to "registers", on memory that is complete and sealed. */
export function rebuildRest(step: StepFn, r: Remote, plan: RestorePlan, state: ProcessState, ctx: RebuildContext): { threads: ThreadMap; warnings: string[] } {
  const { redirect } = ctx;
  const th = mainThread(state);
  let threads: ThreadMap = { tids: new Map([[th.tid, r.pid]]), changed: [] };
  let warnings: string[] = [];
  step('mm', () => setMm(r, state));
  step('fs state', () => setFsState(r, state, { session: !ctx.tree }));
  step('signals', () => setSignalHandlers(r, state));
  step('fds', () => {
    restoreFds(r, state, redirect, ctx.tree?.parked);
    // A tree's session leaders took their terminals at fork time (tree.ts), before their children.
    if (!ctx.tree) claimOwnPty(r, state);
    restoreLocks(r, state);
    takeForeground(r, state, redirect);
    if (ctx.tree) closeParked(r, ctx.tree.from);
  });
  // The other threads share the main thread's memory, files and handlers, so they come after them.
  step('threads', () => { threads = createThreads(r, state, r.pid === state.pid); });
  step('timers', () => restoreTimers(r, state, threads.tids));
  if (state.semUndo?.length) step('semaphore undo', () => restoreSemUndo(r, state));
  step('thread state', () => {
    restoreThreadState(r, th);
    restoreControls(r, state);
    restoreMlockFuture(r, state);
  });
  step('pending signals', () => { warnings = raisePending(r, state, threads.tids); });
  step('registers', () => {
    dropTrampoline(r, plan.trampoline);
    for (const t of state.threads) if (t !== th) setRegisters(r, t, threads.tids.get(t.tid)!);
    setRegisters(r, th);
  });
  return { threads, warnings };
}

