/** Shared checks of the progress tests: what every operation's sequence of reports must look like. */
import assert from 'node:assert/strict';
import { PROGRESS_PER_SECOND, type ProgressReport } from '../../electron/engine/progress';

/** A callback that records each report with the time it arrived. */
export function recorder(): { reports: ProgressReport[]; at: number[]; fn: (p: ProgressReport) => void } {
  const reports: ProgressReport[] = [];
  const at: number[] = [];
  return { reports, at, fn: (p) => { reports.push(p); at.push(performance.now()); } };
}

/**
 * Within each phase and unit `done` never goes back and never passes `total`; the last report has
 * done == total; and no more than the throttle allows arrived for the time the operation took.
 */
export function assertWellFormed(reports: ProgressReport[], tookMs: number, what: string, extraPhases = 0): void {
  assert.ok(reports.length >= 1, `${what}: no progress report at all`);
  let prev: ProgressReport | null = null;
  for (const p of reports) {
    assert.ok(p.done >= 0 && p.done <= p.total, `${what}: done ${p.done} outside 0..${p.total}`);
    if (p.within) assert.ok(p.within.done >= 0 && p.within.done <= p.within.total, `${what}: within ${p.within.done} outside 0..${p.within.total}`);
    if (prev && prev.unit === p.unit && prev.phase === p.phase) assert.ok(p.done >= prev.done, `${what}: done went back from ${prev.done} to ${p.done}`);
    prev = p;
  }
  const last = reports[reports.length - 1]!;
  assert.equal(last.done, last.total, `${what}: the last report is not done == total`);
  assert.equal(last.within, undefined, `${what}: the last report still describes a phase`);
  assert.equal(reports.filter((p) => p.done === p.total && !p.within && p === last).length, 1);
  const allowed = Math.ceil((tookMs / 1000) * PROGRESS_PER_SECOND) + 2 + extraPhases;
  assert.ok(reports.length <= allowed, `${what}: ${reports.length} reports in ${tookMs.toFixed(0)} ms (at most ${allowed} allowed)`);
}
