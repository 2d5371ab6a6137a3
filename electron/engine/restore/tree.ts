/**
 * Tree restores: a tree checkpoint (capture/tree.ts) comes back as the same tree of processes.
 * One stub becomes the root (forkAway, same PID when free); every other member is forked FROM its
 * restored parent while both are still bare stubs (clone3 with set_tid = its old PID when free),
 * so getppid() and wait() see the real links. Before a member forks its children it takes its
 * session / process-group leadership (children inherit it, as they did originally); members that
 * joined a group led by another member join it once everyone exists. Pipes between members are
 * made once in the root before any fork, refilled, and inherited by all (restore/fds.ts
 * parkTreePipes); so are pseudo-terminal pairs a member made (restore/ptys.ts), and a session
 * leader takes its terminal again before forking its children. Zombie children are forked too and exit at once with their saved wait status.
 * Then every member runs the same per-process steps as a single restore (rebuild.ts), and all are
 * detached together. Any failure kills every process made so far. Owns only the processes it forks.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { StasisError } from '../../../shared/errors';
import type { Store, TreeWriter } from '../store/api';
import { socketInode, type FdState, type ProcessState } from '../state/process-state';
import { setSigmask } from '../native';
import { preflightState, type PreflightItem, type PreflightResult } from './preflight';
import { buildRestorePlan, parseMaps, type LayoutEntry, type Range, type RestorePlan } from './plan';
import { Remote } from './remote';
import { sealProtections, setUpTrampoline } from './memory';
import { setLeadership } from './fs-state';
import { closeInheritedFds, fillTreePipes, parkSharedFiles, parkTreePipes, parkTreeSockets, reseekSharedFiles, type ParkedFds, type TreeSocketPair } from './fds';
import { killOnFailure, rebuildMemory, rebuildRest, throwIfCancelled, writeChanges, type RebuildContext, type StepFn } from './rebuild';
import { planFd } from './fd-plan';
import { sameLayout } from './same-layout';
import { afterReaping, canTakePid, mayTakePids, pidHolder } from './pid-free';
import type { RedirectOptions } from './fd-plan';
import type { RestoreOptions, RestoreResult, RestoreStepTiming } from './index';
import { parkSharedMemory, treeSharedMemory } from './tree-shm';
import { claimControllingPty, parkTreePtys, ptysOf, restorePtyForeground } from './ptys';
import { NR } from './sysno';
import { progress } from '../progress';

const ALL_BUT_TRAP = ~(1n << 4n) & 0xffffffffffffffffn;
const SIGCHLD = 17;

export interface TreeRestoreMember {
  checkpointId: number;
  originalPid: number;
  pid: number;
  samePid: boolean;
  /** The restored parent's pid (null for the root). */
  parentPid: number | null;
  comm: string;
  /** Exited children recreated as zombies for this member's wait(): their new pids. */
  zombies: number[];
}

export interface TreeRestoreResult extends RestoreResult { members: TreeRestoreMember[] }

interface Node { id: number; state: ProcessState; parent: Node | null; children: Node[] }

/** The members of tree checkpoint #id as a tree, parents first (BFS); refuses an incomplete or inconsistent tree. */
function loadTree(store: Store, id: number): Node[] {
  const info = store.get(id);
  if (!info) throw new StasisError('NOT_FOUND', `There is no checkpoint #${id} in ${store.dir}; list them with \`stasis list\`.`);
  const ids = store.treeMembers(id);
  const root = info.tree?.root ?? id;
  if (!info.tree || ids.length !== info.tree.size || ids[0] !== root) {
    throw new StasisError('PREFLIGHT_FAILED', `Tree checkpoint #${root} has ${ids.length} of its ${info.tree?.size ?? '?'} processes (a damaged store): it cannot be restored. Run \`stasis verify\`; delete it with \`stasis rm ${root}\`.`);
  }
  const nodes = ids.map((m) => ({ id: m, state: store.getState(m), parent: null, children: [] } as Node));
  const byPid = new Map(nodes.map((n) => [n.state.pid, n]));
  const order: Node[] = [nodes[0]!];
  for (const n of nodes.slice(1)) {
    const p = byPid.get(n.state.ppid);
    if (!p || p === n) throw new StasisError('CORRUPT', `Process ${n.state.pid} of tree checkpoint #${root} names parent ${n.state.ppid}, which is not in the checkpoint.`);
    n.parent = p;
    p.children.push(n);
  }
  for (let i = 0; i < order.length; i++) order.push(...order[i]!.children);
  if (order.length !== nodes.length) throw new StasisError('CORRUPT', `The processes of tree checkpoint #${root} do not form one tree (a parent loop).`);
  return order;
}

