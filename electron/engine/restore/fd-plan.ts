/**
 * How each saved file descriptor comes back: reopened from its path, redirected (ttys and pipes that
 * no longer exist go to the user's log file, stdin to /dev/null), or rebuilt (eventfd, signalfd,
 * timerfd, epoll, inotify, pipes and UNIX socketpairs whose both ends the process held, TCP/UDP
 * sockets that are not connections: socket-plan.ts, and pseudo-terminal pairs the program made:
 * ptys.ts). One decision
 * shared by pre-flight (which reports it) and the fds restore step (which executes it). Reads only
 * (stat, and O_PATH opens of inotify file handles); must never change anything.
 */
import { statSync } from 'node:fs';
import { socketInode, type FdState } from '../state/process-state';
import { planInotify } from './inotify-plan';
import { planGhost } from './ghost-plan';
import { mqueueInode } from '../state/mqueue';
import { planEpoll } from './epoll-plan';
import { planSocket, type SocketAction } from './socket-plan';
import { planQueue, type PairOptions } from './queue-plan';
import type { OutMessage } from './socket-queue';
import type { PtyInfo } from '../state/pty';

export interface RedirectOptions {
  stdin?: string;
  stdout?: string;
  stderr?: string;
  /** Where any other vanished tty/pipe output goes. */
  log: string;
  /** A terminal the terminal descriptors are opened on instead (restore --attach). */
  tty?: string;
}

export type FdAction =
  | { fd: number; action: 'open'; path: string; flags: number; pos: bigint; cloexec: boolean; note?: string }
  | { fd: number; action: 'redirect'; path: string; flags: number; cloexec: boolean; note: string }
  /** A named FIFO still at its path: opened there again (without blocking); `fallback` when a write end finds no reader. */
  | { fd: number; action: 'fifo'; path: string; flags: number; cloexec: boolean; note: string; fallback: Extract<FdAction, { action: 'redirect' }>; data?: Buffer; size?: number }
  /** A POSIX message queue that still exists: mq_open(name) again (its messages are the queue's). */
  | { fd: number; action: 'mqueue'; name: string; flags: number; cloexec: boolean }
  | { fd: number; action: 'eventfd'; count: bigint; semaphore: boolean; flags: number; cloexec: boolean }
  | { fd: number; action: 'signalfd'; mask: bigint; flags: number; cloexec: boolean }
  | { fd: number; action: 'timerfd'; clockid: number; valueNs: bigint; intervalNs: bigint; ticks: bigint; flags: number; cloexec: boolean }
  /**
   * `via`: the watch is on the file now at that fd, listed under the closed number tfd (restore puts
   * the file at tfd for the epoll_ctl). `dropped`: watches that cannot come back, in words.
   */
  | { fd: number; action: 'epoll'; items: { tfd: number; events: number; data: bigint; via?: number }[]; cloexec: boolean; dropped?: string[] }
  /**
   * A deleted open file whose bytes the checkpoint holds: recreated unlinked in `dir` (named `name`
   * there until it is unlinked) and opened with the saved flags at `pos`; `inode` groups the fds of one file.
   * `memfd`: a memfd instead, made again with memfd_create(name) and sealed with `seals` (dir and name unused).
   */
  | { fd: number; action: 'ghost'; dir: string; name: string; inode: string; mode: number; data: Buffer; flags: number; pos: bigint; cloexec: boolean; note?: string; memfd?: { name: string; seals: number } }
  /** `dropped`: watches on files deleted since, that nothing in the checkpoint holds, in words. */
  | { fd: number; action: 'inotify'; watches: { wd: number; mask: number; path: string }[]; flags: number; cloexec: boolean; dropped?: string[] }
  /** One end of a pipe whose both ends the process holds: recreated, with the bytes that were waiting in it. */
  | { fd: number; action: 'pipe'; pipe: string; end: 'read' | 'write'; flags: number; cloexec: boolean; data: Buffer | null; size?: number }
  /**
   * One end (side: its socket inode) of a UNIX socketpair whose both ends the process holds; data:
   * the bytes that waited to be read from it (a stream without descriptors in flight), queue: the
   * messages (each sent again on its own, with the descriptors in flight at their spare numbers);
   * passcred: SO_PASSCRED was on; options: buffer sizes and peek offset (set again once the messages are in).
   */
  | { fd: number; action: 'socketpair'; pair: string; side: number; peer: number; type: number; flags: number; cloexec: boolean; data: Buffer | null; queue?: OutMessage[]; passcred?: boolean; options?: PairOptions }
  /** The master of a pseudo-terminal pair the program made (restore/ptys.ts): made again as `pty` says. */
  | { fd: number; action: 'pty-master'; index: number; pty: PtyInfo; flags: number; cloexec: boolean; note: string }
  /** A slave side of such a pair (its /dev/pts number at the checkpoint): opened from the new master. */
  | { fd: number; action: 'pty-slave'; index: number; flags: number; cloexec: boolean; note: string }
  | SocketAction
  | { fd: number; action: 'refuse'; reason: string; fix: string };

