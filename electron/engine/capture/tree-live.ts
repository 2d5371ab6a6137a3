/**
 * The live half of a tree checkpoint with pre-copy (capture/tree.ts): before the tree's common
 * freeze, each member gets what a single process gets (precopy.ts): a brief freeze of its own to
 * make a userfaultfd, its private memory read while it runs, rounds of what it wrote meanwhile.
 * The common freeze then copies, per member, only what was written since. A userfaultfd kept since
 * the member's previous checkpoint (tracking.ts) makes the live read start from what was written
 * since that one.
 * A member that cannot have it (an io_uring, memory another userfaultfd has, no userfaultfd for
 * it) is read whole at the freeze, as before; the others keep theirs. Shared memory is never read
 * live: every member's shared mappings are read at the common freeze, one instant for all.
 * The members are listed while they run, parents first, as freezeTree lists them once frozen; a
 * tree that changed in between (a fork, an exit) is taken the old way (tree.ts compares).
 */
import { readlinkSync } from 'node:fs';
import { StasisError } from '../../../shared/errors';
import type { BeginOptions, Store, TreeWriter } from '../store/api';
import { readMaps, childProcesses } from '../proc';
import { listThreads, readBasics } from '../tracer';
import { openPreCopy, protectLive, copyLive, catchUpLive, closePreCopy, hasIoUring, type PreCopy } from './precopy';
import { latestRestarts, type RestartedCalls } from './restarts';
import { takeTracker } from './tracking';
import { toMappingState } from './mappings';
import type { CheckpointOptions } from './index';

export interface LiveMember {
  pid: number;
  startTime: string;
  /** Null: read whole at the freeze (why, in `fallback`). */
  pc: PreCopy | null;
  fallback?: string;
  /** The parent checkpoint's interrupted calls (restarts.ts), for keepRestartedCalls at the freeze. */
  parentRestarts: RestartedCalls;
  /** Tracking only: what the parent checkpoint holds (copyFrozen keeps the unchanged pages of it). */
  parentPresent: { vpn: number; count: number }[];
}

export interface LiveTree {
  members: LiveMember[];
  tree: TreeWriter;
  begins: BeginOptions[];
}

/** A member's key in startLiveTree's briefRestarts. */
export function memberKey(pid: number, startTime: string): string {
  return `${pid}\0${startTime}`;
}

/** The running tree's processes, parents first, children of each in PID order (as freezeTree finds them frozen). */
export function listRunningTree(pid: number): { pid: number; startTime: string }[] {
  const root = readBasics(pid);
  if (!root) return [];
  const out = [{ pid, startTime: root.startTime }];
  for (let i = 0; i < out.length; i++) {
    for (const k of childProcesses(out[i]!.pid, listThreads(out[i]!.pid))) {
      const b = readBasics(k.pid);
      if (b && b.state !== 'Z' && b.state !== 'X') out.push({ pid: k.pid, startTime: b.startTime });
    }
  }
  return out;
}

/**
 * Closes the kept userfaultfds of the running tree's members: a capture without pre-copy must not
 * find our write-protect registration in their memory, and one left behind would make any later
 * live capture of them copy everything while frozen.
 */
export function dropTreeTrackers(store: Store, pid: number): void {
  for (const m of listRunningTree(pid)) takeTracker(store.dir, m.pid, m.startTime, null);
}

/**
 * Opens pre-copy for every member it can, begins the tree's writers (members in listing order, the
 * root first) and reads their memory while they run. The caller owns the result: `abandonLive`
 * unless it commits. briefRestarts gets, per member, the calls the freeze that made its userfaultfd
 * interrupted (restarts.ts): a member read whole at the freeze after all (it fell back, or the live
 * phase was abandoned) must still get them back, or a sleep or wait of it ends early when restored.
 */
