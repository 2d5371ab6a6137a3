/**
 * Tree checkpoints: `checkpointTree(store, pid, opts)` saves a process and all its descendants as
 * one checkpoint of one instant. Every member is frozen (parent before its children are listed,
 * so none can fork unseen) before any is read, and all stay frozen until every one is read (until
 * the commit for 'kill' and 'hold'): a pipe's bytes, a shared file offset and the parent/child
 * links are then one consistent picture. Before that freeze each member's private memory is read
 * while the tree runs (pre-copy, tree-live.ts), so the freeze reads only what it wrote since. Each
 * member is stored as a per-process checkpoint of its own target (incrementals work per process);
 * the store commits them in one segment and one transaction (store.beginTree).
 * Zombie children are recorded in their parent's state (their wait status); pipes between members
 * and socketpairs between members are marked (info.treePipe, info.treeSocket) with their waiting
 * bytes saved once.
 * Refused, with nothing saved and every member released: a member already traced by someone else,
 * in another PID namespace, or sharing its parent's memory (a vfork child whose parent waits).
 */
import { readlinkSync, readFileSync } from 'node:fs';
import { StasisError } from '../../../shared/errors';
import { PAGE_SIZE, type BeginOptions, type CheckpointWriter, type Store, type TreeWriter } from '../store/api';
import { socketInode, type FdState, type ProcessState } from '../state/process-state';
import { probeKernelFeatures, syscall, closeFd, SYS, vmRead } from '../native';
import { freeze, checkTraceable, readBasics, Tracee } from '../tracer';
import { childProcesses, readCmdline, readStat, unixSockets } from '../proc';
import { captureFrozenState, captureMappings } from './state';
import { putBackSemUndo } from './sem-undo';
import { captureMappedGhosts, DEFAULT_GHOST_LIMIT } from './ghost-files';
import { copyPages } from './pages';
import { unreadablePrivate } from './mappings';
import { scanAtFreeze, copyFrozen, readFrozenCopy, applyFrozenCopy, rebase, keepRestartedCalls, closePreCopy, type PreCopy } from './precopy';
import { keepTracker } from './tracking';
import { abandonLive, dropTreeTrackers, memberKey, sameMembers, startLiveTree, treeCancelled, type LiveMember, type LiveTree } from './tree-live';
import { latestRestarts, putBackRestartedCalls, type RestartedCalls } from './restarts';
import { saveQueue, savePipeBytes } from './channels';
import { InFlight } from './socket-queue';
import { inFlightFds } from '../state/socket-queue';
import { markTreePtys, ptySlavesHeld } from './ptys';
import type { CheckpointOptions, HeldProcess } from './index';
import { sleepMs } from '../sleep-sync';

const NR_KCMP = 312;
const KCMP_FILE = 0n;
const KCMP_VM = 1n;
/** Kinds whose open file description restore can open once and hand to several processes. */
const SHAREABLE_ACROSS = new Set<FdState['kind']>(['file', 'dir', 'chr', 'blk', 'tty', 'pipe']);

export interface TreeMemberResult {
  pid: number; id: number; comm: string; parentPid: number | null; zombies: number[];
  /** 'pre-copy': its private memory was read while it ran, only what it wrote since at the freeze (tree-live.ts). */
  freeze: 'pre-copy' | 'all-threads';
  /** Pages read while the tree was frozen (the memory's share of the downtime). */
  frozenPages: number;
}

export interface TreeCheckpointResult {
  /** The tree's id: the root process's checkpoint. */
  id: number;
  pid: number;
  members: TreeMemberResult[];
  mode: 'full' | 'incremental';
  frozenMs: number;
  durationMs: number;
  pagesScanned: number;
  pagesWritten: number;
  bytesWritten: number;
  killed: boolean;
  warnings: string[];
  /** Mode 'hold' only: every member, still frozen. Call exactly one of them (resume or kill applies to all). */
  held?: HeldProcess;
}

interface Member { pid: number; parent: number | null; t: Tracee; state?: ProcessState; stoppedBefore: boolean }

function pidNs(pid: number): string {
  try { return readlinkSync(`/proc/${pid}/ns/pid`); } catch { return ''; }
}