export const O_WRONLY = 0o1, O_RDWR = 0o2, O_CREAT = 0o100, O_EXCL = 0o200, O_NOCTTY = 0o400, O_TRUNC = 0o1000,
  O_APPEND = 0o2000, O_NONBLOCK = 0o4000, O_DIRECTORY = 0o200000, O_CLOEXEC = 0o2000000, O_LARGEFILE = 0o100000;
/** Flags that only matter when opening for the first time: dropping them makes reopening side-effect free. */
const CREATION_FLAGS = O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY;

function accessMode(flags: number): number {
  return flags & 3;
}

function outputPathFor(fd: number, r: RedirectOptions): string {
  if (fd === 1 && r.stdout) return r.stdout;
  if (fd === 2 && r.stderr) return r.stderr;
  return r.log;
}

function hexField(v: unknown): bigint {
  const s = String(v ?? '0').trim();
  return /^[0-9a-f]+$/i.test(s) ? BigInt('0x' + s) : 0n;
}

/** "(sec, nsec)" as fdinfo prints a timespec, in nanoseconds. */
function timespecField(v: unknown): bigint {
  const m = /\(?\s*(\d+)\s*,\s*(\d+)\s*\)?/.exec(String(v ?? ''));
  return m ? BigInt(m[1]!) * 1_000_000_000n + BigInt(m[2]!) : 0n;
}

/** Terminal devices a descriptor may name (the tty kind of proc/fds.ts, and /dev/ttyN as a chr). */
const TERMINAL = /^\/dev\/(pts\/\d+|tty\w*|console)$/;

/** `all`: every descriptor of the checkpoint (epoll needs to know which watched ones exist). */

