/**
 * What a checkpoint knows about a process besides its page contents: written by capture/,
 * read by restore/ and the core-file writer, stored by store/ as an opaque JSON document
 * (bigints are encoded as decimal strings by `encodeState`/`decodeState`).
 *
 * Owners: capture/ fills it, restore/ consumes it. Add fields as new kinds of state are captured
 * (one small module per resource, both halves); never remove or repurpose a field, because old
 * checkpoints on users' disks keep the old shape. Bump STATE_VERSION on any incompatible change.
 */
import type { TimerClock } from './timer-clock';
import type { SemUndo } from './sysv-sem';
import type { OwnNamespaces } from './namespaces';
export const STATE_VERSION = 1;

export type MappingKind =
  | 'anon' // private anonymous
  | 'shared-anon' // MAP_SHARED anonymous (incl. /dev/zero, memfd when deleted)
  | 'file-private' // private file-backed (text, data, rodata of ELF objects...)
  | 'file-shared' // MAP_SHARED file-backed
  | 'heap'
  | 'stack'
  | 'vdso'
  | 'vvar'
  | 'vvar_vclock'
  | 'vsyscall'
  | 'other-special'; // any other [name] the kernel invents

export interface MappingState {
  start: bigint;
  end: bigint; // exclusive
  /** 'r'|'-', 'w'|'-', 'x'|'-', 'p'|'s' as in /proc/PID/maps. */
  perms: string;
  offset: bigint;
  /** major:minor as in /proc/PID/maps, e.g. "fd:01". */
  dev: string;
  inode: number;
  /** Path or special name from maps ("" for anonymous); " (deleted)" suffix stripped into `deleted`. */
  path: string;
  deleted: boolean;
  kind: MappingKind;
  /** VmFlags from smaps (e.g. ["rd","wr","mr","mw","me","gd","ac"]). */
  vmFlags: string[];
  /**
   * System V shared memory: whether the segment was marked for removal (IPC_RMID: gone with its
   * last attach, so restore recreates it as shared memory of the process's own). Absent in older
   * checkpoints, which were restored that way too.
   */
  sysv?: { removed: boolean };
  /** A private mapping of a file deleted at capture: its bytes (capture/ghost-files.ts captureMappedGhosts), to recreate it. */
  ghost?: GhostInfo;
  /** For file-backed mappings: what the file looked like at capture, so restore can refuse a changed file. */
  file?: { size: number; mtimeNs: string; ctimeNs?: string; sha256?: string };
}

export interface ThreadState {
  tid: number;
  /** struct user_regs_struct as 27 u64 in kernel order (r15 .. gs), incl. fs_base/gs_base. */
  regs: bigint[];
  /** Raw NT_X86_XSTATE area (base64), sized by the kernel. */
  xstate: string;
  /** NT_PRFPREG fallback (base64) when xstate is unavailable. */
  fpregs?: string;
  sigmask: bigint;
  /** Thread-directed pending signals mask. */
  sigpending: bigint;
  /**
   * The thread's private signal queue (PTRACE_PEEKSIGINFO), oldest first: raw 128-byte siginfo_t
   * records in base64, only of signals in `sigpending`. A pending signal the kernel kept without a
   * record has none. Absent in checkpoints taken before queues were kept.
   */
  sigqueue?: string[];
  altstack?: { sp: bigint; flags: number; size: bigint };
  rseq?: { address: bigint; length: number; flags: number; signature: number };
  clearChildTid?: bigint;
  robustList?: { head: bigint; length: number };
  /** Syscall interrupted by the freeze (orig_rax), or -1. */
  inSyscall: number;
  /** The thread's own name (/proc/PID/task/TID/comm); absent in checkpoints taken before it was kept. */
  comm?: string;
  /** Capability sets (/proc/PID/task/TID/status Cap*); absent in checkpoints taken before they were kept. */
  caps?: { inheritable: bigint; permitted: bigint; effective: bigint; bounding: bigint; ambient: bigint };
  /** prctl(PR_SET_NO_NEW_PRIVS) was set. */
  noNewPrivs?: boolean;
  /** Seccomp mode (status "Seccomp:"): 0 none, 1 strict, 2 filter. */
  seccomp?: number;
  /** Scheduling and per-thread prctl state (capture/sched.ts); absent in checkpoints taken before it was kept. */
  sched?: ThreadSched;
}