/** Whether child shares parent's address space (CLONE_VM without CLONE_THREAD: a vfork child, while its parent waits). */
function sharesMemory(parent: number, child: number): boolean {
  try {
    return syscall(NR_KCMP, [BigInt(parent), BigInt(child), KCMP_VM, 0n, 0n], 'kcmp') === 0n;
  } catch {
    return false;
  }
}

function refuse(msg: string): never {
  throw new StasisError('UNSUPPORTED', `${msg} Nothing was saved; every process was left running.`);
}

/**
 * Freezes pid, then each child of every frozen member (a frozen process cannot fork, so when a
 * member's children are listed after its freeze, the list is final). Children that exited are zombies.
 */
function freezeTree(pid: number, timeoutMs: number | undefined, zombies: Map<number, { pid: number; comm: string; status: number }[]>): Member[] {
  const ns = pidNs(pid);
  const rootBasics = readBasics(pid);
  const members: Member[] = [];
  try {
    members.push({ pid, parent: null, t: freeze(pid, { skipChecks: true, timeoutMs }), stoppedBefore: rootBasics?.state === 'T' });
    for (let i = 0; i < members.length; i++) {
      const m = members[i]!;
      for (const k of childProcesses(m.pid, m.t.tids)) {
        const b = readBasics(k.pid);
        if (!b) continue; // reaped meanwhile
        const zombie = (comm: string): void => {
          let status = 0;
          try { status = readStat(k.pid).exitCode; } catch { /* reaped meanwhile */ }
          zombies.set(m.pid, [...(zombies.get(m.pid) ?? []), { pid: k.pid, comm, status }]);
        };
        if (b.state === 'Z' || b.state === 'X') {
          zombie(b.comm);
          continue;
        }
        if (b.tracerPid !== 0) {
          let by = '';
          try { by = ` (${readFileSync(`/proc/${b.tracerPid}/comm`, 'utf8').trim()})`; } catch { /* gone */ }
          refuse(`Process ${k.pid} (${b.comm}), a child of ${m.pid}, is traced by process ${b.tracerPid}${by}: a tree checkpoint needs to trace every process of the tree. Detach the debugger, or checkpoint ${pid} alone with --no-tree.`);
        }
        if (pidNs(k.pid) !== ns) refuse(`Process ${k.pid} (${b.comm}), a descendant of ${pid}, runs in another PID namespace (a container or sandbox): its PIDs cannot be rebuilt. Checkpoint ${pid} alone with --no-tree (its children are then left out).`);
        if (sharesMemory(m.pid, k.pid)) refuse(`Process ${k.pid} (${b.comm}) is a vfork child of ${m.pid} that has not called exec yet (the parent waits for it, both share one address space). Try again in a moment, or checkpoint the parent alone with --no-tree.`);
        const kt = freezeChild(k.pid, timeoutMs);
        if (kt) {
          members.push({ pid: k.pid, parent: m.pid, t: kt, stoppedBefore: b.state === 'T' });
          continue;
        }
        // It exited between the listing and its freeze: its frozen parent cannot reap it, so it
        // is a zombie now (or gone, where the parent lets the kernel reap its children).
        const z = readBasics(k.pid);
        if (z && (z.state === 'Z' || z.state === 'X')) zombie(z.comm);
      }
    }
    return members;
  } catch (e) {
    for (const m of members) m.t.release();
    throw e;
  }
}

/** The frozen child, or null when it exited before it could be frozen. */
function freezeChild(pid: number, timeoutMs: number | undefined): Tracee | null {
  try {
    return freeze(pid, { skipChecks: true, timeoutMs });
  } catch (e) {
    if (e instanceof StasisError && e.code === 'PROCESS_GONE') return null;
    // The kernel refuses to attach to a task that is exiting (EPERM): it is a zombie a moment later.
    if (e instanceof StasisError && e.code === 'PERMISSION_DENIED' && becomesZombie(pid)) return null;
    throw e;
  }
}

function becomesZombie(pid: number): boolean {
  const end = performance.now() + 100;
  for (;;) {
    const b = readBasics(pid);
    if (!b || b.state === 'Z' || b.state === 'X') return true;
    if (performance.now() > end) return false;
    sleepMs(2);
  }
}

