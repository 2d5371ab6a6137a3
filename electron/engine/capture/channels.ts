/**
 * Channels whose both ends the process holds: pipes (a self-pipe: event loops wake themselves
 * through one) and UNIX socketpairs (Python's asyncio, for one, keeps a socketpair for that). The
 * restore recreates them, so the bytes waiting in them at the freeze belong to the checkpoint. They
 * are copied, not consumed: the descriptor is taken over with pidfd_getfd (the same open pipe or
 * socket) and tee(2)'d into a pipe of our own, or walked with MSG_PEEK (capture/socket-queue.ts), so the
 * target never notices.
 * Runs while the target is frozen. Channels with one end elsewhere are not touched (the restore
 * redirects pipes and refuses sockets of that kind).
 */
import { socketInode, type FdState } from '../state/process-state';
import { SYS, syscall, ioctlErrno, malloc, free, copyFromAddr, closeFd } from '../native';
import { unixSockets } from '../proc';
import { intOption, socketDetails } from './socket-details';
import { InFlight, walkQueue } from './socket-queue';
import { inFlightFds } from '../state/socket-queue';

const FIONREAD = 0x541b;
const F_SETPIPE_SZ = 1031, F_GETPIPE_SZ = 1032;
/** What pipe2 gives (16 pages). */
const DEFAULT_PIPE_SIZE = 65536;
const SPLICE_F_NONBLOCK = 2n;
const O_CLOEXEC = 0o2000000n;
const SOCK_STREAM = 1;

const readable = (f: FdState): boolean => (f.flags & 3) !== 1;
const writable = (f: FdState): boolean => (f.flags & 3) !== 0;

/**
 * Pipe target ("pipe:[ino]") -> its descriptors in fds, for pipes with a read end and a write end
 * among fds and `flight` (descriptors in flight in the process's socketpairs).
 */
function internalPipes(fds: readonly FdState[], flight: readonly FdState[]): Map<string, FdState[]> {
  const byPipe = new Map<string, FdState[]>();
  for (const f of fds) if (f.kind === 'pipe') byPipe.set(f.target, [...(byPipe.get(f.target) ?? []), f]);
  const all = [...fds, ...flight];
  for (const k of [...byPipe.keys()]) {
    const every = all.filter((x) => x.kind === 'pipe' && x.target === k);
    if (!every.some(readable) || !every.some(writable)) byPipe.delete(k);
  }
  return byPipe;
}

/** Both kinds of channel; see the module comment. */
export function captureChannels(pid: number, fds: FdState[], warnings: string[]): void {
  // Socketpairs first: a pipe end in flight in one of them makes the pipe one the process holds whole.
  const flight = captureSocketPairs(pid, fds, warnings);
  capturePipeContents(pid, fds, flight, warnings);
  captureFifoContents(pid, fds, warnings);
  describeSockets(pid, fds);
}

const SOL_SOCKET = 1n;
const SO = { TYPE: 3n, ACCEPTCONN: 30n, PROTOCOL: 38n, DOMAIN: 39n } as const;

/**
 * For the sockets that are not socketpairs: what they are (info.socket: domain, type, protocol,
 * listening), read with getsockopt on a copy taken over with pidfd_getfd, so the restore's refusal
 * can say "a listening TCP socket" rather than guess; for sockets that are not connections also
 * what making them again needs (info.socket.detail, socket-details.ts).
 */
function describeSockets(pid: number, fds: FdState[]): void {
  const others = fds.filter((f) => f.kind === 'socket' && f.info?.unixPeer === undefined);
  if (others.length === 0) return;
  let pidfd = -1;
  const val = malloc(16);
  try {
    pidfd = Number(syscall(SYS.pidfd_open, [BigInt(pid), 0n], 'pidfd_open'));
    for (const f of others) {
      let ours = -1;
      try {
        ours = Number(syscall(SYS.pidfd_getfd, [BigInt(pidfd), BigInt(f.fd), 0n], `pidfd_getfd of fd ${f.fd}`));
        const get = (opt: bigint): number => {
          const v = intOption(ours, Number(SOL_SOCKET), Number(opt), val);
          if (v === null) throw new Error('getsockopt');
          return v;
        };
        const d = { domain: get(SO.DOMAIN), type: get(SO.TYPE), protocol: get(SO.PROTOCOL), listening: get(SO.ACCEPTCONN) === 1 };
        const detail = socketDetails(pid, ours, d.domain, d.type, d.protocol, d.listening);
        f.info = { ...(f.info ?? {}), socket: { ...d, ...(detail ? { detail } : {}) } };
      } catch {
        // No description: the restore refuses the socket.
      } finally {
        if (ours >= 0) closeFd(ours);
      }
    }
  } catch {
    // no pidfd (old kernel): no descriptions
  } finally {
    if (pidfd >= 0) closeFd(pidfd);
    free(val);
  }
}

