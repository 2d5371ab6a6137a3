/**
 * Reads one migration's window trace (electron/engine/migrate/window-trace.ts, both ends' lines in
 * one file) and says what happened inside the downtime: each end's V8 garbage collections that
 * overlapped it, how long each end's main thread waited for a core, its page faults, and the
 * timeline of both ends' marks from the freeze.
 */
import { readFileSync } from 'node:fs';

interface Mark { name: string; at: number; runDelayMs: number; minflt: number; majflt: number; heapMb?: number; newMb?: number; nice?: number }
interface Line { pid: number; role: 'source' | 'destination'; marks: Mark[]; gcs: { at: number; ms: number; kind: number }[] }

export interface WindowSummary {
  windowMs: number;
  /** GC time inside the window (ms, the part that overlapped it) and count, per end. */
  gcMs: { source: number; destination: number };
  gcCount: { source: number; destination: number };
  /** Main thread's wait for a core inside the window (source: from its 'frozen' mark; destination: from the last round's announcement). */
  runDelayMs: { source: number; destination: number };
  minflt: { source: number; destination: number };
  /** Both ends' marks, ms from the freeze. */
  timeline: string;
}

// perf_hooks.constants.NODE_PERFORMANCE_GC_*.
const GC_KIND: Record<number, string> = { 1: 'minor', 4: 'major', 8: 'incremental', 16: 'weakcb' };

export function readWindowTrace(file: string): WindowSummary | null {
  let lines: Line[];
  try { lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Line); } catch { return null; }
  const src = lines.find((l) => l.role === 'source');
  const dst = lines.find((l) => l.role === 'destination');
  const m = (l: Line | undefined, n: string): Mark | undefined => l?.marks.find((x) => x.name === n);
  const from = m(src, 'freeze began')?.at;
  const to = m(src, 'restored')?.at;
  if (!src || !dst || from === undefined || to === undefined) return null;
  const gc = (l: Line): { ms: number; n: number; kinds: string } => {
    const inside = l.gcs.filter((g) => g.at < to && g.at + g.ms > from);
    return { ms: inside.reduce((a, g) => a + Math.min(to, g.at + g.ms) - Math.max(from, g.at), 0), n: inside.length, kinds: inside.map((g) => `${GC_KIND[g.kind] ?? g.kind} ${g.ms.toFixed(1)}`).join(' ') };
  };
  const delta = (l: Line, a: string, b: string, k: 'runDelayMs' | 'minflt'): number => (m(l, b)?.[k] ?? NaN) - (m(l, a)?.[k] ?? NaN);
  const gs = gc(src);
  const gd = gc(dst);
  const timeline = [...src.marks.map((x) => ({ ...x, who: 's' })), ...dst.marks.map((x) => ({ ...x, who: 'd' }))]
    .filter((x) => x.at >= from - 0.01 && x.at <= to + 0.01).sort((a, b) => a.at - b.at)
    .map((x) => `${x.who}:${x.name}@${(x.at - from).toFixed(1)}${x.heapMb !== undefined && x.heapMb !== null && Number.isFinite(x.heapMb) ? `(${x.heapMb.toFixed(1)}M/${x.newMb?.toFixed(0)}${x.nice ? ` n${x.nice}` : ''})` : ''}`).join(' ');
  return {
    windowMs: to - from,
    gcMs: { source: gs.ms, destination: gd.ms },
    gcCount: { source: gs.n, destination: gd.n },
    runDelayMs: { source: delta(src, 'frozen', 'restored', 'runDelayMs'), destination: delta(dst, 'last round announced', 'running', 'runDelayMs') },
    minflt: { source: delta(src, 'frozen', 'restored', 'minflt'), destination: delta(dst, 'last round announced', 'running', 'minflt') },
    timeline: `${timeline}${gs.kinds ? ` | source gc: ${gs.kinds}` : ''}${gd.kinds ? ` | destination gc: ${gd.kinds}` : ''}`,
  };
}
