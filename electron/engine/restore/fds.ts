/**
 * Restore step "fds": every saved descriptor at its number with its flags, close-on-exec bit and
 * position — reopened from its path, redirected (vanished ttys/pipes to the user's log file, reads
 * from /dev/null), or rebuilt (eventfd) — as decided by fd-plan.ts. Runs inside the stub, whose own
 * inherited descriptors were closed first; must never open anything in the engine itself.
 */
import { chmodSync, chownSync, lstatSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { StasisError } from '../../../shared/errors';
import { socketInode, type FdState, type ProcessState } from '../state/process-state';
import type { Remote } from './remote';
import { O_APPEND, O_CLOEXEC, O_NONBLOCK, O_WRONLY, planFd, type FdAction, type RedirectOptions } from './fd-plan';
import { reusesWhileBinding } from './socket-plan';
import { sendQueue, setPairOptions, setPasscred } from './socket-queue';
import { inFlightFds, socketQueue } from '../state/socket-queue';
import { NR } from './sysno';
import { GhostFiles } from './ghost-files';
import { remapMemfds } from './memfd-maps';
import { elapsedSince, isWallClock, timerAfter } from '../state/timer-clock';
import { openSlave, placePtyMasters } from './ptys';

const SEEK_SET = 0;
const EFD_SEMAPHORE = 1;
const F_DUPFD_CLOEXEC = 1030n;
const F_SETFL = 4n;
const F_SETPIPE_SZ = 1031n;
/** _IOW('T', 0, u64): sets a timerfd's count of unread expirations. */
const TFD_IOC_SET_TICKS = 0x40085400n;
/** Bytes written into a recreated pipe or socket per injected write (the scratch area is 64 KiB). */
const CHUNK = 32 * 1024;
const AF_UNIX = 1n;

type ChannelEnd = Extract<FdAction, { action: 'pipe' | 'socketpair' }>;

/**
 * Recreates the pipe or socketpair behind `ends` (every descriptor of it): pipe2 / socketpair, the
 * bytes that were waiting written back (into the other end, so they wait at this one), both ends
 * parked above every saved descriptor number (the new numbers may belong to the other end or to a
 * later descriptor), then dup3 to each saved number with its own close-on-exec bit, O_NONBLOCK per
 * end, and the parked copies closed.
 */
function recreateChannel(r: Remote, ends: ChannelEnd[], above: number): void {
  const first = ends[0]!;
  const name = first.action === 'pipe' ? first.pipe : `socketpair ${first.pair}`;
  r.resetScratch();
  const pairAddr = r.reserve(8);
  if (first.action === 'pipe') r.call(NR.pipe2, [pairAddr, BigInt(O_CLOEXEC)], `recreating ${name}`);
  else r.call(NR.socketpair, [AF_UNIX, BigInt(first.type) | BigInt(O_CLOEXEC), 0n, pairAddr], `recreating ${name}`);
  const got = Buffer.alloc(8);
  r.read(pairAddr, got);
  const fds: [bigint, bigint] = [BigInt(got.readInt32LE(0)), BigInt(got.readInt32LE(4))];
  // Which of the two new descriptors each saved end becomes, and where its waiting bytes are written.
  const sideOf = (e: ChannelEnd): 0 | 1 => (e.action === 'pipe' ? (e.end === 'read' ? 0 : 1) : e.side <= e.peer ? 0 : 1);
  for (const side of [0, 1] as const) {
    if (ends.some((e) => e.action === 'socketpair' && sideOf(e) === side && e.passcred)) setPasscred(r, fds[side], `${name}`);
  }
  const size = first.action === 'pipe' ? ends.map((e) => (e.action === 'pipe' ? e.size : undefined)).find((n) => n !== undefined) : undefined;
  if (size !== undefined) r.call(NR.fcntl, [fds[1], F_SETPIPE_SZ, BigInt(size)], `setting the capacity of ${name} to ${size} bytes`);
  for (const side of [0, 1] as const) {
    // A pipe has one queue: every end carries it (fd-plan.ts), it goes in once, through the write end.
    if (first.action === 'pipe' && side === 1) continue;
    const data = (first.action === 'pipe' ? ends.find((e) => e.data) : ends.find((e) => sideOf(e) === side && e.data))?.data;
    if (!data || data.length === 0) continue;
    const into = fds[first.action === 'pipe' ? 1 : 1 - side]!;
    if (first.action === 'pipe' && data.length > (size ?? 65536)) r.call(NR.fcntl, [into, F_SETPIPE_SZ, BigInt(data.length)], `sizing ${name} for its ${data.length} waiting bytes`);
    // Non-blocking while refilled: bytes that do not fit fail the restore instead of hanging it (the saved flags are set below).
    r.call(NR.fcntl, [into, F_SETFL, BigInt(O_NONBLOCK)], `O_NONBLOCK on ${name} while it is refilled`);
    for (let o = 0; o < data.length; o += CHUNK) {
      r.resetScratch();
      const part = data.subarray(o, o + CHUNK);
      const n = r.raw(NR.write, [into, r.put(part), BigInt(part.length)]);
      if (n !== BigInt(part.length)) throw new StasisError('INTERNAL', `Only ${n < 0n ? 0 : n} of ${part.length} bytes (at ${o} of ${data.length}) went back into ${name}${n < 0n ? ` (errno ${-n})` : ''}.`);
    }
  }
  const parked = fds.map((fd) => r.call(NR.fcntl, [fd, F_DUPFD_CLOEXEC, BigInt(above)], `parking ${name}`));
  for (const fd of fds) r.raw(NR.close, [fd]);
  for (const side of [0, 1] as const) {
    const mine = ends.filter((e) => sideOf(e) === side);
    // Always: the refill above may have left O_NONBLOCK on an end that had none.
    r.call(NR.fcntl, [parked[side]!, F_SETFL, BigInt(mine[0]?.flags ?? 0)], `O_NONBLOCK on ${name}`);
    for (const e of mine) r.call(NR.dup3, [parked[side]!, BigInt(e.fd), BigInt(e.cloexec ? O_CLOEXEC : 0)], `dup3 to fd ${e.fd}`);
  }
  for (const fd of parked) r.raw(NR.close, [fd]);
}

/** Whether a process other than `except` holds `path` (a FIFO) open: then its queue outlived the checkpointed process. */
function heldElsewhere(path: string, except: number): boolean {
  let want: { dev: number; ino: number };
  try { want = statSync(path); } catch { return false; }
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === except) continue;
    let fds: string[];
    try { fds = readdirSync(`/proc/${p}/fd`); } catch { continue; }
    for (const fd of fds) {
      try {
        const st = statSync(`/proc/${p}/fd/${fd}`);
        if (st.ino === want.ino && st.dev === want.dev) return true;
      } catch { /* closed meanwhile */ }
    }
  }
  return false;
}

