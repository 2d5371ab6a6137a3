/**
 * Pseudo-terminal pairs the program made (capture/ptys.ts) made again inside the restored process:
 * /dev/ptmx opened, unlocked, its window size, the bytes that waited in either direction written
 * back through the line discipline shaped so that it leaves them as they were, termios, packet
 * mode, exclusive bits and lock set back. Slave descriptors are opened from the new master with
 * TIOCGPTPEER (so they are of this pair whatever devpts /dev/pts is); the pty number is whatever
 * the kernel hands out. The session leader whose controlling terminal it was takes it again
 * (TIOCSCTTY) and puts its foreground group back (TIOCSPGRP), with every signal blocked.
 * Touches only the Remote it is given.
 */
import { StasisError } from '../../../shared/errors';
import type { FdState, ProcessState } from '../state/process-state';
import { TIOC, canonicalReplay, isCanonical, rawInput, withoutOutputProcessing, type PtyInfo } from '../state/pty';
import type { FdAction } from './fd-plan';
import type { Remote } from './remote';
import { NR } from './sysno';
import { sleepMs } from '../sleep-sync';

const O_RDWR = 2, O_NOCTTY = 0o400, O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000;
const CHUNK = 32 * 1024;
/** What the slave's line discipline holds at most (N_TTY_BUF_SIZE - 1): more waits in the tty buffers. */
const LDISC_MAX = 4095;

function int(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v, 0);
  return b;
}

function ioctl(r: Remote, fd: bigint, req: number, arg: Buffer | bigint, what: string): bigint {
  r.resetScratch();
  return r.call(NR.ioctl, [fd, BigInt(req), typeof arg === 'bigint' ? arg : r.put(arg)], what);
}

function writeAll(r: Remote, fd: bigint, data: Buffer, what: string): void {
  for (let o = 0; o < data.length;) {
    r.resetScratch();
    const part = data.subarray(o, o + CHUNK);
    const n = r.raw(NR.write, [fd, r.put(part), BigInt(part.length)]);
    if (n <= 0n) throw new StasisError('INTERNAL', `${what}: only ${o} of ${data.length} bytes went back${n < 0n ? ` (errno ${-n})` : ''}.`);
    o += Number(n);
  }
}

/** The other side's bytes reach a line discipline asynchronously (a kernel work item): wait for them. */
function waitQueued(r: Remote, fd: bigint, want: number, what: string): void {
  const target = Math.min(want, LDISC_MAX);
  for (let i = 0; i < 500; i++) {
    r.resetScratch();
    const at = r.reserve(4);
    r.call(NR.ioctl, [fd, BigInt(TIOC.FIONREAD), at], `FIONREAD (${what})`);
    const b = Buffer.alloc(4);
    r.read(at, b);
    if (b.readInt32LE(0) >= target) return;
    sleepMs(1);
  }
  throw new StasisError('INTERNAL', `${what}: the ${want} bytes written back did not arrive.`);
}

/** Opens this pair's slave side from its master (never as a controlling terminal by accident). */
export function openSlave(r: Remote, master: bigint, flags: number, what: string): bigint {
  return ioctl(r, master, TIOC.TIOCGPTPEER, BigInt((flags & ~O_CLOEXEC) | O_NOCTTY | O_CLOEXEC), `opening the slave side of ${what} (TIOCGPTPEER)`);
}

