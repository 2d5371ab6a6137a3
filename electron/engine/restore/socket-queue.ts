/**
 * The messages that waited at a socketpair end (state/socket-queue.ts) sent again, in order, one
 * sendmsg each from the restored process's peer end, so each keeps its boundary, with the
 * descriptors that were in flight with it (SCM_RIGHTS: the restore placed them at spare numbers)
 * and the credentials the kernel had attached (SCM_CREDENTIALS: sent explicitly, which root may;
 * the pid is the restored process's own, which is who had sent them: capture refuses others).
 * A queue the restore-time send buffer cannot hold gets the buffer raised (SO_SNDBUFFORCE) while
 * it is sent, and set back after.
 */
import { StasisError } from '../../../shared/errors';
import type { Remote } from './remote';
import { NR } from './sysno';

export interface OutMessage { data: Buffer; fds: number[]; creds?: { uid: number; gid: number } }

const SOL_SOCKET = 1n, SO_SNDBUF = 7n, SO_RCVBUF = 8n, SO_SNDBUFFORCE = 32n, SO_RCVBUFFORCE = 33n, SO_PASSCRED = 16n, SO_PEEK_OFF = 42n;
const SCM_RIGHTS = 1, SCM_CREDENTIALS = 2;
const MSG_DONTWAIT = 0x40n, MSG_NOSIGNAL = 0x4000n;
const EAGAIN = 11n;
/** Bytes that go through the trampoline's scratch area; larger messages through a mapping of their own. */
const SCRATCH_BYTES = 32 * 1024;
const PROT_RW = 3n, MAP_PRIVATE_ANON = 0x22n;

const align8 = (n: number): number => (n + 7) & ~7;

function control(m: OutMessage, pid: number): Buffer {
  const parts: Buffer[] = [];
  if (m.fds.length) {
    const len = 16 + 4 * m.fds.length;
    const c = Buffer.alloc(align8(len));
    c.writeBigUInt64LE(BigInt(len), 0);
    c.writeInt32LE(1, 8);
    c.writeInt32LE(SCM_RIGHTS, 12);
    m.fds.forEach((fd, i) => c.writeInt32LE(fd, 16 + 4 * i));
    parts.push(c);
  }
  if (m.creds) {
    const c = Buffer.alloc(32);
    c.writeBigUInt64LE(28n, 0);
    c.writeInt32LE(1, 8);
    c.writeInt32LE(SCM_CREDENTIALS, 12);
    c.writeInt32LE(pid, 16);
    c.writeUInt32LE(m.creds.uid >>> 0, 20);
    c.writeUInt32LE(m.creds.gid >>> 0, 24);
    parts.push(c);
  }
  return Buffer.concat(parts);
}

function sendOne(r: Remote, into: bigint, m: OutMessage): bigint {
  r.resetScratch();
  let big = 0n;
  let dataAddr: bigint;
  if (m.data.length > SCRATCH_BYTES) {
    big = r.call(NR.mmap, [0n, BigInt(m.data.length), PROT_RW, MAP_PRIVATE_ANON, -1n, 0n], `a buffer for a ${m.data.length}-byte message`);
    r.writeBulk(big, m.data);
    dataAddr = big;
  } else dataAddr = m.data.length ? r.put(m.data) : 0n;
  try {
    const iov = Buffer.alloc(16);
    iov.writeBigUInt64LE(dataAddr, 0);
    iov.writeBigUInt64LE(BigInt(m.data.length), 8);
    const ctl = control(m, r.pid);
    const hdr = Buffer.alloc(56);
    hdr.writeBigUInt64LE(r.put(iov), 16);
    hdr.writeBigUInt64LE(1n, 24);
    if (ctl.length) {
      hdr.writeBigUInt64LE(r.put(ctl), 32);
      hdr.writeBigUInt64LE(BigInt(ctl.length), 40);
    }
    return r.raw(NR.sendmsg, [into, r.put(hdr), MSG_DONTWAIT | MSG_NOSIGNAL]);
  } finally {
    if (big) r.raw(NR.munmap, [big, BigInt(m.data.length)]);
  }
}

