/**
 * Checks on the migrate-counter fixture's output (test/fixtures/migrate-counter.c): one line per
 * step it counted, and on SIGUSR1 a "check pid=..." line with its memory self-check.
 */
import assert from 'node:assert/strict';
import { fileLines, waitFor } from '../restore/helpers';

/** Asserts the steps are 1, 2, 3, ... with none lost or repeated (and more than `atLeast` of them); returns how many. */
export function assertConsecutive(out: string, atLeast = 0): number {
  const counts = fileLines(out).filter((l) => /^\d+$/.test(l)).map(Number);
  assert.ok(counts.length > atLeast, `only ${counts.length} steps counted`);
  counts.forEach((n, i) => assert.equal(n, i + 1, `step ${i + 1} is ${n}: a step was lost or repeated around it`));
  return counts.length;
}

/** Asks process pid for its memory check and returns the line it wrote. */
export async function memCheck(pid: number, out: string): Promise<string> {
  process.kill(pid, 'SIGUSR1');
  await waitFor('the memory check', () => fileLines(out).some((l) => l.startsWith(`check pid=${pid} `)), 10_000);
  return fileLines(out).find((l) => l.startsWith(`check pid=${pid} `))!;
}

/** Waits until the counter wrote 5 more lines. */
export async function countsGrow(out: string): Promise<void> {
  const n = fileLines(out).length;
  await waitFor('the counter to go on counting', () => fileLines(out).length > n + 5, 10_000);
}