/** A new pair set up as `p` was; returns the master's descriptor (close-on-exec, at the lowest free number). */
export function makePty(r: Remote, p: PtyInfo, flags: number): bigint {
  const what = `the pseudo-terminal that was /dev/pts/${p.index}`;
  r.resetScratch();
  const m = r.call(NR.open, [r.putString('/dev/ptmx'), BigInt((flags & (3 | O_NONBLOCK)) | O_NOCTTY | O_CLOEXEC), 0n], `opening /dev/ptmx for ${what}`);
  ioctl(r, m, TIOC.TIOCSPTLCK, int(0), `unlocking ${what}`);
  ioctl(r, m, TIOC.TIOCSWINSZ, Buffer.from(p.winsize, 'hex'), `window size of ${what}`);
  const termios = Buffer.from(p.termios, 'hex');
  const toMaster = p.toMaster ? Buffer.from(p.toMaster, 'base64') : null;
  const toSlave = p.toSlave ? Buffer.from(p.toSlave, 'base64') : null;
  // Opened and closed once when every slave descriptor had been closed: the master then reads EIO (hang-up) as before.
  if (toMaster || toSlave || p.hangup || p.exclusive.slave) {
    const s = openSlave(r, m, O_RDWR | O_NONBLOCK, what);
    try {
      if (toMaster) {
        ioctl(r, m, TIOC.TCSETS2, withoutOutputProcessing(termios), `output processing off on ${what}`);
        writeAll(r, s, toMaster, `the bytes ${what} had for its master`);
        waitQueued(r, m, toMaster.length, `the bytes ${what} had for its master`);
      }
      if (toSlave && isCanonical(termios)) {
        // Lines typed in again as they were (capture/ptys.ts saveLines), then the unfinished one.
        ioctl(r, m, TIOC.TCSETS2, canonicalReplay(termios), `plain canonical input on ${what}`);
        writeAll(r, m, toSlave, `the lines ${what} had for its slave side`);
        waitQueued(r, s, p.toSlaveLines ?? 0, `the lines ${what} had for its slave side`);
        // End-of-file marks and the unfinished line are not counted; they came in the same write.
        if (toSlave.length > (p.toSlaveLines ?? 0)) sleepMs(5);
      } else if (toSlave) {
        ioctl(r, m, TIOC.TCSETS2, rawInput(termios), `raw input on ${what}`);
        writeAll(r, m, toSlave, `the bytes ${what} had for its slave side`);
        waitQueued(r, s, toSlave.length, `the bytes ${what} had for its slave side`);
      }
      if (p.exclusive.slave) ioctl(r, s, TIOC.TIOCEXCL, 0n, `exclusive mode of ${what}`);
    } finally {
      r.raw(NR.close, [s]);
    }
  }
  ioctl(r, m, TIOC.TCSETS2, termios, `termios of ${what}`);
  if (p.packet) ioctl(r, m, TIOC.TIOCPKT, int(1), `packet mode of ${what}`);
  if (p.exclusive.master) ioctl(r, m, TIOC.TIOCEXCL, 0n, `exclusive mode of the master of ${what}`);
  if (p.locked) ioctl(r, m, TIOC.TIOCSPTLCK, int(1), `locking ${what}`);
  return m;
}

/**
 * The master descriptors of this process, each pair made once (or taken from the tree root's
 * parked copy, key "pty:INDEX") and dup'ed to every number of it. Returns pty number -> a
 * descriptor of its master now in the process (for the slave sides).
 */
export function placePtyMasters(r: Remote, plans: Iterable<FdAction>, parked?: ReadonlyMap<string, number>): Map<number, number> {
  const at = new Map<number, number>();
  for (const a of plans) {
    if (a.action !== 'pty-master') continue;
    const first = at.get(a.index);
    const src = first !== undefined ? BigInt(first) : parked?.has(`pty:${a.index}`) ? BigInt(parked.get(`pty:${a.index}`)!) : null;
    const got = src ?? makePty(r, a.pty, a.flags);
    r.call(NR.dup3, [got, BigInt(a.fd), BigInt(a.cloexec ? O_CLOEXEC : 0)], `dup3 to fd ${a.fd} (master of /dev/pts/${a.index})`);
    if (src === null) r.raw(NR.close, [got]);
    if (first === undefined) at.set(a.index, a.fd);
  }
  for (const [k, fd] of parked ?? []) {
    const m = /^pty:(\d+)$/.exec(k);
    if (m && !at.has(Number(m[1]))) at.set(Number(m[1]), fd);
  }
  return at;
}