const isReader = (f: FdState): boolean => (f.flags & 3) !== 1;
const isWriter = (f: FdState): boolean => (f.flags & 3) !== 0;

/**
 * Pipes with a read end and a write end among the members, held by more than one member: marked
 * info.treePipe on every end (restore recreates them in the root before forking), their waiting
 * bytes saved once (unless capture of one member already saved them as an internal pipe).
 */
function markTreePipes(members: Member[], warnings: string[]): number {
  const ends = new Map<string, { pid: number; f: FdState }[]>();
  for (const m of members) for (const f of m.state!.fds) if (f.kind === 'pipe') ends.set(f.target, [...(ends.get(f.target) ?? []), { pid: m.pid, f }]);
  let n = 0;
  for (const list of ends.values()) {
    if (new Set(list.map((e) => e.pid)).size < 2 || !list.some((e) => isReader(e.f)) || !list.some((e) => isWriter(e.f))) continue;
    n++;
    for (const e of list) e.f.info = { ...(e.f.info ?? {}), treePipe: true };
    if (list.some((e) => typeof e.f.info?.pipeData === 'string')) continue;
    const r = list.find((e) => isReader(e.f))!;
    let pidfd = -1;
    try {
      pidfd = Number(syscall(SYS.pidfd_open, [BigInt(r.pid), 0n], 'pidfd_open'));
      savePipeBytes(pidfd, r.f, warnings);
    } catch (e) {
      warnings.push(`${r.f.target} between processes: the bytes waiting in it were not saved (${(e as Error).message})`);
    } finally {
      if (pidfd >= 0) closeFd(pidfd);
    }
  }
  return n;
}

/**
 * UNIX socketpairs that join members (an end in one process, its peer in another, or one end held
 * by several): every descriptor of either end is marked info.treeSocket = the pair's key, with
 * unixPeer and unixType as for a process's own pairs, and what waits to be read from each end is
 * saved once (info.socketData on its first descriptor). Restore makes the pair in the root before
 * forking (restore/fds.ts parkTreeSockets), so each holder inherits its end.
 */
function markTreeSockets(members: Member[], warnings: string[]): number {
  const holders = new Map<number, { pid: number; f: FdState }[]>();
  for (const m of members) {
    for (const f of m.state!.fds) {
      const ino = f.kind === 'socket' ? socketInode(f) : 0;
      if (ino !== 0) holders.set(ino, [...(holders.get(ino) ?? []), { pid: m.pid, f }]);
    }
  }
  if (holders.size < 2) return 0;
  const diag = unixSockets();
  let pairs = 0;
  for (const [ino, list] of holders) {
    const d = diag.get(ino);
    if (!d || d.peer === 0 || ino > d.peer) continue; // each pair once, from its lower inode
    const peers = holders.get(d.peer);
    if (!peers) continue;
    if (new Set([...list, ...peers].map((h) => h.pid)).size < 2) continue; // a process's own pair
    pairs++;
    const key = `${ino}-${d.peer}`;
    for (const [side, other, hs] of [[ino, d.peer, list], [d.peer, ino, peers]] as const) {
      for (const h of hs) h.f.info = { ...(h.f.info ?? {}), treeSocket: key, unixPeer: other, unixType: d.type };
      const first = hs[0]!;
      const saved = first.f.info ?? {};
      if (typeof saved.socketData === 'string' || saved.socketQueue !== undefined || saved.queueRefused !== undefined) continue; // saved by the member's own capture
      const peer = (side === ino ? peers : list)[0] ?? null;
      const pidfds = new Map<number, number>();
      const mine = members.find((m) => m.pid === first.pid)!;
      const flight = new InFlight(first.pid, mine.state!.fds, members.filter((m) => m !== mine).map((m) => ({ pid: m.pid, fds: m.state!.fds })));
      const pidOf = new Map<FdState, number>([[first.f, first.pid], ...(peer ? [[peer.f, peer.pid] as const] : [])]);
      const take = (x: FdState): number => {
        const copy = flight.copyOf(x);
        if (copy !== undefined) return copy;
        const pid = pidOf.get(x)!;
        if (!pidfds.has(pid)) pidfds.set(pid, Number(syscall(SYS.pidfd_open, [BigInt(pid), 0n], 'pidfd_open')));
        return Number(syscall(SYS.pidfd_getfd, [BigInt(pidfds.get(pid)!), BigInt(x.fd), 0n], `pidfd_getfd of fd ${x.fd} of ${pid}`));
      };
      try {
        saveQueue(take, first.f, peer?.f ?? null, d.type, warnings, flight, null);
      } catch (e) {
        warnings.push(`socket:[${side}] between processes: the bytes waiting in it were not saved (${(e as Error).message})`);
      } finally {
        for (const fd of pidfds.values()) closeFd(fd);
        flight.close();
      }
    }
  }
  markFlightHeldElsewhere(members);
  return pairs;
}

