/**
 * A migration's downtime window as each end lived it, for finding where its tail comes from
 * (bench/window-trace.ts reads it): only when STASIS_WINDOW_TRACE names a file. Each end then
 * notes, at named points, the wall clock, how long its main thread waited for a core (the
 * kernel's run delay, /proc/thread-self/schedstat), its nice value, its page faults, V8 heap in use and young generation's size; and every V8 garbage
 * collection with its wall-clock start and length. Written to the file (one JSON line per
 * process) when the process exits, so nothing of it runs inside the window but the notes.
 */
import * as fs from 'node:fs';
import { PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { getHeapSpaceStatistics, getHeapStatistics } from 'node:v8';
import { getPriority } from 'node:os';

interface Mark { name: string; at: number; runDelayMs: number; minflt: number; majflt: number; heapMb: number; newMb: number; nice: number }
interface Gc { at: number; ms: number; kind: number }

const file = process.env.STASIS_WINDOW_TRACE;
let trace: { role: string; marks: Mark[]; gcs: Gc[] } | null = null;

function runDelayMs(): number {
  try { return Number(fs.readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[1]) / 1e6; } catch { return NaN; }
}

/** The young generation's size (both semi-spaces), which decides how much the window may allocate before a scavenge. */
function newSpaceMb(): number {
  return (getHeapSpaceStatistics().find((x) => x.space_name === 'new_space')?.space_size ?? NaN) / 2 ** 20;
}

function niceOf(): number {
  try { return getPriority(Number(fs.readlinkSync('/proc/thread-self').split('/').pop())); } catch { return NaN; }
}

/** Starts the trace of this process (once; a no-op unless STASIS_WINDOW_TRACE is set). */
export function startWindowTrace(role: 'source' | 'destination'): void {
  if (!file || trace) return;
  const t = { role, marks: [] as Mark[], gcs: [] as Gc[] };
  trace = t;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries() as (PerformanceEntry & { detail?: { kind?: number } })[]) {
      t.gcs.push({ at: performance.timeOrigin + e.startTime, ms: e.duration, kind: e.detail?.kind ?? 0 });
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  process.on('exit', () => {
    try { fs.appendFileSync(file, `${JSON.stringify({ pid: process.pid, ...t })}\n`); } catch { /* a diagnostic only */ }
  });
}

/** Notes a point of the window (a no-op unless traced); at (performance.now() time): one already past, noted without its counters. */
export function windowMark(name: string, at?: number): void {
  if (!trace) return;
  if (at !== undefined) { trace.marks.push({ name, at: performance.timeOrigin + at, runDelayMs: NaN, minflt: NaN, majflt: NaN, heapMb: NaN, newMb: NaN, nice: NaN }); return; }
  const r = process.resourceUsage();
  trace.marks.push({ name, at: performance.timeOrigin + performance.now(), runDelayMs: runDelayMs(), minflt: r.minorPageFault, majflt: r.majorPageFault, heapMb: getHeapStatistics().used_heap_size / 2 ** 20, newMb: newSpaceMb(), nice: niceOf() });
}
