/**
 * Capture entry: `checkpoint(store, pid, opts)` saves a live process into the store.
 *
 *   const r = checkpoint(store, pid, { mode: 'leave-running', full: false, label: 'before upgrade' });
 *   // -> { id, pid, mode: 'full'|'incremental', dirtyTracking: 'soft-dirty'|'hash'|'uffd-wp', frozenMs, durationMs,
 *   //      pagesScanned, pagesWritten, bytesWritten, freeze: 'pre-copy'|'uffd-wp'|'snapshot'|'all-threads', threads, warnings }
 *
 * Modes: leave-running (default) with a single thread -> pre-copy where the kernel has uffd-wp
 * async (memory read while it runs, then a brief freeze for what changed; precopy.ts), else freeze,
 * read state, fork a COW snapshot, resume (a few ms), read memory from the snapshot.
 * Multi-threaded -> every thread stays frozen for the whole capture (freeze: 'all-threads'). 'kill' -> frozen for the whole capture, SIGKILLed only
 * after the checkpoint is durable (resumed instead if anything failed).
 * Incremental: soft-dirty where the kernel really has it ('delta' coverage: only dirty pages); with
 * a pre-copy userfaultfd kept since the parent (tracking.ts), only pages written since are read
 * ('uffd-wp'); else every present page is given and the store keeps only pages whose hash differs.
 * Errors: a StasisError with a clear message; nothing is written (the writer is aborted) and the
 * target is always detached and resumed.
 */
import { existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StasisError } from '../../../shared/errors';
import type { CheckpointMode, CheckpointWriter, DirtyTracking, Store } from '../store/api';
import { probeKernelFeatures, vmRead, errnoName, SysError, E } from '../native';
import { freeze, checkTraceable, readBasics, listThreads, Tracee } from '../tracer';
import { childProcesses, readCmdline, readMaps, readSmaps, readStatus, statusIds } from '../proc';
import { forkAltered, keepOwnFlags, mayBeDeviceMemory, pagePolicy, toMappingState, unreadablePrivate } from './mappings';
import { captureMappedGhosts, DEFAULT_GHOST_LIMIT } from './ghost-files';
import type { ProcessState } from '../state/process-state';
import { setupUffdSnapshot, streamUffdSnapshot, closeUffdSnapshot, type UffdSnapshot } from './uffd-snapshot';
import { putBackRestartedCalls, latestRestarts, type RestartedCalls } from './restarts';
import { openPreCopy, protectLive, copyLive, outrunsPreCopy, scanAtFreeze, copyFrozen, readFrozenCopy, readsBetterFromFork, rebase, applyFrozenCopy, closePreCopy, hasIoUring, keepRestartedCalls, type PreCopy, type FrozenCopy, type FrozenScan } from './precopy';
import { takeTracker, keepTracker } from './tracking';
import { captureFrozenState, captureInherited, applyVmFlags, captureMappings, fillMappingDetails, warmFrozenPath } from './state';
import * as smapsAhead from './smaps-ahead';
import { guessVmFlags, vmFlagsDifferences } from './vmflags-guess';
import { putBackSemUndo } from './sem-undo';
import { copyPages } from './pages';
import { rehearseOnce } from './rehearsal';
import { capturePageProgress } from './page-count';
import type { ProgressFn } from '../progress';
import { forkSnapshot, disposeSnapshot, recordPendingSnapshot, clearPendingSnapshot, reapLeftoverSnapshot, type SnapshotChild } from './snapshot';

/**
 * 'live': pre-copy only, memory read while the target runs, before the freeze. 'details': a
 * pre-copy or uffd capture is about to read the mappings' VmFlags (smaps), which walks the page
 * tables; timed by a migration, whose last round reads them while the process is held.
 */
export type CapturePhase = 'live' | 'frozen' | 'resumed' | 'details' | 'pages' | 'commit';

