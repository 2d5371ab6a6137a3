/**
 * Pseudo-terminal pairs the process made (its /dev/ptmx descriptors: script, expect, a tmux-like
 * server, a test harness driving a child). Read while frozen, on copies taken over with
 * pidfd_getfd: the pty number, lock, packet mode, exclusive bits, termios, window size, the session
 * and foreground group it controls, and the bytes waiting in either direction (info.pty, see
 * state/pty.ts); the process's own /dev/pts/N descriptors of those pairs are marked info.ptySlave.
 * A tty cannot be peeked: waiting bytes are read and written straight back, shaped so that the
 * line discipline leaves them as they were (output processing off for what the master reads; raw
 * input for what the slave reads, which is saved only in non-canonical mode, where the queue has
 * no line structure to lose). Complete lines waiting in canonical mode are counted, not read: the
 * restore refuses them.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import type { FdState, ProcessState } from '../state/process-state';
import { SYS, syscall, ioctlErrno, malloc, free, copyFromAddr, copyToAddr, closeFd } from '../native';
import { TIOC, TERMIOS2_SIZE, canonicalReplay, isCanonical, lineEnds, nonCanonical, ptsIndex, rawInput, withoutOutputProcessing, type PtyInfo } from '../state/pty';
import { sleepMs } from '../sleep-sync';

const O_RDWR = 2, O_NOCTTY = 0o400, O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000;
const POLLIN = 0x1, POLLPRI = 0x2, POLLHUP = 0x10;
const EAGAIN = 11;

function intIoctl(fd: number, req: number): number | null {
  const b = Buffer.alloc(4);
  return ioctlErrno(fd, req, b).ret === 0 ? b.readInt32LE(0) : null;
}

function bufIoctl(fd: number, req: number, size: number, what: string): Buffer {
  const b = Buffer.alloc(size);
  const r = ioctlErrno(fd, req, b);
  if (r.ret !== 0) throw new Error(`${what}: errno ${r.errno}`);
  return b;
}

function setTermios(fd: number, t: Buffer): void {
  const r = ioctlErrno(fd, TIOC.TCSETS2, t);
  if (r.ret !== 0) throw new Error(`TCSETS2: errno ${r.errno}`);
}

function queued(fd: number): number {
  return intIoctl(fd, TIOC.FIONREAD) ?? 0;
}

/** Reads what waits at fd until nothing more arrives (a write just made may still be on its way from the other side). */
function drain(fd: number): Buffer {
  const parts: Buffer[] = [];
  const mem = malloc(4096);
  try {
    for (let quiet = 0; quiet < 2;) {
      const n = queued(fd);
      if (n === 0) {
        quiet++;
        if (quiet < 2) sleepMs(2);
        continue;
      }
      quiet = 0;
      const got = Number(syscall(SYS.read, [BigInt(fd), mem, BigInt(Math.min(n, 4096))], 'read'));
      if (got <= 0) break;
      const b = Buffer.alloc(got);
      copyFromAddr(b, mem);
      parts.push(b);
    }
  } finally {
    free(mem);
  }
  return Buffer.concat(parts);
}

function writeAll(fd: number, data: Buffer, what: string): void {
  const mem = malloc(data.length);
  try {
    copyToAddr(mem, data);
    let done = 0;
    for (let tries = 0; done < data.length && tries < 1000; tries++) {
      try {
        done += Number(syscall(SYS.write, [BigInt(fd), mem + BigInt(done), BigInt(data.length - done)], what));
      } catch (e) {
        if ((e as { errno?: number }).errno !== EAGAIN) throw e;
        sleepMs(1);
      }
    }
    if (done < data.length) throw new Error(`${what}: only ${done} of ${data.length} bytes went back`);
  } finally {
    free(mem);
  }
}

/** Waits until `want` bytes wait at fd (the other side's bytes reach its line discipline asynchronously). */
export function waitQueued(fd: number, want: number): boolean {
  for (let i = 0; i < 500; i++) {
    if (queued(fd) >= want) return true;
    sleepMs(1);
  }
  return false;
}

