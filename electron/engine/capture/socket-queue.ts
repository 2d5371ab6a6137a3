/**
 * The messages waiting at one end of a UNIX socketpair, read without consuming them: the socket is
 * taken over with pidfd_getfd (the same socket) and walked with MSG_PEEK from a peek offset
 * (SO_PEEK_OFF), one datagram or seqpacket message per peek, with its boundary; a stream peek stops
 * after the bytes that carry descriptors, whose first byte a binary search of one-byte peeks finds.
 * The copy shares the socket with the target, so its peek offset is set back to what it was.
 *
 * A peek with room for control data installs the descriptors in flight (SCM_RIGHTS) in this
 * process: each is described from /proc/self as a process descriptor is (proc/fds.ts), kept open
 * until the capture ends so that two copies of one open file description are told apart from two
 * opens (kcmp), and given a number no process descriptor uses (state/socket-queue.ts).
 * Runs while the target is frozen.
 */
import { SYS, syscall, ioctlErrno, malloc, free, copyFromAddr, copyToAddr, closeFd, SysError, E } from '../native';
import { readFd } from '../proc';
import type { FdState } from '../state/process-state';
import type { QueuedMessage } from '../state/socket-queue';
import { intOption } from './socket-details';
import { savePipeBytes } from './channels';

const FIONREAD = 0x541b;
const SOL_SOCKET = 1, SO_PEEK_OFF = 42, SO_PASSCRED = 16, SO_SNDBUF = 7, SO_RCVBUF = 8;
const SCM_RIGHTS = 1, SCM_CREDENTIALS = 2;
const MSG_PEEK = 2, MSG_TRUNC = 0x20, MSG_DONTWAIT = 0x40, MSG_CTRUNC = 0x8;
const SOCK_STREAM = 1, SOCK_SEQPACKET = 5;
const NR_KCMP = 312;
const KCMP_FILE = 0n;
/** Room for SCM_MAX_FD (253) descriptors and credentials. */
const CONTROL = 4096;
/** A queue longer than this many messages is not walked (the socket buffer bounds it far below). */
const MAX_MESSAGES = 1 << 20;

/** Descriptors found in flight in one process's queues; see the module comment. */
export class InFlight {
  private readonly ours: { fd: number; state: FdState }[] = [];
  private next: number;

  /**
   * `pid`, `fds`: the process whose queues these are and its descriptors; `others`: the other
   * processes of a tree checkpoint (a descriptor in flight that one of them also holds is marked
   * info.sharedWith = "PID:FD", and every descriptor described info.treeChecked).
   */
  constructor(private readonly pid: number, private readonly fds: readonly FdState[], private readonly others?: readonly { pid: number; fds: readonly FdState[] }[]) {
    this.next = fds.reduce((m, f) => Math.max(m, f.fd), 2) + 1;
  }

  /** Describes our copy `ours` of a descriptor in flight; keeps it open until close(). */
  describe(ours: number): FdState {
    const st = readFd(process.pid, ours);
    if (!st) throw new Error(`the descriptor in flight (our fd ${ours}) could not be read from /proc/self`);
    const same = (a: FdState): boolean => a.target === st.target && a.dev === st.dev && a.inode === st.inode;
    // One open file description with a process descriptor, or with one sent earlier: restore dups it (shared offset).
    const proc = this.fds.find((g) => same(g) && g.kind !== 'pipe' && kcmp(this.pid, g.fd, process.pid, ours));
    const earlier = proc ? undefined : this.ours.find((o) => same(o.state) && kcmp(process.pid, o.fd, process.pid, ours));
    const shares = proc?.fd ?? earlier?.state.fd;
    if (st.kind === 'pipe' && (st.flags & 3) !== 1) st.info = { ...(st.info ?? {}), ...pipeBytes(ours) };
    let elsewhere: string | undefined;
    for (const o of this.others ?? []) {
      const g = o.fds.find((x) => same(x) && kcmp(o.pid, x.fd, process.pid, ours));
      if (g) { elsewhere = `${o.pid}:${g.fd}`; break; }
    }
    const tree = this.others ? { treeChecked: true, ...(elsewhere ? { sharedWith: elsewhere } : {}) } : {};
    const out: FdState = { ...st, fd: this.next++, cloexec: false, info: { ...(st.info ?? {}), inFlight: true, ...tree }, ...(shares !== undefined && st.kind !== 'pipe' ? { sharesWith: shares } : {}) };
    this.ours.push({ fd: ours, state: out });
    return out;
  }