export function planFd(f: FdState, r: RedirectOptions, all: readonly FdState[] = [f]): FdAction {
  const cloexec = f.cloexec;
  const reopenFlags = (f.flags & ~CREATION_FLAGS & ~O_CLOEXEC) | O_LARGEFILE;
  const redirect = (why: string): FdAction => {
    if (accessMode(f.flags) === 0) {
      const path = f.fd === 0 && r.stdin ? r.stdin : '/dev/null';
      return { fd: f.fd, action: 'redirect', path, flags: 0, cloexec, note: `${why}; reads come from ${path}` };
    }
    const path = outputPathFor(f.fd, r);
    return { fd: f.fd, action: 'redirect', path, flags: O_WRONLY | O_CREAT | O_APPEND | (f.flags & O_NONBLOCK), cloexec, note: `${why}; output goes to ${path}` };
  };
  // Before --attach: this slave's master is in the checkpoint, so it belongs to the program's own pair.
  if (typeof f.info?.ptySlave === 'number') {
    return { fd: f.fd, action: 'pty-slave', index: f.info.ptySlave, flags: reopenFlags & ~O_LARGEFILE, cloexec, note: `${f.target} comes back as the slave side of the pair made again (another number: ttyname() differs)` };
  }
  if (r.tty && (f.kind === 'tty' || (f.kind === 'chr' && TERMINAL.test(f.target)))) {
    // Never its controlling terminal by accident: the terminal already belongs to the CLI's session.
    return { fd: f.fd, action: 'open', path: r.tty, flags: reopenFlags | O_NOCTTY, pos: 0n, cloexec, note: `${f.target} is attached to ${r.tty}` };
  }
  if (f.info?.mqueue === true) return planMqueue(f, cloexec);
  switch (f.kind) {
    case 'file':
    case 'dir':
    case 'chr':
    case 'blk': {
      if (f.kind === 'chr' && TERMINAL.test(f.target)) return redirect(`${f.target} is a terminal`);
      if (f.kind === 'chr' && f.target === '/dev/ptmx') return planPtyMaster(f, all, reopenFlags & ~O_LARGEFILE);
      let st;
      try { st = statSync(f.target, { bigint: true }); } catch (_e) {
        return { fd: f.fd, action: 'refuse', reason: `fd ${f.fd}: ${f.target} no longer exists`, fix: `Put the file back at ${f.target}, or restore an earlier checkpoint.` };
      }
      if (f.kind === 'file' && f.inode !== undefined && f.inode !== 0 && Number(st.ino) !== f.inode) {
        return { fd: f.fd, action: 'refuse', reason: `fd ${f.fd}: ${f.target} was replaced by another file (inode ${st.ino}, was ${f.inode})`, fix: `Restore the original ${f.target}.` };
      }
      const note = f.kind === 'file' && f.size !== undefined && Number(st.size) < Number(f.pos)
        ? `file is now shorter (${st.size} bytes) than the saved position ${f.pos}` : undefined;
      return { fd: f.fd, action: 'open', path: f.target, flags: reopenFlags | (f.kind === 'dir' ? O_DIRECTORY : 0), pos: f.pos, cloexec, note };
    }
    case 'tty':
      return redirect(`${f.target} is a terminal`);
    case 'deleted-file':
    case 'memfd':
      return planGhost(f, all, reopenFlags);
    case 'pipe': {
      const ends = all.filter((x) => x.kind === 'pipe' && x.target === f.target);
      if (ends.some((x) => accessMode(x.flags) !== O_WRONLY) && ends.some((x) => accessMode(x.flags) !== 0)) {
        const data = ends.map((x) => x.info?.pipeData).find((d): d is string => typeof d === 'string');
        const size = ends.map((x) => x.info?.pipeSize).find((n): n is number => typeof n === 'number');
        return { fd: f.fd, action: 'pipe', pipe: f.target, end: accessMode(f.flags) === 0 ? 'read' : 'write', flags: f.flags & O_NONBLOCK, cloexec, data: data ? Buffer.from(data, 'base64') : null, ...(size ? { size } : {}) };
      }
      return redirect(`${f.target} (${f.kind}) cannot be reattached: its other end was in another process`);
    }
    case 'fifo': {
      let isFifo = false;
      try { isFifo = statSync(f.target).isFIFO(); } catch (_e) { /* gone */ }
      if (!isFifo) return redirect(`${f.target} (fifo) is no longer there`);
      const fallback = redirect(`${f.target} (fifo) has no reader at restore time`) as Extract<FdAction, { action: 'redirect' }>;
      const note = accessMode(f.flags) === 0 ? `${f.target} (fifo) is opened again by its path` : `${f.target} (fifo) is opened again by its path if it has a reader then; else ${fallback.note.replace(/^.*; /, '')}`;
      const data = typeof f.info?.pipeData === 'string' ? Buffer.from(f.info.pipeData, 'base64') : undefined;
      const size = typeof f.info?.pipeSize === 'number' ? f.info.pipeSize : undefined;
      return { fd: f.fd, action: 'fifo', path: f.target, flags: reopenFlags, cloexec, note, fallback, ...(data ? { data } : {}), ...(size ? { size } : {}) };
    }
    case 'eventfd': {
      const count = hexField(f.info?.count ?? f.info?.['eventfd-count']);
      const semaphore = String(f.info?.semaphore ?? f.info?.['eventfd-semaphore'] ?? '0').trim() === '1';
      return { fd: f.fd, action: 'eventfd', count, semaphore, flags: f.flags & O_NONBLOCK, cloexec };
    }
    case 'signalfd':
      return { fd: f.fd, action: 'signalfd', mask: hexField(f.info?.sigmask), flags: f.flags & O_NONBLOCK, cloexec };
    case 'timerfd': {
      const clockid = Number(String(f.info?.clockid ?? '1').trim());
      const ticks = /^\d+$/.test(String(f.info?.ticks ?? '').trim()) ? BigInt(String(f.info?.ticks).trim()) : 0n;
      return { fd: f.fd, action: 'timerfd', clockid, valueNs: timespecField(f.info?.value), intervalNs: timespecField(f.info?.interval), ticks, flags: f.flags & O_NONBLOCK, cloexec };
    }
    // Watches name the process's own descriptor numbers: never one of the spare numbers of descriptors in flight.
    case 'epoll':
      return planEpoll(f, all.filter((x) => x.info?.inFlight !== true), (x) => planFd(x, r, all));
    case 'inotify':
      return planInotify(f, all.filter((x) => x.info?.inFlight !== true), (x) => planFd(x, r, all));
    case 'socket': {
      const ino = socketInode(f);
      const peer = Number(f.info?.unixPeer ?? 0);
      const type = Number(f.info?.unixType ?? 0);
      if (ino !== 0 && peer !== 0 && all.some((x) => x.kind === 'socket' && x.target === `socket:[${peer}]` && Number(x.info?.unixPeer ?? 0) === ino)) {
        const pair = `${Math.min(ino, peer)}-${Math.max(ino, peer)}`;
        const queued = planQueue(f, all, (x) => planFd(x, r, all), type);
        if ('reason' in queued) return { fd: f.fd, action: 'refuse', reason: queued.reason, fix: queued.fix };
        return { fd: f.fd, action: 'socketpair', pair, side: ino, peer, type, flags: f.flags & O_NONBLOCK, cloexec, ...queued };
      }
      const remade = planSocket(f, f.flags & O_NONBLOCK, cloexec);
      if (remade) return remade;
      return {
        fd: f.fd, action: 'refuse',
        reason: `fd ${f.fd} is ${describeSocket(f)} (${f.target}): Stasis restores UNIX socketpairs whose both ends the process holds, and TCP and UDP sockets that are not connections`,
        fix: 'Have the program close its sockets before the checkpoint and open them again afterwards, or restart it from scratch.',
      };
    }
    default:
      return {
        fd: f.fd, action: 'refuse',
        reason: `fd ${f.fd} is a ${f.kind} (${f.target}): restoring this kind of descriptor is not supported yet`,
        fix: 'Close it in the program before checkpointing, or wait for a Stasis version that restores it.',
      };
  }
}