/**
 * What the fork order cannot rebuild, as pre-flight items: a member whose session is neither its
 * own nor its parent's (its parent called setsid after forking it), and a process group that no
 * member leads and that is not the parent's (its leader exited, or it is outside the tree).
 */
function treeItems(order: Node[], samePid: boolean): PreflightItem[] {
  const pids = new Set(order.map((n) => n.state.pid));
  const sessionProblems: string[] = [];
  const groupNotes: string[] = [];
  for (const n of order.slice(1)) {
    const s = n.state;
    if (s.sid !== s.pid && s.sid !== n.parent!.state.sid) sessionProblems.push(`process ${s.pid} is in session ${s.sid}, its parent ${n.parent!.state.pid} in session ${n.parent!.state.sid}`);
    if (s.pgid !== s.pid && s.pgid !== n.parent!.state.pgid && !pids.has(s.pgid)) groupNotes.push(`process ${s.pid}'s group ${s.pgid} has no leader in the tree: it stays in its parent's group`);
  }
  return [
    { id: 'tree-sessions', label: 'Sessions of the tree', ok: sessionProblems.length === 0,
      reason: sessionProblems.length ? `Sessions cannot be rebuilt by forking: ${sessionProblems.join('; ')}.` : `${order.length} processes; sessions and process groups follow the fork order.${groupNotes.length ? ` Note: ${groupNotes.join('; ')}.` : ''}`,
      fix: sessionProblems.length ? 'Checkpoint the processes separately (--no-tree).' : null },
    pidsItem(order, samePid),
  ];
}

/** Every PID a tree restore must give back: all members' and zombies', unless the root is alone. */
function treePids(order: Node[]): number[] {
  const zombies = order.flatMap((n) => (n.state.zombies ?? []).map((z) => z.pid));
  return order.length > 1 || zombies.length ? [...order.map((n) => n.state.pid), ...zombies] : [];
}

/**
 * Processes of a tree know each other by PID and run on from that memory: a parent by what fork()
 * returned (waitpid(pid), kill(pid)), a child by the parent PID it saved (getppid() == parent).
 * A member or zombie that came back under another PID is one the others can no longer wait for or
 * signal (or worse, a stranger that took the PID gets the signal), so the restore would be
 * silently wrong. Such a restore is refused unless the user asked for new PIDs (--no-pid).
 */
function pidsItem(order: Node[], samePid: boolean): PreflightItem {
  const kept = treePids(order);
  const label = 'PIDs of the tree';
  if (kept.length === 0) return { id: 'tree-pids', label, ok: true, reason: 'A single process: its PID is covered by the process\'s own check.', fix: null };
  if (!samePid) {
    return { id: 'tree-pids', label, ok: true, fix: null,
      reason: `New PIDs were asked for (--no-pid): the ${kept.length} processes get new ones; one that waits for, signals or checks another by its old PID will not find it.` };
  }
  if (!mayTakePids()) {
    return { id: 'tree-pids', label, ok: false,
      reason: `The ${kept.length} processes must get their PIDs back (they know each other by those), and taking a PID needs CAP_CHECKPOINT_RESTORE.`,
      fix: 'Run the restore as root (or with cap_checkpoint_restore), or accept new PIDs with `stasis restore ID --no-pid` if the program never waits for, signals or checks its processes by PID.' };
  }
  const busy = afterReaping(kept);
  if (busy.length === 0) return { id: 'tree-pids', label, ok: true, fix: null, reason: `The ${kept.length} processes get their original PIDs back (${kept.join(', ')}).` };
  return { id: 'tree-pids', label, ok: false,
    reason: `The processes of the tree must get their PIDs back (they know each other by those), but ${busy.map((pid) => `PID ${pid} is taken (${pidHolder(pid)})`).join('; ')}.`,
    fix: 'End the original processes and let them be reaped (a zombie goes once its parent waits for it or exits), then restore again; or accept new PIDs with `stasis restore ID --no-pid` if the program never waits for, signals or checks its processes by PID.' };
}

function redirectFor(store: Store, id: number, opts: RestoreOptions): RedirectOptions {
  return { stdin: opts.stdin, stdout: opts.stdout, stderr: opts.stderr, log: opts.log ?? join(store.dir, 'logs', `restore-${id}.log`) };
}

/** Pre-flight of every member (items prefixed with the process) plus the tree's own items. */
export function preflightTree(store: Store, id: number, opts: RestoreOptions = {}): PreflightResult {
  const order = loadTree(store, id);
  const redirect = redirectFor(store, order[0]!.id, opts);
  const items: PreflightItem[] = [...treeItems(order, opts.samePid !== false)];
  for (const n of order) {
    const pf = preflightState(n.state, redirect);
    for (const it of pf.items) {
      if (it.id === 'pid' && treePids(order).length) continue; // tree-pids decides for all of them
      items.push({ ...it, id: order.length > 1 ? `${it.id}@${n.state.pid}` : it.id, label: `${it.label} (process ${n.state.pid}, ${n.state.comm})`, reason: `Process ${n.state.pid}: ${it.reason}` });
    }
  }
  return { ok: items.every((i) => i.ok), items };
}

