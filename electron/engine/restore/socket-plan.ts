/**
 * How a socket that is not a connection comes back (capture/socket-details.ts saved what it needs):
 * TCP and UDP (IPv4, IPv6) and UNIX ones, made again with their options, bound to their address,
 * connected to their peer (datagram sockets) and listening again. Refused with the reason when that
 * would not give the program what it had: a TCP connection (its other end holds the connection's
 * state), a connection waiting to be accepted or a datagram waiting to be read (they would be lost),
 * an address this machine cannot bind now (in use, or not one of its addresses), a UNIX datagram
 * socket whose peer is gone. Plan-time checks: a test socket bound to the address and closed at
 * once; for UNIX paths and peers, /proc/net/unix.
 */
import { existsSync, lstatSync, readFileSync } from 'node:fs';
import type { FdState } from '../state/process-state';
import { SYS, syscall, malloc, free, copyToAddr, closeFd, SysError, errnoName } from '../native';
import { AF_UNIX, formatSockaddr, type SocketDetails } from '../capture/socket-details';

export interface SocketAction {
  fd: number;
  action: 'socket';
  domain: number;
  type: number;
  protocol: number;
  local: Buffer;
  peer: Buffer | null;
  listen: boolean;
  backlog: number;
  options: [number, number, number][];
  /** [level, option, bytes (hex)]: timeouts, linger, the interface it is bound to. */
  structs: [number, number, string][];
  /** Whether to bind to local (false: an unbound socket). */
  bind: boolean;
  /** A UNIX socket bound to a path: its stale socket file is removed before the bind, and its mode and owner given back after. */
  unixFile?: { path: string; mode: number; uid: number; gid: number };
  flags: number;
  cloexec: boolean;
  note: string;
}

type Refusal = { fd: number; action: 'refuse'; reason: string; fix: string };

const SOCK_STREAM = 1, SOCK_DGRAM = 2;
/** Options that decide whether bind succeeds: set on the test socket as the program had them. */
const BIND_OPTIONS = new Set(['1:2', '1:15', '41:26']);

export function planSocket(f: FdState, flags: number, cloexec: boolean): SocketAction | Refusal | null {
  const d = f.info?.socket as { domain: number; type: number; protocol: number; listening: boolean; detail?: SocketDetails } | undefined;
  if (!d?.detail) return null;
  const x = d.detail;
  const unix = d.domain === AF_UNIX;
  const proto = unix ? `UNIX ${d.type === SOCK_DGRAM ? 'datagram' : 'stream'}` : d.type === SOCK_STREAM ? 'TCP' : 'UDP';
  const local = Buffer.from(x.local, 'hex');
  const where = formatSockaddr(x.local);
  const refuse = (reason: string, fix: string): Refusal => ({ fd: f.fd, action: 'refuse', reason: `fd ${f.fd} ${reason}`, fix });
  if (!unix && d.type === SOCK_STREAM && x.peer !== undefined) {
    return refuse(`is a TCP connection from ${where} to ${formatSockaddr(x.peer)}: its other end holds the connection's state, which a restore cannot bring back`,
      'Checkpoint the program while it has no open TCP connections (listening sockets and UDP sockets are restored), or have it reconnect after a restore.');
  }
  if (x.waiting) {
    return refuse(d.listening
      ? `(listening ${proto} socket on ${where}) had connections waiting to be accepted: they would be lost`
      : `(${proto} socket on ${where}) had datagrams waiting to be read: they would be lost`,
    'Checkpoint the program when it has accepted or read them (take the checkpoint again).');
  }
  const peer = x.peer !== undefined ? Buffer.from(x.peer, 'hex') : null;
  if (unix && peer) {
    // A datagram socket connected to a named one (a logger to /dev/log): connected again by name.
    if (peer.length <= 2) return refuse(`(${proto} socket) was connected to an unnamed socket, which cannot be found again`, 'Have the program reconnect after a restore, or checkpoint it before it connects.');
    const name = formatSockaddr(x.peer!);
    const err = boundUnixNames().has(name) ? null : 'no socket is bound there';
    if (err !== null) return refuse(`(${proto} socket) was connected to ${formatSockaddr(x.peer!)}, which is not there now: ${err}`, `Start what listens on ${formatSockaddr(x.peer!)}, then restore.`);
  }
  const structs = x.structs ?? [];
  const device = boundDevice(structs);
  if (device !== null && !existsSync(`/sys/class/net/${device}`)) {
    return refuse(`(${proto} socket on ${where}) is bound to the network interface ${device} (SO_BINDTODEVICE), which this machine does not have`, `Restore on a machine with an interface named ${device}, or create it (e.g. a VLAN or bridge of that name).`);
  }
  const bindable = unix ? local.length > 2 : local.length >= 4 && local.readUInt16BE(2) !== 0;
  if (bindable) {
    const err = unix && x.unixFile ? checkSocketFile(x.unixFile.path, where) : testBind(d.domain, d.type, d.protocol, x.options, local, device);
    if (err !== null) {
      const port = unix ? 0 : local.readUInt16BE(2);
      return refuse(`(${d.listening ? 'listening ' : ''}${proto} socket on ${where}) cannot be bound on this machine now: ${err}`,
        unix ? `Stop what uses ${where} (the original program, if it still runs), or remove what is at that path, then restore.`
          : err.startsWith('EADDRINUSE')
            ? `Stop what uses ${proto} port ${port} here (the original program, if it still runs; \`ss -${d.type === SOCK_STREAM ? 't' : 'u'}lnp 'sport = :${port}'\` shows it), then restore.`
            : `Restore on a machine that has the address ${where.replace(/:\d+$/, '')}.`);
    }
  }
  const backlog = somaxconn();
  return {
    fd: f.fd, action: 'socket', domain: d.domain, type: d.type, protocol: d.protocol, local, peer,
    listen: d.listening, backlog, options: x.options, structs, bind: bindable, ...(x.unixFile ? { unixFile: x.unixFile } : {}), flags, cloexec,
    note: d.listening
      ? `${proto} socket listening on ${where} again (backlog ${backlog}: the kernel does not show the program's own)`
      : `${proto} socket${bindable ? ` on ${where}` : ''}${peer ? ` connected to ${formatSockaddr(x.peer!)}` : ''} made again`,
  };
}