/**
 * A pseudo-terminal master the program made: made again from what capture saved (capture/ptys.ts),
 * unless that is missing (a checkpoint from before, or unreadable) or could not be saved exactly
 * (PtyInfo.error: bytes waiting in packet mode, a line holding a line-ending character as data).
 */
function planPtyMaster(f: FdState, all: readonly FdState[], flags: number): FdAction {
  const p = f.info?.pty as Partial<PtyInfo> | undefined;
  const slaves = [...new Set(all.filter((x) => /^\/dev\/pts\/\d+$/.test(x.target)).map((x) => x.target))];
  const what = `fd ${f.fd} is the master side of a pseudo-terminal the program made (/dev/ptmx${typeof p?.index === 'number' ? `, /dev/pts/${p.index}` : ''}${slaves.length ? `; it also holds ${slaves.join(', ')}` : ''})`;
  const refuse = (why: string, fix: string): FdAction => ({ fd: f.fd, action: 'refuse', reason: `${what}: ${why}`, fix });
  if (!p || typeof p.index !== 'number' || typeof p.termios !== 'string') {
    return refuse(p?.error ?? 'the checkpoint holds nothing of it (made by an older Stasis): opening /dev/ptmx again would make another terminal pair, cut off from the program\'s other side',
      'Checkpoint the program again with this Stasis version, or when it has closed its pseudo-terminal.');
  }
  if (p.error) return refuse(p.error, p.fix ?? 'Checkpoint the program again when that has changed.');
  const queued = [p.toMaster ? `${Buffer.from(p.toMaster, 'base64').length} bytes for the master` : '', p.toSlave ? `${Buffer.from(p.toSlave, 'base64').length} bytes for the slave side` : ''].filter(Boolean);
  return {
    fd: f.fd, action: 'pty-master', index: p.index, pty: p as PtyInfo, flags, cloexec: f.cloexec,
    note: `pseudo-terminal /dev/pts/${p.index} is made again with its settings${queued.length ? ` and the ${queued.join(' and ')} that waited` : ''} (another number: ttyname() differs)`,
  };
}