/**
 * A named FIFO's saved capacity and waiting bytes, written back through a write end opened for it,
 * unless another process holds the FIFO: its queue then lived on with the bytes in it.
 */
function refillFifo(r: Remote, a: Extract<FdAction, { action: 'fifo' }>): void {
  if (heldElsewhere(a.path, r.pid)) return;
  r.resetScratch();
  const w = r.call(NR.open, [r.putString(a.path), BigInt(O_WRONLY | O_NONBLOCK | O_CLOEXEC), 0n], `opening ${a.path} to put back its waiting bytes`);
  try {
    if (a.size) r.call(NR.fcntl, [w, F_SETPIPE_SZ, BigInt(a.size)], `setting the capacity of ${a.path} to ${a.size} bytes`);
    const data = a.data ?? Buffer.alloc(0);
    if (data.length > (a.size ?? 65536)) r.call(NR.fcntl, [w, F_SETPIPE_SZ, BigInt(data.length)], `sizing ${a.path} for its ${data.length} waiting bytes`);
    for (let o = 0; o < data.length; o += CHUNK) {
      r.resetScratch();
      const part = data.subarray(o, o + CHUNK);
      const n = r.raw(NR.write, [w, r.put(part), BigInt(part.length)]);
      if (n !== BigInt(part.length)) throw new StasisError('INTERNAL', `Only ${n < 0n ? 0 : n} of ${data.length} waiting bytes went back into ${a.path}.`);
    }
  } finally {
    r.raw(NR.close, [w]);
  }
}

/**
 * Watch numbers are handed out one after the other, so they come back the same when added in order;
 * a gap is filled with a throw-away watch on / that is removed once the next number is taken.
 */
function addWatches(r: Remote, fd: bigint, watches: { wd: number; mask: number; path: string }[], num: number): void {
  const fillers: bigint[] = [];
  let next = 1;
  for (const w of watches) {
    while (next < w.wd) {
      r.resetScratch();
      fillers.push(r.call(NR.inotify_add_watch, [fd, r.putString('/'), 0x2n /* IN_MODIFY */], `inotify filler watch for fd ${num}`));
      next++;
    }
    r.resetScratch();
    const wd = r.call(NR.inotify_add_watch, [fd, r.putString(w.path), BigInt(w.mask >>> 0)], `inotify watch ${w.wd} (${w.path}) for fd ${num}`);
    if (wd !== BigInt(w.wd)) throw new StasisError('INTERNAL', `inotify watch on ${w.path} came back as ${wd}, not ${w.wd}.`);
    next = w.wd + 1;
  }
  for (const f of fillers) r.call(NR.inotify_rm_watch, [fd, f], `removing an inotify filler watch of fd ${num}`);
}

/** `keepFrom`: a tree restore keeps the descriptors its root parked from there on (see ParkedFds). */
const SOL_SOCKET = 1, SO_REUSEADDR = 2, SO_MARK = 36;

