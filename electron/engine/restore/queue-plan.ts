/**
 * Whether what waited at one end of a socketpair can come back exactly, and how (fd-plan.ts):
 * the bytes of a stream, or each message with its boundary, its descriptors in flight (each planned
 * as a process descriptor is, and sent again only when it is of a kind that comes back whole) and
 * its credentials. Anything capture could not read, or that would come back different, is refused
 * with the reason: a message must never be dropped, split, reordered or sent without what rode
 * along with it.
 */
import type { FdState } from '../state/process-state';
import { socketQueue } from '../state/socket-queue';
import type { FdAction } from './fd-plan';
import type { OutMessage } from './socket-queue';

export interface PairOptions { sndbuf: number; rcvbuf: number; peekOff: number }
export type QueuePlan = { data: Buffer | null; queue?: OutMessage[]; passcred?: boolean; options?: PairOptions } | { reason: string; fix: string };

const SOCK_DGRAM = 2;
/** What a descriptor in flight may become: made again whole in the restored process, then sent. */
const SENDABLE = new Set<FdAction['action']>(['open', 'pipe', 'socketpair', 'eventfd', 'signalfd', 'timerfd']);
const FIX = 'Checkpoint the program when those messages have been read.';

/** `all`: the process's descriptors and those in flight (state/socket-queue.ts withInFlight). */
export function planQueue(f: FdState, all: readonly FdState[], plan: (x: FdState) => FdAction, type: number): QueuePlan {
  const ends = all.filter((x) => x.target === f.target);
  const what = `fd ${f.fd} (${f.target}) of a UNIX socketpair`;
  for (const x of ends) {
    if (typeof x.info?.queueRefused === 'string') return { reason: `${what} has messages waiting that cannot come back exactly: ${x.info.queueRefused}`, fix: FIX };
    // Checkpoints taken before the queues were saved message by message.
    if (x.info?.controlInFlight === true) return { reason: `${what} had messages waiting that carry descriptors or credentials (SCM_RIGHTS, SCM_CREDENTIALS), which this checkpoint did not save: they would come back without them`, fix: `${FIX} Or take the checkpoint again with this version of Stasis, which saves them.` };
    if (typeof x.info?.lostMessages === 'number') return { reason: `${what} had messages waiting (the next one ${x.info.lostMessages} bytes) that this checkpoint did not save (${type === SOCK_DGRAM ? 'datagram' : 'seqpacket'}): they would be lost`, fix: `${FIX} Or take the checkpoint again with this version of Stasis, which saves them.` };
  }
  const passcred = ends.some((x) => x.info?.socketPasscred === true);
  const data = ends.map((x) => x.info?.socketData).find((d): d is string => typeof d === 'string');
  const options = ends.map((x) => x.info?.socketOptions as PairOptions | undefined).find((o) => o !== undefined);
  const base = { data: data ? Buffer.from(data, 'base64') : null, ...(passcred ? { passcred } : {}), ...(options ? { options } : {}) };
  const saved = ends.map(socketQueue).find((q) => q !== undefined);
  if (!saved) return base;
  const queue: OutMessage[] = [];
  for (const [i, m] of saved.entries()) {
    for (const x of m.fds ?? []) {
      const a = plan(x);
      const carried = `message ${i + 1} of the ${saved.length} waiting in ${what} carries a descriptor (${x.kind} ${x.target})`;
      if (typeof x.info?.sharedWith === 'string') {
        const [pid, fd] = x.info.sharedWith.split(':');
        const holds = x.info?.treeChecked === true ? `that process ${pid} also holds (fd ${fd})` : `that process ${pid} of the tree may hold as the same open file (fd ${fd})`;
        return { reason: `${carried} ${holds}: sent again it would be another open file, with its own offset`, fix: FIX };
      }
      if (a.action === 'refuse') return { reason: `${carried} that cannot come back: ${a.reason}`, fix: a.fix };
      if (!SENDABLE.has(a.action)) {
        return {
          reason: `${carried}, which Stasis does not send again${a.action === 'redirect' ? ` (it would come back as another file: ${a.note})` : ''}: it sends regular files, directories, devices, pipes and UNIX socketpairs whose other end the process holds (or has in flight), eventfd, signalfd and timerfd`,
          fix: FIX,
        };
      }
    }
    queue.push({ data: Buffer.from(m.data, 'base64'), fds: (m.fds ?? []).map((x) => x.fd), ...(m.creds ? { creds: { uid: m.creds.uid, gid: m.creds.gid } } : {}) });
  }
  return { ...base, queue };
}

/**
 * A socketpair between the processes of a tree: the root sends its messages before forking
 * (restore/fds.ts parkTreeSockets), so it can open files, directories and devices to send with
 * them, but cannot hand over another process's descriptors or name a member's pid yet: a
 * descriptor in flight that a member also holds (one open file: it would be split in two), of
 * another kind, or credentials are refused.
 */
export function treeQueueRefusal(f: FdState, all: readonly FdState[], plan: (x: FdState) => FdAction): { reason: string; fix: string } | null {
  const q = planQueue(f, all, plan, Number(f.info?.unixType ?? 0));
  if ('reason' in q) return q;
  const saved = all.filter((x) => x.target === f.target).map(socketQueue).find((m) => m !== undefined) ?? [];
  const what = `fd ${f.fd} (${f.target}) of a UNIX socketpair between processes of the tree`;
  for (const [i, m] of saved.entries()) {
    const at = `message ${i + 1} of the ${saved.length} waiting in ${what}`;
    if (m.creds) return { reason: `${at} carries credentials (SCM_CREDENTIALS), which Stasis sends again only on socketpairs held by one process`, fix: FIX };
    for (const x of m.fds ?? []) {
      const carried = `${at} carries a descriptor (${x.kind} ${x.target})`;
      if (x.info?.treeChecked !== true || x.sharesWith !== undefined || typeof x.info?.sharedWith === 'string') {
        return { reason: `${carried} that ${typeof x.info?.sharedWith === 'string' ? `process ${x.info.sharedWith.split(':')[0]} also holds (fd ${x.info.sharedWith.split(':')[1]})` : 'a process of the tree may also hold'}: sent again it would be another open file, with its own offset`, fix: FIX };
      }
      if (plan(x).action !== 'open') return { reason: `${carried}: between processes of a tree Stasis sends again files, directories and devices`, fix: FIX };
    }
  }
  return null;
}
