/**
 * What a TCP, UDP or UNIX socket that is not a connection needs to be made again, read from our own
 * copy of it (pidfd_getfd) while the target is frozen: its local address (getsockname), its peer for
 * a connected datagram socket (getpeername), the options a program sets and can observe
 * (SO_REUSEADDR, SO_REUSEPORT, SO_KEEPALIVE, SO_BROADCAST, SO_PRIORITY, SO_MARK, IP_TOS, IP_TTL,
 * the multicast TTL/hops and loop, IPV6_V6ONLY, TCP_NODELAY, TCP_DEFER_ACCEPT, the TCP keepalive
 * times, TCP_FASTOPEN; SO_PASSCRED for UNIX; as bytes: SO_RCVTIMEO, SO_SNDTIMEO, SO_LINGER,
 * SO_BINDTODEVICE), a UNIX socket file's absolute path and mode, and whether
 * anything waits in it (a connection not yet accepted, a datagram not yet read): those cannot be
 * made again, so the restore refuses such a socket rather than lose them. A stream socket with a
 * peer (connected or connecting) gets no details: its connection lives in the other end too.
 */
import { lstatSync, readlinkSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { SYS, syscall, ioctlErrno, malloc, free, copyFromAddr, copyToAddr } from '../native';

export const AF_UNIX = 1, AF_INET = 2, AF_INET6 = 10;
const SOCK_STREAM = 1, SOCK_DGRAM = 2, SOCK_SEQPACKET = 5;
const IPPROTO_IP = 0, IPPROTO_TCP = 6, IPPROTO_UDP = 17, IPPROTO_IPV6 = 41;
const SOL_SOCKET = 1;
const FIONREAD = 0x541b;
const POLLIN = 1;

/** [level, option] pairs saved and set again (int values). */
const OPTIONS: readonly (readonly [number, number, string])[] = [
  [SOL_SOCKET, 2, 'SO_REUSEADDR'], [SOL_SOCKET, 15, 'SO_REUSEPORT'], [SOL_SOCKET, 9, 'SO_KEEPALIVE'], [SOL_SOCKET, 6, 'SO_BROADCAST'],
  [SOL_SOCKET, 12, 'SO_PRIORITY'], [SOL_SOCKET, 36, 'SO_MARK'],
];
const IP_OPTIONS: readonly (readonly [number, number, string])[] = [[IPPROTO_IP, 1, 'IP_TOS'], [IPPROTO_IP, 2, 'IP_TTL']];
/** Datagram sockets only: the kernel refuses to set them on a stream socket (EINVAL). */
const IP_DGRAM_OPTIONS: readonly (readonly [number, number, string])[] = [[IPPROTO_IP, 33, 'IP_MULTICAST_TTL'], [IPPROTO_IP, 34, 'IP_MULTICAST_LOOP']];
const TCP_OPTIONS: readonly (readonly [number, number, string])[] = [
  [IPPROTO_TCP, 1, 'TCP_NODELAY'], [IPPROTO_TCP, 9, 'TCP_DEFER_ACCEPT'], [IPPROTO_TCP, 4, 'TCP_KEEPIDLE'], [IPPROTO_TCP, 5, 'TCP_KEEPINTVL'],
  [IPPROTO_TCP, 6, 'TCP_KEEPCNT'], [IPPROTO_TCP, 23, 'TCP_FASTOPEN'],
];
const V6_OPTIONS: readonly (readonly [number, number, string])[] = [[IPPROTO_IPV6, 26, 'IPV6_V6ONLY'], [IPPROTO_IPV6, 16, 'IPV6_UNICAST_HOPS']];
const V6_DGRAM_OPTIONS: readonly (readonly [number, number, string])[] = [[IPPROTO_IPV6, 18, 'IPV6_MULTICAST_HOPS'], [IPPROTO_IPV6, 19, 'IPV6_MULTICAST_LOOP']];
const UNIX_OPTIONS: readonly (readonly [number, number, string])[] = [[SOL_SOCKET, 16, 'SO_PASSCRED']];
/** Options whose value is a struct or a string, saved as bytes: receive and send timeouts, linger, the interface it is bound to. */
const STRUCT_OPTIONS: readonly (readonly [number, number, number, string])[] = [
  [SOL_SOCKET, 20, 16, 'SO_RCVTIMEO'], [SOL_SOCKET, 21, 16, 'SO_SNDTIMEO'], [SOL_SOCKET, 13, 8, 'SO_LINGER'], [SOL_SOCKET, 25, 16, 'SO_BINDTODEVICE'],
];

export interface SocketDetails {
  /** sockaddr_in / sockaddr_in6 / sockaddr_un as the kernel gave it, hex. */
  local: string;
  /** A UNIX socket bound to a path: that path made absolute (against the process's cwd), the socket file's mode and owner (-1: gone). */
  unixFile?: { path: string; mode: number; uid: number; gid: number };
  /** The peer of a connected socket, hex; absent when not connected. */
  peer?: string;
  /** [level, option, value] of every saved option. */
  options: [number, number, number][];
  /** [level, option, bytes (hex)] of the struct- and string-valued ones that are not all zero (set: not the default). */
  structs?: [number, number, string][];
  /** A connection waiting to be accepted, or a datagram waiting to be read. */
  waiting: boolean;
}

/** An int socket option of fd (ours, in this process), through scratch memory mem (8 bytes); null when the socket has no such option. */
export function intOption(fd: number, level: number, name: number, mem: bigint): number | null {
  const io = Buffer.alloc(8);
  io.writeUInt32LE(4, 4);
  copyToAddr(mem, io);
  try {
    syscall(SYS.getsockopt, [BigInt(fd), BigInt(level), BigInt(name), mem, mem + 4n], 'getsockopt');
  } catch {
    return null;
  }
  copyFromAddr(io, mem);
  return io.readInt32LE(0);
}

/** Reads the details of socket fd `ours` (a copy in this process of one of pid's) of the given domain/type/protocol. */
export function socketDetails(pid: number, ours: number, domain: number, type: number, protocol: number, listening: boolean): SocketDetails | null {
  const inet = (domain === AF_INET || domain === AF_INET6) && ((type === SOCK_STREAM && protocol === IPPROTO_TCP) || (type === SOCK_DGRAM && protocol === IPPROTO_UDP));
  const unix = domain === AF_UNIX && (type === SOCK_STREAM || type === SOCK_DGRAM || type === SOCK_SEQPACKET);
  if (!inet && !unix) return null;
  const mem = malloc(256);
  try {
    const addr = (nr: number): string | undefined => {
      const len = Buffer.alloc(4);
      len.writeUInt32LE(128, 0);
      copyToAddr(mem + 128n, len);
      try {
        syscall(nr, [BigInt(ours), mem, mem + 128n], 'getsockname');
      } catch {
        return undefined; // ENOTCONN for getpeername of an unconnected socket
      }
      copyFromAddr(len, mem + 128n);
      const out = Buffer.alloc(Math.min(len.readUInt32LE(0), 128));
      copyFromAddr(out, mem);
      return out.toString('hex');
    };
    const local = addr(SYS.getsockname);
    if (local === undefined) return null;
    const peer = listening ? undefined : addr(SYS.getpeername);
    // A UNIX stream socket with a peer is a connection (a pair inside the process is a socketpair).
    if (unix && type !== SOCK_DGRAM && peer !== undefined) return null;
    const options: [number, number, number][] = [];
    const wanted = unix ? UNIX_OPTIONS : [
      ...OPTIONS, ...(domain === AF_INET ? IP_OPTIONS : V6_OPTIONS),
      ...(type === SOCK_STREAM ? TCP_OPTIONS : domain === AF_INET ? IP_DGRAM_OPTIONS : V6_DGRAM_OPTIONS),
    ];
    for (const [level, name] of wanted) {
      const v = intOption(ours, level, name, mem);
      if (v !== null) options.push([level, name, v]);
    }
    const structs: [number, number, string][] = [];
    for (const [level, name, size] of STRUCT_OPTIONS) {
      const io = Buffer.alloc(8);
      io.writeUInt32LE(size, 0);
      copyToAddr(mem + 64n, io);
      copyToAddr(mem, Buffer.alloc(size));
      try {
        syscall(SYS.getsockopt, [BigInt(ours), BigInt(level), BigInt(name), mem, mem + 64n], 'getsockopt');
      } catch {
        continue;
      }
      copyFromAddr(io, mem + 64n);
      const v = Buffer.alloc(Math.min(io.readUInt32LE(0), size));
      copyFromAddr(v, mem);
      if (v.some((b) => b !== 0)) structs.push([level, name, v.toString('hex')]);
    }
    let waiting = false;
    if (listening) {
      // A listening socket polls readable exactly when a connection waits in its accept queue.
      const pfd = Buffer.alloc(8);
      pfd.writeInt32LE(ours, 0);
      pfd.writeInt16LE(POLLIN, 4);
      copyToAddr(mem, pfd);
      const n = syscall(SYS.poll, [mem, 1n, 0n], 'poll');
      copyFromAddr(pfd, mem);
      waiting = n > 0n && (pfd.readInt16LE(6) & POLLIN) !== 0;
    } else {
      const count = Buffer.alloc(4);
      waiting = ioctlErrno(ours, FIONREAD, count).ret === 0 && count.readInt32LE(0) > 0;
    }
    const unixFile = unix ? socketFile(pid, local) : undefined;
    return { local, ...(unixFile ? { unixFile } : {}), ...(peer !== undefined ? { peer } : {}), options, ...(structs.length ? { structs } : {}), waiting };
  } finally {
    free(mem);
  }
}

/** The path a UNIX socket is bound to (sun_path, not abstract), absolute, and its file's mode; undefined for abstract and unbound ones. */
function socketFile(pid: number, local: string): { path: string; mode: number; uid: number; gid: number } | undefined {
  const b = Buffer.from(local, 'hex');
  if (b.length <= 2 || b[2] === 0) return undefined;
  const end = b.indexOf(0, 2);
  const name = b.subarray(2, end < 0 ? b.length : end).toString();
  let path = name;
  if (!isAbsolute(name)) {
    try { path = join(readlinkSync(`/proc/${pid}/cwd`), name); } catch { return undefined; }
  }
  try {
    const st = lstatSync(path);
    return { path, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
  } catch {
    return { path, mode: -1, uid: -1, gid: -1 }; // the socket file was removed: restore binds a new one there
  }
}

/** "127.0.0.1:8000" / "[::]:8000" / "/run/x.sock" / "@abstract" from a saved sockaddr (hex). */
export function formatSockaddr(hex: string): string {
  const b = Buffer.from(hex, 'hex');
  if (b.length < 2) return '?';
  const family = b.readUInt16LE(0);
  if (family === AF_UNIX) {
    if (b.length <= 2) return '(unnamed)';
    const abstract = b[2] === 0;
    const body = b.subarray(abstract ? 3 : 2);
    const end = abstract ? body.length : body.indexOf(0);
    return `${abstract ? '@' : ''}${body.subarray(0, end < 0 ? body.length : end).toString()}`;
  }
  const port = b.readUInt16BE(2);
  if (family === AF_INET) return `${[...b.subarray(4, 8)].join('.')}:${port}`;
  if (family === AF_INET6 && b.length >= 24) {
    const w: number[] = [];
    for (let i = 0; i < 8; i++) w.push(b.readUInt16BE(8 + 2 * i));
    // The longest run of two or more zero groups becomes "::" (RFC 5952).
    let best = -1, bestLen = 0;
    for (let i = 0; i < 8;) {
      let j = i;
      while (j < 8 && w[j] === 0) j++;
      if (j - i >= 2 && j - i > bestLen) { best = i; bestLen = j - i; }
      i = j > i ? j : i + 1;
    }
    const hex = w.map((x) => x.toString(16));
    const ip = best < 0 ? hex.join(':') : `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
    return `[${ip}]:${port}`;
  }
  return '?';
}
