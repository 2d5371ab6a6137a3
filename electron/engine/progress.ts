/**
 * Progress of the engine's long operations (capture, restore, export, import, verify, gc), reported
 * through an optional `onProgress` callback in their options, next to `signal`. Owns only the
 * report's shape and its throttle: a 1 GiB capture walks 262,144 pages and must not turn each into
 * an event that crosses the worker, the WebSocket and React.
 */
import type { ProgressUnit } from '../../shared/contract/engine';

export type { ProgressUnit };

export interface ProgressReport {
  done: number;
  total: number;
  unit: ProgressUnit;
  /** The part of the operation running now (a restore step, "segments", "pages"...). */
  phase?: string;
  /** Progress inside the current phase when the operation itself counts steps (restore's pages). */
  within?: { done: number; total: number; unit: ProgressUnit };
}

export type ProgressFn = (p: ProgressReport) => void;

/** At most this many reports per second and operation reach the callback, plus the final one. */
export const PROGRESS_PER_SECOND = 10;

export interface Progress {
  /** Passed on when ~1/10 s has gone by since the last one passed; dropped otherwise. */
  report(p: ProgressReport): void;
  /** The last report (done == total): always passed on, once; later reports are dropped. */
  finish(p: Omit<ProgressReport, 'done' | 'within'>): void;
}

const NONE: Progress = { report() {}, finish() {} };

/** A throttled reporter around an operation's callback; a no-op without one. */
export function progress(onProgress: ProgressFn | undefined, now: () => number = () => performance.now()): Progress {
  if (!onProgress) return NONE;
  const gap = 1000 / PROGRESS_PER_SECOND;
  let last = -Infinity;
  let finished = false;
  return {
    report(p) {
      if (finished) return;
      const t = now();
      if (t - last < gap) return;
      last = t;
      onProgress(p);
    },
    finish(p) {
      if (finished) return;
      finished = true;
      onProgress({ ...p, done: p.total });
    },
  };
}

export interface Phases<P extends string> {
  /** `done` of `total` `unit` inside phase (reported as that phase's step, with `within`). */
  at(phase: P, done: number, total: number, unit: ProgressUnit): void;
  /** The final report: every phase done; `phase` names the outcome. */
  finish(phase: string): void;
}

/**
 * An operation made of a few passes with their own counts (an import checks the file's checksum in
 * bytes, then page hashes, then imports pages): steps done of the passes, plus the current pass's
 * own count in `within`, so a progress bar can move smoothly across all of them.
 */
export function phases<P extends string>(p: Progress, names: readonly P[]): Phases<P> {
  return {
    at(phase, done, total, unit) {
      p.report({ done: names.indexOf(phase), total: names.length, unit: 'steps', phase, within: { done: Math.min(done, total), total, unit } });
    },
    finish(phase) { p.finish({ total: names.length, unit: 'steps', phase }); },
  };
}