/**
 * Descriptors in flight in a member's own socketpairs were compared (kcmp) with that member's
 * descriptors only, and the copies are closed by now: one whose file another member holds as well
 * may be one open file with it, which the restore would split in two. Marked info.sharedWith =
 * "PID:FD" (the pre-flight refuses it, restore/queue-plan.ts), erring on the side of refusing.
 */
function markFlightHeldElsewhere(members: Member[]): void {
  for (const m of members) {
    for (const x of inFlightFds(m.state!.fds)) {
      if (x.info?.treeChecked === true || x.kind === 'pipe' || x.kind === 'socket') continue;
      for (const o of members) {
        const g = o === m ? undefined : o.state!.fds.find((y) => y.target === x.target && y.dev === x.dev && y.inode === x.inode);
        if (g) { x.info = { ...(x.info ?? {}), sharedWith: `${o.pid}:${g.fd}` }; break; }
      }
    }
  }
}

function sameFile(a: number, fa: number, b: number, fb: number): boolean {
  try {
    return syscall(NR_KCMP, [BigInt(a), BigInt(b), KCMP_FILE, BigInt(fa), BigInt(fb)], 'kcmp') === 0n;
  } catch {
    return false;
  }
}

/**
 * Descriptors of different members that hold one open file description (inherited through fork:
 * a shell's `> out` shared by a subshell and its commands, a log both write to): kcmp(KCMP_FILE)
 * across processes, among fds with the same link, inode and offset. Each such group gets
 * info.treeShared = "PID:FD" of its first holder (parents come first), so restore opens the
 * description once in the root and every holder keeps sharing its offset and status flags.
 * Pipes between members are handled whole by markTreePipes.
 */
function markTreeShared(members: Member[]): number {
  // Sockets made again too (a pre-forking server's listening socket): restore makes them once in the root.
  const remade = (f: FdState): boolean => f.kind === 'socket' && (f.info?.socket as { detail?: unknown } | undefined)?.detail !== undefined;
  const all = members.flatMap((m) => m.state!.fds.filter((f) => (SHAREABLE_ACROSS.has(f.kind) || remade(f)) && f.info?.treePipe !== true).map((f) => ({ pid: m.pid, f })));
  let groups = 0;
  for (let i = 0; i < all.length; i++) {
    const a = all[i]!;
    if (typeof a.f.info?.treeShared === 'string') continue;
    const key = `${a.pid}:${a.f.fd}`;
    let found = false;
    for (let j = i + 1; j < all.length; j++) {
      const b = all[j]!;
      if (b.pid === a.pid || typeof b.f.info?.treeShared === 'string') continue;
      if (b.f.target !== a.f.target || b.f.inode !== a.f.inode || b.f.pos !== a.f.pos || !sameFile(a.pid, a.f.fd, b.pid, b.f.fd)) continue;
      b.f.info = { ...(b.f.info ?? {}), treeShared: key };
      found = true;
    }
    if (!found) continue;
    groups++;
    a.f.info = { ...(a.f.info ?? {}), treeShared: key };
  }
  // Each holder's own dups of it (sharesWith: a lower fd of the same process) belong to it too.
  for (const m of members) {
    for (const f of m.state!.fds) {
      if (typeof f.info?.treeShared === 'string' || f.sharesWith === undefined) continue;
      const src = m.state!.fds.find((x) => x.fd === f.sharesWith);
      if (typeof src?.info?.treeShared === 'string') f.info = { ...(f.info ?? {}), treeShared: src.info.treeShared };
    }
  }
  return groups;
}