  /** Our copy of the descriptor in flight `state` (open until close()). */
  copyOf(state: FdState): number | undefined {
    return this.ours.find((o) => o.state === state)?.fd;
  }

  close(): void {
    for (const o of this.ours) closeFd(o.fd);
    this.ours.length = 0;
  }
}

function kcmp(pa: number, fa: number, pb: number, fb: number): boolean {
  try {
    return syscall(NR_KCMP, [BigInt(pa), BigInt(pb), KCMP_FILE, BigInt(fa), BigInt(fb)], 'kcmp') === 0n;
  } catch {
    return false;
  }
}

/** The bytes waiting in the pipe behind our read end `fd`, copied with tee (capture/channels.ts savePipeBytes). */
function pipeBytes(fd: number): { pipeData?: string } {
  const warnings: string[] = [];
  let pidfd = -1;
  const reader: FdState = { fd, kind: 'pipe', target: `our fd ${fd}`, flags: 0, pos: 0n, cloexec: true };
  try {
    pidfd = Number(syscall(SYS.pidfd_open, [BigInt(process.pid), 0n], 'pidfd_open'));
    savePipeBytes(pidfd, reader, warnings);
  } finally {
    if (pidfd >= 0) closeFd(pidfd);
  }
  if (warnings.length) throw new Error(warnings.join('; '));
  return typeof reader.info?.pipeData === 'string' ? { pipeData: reader.info.pipeData } : {};
}

export interface WalkedQueue {
  messages: QueuedMessage[];
  /** SO_PASSCRED on this end (the kernel then attaches credentials to what it receives). */
  passcred: boolean;
  /** SO_SNDBUF and SO_RCVBUF as getsockopt reads them, and SO_PEEK_OFF (-1: off). */
  options: { sndbuf: number; rcvbuf: number; peekOff: number };
  /** Why the queue cannot be sent again exactly, if it cannot. */
  refused?: string;
}

interface Peeked { n: number; data: Buffer; fds: number[]; creds?: { pid: number; uid: number; gid: number }; other: string[]; truncated: boolean }

/** One recvmsg(MSG_PEEK) at the socket's peek offset, with room for `len` bytes and control data. */
function peek(sock: number, len: number, flags: number): Peeked | null {
  return receive(sock, len, MSG_PEEK | flags);
}

/** One recvmsg(MSG_DONTWAIT | flags) with room for `len` bytes and control data; null when nothing waits. */
function receive(sock: number, len: number, flags: number): Peeked | null {
  const mem = malloc(len + CONTROL + 72);
  try {
    const ctl = mem + BigInt(len), iov = ctl + BigInt(CONTROL), msg = iov + 16n;
    const hdr = Buffer.alloc(56);
    hdr.writeBigUInt64LE(iov, 16);
    hdr.writeBigUInt64LE(1n, 24);
    hdr.writeBigUInt64LE(ctl, 32);
    hdr.writeBigUInt64LE(BigInt(CONTROL), 40);
    const vec = Buffer.alloc(16);
    vec.writeBigUInt64LE(mem, 0);
    vec.writeBigUInt64LE(BigInt(len), 8);
    copyToAddr(iov, vec);
    copyToAddr(msg, hdr);
    let n: number;
    try {
      n = Number(syscall(SYS.recvmsg, [BigInt(sock), msg, BigInt(MSG_DONTWAIT | flags)], 'recvmsg'));
    } catch (e) {
      if (e instanceof SysError && e.errno === E.EAGAIN) return null;
      throw e;
    }
    copyFromAddr(hdr, msg);
    const out: Peeked = { n, data: Buffer.alloc(Math.min(n, len)), fds: [], other: [], truncated: (hdr.readInt32LE(48) & MSG_CTRUNC) !== 0 };
    copyFromAddr(out.data, mem);
    const clen = Number(hdr.readBigUInt64LE(40));
    const cbuf = Buffer.alloc(clen);
    if (clen > 0) copyFromAddr(cbuf, ctl);
    for (let o = 0; o + 16 <= clen;) {
      const l = Number(cbuf.readBigUInt64LE(o)), level = cbuf.readInt32LE(o + 8), type = cbuf.readInt32LE(o + 12);
      if (l < 16) break;
      if (level === SOL_SOCKET && type === SCM_RIGHTS) for (let p = o + 16; p + 4 <= o + l; p += 4) out.fds.push(cbuf.readInt32LE(p));
      else if (level === SOL_SOCKET && type === SCM_CREDENTIALS) out.creds = { pid: cbuf.readInt32LE(o + 16), uid: cbuf.readUInt32LE(o + 20), gid: cbuf.readUInt32LE(o + 24) };
      else out.other.push(`control message ${level}:${type}`);
      o += (l + 7) & ~7;
    }
    return out;
  } finally {
    free(mem);
  }
}

