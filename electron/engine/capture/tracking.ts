/**
 * Pre-copy userfaultfds kept between checkpoints, so the next checkpoint of the same process into
 * the same store reads only what was written since (precopy.ts, "Dirty tracking"). Lives as long
 * as the engine process: the app's worker and `stasis daemon` take many checkpoints of the same
 * processes; a one-shot CLI keeps its one until it exits. Closing a userfaultfd unregisters the
 * process's mappings, so the target never outlives our tracking with anything left behind.
 *
 * One tracker per process (a mapping can be registered with one userfaultfd only, so a second one
 * would make any other live checkpoint of it copy everything while frozen): taken out while a
 * checkpoint uses it, put back with the store and the id of the checkpoint it is now based on.
 * Taking it for another store or base closes it. Trackers of processes that are gone, those not
 * used for IDLE_MS (the process should not pay a fault per first write for a checkpoint that may
 * never come), and the least recently used beyond MAX, are closed.
 */
import { readBasics } from '../tracer';
import { closePreCopy, type PreCopy } from './precopy';

const MAX = 32;
const IDLE_MS = 30 * 60_000;
const trackers = new Map<string, PreCopy & { storeDir: string; keptAt: number }>();
let sweeper: ReturnType<typeof setInterval> | null = null;

function key(pid: number, startTime: string): string {
  return `${pid}\0${startTime}`;
}

/**
 * The tracker of this process if it is based on checkpoint `base` of this store, ready for a new
 * checkpoint; null otherwise. Any other tracker of the process is closed: every live capture of a
 * process takes its tracker out first, so the process is never registered twice.
 */
export function takeTracker(storeDir: string, pid: number, startTime: string, base: number | null): PreCopy | null {
  prune();
  const k = key(pid, startTime);
  const t = trackers.get(k);
  if (!t) return null;
  trackers.delete(k);
  if (base !== null && t.base === base && t.storeDir === storeDir) {
    t.given = [];
    t.rounds = 0;
    // Its brief freeze belongs to the checkpoint that made it, not to this one's downtime.
    t.frozenMs = 0;
    return t;
  }
  closePreCopy(t); // based on another checkpoint or store (e.g. a full was taken since): useless
  return null;
}

/** Keeps pc for the next checkpoint of the same process (its base set by the caller). */
export function keepTracker(storeDir: string, pc: PreCopy): void {
  const k = key(pc.pid, pc.startTime);
  const old = trackers.get(k);
  if (old && old !== pc) closePreCopy(old);
  trackers.delete(k);
  trackers.set(k, Object.assign(pc, { storeDir, keptAt: Date.now() }));
  // A long-lived engine closes idle trackers even when no checkpoint comes; never keeps a process alive.
  sweeper ??= setInterval(prune, 60_000);
  sweeper.unref?.();
  while (trackers.size > MAX) {
    const [oldest, t] = trackers.entries().next().value as [string, PreCopy];
    trackers.delete(oldest);
    closePreCopy(t);
  }
}

/** Closes the trackers of processes that have exited (their PID gone or reused), and idle ones. */
export function prune(idleMs = IDLE_MS): void {
  for (const [k, t] of trackers) {
    const now = readBasics(t.pid);
    if (!now || now.startTime !== t.startTime || now.state === 'Z' || Date.now() - t.keptAt >= idleMs) {
      trackers.delete(k);
      closePreCopy(t);
    }
  }
}

/** Closes every tracker (engine shutdown; tests). */
export function closeTrackers(): void {
  for (const t of trackers.values()) closePreCopy(t);
  trackers.clear();
  if (sweeper) clearInterval(sweeper);
  sweeper = null;
}

export function trackerCount(): number {
  return trackers.size;
}
