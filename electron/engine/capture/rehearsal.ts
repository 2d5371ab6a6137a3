/**
 * A fresh engine's first live checkpoint runs its frozen path cold: V8 compiles each function on
 * its first call and runs it first without type feedback, and buffers and native calls are used
 * for the first time, all while the target is stopped. Measured on a python3 process (one fresh
 * Node process each, same pre-copy path): ~11-14 ms of CPU in the freeze windows cold against
 * ~5-6 ms warm (docs/benchmarks.md "Capture"). So before the first live checkpoint of a process,
 * the whole path is rehearsed once on a throwaway `sleep` child into a throwaway store, cancelled
 * as soon as the child is released (nothing is committed, no tracker kept). Best effort: when the
 * rehearsal cannot run, the real checkpoint is only as cold as before. STASIS_REHEARSAL=0 turns it
 * off (benchmarks compare both).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../store';
import type { Store } from '../store/api';
import { posixSpawn, waitTid } from '../native';
import { readBasics } from '../tracer';
import type { CapturePhase } from './index';
import { sleepMs } from '../sleep-sync';

type Checkpoint = (store: Store, pid: number, opts: { full: boolean; signal: AbortSignal; onPhase: (p: CapturePhase) => void }) => unknown;

let rehearsed = process.env.STASIS_REHEARSAL === '0';

let last: { ok: boolean; ms: number; error?: string } | null = null;

/** How the rehearsal went (null before it ran, or when turned off): ok = the whole frozen path ran. */
export function lastRehearsal(): { ok: boolean; ms: number; error?: string } | null {
  return last;
}

/** Runs checkpoint once on a throwaway process, the first time it is called in this process. */
export function rehearseOnce(checkpoint: Checkpoint): void {
  if (rehearsed) return;
  rehearsed = true;
  const t0 = performance.now();
  let released = false;
  let error: string | undefined;
  let pid = -1;
  let dir: string | null = null;
  let store: Store | null = null;
  try {
    pid = posixSpawn({ file: '/bin/sleep', argv: ['sleep', '60'] });
    // posix_spawn returns once the child has exec'd; wait until sleep is asleep (its loader done).
    for (let i = 0; i < 500 && readBasics(pid)?.state !== 'S'; i++) sleepMs(1);
    dir = mkdtempSync(join(tmpdir(), 'stasis-rehearsal-'));
    store = openStore(dir);
    const stop = new AbortController();
    // 'resumed' ends the freeze of a live checkpoint; 'pages' comes next where there is none.
    checkpoint(store, pid, { full: true, signal: stop.signal, onPhase: (p) => { if (p === 'resumed' || p === 'pages') { released = true; stop.abort(); } } });
  } catch (e) {
    // Cancelled as planned, or the rehearsal was not possible here: only kept for diagnostics.
    if (!released) error = (e as Error).message;
  } finally {
    store?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (pid > 0) {
      try { process.kill(pid, 'SIGKILL'); waitTid(pid); } catch (_e) { /* already gone and reaped */ }
    }
    last = { ok: released && !error, ms: performance.now() - t0, ...(error ? { error } : {}) };
  }
}
