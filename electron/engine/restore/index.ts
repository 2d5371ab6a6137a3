/**
 * Restore entry points: `preflight(store, id, opts)` (the checklist, no side effects) and
 * `restore(store, id, opts)` (bring checkpoint #id back as a new running process), plus
 * `writeCore(store, id, out)`. The restore runs each step in its own module inside a freshly spawned
 * stub; a failure at any step kills the stub (nothing half-restored is left running) and reports
 * the step. Owns the order of the steps; must never trace or signal any process but its own stub.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { canTakePid } from './pid-free';
import { dirname, join } from 'node:path';
import { StasisError } from '../../../shared/errors';
import type { PageRun, Store } from '../store/api';
import type { ProcessState } from '../state/process-state';
import { setSigmask } from '../native';
import { preflightState, type PreflightResult } from './preflight';
import { buildRestorePlan, parseMaps, type LayoutEntry, type RestorePlan } from './plan';
import { Remote } from './remote';
import { sealProtections, setUpTrampoline } from './memory';
import { killOnFailure, rebuildMemory, rebuildRest, throwIfCancelled, writeChanges, type RebuildContext, type StepFn } from './rebuild';
import { prepareTreeRestore, preflightTree, restoreTree, type PreparedTreeRestore, type TreeRestoreMember } from './tree';
import type { ThreadMap } from './threads';
import { writeCoreFile } from './core-file';
import { sameLayout } from './same-layout';
import type { RedirectOptions } from './fd-plan';
import { progress, type ProgressFn } from '../progress';

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
  const s = new SingleRestore(store, id, opts, hooks);
  s.build(true);
  return s.complete();
}

/**
 * A restore built up to its memory and kept there, stopped, while the original still runs (the
 * destination of a live migration): each later checkpoint of the same process is absorbed by
 * writing only what it changed, and finish() runs the remaining steps from the newest one, so the
 * downtime holds the last delta and the kernel state, not the whole image.
 */
export interface PreparedRestore {
  /** The checkpoint whose memory the process now holds. */
  readonly checkpointId: number;
  readonly pid: number;
  /**
   * Catches up with checkpoint #next, a child of checkpointId with the same memory layout: its
   * changes are written in. false (nothing changed) when it is not such a child; then finish() is
   * still valid for checkpointId, and a restore of #next has to start afresh.
   */
  absorb(next: number): boolean;
  /**
   * Catches up with a child of checkpointId that is not in the store yet (a migration's last round,
   * validated in memory and imported only once the process runs): the same as absorb, from the
   * child's state and changes. false (nothing changed) when its layout differs. Then finish() runs
   * from it, and record(id) names the child's id once it is imported.
   */
  absorbDelta(state: ProcessState, changes: { runs: Iterable<PageRun>; absent: { vaddr: bigint; pages: number }[] }): boolean;
  /**
   * The remaining steps from checkpointId's state; the process runs afterwards. Its durationMs and
   * steps start at the last absorb. The restored process's timeline entry is not written yet
   * (branchCheckpointId null): record() writes it, once the caller has said the process runs.
   */
  finish(): RestoreResult;
  /**
   * finish() but for its last step: every step runs, and the process stays stopped until run()
   * detaches it (a migration waits there for the source's word that the round was exact);
   * abandon() instead kills it.
   */
  finishHeld(): { run(): RestoreResult };
  /** asId: the imported id of a checkpoint absorbed with absorbDelta (the record's parent). */
  record(asId?: number): RecordedBranch;
  /** Kills the half-built process. */
  abandon(): void;
}

/** A migration's destination: the whole tree when #id belongs to a tree checkpoint (restore/tree.ts), else the one process. */
export function prepareMigrationRestore(store: Store, id: number, opts: RestoreOptions = {}): PreparedRestore | PreparedTreeRestore {
  return store.get(id)?.tree ? prepareTreeRestore(store, id, opts) : prepareRestore(store, id, opts);
}

export function prepareRestore(store: Store, id: number, opts: RestoreOptions = {}): PreparedRestore {
  if (store.get(id)?.tree) throw new StasisError('UNSUPPORTED', `Checkpoint #${id} is a tree checkpoint: prepareTreeRestore (restore/tree.ts) builds a tree.`);
  const s = new SingleRestore(store, id, opts, {});
  s.build(false);
  return {
    get checkpointId() { return s.id; },
    get pid() { return s.pid; },
    absorb: (next) => s.absorb(next),
    absorbDelta: (state, changes) => s.absorbDelta(state, changes),
    finish: () => s.complete(true),
    finishHeld: () => {
      s.buildRest();
      return { run: () => s.run(true) };
    },
    record: (asId) => s.record(asId),
    abandon: () => s.kill(),
  };
}