function intOpt(r: Remote, fd: bigint, name: bigint, what: string): number {
  r.resetScratch();
  const val = r.reserve(4), len = r.put(Buffer.from([4, 0, 0, 0]));
  r.call(NR.getsockopt, [fd, SOL_SOCKET, name, val, len], what);
  const b = Buffer.alloc(4);
  r.read(val, b);
  return b.readInt32LE(0);
}

function setIntOpt(r: Remote, fd: bigint, name: bigint, v: number, what: string): void {
  r.resetScratch();
  const b = Buffer.alloc(4);
  b.writeInt32LE(v, 0);
  r.call(NR.setsockopt, [fd, SOL_SOCKET, name, r.put(b), 4n], what);
}

/** SO_PASSCRED on a recreated end whose receiver had it (credentials then come with what it reads). */
export function setPasscred(r: Remote, fd: bigint, what: string): void {
  setIntOpt(r, fd, SO_PASSCRED, 1, `SO_PASSCRED on ${what}`);
}

/** Sends `msgs` into `into` (a non-blocking socket of the restored process). */
export function sendQueue(r: Remote, into: bigint, msgs: readonly OutMessage[], what: string): void {
  let raisedFrom: number | null = null;
  const total = msgs.reduce((n, m) => n + m.data.length, 0);
  try {
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i]!;
      let n = sendOne(r, into, m);
      if (n === -EAGAIN && raisedFrom === null) {
        // The queue was longer than this socket's send buffer holds now: room for all of it while it is sent.
        raisedFrom = intOpt(r, into, SO_SNDBUF, `SO_SNDBUF of ${what}`);
        setIntOpt(r, into, SO_SNDBUFFORCE, Math.min(0x3fffffff, 2 * total + msgs.length * 1024 + raisedFrom), `SO_SNDBUFFORCE on ${what} (its waiting messages need more room than the send buffer has)`);
        n = sendOne(r, into, m);
      }
      if (n !== BigInt(m.data.length)) {
        throw new StasisError('INTERNAL', `Message ${i + 1} of the ${msgs.length} that waited in ${what} (${m.data.length} bytes${m.fds.length ? `, ${m.fds.length} descriptor(s)` : ''}) could not be sent again: ${n < 0n ? `errno ${-n}` : `${n} bytes went`}.`);
      }
    }
  } finally {
    // The kernel doubles what is set (SO_SNDBUF reads back doubled): half of it gives the same value back.
    if (raisedFrom !== null) setIntOpt(r, into, SO_SNDBUFFORCE, raisedFrom >> 1, `SO_SNDBUF of ${what} set back`);
  }
}

/**
 * A recreated end's send and receive buffer sizes (when they differ from what the new socket got:
 * the FORCE options need CAP_NET_ADMIN, and half the value read, which the kernel doubles) and its
 * peek offset, once its messages are in (sending does not move the receiver's offset).
 */
export function setPairOptions(r: Remote, fd: bigint, o: { sndbuf: number; rcvbuf: number; peekOff: number }, what: string): void {
  for (const [get, force, want, name] of [[SO_SNDBUF, SO_SNDBUFFORCE, o.sndbuf, 'SO_SNDBUF'], [SO_RCVBUF, SO_RCVBUFFORCE, o.rcvbuf, 'SO_RCVBUF']] as const) {
    if (intOpt(r, fd, get, `${name} of ${what}`) !== want) setIntOpt(r, fd, force, want >> 1, `${name} of ${what} (${want})`);
  }
  if (o.peekOff >= 0) setIntOpt(r, fd, SO_PEEK_OFF, o.peekOff, `SO_PEEK_OFF of ${what}`);
}