export function startLiveTree(store: Store, pid: number, opts: CheckpointOptions, begin: (m: { pid: number; startTime: string }, i: number) => BeginOptions, briefRestarts: Map<string, RestartedCalls>): LiveTree {
  const listed = listRunningTree(pid);
  const members: LiveMember[] = [];
  let tree: TreeWriter | null = null;
  try {
    const begins: BeginOptions[] = [];
    const plans = listed.map((x, i) => {
      const b0 = begin(x, i);
      const m: LiveMember = { pid: x.pid, startTime: x.startTime, pc: null, parentRestarts: latestRestarts(store, b0.targetId), parentPresent: [] };
      members.push(m);
      const why = unfit(x.pid);
      if (why) {
        m.fallback = why;
        takeTracker(store.dir, x.pid, x.startTime, null);
        begins.push(b0);
        return null;
      }
      let plan: ReturnType<typeof protectLive> | null = null;
      try {
        m.pc = takeTracker(store.dir, x.pid, x.startTime, b0.parentId);
        const tracked = m.pc !== null;
        m.pc ??= openPreCopy(x.pid, x.startTime, opts.timeoutMs);
        // Kept past a fallback or an abandoned live phase: the member was stopped all the same.
        if (m.pc) briefRestarts.set(memberKey(x.pid, x.startTime), m.pc.restarts);
        if (!m.pc) m.fallback = 'it cannot have a userfaultfd';
        else {
          plan = protectLive(m.pc, readMaps(x.pid).map((e) => toMappingState(x.pid, e, false)));
          if (plan.refused) {
            closePreCopy(m.pc);
            m.pc = null;
            plan = null;
            m.fallback = 'its memory is registered with another userfaultfd';
          }
        }
        begins.push(m.pc && tracked ? { ...b0, dirtyTracking: 'uffd-wp' } : b0);
      } catch (e) {
        // The freeze that follows says what is wrong with it (gone, traced, another namespace).
        closePreCopy(m.pc);
        m.pc = null;
        m.fallback = (e as Error).message;
        begins.push(b0);
      }
      return plan;
    });
    tree = store.beginTree(begins);
    for (const [i, m] of members.entries()) {
      const plan = plans[i];
      if (!m.pc || !plan) continue;
      const w = tree.writers[i]!;
      copyLive(m.pc, w, plan);
      if (m.pc.base !== null) m.parentPresent = w.parentPresent();
      opts.onPhase?.('live', { pid: m.pid });
      // A large tree is read for seconds here: a cancel must not wait for the freeze after it.
      if (opts.signal?.aborted) throw treeCancelled(pid);
    }
    // Each member wrote on while the ones after it were read: one more round each, just before the freeze.
    if (members.length > 1) members.forEach((m, i) => { if (m.pc && plans[i]) catchUpLive(m.pc, tree!.writers[i]!, plans[i]!); });
    return { members, tree, begins };
  } catch (e) {
    abandonLive({ members, tree: tree ?? { writers: [], commit: () => [], abort: () => undefined }, begins: [] });
    throw e;
  }
}

/** The error of a tree checkpoint cancelled before it saved anything (the live phase's and tree.ts's). */
export function treeCancelled(pid: number): StasisError {
  return new StasisError('CANCELLED', `The tree checkpoint of process ${pid} was cancelled; nothing was saved.`);
}

/** Undoes startLiveTree: nothing written stays, every userfaultfd is closed. */
export function abandonLive(live: LiveTree): void {
  live.tree.abort();
  for (const m of live.members) {
    closePreCopy(m.pc);
    m.pc = null;
  }
}

/** Whether the live listing and the frozen one are the same processes in the same order. */
export function sameMembers(live: LiveTree, frozen: readonly { pid: number }[]): boolean {
  return live.members.length === frozen.length && live.members.every((m, i) => m.pid === frozen[i]!.pid && readBasics(m.pid)?.startTime === m.startTime);
}

/** Why a member is read whole at the freeze instead (see precopy.ts), or null. */
function unfit(pid: number): string | null {
  const b = readBasics(pid);
  if (!b) return 'it exited';
  if (b.tracerPid !== 0) return 'it is traced';
  if (hasIoUring(pid)) return 'it has an io_uring (the kernel writes its buffers without a fault)';
  try { readlinkSync(`/proc/${pid}/exe`); } catch { return 'its /proc entry is closed to us'; }
  return null;
}