/**
 * A socket made again (socket-plan.ts): options first (SO_REUSEADDR and IPV6_V6ONLY decide what
 * bind may do), then bind, connect (a connected datagram socket) and listen. SOCK_NONBLOCK and
 * SOCK_CLOEXEC are O_NONBLOCK and O_CLOEXEC. A UNIX socket's stale file (the plan checked nothing is
 * bound to it) is removed first, and the new one gets the old one's mode and owner.
 */
function makeSocket(r: Remote, a: Extract<FdAction, { action: 'socket' }>, cloexec: bigint): bigint {
  const what = `fd ${a.fd} (${a.note})`;
  const got = r.call(NR.socket, [BigInt(a.domain), BigInt(a.type | a.flags) | cloexec, BigInt(a.protocol)], `recreating the socket of ${what}`);
  const int = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeInt32LE(v, 0); return b; };
  for (const [level, name, value] of a.options) {
    // SO_MARK needs CAP_NET_ADMIN even to set the default: only a mark the program set is set again.
    if (level === SOL_SOCKET && name === SO_MARK && value === 0) continue;
    r.call(NR.setsockopt, [got, BigInt(level), BigInt(name), r.put(int(value)), 4n], `socket option ${level}:${name} of ${what}`);
  }
  // Timeouts, linger and the interface it is bound to (before bind: the device decides what it may bind).
  for (const [level, name, hex] of a.structs) {
    const v = Buffer.from(hex, 'hex');
    r.call(NR.setsockopt, [got, BigInt(level), BigInt(name), r.put(v), BigInt(v.length)], `socket option ${level}:${name} of ${what}`);
  }
  if (a.bind) {
    const reuse = reusesWhileBinding(a.domain, a.type) ? (a.options.find(([l, n]) => l === SOL_SOCKET && n === SO_REUSEADDR)?.[2] ?? 0) : null;
    if (reuse !== null) r.call(NR.setsockopt, [got, BigInt(SOL_SOCKET), BigInt(SO_REUSEADDR), r.put(int(1)), 4n], `SO_REUSEADDR of ${what} while binding`);
    if (a.unixFile) removeStaleSocketFile(a.unixFile.path);
    r.call(NR.bind, [got, r.put(a.local), BigInt(a.local.length)], `binding ${what}`);
    if (reuse === 0) r.call(NR.setsockopt, [got, BigInt(SOL_SOCKET), BigInt(SO_REUSEADDR), r.put(int(0)), 4n], `SO_REUSEADDR of ${what}`);
    if (a.unixFile && a.unixFile.mode >= 0) {
      chmodSync(a.unixFile.path, a.unixFile.mode);
      chownSync(a.unixFile.path, a.unixFile.uid, a.unixFile.gid);
    }
  }
  if (a.peer) {
    const e = r.raw(NR.connect, [got, r.put(a.peer), BigInt(a.peer.length)]);
    // A datagram connect completes at once (no EINPROGRESS).
    if (e < 0n) throw new StasisError('INTERNAL', `Connecting ${what} failed: errno ${-e}.`);
  }
  if (a.listen) r.call(NR.listen, [got, BigInt(a.backlog)], `listening on ${what}`);
  return got;
}

function removeStaleSocketFile(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch { /* already gone */ }
}

export function closeInheritedFds(r: Remote, keepFrom?: number): void {
  r.call(NR.close_range, [0n, keepFrom === undefined ? 0xffffffffn : BigInt(keepFrom - 1), 0n], 'close_range (dropping descriptors inherited from the engine)');
}

/**
 * Tree restores: descriptors shared between members (pipes whose ends several members hold) are
 * created once in the root before it forks, parked at high numbers, and so inherited by every
 * member; key "pipe:[INO]/read" or "/write" -> the parked number in every member.
 */
export type ParkedFds = Map<string, number>;

export function parkedKey(f: { target: string; flags: number }): string {
  return `${f.target}/${(f.flags & 3) === 0 ? 'read' : 'write'}`;
}

/**
 * In the root of a tree restore, before any fork: one open file description per group of
 * descriptors that members shared (capture marked them info.treeShared), opened as the first
 * holder's fd would be (reopened with its flags and offset, or redirected), parked from `from` on
 * under "shared:KEY". A group whose descriptor cannot be opened that way is left to each member.
 */
