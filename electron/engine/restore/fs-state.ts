/**
 * Restore step "fs state": session/process group, root, working directory, umask, personality and
 * resource limits.
 * Runs inside the stub through Remote; must run after "mm" (RLIMIT_DATA is checked by PR_SET_MM_MAP
 * against the limit in force then, and the stub's own limits are the engine's).
 */
import { restoreUtsNamespace } from './namespaces';
import type { ProcessState } from '../state/process-state';
import type { Call, Remote } from './remote';
import { NR } from './sysno';

/** setsid for a session leader, setpgid(0, 0) for a process-group leader; nothing for the others. */
export function setLeadership(r: Remote, state: Pick<ProcessState, 'pid' | 'sid' | 'pgid'>, pid = state.pid): void {
  if (state.sid === state.pid) r.call(NR.setsid, [], `setsid (process ${pid} was a session leader)`);
  else if (state.pgid === state.pid) r.call(NR.setpgid, [0n, 0n], `setpgid (process ${pid} was a process-group leader)`);
}

const RLIMIT_NAMES = ['CPU', 'FSIZE', 'DATA', 'STACK', 'CORE', 'RSS', 'NPROC', 'NOFILE', 'MEMLOCK', 'AS', 'LOCKS', 'SIGPENDING', 'MSGQUEUE', 'NICE', 'RTPRIO', 'RTTIME'];
const RLIM_INFINITY = 0xffffffffffffffffn;

/** `session: false`: a tree restore sets session and process group at fork time (restore/tree.ts). */
export function setFsState(r: Remote, state: ProcessState, opts: { session?: boolean } = {}): void {
  r.resetScratch();
  // A session (or process-group) leader leads its own again; otherwise it stays in the engine's.
  if (opts.session !== false) setLeadership(r, state);
  restoreUtsNamespace(r, state);
  r.resetScratch();
  // One batch, in this order (chroot before chdir): one trip through the new process, not ~20.
  const calls: Call[] = [];
  if (state.root && state.root !== '/') calls.push({ nr: NR.chroot, args: [r.putString(state.root)], what: `chroot(${state.root})` });
  calls.push({ nr: NR.chdir, args: [r.putString(state.cwd)], what: `chdir(${state.cwd})` });
  calls.push({ nr: NR.umask, args: [BigInt(state.umask)], what: 'umask' });
  calls.push({ nr: NR.personality, args: [BigInt(state.personality >>> 0)], what: 'personality' });
  for (const l of state.rlimits) {
    const b = Buffer.alloc(16);
    b.writeBigUInt64LE(l.cur < 0n ? RLIM_INFINITY : BigInt.asUintN(64, l.cur), 0);
    b.writeBigUInt64LE(l.max < 0n ? RLIM_INFINITY : BigInt.asUintN(64, l.max), 8);
    calls.push({ nr: NR.prlimit64, args: [0n, BigInt(l.resource), r.put(b), 0n], what: `setting RLIMIT_${RLIMIT_NAMES[l.resource] ?? l.resource}` });
  }
  r.callAll(calls);
}