/** Pipes with ends in more than one member (capture marked them info.treePipe). */
function treePipes(order: Node[]): { target: string; ends: FdState[] }[] {
  const byPipe = new Map<string, FdState[]>();
  for (const n of order) for (const f of n.state.fds) if (f.kind === 'pipe' && f.info?.treePipe === true) byPipe.set(f.target, [...(byPipe.get(f.target) ?? []), f]);
  return [...byPipe].map(([target, ends]) => ({ target, ends }));
}

/** Socketpairs between members (capture marked every descriptor of either end info.treeSocket). */
function treeSockets(order: Node[]): TreeSocketPair[] {
  const byKey = new Map<string, TreeSocketPair>();
  for (const n of order) {
    for (const f of n.state.fds) {
      const key = f.info?.treeSocket;
      if (f.kind !== 'socket' || typeof key !== 'string') continue;
      const [lo, hi] = key.split('-').map(Number) as [number, number];
      const p = byKey.get(key) ?? { key, type: Number(f.info?.unixType ?? 1), sides: [{ ino: lo, fds: [] }, { ino: hi, fds: [] }] };
      byKey.set(key, p);
      p.sides[socketInode(f) === lo ? 0 : 1].fds.push(f);
    }
  }
  return [...byKey.values()];
}

/** Open file descriptions held by several members (capture marked them info.treeShared = "PID:FD" of the first holder). */
function sharedGroups(order: Node[]): { key: string; first: FdState; holderFds: readonly FdState[] }[] {
  const out: { key: string; first: FdState; holderFds: readonly FdState[] }[] = [];
  for (const n of order) {
    for (const f of n.state.fds) {
      if (f.info?.treeShared === `${n.state.pid}:${f.fd}`) out.push({ key: f.info.treeShared, first: f, holderFds: n.state.fds });
    }
  }
  return out;
}

function waitZombie(pid: number): void {
  const end = Date.now() + 2000;
  while (Date.now() < end) {
    try {
      const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (st.slice(st.lastIndexOf(')') + 2)[0] === 'Z') return;
    } catch {
      return;
    }
  }
}

function startTimeOf(pid: number): string | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch (_e) {
    return null;
  }
}

export function restoreTree(store: Store, id: number, opts: RestoreOptions = {}): TreeRestoreResult {
  const t = new TreeRestore(store, id, opts);
  t.build(true);
  return t.complete(false);
}

/**
 * A tree restore built up to every member's memory and kept there, stopped, while the original
 * tree still runs (the destination of a tree migration): the same steps as restoreTree, in two
 * halves. What is built ahead is what the fork order and the memory need: the stubs, every member
 * forked with its PID, sessions and groups, the objects the members share (pipes empty, socketpairs,
 * pseudo-terminals, shared files, shared memory) parked in all of them, zombies, and each member's
 * memory. What comes from the LAST round is written at finish(): the bytes waiting in the pipes
 * between members, the shared files' offsets, and for each member everything after its memory (fds,
 * signals, timers, threads, registers). A later round whose tree differs in anything built ahead
 * (members, parents, sessions, zombies, shared objects, a socketpair's queue, a member's mappings)
 * is not absorbed: the caller restores that round from scratch instead, never a mixed state.
 */
export interface PreparedTreeRestore {
  /** The tree checkpoint (its root's id) every member was last brought to as a whole; finish() restores it. */
  readonly checkpointId: number;
  readonly pid: number;
  /**
   * Catches up with `next`: a tree checkpoint whose every member is a child of the member's
   * checkpoint here, or one member's checkpoint alone (a migration's member-by-member round; the
   * tree is whole again, and checkpointId moves, only once a tree checkpoint of them all is
   * absorbed). false (nothing changed) when it is neither, or anything built ahead differs.
   */
  absorb(next: number): boolean;
  /** The remaining steps for every member, then all detach together; durationMs and steps start at the last absorb. */
  finish(): TreeRestoreResult;
  /**
   * Writes the restored tree's timeline entry (after finish(), once the caller said it runs).
   * asTree: the tree checkpoint its last round's members were grouped into since (each of its
   * members a child of one absorbed here): the entry then follows that tree.
   */
  record(asTree?: number): void;
  /** Kills every process made. */
  abandon(): void;
  /** Whether its members are exactly these checkpoints (every member of a round absorbed alone): finish() then restores them. */
  holds(ids: readonly number[]): boolean;
}