export interface CheckpointOptions {
  /**
   * 'leave-running' (default), 'kill' (SIGKILL after the checkpoint is safely stored), or 'hold':
   * the process stays frozen after the commit and the result's `held` decides (a migration's last
   * round: killed once the destination runs it, resumed untouched if anything fails). Never
   * reachable through the API (a frozen process cannot cross it).
   */
  mode?: 'leave-running' | 'kill' | 'hold';
  /** Force a full checkpoint even when an earlier one of this process exists. */
  full?: boolean;
  label?: string | null;
  /** Stable name for the target (e.g. given at `stasis launch`). */
  name?: string;
  /** Refuse if the process's start time differs (guards a PID that was reused). */
  expectStartTime?: string;
  /** Freeze timeout per thread (default 2000 ms). */
  timeoutMs?: number;
  /**
   * How a leave-running capture keeps the target's downtime short. 'auto' (default), for
   * single-threaded targets: pre-copy where the kernel has uffd-wp async (and the target no
   * io_uring), else a fork snapshot; multi-threaded targets stay frozen throughout. 'precopy':
   * pre-copy for any number of threads. 'uffd': userfaultfd write-protect snapshot (any number of
   * threads; needs uffd-wp). 'fork': the fork snapshot. 'never': frozen throughout.
   */
  snapshot?: 'auto' | 'precopy' | 'uffd' | 'fork' | 'never';
  /** Called at each phase (tests use it to interfere at a precise moment). */
  onPhase?: (phase: CapturePhase, info: { pid: number; snapshotPid?: number }) => void;
  /** Checked at each phase, last just before the commit: an abort discards the checkpoint. */
  signal?: AbortSignal;
  /** Pages scanned of the pages to scan, throttled; the last report (done == total) after the commit. */
  onProgress?: ProgressFn;
  /** Deleted open files up to this many bytes each have their contents saved (default 10 MiB; capture/ghost-files.ts). */
  ghostLimit?: number;
  /**
   * Mode 'hold' only: commit with the parent's VmFlags (vmflags-guess.ts) instead of waiting for
   * the smaps walk, where the mappings are the parent's; the result's `guessedVmFlags` then says
   * whether that was exact. Only for a caller that keeps the commit invisible (Store.deferDurability)
   * and the process from running anywhere until it is confirmed (a migration's last round).
   * 'if-waiting': only when the walk is still running once the pages are copied (a small
   * process's is done by then, and its exact flags cost nothing); 'always' (tests).
   */
  guessVmFlags?: 'if-waiting' | 'always';
}

export interface CheckpointResult {
  id: number;
  pid: number;
  mode: CheckpointMode;
  dirtyTracking: 'soft-dirty' | 'hash' | 'uffd-wp';
  frozenMs: number;
  durationMs: number;
  pagesScanned: number;
  pagesWritten: number;
  bytesWritten: number;
  /**
   * How the target was held: 'pre-copy' (memory read while it ran, then a brief freeze for what
   * changed meanwhile), 'uffd-wp' (brief freeze, then pages write-protected and read live),
   * 'snapshot' (brief freeze to fork a copy-on-write child), or every thread frozen throughout.
   */
  freeze: 'pre-copy' | 'uffd-wp' | 'snapshot' | 'all-threads';
  threads: number;
  killed: boolean;
  warnings: string[];
  /** Mode 'hold' only: the frozen process. Call exactly one of them. */
  held?: HeldProcess;
  /**
   * Set when the commit holds guessed VmFlags (guessVmFlags): confirm() waits for the exact smaps
   * read (taken while the process was frozen, as it still is) and lists the mappings whose flags
   * differ; [] means the checkpoint is exact. Until then it must not become visible.
   */
  guessedVmFlags?: { confirm(): string[] };
}

export interface HeldProcess {
  /** When (performance.now()) the freeze that still holds it began: its downtime runs from here, the commit included. */
  frozenAt: number;
  /** Detaches and lets it run on as if nothing happened. */
  resume(): void;
  kill(): void;
}

