/**
 * The tree benches' target: test/fixtures/tree-counter.c (a parent and its children, each writing
 * a share of its memory per second), started and ended whole. Killing only the root would leave
 * the children running on (each holds hundreds of MiB and keeps writing), disturbing every later run.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnDetached, type DetachedProcess } from '../test/helpers/spawn';
import { sleepMs } from '../electron/engine/sleep-sync';

function kids(pid: number): number[] {
  try { return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number); } catch { return []; }
}

/** SIGKILLs the processes, children first. */
export function killTree(pids: number[]): void {
  for (const p of [...pids].reverse()) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
}

/** Starts the counter tree in work (output in work/TAG.out), once it is ready and has run a second; pids = root, then its children. */
export function startTreeCounter(bin: string, work: string, tag: string, perProcessMb: number, rate: number): { t: DetachedProcess; out: string; pids: number[] } {
  const out = join(work, `${tag}.out`);
  const t = spawnDetached([bin, out, String(perProcessMb), String(rate), '0'], { cwd: work });
  const end = Date.now() + 120_000;
  while (!readFileSync(out, { encoding: 'utf8', flag: 'a+' }).includes('ready\n')) {
    if (Date.now() > end) { t.kill(); throw new Error('tree did not start'); }
    sleepMs(20);
  }
  sleepMs(1000);
  return { t, out, pids: [t.pid, ...kids(t.pid)] };
}