/**
 * Pre-copy for a tree (tree-live.ts) where it can work: the kernel has uffd-wp async and
 * PAGEMAP_SCAN (and no soft-dirty, which plays with the same bits), and the tree runs on after
 * the checkpoint ('kill' keeps everyone frozen throughout: no downtime to save).
 */
function treePreCopy(opts: CheckpointOptions): boolean {
  const f = probeKernelFeatures();
  return opts.mode !== 'kill' && opts.snapshot !== 'never' && f.uffdWpAsync && f.pagemapScan && !f.softDirty;
}

/** VmFlags without the "uw" our own registration adds (a member with pre-copy). */
function withoutOurWp(state: ProcessState): void {
  for (const m of state.mappings) m.vmFlags = m.vmFlags.filter((f) => f !== 'uw');
}

export function checkpointTree(store: Store, pid: number, opts: CheckpointOptions = {}): TreeCheckpointResult {
  const t0 = performance.now();
  const cancelled = (): void => {
    if (opts.signal?.aborted) throw treeCancelled(pid);
  };
  const basics = checkTraceable(pid, opts.expectStartTime);
  const features = probeKernelFeatures();
  if (!features.ptrace.usable) throw new StasisError('PERMISSION_DENIED', `ptrace is not usable here: ${features.ptrace.reason ?? 'unknown reason'}.`);
  const targetOf = (p: number, startTime: string, i: number, exe: string): BeginOptions => {
    const target = store.upsertTarget({ pid: p, startTime, exe, cmdline: readCmdline(p), ...(i === 0 && opts.name ? { name: opts.name } : {}) });
    const parent = opts.full ? null : store.latest(target.id);
    return { targetId: target.id, parentId: parent?.id ?? null, mode: parent ? 'incremental' : 'full', dirtyTracking: 'hash', coverage: 'complete', label: i === 0 ? opts.label ?? null : null };
  };
  const exeOf = (p: number): string => {
    try { return readlinkSync(`/proc/${p}/exe`).replace(/ \(deleted\)$/, ''); } catch { return ''; }
  };
  let live: LiveTree | null = null;
  const liveWarnings: string[] = [];
  const briefRestarts = new Map<string, RestartedCalls>();
  if (treePreCopy(opts)) {
    try {
      live = startLiveTree(store, pid, opts, (m, i) => targetOf(m.pid, m.startTime, i, exeOf(m.pid)), briefRestarts);
    } catch (e) {
      if (e instanceof StasisError && e.code === 'CANCELLED') throw e;
      // A member exited while it was read live, most often: the frozen tree decides what it is.
      liveWarnings.push(`the memory could not be read while the tree ran (${(e as Error).message.replace(/\.$/, '')}): every process was read while frozen`);
    }
  } else dropTreeTrackers(store, pid);
  if (opts.signal?.aborted) {
    if (live) abandonLive(live);
    throw treeCancelled(pid);
  }
  const zombies = new Map<number, { pid: number; comm: string; status: number }[]>();
  let members: Member[];
  try {
    members = freezeTree(pid, opts.timeoutMs, zombies);
  } catch (e) {
    if (live) abandonLive(live);
    throw e;
  }
  if (live && !sameMembers(live, members)) {
    // A process forked or exited between the listing and the freeze: its writers do not match the tree.
    abandonLive(live);
    live = null;
    liveWarnings.push('the tree changed while its memory was read live (a process started or exited): every process was read while frozen');
  }
  let tree: TreeWriter | null = live?.tree ?? null;
  let killed = false;
  // Mode 'hold' (a migration's last round): the members stay frozen after the commit until the caller decides.
  let heldMembers: Member[] | null = null;
  const pcs: (PreCopy | null)[] = members.map((_m, i) => live?.members[i]!.pc ?? null);
  try {
    const now = readBasics(pid);
    if (!now || now.startTime !== basics.startTime) throw new StasisError('PROCESS_GONE', `Process ${pid} exited and its PID was reused while Stasis was attaching. Nothing was captured.`);
    const warnings: string[] = [...liveWarnings];
    for (const m of live?.members ?? []) if (m.fallback) warnings.push(`process ${m.pid}: its memory was read while the tree was frozen, not live: ${m.fallback}`);
    const slaves = ptySlavesHeld(members.map((m) => m.pid));
    for (const [i, m] of members.entries()) {
      const state = captureFrozenState(m.t, { ghostLimit: opts.ghostLimit, semUndo: opts.mode === 'kill', ptySlavesHeld: slaves });
      if (m.stoppedBefore) state.stopped = true;
      const z = zombies.get(m.pid);
      if (z?.length) state.zombies = z;
      const pc = pcs[i];
      // The brief freeze that made its userfaultfd may have interrupted a wait (restarts.ts).
      if (pc) keepRestartedCalls(pc, state.threads, live!.members[i]!.parentRestarts);
      captureMappings(state, m.pid, (a, b) => vmRead(m.pid, a, b));
      if (pc) withoutOurWp(state);
      captureMappedGhosts(m.pid, state.mappings, opts.ghostLimit ?? DEFAULT_GHOST_LIMIT, state.warnings);
      for (const w of state.warnings) warnings.push(`process ${m.pid}: ${w}`);
      m.state = state;
    }
    markTreePipes(members, warnings);
    markTreeSockets(members, warnings);
    markTreePtys(members.map((m) => m.state!));
    markTreeShared(members);
    opts.onPhase?.('frozen', { pid });
    cancelled();
    const begins: BeginOptions[] = live?.begins ?? members.map((m, i) => targetOf(m.pid, m.state!.startTime, i, m.state!.exe || exeOf(m.pid)));
    tree ??= store.beginTree(begins);
    const scanned: number[] = [];
    const frozenPages: number[] = [];
    const trusted: boolean[] = [];
    members.forEach((m, i) => {
      const w = tree!.writers[i]!;
      const pc = pcs[i];
      // Read whole at this freeze: the calls an earlier stop turned into restart_syscall (this
      // checkpoint's brief freeze, or the parent checkpoint's) get their call back (restarts.ts).
      // (Read from the store before the freeze where the live phase did; else now.)
      if (!pc) putBackRestartedCalls(m.state!.threads, briefRestarts.get(memberKey(m.pid, m.state!.startTime)) ?? new Map(), live?.members[i]?.parentRestarts ?? latestRestarts(store, begins[i]!.targetId));
      w.setState(m.state!);
      if (!pc) {
        const n = copyPages(w, m.state!.mappings, { memPid: m.pid, sharedPagemapPid: m.pid, useScan: features.pagemapScan, softDirtyOnly: false }).pagesScanned;
        scanned.push(n);
        frozenPages.push(n);
        trusted.push(false);
        return;
      }
      scanned.push(frozenMemory(m, pc, live!.members[i]!, w, opts.mode === 'hold', frozenPages, trusted));
    });
    opts.onPhase?.('commit', { pid });
    cancelled();
    const frozenMs = Math.max(...members.map((m, i) => m.t.elapsedMs() + (pcs[i]?.frozenMs ?? 0)));
    // Everything of the instant is read: a tree that runs on need not wait for the commit's fsync
    // (a failed commit saves nothing, as before). 'kill' and 'hold' keep it until after the commit.
    if (!opts.mode || opts.mode === 'leave-running') for (const m of members) m.t.release();
    const durationMs = performance.now() - t0;
    const infos = tree.commit(members.map((_m, i) => ({ pagesScanned: scanned[i], frozenMs: +frozenMs.toFixed(3), durationMs: +durationMs.toFixed(3) })));
    tree = null;
    // Held: not protected again at the freeze, so of no use to a next checkpoint; closed once the
    // members are killed or resumed. Otherwise kept per member for its next checkpoint (tracking.ts).
    const untracked: PreCopy[] = [];
    pcs.forEach((pc, i) => {
      if (!pc) return;
      if (opts.mode === 'hold') untracked.push(pc);
      else if (trusted[i]) {
        pc.base = infos[i]!.id;
        keepTracker(store.dir, pc);
      } else closePreCopy(pc);
      pcs[i] = null;
    });
    if (opts.mode === 'kill') {
      // Children first: a parent killed first would have them re-parented for an instant.
      for (const m of [...members].reverse()) m.t.release({ kill: true });
      killed = true;
    }
    let held: HeldProcess | undefined;
    if (opts.mode === 'hold') {
      heldMembers = members;
      const closeAll = (): void => { for (const pc of untracked) closePreCopy(pc); };
      held = {
        // From the first member's freeze (the root's): the downtime runs from there, the commit included.
        frozenAt: performance.now() - Math.max(...members.map((m) => m.t.elapsedMs())),
        // Parents first, as an ordinary tree checkpoint releases them.
        resume: () => { closeAll(); for (const m of members) m.t.release(); },
        // Children first: a parent killed first would have them re-parented for an instant.
        kill: () => { for (const m of [...members].reverse()) m.t.release({ kill: true }); closeAll(); },
      };
    }
    return {
      id: infos[0]!.id,
      pid,
      members: members.map((m, i) => ({
        pid: m.pid, id: infos[i]!.id, comm: m.state!.comm, parentPid: m.parent, zombies: (m.state!.zombies ?? []).map((z) => z.pid),
        freeze: live?.members[i]!.pc ? 'pre-copy' as const : 'all-threads' as const, frozenPages: frozenPages[i]!,
      })),
      mode: begins[0]!.mode,
      frozenMs: +frozenMs.toFixed(3),
      durationMs: +(performance.now() - t0).toFixed(3),
      pagesScanned: scanned.reduce((a, b) => a + b, 0),
      pagesWritten: infos.reduce((n, x) => n + x.stats.pagesWritten, 0),
      bytesWritten: infos.reduce((n, x) => n + x.stats.bytesWritten, 0),
      killed,
      warnings,
      ...(held ? { held } : {}),
    };
  } catch (e) {
    heldMembers = null;
    tree?.abort();
    if (e instanceof StasisError) throw e;
    throw new StasisError('INTERNAL', `Tree checkpoint of process ${pid} failed: ${(e as Error).message}. Nothing was saved.`);
  } finally {
    for (const pc of pcs) closePreCopy(pc);
    // Held members are released (or killed) by the caller through result.held.
    if (!heldMembers) {
      for (const m of members) {
        // A --kill capture applied SEM_UNDO records: taken again in a process released alive.
        if (!killed && m.state?.semUndo) putBackSemUndo(m.t, m.state);
        m.t.release();
      }
    }
  }
}