/** sched_getattr(2) fields, CPU affinity, I/O priority, timer slack and parent-death signal of one thread. */
export interface ThreadSched {
  policy: number;
  /** SCHED_FLAG_* (only RESET_ON_FORK is given back). */
  flags: bigint;
  nice: number;
  priority: number;
  /** SCHED_DEADLINE parameters, ns. */
  runtime: bigint;
  deadline: bigint;
  period: bigint;
  /**
   * sched_getaffinity mask, hex, lowest CPU in the last digit (as /proc's Cpus_allowed without
   * commas); '' when it held every CPU online at checkpoint time (not pinned: any CPU will do).
   */
  affinity: string;
  /** ioprio_get value: class << 13 | data (0: none set). */
  ioprio: number;
  timerSlackNs: bigint;
  /** PR_SET_PDEATHSIG signal, 0 for none. */
  pdeathsig: number;
}

/** Process-wide prctl state and the OOM adjustment (capture/sched.ts). */
export interface ProcessControls {
  childSubreaper: boolean;
  /** PR_GET_DUMPABLE: 0, 1 or 2. */
  dumpable: number;
  thpDisable: boolean;
  oomScoreAdj: number;
}

export interface SignalHandlerState {
  signo: number;
  handler: bigint;
  flags: bigint;
  restorer: bigint;
  mask: bigint;
}

export type FdKind =
  | 'file' | 'deleted-file' | 'dir' | 'pipe' | 'fifo' | 'socket' | 'tty' | 'chr' | 'blk'
  | 'eventfd' | 'timerfd' | 'signalfd' | 'epoll' | 'inotify' | 'memfd' | 'pidfd' | 'anon-other';

export interface FdState {
  fd: number;
  kind: FdKind;
  /** readlink(/proc/PID/fd/N). */
  target: string;
  /** open flags from fdinfo (octal parsed). */
  flags: number;
  pos: bigint;
  cloexec: boolean;
  /** Stat of the open file where it has one. */
  dev?: number;
  inode?: number;
  size?: number;
  mode?: number;
  /** Kind-specific fields from fdinfo (eventfd count, timerfd settings, signalfd mask, epoll items, inotify watches...). */
  info?: Record<string, unknown>;
  /** For a deleted regular file: where its saved contents are (store blob key), if saved. */
  contentsRef?: string;
  /** A lower fd that holds the same open file description (kcmp KCMP_FILE): restore dups it. Absent in older checkpoints. */
  sharesWith?: number;
}

/**
 * A deleted open file's saved contents (FdState.info.ghost, capture/ghost-files.ts): size and hash
 * always; data (base64) on the lowest fd of the inode; skippedAbove when it was above the limit.
 */
export interface GhostInfo {
  size: number;
  mode: number;
  sha256?: string;
  data?: string;
  /** The limit in force at capture, when the file was above it (its bytes were not saved). */
  skippedAbove?: number;
  /** Why the bytes could not be read, if they could not. */
  error?: string;
}

/** The inode in a socket descriptor's "socket:[INODE]" link, 0 for anything else. */
export function socketInode(f: Pick<FdState, 'target'>): number {
  return Number(/^socket:\[(\d+)\]$/.exec(f.target)?.[1] ?? 0);
}

export interface TimerState {
  itimers?: { which: 'real' | 'virtual' | 'prof'; intervalUs: bigint; valueUs: bigint }[];
  posix?: { id: number; clock: number; signo: number; notify: string; sigevValue: bigint; intervalNs: bigint; valueNs: bigint; overrun: number }[];
  /** When the timers (and timerfds) were read; absent in older checkpoints. */
  clock?: TimerClock;
}

