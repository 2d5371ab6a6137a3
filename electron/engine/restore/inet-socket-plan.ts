/**
 * How a TCP or UDP socket comes back (capture/inet-sockets.ts saved what it needs): made again with
 * its options, bound to its address, connected to its peer (UDP) and listening again (TCP), or
 * refused with the reason when that would not give the program what it had: a TCP connection (its
 * other end holds the connection's state), a connection waiting to be accepted or a datagram waiting
 * to be read (they would be lost), or an address this machine cannot bind now (in use, or not one
 * of its addresses). Plan-time check: a test socket bound to the address and closed at once.
 */
import { readFileSync } from 'node:fs';
import type { FdState } from '../state/process-state';
import { SYS, syscall, malloc, free, copyToAddr, closeFd, SysError, errnoName } from '../native';
import { formatSockaddr, type InetSocket } from '../capture/inet-sockets';

export interface InetSocketAction {
  fd: number;
  action: 'inet-socket';
  domain: number;
  type: number;
  protocol: number;
  local: Buffer;
  peer: Buffer | null;
  listen: boolean;
  backlog: number;
  options: [number, number, number][];
  flags: number;
  cloexec: boolean;
  note: string;
}

type Refusal = { fd: number; action: 'refuse'; reason: string; fix: string };

const SOCK_STREAM = 1;
/** Options that decide whether bind succeeds: set on the test socket as the program had them. */
const BIND_OPTIONS = new Set(['1:2', '1:15', '41:26']);

export function planInetSocket(f: FdState, flags: number, cloexec: boolean): InetSocketAction | Refusal | null {
  const d = f.info?.socket as { domain: number; type: number; protocol: number; listening: boolean; inet?: InetSocket } | undefined;
  if (!d?.inet) return null;
  const proto = d.type === SOCK_STREAM ? 'TCP' : 'UDP';
  const local = Buffer.from(d.inet.local, 'hex');
  const where = formatSockaddr(d.inet.local);
  if (d.type === SOCK_STREAM && d.inet.peer !== undefined) {
    return {
      fd: f.fd, action: 'refuse',
      reason: `fd ${f.fd} is a TCP connection from ${where} to ${formatSockaddr(d.inet.peer)}: its other end holds the connection's state, which a restore cannot bring back`,
      fix: 'Checkpoint the program while it has no open TCP connections (listening sockets and UDP sockets are restored), or have it reconnect after a restore.',
    };
  }
  if (d.inet.waiting) {
    return {
      fd: f.fd, action: 'refuse',
      reason: d.listening
        ? `fd ${f.fd} (listening ${proto} socket on ${where}) had connections waiting to be accepted: they would be lost`
        : `fd ${f.fd} (${proto} socket on ${where}) had datagrams waiting to be read: they would be lost`,
      fix: 'Checkpoint the program when it has accepted or read them (take the checkpoint again).',
    };
  }
  const port = local.length >= 4 ? local.readUInt16BE(2) : 0;
  if (port !== 0) {
    const err = testBind(d.domain, d.type, d.protocol, d.inet.options, local);
    if (err !== null) {
      return {
        fd: f.fd, action: 'refuse',
        reason: `fd ${f.fd} (${d.listening ? 'listening ' : ''}${proto} socket on ${where}) cannot be bound on this machine now: ${err}`,
        fix: err.startsWith('EADDRINUSE')
          ? `Stop what uses ${proto} port ${port} here (the original program, if it still runs; \`ss -${d.type === SOCK_STREAM ? 't' : 'u'}lnp 'sport = :${port}'\` shows it), then restore.`
          : `Restore on a machine that has the address ${where.replace(/:\d+$/, '')}.`,
      };
    }
  }
  const backlog = somaxconn();
  return {
    fd: f.fd, action: 'inet-socket', domain: d.domain, type: d.type, protocol: d.protocol, local,
    peer: d.inet.peer !== undefined ? Buffer.from(d.inet.peer, 'hex') : null,
    listen: d.listening, backlog, options: d.inet.options, flags, cloexec,
    note: d.listening
      ? `${proto} socket listening on ${where} again (backlog ${backlog}: the kernel does not show the program's own)`
      : `${proto} socket on ${where}${d.inet.peer !== undefined ? ` connected to ${formatSockaddr(d.inet.peer)}` : ''} made again`,
  };
}

/** null when a socket like the program's binds to local here now, else the errno and what it means. */
function testBind(domain: number, type: number, protocol: number, options: readonly [number, number, number][], local: Buffer): string | null {
  let fd = -1;
  const mem = malloc(256);
  try {
    fd = Number(syscall(SYS.socket, [BigInt(domain), BigInt(type) | 0o2000000n, BigInt(protocol)], 'socket'));
    for (const [level, name, saved] of options) {
      if (!BIND_OPTIONS.has(`${level}:${name}`)) continue;
      // The restore binds a TCP socket with SO_REUSEADDR on (fds.ts makeInetSocket), as here.
      const value = type === SOCK_STREAM && level === 1 && name === 2 ? 1 : saved;
      const v = Buffer.alloc(4);
      v.writeInt32LE(value, 0);
      copyToAddr(mem, v);
      syscall(SYS.setsockopt, [BigInt(fd), BigInt(level), BigInt(name), mem, 4n], 'setsockopt');
    }
    copyToAddr(mem, local);
    syscall(SYS.bind, [BigInt(fd), mem, BigInt(local.length)], 'bind');
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

function somaxconn(): number {
  try {
    const n = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : 4096;
  } catch {
    return 4096;
  }
}
