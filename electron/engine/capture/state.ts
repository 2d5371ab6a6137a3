/**
 * Assembles ProcessState from /proc and the frozen tracee (threads.ts). The parts that change
 * while a process runs (registers, signals, fd positions, timers, brk) must be read while frozen;
 * `captureFrozenState` does exactly that and nothing that could be done later.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { release } from 'node:os';
import { STATE_VERSION, type ProcessState, type TimerState } from '../state/process-state';
import type { Tracee } from '../tracer';
import { readStat, readStatus, statusMask, statusIds, readAuxv, readLimits, readCmdline, readEnviron, readFds, readTimers } from '../proc';
import { controlsProbe } from './sched';
import { markSysvMappings } from '../state/sysv-shm';
import { settleTimerfds } from './timerfds';
import { captureMemfdSeals } from './memfd';
import { captureSemUndo } from './sem-undo';
import { mlockFutureProbe } from './mlock-future';
import { captureNamespaces } from './namespaces';
import { markMqueues } from '../state/mqueue';
import { captureInotifyQueues } from './inotify-queue';
import { timerClockNow } from '../state/timer-clock';
import { captureThread, pendingQueue, sigactionsProbe, brkProbe, timersProbe, runProbes, type Probe } from './threads';
import { readMappings, addFileStat } from './mappings';
import { captureChannels } from './channels';
import { capturePtys } from './ptys';
import { markSharedDescriptions } from './shared-fds';
import { captureGhostFiles, DEFAULT_GHOST_LIMIT } from './ghost-files';
import { captureEpollSources } from './epoll-sources';
import { readSmaps, type MapEntry } from '../proc';
import type { MappingState } from '../state/process-state';

function safe<T>(f: () => T, fallback: T): T {
  try {
    return f();
  } catch {
    return fallback;
  }
}

/**
 * Everything but mappings, read while every thread is stopped. `afterInjected` runs once the
 * injected system calls are done (the rest reads /proc and descriptors). With `deferInherited`, what a fork
 * child inherits unchanged (handlers, brk, cmdline/environ, cwd/root, limits, auxv, personality,
 * exe) is left for `captureInherited` on the snapshot child, after the target runs again: less
 * downtime. Registers, signal state, fd positions and timers are always read here.
 */
export function captureFrozenState(t: Tracee, opts: { deferInherited?: boolean; ghostLimit?: number; semUndo?: boolean; ptySlavesHeld?: ReadonlySet<number>; afterInjected?: () => void } = {}): ProcessState {
  const pid = t.pid;
  const warnings: string[] = [];
  const stat = readStat(pid);
  const status = readStatus(pid);
  const timers: TimerState = {};
  const state: ProcessState = {
    version: STATE_VERSION,
    pid,
    startTime: stat.startTime,
    ppid: stat.ppid,
    pgid: stat.pgrp,
    sid: stat.session,
    uid: statusIds(status, 'Uid')[1] ?? -1,
    gid: statusIds(status, 'Gid')[1] ?? -1,
    ids: { uid: statusIds(status, 'Uid'), gid: statusIds(status, 'Gid') },
    comm: stat.comm,
    exe: '',
    cmdline: [],
    cwd: '/',
    root: '/',
    umask: parseInt(status.get('Umask') ?? '22', 8),
    personality: 0,
    rlimits: [],
    mm: { ...stat.mm, brk: 0n },
    auxv: [],
    mappings: [],
    threads: [],
    sigactions: [],
    sharedPending: statusMask(status, 'ShdPnd'),
    fds: readFds(pid),
    timers,
    kernel: { release: release() },
    warnings,
  };
  settleTimerfds(pid, state.fds);
  // The instant the timers are read: a restore arms wall-clock timers for what is left of it.
  timers.clock = timerClockNow();
  const sharedQueue = pendingQueue(pid, true, state.sharedPending, warnings);
  if (sharedQueue) state.sharedQueue = sharedQueue;
  // The main thread runs the process-wide calls too, in the same batch as its own.
  const mlockFuture = mlockFutureProbe(pid, state, warnings);
  const uts = captureNamespaces(pid, state);
  const processWide = [timersProbe(pid, timers, warnings), controlsProbe(pid, state), ...(mlockFuture ? [mlockFuture] : []), ...(uts ? [uts] : []), ...(opts.deferInherited ? [] : inheritedProbes(state, t))];
  state.threads = t.tids.map((tid) => captureThread(t, tid, warnings, tid === pid ? processWide : []));
  // Nothing injected from here on (a --kill capture's SEM_UNDO aside): what must not wait behind
  // the mmap lock the injected mmap takes (a held capture's smaps walk) may start now.
  opts.afterInjected?.();
  captureChannels(pid, state.fds, warnings);
  capturePtys(pid, state.fds, warnings, opts.ptySlavesHeld);
  markSharedDescriptions(pid, state.fds);
  markMqueues(pid, state.fds);
  captureGhostFiles(pid, state.fds, opts.ghostLimit ?? DEFAULT_GHOST_LIMIT, warnings);
  captureMemfdSeals(pid, state.fds, warnings);
  captureEpollSources(pid, state.fds);
  captureInotifyQueues(pid, state.fds, warnings);
  for (const [tid, sig] of t.deferredSignals) warnings.push(`thread ${tid}: signal ${sig} arrived during the freeze; it was delivered after the checkpoint, not saved in it`);
  if (!opts.deferInherited) readInherited(state, pid);
  // Last: it changes the process (its undo records are applied), which only a --kill checkpoint may.
  if (opts.semUndo) captureSemUndo(t, state);
  return state;
}

