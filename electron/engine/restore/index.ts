/**
 * Restore entry points: `preflight(store, id, opts)` (the checklist, no side effects) and
 * `restore(store, id, opts)` (bring checkpoint #id back as a new running process), plus
 * `writeCore(store, id, out)`. The restore runs each step in its own module inside a freshly spawned
 * stub; a failure at any step kills the stub (nothing half-restored is left running) and reports
 * the step. Owns the order of the steps; must never trace or signal any process but its own stub.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { CAP_CHECKPOINT_RESTORE, CAP_SYS_ADMIN, hasCap, hostFacts } from './host-facts';
import { dirname, join } from 'node:path';
import { StasisError } from '../../../shared/errors';
import type { Store } from '../store/api';
import type { ProcessState } from '../state/process-state';
import { kill, setSigmask } from '../native';
import { preflightState, type PreflightResult } from './preflight';
import { buildRestorePlan, parseMaps } from './plan';
import { Remote } from './remote';
import { setUpTrampoline } from './memory';
import { rebuildSteps, throwIfCancelled } from './rebuild';
import { preflightTree, restoreTree, type TreeRestoreMember } from './tree';
import { mainThread, type ThreadMap } from './threads';
import { writeCoreFile } from './core-file';
import type { RedirectOptions } from './fd-plan';
import { progress, type ProgressFn } from '../progress';
import { SIGSTOP } from './sysno';

export type { PreflightItem, PreflightResult } from './preflight';

export interface RestoreOptions {
  /** Where a vanished stdout / stderr (tty, pipe) goes; default: the log file. */
  stdout?: string;
  stderr?: string;
  /** Where reads from a vanished stdin come from; default /dev/null. */
  stdin?: string;
  /** Log file for any other vanished output; default <store>/logs/restore-<id>.log. */
  log?: string;
  /** Try to give the process its original PID when it is free (default true; needs privileges). */
  samePid?: boolean;
  /** A terminal to attach its terminal descriptors to, its group made the foreground one (restore --attach). */
  attach?: string;
  /** Checked before every step and between page runs: an abort kills the half-built process. */
  signal?: AbortSignal;
  /** Steps done of RESTORE_STEPS (with pages written during "memory contents"), throttled; the last report once the process runs. */
  onProgress?: ProgressFn;
}

/** How many steps restore() runs (the step() calls below; result.steps has one entry each). */
export const RESTORE_STEPS = 17;

/** clone3 with set_tid needs CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN) and a free PID. */
function canTakePid(pid: number): boolean {
  const h = hostFacts();
  return (h.euid === 0 || hasCap(h, CAP_CHECKPOINT_RESTORE) || hasCap(h, CAP_SYS_ADMIN)) && !existsSync(`/proc/${pid}`);
}

export interface RestoreStepTiming { step: string; ms: number }

export interface RestoreResult {
  checkpointId: number;
  pid: number;
  samePid: boolean;
  originalPid: number;
  /** Threads the process runs with (all of the checkpoint's). */
  threads: number;
  durationMs: number;
  bytesWritten: number;
  /** Of the 'memory contents' step, the time spent writing into the new process (the rest is reading the store). */
  writeMs: number;
  log: string;
  steps: RestoreStepTiming[];
  /** The checkpoint that records the restored process (content of #id; its next checkpoint builds on it). */
  branchCheckpointId: number | null;
  warning?: string;
  /** Tree checkpoints: every process restored (root first); pid and the fields above are the root's. */
  members?: TreeRestoreMember[];
}

function redirectFor(store: Store, id: number, opts: RestoreOptions): RedirectOptions {
  return { stdin: opts.stdin, stdout: opts.stdout, stderr: opts.stderr, log: opts.log ?? join(store.dir, 'logs', `restore-${id}.log`), ...(opts.attach ? { tty: opts.attach } : {}) };
}

function loadState(store: Store, id: number): ProcessState {
  if (!store.get(id)) throw new StasisError('NOT_FOUND', `There is no checkpoint #${id} in ${store.dir}; list them with \`stasis list\`.`);
  return store.getState(id);
}

export function preflight(store: Store, id: number, opts: RestoreOptions = {}): PreflightResult {
  if (store.get(id)?.tree) return preflightTree(store, id, opts);
  return preflightState(loadState(store, id), redirectFor(store, id, opts));
}

/** Blocks every signal but SIGTRAP (the single-step trap must stay deliverable) while the process is rebuilt. */
const ALL_BUT_TRAP = ~(1n << 4n) & 0xffffffffffffffffn;

/** For tests: called after each step with the new process's pid (throwing from it fails the restore there). */
export interface RestoreHooks { afterStep?: (step: string, pid: number) => void }

