/**
 * What a checkpoint knows about its process besides memory (`stasis inspect`), from the
 * ProcessState saved with it: threads and registers, mappings, descriptors and sockets, signals,
 * timers, rlimits, credentials, cwd, command line and environment. Environment values are masked
 * unless asked for: they often hold tokens and passwords. Pure: reads the store's state, nothing else.
 */
import { REG } from '../native/ptrace';
import type { FdState, ProcessState } from '../state/process-state';
import type { Store } from '../store/api';

const hex = (v: bigint): string => `0x${BigInt.asUintN(64, v).toString(16)}`;

const SIGNALS = ['', 'SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGKILL', 'SIGUSR1', 'SIGSEGV', 'SIGUSR2',
  'SIGPIPE', 'SIGALRM', 'SIGTERM', 'SIGSTKFLT', 'SIGCHLD', 'SIGCONT', 'SIGSTOP', 'SIGTSTP', 'SIGTTIN', 'SIGTTOU', 'SIGURG', 'SIGXCPU', 'SIGXFSZ',
  'SIGVTALRM', 'SIGPROF', 'SIGWINCH', 'SIGIO', 'SIGPWR', 'SIGSYS'];

export function signalName(n: number): string {
  return SIGNALS[n] ?? (n >= 34 && n <= 64 ? `SIGRTMIN+${n - 34}` : `signal ${n}`);
}

/** The signals set in a mask (bit n-1 = signal n), by name. */
export function signalSet(mask: bigint): string[] {
  const out: string[] = [];
  for (let n = 1; n <= 64; n++) if ((mask >> BigInt(n - 1)) & 1n) out.push(signalName(n));
  return out;
}

const SOCK_TYPES: Record<number, string> = { 1: 'stream', 2: 'dgram', 3: 'raw', 5: 'seqpacket' };
const DOMAINS: Record<number, string> = { 1: 'unix', 2: 'inet', 10: 'inet6', 16: 'netlink' };

export interface SocketDetail { fd: number; inode: number; description: string }

function describeSocket(f: FdState): SocketDetail {
  const inode = Number(/^socket:\[(\d+)\]$/.exec(f.target)?.[1] ?? 0);
  const info = f.info ?? {};
  const s = info.socket as { domain?: number; type?: number; protocol?: number; listening?: boolean } | undefined;
  let description: string;
  if (info.unixPeer !== undefined) {
    description = `unix ${SOCK_TYPES[Number(info.unixType)] ?? `type ${String(info.unixType)}`} socketpair, peer inode ${String(info.unixPeer)}`;
  } else if (s) {
    const dom = s.domain !== undefined ? DOMAINS[s.domain] ?? `domain ${s.domain}` : 'unknown domain';
    description = `${dom} ${s.type !== undefined ? SOCK_TYPES[s.type] ?? `type ${s.type}` : ''}${s.listening ? ' listening' : ''}`.replace(/\s+/g, ' ').trim();
  } else {
    description = 'socket (kind not recorded)';
  }
  return { fd: f.fd, inode, description };
}

export interface DetailOptions {
  /** Show environment values (default: KEY=****). */
  showEnv?: boolean;
}

/** JSON-ready: addresses and 64-bit values as hex strings. */
export function describeProcess(state: ProcessState, opts: DetailOptions = {}) {
  const regNames = Object.keys(REG) as (keyof typeof REG)[];
  const environ = (state.environ ?? []).map((kv) => {
    if (opts.showEnv) return kv;
    const eq = kv.indexOf('=');
    return eq < 0 ? kv : `${kv.slice(0, eq)}=****`;
  });
  return {
    pid: state.pid, ppid: state.ppid, pgid: state.pgid, sid: state.sid, comm: state.comm, exe: state.exe,
    cmdline: state.cmdline, environ, environMasked: !opts.showEnv, cwd: state.cwd, root: state.root,
    umask: `0${state.umask.toString(8).padStart(3, '0')}`, stopped: state.stopped === true,
    credentials: { uid: state.ids?.uid ?? [state.uid], gid: state.ids?.gid ?? [state.gid] },
    kernel: state.kernel.release,
    threads: state.threads.map((t) => ({
      tid: t.tid,
      rip: hex(t.regs[REG.rip] ?? 0n), rsp: hex(t.regs[REG.rsp] ?? 0n), fsBase: hex(t.regs[REG.fs_base] ?? 0n),
      registers: Object.fromEntries(regNames.map((n) => [n, hex(t.regs[REG[n]] ?? 0n)])),
      inSyscall: t.inSyscall,
      blocked: signalSet(t.sigmask), pending: signalSet(t.sigpending),
      ...(t.altstack ? { altstack: { sp: hex(t.altstack.sp), size: Number(t.altstack.size), flags: t.altstack.flags } } : {}),
    })),
    mappings: [...state.mappings].sort((a, b) => (a.start < b.start ? -1 : 1)).map((m) => ({
      start: hex(m.start), end: hex(m.end), perms: m.perms, offset: hex(m.offset), dev: m.dev, inode: m.inode,
      path: m.path, deleted: m.deleted, kind: m.kind,
    })),
    fds: state.fds.map((f) => ({
      fd: f.fd, kind: f.kind, target: f.target, flags: `0${f.flags.toString(8)}`, pos: f.pos.toString(), cloexec: f.cloexec,
      ...(f.sharesWith !== undefined ? { sharesWith: f.sharesWith } : {}),
    })),
    sockets: state.fds.filter((f) => f.kind === 'socket').map(describeSocket),
    signals: {
      handlers: state.sigactions
        .filter((a) => a.handler !== 0n)
        .map((a) => ({
          signal: signalName(a.signo),
          handler: a.handler === 1n ? 'SIG_IGN' : hex(a.handler),
          flags: hex(a.flags),
          mask: signalSet(a.mask),
        })),
      pending: signalSet(state.sharedPending),
    },
    timers: {
      itimers: (state.timers.itimers ?? []).map((t) => ({ which: t.which, intervalUs: t.intervalUs.toString(), valueUs: t.valueUs.toString() })),
      posix: (state.timers.posix ?? []).map((t) => ({
        id: t.id, clock: t.clock, signal: signalName(t.signo), notify: t.notify, intervalNs: t.intervalNs.toString(), valueNs: t.valueNs.toString(), overrun: t.overrun,
      })),
    },
    rlimits: state.rlimits.map((r) => ({ name: r.name, cur: limit(r.cur), max: limit(r.max) })),
    warnings: state.warnings,
  };
}

const limit = (v: bigint): string => (BigInt.asUintN(64, v) === 0xffffffffffffffffn ? 'unlimited' : v.toString());

export type ProcessDetails = ReturnType<typeof describeProcess>;

export function inspectCheckpoint(store: Store, id: number, opts: DetailOptions = {}): ProcessDetails & { checkpointId: number } {
  return { checkpointId: id, ...describeProcess(store.getState(id), opts) };
}