/** null when a socket like the program's binds to local here now, else the errno and what it means. */
function testBind(domain: number, type: number, protocol: number, options: readonly [number, number, number][], local: Buffer, device: string | null): string | null {
  return withTestSocket(domain, type, protocol, (fd, mem) => {
    if (device !== null) {
      const name = Buffer.from(`${device}\0`);
      copyToAddr(mem, name);
      syscall(SYS.setsockopt, [BigInt(fd), 1n, 25n, mem, BigInt(name.length)], 'setsockopt(SO_BINDTODEVICE)');
    }
    for (const [level, name, saved] of options) {
      if (!BIND_OPTIONS.has(`${level}:${name}`)) continue;
      // Bound as the restore binds it (fds.ts makeSocket): SO_REUSEADDR on while binding a TCP socket.
      const value = level === 1 && name === 2 && reusesWhileBinding(domain, type) ? 1 : saved;
      const v = Buffer.alloc(4);
      v.writeInt32LE(value, 0);
      copyToAddr(mem, v);
      syscall(SYS.setsockopt, [BigInt(fd), BigInt(level), BigInt(name), mem, 4n], 'setsockopt');
    }
    copyToAddr(mem, local);
    syscall(SYS.bind, [BigInt(fd), mem, BigInt(local.length)], 'bind');
  });
}

/**
 * A UNIX socket path: free, or a socket file no socket is bound to any more (the original's, left
 * when it died: the restore removes it before binding, as CRIU does). Anything else there is in use.
 * Read from /proc/net/unix, which names a socket as it was bound (asBound: maybe relative):
 * connecting to find out would queue a connection on a live listener.
 */
function checkSocketFile(path: string, asBound: string): string | null {
  let st;
  try { st = lstatSync(path); } catch { return null; }
  if (!st.isSocket()) return `EADDRINUSE (${path} exists and is not a socket)`;
  const bound = boundUnixNames();
  return bound.has(path) || bound.has(asBound) ? `EADDRINUSE (a socket is bound to ${path})` : null;
}

/** Names UNIX sockets of this network namespace are bound to ("/path", "@abstract"), from /proc/net/unix. */
function boundUnixNames(): Set<string> {
  const names = new Set<string>();
  try {
    for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length >= 8) names.add(cols.slice(7).join(' '));
    }
  } catch { /* no procfs net: nothing known to be bound */ }
  return names;
}

function withTestSocket(domain: number, type: number, protocol: number, use: (fd: number, mem: bigint) => void): string | null {
  let fd = -1;
  const mem = malloc(256);
  try {
    fd = Number(syscall(SYS.socket, [BigInt(domain), BigInt(type) | 0o2000000n | 0o4000n, BigInt(protocol)], 'socket'));
    use(fd, mem);
    return null;
  } catch (e) {
    if (!(e instanceof SysError)) throw e;
    const name = errnoName(e.errno);
    return name === 'EADDRINUSE' ? 'EADDRINUSE (something else uses that address and port)'
      : name === 'EADDRNOTAVAIL' ? 'EADDRNOTAVAIL (no such local address here)'
      : name === 'EACCES' ? 'EACCES (a privileged port)' : name;
  } finally {
    if (fd >= 0) closeFd(fd);
    free(mem);
  }
}

/**
 * Whether a socket is bound with SO_REUSEADDR on whatever the program set (then set back), as CRIU
 * does: a TCP socket, so connections of the original left in TIME_WAIT on its port do not stop the
 * bind (a listener there still does). The pre-flight's test bind and the restore both ask this.
 */
export function reusesWhileBinding(domain: number, type: number): boolean {
  return domain !== AF_UNIX && type === SOCK_STREAM;
}

/** The interface name SO_BINDTODEVICE names, if the program set one. */
function boundDevice(structs: readonly [number, number, string][]): string | null {
  const hex = structs.find(([level, name]) => level === 1 && name === 25)?.[2];
  if (!hex) return null;
  const b = Buffer.from(hex, 'hex');
  const end = b.indexOf(0);
  const name = b.subarray(0, end < 0 ? b.length : end).toString();
  // An interface name never holds a slash (it is a directory name under /sys/class/net).
  return name && !name.includes('/') ? name : null;
}

function somaxconn(): number {
  try {
    const n = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : 4096;
  } catch {
    return 4096;
  }
}