/**
 * A pre-copied member at the common freeze (precopy.ts step 4): what it wrote since the live read,
 * its shared mappings whole (one instant for every member that maps them) and what is not readable
 * through process_vm_readv. Returns the pages scanned; pushes the pages read frozen and whether its
 * userfaultfd may be kept for tracking.
 */
function frozenMemory(m: Member, pc: PreCopy, lm: LiveMember, w: CheckpointWriter, hold: boolean, frozenPages: number[], trusted: boolean[]): number {
  const mappings = m.state!.mappings;
  const fdTargets = m.state!.fds.map((f) => f.target);
  const scan = scanAtFreeze(pc, mappings);
  // Not for a held tree: a second walk of its page tables while frozen, for tracking it never uses.
  if (!hold) rebase(pc, scan, fdTargets);
  const c = copyFrozen(pc, scan, fdTargets, lm.parentPresent);
  readFrozenCopy(pc, c, m.pid);
  const read = c.data.reduce((n, d) => n + d.data.length / PAGE_SIZE, 0);
  applyFrozenCopy(w, c);
  const shared = copyPages(w, mappings.filter((x) => x.perms[3] === 's'), { memPid: m.pid, sharedPagemapPid: m.pid, useScan: true, softDirtyOnly: false });
  const forced = copyPages(w, unreadablePrivate(mappings), { memPid: m.pid, sharedPagemapPid: m.pid, useScan: true, softDirtyOnly: false });
  frozenPages.push(read + shared.pagesScanned + forced.pagesScanned);
  trusted.push(c.trusted);
  return c.pagesScanned + shared.pagesScanned + forced.pagesScanned;
}