/** Whether poll() reports any of `events` (or POLLHUP, which is always reported) on fd now. */
function polled(fd: number, events: number): boolean {
  const mem = malloc(8);
  try {
    const p = Buffer.alloc(8);
    p.writeInt32LE(fd, 0);
    p.writeInt16LE(events, 4);
    copyToAddr(mem, p);
    syscall(SYS.poll, [mem, 1n, 0n], 'poll');
    copyFromAddr(p, mem);
    return (p.readInt16LE(6) & events) !== 0;
  } finally {
    free(mem);
  }
}

/** One read of at most 4096 bytes (a canonical read returns one line; an end-of-file line, 0 bytes); null when nothing waits. */
function readOnce(fd: number): Buffer | null {
  const mem = malloc(4096);
  try {
    const got = Number(syscall(SYS.read, [BigInt(fd), mem, 4096n], 'read'));
    const b = Buffer.alloc(got);
    copyFromAddr(b, mem);
    return b;
  } catch (e) {
    if ((e as { errno?: number }).errno === EAGAIN) return null;
    throw e;
  } finally {
    free(mem);
  }
}

/**
 * Canonical mode: the complete lines waiting at the slave side (`s`, our own non-blocking opening
 * of it), one read each, then the unfinished line (seen only once the terminal is briefly made
 * non-canonical, after the complete lines are out, so no line boundary is lost); all typed back
 * in at once with canonicalReplay, each line with the character that ended it. A line that held
 * one of those characters as data (typed after ^V) could not be typed back alike: info.error.
 */
function saveLines(m: number, s: number, termios: Buffer, info: PtyInfo): void {
  const { eof, eol, eol2 } = lineEnds(termios);
  const ends = (c: number | undefined): boolean => c === 10 || (eol !== 0 && c === eol) || (eol2 !== 0 && c === eol2);
  const special = (b: Buffer): boolean => b.some((c) => ends(c) || (eof !== 0 && c === eof));
  const typed: Buffer[] = [];
  let complete = 0;
  let odd = false;
  for (let i = 0; i < 4096 && polled(s, POLLIN); i++) {
    const line = readOnce(s);
    if (line === null) break;
    const delimited = ends(line[line.length - 1]);
    const body = delimited ? line.subarray(0, -1) : line;
    if (special(body) || (!delimited && eof === 0)) odd = true;
    typed.push(delimited ? line : Buffer.concat([line, Buffer.from([eof])]));
    complete += line.length;
  }
  setTermios(m, nonCanonical(termios));
  let partial: Buffer;
  try {
    partial = drain(s);
  } finally {
    setTermios(m, canonicalReplay(termios));
  }
  if (special(partial)) odd = true;
  const data = Buffer.concat([...typed, partial]);
  try {
    if (data.length) {
      writeAll(m, data, 'putting back the lines waiting at the slave side');
      if (!waitQueued(s, complete)) throw new Error(`the ${complete} bytes of lines waiting at the slave side did not all come back`);
      // The unfinished line and end-of-file marks are not counted: they came in the same write as the lines, give them a moment more.
      if (data.length > complete) sleepMs(5);
    }
  } finally {
    setTermios(m, termios);
  }
  if (data.length === 0) return;
  info.toSlave = data.toString('base64');
  info.toSlaveLines = complete;
  if (odd) info.error = 'a line waiting at its slave side holds a line-ending character as data (typed after ^V), which cannot be typed back in alike';
}

/**
 * One pair, through `m` (our copy of the master); `slaveHeld`: a descriptor of the checkpoint holds
 * the slave side (one held only outside it, or never opened, is left alone).
 */