function setPeekOff(sock: number, off: number): void {
  setInt(sock, SO_PEEK_OFF, off);
}

/**
 * Walks the queue of our copy `sock` of a socketpair end of type `type`. `flight` describes
 * descriptors in flight; without one (between the processes of a tree) they make the queue refused.
 * `ownPid`: the process the restore sends the messages from; credentials naming another pid make
 * the queue refused (sent again, they would name the restored process). `peer`: our copy of the
 * other end (streamBoundaries needs it).
 */
export function walkQueue(sock: number, type: number, flight: InFlight | null, ownPid: number | null, peer: number | null): WalkedQueue {
  const mem = malloc(8);
  let saved: number | null;
  let passcred: boolean;
  let sndbuf: number | null, rcvbuf: number | null;
  try {
    saved = intOption(sock, SOL_SOCKET, SO_PEEK_OFF, mem);
    passcred = intOption(sock, SOL_SOCKET, SO_PASSCRED, mem) === 1;
    sndbuf = intOption(sock, SOL_SOCKET, SO_SNDBUF, mem);
    rcvbuf = intOption(sock, SOL_SOCKET, SO_RCVBUF, mem);
  } finally {
    free(mem);
  }
  if (saved === null) throw new Error('SO_PEEK_OFF is not supported on this kernel');
  if (sndbuf === null || rcvbuf === null) throw new Error('its buffer sizes could not be read');
  const options = { sndbuf, rcvbuf, peekOff: saved };
  const count = Buffer.alloc(4);
  const total = ioctlErrno(sock, FIONREAD, count).ret === 0 ? count.readInt32LE(0) : 0;
  const stream = type === SOCK_STREAM;
  // A stream with nothing waiting has no messages; a datagram queue may hold empty datagrams.
  if (stream && total <= 0) return { messages: [], passcred, options };
  const messages: QueuedMessage[] = [];
  const problems: string[] = [];
  const describe = (fds: number[], where: string): FdState[] | undefined => {
    if (fds.length === 0) return undefined;
    if (!flight) {
      for (const fd of fds) closeFd(fd);
      problems.push(`${where} carries ${fds.length} descriptor(s) (SCM_RIGHTS), which Stasis does not send again yet on a socketpair between processes of a tree or at a socketpair end that is itself in flight`);
      return undefined;
    }
    const out: FdState[] = [];
    for (const fd of fds) {
      try {
        out.push(flight.describe(fd));
      } catch (e) {
        closeFd(fd);
        problems.push(`${where}: ${(e as Error).message}`);
      }
    }
    return out;
  };
  const discard = (p: Peeked): void => { for (const fd of p.fds) closeFd(fd); };
  let buf = stream ? total : Math.max(total, 64 * 1024);
  let off = 0;
  // Stream messages with descriptors -> our copies of them (kept open by flight).
  const raw = new Map<number, number[]>();
  let exact: QueuedMessage[] | null = null;
  let fdsFound = 0;
  try {
    setPeekOff(sock, 0);
    while (messages.length < MAX_MESSAGES) {
      if (stream && off >= total) break;
      const p = peek(sock, stream ? total - off : buf, stream ? 0 : MSG_TRUNC);
      if (!p) break;
      if (!stream && p.n > buf) {
        // A datagram larger than the buffer (MSG_TRUNC gave its length): again from the same place.
        discard(p);
        buf = p.n;
        setPeekOff(sock, off);
        continue;
      }
      const where = `message ${messages.length + 1} (${p.n} bytes)`;
      if (p.truncated) problems.push(`${where} carries more control data than fits in ${CONTROL} bytes`);
      for (const o of p.other) problems.push(`${where} carries a ${o}, which Stasis cannot send again`);
      if (stream && p.n === 0) break;
      if (p.creds && p.creds.pid !== ownPid) {
        problems.push(`${where} carries the credentials (SCM_CREDENTIALS, the receiver has SO_PASSCRED) of process ${p.creds.pid} (uid ${p.creds.uid}), ${ownPid === null ? 'on a socketpair between processes of the tree, which Stasis does not send again yet' : 'not of this process: sent again by the restored process, the message would name it instead'}`);
      }
      const creds = p.creds ? { creds: p.creds } : {};
      fdsFound += p.fds.length;
      const fds = p.fds.slice();
      const m: QueuedMessage = { data: p.data.toString('base64'), ...creds, ...opt(describe(p.fds, where)) };
      if (stream && m.fds) raw.set(messages.length, fds);
      messages.push(m);
      off += p.n;
      setPeekOff(sock, off);
    }
    if (messages.length >= MAX_MESSAGES) problems.push(`more than ${MAX_MESSAGES} messages wait`);
    // What the kernel counts against what the walk found: a message a peek skipped must not go unnoticed.
    const fdsQueued = Number(readFd(process.pid, sock)?.info?.scm_fds ?? fdsFound);
    if (fdsFound !== fdsQueued) problems.push(`the kernel counts ${fdsQueued} descriptors in flight in it, and the walk found ${fdsFound}`);
    const bytes = messages.reduce((n, m) => n + Buffer.from(m.data, 'base64').length, 0);
    if (type === SOCK_SEQPACKET && bytes !== total) problems.push(`the kernel counts ${total} bytes waiting in it, and the walk found ${bytes}`);
    if (raw.size > 0 && problems.length === 0) {
      if (peer === null) problems.push('descriptors wait in flight on a stream socketpair whose other end Stasis could not take over');
      else if (passcred) problems.push('descriptors wait in flight on a stream socketpair with SO_PASSCRED on, whose bytes Stasis cannot take out and put back with their credentials');
      else exact = streamBoundaries(sock, peer, messages, raw);
    }
  } finally {
    setPeekOff(sock, saved);
  }
  return { messages: exact ?? messages, passcred, options, ...(problems.length ? { refused: problems.join('; ') } : {}) };
}

