/**
 * inotify events waiting unread in an inotify descriptor. The kernel has no call to put events back
 * into a new inotify queue, and a program waiting for an event that came before the checkpoint
 * would wait forever after a restore without it: the count (FIONREAD on our own copy of the
 * descriptor, which reads nothing) lets the pre-flight refuse that instead of dropping them.
 */
import type { FdState } from '../state/process-state';
import { ioctlErrno } from '../native/sys';
import { closeFd } from '../native/memory';
import { takeFd } from '../native/uffd';

const FIONREAD = 0x541b;

/** Sets `info.queuedBytes` on each inotify descriptor of `pid` that holds unread events. */
export function captureInotifyQueues(pid: number, fds: FdState[], warnings: string[]): void {
  for (const f of fds) {
    if (f.kind !== 'inotify') continue;
    let ours: number;
    try {
      ours = takeFd(pid, f.fd);
    } catch (e) {
      warnings.push(`fd ${f.fd} (inotify): its queue could not be looked at (${(e as Error).message})`);
      continue;
    }
    try {
      const n = Buffer.alloc(4);
      if (ioctlErrno(ours, FIONREAD, n).ret === 0 && n.readInt32LE(0) > 0) f.info = { ...(f.info ?? {}), queuedBytes: n.readInt32LE(0) };
    } finally {
      closeFd(ours);
    }
  }
}