export function prepareTreeRestore(store: Store, id: number, opts: RestoreOptions = {}): PreparedTreeRestore {
  const t = new TreeRestore(store, id, opts);
  t.build(false);
  return {
    get checkpointId() { return t.rootId; },
    get pid() { return t.rootPid; },
    absorb: (next) => t.absorb(next),
    finish: () => t.complete(true),
    record: (asTree) => t.record(asTree),
    abandon: () => t.kill(),
    holds: (ids) => t.holds(ids),
  };
}

/** One tree restore in two halves (forks and memory; the rest) so a prepared tree can absorb rounds between them. */
class TreeRestore {
  rootId: number;
  private order: Node[];
  private readonly redirect: RedirectOptions;
  private readonly steps: RestoreStepTiming[] = [];
  private readonly prog: ReturnType<typeof progress>;
  private readonly total: number;
  private t0 = performance.now();
  private current = 'start the stub';
  private who: number;
  private readonly remotes = new Map<Node, Remote>();
  private readonly zombies: { parent: Node; r: Remote; status: number }[] = [];
  private readonly plans = new Map<Node, RestorePlan>();
  private readonly stubMaps = new Map<Node, LayoutEntry[]>();
  private parked: ParkedFds = new Map();
  private parkFrom = 3;
  private sealed = false;
  private bytesWritten = 0;
  private writeMs = 0;
  /** What the fork step built from the states (forkShape): a round that differs cannot be absorbed. */
  private shape = '';
  /** Per member, a checkpoint id whose children may also be absorbed: a grouped member's parent (it holds the same state and pages). */
  private readonly alias = new Map<Node, number>();
  private pendingRecord: ((asTree?: number) => void) | null = null;
  /** Every member is at the same checkpoint (built, or a tree absorbed), not between a round's members. */
  private whole = true;
  /** Members absorbed alone since the round's time started: one of them again starts the next round. */
  private readonly absorbedSince = new Set<Node>();

  constructor(private readonly store: Store, id: number, private readonly opts: RestoreOptions) {
    this.order = loadTree(store, id);
    this.rootId = this.order[0]!.id;
    this.redirect = redirectFor(store, this.rootId, opts);
    const pf = preflightTree(store, this.rootId, opts);
    if (!pf.ok) {
      throw new StasisError('PREFLIGHT_FAILED', `Tree checkpoint #${this.rootId} cannot be restored: ${pf.items.filter((i) => !i.ok).map((i) => i.reason).join(' ')}`, { items: pf.items });
    }
    this.prog = progress(opts.onProgress);
    this.total = 4 + this.order.length;
    this.who = this.order[0]!.state.pid;
    this.setAliases();
  }

  get rootPid(): number { return this.remotes.get(this.order[0]!)?.pid ?? 0; }

  private readonly step: StepFn = (name, fn) => {
    this.current = name;
    throwIfCancelled(this.opts.signal, this.rootId);
    this.prog.report({ done: Math.min(this.steps.length, this.total - 1), total: this.total, unit: 'steps', phase: `${name} (process ${this.who})` });
    const s = performance.now();
    const v = fn();
    this.steps.push({ step: this.order.length > 1 ? `${name} (${this.who})` : name, ms: +(performance.now() - s).toFixed(2) });
    return v;
  };

  /** Runs fn; any failure kills every process made so far and names the step. */
  private guarded<T>(fn: () => T): T {
    return killOnFailure(fn, () => this.kill(), () => this.current, (msg) => `Restore of tree checkpoint #${this.rootId} failed at step "${this.current}" (process ${this.who}): ${msg} Every half-built process was killed; nothing was left running.`);
  }

  kill(): void {
    // Children first, so no restored parent runs to see them die.
    for (const z of this.zombies) z.r.kill();
    for (const n of [...this.order].reverse()) this.remotes.get(n)?.kill();
  }

  private ctx(n: Node): RebuildContext {
    return { store: this.store, id: n.id, opts: this.opts, redirect: this.redirect, tree: { parked: this.parked, from: this.parkFrom } };
  }