const opt = (fds: FdState[] | undefined): { fds?: FdState[] } => (fds && fds.length ? { fds } : {});

/**
 * Where the bytes that carry descriptors start in each stream message that has some. A stream peek
 * cannot tell: after the bytes it was asked for it walks on, with nothing left to copy, up to the
 * next bytes that carry descriptors and hands those over too (unix_stream_read_generic, measured on
 * 6.18), so a peek of any byte before them brings them. A real read does not: the queue is taken
 * out (the target is frozen), a byte at a time through each message with descriptors until they
 * come, and put back in the same order from our copy of the other end, the descriptors with the
 * bytes they came with (our copies: the same open files). Returns the messages split there.
 */
function streamBoundaries(sock: number, peer: number, messages: readonly QueuedMessage[], raw: ReadonlyMap<number, number[]>): QueuedMessage[] {
  const out: QueuedMessage[] = [];
  const back: { data: Buffer; fds: number[] }[] = [];
  try {
    for (const [i, m] of messages.entries()) {
      const data = Buffer.from(m.data, 'base64');
      const fds = raw.get(i);
      if (!fds) {
        takeOut(sock, data.length);
        back.push({ data, fds: [] });
        out.push(m);
        continue;
      }
      let k = 0;
      for (; k < data.length; k++) if (takeOut(sock, 1)) break;
      if (k === data.length) throw new Error(`the descriptors in flight in the ${data.length} bytes at message ${i + 1} were not found`);
      takeOut(sock, data.length - k - 1);
      if (k > 0) {
        back.push({ data: data.subarray(0, k), fds: [] });
        out.push({ data: data.subarray(0, k).toString('base64') });
      }
      back.push({ data: data.subarray(k), fds });
      out.push({ ...m, data: data.subarray(k).toString('base64') });
    }
  } finally {
    // Whatever was taken out goes back, even when something failed midway.
    for (const b of back) putBack(peer, b.data, b.fds);
  }
  return out;
}

