/**
 * The `ps` data: processes the user could checkpoint, each with whether it can be checkpointed now
 * and, if not, why (in words a user can act on). Reads /proc only; never attaches to anything.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { readBasics, isKernelThread } from '../tracer';
import { readCmdline, readStatus } from '../proc';

export interface ProcessInfo {
  pid: number;
  ppid: number;
  uid: number;
  comm: string;
  cmdline: string[];
  exe: string | null;
  state: string;
  threads: number;
  rssKb: number;
  startTime: string;
  checkpointable: boolean;
  reason: string | null;
}

function yamaScope(): number | null {
  try {
    return Number(readFileSync('/proc/sys/kernel/yama/ptrace_scope', 'utf8').trim());
  } catch {
    return null;
  }
}

function isAncestor(pid: number, of: number): boolean {
  let cur = of;
  for (let i = 0; i < 64 && cur > 1; i++) {
    const b = readBasics(cur);
    if (!b) return false;
    if (b.ppid === pid) return true;
    cur = b.ppid;
  }
  return false;
}

export function listProcesses(opts: { all?: boolean } = {}): ProcessInfo[] {
  const myUid = process.getuid?.() ?? -1;
  const yama = yamaScope();
  const out: ProcessInfo[] = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const b = readBasics(pid);
    if (!b) continue;
    if (isKernelThread(b) && !opts.all) continue;
    if (!opts.all && myUid !== 0 && b.uid !== myUid) continue;
    let status: Map<string, string> | null;
    try {
      status = readStatus(pid);
    } catch {
      status = null;
    }
    let exe: string | null;
    try {
      exe = readlinkSync(`/proc/${pid}/exe`);
    } catch {
      exe = null;
    }
    let cmdline: string[];
    try {
      cmdline = readCmdline(pid);
    } catch {
      cmdline = [];
    }
    let reason: string | null = null;
    if (pid === process.pid) reason = 'this is Stasis itself';
    else if (isKernelThread(b)) reason = 'kernel thread';
    else if (b.state === 'Z') reason = 'zombie (already exited, waiting to be reaped by its parent)';
    else if (b.tracerPid !== 0) reason = `already traced by process ${b.tracerPid} (a debugger?)`;
    else if (myUid !== 0 && b.uid !== myUid) reason = 'belongs to another user';
    else if (exe === null) reason = 'not accessible (/proc/PID/exe unreadable: other user or not dumpable)';
    else if (myUid !== 0 && yama !== null && yama >= 1 && !isAncestor(process.pid, pid)) {
      reason = yama >= 2
        ? `Yama kernel.yama.ptrace_scope=${yama} allows ptrace only to root`
        : 'Yama kernel.yama.ptrace_scope=1 allows ptrace only of descendants: start it with `stasis launch`, or lower the sysctl to 0';
    }
    out.push({
      pid, ppid: b.ppid, uid: b.uid, comm: b.comm, cmdline, exe, state: b.state,
      threads: Number(status?.get('Threads') ?? 1),
      rssKb: parseInt(status?.get('VmRSS') ?? '0', 10) || 0,
      startTime: b.startTime,
      checkpointable: reason === null,
      reason,
    });
  }
  return out.sort((a, b) => a.pid - b.pid);
}