/**
 * Marks the descriptors of UNIX socketpairs whose both ends the process holds (info.unixPeer = the
 * peer's inode, info.unixType = the socket type) and saves what waits to be read at each end on its
 * first descriptor (saveQueue). Returns the descriptors found in flight in those queues.
 */
function captureSocketPairs(pid: number, fds: FdState[], warnings: string[]): FdState[] {
  const mine = fds.filter((f) => f.kind === 'socket' && socketInode(f) !== 0);
  const inodes = new Set(mine.map(socketInode));
  // A pair needs two sockets; the netlink dump (all UNIX sockets of the system) runs while frozen.
  if (inodes.size < 2) return [];
  let diag;
  try {
    diag = unixSockets();
  } catch (e) {
    warnings.push(`UNIX sockets could not be listed (${(e as Error).message}): socketpairs will not be restorable`);
    return [];
  }
  const withData = new Set<number>();
  const flight = new InFlight(pid, fds);
  let pidfd = -1;
  try {
    pidfd = Number(syscall(SYS.pidfd_open, [BigInt(pid), 0n], 'pidfd_open'));
    const take = (f: FdState): number => flight.copyOf(f) ?? Number(syscall(SYS.pidfd_getfd, [BigInt(pidfd), BigInt(f.fd), 0n], `pidfd_getfd of fd ${f.fd}`));
    const pairUp = (ends: readonly FdState[], within: ReadonlySet<number>, nested: InFlight | null): void => {
      for (const f of ends) {
        const ino = socketInode(f);
        const d = diag.get(ino);
        if (f.info?.unixPeer !== undefined || !d || d.peer === 0 || !within.has(d.peer)) continue;
        f.info = { ...(f.info ?? {}), unixPeer: d.peer, unixType: d.type };
        for (const x of ends) if (x !== f && socketInode(x) === ino) x.info = { ...(x.info ?? {}), unixPeer: d.peer, unixType: d.type };
        if (withData.has(ino)) continue;
        withData.add(ino);
        const peerEnd = ends.find((x) => socketInode(x) === d.peer);
        saveQueue(take, f, peerEnd ?? null, d.type, warnings, f.info.inFlight === true ? null : nested, pid);
      }
    };
    pairUp(mine, inodes, flight);
    // Ends of socketpairs in flight themselves (one end sent over another pair): such a pair is
    // whole when its other end is the process's or in flight too. Their own queues may not carry
    // descriptors in turn (refused).
    const sent = inFlightFds(fds).filter((x) => x.kind === 'socket' && socketInode(x) !== 0);
    if (sent.length) pairUp([...mine, ...sent], new Set([...inodes, ...sent.map(socketInode)]), flight);
  } finally {
    if (pidfd >= 0) closeFd(pidfd);
    flight.close();
  }
  return inFlightFds(fds);
}

/**
 * What waits to be read at the socketpair end of `f`, on f.info: socketData (base64) for a stream
 * without descriptors or credentials in flight, else socketQueue (each message,
 * capture/socket-queue.ts); socketPasscred when SO_PASSCRED is on; socketOptions: its buffer sizes
 * and peek offset; queueRefused when the queue cannot be sent again exactly (the pre-flight
 * refuses it). `take` gives our copy of a descriptor (closed here unless `flight` owns it), `peer`
 * is a descriptor of the other end if the process holds it; `flight`, `pid`: null between the
 * processes of a tree (walkQueue).
 */
export function saveQueue(take: (f: FdState) => number, f: FdState, peer: FdState | null, type: number, warnings: string[], flight: InFlight | null, pid: number | null): void {
  const taken: number[] = [];
  const own = (x: FdState): number => { const n = take(x); if (x.info?.inFlight !== true) taken.push(n); return n; };
  try {
    const q = walkQueue(own(f), type, flight, pid, peer ? own(peer) : null);
    const info: Record<string, unknown> = { ...(f.info ?? {}) };
    if (q.passcred) info.socketPasscred = true;
    info.socketOptions = q.options;
    if (q.refused) {
      info.queueRefused = q.refused;
      warnings.push(`fd ${f.fd} (${f.target}): the messages waiting in it cannot be restored exactly: ${q.refused}`);
    }
    const plain = type === SOCK_STREAM && q.messages.every((m) => !m.fds && !m.creds);
    if (plain && q.messages.length) info.socketData = Buffer.concat(q.messages.map((m) => Buffer.from(m.data, 'base64'))).toString('base64');
    else if (!plain && q.messages.length) info.socketQueue = q.messages;
    f.info = info;
  } catch (e) {
    warnings.push(`fd ${f.fd} (${f.target}): the messages waiting in it were not saved (${(e as Error).message})`);
    f.info = { ...(f.info ?? {}), queueRefused: `its waiting messages could not be read (${(e as Error).message})` };
  } finally {
    for (const n of taken) closeFd(n);
  }
}

