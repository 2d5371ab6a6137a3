/**
 * What an IPv4/IPv6 socket needs to be made again, read from our own copy of it (pidfd_getfd) while
 * the target is frozen: its local address (getsockname), its peer for a connected UDP socket
 * (getpeername), the options a program sets and can observe (SO_REUSEADDR, SO_REUSEPORT,
 * SO_KEEPALIVE, SO_BROADCAST, IPV6_V6ONLY, TCP_NODELAY, TCP_DEFER_ACCEPT), and whether anything waits
 * in it (a connection not yet accepted, a datagram not yet read): those cannot be made again, so the
 * restore refuses such a socket rather than lose them. A TCP socket with a peer (connected or
 * connecting) is only described: its connection lives in the other end too.
 */
import { SYS, syscall, ioctlErrno, malloc, free, copyFromAddr, copyToAddr } from '../native';

export const AF_INET = 2, AF_INET6 = 10;
const SOCK_STREAM = 1, SOCK_DGRAM = 2;
const IPPROTO_TCP = 6, IPPROTO_UDP = 17, IPPROTO_IPV6 = 41;
const SOL_SOCKET = 1;
const FIONREAD = 0x541b;
const POLLIN = 1;

/** [level, option] pairs saved and set again (int values). */
const OPTIONS: readonly (readonly [number, number, string])[] = [
  [SOL_SOCKET, 2, 'SO_REUSEADDR'], [SOL_SOCKET, 15, 'SO_REUSEPORT'], [SOL_SOCKET, 9, 'SO_KEEPALIVE'], [SOL_SOCKET, 6, 'SO_BROADCAST'],
];
const TCP_OPTIONS: readonly (readonly [number, number, string])[] = [[IPPROTO_TCP, 1, 'TCP_NODELAY'], [IPPROTO_TCP, 9, 'TCP_DEFER_ACCEPT']];
const V6_OPTIONS: readonly (readonly [number, number, string])[] = [[IPPROTO_IPV6, 26, 'IPV6_V6ONLY']];

export interface InetSocket {
  /** sockaddr_in / sockaddr_in6 as the kernel gave it, hex. */
  local: string;
  /** The peer of a connected socket, hex; absent when not connected. */
  peer?: string;
  /** [level, option, value] of every saved option. */
  options: [number, number, number][];
  /** A connection waiting to be accepted, or a datagram waiting to be read. */
  waiting: boolean;
}

/** Reads the details of socket fd `ours` (a copy in this process) of the given domain/type/protocol. */
export function inetDetails(ours: number, domain: number, type: number, protocol: number, listening: boolean): InetSocket | null {
  if ((domain !== AF_INET && domain !== AF_INET6) || !((type === SOCK_STREAM && protocol === IPPROTO_TCP) || (type === SOCK_DGRAM && protocol === IPPROTO_UDP))) return null;
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
    const options: [number, number, number][] = [];
    for (const [level, name] of [...OPTIONS, ...(type === SOCK_STREAM ? TCP_OPTIONS : []), ...(domain === AF_INET6 ? V6_OPTIONS : [])]) {
      const io = Buffer.alloc(8);
      io.writeUInt32LE(4, 4);
      copyToAddr(mem, io);
      try {
        syscall(SYS.getsockopt, [BigInt(ours), BigInt(level), BigInt(name), mem, mem + 4n], 'getsockopt');
      } catch {
        continue;
      }
      copyFromAddr(io, mem);
      options.push([level, name, io.readInt32LE(0)]);
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
    return { local, ...(peer !== undefined ? { peer } : {}), options, waiting };
  } finally {
    free(mem);
  }
}

/** "127.0.0.1:8000" / "[::]:8000" from a saved sockaddr (hex). */
export function formatSockaddr(hex: string): string {
  const b = Buffer.from(hex, 'hex');
  if (b.length < 8) return '?';
  const family = b.readUInt16LE(0);
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