/** The pairs a checkpoint made (one entry per pty number), with the flags of their first master descriptor. */
export function ptysOf(states: readonly ProcessState[]): { pty: PtyInfo; flags: number }[] {
  const out = new Map<number, { pty: PtyInfo; flags: number }>();
  for (const s of states) {
    for (const f of s.fds) {
      const p = ptyInfo(f);
      if (p && !out.has(p.index)) out.set(p.index, { pty: p, flags: f.flags });
    }
  }
  return [...out.values()];
}

export function ptyInfo(f: FdState): PtyInfo | null {
  const p = f.info?.pty as PtyInfo | undefined;
  return f.kind === 'chr' && f.target === '/dev/ptmx' && typeof p?.index === 'number' && typeof p.termios === 'string' ? p : null;
}

/**
 * Tree restores, in the root before any fork: every pair the members made, parked from `from` on
 * (key "pty:INDEX") so that each member inherits the master it holds or opens its slave side from
 * it. Returns the next free number.
 */
export function parkTreePtys(r: Remote, ptys: readonly { pty: PtyInfo; flags: number }[], from: number, parked: Map<string, number>): number {
  let next = from;
  for (const { pty, flags } of ptys) {
    const m = makePty(r, pty, flags);
    r.call(NR.dup3, [m, BigInt(next), 0n], `parking the master of /dev/pts/${pty.index}`);
    r.raw(NR.close, [m]);
    parked.set(`pty:${pty.index}`, next++);
  }
  return next;
}

/**
 * In a session leader (its setsid done, before it forks its children, who inherit it): the pair
 * whose session it led becomes its controlling terminal again. `masters`: pty number -> a
 * descriptor of that master in this process.
 */
export function claimControllingPty(r: Remote, state: ProcessState, ptys: readonly { pty: PtyInfo }[], masters: ReadonlyMap<number, number>): void {
  if (state.sid !== state.pid) return;
  for (const { pty } of ptys) {
    const m = masters.get(pty.index);
    if (pty.session !== state.pid || m === undefined) continue;
    const what = `/dev/pts/${pty.index}`;
    const s = openSlave(r, BigInt(m), O_RDWR, `the pseudo-terminal that was ${what}`);
    try {
      ioctl(r, s, TIOC.TIOCSCTTY, 0n, `making the new ${what} the controlling terminal of process ${state.pid} (TIOCSCTTY)`);
    } finally {
      r.raw(NR.close, [s]);
    }
  }
}

/**
 * Once every process group exists: the session leader puts the terminal's foreground group back
 * (`pgid`: old PID -> the group's new id). Its signals are blocked, so SIGTTOU cannot stop it.
 */
export function restorePtyForeground(r: Remote, state: ProcessState, ptys: readonly { pty: PtyInfo }[], masters: ReadonlyMap<number, number>, pgid: (old: number) => number | undefined): void {
  if (state.sid !== state.pid) return;
  for (const { pty } of ptys) {
    const m = masters.get(pty.index);
    const group = pty.foreground ? pgid(pty.foreground) : undefined;
    if (pty.session !== state.pid || m === undefined || group === undefined) continue;
    const s = openSlave(r, BigInt(m), O_RDWR, `the pseudo-terminal that was /dev/pts/${pty.index}`);
    try {
      ioctl(r, s, TIOC.TIOCSPGRP, int(group), `foreground process group ${pty.foreground} of /dev/pts/${pty.index}`);
    } finally {
      r.raw(NR.close, [s]);
    }
  }
}

/** A single restore: a session leader whose controlling terminal was a pair it made itself takes it again. */
export function claimOwnPty(r: Remote, state: ProcessState): void {
  if (state.sid !== state.pid) return;
  const ptys = ptysOf([state]);
  if (!ptys.some((p) => p.pty.session === state.pid)) return;
  const masters = new Map<number, number>();
  for (const f of state.fds) {
    const p = ptyInfo(f);
    if (p && !masters.has(p.index)) masters.set(p.index, f.fd);
  }
  claimControllingPty(r, state, ptys, masters);
  restorePtyForeground(r, state, ptys, masters, (old) => (old === state.pid ? r.pid : undefined));
}