export function parkSharedFiles(r: Remote, groups: { key: string; first: FdState; holderFds: readonly FdState[] }[], redirect: RedirectOptions, from: number, parked: ParkedFds): void {
  let next = from;
  // A deleted file held by several members is recreated once, so they keep writing into one file.
  const ghosts = new GhostFiles();
  try {
    for (const g of groups) {
      const a = planFd(g.first, redirect, g.holderFds);
      if (a.action === 'socket') {
        // A listening socket a pre-forking server's workers share: one socket, bound once.
        r.resetScratch();
        const got = makeSocket(r, a, 0n);
        r.call(NR.dup3, [got, BigInt(next), 0n], `parking ${a.note}`);
        r.raw(NR.close, [got]);
        parked.set(`shared:${g.key}`, next++);
        continue;
      }
      if (a.action === 'pty-slave' && parked.has(`pty:${a.index}`)) {
        // A slave side several members share (a shell's stdio and its commands'): one description from the parked master.
        const got = openSlave(r, BigInt(parked.get(`pty:${a.index}`)!), a.flags, `/dev/pts/${a.index} (shared by several processes)`);
        r.call(NR.dup3, [got, BigInt(next), 0n], `parking /dev/pts/${a.index}`);
        r.raw(NR.close, [got]);
        parked.set(`shared:${g.key}`, next++);
        continue;
      }
      if (a.action !== 'open' && a.action !== 'redirect' && a.action !== 'ghost') continue;
      r.resetScratch();
      const path = a.action === 'ghost' ? ghosts.pathFor(a) : a.path;
      const what = a.action === 'ghost' ? `the recreated deleted file ${a.dir}/${a.name}` : a.path;
      const got = r.call(NR.open, [r.putString(path), BigInt(a.flags), 0o644n], `opening ${what} (shared by several processes)`);
      if (a.action !== 'redirect' && a.pos !== 0n) r.raw(NR.lseek, [got, a.pos, BigInt(SEEK_SET)]);
      r.call(NR.dup3, [got, BigInt(next), 0n], `parking ${what}`);
      r.raw(NR.close, [got]);
      parked.set(`shared:${g.key}`, next++);
    }
  } finally {
    ghosts.close();
  }
}

/** A socketpair between members: each side's socket inode and every descriptor (of any member) of it. */
export interface TreeSocketPair { key: string; type: number; sides: [{ ino: number; fds: FdState[] }, { ino: number; fds: FdState[] }] }

/**
 * In the root of a tree restore, before any fork: one socketpair per pair between members, the
 * bytes or messages that waited at each end sent into the other one (files in flight opened to be
 * sent with theirs), each end parked (key `sock:INO`) with
 * the saved O_NONBLOCK of its first descriptor. Adds to `parked`; returns the next free number.
 */
export function parkTreeSockets(r: Remote, pairs: readonly TreeSocketPair[], from: number, parked: ParkedFds): number {
  let next = from;
  for (const p of pairs) {
    r.resetScratch();
    const pairAddr = r.reserve(8);
    r.call(NR.socketpair, [AF_UNIX, BigInt(p.type) | BigInt(O_CLOEXEC), 0n, pairAddr], `recreating socketpair ${p.key} (between processes)`);
    const got = Buffer.alloc(8);
    r.read(pairAddr, got);
    const fds = [BigInt(got.readInt32LE(0)), BigInt(got.readInt32LE(4))] as const;
    p.sides.forEach((side, i) => {
      if (side.fds.some((f) => f.info?.socketPasscred === true)) setPasscred(r, fds[i]!, `socketpair ${p.key}`);
    });
    p.sides.forEach((side, i) => {
      // Messages one by one (their boundaries); the pre-flight refused descriptors or credentials in flight here.
      const queue = side.fds.map(socketQueue).find((q) => q !== undefined);
      if (queue) {
        // Files in flight opened here, at their offsets, for as long as their messages are sent.
        const opened: bigint[] = [];
        try {
          const out = queue.map((m) => ({ data: Buffer.from(m.data, 'base64'), fds: (m.fds ?? []).map((x) => Number(openInFlight(r, x, p.key, opened))) }));
          r.call(NR.fcntl, [fds[1 - i]!, F_SETFL, BigInt(O_NONBLOCK)], `O_NONBLOCK on socketpair ${p.key} while its messages are sent`);
          sendQueue(r, fds[1 - i]!, out, `socketpair ${p.key}`);
          r.call(NR.fcntl, [fds[1 - i]!, F_SETFL, 0n], `blocking mode of socketpair ${p.key}`);
        } finally {
          for (const fd of opened) r.raw(NR.close, [fd]);
        }
        return;
      }
      const data = side.fds.map((f) => f.info?.socketData).find((d): d is string => typeof d === 'string');
      const bytes = data ? Buffer.from(data, 'base64') : Buffer.alloc(0);
      for (let o = 0; o < bytes.length; o += CHUNK) {
        r.resetScratch();
        const part = bytes.subarray(o, o + CHUNK);
        const n = r.call(NR.write, [fds[1 - i]!, r.put(part), BigInt(part.length)], `refilling socketpair ${p.key}`);
        if (n !== BigInt(part.length)) throw new StasisError('INTERNAL', `Only ${n} of ${part.length} bytes went back into socketpair ${p.key}.`);
      }
    });
    p.sides.forEach((side, i) => {
      const o = side.fds.map((f) => f.info?.socketOptions as Parameters<typeof setPairOptions>[2] | undefined).find((x) => x !== undefined);
      if (o) setPairOptions(r, fds[i]!, o, `socket:[${side.ino}]`);
      const at = r.call(NR.dup3, [fds[i]!, BigInt(next), 0n], `parking socketpair ${p.key}`);
      const flags = (side.fds[0]?.flags ?? 0) & O_NONBLOCK;
      if (flags) r.call(NR.fcntl, [at, F_SETFL, BigInt(flags)], `O_NONBLOCK on socket:[${side.ino}]`);
      parked.set(`sock:${side.ino}`, next++);
    });
    for (const fd of fds) r.raw(NR.close, [fd]);
  }
  return next;
}

