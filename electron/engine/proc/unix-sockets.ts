/**
 * UNIX sockets as the kernel's sock_diag netlink interface lists them: inode -> type and the inode
 * of the peer socket. /proc shows a socket descriptor only as "socket:[INODE]"; the peer is what
 * tells that two descriptors of one process are the two ends of one socketpair. One dump of every
 * UNIX socket of the network namespace (NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY, UDIAG_SHOW_PEER).
 */
import { SYS, syscall, malloc, free, copyFromAddr, copyToAddr, closeFd } from '../native';

const AF_NETLINK = 16;
const AF_UNIX = 1;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_SOCK_DIAG = 4;
const SOCK_DIAG_BY_FAMILY = 20;
const NLM_F_REQUEST = 1;
const NLM_F_DUMP = 0x300;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const UDIAG_SHOW_PEER = 4;
const UNIX_DIAG_PEER = 2;
const BUF = 64 * 1024;

export interface UnixSocketInfo {
  /** SOCK_STREAM 1, SOCK_DGRAM 2, SOCK_SEQPACKET 5. */
  type: number;
  /** Inode of the connected peer socket, 0 when none. */
  peer: number;
}

export function unixSockets(): Map<number, UnixSocketInfo> {
  const out = new Map<number, UnixSocketInfo>();
  const fd = Number(syscall(SYS.socket, [BigInt(AF_NETLINK), BigInt(SOCK_RAW | SOCK_CLOEXEC), BigInt(NETLINK_SOCK_DIAG)], 'socket(NETLINK_SOCK_DIAG)'));
  const mem = malloc(BUF);
  try {
    const req = Buffer.alloc(40);
    req.writeUInt32LE(40, 0);
    req.writeUInt16LE(SOCK_DIAG_BY_FAMILY, 4);
    req.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
    req.writeUInt32LE(1, 8);
    req.writeUInt8(AF_UNIX, 16);
    req.writeUInt32LE(0xffffffff, 20); // every state
    req.writeUInt32LE(UDIAG_SHOW_PEER, 28);
    req.writeUInt32LE(0xffffffff, 32); // no cookie
    req.writeUInt32LE(0xffffffff, 36);
    copyToAddr(mem, req);
    syscall(SYS.sendto, [BigInt(fd), mem, 40n, 0n, 0n, 0n], 'sendto(sock_diag)');
    const buf = Buffer.alloc(BUF);
    for (;;) {
      const n = Number(syscall(SYS.recvfrom, [BigInt(fd), mem, BigInt(BUF), 0n, 0n, 0n], 'recvfrom(sock_diag)'));
      if (n <= 0) return out;
      copyFromAddr(buf.subarray(0, n), mem);
      for (let o = 0; o + 16 <= n; ) {
        const len = buf.readUInt32LE(o);
        const type = buf.readUInt16LE(o + 4);
        if (len < 16 || o + len > n) return out;
        if (type === NLMSG_DONE || type === NLMSG_ERROR) return out;
        if (type === SOCK_DIAG_BY_FAMILY && len >= 32) {
          const sockType = buf.readUInt8(o + 17);
          const ino = buf.readUInt32LE(o + 20);
          let peer = 0;
          for (let a = o + 32; a + 4 <= o + len; ) {
            const alen = buf.readUInt16LE(a);
            const atype = buf.readUInt16LE(a + 2);
            if (alen < 4) break;
            if (atype === UNIX_DIAG_PEER && alen >= 8) peer = buf.readUInt32LE(a + 4);
            a += (alen + 3) & ~3;
          }
          out.set(ino, { type: sockType, peer });
        }
        o += (len + 3) & ~3;
      }
    }
  } finally {
    free(mem);
    closeFd(fd);
  }
}