  /** Every member forked and its memory written; seal false keeps it open to later rounds (absorb). */
  build(seal: boolean): void {
    for (const p of [this.redirect.stdout, this.redirect.stderr, this.redirect.log]) if (p) mkdirSync(dirname(p), { recursive: true });
    const order = this.order;
    this.shape = forkShape(order, this.redirect);
    this.guarded(() => {
      const root = order[0]!;
      const stub = this.step('start the stub', () => Remote.spawnStub([undefined, process.env.XDG_RUNTIME_DIR, this.store.dir]));
      this.remotes.set(root, stub);
      this.stubMaps.set(root, parseMaps(readFileSync(`/proc/${stub.pid}/maps`, 'utf8')));
      const avoid: Range[] = order.slice(1).flatMap((n) => n.state.mappings);
      const rootPlan = this.step('plan', () => buildRestorePlan(root.state, this.stubMaps.get(root)!, { avoid }));
      this.plans.set(root, rootPlan);
      this.step('trampoline', () => {
        setSigmask(stub.pid, ALL_BUT_TRAP);
        setUpTrampoline(stub, rootPlan);
      });
      this.step('fork', () => this.forkAll(stub));
      for (const n of order) {
        this.who = n.state.pid;
        const r = this.remotes.get(n)!;
        if (n !== root) {
          this.stubMaps.set(n, parseMaps(readFileSync(`/proc/${r.pid}/maps`, 'utf8')));
          this.plans.set(n, buildRestorePlan(n.state, this.stubMaps.get(n)!, { trampoline: rootPlan.trampoline }));
        }
        const w = rebuildMemory(this.step, r, this.plans.get(n)!, this.ctx(n), seal);
        this.bytesWritten += w.bytesWritten;
        this.writeMs += w.writeMs;
      }
      this.sealed = seal;
    });
  }

  /** The fork step: the root's own fork, the objects members share parked in it, every member and zombie forked from its parent. */
  private forkAll(stub: Remote): void {
    const order = this.order;
    const opts = this.opts;
    const root = order[0]!;
    const samePid = (pid: number): boolean => opts.samePid !== false && canTakePid(pid);
    // The pre-flight found every child's PID free; one taken since (a race) fails the restore
    // rather than bringing the child back under a PID its parent does not know.
    const pidLost = (pid: number, what: string): StasisError => new StasisError('PREFLIGHT_FAILED',
      `Could not give ${what} its PID back (${existsSync(`/proc/${pid}`) ? `taken by ${pidHolder(pid)}` : 'clone3 refused it'}); the other processes of the tree know it by that PID. Restore again once it is free, or with --no-pid.`);
    const forkMember = (p: Remote, pid: number, what: string): Remote => {
      const keep = opts.samePid !== false;
      const r = p.forkChild(keep ? pid : null);
      if (r) return r;
      throw keep ? pidLost(pid, what) : new StasisError('INTERNAL', `Could not fork ${what}.`);
    };
    this.parkFrom = Math.max(2, ...order.flatMap((n) => n.state.fds.map((f) => f.fd))) + 1;
    const parkFrom = this.parkFrom;
    if (treePids(order).length && opts.samePid !== false) {
      if (!stub.forkAway(root.state.pid)) throw pidLost(root.state.pid, `process ${root.state.pid}`);
    } else if (!(samePid(root.state.pid) && stub.forkAway(root.state.pid))) stub.forkAway(null);
    closeInheritedFds(stub);
    setLeadership(stub, root.state);
    // Empty: the bytes waiting in them are the last round's (fillPipes, at finish).
    const parked = parkTreePipes(stub, treePipes(order), parkFrom);
    this.parked = parked;
    const next = parkTreeSockets(stub, treeSockets(order), parkFrom + parked.size, parked);
    // Pseudo-terminal pairs the members made: inherited by all, before the slaves shared by several are opened from them.
    const ptys = ptysOf(order.map((n) => n.state));
    const afterPtys = parkTreePtys(stub, ptys, next, parked);
    const ptyMasters = new Map(ptys.map((p) => [p.pty.index, parked.get(`pty:${p.pty.index}`)!]));
    claimControllingPty(stub, root.state, ptys, ptyMasters);
    parkSharedFiles(stub, sharedGroups(order), this.redirect, afterPtys, parked);
    parkSharedMemory(stub, treeSharedMemory(order.map((n) => n.state)), Math.max(parkFrom - 1, ...parked.values()) + 1, parked);
    // Parents first: each child is a copy of its restored parent, leadership and pipes included.
    for (const n of order.slice(1)) {
      this.who = n.state.pid;
      const p = this.remotes.get(n.parent!)!;
      const r = forkMember(p, n.state.pid, `process ${n.state.pid}`);
      this.remotes.set(n, r);
      setLeadership(r, n.state);
      // Before its own children are forked: they inherit the controlling terminal.
      claimControllingPty(r, n.state, ptys, ptyMasters);
    }
    // Groups led by another member (a pipeline's second process joins the first one's group).
    const newPid = new Map(order.map((n) => [n.state.pid, this.remotes.get(n)!.pid]));
    for (const n of order.slice(1)) {
      const s = n.state;
      if (s.pgid === s.pid || s.pgid === n.parent!.state.pgid || !newPid.has(s.pgid)) continue;
      this.remotes.get(n)!.call(NR.setpgid, [0n, BigInt(newPid.get(s.pgid)!)], `setpgid (process ${s.pid} joins group ${s.pgid})`);
    }
    for (const n of order) restorePtyForeground(this.remotes.get(n)!, n.state, ptys, ptyMasters, (old) => newPid.get(old));
    // Exited, unreaped children: forked from their parent, then they exit with their old status.
    for (const n of order) {
      for (const z of n.state.zombies ?? []) {
        const p = this.remotes.get(n)!;
        const r = forkMember(p, z.pid, `the exited child ${z.pid} of process ${n.state.pid}`);
        this.zombies.push({ parent: n, r, status: z.status });
        r.exitAs(z.status);
      }
    }
    for (const z of this.zombies) waitZombie(z.r.pid);
    // Their exit left a SIGCHLD pending in the parent (blocked while it is rebuilt): the
    // original had already had it, so it is taken back unless it was pending then too.
    for (const n of new Set(this.zombies.map((z) => z.parent))) {
      if ((n.state.sharedPending >> BigInt(SIGCHLD - 1)) & 1n) continue;
      const r = this.remotes.get(n)!;
      r.resetScratch();
      const set = Buffer.alloc(8);
      set.writeBigUInt64LE(1n << BigInt(SIGCHLD - 1), 0);
      r.raw(NR.rt_sigtimedwait, [r.put(set), 0n, r.reserve(16), 8n]);
    }
  }