function describePair(m: number, slaveHeld: boolean): PtyInfo {
  const index = intIoctl(m, TIOC.TIOCGPTN);
  if (index === null) throw new Error('TIOCGPTN failed');
  const termios = bufIoctl(m, TIOC.TCGETS2, TERMIOS2_SIZE, 'TCGETS2');
  const info: PtyInfo = {
    index,
    locked: intIoctl(m, TIOC.TIOCGPTLCK) === 1,
    packet: intIoctl(m, TIOC.TIOCGPKT) === 1,
    exclusive: { master: intIoctl(m, TIOC.TIOCGEXCL) === 1, slave: false },
    termios: termios.toString('hex'),
    winsize: bufIoctl(m, TIOC.TIOCGWINSZ, 8, 'TIOCGWINSZ').toString('hex'),
    session: intIoctl(m, TIOC.TIOCGSID) ?? 0,
    foreground: intIoctl(m, TIOC.TIOCGPGRP) ?? 0,
    hangup: polled(m, POLLHUP),
  };
  if (info.locked && slaveHeld) {
    // Locked again after its slave side was opened: a new pair locked at once could not be opened for it.
    info.error = 'it was locked again (TIOCSPTLCK) after its slave side was opened, which Stasis does not make again';
    return info;
  }
  if (info.packet) {
    // A status change (flush, stop, start) waiting for the master cannot be made again; without one,
    // packet mode is off while the queues are handled (a termios change would post one) and on again.
    if (polled(m, POLLPRI)) {
      info.error = 'a packet-mode status change (TIOCPKT) waits to be read from it, which Stasis cannot make again';
      return info;
    }
    ioctlErrno(m, TIOC.TIOCPKT, Buffer.alloc(4));
  }
  try {
    saveQueues(m, info, termios, slaveHeld);
  } finally {
    if (info.packet) {
      const on = Buffer.alloc(4);
      on.writeInt32LE(1, 0);
      ioctlErrno(m, TIOC.TIOCPKT, on);
    }
  }
  return info;
}

/** The bytes waiting both ways (see the module comment); `m` is not in packet mode now. */
function saveQueues(m: number, info: PtyInfo, termios: Buffer, slaveHeld: boolean): void {
  const toMaster = queued(m);
  // Opening the slave side when nothing holds it would change the pair (the last close of a slave
  // hangs up the master): then only the master's side is looked at.
  const s = slaveHeld && !info.hangup && !info.locked ? Number(ioctlErrno(m, TIOC.TIOCGPTPEER, BigInt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)).ret) : -1;
  try {
    if (s >= 0) info.exclusive.slave = intIoctl(s, TIOC.TIOCGEXCL) === 1;
    if (toMaster > 0) {
      const data = drain(m);
      info.toMaster = data.toString('base64');
      // Back as they were: the slave side writes them with output processing off.
      const back = s >= 0 ? s : Number(ioctlErrno(m, TIOC.TIOCGPTPEER, BigInt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)).ret);
      if (back < 0) throw new Error(`the ${data.length} bytes waiting at the master were read but the slave side could not be opened to put them back`);
      try {
        setTermios(m, withoutOutputProcessing(termios));
        writeAll(back, data, 'putting back what the master had to read');
        setTermios(m, termios);
      } finally {
        if (back !== s) closeFd(back);
      }
      if (!waitQueued(m, data.length)) throw new Error(`the ${data.length} bytes waiting at the master did not all come back`);
    }
    const toSlave = s >= 0 ? queued(s) : 0;
    if (s >= 0 && isCanonical(termios)) saveLines(m, s, termios, info);
    else if (toSlave > 0) {
      const data = drain(s);
      info.toSlave = data.toString('base64');
      setTermios(m, rawInput(termios));
      try {
        writeAll(m, data, 'putting back what the slave side had to read');
        if (!waitQueued(s, data.length)) throw new Error(`the ${data.length} bytes waiting at the slave side did not all come back`);
      } finally {
        setTermios(m, termios);
      }
    }
  } finally {
    if (s >= 0) closeFd(s);
  }
}

/**
 * Fills info.pty on the process's /dev/ptmx descriptors (one reading per pair, shared by its dups)
 * and info.ptySlave on its descriptors of their slave sides. `slaveHeldElsewhere`: pty numbers
 * whose slave side another process of the checkpoint holds (a tree).
 */