/** One process's restore, in two halves (memory; the rest) so a prepared restore can absorb rounds between them. */
class SingleRestore {
  id: number;
  private state: ProcessState;
  private redirect: RedirectOptions;
  private t0 = performance.now();
  private readonly steps: RestoreStepTiming[] = [];
  private readonly prog: ReturnType<typeof progress>;
  private remote: Remote | null = null;
  private plan: RestorePlan | null = null;
  private stubMaps: LayoutEntry[] = [];
  private current = 'start the stub';
  private bytesWritten = 0;
  private writeMs = 0;
  private sealed = false;

  constructor(private readonly store: Store, id: number, private readonly opts: RestoreOptions, private readonly hooks: RestoreHooks) {
    this.id = id;
    this.state = loadState(store, id);
    this.redirect = redirectFor(store, id, opts);
    this.check();
    this.prog = progress(opts.onProgress);
  }

  get pid(): number { return this.remote?.pid ?? 0; }

  private check(): void {
    const pf = preflightState(this.state, this.redirect);
    if (!pf.ok) {
      const failed = pf.items.filter((i) => !i.ok);
      throw new StasisError('PREFLIGHT_FAILED', `Checkpoint #${this.id} cannot be restored: ${failed.map((i) => i.reason).join(' ')}`, { items: pf.items });
    }
  }

  private readonly step: StepFn = (name, fn) => {
    this.current = name;
    throwIfCancelled(this.opts.signal, this.id);
    this.prog.report({ done: this.steps.length, total: RESTORE_STEPS, unit: 'steps', phase: name });
    const s = performance.now();
    const v = fn();
    this.steps.push({ step: name, ms: +(performance.now() - s).toFixed(2) });
    if (this.hooks.afterStep && this.remote) this.hooks.afterStep(name, this.remote.pid);
    return v;
  };

  /** Runs fn; any failure kills the half-built process and names the step. */
  private guarded<T>(fn: () => T): T {
    return killOnFailure(fn, () => this.kill(), () => this.current, (msg) => `Restore of checkpoint #${this.id} failed at step "${this.current}": ${msg} The half-built process was killed; nothing was left running.`);
  }

  kill(): void {
    this.remote?.kill();
  }

  private ctx(): RebuildContext {
    return { store: this.store, id: this.id, opts: this.opts, redirect: this.redirect, report: (n, pages) => this.prog.report({
      done: this.steps.length, total: RESTORE_STEPS, unit: 'steps', phase: 'memory contents', within: { done: n, total: Math.max(pages, n), unit: 'pages' },
    }) };
  }

  build(seal: boolean): void {
    for (const p of [this.redirect.stdout, this.redirect.stderr, this.redirect.log]) if (p) mkdirSync(dirname(p), { recursive: true });
    this.guarded(() => {
      const r = this.step('start the stub', () => Remote.spawnStub([undefined, process.env.XDG_RUNTIME_DIR, this.store.dir]));
      this.remote = r;
      this.stubMaps = parseMaps(readFileSync(`/proc/${r.pid}/maps`, 'utf8'));
      const plan = this.step('plan', () => buildRestorePlan(this.state, this.stubMaps));
      this.plan = plan;
      this.step('trampoline', () => {
        setSigmask(r.pid, ALL_BUT_TRAP);
        setUpTrampoline(r, plan);
      });
      this.step('fork', () => {
        // Same PID when we may; either way the restored process must not stay the engine's child.
        const same = this.opts.samePid !== false && canTakePid(this.state.pid) && r.forkAway(this.state.pid);
        if (!same) r.forkAway(null);
      });
      const w = rebuildMemory(this.step, r, plan, this.ctx(), seal);
      this.bytesWritten = w.bytesWritten;
      this.writeMs = w.writeMs;
      this.sealed = seal;
    });
  }

  absorb(next: number): boolean {
    const info = this.store.get(next);
    if (!info || info.parentId !== this.id || info.tree) return false;
    return this.absorbWith(next, () => this.store.getState(next), () => this.store.changes(next));
  }

  absorbDelta(state: ProcessState, changes: { runs: Iterable<PageRun>; absent: { vaddr: bigint; pages: number }[] }): boolean {
    // Not in the store: its timeline entry waits for record(id) with the id it is imported as.
    return this.absorbWith(null, () => state, () => changes);
  }