  /** Members of a grouped tree have no pages of their own: their parents' children may be absorbed as well. */
  private setAliases(): void {
    this.alias.clear();
    for (const n of this.order) {
      const info = this.store.get(n.id);
      if (info?.parentId != null && info.tree && info.restoredFrom == null && info.stats.pagesChanged === 0) this.alias.set(n, info.parentId);
    }
  }

  holds(ids: readonly number[]): boolean {
    const have = new Set(ids);
    return !this.sealed && have.size === this.order.length && this.order.every((n) => have.has(n.id));
  }

  absorb(next: number): boolean {
    if (this.sealed || this.remotes.size === 0) return false;
    const info = this.store.get(next);
    if (!info) return false;
    if (!info.tree) {
      const n = this.order.find((x) => info.parentId != null && (x.id === info.parentId || this.alias.get(x) === info.parentId));
      return n ? this.absorbInto([{ n, id: next }]) : false;
    }
    let later: Node[];
    try { later = loadTree(this.store, next); } catch { return false; }
    if (later.length !== this.order.length) return false;
    const pairs: { n: Node; id: number }[] = [];
    for (const l of later) {
      const n = this.order.find((x) => x.state.pid === l.state.pid);
      const parent = this.store.get(l.id)?.parentId;
      if (!n || parent == null || (n.id !== parent && this.alias.get(n) !== parent)) return false;
      pairs.push({ n, id: l.id });
    }
    if (!this.absorbInto(pairs)) return false;
    this.rootId = this.order[0]!.id;
    this.setAliases();
    return true;
  }

  /** Writes each pair's changes into its member when nothing built ahead differs; the states and ids move on. */
  private absorbInto(pairs: { n: Node; id: number }[]): boolean {
    const states = new Map(pairs.map((p) => [p.n, this.store.getState(p.id)]));
    const order = this.order.map((n) => ({ ...n, state: states.get(n) ?? n.state }));
    // Parents and children are the same objects again (forkShape walks them).
    const byPid = new Map(order.map((n) => [n.state.pid, n]));
    for (const n of order) {
      n.parent = n.parent ? byPid.get(n.parent.state.pid) ?? null : null;
      n.children = n.children.map((c) => byPid.get(c.state.pid)!);
    }
    if (forkShape(order, this.redirect) !== this.shape) return false;
    const root = this.order[0]!;
    const plans = new Map<Node, RestorePlan>();
    for (const { n } of pairs) {
      const s = states.get(n)!;
      if (preflightState(s, this.redirect).items.some((i) => !i.ok && i.id !== 'pid')) return false;
      const trampoline = this.plans.get(root)!.trampoline;
      const opts = n === root ? { avoid: order.slice(1).flatMap((x) => x.state.mappings), trampoline } : { trampoline };
      const plan = buildRestorePlan(s, this.stubMaps.get(n)!, opts);
      if (!sameLayout(this.plans.get(n)!, plan)) return false;
      plans.set(n, plan);
    }
    const tree = pairs.length === this.order.length;
    const c0 = performance.now();
    // A grouped member (no pages of its own) only moves the id on.
    const changes = new Map(pairs.filter(({ id }) => this.store.get(id)?.stats.pagesChanged !== 0).map(({ n, id }) => [n, this.store.changes(id)]));
    // A shared page absent from one member's round (it dropped its own view: MADV_DONTNEED) may
    // still hold data another member sees, and the tree's shared memory is one object here:
    // zeroing it, as one process's absorb does, would be wrong for the others. From scratch, each
    // member writes what it saw.
    for (const [n, ch] of changes) {
      const steps = plans.get(n)!.steps.filter((x) => x.kind === 'shared-anon' && x.writeContents);
      if (ch.absent.some((a) => steps.some((x) => x.start < a.vaddr + BigInt(a.pages) * 4096n && a.vaddr < x.end))) return false;
    }
    this.guarded(() => {
      // The result's time and steps then cover what remains from this round on (a migration's
      // downtime): from its first member's changes when the round comes member by member.
      // A tree after member rounds is the same round (its members' grouping): its time goes on.
      if (this.whole || (!tree && pairs.some((p) => this.absorbedSince.has(p.n)))) {
        this.t0 = c0;
        this.steps.length = 0;
        this.absorbedSince.clear();
      }
      this.whole = tree;
      if (tree) this.absorbedSince.clear();
      else for (const p of pairs) this.absorbedSince.add(p.n);
      for (const { n, id } of pairs) {
        this.who = n.state.pid;
        const r = this.remotes.get(n)!;
        const plan = plans.get(n)!;
        const ch = changes.get(n);
        if (ch) this.step('memory changes', () => {
          const w = writeChanges(r, plan, ch, this.opts.signal, id);
          this.bytesWritten += w.bytes;
          this.writeMs += w.writeMs;
        });
        n.id = id;
        n.state = states.get(n)!;
        this.plans.set(n, plan);
      }
    });
    return true;
  }