/** A file in flight on a socketpair between members, opened in the root as planned (pre-flight: treeQueueRefusal). */
function openInFlight(r: Remote, x: FdState, key: string, opened: bigint[]): bigint {
  const a = planFd(x, { log: '/dev/null' }, [x]);
  if (a.action !== 'open') throw new StasisError('INTERNAL', `A descriptor in flight on socketpair ${key} (${x.target}) cannot be opened to be sent again.`);
  r.resetScratch();
  const fd = r.call(NR.open, [r.putString(a.path), BigInt(a.flags | O_CLOEXEC), 0n], `opening ${a.path} (in flight on socketpair ${key})`);
  opened.push(fd);
  if (a.pos !== 0n) {
    const pos = r.raw(NR.lseek, [fd, a.pos, BigInt(SEEK_SET)]);
    if (pos < 0n && x.kind === 'file') throw new StasisError('INTERNAL', `Could not restore the position ${a.pos} of ${a.path} (in flight on socketpair ${key}): errno ${-pos}.`);
  }
  return fd;
}

const TIOCSPGRP = 0x5410n;

/**
 * restore --attach: a process that led its process group makes that group the terminal's
 * foreground one, as the shell did for it (a background group reading the terminal would be stopped
 * by SIGTTIN). Runs while every signal is blocked in it, so its own tcsetpgrp is not stopped by
 * SIGTTOU; a terminal that is not its controlling one (it leads a session of its own) refuses, and
 * then nothing needs to change.
 */
export function takeForeground(r: Remote, state: ProcessState, redirect: RedirectOptions): void {
  if (!redirect.tty || state.pgid !== state.pid) return;
  const fd = state.fds.find((f) => { const a = planFd(f, redirect); return a.action === 'open' && a.path === redirect.tty; });
  if (!fd) return;
  r.resetScratch();
  const pgid = Buffer.alloc(4);
  pgid.writeInt32LE(r.pid, 0);
  r.raw(NR.ioctl, [BigInt(fd.fd), TIOCSPGRP, r.put(pgid)]);
}

/** Drops the parked descriptors (every member that needed them has dup'ed its own by now). */
export function closeParked(r: Remote, from: number): void {
  r.call(NR.close_range, [BigInt(from), 0xffffffffn, 0n], 'close_range (the tree\'s parked descriptors)');
}

/**
 * In the root of a tree restore, before any fork: one pipe per pipe between members, both ends
 * parked from `from` on with the saved O_NONBLOCK of the first end of each side (one open file
 * description per end, as fork had left it). Empty: fillTreePipes writes the bytes that waited in
 * it once every member's memory is in (a prepared tree takes them from its last round).
 */
export function parkTreePipes(r: Remote, pipes: { target: string; ends: FdState[] }[], from: number): ParkedFds {
  const parked: ParkedFds = new Map();
  let next = from;
  for (const p of pipes) {
    r.resetScratch();
    const pairAddr = r.reserve(8);
    r.call(NR.pipe2, [pairAddr, BigInt(O_CLOEXEC)], `recreating ${p.target} (between processes)`);
    const got = Buffer.alloc(8);
    r.read(pairAddr, got);
    const fds = [BigInt(got.readInt32LE(0)), BigInt(got.readInt32LE(4))] as const;
    for (const side of ['read', 'write'] as const) {
      const fd = fds[side === 'read' ? 0 : 1];
      const at = r.call(NR.dup3, [fd, BigInt(next), 0n], `parking ${p.target}`);
      const first = p.ends.find((e) => ((e.flags & 3) === 0) === (side === 'read'));
      if (first && (first.flags & O_NONBLOCK)) r.call(NR.fcntl, [at, F_SETFL, BigInt(O_NONBLOCK)], `O_NONBLOCK on ${p.target}`);
      parked.set(`${p.target}/${side}`, next++);
    }
    for (const fd of fds) r.raw(NR.close, [fd]);
  }
  return parked;
}

const SHAREABLE = new Set<FdAction['action']>(['open', 'ghost', 'mqueue', 'eventfd', 'signalfd', 'timerfd', 'epoll', 'inotify', 'socket', 'pty-slave']);

export function restoreFds(r: Remote, state: ProcessState, redirect: RedirectOptions, parked?: ParkedFds): void {
  const ghosts = new GhostFiles();
  try {
    placeFds(r, state, redirect, ghosts, parked);
  } finally {
    ghosts.close();
  }
}