  /** Writes a child checkpoint's changes in when it keeps the same mappings (id null: not in the store yet). */
  private absorbWith(next: number | null, stateOf: () => ProcessState, changesOf: () => { runs: Iterable<PageRun>; absent: { vaddr: bigint; pages: number }[] }): boolean {
    if (this.sealed || !this.remote || !this.plan) return false;
    const state = stateOf();
    const plan = buildRestorePlan(state, this.stubMaps, { trampoline: this.plan.trampoline });
    if (!sameLayout(this.plan, plan)) return false;
    const r = this.remote;
    this.guarded(() => {
      // The result's time and steps then cover what remains from this round on (a migration's downtime).
      this.t0 = performance.now();
      this.steps.length = 0;
      if (next !== null) {
        this.id = next;
        this.redirect = redirectFor(this.store, next, this.opts);
      }
      this.pendingId = next === null;
      this.state = state;
      this.check();
      this.step('memory changes', () => {
        const w = writeChanges(r, plan, changesOf(), this.opts.signal, next ?? this.id);
        this.bytesWritten += w.bytes;
        this.writeMs += w.writeMs;
      });
      this.plan = plan;
    });
    return true;
  }

  /** The state absorbed last is not in the store yet (absorbDelta): record() needs its id. */
  private pendingId = false;

  /**
   * The rest of the steps; the process runs when it returns. deferRecord leaves the restored
   * process's timeline entry (a commit with its fsync) to record(), so a migration can first tell
   * the source that the process runs: the entry is no part of the downtime.
   */
  complete(deferRecord = false): RestoreResult {
    this.buildRest();
    return this.run(deferRecord);
  }

  private rest: ReturnType<typeof rebuildRest> | null = null;

  /** Every step after the memory but the detach: the process is whole and still stopped. */
  buildRest(): void {
    const r = this.remote!;
    const plan = this.plan!;
    this.rest = this.guarded(() => {
      if (!this.sealed) this.step('seal protections', () => sealProtections(r, plan));
      this.sealed = true;
      return rebuildRest(this.step, r, plan, this.state, this.ctx());
    });
  }

  /** Lets the process built by buildRest() run. See complete(). */
  run(deferRecord: boolean): RestoreResult {
    const r = this.remote!;
    const state = this.state;
    const written = this.rest!;
    this.rest = null;
    this.guarded(() => this.step('detach', () => {
      // A process checkpointed while stopped (SIGSTOP/SIGTSTP) comes back stopped; SIGCONT resumes it.
      r.detach(state.stopped === true);
    }));
    const pid = r.pid;
    const id = this.id;
    let warning: string | undefined;
    const threads: ThreadMap = written.threads;
    if (threads.changed.length > 0) {
      warning = `${threads.changed.length} of ${state.threads.length - 1} other threads have new thread ids (their saved ids are taken or the process has a new PID); each thread's id word at its clear_child_tid address (glibc's pthread tid) was rewritten, but ids the program copied elsewhere keep the old values.`;
    }
    if (written.warnings.length) warning = [warning, ...written.warnings].filter(Boolean).join(' ');
    const durationMs = +(performance.now() - this.t0).toFixed(2);
    this.pendingRecord = (asId) => {
      try {
        if (this.pendingId && asId === undefined) return { branchCheckpointId: null, warning: 'The restored process runs, but its checkpoint is not in the store, so its timeline entry was not written.' };
        return { branchCheckpointId: recordBranch(this.store, asId ?? id, state, pid, threads.tids) };
      } catch (e) {
        // The process runs; only the timeline entry is missing (e.g. a read-only store).
        return { branchCheckpointId: null, warning: `The restored process runs, but the store could not record it: ${(e as Error).message}` };
      }
    };
    const recorded = deferRecord ? { branchCheckpointId: null } : this.record();
    if (recorded.warning) warning = [warning, recorded.warning].filter(Boolean).join(' ');
    this.prog.finish({ total: RESTORE_STEPS, unit: 'steps', phase: 'running' });
    return {
      branchCheckpointId: recorded.branchCheckpointId, ...(warning ? { warning } : {}),
      checkpointId: id, pid, samePid: pid === state.pid, originalPid: state.pid, threads: state.threads.length,
      durationMs: deferRecord ? durationMs : +(performance.now() - this.t0).toFixed(2), bytesWritten: this.bytesWritten, writeMs: +this.writeMs.toFixed(2), log: this.redirect.log, steps: this.steps,
    };
  }

  private pendingRecord: ((asId?: number) => RecordedBranch) | null = null;

  /** Writes the restored process's timeline entry (once; complete() first). asId: see PreparedRestore.record. */
  record(asId?: number): RecordedBranch {
    const f = this.pendingRecord;
    this.pendingRecord = null;
    return f ? f(asId) : { branchCheckpointId: null };
  }
}

export interface RecordedBranch { branchCheckpointId: number | null; warning?: string }

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