/** Reads `len` bytes off the stream `sock` (they were peeked before); whether descriptors came with them (closed here). */
function takeOut(sock: number, len: number): boolean {
  let got = 0, fds = false;
  while (got < len) {
    const r = receive(sock, len - got, 0);
    if (!r || r.n <= 0) throw new Error(`only ${got} of ${len} bytes could be read back`);
    for (const fd of r.fds) closeFd(fd);
    fds ||= r.fds.length > 0;
    got += r.n;
  }
  return fds;
}

const SO_SNDBUFFORCE = 32, MSG_NOSIGNAL = 0x4000, NR_SENDMSG = 46;

/** Sends `data` (with `fds` as SCM_RIGHTS) from our copy `peer` of the other end. */
function putBack(peer: number, data: Buffer, fds: number[]): void {
  const ctlLen = fds.length ? 16 + 4 * fds.length : 0;
  const mem = malloc(data.length + 128 + ctlLen + 8);
  try {
    const iov = mem + BigInt(data.length), msg = iov + 16n, ctl = msg + 64n;
    copyToAddr(mem, data);
    const vec = Buffer.alloc(16);
    vec.writeBigUInt64LE(mem, 0);
    vec.writeBigUInt64LE(BigInt(data.length), 8);
    copyToAddr(iov, vec);
    const hdr = Buffer.alloc(56);
    hdr.writeBigUInt64LE(iov, 16);
    hdr.writeBigUInt64LE(1n, 24);
    if (ctlLen) {
      const c = Buffer.alloc(ctlLen);
      c.writeBigUInt64LE(BigInt(ctlLen), 0);
      c.writeInt32LE(SOL_SOCKET, 8);
      c.writeInt32LE(SCM_RIGHTS, 12);
      fds.forEach((fd, i) => c.writeInt32LE(fd, 16 + 4 * i));
      copyToAddr(ctl, c);
      hdr.writeBigUInt64LE(ctl, 32);
      hdr.writeBigUInt64LE(BigInt(ctlLen), 40);
    }
    copyToAddr(msg, hdr);
    const send = (): void => { syscall(NR_SENDMSG, [BigInt(peer), msg, BigInt(MSG_DONTWAIT | MSG_NOSIGNAL)], 'sendmsg (putting the queue back)'); };
    try {
      send();
    } catch (e) {
      if (!(e instanceof SysError && e.errno === E.EAGAIN)) throw e;
      // Room while it is sent, then the target's send buffer size again.
      const was = intOption(peer, SOL_SOCKET, SO_SNDBUF, mem);
      setInt(peer, SO_SNDBUFFORCE, (was ?? 0) + 4 * data.length + 65536);
      try { send(); } finally { if (was !== null) setInt(peer, SO_SNDBUFFORCE, was >> 1); }
    }
  } finally {
    free(mem);
  }
}

function setInt(sock: number, name: number, v: number): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v, 0);
  const mem = malloc(4);
  try {
    copyToAddr(mem, b);
    syscall(SYS.setsockopt, [BigInt(sock), BigInt(SOL_SOCKET), BigInt(name), mem, 4n], 'setsockopt');
  } finally {
    free(mem);
  }
}
