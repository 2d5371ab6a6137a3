/**
 * A running process's identity as the store records a target (pid + start time + exe + cmdline,
 * optionally the name Stasis launched it under). Reads /proc only; never signals or traces.
 */
import { readlinkSync } from 'node:fs';
import { StasisError } from '../../../shared/errors';
import type { TargetIdentity } from '../store/api';
import { readCmdline, readStat } from './stat';

export function readTargetIdentity(pid: number, name?: string): TargetIdentity {
  let startTime: string;
  let exe: string;
  let cmdline: string[];
  try {
    startTime = readStat(pid).startTime;
    cmdline = readCmdline(pid);
  } catch {
    throw new StasisError('PROCESS_GONE', `There is no running process ${pid}; check the pid with \`stasis ps\`.`);
  }
  try {
    exe = readlinkSync(`/proc/${pid}/exe`);
  } catch (e) {
    throw new StasisError('PERMISSION_DENIED', `Cannot read /proc/${pid}/exe (${(e as Error).message}); the process belongs to another user or is a kernel thread. Run Stasis as that user or as root.`);
  }
  return { pid, startTime, exe, cmdline, ...(name ? { name } : {}) };
}