/** Adds info.pipeData (base64) to the first read end the process holds of every internal pipe that holds bytes. */
function capturePipeContents(pid: number, fds: FdState[], flight: readonly FdState[], warnings: string[]): void {
  const pipes = internalPipes(fds, flight);
  if (pipes.size === 0) return;
  let pidfd = -1;
  try {
    pidfd = Number(syscall(SYS.pidfd_open, [BigInt(pid), 0n], 'pidfd_open'));
    // A read end only in flight had its bytes saved when it was described (capture/socket-queue.ts).
    for (const ends of pipes.values()) { const r = ends.find(readable); if (r) savePipeBytes(pidfd, r, warnings); }
  } finally {
    if (pidfd >= 0) closeFd(pidfd);
  }
}

/**
 * The bytes waiting in each named FIFO the process reads (info.pipeData on its first readable fd):
 * when nothing else holds the FIFO at restore time its queue died with the process, and restore
 * writes them back (restore/fds.ts).
 */
function captureFifoContents(pid: number, fds: FdState[], warnings: string[]): void {
  const readers = new Map<string, FdState>();
  for (const f of fds) if (f.kind === 'fifo' && (f.flags & 3) !== 1 && !readers.has(f.target)) readers.set(f.target, f);
  if (readers.size === 0) return;
  let pidfd = -1;
  try {
    pidfd = Number(syscall(SYS.pidfd_open, [BigInt(pid), 0n], 'pidfd_open'));
    for (const f of readers.values()) savePipeBytes(pidfd, f, warnings);
  } finally {
    if (pidfd >= 0) closeFd(pidfd);
  }
}

/**
 * The bytes waiting in the pipe behind `reader` (a read end of the process behind pidfd), copied
 * with tee(2) without consuming them, into reader.info.pipeData (base64). Also used for pipes
 * between the processes of a tree checkpoint (capture/tree.ts).
 */
export function savePipeBytes(pidfd: number, reader: FdState, warnings: string[]): void {
  const target = reader.target;
  const mem = malloc(16);
  let ours = -1;
  const local: number[] = [];
  try {
    ours = Number(syscall(SYS.pidfd_getfd, [BigInt(pidfd), BigInt(reader.fd), 0n], `pidfd_getfd of fd ${reader.fd}`));
    // A program that raised its pipe's capacity may count on writing that much without blocking.
    const size = Number(syscall(SYS.fcntl, [BigInt(ours), BigInt(F_GETPIPE_SZ)], 'fcntl(F_GETPIPE_SZ)'));
    if (size !== DEFAULT_PIPE_SIZE) reader.info = { ...(reader.info ?? {}), pipeSize: size };
    const count = Buffer.alloc(4);
    if (ioctlErrno(ours, FIONREAD, count).ret !== 0) return;
    const n = count.readInt32LE(0);
    if (n <= 0) return;
    syscall(SYS.pipe2, [mem, O_CLOEXEC], 'pipe2');
    const pair = Buffer.alloc(8);
    copyFromAddr(pair, mem);
    local.push(pair.readInt32LE(0), pair.readInt32LE(4));
    syscall(SYS.fcntl, [BigInt(local[1]!), BigInt(F_SETPIPE_SZ), BigInt(n)], 'fcntl(F_SETPIPE_SZ)');
    const copied = Number(syscall(SYS.tee, [BigInt(ours), BigInt(local[1]!), BigInt(n), SPLICE_F_NONBLOCK], `tee of ${target}`));
    const buf = malloc(copied);
    try {
      const got = Number(syscall(SYS.read, [BigInt(local[0]!), buf, BigInt(copied)], 'read'));
      const data = Buffer.alloc(got);
      copyFromAddr(data, buf);
      reader.info = { ...(reader.info ?? {}), pipeData: data.toString('base64') };
      if (got < n) warnings.push(`fd ${reader.fd} (${target}): only ${got} of the ${n} waiting bytes could be saved`);
    } finally {
      free(buf);
    }
  } catch (e) {
    warnings.push(`fd ${reader.fd} (${target}): the bytes waiting in it were not saved (${(e as Error).message})`);
  } finally {
    if (ours >= 0) closeFd(ours);
    for (const l of local) closeFd(l);
    free(mem);
  }
}