/** What capture found out about a socket that is not a socketpair (capture/channels.ts), in words. */
function describeSocket(f: FdState): string {
  const d = f.info?.socket as { domain?: number; type?: number; protocol?: number; listening?: boolean } | undefined;
  if (!d) return 'a socket connected outside the process';
  const family = ({ 1: 'UNIX', 2: 'IPv4', 10: 'IPv6', 16: 'netlink', 17: 'packet' } as Record<number, string>)[d.domain ?? -1] ?? `family ${d.domain}`;
  const kind = d.domain === 1 ? (d.type === 2 ? 'datagram' : d.type === 5 ? 'seqpacket' : 'stream')
    : d.protocol === 6 ? 'TCP' : d.protocol === 17 ? 'UDP' : d.protocol === 1 || d.protocol === 58 ? 'ICMP (ping)' : d.type === 3 ? 'raw' : `type ${d.type}`;
  if (d.listening) return `a listening ${kind} socket (${family})`;
  return d.domain === 1 ? `a UNIX ${kind} socket connected to another process` : `${kind.startsWith('ICMP') ? 'an' : 'a'} ${kind} socket (${family})`;
}

/** A POSIX message queue (state/mqueue.ts): opened again by name while the same queue exists. */
function planMqueue(f: FdState, cloexec: boolean): FdAction {
  const name = f.target.replace(/ \(deleted\)$/, '');
  const refuse = (why: string, fix: string): FdAction => ({ fd: f.fd, action: 'refuse', reason: `fd ${f.fd} is the POSIX message queue ${name}: ${why}`, fix });
  if (f.target.endsWith(' (deleted)')) return refuse('it was already removed (mq_unlink), and Stasis does not save the messages of a queue', 'Checkpoint the program before it removes the queue, or restart it.');
  const ino = mqueueInode(name);
  if (ino === null) return refuse('it no longer exists (a queue lives until mq_unlink or a reboot)', `Create the queue ${name} again (or restore before it is removed).`);
  if (f.inode !== undefined && f.inode !== 0 && ino !== f.inode) return refuse(`it was removed and made again since (inode ${ino}, was ${f.inode})`, 'Restore a checkpoint taken after the queue was made again.');
  return { fd: f.fd, action: 'mqueue', name, flags: f.flags & (3 | O_NONBLOCK), cloexec }; // access mode and O_NONBLOCK: all mq_open takes
}
