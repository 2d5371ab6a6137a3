/**
 * Open file descriptors: readlink of /proc/PID/fd/N, its fdinfo (pos, flags, kind-specific lines)
 * and a stat of the open file, classified into FdKind. Read at freeze time (the fork-snapshot child
 * shares the file positions, so reading them later would be racy). Never touches the process.
 */
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import type { FdKind, FdState } from '../state/process-state';

const O_CLOEXEC = 0o2000000;

export interface FdInfo {
  pos: bigint;
  flags: number;
  mntId?: number;
  ino?: number;
  /** Every other "key: value" line; repeated keys (tfd, inotify wd...) become arrays. */
  extra: Record<string, string | string[]>;
}

export function parseFdinfo(text: string): FdInfo {
  const info: FdInfo = { pos: 0n, flags: 0, extra: {} };
  for (const line of text.split('\n')) {
    // "inotify wd:1 ino:..." and "fanotify ..." lines carry their own key:value pairs.
    const sp = /^(inotify|fanotify) /.exec(line);
    const i = sp ? sp[0].length - 1 : line.indexOf(':');
    if (i <= 0) continue;
    const k = line.slice(0, i).trim();
    const v = line.slice(i + 1).trim();
    if (k === 'pos') info.pos = BigInt(v);
    else if (k === 'flags') info.flags = parseInt(v, 8);
    else if (k === 'mnt_id') info.mntId = Number(v);
    else if (k === 'ino') info.ino = Number(v);
    else {
      const prev = info.extra[k];
      if (prev === undefined) info.extra[k] = v;
      else info.extra[k] = Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
  }
  return info;
}

export function classifyFd(target: string, mode: number | undefined): FdKind {
  if (target.startsWith('pipe:')) return 'pipe';
  if (target.startsWith('socket:')) return 'socket';
  if (target.startsWith('anon_inode:')) {
    const what = target.slice('anon_inode:'.length).replace(/[[\]]/g, '');
    if (what === 'eventfd') return 'eventfd';
    if (what === 'timerfd') return 'timerfd';
    if (what === 'signalfd') return 'signalfd';
    if (what === 'eventpoll') return 'epoll';
    if (what === 'inotify') return 'inotify';
    if (what === 'pidfd') return 'pidfd';
    return 'anon-other';
  }
  if (target.startsWith('/memfd:')) return 'memfd';
  if (/^\/dev\/(pts\/\d+|tty\w*|console)$/.test(target)) return 'tty';
  if (target.endsWith(' (deleted)')) return 'deleted-file';
  if (mode !== undefined) {
    const type = mode & 0o170000;
    if (type === 0o040000) return 'dir';
    if (type === 0o010000) return 'fifo';
    if (type === 0o020000) return 'chr';
    if (type === 0o060000) return 'blk';
    if (type === 0o140000) return 'socket';
  }
  return 'file';
}

function kindInfo(kind: FdKind, fi: FdInfo): Record<string, unknown> | undefined {
  const x = fi.extra;
  switch (kind) {
    case 'eventfd':
      return { count: x['eventfd-count'], id: x['eventfd-id'], semaphore: x['eventfd-semaphore'] };
    case 'timerfd':
      return { clockid: x.clockid, ticks: x.ticks, settimeFlags: x['settime flags'], value: x['it_value'], interval: x['it_interval'] };
    case 'signalfd':
      return { sigmask: x.sigmask };
    case 'epoll':
      return { items: x.tfd === undefined ? [] : ([] as string[]).concat(x.tfd) };
    case 'inotify':
      return { watches: x.inotify === undefined ? [] : ([] as string[]).concat(x.inotify) };
    default:
      return Object.keys(x).length ? { ...x } : undefined;
  }
}

export function readFd(pid: number, fd: number): FdState | null {
  let target: string;
  let info: FdInfo;
  try {
    target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    info = parseFdinfo(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
  } catch {
    return null; // closed meanwhile
  }
  let st: { dev: number; ino: number; size: number; mode: number } | undefined;
  try {
    st = statSync(`/proc/${pid}/fd/${fd}`);
  } catch {
    st = undefined;
  }
  const kind = classifyFd(target, st?.mode);
  const out: FdState = {
    fd,
    kind,
    target,
    flags: info.flags & ~O_CLOEXEC,
    pos: info.pos,
    cloexec: (info.flags & O_CLOEXEC) !== 0,
  };
  if (st) {
    out.dev = st.dev;
    out.inode = st.ino;
    out.size = st.size;
    out.mode = st.mode;
  }
  const ki = kindInfo(kind, info);
  if (ki) out.info = ki;
  return out;
}

export function readFds(pid: number): FdState[] {
  const fds = readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b);
  const out: FdState[] = [];
  for (const fd of fds) {
    const s = readFd(pid, fd);
    if (s) out.push(s);
  }
  return out;
}