export function capturePtys(pid: number, fds: FdState[], warnings: string[], slaveHeldElsewhere: ReadonlySet<number> = new Set()): void {
  const masters = fds.filter((f) => f.kind === 'chr' && f.target === '/dev/ptmx');
  if (masters.length === 0) return;
  const ownSlaves = new Set(fds.map((f) => ptsIndex(f.target)).filter((n): n is number => n !== null));
  let pidfd = -1;
  const byIndex = new Map<number, PtyInfo>();
  try {
    pidfd = Number(syscall(SYS.pidfd_open, [BigInt(pid), 0n], 'pidfd_open'));
    for (const f of masters) {
      let ours = -1;
      try {
        ours = Number(syscall(SYS.pidfd_getfd, [BigInt(pidfd), BigInt(f.fd), 0n], `pidfd_getfd of fd ${f.fd}`));
        const index = intIoctl(ours, TIOC.TIOCGPTN);
        let info = index === null ? undefined : byIndex.get(index);
        if (!info && index !== null) {
          const held = ownSlaves.has(index) || slaveHeldElsewhere.has(index);
          info = describePair(ours, held);
          // Not hung up and not held in the checkpoint: never opened, or held by a process left out.
          const outside = !held && !info.hangup && !info.error ? holderOf(index) : null;
          if (outside) {
            info.error = `its slave side /dev/pts/${index} is held by process ${outside.pid} (${outside.comm}), which is not in the checkpoint: that process would stay on the old pair, cut off from the restored program`;
            info.fix = 'Checkpoint both as one tree: `stasis checkpoint PID --tree` with the PID of a process both descend from.';
          }
          byIndex.set(index, info);
        }
        if (info) f.info = { ...(f.info ?? {}), pty: info };
      } catch (e) {
        warnings.push(`fd ${f.fd} (/dev/ptmx): the pseudo-terminal could not be read (${(e as Error).message})`);
        f.info = { ...(f.info ?? {}), pty: { error: `it could not be read at the checkpoint (${(e as Error).message})` } };
      } finally {
        if (ours >= 0) closeFd(ours);
      }
    }
  } catch (e) {
    warnings.push(`pseudo-terminals could not be read (${(e as Error).message})`);
  } finally {
    if (pidfd >= 0) closeFd(pidfd);
  }
  markSlaves(fds, new Set(byIndex.keys()));
}

/** Marks info.ptySlave on the /dev/pts/N descriptors among fds whose pair is one of `indexes`. */
export function markSlaves(fds: FdState[], indexes: ReadonlySet<number>): void {
  for (const f of fds) {
    const n = ptsIndex(f.target);
    if (n !== null && indexes.has(n)) f.info = { ...(f.info ?? {}), ptySlave: n };
  }
}

/** The /dev/pts numbers the processes hold descriptors of (read from /proc before their capture). */
export function ptySlavesHeld(pids: readonly number[]): Set<number> {
  const out = new Set<number>();
  for (const pid of pids) {
    let fds: string[];
    try { fds = readdirSync(`/proc/${pid}/fd`); } catch { continue; }
    for (const fd of fds) {
      try {
        const n = ptsIndex(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (n !== null) out.add(n);
      } catch { /* closed meanwhile */ }
    }
  }
  return out;
}

/** A process (not this one) holding /dev/pts/N open, by a scan of /proc; null when none does. */
function holderOf(index: number): { pid: number; comm: string } | null {
  const want = `/dev/pts/${index}`;
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    let fds: string[];
    try { fds = readdirSync(`/proc/${p}/fd`); } catch { continue; }
    for (const fd of fds) {
      let link = '';
      try { link = readlinkSync(`/proc/${p}/fd/${fd}`); } catch { /* closed meanwhile */ }
      if (link !== want) continue;
      let comm = '?';
      try { comm = readFileSync(`/proc/${p}/comm`, 'utf8').trim(); } catch { /* exited */ }
      return { pid: Number(p), comm };
    }
  }
  return null;
}

/** Tree checkpoints: every member's descriptors of the slave side of a pair some member made. */
export function markTreePtys(states: readonly ProcessState[]): void {
  const indexes = new Set<number>();
  for (const s of states) {
    for (const f of s.fds) {
      const p = f.info?.pty as Partial<PtyInfo> | undefined;
      if (typeof p?.index === 'number') indexes.add(p.index);
    }
  }
  if (indexes.size) for (const s of states) markSlaves(s.fds, indexes);
}