export interface ProcessState {
  version: number;
  pid: number;
  /** Field 22 of /proc/PID/stat (clock ticks after boot): with pid, the identity of the process. */
  startTime: string;
  ppid: number;
  pgid: number;
  sid: number;
  uid: number;
  gid: number;
  /** Real, effective, saved and fs uids and gids (/proc status). Absent in older checkpoints. */
  ids?: { uid: number[]; gid: number[] };
  comm: string;
  exe: string;
  /** Stat of the executable at capture. */
  exeFile?: { dev: number; inode: number; size: number; mtimeNs: string };
  /** Namespaces it ran in that were not the engine's (absent: all the engine's, or an older checkpoint). */
  namespaces?: OwnNamespaces;
  /** The executable was deleted while the program ran (an upgrade removed it): it comes back from its mapping's saved bytes. */
  exeDeleted?: boolean;
  cmdline: string[];
  environ?: string[];
  cwd: string;
  root: string;
  umask: number;
  personality: number;
  /** Absent in checkpoints taken before they were kept. */
  controls?: ProcessControls;
  /** mlockall(MCL_FUTURE) in force (with MCL_ONFAULT: 'onfault'); absent when not, or in older checkpoints. */
  mlockFuture?: 'lock' | 'onfault';
  /** SEM_UNDO records, measured in `--kill` checkpoints (capture/sem-undo.ts); taken again at restore. */
  semUndo?: SemUndo[];
  rlimits: { resource: number; name: string; cur: bigint; max: bigint }[];
  /** /proc/PID/stat fields 26..52 that PR_SET_MM_MAP needs, plus brk from an injected brk(0). */
  mm: {
    startCode: bigint; endCode: bigint; startData: bigint; endData: bigint;
    startBrk: bigint; brk: bigint; startStack: bigint;
    argStart: bigint; argEnd: bigint; envStart: bigint; envEnd: bigint;
  };
  /** Raw auxv (pairs of u64). */
  auxv: bigint[];
  mappings: MappingState[];
  threads: ThreadState[];
  sigactions: SignalHandlerState[];
  /** Process-wide (shared) pending signals. */
  sharedPending: bigint;
  /** The process-wide signal queue, as ThreadState.sigqueue for `sharedPending`. */
  sharedQueue?: string[];
  fds: FdState[];
  timers: TimerState;
  /** Kernel that took it (uname -r + vdso fingerprint) so restore can check vdso compatibility. */
  kernel: { release: string; vdsoSha256?: string; vdsoSize?: number };
  /** Free-form notes from capture about things it saw but could not capture. */
  warnings: string[];
  /** Stopped by a signal (SIGSTOP, SIGTSTP...: state T) when checkpointed; a restore leaves it stopped. */
  stopped?: boolean;
  /**
   * Tree checkpoints: children of this process that had exited and were not reaped yet (zombies),
   * with the wait status their parent's wait() will get. Restore recreates each as a child that
   * exits with that status.
   */
  zombies?: { pid: number; comm: string; status: number }[];
}

/** JSON with bigints as {"$big":"123"} so any reader can decode without knowing the schema. */
export function encodeState(state: ProcessState): string {
  return JSON.stringify(state, (_k, v: unknown) => (typeof v === 'bigint' ? { $big: v.toString() } : v));
}

export function decodeState(json: string): ProcessState {
  return JSON.parse(json, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 1 && typeof (v as { $big?: unknown }).$big === 'string'
      ? BigInt((v as { $big: string }).$big)
      : v,
  ) as ProcessState;
}

/** The private mapping of a deleted executable, whose saved bytes bring the file back (MappingState.ghost). */
export function deletedExeMapping(state: Pick<ProcessState, 'exe' | 'exeFile' | 'mappings'>): MappingState | undefined {
  return state.mappings.find((m) => m.kind === 'file-private' && m.deleted && m.path === state.exe && (!state.exeFile || m.inode === state.exeFile.inode));
}
