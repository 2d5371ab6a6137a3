/**
 * A process's children, from /proc/PID/task/TID/children (every thread's, since a child belongs to
 * the thread that forked it). A checkpoint holds one process: children are not in it.
 */
import { readdirSync, readFileSync } from 'node:fs';

export function childProcesses(pid: number, tids: readonly number[]): { pid: number; comm: string }[] {
  const out = new Set<number>();
  for (const tid of tids) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8');
    } catch {
      continue; // the thread ended, or a kernel without CONFIG_PROC_CHILDREN
    }
    for (const w of text.split(/\s+/)) if (w) out.add(Number(w));
  }
  return [...out].sort((a, b) => a - b).map((p) => {
    let comm = '?';
    try { comm = readFileSync(`/proc/${p}/comm`, 'utf8').trim(); } catch { /* gone */ }
    return { pid: p, comm };
  });
}

/** Whether any thread of pid has a child process now (the process is gone: false). */
export function hasChildProcesses(pid: number): boolean {
  let tids: number[];
  try {
    tids = readdirSync(`/proc/${pid}/task`).map(Number);
  } catch {
    return false;
  }
  return childProcesses(pid, tids).length > 0;
}