const SOFT_DIRTY_DIR = 'capture-soft-dirty';

/** Which checkpoint the soft-dirty bits of pid were last cleared for (per store). */
function softDirtyMarker(store: Store, pid: number, startTime: string): string {
  return join(store.dir, SOFT_DIRTY_DIR, `${pid}-${startTime}`);
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** Why /proc/PID of a process is closed to us: another user's, or one the kernel keeps from everyone. */
function whyNoAccess(pid: number): string {
  let uid = -1;
  try { uid = statusIds(readStatus(pid), 'Uid')[0] ?? -1; } catch { /* gone meanwhile */ }
  const me = process.geteuid?.() ?? -1;
  if (me === 0 || uid === me) {
    return 'the kernel refuses it even to its owner and root: the process is not dumpable (it turned that off, or changed its credentials, as setuid programs do) or belongs to another user namespace (PID 1 of a container, a sandboxed app). Stasis cannot checkpoint it.';
  }
  return `the process belongs to another user (uid ${uid}). Run Stasis as that user or as root.`;
}

export function checkpoint(store: Store, pid: number, opts: CheckpointOptions = {}): CheckpointResult {
  if (opts.ghostLimit !== undefined && !(Number.isSafeInteger(opts.ghostLimit) && opts.ghostLimit >= 0)) {
    throw new StasisError('INVALID_INPUT', `The ghost-file limit must be a whole number of bytes (0 or more), not ${opts.ghostLimit}.`);
  }
  // Each phase is also a cancellation point; a throw here takes the normal error path (writer
  // aborted, target released), so a cancelled checkpoint leaves nothing behind.
  const phase = (p: CapturePhase, info: { pid: number; snapshotPid?: number }): void => {
    opts.onPhase?.(p, info);
    if (opts.signal?.aborted) throw new StasisError('CANCELLED', `The checkpoint of process ${pid} was cancelled; nothing was saved.`);
  };
  const t0 = performance.now();
  const pageProgress = capturePageProgress(opts.onProgress);
  const basics = checkTraceable(pid, opts.expectStartTime);
  const features = probeKernelFeatures();
  if (!features.ptrace.usable) {
    throw new StasisError('PERMISSION_DENIED', `ptrace is not usable here: ${features.ptrace.reason ?? 'unknown reason'}.`);
  }
  const exe = (() => {
    try {
      return readlinkSync(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, '');
    } catch (e) {
      // An exiting process loses its exe link before /proc shows it as a zombie: not a permission problem.
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        const now = readBasics(pid);
        const what = !now || now.startTime !== basics.startTime ? 'has exited' : 'is exiting or a zombie (it has already exited)';
        throw new StasisError('PROCESS_GONE', `Process ${pid} ${what}; there is nothing left to checkpoint. Nothing was saved.`);
      }
      throw new StasisError('PERMISSION_DENIED', `Cannot read /proc/${pid}/exe (${(e as Error).message}); ${whyNoAccess(pid)}`);
    }
  })();
  const threadCount = listThreads(pid).length;
  const softDirty = features.softDirty;
  let dirtyTracking: CheckpointResult['dirtyTracking'] = softDirty ? 'soft-dirty' : 'hash';
  const hold = opts.mode === 'hold';
  // 'hold' still reads what changed since the parent while the process runs (pre-copy), but
  // nothing that releases it before the commit (fork or uffd snapshots).
  const live = opts.mode !== 'kill' && opts.snapshot !== 'never';
  // uffd-wp works for any number of threads but is opt-in: on this VM write-protecting 1 GiB of 4 KiB
  // pages costs about what fork's page-table copy does (~35 ms each, docs/engine.md), and a live
  // read cannot keep what the target unmaps or MADV_DONTNEEDs before it is read (a fork child
  // holds its own copy), so several threads stay frozen throughout unless the user asks for it.
  // Not combined with soft-dirty (both play with the same write-protect bits).
  const tryUffd = live && !hold && features.uffdWp && !softDirty && opts.snapshot === 'uffd';
  const wantPreCopy = live && (opts.snapshot === 'precopy' || ((opts.snapshot ?? 'auto') === 'auto' && threadCount === 1));
  const preCopyOk = wantPreCopy && features.uffdWpAsync && features.pagemapScan && !softDirty && !hasIoUring(pid);
  if (opts.snapshot === 'precopy' && !preCopyOk) {
    throw new StasisError('UNSUPPORTED', `A pre-copy checkpoint of process ${pid} is not possible here (it needs userfaultfd write-protect in async mode and PAGEMAP_SCAN, Linux 6.7+, no soft-dirty tracking, and a target without io_uring); use the default snapshot mode.`);
  }
  // Also where pre-copy was possible but finds the memory taken by another userfaultfd.
  const forkCandidate = live && !hold && threadCount === 1 && opts.snapshot !== 'uffd' && opts.snapshot !== 'precopy';
  // Read before the freeze (smaps walks the page tables): a fork snapshot would lose these mappings' contents.
  const forkBlockers = forkCandidate ? forkAltered(readSmaps(pid)) : [];
  const forkOk = forkCandidate && forkBlockers.length === 0;
  if (opts.snapshot === 'fork' && forkBlockers.length) {
    throw new StasisError('UNSUPPORTED', `A fork snapshot of process ${pid} would save ${forkBlockers.length} mapping(s) wrong (${forkBlockers.slice(0, 3).map((e) => `${e.start.toString(16)}-${e.end.toString(16)} ${e.vmFlags.includes('dc') ? 'MADV_DONTFORK' : 'MADV_WIPEONFORK'}`).join(', ')}): a fork child does not get their contents. Use the default snapshot mode.`);
  }
  // Before the first freeze of a fresh engine, its frozen path runs once on a throwaway process.
  if (live && !hold) rehearseOnce(checkpoint);
  // Armed now, started once frozen (smaps-ahead.ts): starting it then costs one atomic store.
  const armed = hold ? smapsAhead.arm() : null;
  // A held capture's smaps read on the worker (smaps-ahead.ts), until its VmFlags are applied.
  const late: { flags: smapsAhead.SmapsAhead | null } = { flags: null };

  // Store look-ups happen before the freeze: every millisecond while frozen is the target's downtime.
  const target = store.upsertTarget({ pid, startTime: basics.startTime, exe, cmdline: readCmdline(pid), ...(opts.name ? { name: opts.name } : {}) });
  const parent = opts.full ? null : store.latest(target.id);
  const mode: CheckpointMode = parent ? 'incremental' : 'full';
  // Soft-dirty deltas only when the bits were cleared exactly at the parent checkpoint.
  const markerPath = softDirty ? softDirtyMarker(store, pid, basics.startTime) : null;
  const delta = !!(softDirty && parent && parent.dirtyTracking === 'soft-dirty' && markerPath && existsSync(markerPath) && readFileSync(markerPath, 'utf8').trim() === String(parent.id));
  // Waits the parent checkpoint's stop turned into restart_syscall get their call back (restarts.ts).
  const parentState = parent ? store.getState(parent.id) : null;
  const parentRestarts = latestRestarts(store, target.id);
  let guessed: { confirm(): string[] } | undefined;
  // Calls the brief freeze of a pre-copy given up on (refused, outrun) turned into restart_syscall.
  let briefRestarts: RestartedCalls = new Map();

  let t: Tracee | null = null;
  let child: SnapshotChild | null = null;
  let uffd: UffdSnapshot | null = null;
  let pc: PreCopy | null = null;
  let parentPresent: { vpn: number; count: number }[] = [];
  let frozenCopy: FrozenCopy | null = null;
  let forkedScan: { scan: FrozenScan; fdTargets: string[] } | null = null;
  let outran = false;
  let trackable = false;
  let writer: CheckpointWriter | null = null;
  let frozenMs = 0;
  let killed = false;
  // A --kill capture applied the process's SEM_UNDO records: taken again if it is released alive.
  let semTaken: ProcessState | null = null;
  let how: CheckpointResult['freeze'] = 'all-threads';
  const begin = (): CheckpointWriter => store.begin({
    targetId: target.id,
    parentId: parent ? parent.id : null,
    mode,
    dirtyTracking: dirtyTracking as DirtyTracking,
    coverage: delta ? 'delta' : 'complete',
    label: opts.label ?? null,
  });
  try {
    // A userfaultfd kept since the parent checkpoint (tracking.ts) reads only what was written since;
    // any other one of this process is closed first (a mapping takes one userfaultfd only).
    pc = takeTracker(store.dir, pid, basics.startTime, preCopyOk && parent ? parent.id : null);
    if (pc) dirtyTracking = 'uffd-wp';
    if (preCopyOk && !pc) pc = openPreCopy(pid, basics.startTime, opts.timeoutMs);
    if (opts.snapshot === 'precopy' && !pc) throw new StasisError('UNSUPPORTED', `Process ${pid} cannot get a userfaultfd (vm.unprivileged_userfaultfd=0 and it is unprivileged); use the default snapshot mode.`);
    // Most of the memory, read while the target runs (precopy.ts).
    const running = pc ? readMaps(pid).map((e) => toMappingState(pid, e, false)) : [];
    const plan = pc ? protectLive(pc, running) : null;
    if (pc) frozenMs += pc.frozenMs;
    if (pc && plan?.refused) {
      briefRestarts = pc.restarts;
      closePreCopy(pc);
      pc = null;
      dirtyTracking = softDirty ? 'soft-dirty' : 'hash';
      if (opts.snapshot === 'precopy') {
        throw new StasisError('UNSUPPORTED', `Process ${pid}'s memory is registered with another userfaultfd (${errnoName(plan.refused)}): the program uses one itself, or another Stasis engine is tracking it. Use the default snapshot mode.`);
      }
    }
    if (pc && plan) {
      writer = begin();
      const onPages = pageProgress.start(running, { memPid: pid, sharedPagemapPid: pid, useScan: true });
      const liveCopy = copyLive(pc, writer, plan, onPages);
      if (forkOk && outrunsPreCopy(liveCopy)) {
        // It writes faster than it can be read live: the fork snapshot stops it for less (precopy.ts).
        writer.abort();
        writer = null;
        briefRestarts = pc.restarts;
        closePreCopy(pc);
        pc = null;
        dirtyTracking = softDirty ? 'soft-dirty' : 'hash';
        outran = true;
      } else parentPresent = pc.base !== null ? writer.parentPresent() : [];
      phase('live', { pid });
    }
    if (live) warmFrozenPath(pid);
    t = freeze(pid, { skipChecks: true, timeoutMs: opts.timeoutMs });
    const now = readBasics(pid);
    if (!now || now.startTime !== basics.startTime) {
      throw new StasisError('PROCESS_GONE', `Process ${pid} exited and its PID was reused while Stasis was attaching. Nothing was captured.`);
    }
    // Held: its VmFlags are read while it is held, on a worker while this thread goes on; not
    // before the injected calls: the walk holds the mmap lock that their mmap/munmap wait for.
    const state = captureFrozenState(t, {
      deferInherited: forkOk && !tryUffd && !pc, ghostLimit: opts.ghostLimit, semUndo: opts.mode === 'kill',
      ...(hold ? { afterInjected: () => { late.flags = armed!.go(pid); } } : {}),
    });
    semTaken = state;
    // Read before the freeze: our own stop shows as 't', a job-control stop as 'T'.
    if (basics.state === 'T') state.stopped = true;
    if (!pc) putBackRestartedCalls(state.threads, parentRestarts, briefRestarts);
    const warnings = state.warnings;
    if (outran) warnings.push('the process wrote faster than its memory could be read while it ran: the checkpoint was taken again with a fork snapshot');
    if (reapLeftoverSnapshot(t, store.dir, basics.startTime)) warnings.push('reaped a snapshot child left behind by an earlier, interrupted checkpoint');
    const frozenMaps = readMaps(pid).map((e) => toMappingState(pid, e, false));
    phase('frozen', { pid });

    let memPid = pid;
    if (pc) {
      keepRestartedCalls(pc, state.threads, parentRestarts);
      const fdTargets = state.fds.map((f) => f.target);
      const scan = scanAtFreeze(pc, frozenMaps);
      // Protect again what was written, so the next checkpoint can start from this freeze. Not for
      // a held process (a second walk of its page tables while frozen): it is killed once it runs
      // elsewhere, and resumed without tracking (held.resume closes the tracker).
      if (!hold) rebase(pc, scan, fdTargets);
      how = 'pre-copy';
      // What the program wrote during the live read: from a fork snapshot when that stops it for
      // less; the scan's meaning is then worked out after the release.
      if (forkOk && readsBetterFromFork(pc, scan)) {
        child = forkSnapshot(t);
        memPid = child.pid;
        forkedScan = { scan, fdTargets };
      } else {
        frozenCopy = copyFrozen(pc, scan, fdTargets, parentPresent);
        readFrozenCopy(pc, frozenCopy, pid);
        trackable = frozenCopy.trusted;
      }
    } else if (tryUffd) {
      uffd = setupUffdSnapshot(t, frozenMaps, features.pagemapScan);
      if (uffd) how = 'uffd-wp';
      else if (opts.snapshot === 'uffd') throw new StasisError('UNSUPPORTED', `Process ${pid} cannot get a userfaultfd (vm.unprivileged_userfaultfd=0 and it is unprivileged); use the default snapshot mode.`);
    }
    if (!uffd && !pc && forkOk) {
      child = forkSnapshot(t);
      memPid = child.pid;
      how = 'snapshot';
    }
    if (softDirty) writeFileSync(`/proc/${pid}/clear_refs`, '4');
    if (how !== 'all-threads' && !hold) {
      frozenMs += t.elapsedMs();
      t.release();
      if (child) {
        recordPendingSnapshot(store.dir, pid, basics.startTime, child);
        // The child is stopped at birth and never released (disposeSnapshot kills it).
        if (how === 'snapshot') {
          const ct = new Tracee(child.pid);
          ct.addSlot(child.pid);
          captureInherited(state, ct);
        }
      }
      phase('resumed', { pid, snapshotPid: memPid });
    } else if (opts.mode !== 'kill' && !hold && threadCount > 1) {
      const asked = opts.snapshot === 'fork' ? ' (the fork snapshot copies only the calling thread, so it needs a single-threaded process; `--snapshot precopy` keeps several threads running)' : '';
      warnings.push(`multi-threaded (${t.tids.length} threads): every thread stayed frozen for the whole capture${asked}`);
    }
    // Only this process is saved (our own snapshot child aside): say so when it has children.
    const kids = childProcesses(pid, state.threads.map((th) => th.tid)).filter((k) => k.pid !== child?.pid);
    if (kids.length) {
      warnings.push(`${kids.length} child process${kids.length > 1 ? 'es' : ''} (${kids.slice(0, 5).map((k) => `${k.pid} ${k.comm}`).join(', ')}${kids.length > 5 ? ', ...' : ''}) not in the checkpoint: a restored process cannot wait for ${kids.length > 1 ? 'them' : 'it'} or reach ${kids.length > 1 ? 'them' : 'it'} through pipes (a compressor child, as in tar czf, or a pipeline breaks); \`stasis checkpoint ${pid}\` without --no-tree takes the whole tree`);
    }

    if (uffd || frozenCopy || forkedScan) {
      phase('details', { pid, snapshotPid: memPid });
      state.mappings = frozenMaps;
      // Held: the smaps walk goes on while the pages are copied; its flags are applied before the
      // commit, or before the copy when a mapping only they can tell from device memory is there.
      fillMappingDetails(pid, state.mappings, (a, b) => vmRead(pid, a, b), state, late.flags ? 'later' : undefined);
      if (late.flags && state.mappings.some((m) => pagePolicy(m) !== 'none' && mayBeDeviceMemory(m))) {
        applyVmFlags(state.mappings, late.flags.take());
        late.flags = null;
      }
    } else {
      captureMappings(state, memPid, (a, b) => vmRead(memPid, a, b));
      if (child) {
        const own = readSmaps(pid);
        // Set between the smaps read and the freeze: the snapshot lacks their contents, so nothing is saved.
        const altered = forkAltered(own);
        if (state.mappings.length !== frozenMaps.length || altered.length) {
          throw new StasisError('CONFLICT', `Process ${pid} marked ${Math.max(altered.length, frozenMaps.length - state.mappings.length)} mapping(s) MADV_DONTFORK or MADV_WIPEONFORK while the checkpoint started, so its fork snapshot lacks their contents; nothing was saved. Checkpoint it again.`);
        }
        keepOwnFlags(state.mappings, own);
      }
    }
    writer ??= begin();
    captureMappedGhosts(pid, state.mappings, opts.ghostLimit ?? DEFAULT_GHOST_LIMIT, warnings);
    writer.setState(state);
    phase('pages', { pid, snapshotPid: memPid });
    let pagesScanned: number;
    if (forkedScan && pc && child) {
      frozenCopy = copyFrozen(pc, forkedScan.scan, forkedScan.fdTargets, parentPresent);
      readFrozenCopy(pc, frozenCopy, child.pid);
      trackable = frozenCopy.trusted;
      forkedScan = null;
    }
    if (frozenCopy) {
      applyFrozenCopy(writer, frozenCopy);
      const shared = copyPages(writer, state.mappings.filter((m) => m.perms[3] === 's'), { memPid: pid, sharedPagemapPid: pid, useScan: true, softDirtyOnly: false });
      const forced = copyPages(writer, unreadablePrivate(state.mappings), { memPid, sharedPagemapPid: pid, useScan: true, softDirtyOnly: false });
      pagesScanned = frozenCopy.pagesScanned + shared.pagesScanned + forced.pagesScanned;
      frozenCopy = null;
    } else if (uffd) {
      // Counted while the target runs (nothing here adds to its downtime).
      const scan = { memPid: pid, sharedPagemapPid: pid, useScan: features.pagemapScan };
      const onPages = pageProgress.start(state.mappings, scan);
      const a = streamUffdSnapshot(uffd, writer, onPages);
      closeUffdSnapshot(uffd);
      uffd = null;
      const b = copyPages(writer, state.mappings.filter((m) => m.perms[3] === 's'), { ...scan, softDirtyOnly: false, ...(onPages ? { onPages: (n: number) => onPages(a.pagesGiven + n) } : {}) });
      const forced = copyPages(writer, unreadablePrivate(state.mappings), { ...scan, softDirtyOnly: false });
      pagesScanned = a.pagesScanned + b.pagesScanned + forced.pagesScanned;
    } else {
      const scan = { memPid, sharedPagemapPid: pid, useScan: features.pagemapScan };
      pagesScanned = copyPages(writer, state.mappings, { ...scan, softDirtyOnly: delta, onPages: pageProgress.start(state.mappings, scan) }).pagesScanned;
    }
    if (child) {
      frozenMs += disposeSnapshot(pid, child);
      clearPendingSnapshot(store.dir, pid, basics.startTime);
      child = null;
    }
    if (late.flags) {
      // The walk is waited for after the commit instead, by the caller (guessedVmFlags).
      const guess = opts.guessVmFlags === 'always' || (opts.guessVmFlags === 'if-waiting' && !late.flags.ready());
      if (hold && guess && parentState && guessVmFlags(state.mappings, parentState.mappings)) {
        const ahead = late.flags;
        const mappings = state.mappings;
        guessed = { confirm: () => vmFlagsDifferences(mappings, ahead.take()) };
      } else applyVmFlags(state.mappings, late.flags.take());
      late.flags = null;
    }
    phase('commit', { pid });
    if (how === 'all-threads' || hold) frozenMs += t.elapsedMs();
    const durationMs = performance.now() - t0;
    const info = writer.commit({ pagesScanned, frozenMs: round(frozenMs), durationMs: round(durationMs) });
    writer = null;
    // Held: not protected again at the freeze, so of no use to a next checkpoint; closed once the
    // process is killed or, before it runs on, resumed (closing it walks the page tables too).
    let untracked: PreCopy | null = null;
    if (pc) {
      // Kept for the next checkpoint, unless an io_uring appeared (nothing it protects can be trusted).
      if (hold) untracked = pc;
      else if (trackable) {
        pc.base = info.id;
        keepTracker(store.dir, pc);
      } else closePreCopy(pc);
      pc = null;
    }
    pageProgress.finish(pagesScanned);
    if (markerPath) {
      mkdirSync(join(store.dir, SOFT_DIRTY_DIR), { recursive: true });
      writeFileSync(markerPath, String(info.id));
    }
    let held: HeldProcess | undefined;
    if (opts.mode === 'kill') {
      t.release({ kill: true });
      killed = true;
    } else if (hold) {
      const frozen = t;
      t = null; // not released by the finally below
      const tracker = untracked;
      held = {
        frozenAt: performance.now() - frozen.elapsedMs(),
        resume: () => { closePreCopy(tracker); frozen.release(); },
        kill: () => { frozen.release({ kill: true }); closePreCopy(tracker); },
      };
    }
    return {
      id: info.id,
      pid,
      mode,
      dirtyTracking,
      frozenMs: round(frozenMs),
      durationMs: round(performance.now() - t0),
      pagesScanned,
      pagesWritten: info.stats.pagesWritten,
      bytesWritten: info.stats.bytesWritten,
      freeze: how,
      threads: state.threads.length,
      killed,
      warnings,
      ...(held ? { held } : {}),
      ...(guessed ? { guessedVmFlags: guessed } : {}),
    };
  } catch (e) {
    writer?.abort();
    // The soft-dirty bits may have been cleared for a checkpoint that does not exist: forget the marker.
    if (markerPath) rmSync(markerPath, { force: true });
    const now = readBasics(pid);
    // A system call that found the process gone (ESRCH) counts too: right after a SIGKILL /proc
    // may still show it, not yet a zombie.
    const vanished = e instanceof SysError && e.errno === E.ESRCH;
    if (vanished || !now || now.state === 'Z' || now.state === 'X' || now.startTime !== basics.startTime) {
      throw new StasisError('PROCESS_GONE', `Process ${pid} exited during the capture (${(e as Error).message.replace(/\.$/, '')}). Nothing was saved.`);
    }
    if (e instanceof StasisError) throw e;
    throw new StasisError('INTERNAL', `Checkpoint of process ${pid} failed: ${(e as Error).message}`);
  } finally {
    armed?.cancel();
    closePreCopy(pc);
    closeUffdSnapshot(uffd);
    if (t && !killed && semTaken?.semUndo) putBackSemUndo(t, semTaken);
    t?.release();
    if (child) {
      disposeSnapshot(pid, child);
      clearPendingSnapshot(store.dir, pid, basics.startTime);
    }
  }
}

export { closeTrackers } from './tracking';
export { launch, reapLaunched, type LaunchOptions, type LaunchResult } from './launch';
export { listProcesses, type ProcessInfo } from './processes';
export { checkpointTree, type TreeCheckpointResult, type TreeMemberResult } from './tree';