  /** The rest for every member from the states absorbed last, then all detach together. deferRecord: see record(). */
  complete(deferRecord: boolean): TreeRestoreResult {
    // Some members a round further than others: never run such a tree.
    if (!this.whole && this.absorbedSince.size !== this.order.length) {
      this.kill();
      throw new StasisError('INTERNAL', `The prepared tree of checkpoint #${this.rootId} holds members of different rounds (${this.absorbedSince.size} of ${this.order.length} took the latest); it was killed, nothing runs. Restore the tree checkpoint of the last round instead.`);
    }
    const order = this.order;
    const root = order[0]!;
    const tidMaps = new Map<Node, ReadonlyMap<number, number>>();
    const signalWarnings: string[] = [];
    this.guarded(() => {
      this.who = root.state.pid;
      const stub = this.remotes.get(root)!;
      // Every member still holds the parked descriptors: the root refills them once for all.
      this.step('tree pipes and shared offsets', () => {
        fillTreePipes(stub, treePipes(order), this.parked);
        reseekSharedFiles(stub, sharedGroups(order), this.redirect, this.parked);
      });
      for (const n of order) {
        this.who = n.state.pid;
        const r = this.remotes.get(n)!;
        const plan = this.plans.get(n)!;
        if (!this.sealed) this.step('seal protections', () => sealProtections(r, plan));
        const w = rebuildRest(this.step, r, plan, n.state, this.ctx(n));
        tidMaps.set(n, w.threads.tids);
        signalWarnings.push(...w.warnings.map((m) => `Process ${n.state.pid}: ${m}`));
      }
      this.sealed = true;
      this.who = root.state.pid;
      this.step('detach', () => {
        for (const n of order) this.remotes.get(n)!.detach(n.state.stopped === true);
      });
    });
    const remotes = this.remotes;
    const members: TreeRestoreMember[] = order.map((n) => ({
      checkpointId: n.id, originalPid: n.state.pid, pid: remotes.get(n)!.pid, samePid: remotes.get(n)!.pid === n.state.pid,
      parentPid: n.parent ? remotes.get(n.parent)!.pid : null, comm: n.state.comm,
      zombies: this.zombies.filter((z) => z.parent === n).map((z) => z.r.pid),
    }));
    const durationMs = +(performance.now() - this.t0).toFixed(2);
    const warnings: string[] = [...signalWarnings];
    // A parent remembers its children's PIDs (waitpid(pid), kill(pid)): say when one changed.
    const moved = members.filter((m) => !m.samePid && m.parentPid !== null);
    if (moved.length) warnings.push(`${moved.map((m) => `process ${m.originalPid} came back as ${m.pid}`).join(', ')} (its PID was taken or not ours to give): a parent that waits for or signals its child by the old PID will not find it.`);
    let branchId: number | null = null;
    this.pendingRecord = (asTree) => {
      try {
        branchId = recordTreeBranch(this.store, order, members, order.map((n) => tidMaps.get(n) ?? new Map()), asTree);
      } catch (e) {
        warnings.push(`The restored processes run, but the store could not record them: ${(e as Error).message}`);
      }
    };
    if (!deferRecord) this.record();
    const warning = warnings.length ? warnings.join(' ') : undefined;
    this.prog.finish({ total: this.total, unit: 'steps', phase: 'running' });
    const m0 = members[0]!;
    return {
      checkpointId: this.rootId, pid: m0.pid, samePid: m0.samePid, originalPid: m0.originalPid, threads: root.state.threads.length,
      durationMs: deferRecord ? durationMs : +(performance.now() - this.t0).toFixed(2), bytesWritten: this.bytesWritten, writeMs: +this.writeMs.toFixed(2), log: this.redirect.log, steps: this.steps,
      branchCheckpointId: branchId, ...(warning ? { warning } : {}), members,
    };
  }