/**
 * Runs the /proc readers captureFrozenState uses on the still-running process and drops the
 * results: a one-shot engine (the CLI) would otherwise compile and warm this code while the
 * target is frozen. Measured on a python3 target, one fresh engine process per checkpoint, 5
 * alternating runs each: frozen 16.0-40.0 ms (median 16.8) with this, 17.9-34.6 (median 18.7)
 * without; a warm engine needs 8.6-8.8 ms for the same target.
 */
export function warmFrozenPath(pid: number): void {
  safe(() => {
    readStat(pid);
    readStatus(pid);
    readFds(pid);
    readLimits(pid);
    readAuxv(pid);
    readCmdline(pid);
    readEnviron(pid);
    readTimers(pid);
    readlinkSync(`/proc/${pid}/cwd`);
  }, undefined);
}

/** The parts a fork child shares with the target at the fork; `src` is the target or its snapshot child. */
export function captureInherited(state: ProcessState, src: Tracee): void {
  runProbes(src, src.pid, inheritedProbes(state, src));
  readInherited(state, src.pid);
}

/** Handlers and brk: injected calls, run in a batch by the caller. */
function inheritedProbes(state: ProcessState, src: Tracee): Probe[] {
  state.sigactions = [];
  return [sigactionsProbe(src.pid, state.sigactions), brkProbe(src.pid, (brk) => { state.mm.brk = brk; })];
}

/** What /proc tells of the inherited parts. */
function readInherited(state: ProcessState, pid: number): void {
  const exe = safe(() => readlinkSync(`/proc/${pid}/exe`), '');
  state.exe = exe.replace(/ \(deleted\)$/, '');
  if (exe.endsWith(' (deleted)')) {
    state.exeDeleted = true;
    state.warnings.push(`the executable ${state.exe} was deleted: it comes back from the bytes saved with its mapping (within the ghost-file limit)`);
  }
  state.cmdline = safe(() => readCmdline(pid), []);
  const env = safe(() => readEnviron(pid), undefined);
  if (env) state.environ = env;
  state.cwd = safe(() => readlinkSync(`/proc/${pid}/cwd`), '/');
  state.root = safe(() => readlinkSync(`/proc/${pid}/root`), '/');
  state.personality = safe(() => parseInt(readFileSync(`/proc/${pid}/personality`, 'utf8').trim(), 16), 0);
  state.rlimits = readLimits(pid);
  state.auxv = readAuxv(pid);
  try {
    const st = statSync(`/proc/${pid}/exe`, { bigint: true });
    state.exeFile = { dev: Number(st.dev), inode: Number(st.ino), size: Number(st.size), mtimeNs: st.mtimeNs.toString() };
  } catch {
    // not readable
  }
}

/** Mappings and the vdso fingerprint; read from `memPid` (the snapshot child or the frozen target). */
export function captureMappings(state: ProcessState, memPid: number, read: (addr: bigint, buf: Buffer) => number): void {
  state.mappings = readMappings(memPid);
  const vdso = state.mappings.find((m) => m.kind === 'vdso');
  if (vdso) {
    const buf = Buffer.alloc(Number(vdso.end - vdso.start));
    const n = read(vdso.start, buf);
    state.kernel.vdsoSize = buf.length;
    if (n === buf.length) state.kernel.vdsoSha256 = createHash('sha256').update(buf).digest('hex');
  }
}

/** The VmFlags of smaps entries by their start, without the "uw" our own write-protect registration adds. */
export function vmFlagsByStart(smaps: readonly MapEntry[]): Map<bigint, string[]> {
  const flags = new Map<bigint, string[]>();
  for (const e of smaps) flags.set(e.start, e.vmFlags.filter((f) => f !== 'uw'));
  return flags;
}

/** VmFlags from smaps entries onto the mappings of the same start (vmFlagsByStart). */
export function applyVmFlags(mappings: MappingState[], smaps: MapEntry[]): void {
  const flags = vmFlagsByStart(smaps);
  for (const m of mappings) m.vmFlags = flags.get(m.start) ?? [];
}

/**
 * For mappings listed while frozen (uffd-wp path): VmFlags from smaps (read after the resume, or
 * given: smaps-ahead.ts read while a held process's pages were copied; smaps walks page tables
 * and is too slow to read while frozen on this thread alone), the backing files' stat, and the
 * vdso fingerprint. 'later': the caller applies the VmFlags itself (applyVmFlags) once its
 * smaps read is done, and until then copies only what mayBeDeviceMemory allows.
 */
export function fillMappingDetails(pid: number, mappings: MappingState[], read: (addr: bigint, buf: Buffer) => number, state: ProcessState, smaps: MapEntry[] | 'later' = readSmaps(pid)): void {
  if (smaps !== 'later') applyVmFlags(mappings, smaps);
  for (const m of mappings) addFileStat(pid, m);
  markSysvMappings(mappings);
  const vdso = mappings.find((m) => m.kind === 'vdso');
  if (vdso) {
    const buf = Buffer.alloc(Number(vdso.end - vdso.start));
    const n = read(vdso.start, buf);
    state.kernel.vdsoSize = buf.length;
    if (n === buf.length) state.kernel.vdsoSha256 = createHash('sha256').update(buf).digest('hex');
  }
}
