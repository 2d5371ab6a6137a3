/**
 * Keeping a migration's downtime window free of this process's own stalls (bench/migrate.ts
 * --trace-window found them in most runs): a V8 collection, which a window's allocations set off
 * when the heap was already near its next limit (scavenges of 3-36 ms, under load), and the wait
 * for a core while the source, the destination and anything else on the machine share few of them.
 * Each end collects right before its part of the window (never inside it), and runs its threads at
 * a higher priority from then until the process runs on the destination.
 */
import { getPriority, setPriority } from 'node:os';
import { readdirSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Nice value of this process's threads inside the window (where allowed: root, or CAP_SYS_NICE). */
export const WINDOW_NICE = -10;

let gcFn: (() => void) | null | undefined;

/**
 * A full collection now, synchronously: it ends any marking under way, sets the old generation's
 * next limit from what is live now and empties the young generation. The source calls it before
 * its last round (in the bench: a collection inside the window in 8 of 12 runs, median 2.1 ms,
 * against 12 of 12, median 19.5 ms, without), not between the round's live read and its freeze:
 * there (once, or as two scavenges) a major collection then fell inside the window in 5-7 of 12
 * runs (docs/benchmarks.md). The gc function is V8's own (--expose-gc, taken into a fresh context
 * so the flag needs no restart); false where it cannot be had.
 */
export function collectBeforeWindow(): boolean {
  if (gcFn === undefined) {
    const g = (globalThis as { gc?: () => void }).gc;
    if (typeof g === 'function') gcFn = g;
    else {
      try {
        setFlagsFromString('--expose-gc');
        const f: unknown = runInNewContext('gc');
        gcFn = typeof f === 'function' ? f as () => void : null;
      } catch {
        gcFn = null;
      }
    }
  }
  if (!gcFn) return false;
  gcFn();
  return true;
}

/** Each thread's nice before raisePriority, to give back; null when not raised. */
let raised: Map<number, number> | null = null;

function threads(): number[] {
  try { return readdirSync('/proc/self/task').map(Number).filter((t) => t > 0); } catch { return [process.pid]; }
}

/**
 * Every thread of this process (the engine's, V8's collectors, a store's write-behind, the smaps
 * walker) at WINDOW_NICE until lowerPriority; once (a second call while raised does nothing).
 * Best effort: a thread whose priority cannot be raised (not root, or gone) keeps its own.
 */
export function raisePriority(): void {
  if (raised) return;
  const was = new Map<number, number>();
  for (const tid of threads()) {
    try {
      const old = getPriority(tid);
      if (old <= WINDOW_NICE) continue;
      setPriority(tid, WINDOW_NICE);
      was.set(tid, old);
    } catch { /* not allowed, or the thread ended: it keeps its own */ }
  }
  raised = was;
}

/** Gives every thread raisePriority raised its nice back (a no-op when not raised). */
export function lowerPriority(): void {
  const was = raised;
  raised = null;
  if (!was) return;
  for (const [tid, old] of was) {
    try { setPriority(tid, old); } catch { /* the thread ended */ }
  }
}