  /** Writes the restored tree's timeline entry (once, after complete()); asTree: see PreparedTreeRestore.record. */
  record(asTree?: number): void {
    const f = this.pendingRecord;
    this.pendingRecord = null;
    f?.(asTree);
  }
}

/**
 * Everything the fork step builds from the members' states, as one string: their PIDs, parents,
 * sessions and groups, zombies (and whether their SIGCHLD was pending), the pipes between them
 * (without the bytes waiting in them: those are written at finish), socketpairs with their
 * queues, pseudo-terminals, shared files (without their offsets, set again at finish) and shared
 * memory objects. A round with another shape cannot be absorbed by a tree built from this one.
 */
function forkShape(order: Node[], redirect: RedirectOptions): string {
  const json = (x: unknown): string => JSON.stringify(x, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : Buffer.isBuffer(v) ? v.toString('base64') : v));
  const noPipeData = (f: FdState): unknown => ({ ...f, info: f.info ? { ...f.info, pipeData: undefined } : f.info });
  const states = order.map((n) => n.state);
  return json({
    members: order.map((n) => ({ pid: n.state.pid, ppid: n.state.ppid, sid: n.state.sid, pgid: n.state.pgid, zombies: n.state.zombies ?? [], sigchld: n.state.zombies?.length ? ((n.state.sharedPending >> BigInt(SIGCHLD - 1)) & 1n) === 1n : null })),
    pipes: treePipes(order).map((p) => ({ target: p.target, ends: p.ends.map(noPipeData) })),
    sockets: treeSockets(order),
    ptys: ptysOf(states),
    shared: sharedGroups(order).map((g) => {
      const a = planFd(g.first, redirect, g.holderFds);
      return { key: g.key, action: 'pos' in a ? { ...a, pos: undefined } : a };
    }),
    shm: treeSharedMemory(states),
  });
}

/** The restored tree recorded as a tree checkpoint of the new processes (a branch of each member, no new pages). */
function recordTreeBranch(store: Store, order: Node[], members: TreeRestoreMember[], tids: ReadonlyMap<number, number>[], asTree?: number): number | null {
  // Grouped since: each member of that tree is a child of the checkpoint a member here holds.
  const grouped = new Map<number, number>();
  for (const g of asTree !== undefined ? store.treeMembers(asTree) : []) {
    const parentId = store.get(g)?.parentId;
    if (parentId !== null && parentId !== undefined) grouped.set(parentId, g);
  }
  const begins = order.map((n, i) => {
    const m = members[i]!;
    const startTime = startTimeOf(m.pid);
    if (!startTime) return null;
    const parent = store.get(grouped.get(n.id) ?? n.id)!;
    const origin = store.getTarget(parent.targetId);
    const target = store.upsertTarget({ pid: m.pid, startTime, exe: n.state.exe, cmdline: n.state.cmdline, ...(origin?.name ? { name: origin.name } : {}) });
    return { target: target.id, startTime, parent };
  });
  if (begins.some((b) => b === null)) return null; // a member already exited
  let w: TreeWriter | null = null;
  try {
    w = store.beginTree(begins.map((b) => ({ targetId: b!.target, parentId: b!.parent.id, mode: 'incremental', dirtyTracking: b!.parent.dirtyTracking, coverage: 'delta', label: `restored from #${asTree ?? order[0]!.id}`, restoredFrom: b!.parent.id })));
    order.forEach((n, i) => {
      const pid = members[i]!.pid;
      w!.writers[i]!.setState({ ...n.state, pid, ppid: members[i]!.parentPid ?? n.state.ppid, startTime: begins[i]!.startTime, threads: n.state.threads.map((t) => ({ ...t, tid: t.tid === n.state.pid ? pid : tids[i]!.get(t.tid) ?? t.tid })) });
    });
    return w.commit(order.map(() => ({ pagesScanned: 0 })))[0]!.id;
  } catch (e) {
    w?.abort();
    throw e;
  }
}