export function restore(store: Store, id: number, opts: RestoreOptions = {}, hooks: RestoreHooks = {}): RestoreResult {
  // A member of a tree checkpoint brings back the whole tree (restore/tree.ts).
  if (store.get(id)?.tree) return restoreTree(store, id, opts);
  const t0 = performance.now();
  const state = loadState(store, id);
  const redirect = redirectFor(store, id, opts);
  const pf = preflightState(state, redirect);
  if (!pf.ok) {
    const failed = pf.items.filter((i) => !i.ok);
    throw new StasisError('PREFLIGHT_FAILED', `Checkpoint #${id} cannot be restored: ${failed.map((i) => i.reason).join(' ')}`, { items: pf.items });
  }
  for (const p of [redirect.stdout, redirect.stderr, redirect.log]) if (p) mkdirSync(dirname(p), { recursive: true });

  const steps: RestoreStepTiming[] = [];
  const prog = progress(opts.onProgress);
  let remote: Remote | null = null;
  let current = 'start the stub';
  const step = <T>(name: string, fn: () => T): T => {
    current = name;
    throwIfCancelled(opts.signal, id);
    prog.report({ done: steps.length, total: RESTORE_STEPS, unit: 'steps', phase: name });
    const s = performance.now();
    const v = fn();
    steps.push({ step: name, ms: +(performance.now() - s).toFixed(2) });
    if (hooks.afterStep && remote) hooks.afterStep(name, remote.pid);
    return v;
  };
  let written: ReturnType<typeof rebuildSteps> | undefined;
  const th = mainThread(state);
  try {
    const r = step('start the stub', () => Remote.spawnStub([undefined, process.env.XDG_RUNTIME_DIR, store.dir]));
    remote = r;
    const plan = step('plan', () => buildRestorePlan(state, parseMaps(readFileSync(`/proc/${r.pid}/maps`, 'utf8'))));
    step('trampoline', () => {
      setSigmask(r.pid, ALL_BUT_TRAP);
      setUpTrampoline(r, plan);
    });
    step('fork', () => {
      // Same PID when we may; either way the restored process must not stay the engine's child.
      const same = opts.samePid !== false && canTakePid(state.pid) && r.forkAway(state.pid);
      if (!same) r.forkAway(null);
    });
    written = rebuildSteps(step, r, plan, state, { store, id, opts, redirect, report: (n, pages) => prog.report({
      done: steps.length, total: RESTORE_STEPS, unit: 'steps', phase: 'memory contents', within: { done: n, total: Math.max(pages, n), unit: 'pages' },
    }) });
    step('detach', () => {
      r.detach();
      // A process checkpointed while stopped (SIGSTOP/SIGTSTP) comes back stopped; SIGCONT resumes it.
      if (state.stopped) kill(r.pid, SIGSTOP);
    });
  } catch (e) {
    remote?.kill();
    const msg = e instanceof Error ? e.message : String(e);
    const code = e instanceof StasisError && e.code !== 'INTERNAL' ? e.code : 'INTERNAL';
    throw new StasisError(code, `Restore of checkpoint #${id} failed at step "${current}": ${msg} The half-built process was killed; nothing was left running.`, { step: current });
  }
  const pid = remote.pid;
  let branchId: number | null = null;
  let warning: string | undefined;
  const threads: ThreadMap = written?.threads ?? { tids: new Map([[th.tid, pid]]), changed: [] };
  if (threads.changed.length > 0) {
    warning = `${threads.changed.length} of ${state.threads.length - 1} other threads have new thread ids (their saved ids are taken or the process has a new PID); each thread's id word at its clear_child_tid address (glibc's pthread tid) was rewritten, but ids the program copied elsewhere keep the old values.`;
  }
  if (written?.warnings.length) warning = [warning, ...written.warnings].filter(Boolean).join(' ');
  try {
    branchId = recordBranch(store, id, state, pid, threads.tids);
  } catch (e) {
    // The process runs; only the timeline entry is missing (e.g. a read-only store).
    warning = [warning, `The restored process runs, but the store could not record it: ${(e as Error).message}`].filter(Boolean).join(' ');
  }
  prog.finish({ total: RESTORE_STEPS, unit: 'steps', phase: 'running' });
  return {
    branchCheckpointId: branchId, ...(warning ? { warning } : {}),
    checkpointId: id, pid, samePid: pid === state.pid, originalPid: state.pid, threads: state.threads.length,
    durationMs: +(performance.now() - t0).toFixed(2), bytesWritten: written?.bytesWritten ?? 0, writeMs: +(written?.writeMs ?? 0).toFixed(2), log: redirect.log, steps,
  };
}

/** /proc/PID/stat field 22, the start time that with the pid identifies a process. */
function startTimeOf(pid: number): string | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch (_e) {
    return null;
  }
}

/**
 * Records the restored process in the store as a branch: a new target (its pid and start time)
 * whose first checkpoint is #id's content exactly (no new pages, parent #id, restoredFrom #id).
 * Capture then finds it as the target's latest checkpoint, so the restored process's next
 * checkpoint is incremental on top of what the restore wrote, not a new full chain.
 */
function recordBranch(store: Store, id: number, state: ProcessState, pid: number, tids: ReadonlyMap<number, number>): number | null {
  const startTime = startTimeOf(pid);
  const parent = store.get(id);
  if (!startTime || !parent) return null;
  const origin = store.getTarget(parent.targetId);
  const target = store.upsertTarget({ pid, startTime, exe: state.exe, cmdline: state.cmdline, ...(origin?.name ? { name: origin.name } : {}) });
  const w = store.begin({
    targetId: target.id, parentId: id, mode: 'incremental', dirtyTracking: parent.dirtyTracking,
    coverage: 'delta', label: `restored from #${id}`, restoredFrom: id,
  });
  try {
    w.setState({ ...state, pid, startTime, threads: state.threads.map((t) => ({ ...t, tid: tids.get(t.tid) ?? t.tid })) });
    return w.commit({ pagesScanned: 0 }).id;
  } catch (e) {
    w.abort();
    throw e;
  }
}

/** Writes checkpoint #id as an ELF core file `gdb EXE FILE` can open. Returns the file's size. */
export function writeCore(store: Store, id: number, outPath: string): { path: string; bytes: number; exe: string } {
  const state = loadState(store, id);
  const bytes = writeCoreFile(state, { pages: store.materialize(id) }, outPath);
  return { path: outPath, bytes, exe: state.exe };
}