/**
 * The messages that waited in the socketpairs made again here (`made`: their pair keys), each
 * queue sent from a descriptor of the other end, made non-blocking while it is sent (a queue that
 * does not fit fails the restore instead of hanging it), then given its saved O_NONBLOCK again;
 * then each end's buffer sizes and peek offset.
 */
function sendQueues(r: Remote, plans: ReadonlyMap<number, FdAction>, made: ReadonlySet<string>): void {
  const ends = [...plans.values()].filter((x): x is Extract<FdAction, { action: 'socketpair' }> => x.action === 'socketpair' && made.has(x.pair));
  const sent = new Set<number>();
  for (const a of ends) {
    if (!a.queue?.length || sent.has(a.side)) continue;
    sent.add(a.side);
    const from = ends.find((x) => x.side === a.peer);
    if (!from) throw new StasisError('INTERNAL', `No descriptor of the other end of socketpair ${a.pair} to send its ${a.queue.length} waiting messages from.`);
    const fd = BigInt(from.fd);
    r.call(NR.fcntl, [fd, F_SETFL, BigInt(O_NONBLOCK)], `O_NONBLOCK on fd ${from.fd} while the messages of socketpair ${a.pair} are sent`);
    sendQueue(r, fd, a.queue, `socketpair ${a.pair} (to fd ${a.fd})`);
    r.call(NR.fcntl, [fd, F_SETFL, BigInt(from.flags)], `O_NONBLOCK on fd ${from.fd}`);
  }
  const set = new Set<number>();
  for (const a of ends) {
    if (!a.options || set.has(a.side)) continue;
    set.add(a.side);
    setPairOptions(r, BigInt(a.fd), a.options, `fd ${a.fd} (socketpair ${a.pair})`);
  }
}

