/**
 * Is a process still the one we mean? A pid alone is not an identity (pids are reused), so the
 * /proc/PID/stat start time (field 22) is compared too. Reads /proc only; never signals or traces.
 */
import { readFileSync } from 'node:fs';

/** Field 22 of /proc/PID/stat as a decimal string, or null if the pid does not exist (or is a zombie). */
export function processStartTime(pid: number): string | null {
  let s: string;
  try {
    s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // comm may contain spaces and parentheses: fields resume after the last ')'.
  const fields = s.slice(s.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return null;
  return fields[19] ?? null; // fields[0] is field 3 (state), so field 22 is fields[19]
}

export function isSameProcess(pid: number, startTime: string): boolean {
  return processStartTime(pid) === startTime;
}