function placeFds(r: Remote, state: ProcessState, redirect: RedirectOptions, ghosts: GhostFiles, parked: ParkedFds | undefined): void {
  const elapsed = elapsedSince(state.timers.clock);
  // Descriptors in flight in socketpairs are made at spare numbers like any other, then sent and closed.
  const flight = inFlightFds(state.fds);
  const every = [...state.fds, ...flight];
  const sorted = [...every].sort((a, b) => a.fd - b.fd);
  const epolls: Extract<FdAction, { action: 'epoll' }>[] = [];
  const inotifies: Extract<FdAction, { action: 'inotify' }>[] = [];
  const above = (sorted.at(-1)?.fd ?? 2) + 1;
  const channelsDone = new Set<string>();
  const channelOf = (x: FdAction): string | null => (x.action === 'pipe' ? x.pipe : x.action === 'socketpair' ? x.pair : null);
  // Planned once: a channel or a shared description looks at other fds' plans, and an epoll set's
  // plan looks at every watched fd (999 watches among 1400 fds took 12 s when re-planned each time).
  const plans = new Map(every.map((x) => [x.fd, planFd(x, redirect, every)]));
  // Pseudo-terminal masters first, at their numbers: the slave sides are opened from them.
  const ptyMasters = placePtyMasters(r, plans.values(), parked);
  for (const f of sorted) {
    const inherited = f.kind === 'pipe' && f.info?.treePipe === true ? parked?.get(parkedKey(f))
      : f.kind === 'socket' && typeof f.info?.treeSocket === 'string' ? parked?.get(`sock:${socketInode(f)}`)
      : typeof f.info?.treeShared === 'string' ? parked?.get(`shared:${f.info.treeShared}`) : undefined;
    if (inherited !== undefined) {
      // A pipe or socketpair to another process of the tree, or a description several of them
      // share: the root made it before forking (parkTreePipes, parkTreeSockets, parkSharedFiles).
      r.call(NR.dup3, [BigInt(inherited), BigInt(f.fd), BigInt(f.cloexec ? O_CLOEXEC : 0)], `dup3 to fd ${f.fd} (${f.target}, shared between processes)`);
      continue;
    }
    const a = plans.get(f.fd)!;
    if (a.action === 'pty-master') continue;
    if (a.action === 'pipe' || a.action === 'socketpair') {
      // Messages (and descriptors in flight with them) are sent once every descriptor is in place: below.
      const channel = channelOf(a)!;
      // The whole channel at its first descriptor: its other numbers are then taken for good.
      if (!channelsDone.has(channel)) {
        channelsDone.add(channel);
        const ends = [...plans.values()].filter((x): x is ChannelEnd => channelOf(x) === channel);
        recreateChannel(r, ends, above);
      }
      continue;
    }
    // One open file description held by several fds: recreated at the lowest, dup'ed to the others
    // so that they keep sharing offset and status flags. Redirected and refused fds stay apart.
    if (f.sharesWith !== undefined && SHAREABLE.has(a.action)) {
      const src = every.find((x) => x.fd === f.sharesWith);
      if (src && plans.get(src.fd)?.action === a.action) {
        r.call(NR.dup3, [BigInt(src.fd), BigInt(a.fd), BigInt(a.action !== 'refuse' && a.cloexec ? O_CLOEXEC : 0)], `dup3 fd ${src.fd} to fd ${a.fd} (one open file description)`);
        continue;
      }
    }
    r.resetScratch();
    let got: bigint;
    const cloexec = BigInt(a.action !== 'refuse' && a.cloexec ? O_CLOEXEC : 0);
    switch (a.action) {
      case 'refuse':
        throw new StasisError('UNSUPPORTED', `${a.reason}. ${a.fix}`);
      case 'open':
      case 'redirect':
        got = r.call(NR.open, [r.putString(a.path), BigInt(a.flags) | cloexec, 0o644n], `reopening fd ${a.fd} (${a.path})`);
        break;
      case 'ghost':
        got = r.call(NR.open, [r.putString(ghosts.pathFor(a)), BigInt(a.flags) | cloexec, 0n], `reopening fd ${a.fd} (the recreated deleted file ${a.dir}/${a.name})`);
        break;
      case 'fifo':
        // Never blocks: a read end opens at once, a write end fails (ENXIO) when nobody reads.
        got = r.raw(NR.open, [r.putString(a.path), BigInt(a.flags | O_NONBLOCK) | cloexec, 0n]);
        if (got < 0n) got = r.call(NR.open, [r.putString(a.fallback.path), BigInt(a.fallback.flags) | cloexec, 0o644n], `reopening fd ${a.fd} (${a.fallback.path})`);
        else {
          if (a.data?.length || a.size) refillFifo(r, a);
          if ((a.flags & O_NONBLOCK) === 0) r.call(NR.fcntl, [got, F_SETFL, BigInt(a.flags & O_APPEND)], `blocking mode of fd ${a.fd} (${a.path})`);
        }
        break;
      case 'mqueue':
        got = r.call(NR.mq_open, [r.putString(a.name.replace(/^\//, '')), BigInt(a.flags) | cloexec, 0n, 0n], `mq_open(${a.name}) for fd ${a.fd}`);
        break;
      case 'eventfd':
        got = r.call(NR.eventfd2, [a.count, BigInt(a.flags | (a.semaphore ? EFD_SEMAPHORE : 0)) | cloexec], `recreating eventfd ${a.fd}`);
        break;
      case 'signalfd': {
        const m = Buffer.alloc(8);
        m.writeBigUInt64LE(a.mask, 0);
        got = r.call(NR.signalfd4, [-1n, r.put(m), 8n, BigInt(a.flags) | cloexec], `recreating signalfd ${a.fd}`);
        break;
      }
      case 'timerfd': {
        got = r.call(NR.timerfd_create, [BigInt(a.clockid), BigInt(a.flags) | cloexec], `recreating timerfd ${a.fd}`);
        // Wall-clock timers ran on while the process was checkpointed: the expirations that fell
        // in between join the unread ones (TFD_IOC_SET_TICKS), and the next comes at its phase.
        const left = a.valueNs === 0n && a.intervalNs !== 0n ? { valueNs: 1n, missed: 0n } : timerAfter(a.valueNs, a.intervalNs, isWallClock(a.clockid) ? elapsed : 0n);
        if (left.valueNs !== 0n) {
          const spec = Buffer.alloc(32);
          const v = left.valueNs;
          [a.intervalNs / 1_000_000_000n, a.intervalNs % 1_000_000_000n, v / 1_000_000_000n, v % 1_000_000_000n].forEach((x, i) => spec.writeBigInt64LE(x, i * 8));
          r.call(NR.timerfd_settime, [got, 0n, r.put(spec), 0n], `arming timerfd ${a.fd}`);
        }
        const ticks = a.ticks + left.missed;
        if (ticks > 0n) {
          const b = Buffer.alloc(8);
          b.writeBigUInt64LE(ticks, 0);
          r.call(NR.ioctl, [got, TFD_IOC_SET_TICKS, r.put(b)], `expirations of timerfd ${a.fd}`);
        }
        break;
      }
      case 'epoll':
        got = r.call(NR.epoll_create1, [cloexec], `recreating epoll fd ${a.fd}`);
        epolls.push(a);
        break;
      case 'inotify':
        got = r.call(NR.inotify_init1, [BigInt(a.flags) | cloexec], `recreating inotify fd ${a.fd}`);
        inotifies.push(a);
        break;
      case 'socket':
        got = makeSocket(r, a, cloexec);
        break;
      case 'pty-slave': {
        const m = ptyMasters.get(a.index);
        if (m === undefined) throw new StasisError('INTERNAL', `fd ${a.fd}: the master of /dev/pts/${a.index} was not made again.`);
        got = openSlave(r, BigInt(m), a.flags, `/dev/pts/${a.index} for fd ${a.fd}`);
        if (!a.cloexec && got === BigInt(a.fd)) r.call(NR.fcntl, [got, 2n /* F_SETFD */, 0n], `close-on-exec bit of fd ${a.fd}`);
        break;
      }
    }
    if (got !== BigInt(a.fd)) {
      r.call(NR.dup3, [got, BigInt(a.fd), cloexec], `dup3 to fd ${a.fd}`);
      r.raw(NR.close, [got]);
    }
    if ((a.action === 'open' || a.action === 'ghost') && a.pos !== 0n) {
      const pos = r.raw(NR.lseek, [BigInt(a.fd), a.pos, BigInt(SEEK_SET)]);
      if (pos < 0n && (f.kind === 'file' || a.action === 'ghost')) throw new StasisError('INTERNAL', `Could not restore the position ${a.pos} of fd ${a.fd} (${a.action === 'open' ? a.path : f.target}): errno ${-pos}.`);
    }
  }
  sendQueues(r, plans, channelsDone);
  for (const x of flight) r.raw(NR.close, [BigInt(x.fd)]);
  // Watches last: every watched descriptor (a recreated deleted file, a watched fd) exists by now.
  for (const a of inotifies) addWatches(r, BigInt(a.fd), a.watches, a.fd);
  const saved = new Map(state.fds.map((x) => [x.fd, x]));
  for (const e of epolls) {
    for (const it of e.items) {
      r.resetScratch();
      const ev = Buffer.alloc(12);
      ev.writeUInt32LE(it.events >>> 0, 0);
      ev.writeBigUInt64LE(it.data, 4);
      const evAddr = r.put(ev);
      if (it.via === undefined) {
        r.call(NR.epoll_ctl, [BigInt(e.fd), 1n, BigInt(it.tfd), evAddr], `adding fd ${it.tfd} to epoll fd ${e.fd}`);
        continue;
      }
      // The watch is on the file at fd `via` but listed under the closed number tfd: lend the file
      // that number for the epoll_ctl (moving aside whatever holds it now), then give it back.
      const occupant = saved.get(it.tfd);
      const parked = occupant ? r.call(NR.fcntl, [BigInt(it.tfd), F_DUPFD_CLOEXEC, BigInt(above)], `parking fd ${it.tfd}`) : -1n;
      r.call(NR.dup3, [BigInt(it.via), BigInt(it.tfd), 0n], `lending the file of fd ${it.via} the number ${it.tfd} (watched by epoll fd ${e.fd} under it)`);
      r.call(NR.epoll_ctl, [BigInt(e.fd), 1n, BigInt(it.tfd), evAddr], `adding the file of fd ${it.via} as ${it.tfd} to epoll fd ${e.fd}`);
      if (occupant) {
        r.call(NR.dup3, [parked, BigInt(it.tfd), BigInt(occupant.cloexec ? O_CLOEXEC : 0)], `putting fd ${it.tfd} back`);
        r.raw(NR.close, [parked]);
      } else r.raw(NR.close, [BigInt(it.tfd)]);
    }
  }
  // A memfd also mapped: its mappings from the memfd now in place (they were plain shared memory).
  remapMemfds(r, state.mappings, state.fds, plans);
}

/**
 * Tree restores, once every member's memory is in and before any member takes its descriptors:
 * the bytes that waited in each pipe between members written back through its parked write end
 * (in the root, which every member inherited it from).
 */
export function fillTreePipes(r: Remote, pipes: { target: string; ends: FdState[] }[], parked: ParkedFds): void {
  for (const p of pipes) {
    const data = p.ends.map((e) => e.info?.pipeData).find((d): d is string => typeof d === 'string');
    const w = parked.get(`${p.target}/write`);
    if (!data || w === undefined) continue;
    const bytes = Buffer.from(data, 'base64');
    const fd = BigInt(w);
    if (bytes.length > 65536) r.call(NR.fcntl, [fd, F_SETPIPE_SZ, BigInt(bytes.length)], `sizing ${p.target} for its ${bytes.length} waiting bytes`);
    for (let o = 0; o < bytes.length; o += CHUNK) {
      r.resetScratch();
      const part = bytes.subarray(o, o + CHUNK);
      const n = r.call(NR.write, [fd, r.put(part), BigInt(part.length)], `refilling ${p.target}`);
      if (n !== BigInt(part.length)) throw new StasisError('INTERNAL', `Only ${n} of ${part.length} bytes went back into ${p.target}.`);
    }
  }
}

/**
 * Tree restores: the offset of each file description members share, set again from the states
 * restored (a prepared tree parked them at an earlier round's offsets). Not seekable ones are left.
 */
export function reseekSharedFiles(r: Remote, groups: { key: string; first: FdState; holderFds: readonly FdState[] }[], redirect: RedirectOptions, parked: ParkedFds): void {
  for (const g of groups) {
    const at = parked.get(`shared:${g.key}`);
    const a = planFd(g.first, redirect, g.holderFds);
    if (at === undefined || (a.action !== 'open' && a.action !== 'ghost')) continue;
    r.raw(NR.lseek, [BigInt(at), a.pos, BigInt(SEEK_SET)]);
  }
}
