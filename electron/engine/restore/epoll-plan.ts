/**
 * Which watches of an epoll set come back (fd-plan.ts). A watch is on an open file, listed under the
 * number it was added with; capture (capture/epoll-sources.ts) says for each watch whose number no
 * longer holds its file which descriptor does (`via`: restore lends that file the number for the
 * epoll_ctl). Refused only when no descriptor of the process holds the file; watches on descriptors
 * restore redirects (a terminal or an outside pipe become a log file or /dev/null, which epoll cannot
 * watch) are left out, and said so. Checkpoints without `sourcesChecked` keep the old rule: a watch
 * under a closed number is refused.
 */
import type { FdState } from '../state/process-state';
import { parseEpollItem } from '../state/epoll-item';
import type { FdAction } from './fd-plan';

/** Kinds fd-plan may redirect (the others are recreated or refused). */
const REDIRECTABLE = new Set<FdState['kind']>(['tty', 'chr', 'pipe', 'fifo']);

type Item = { tfd: number; events: number; data: bigint; via?: number };

export function planEpoll(f: FdState, all: readonly FdState[], plan: (x: FdState) => FdAction): FdAction {
  const raw = Array.isArray(f.info?.items) ? (f.info.items as unknown[]).map(String) : [];
  const parsed = raw.map(parseEpollItem);
  if (parsed.some((i) => i === null)) {
    return { fd: f.fd, action: 'refuse', reason: `fd ${f.fd}: the epoll watch list could not be read`, fix: 'Take a new checkpoint with this version of Stasis.' };
  }
  const checked = f.info?.sourcesChecked === true;
  const sources = (f.info?.sources ?? {}) as Record<string, number | null>;
  const byFd = new Map(all.map((x) => [x.fd, x]));
  const items: Item[] = [];
  const lost: string[] = [];
  const dropped: string[] = [];
  parsed.forEach((p, i) => {
    const { tfd, events, data } = p!;
    const src = checked ? sources[String(i)] : undefined;
    if (src === null) { lost.push(`watch ${i + 1} (listed as fd ${tfd}) is on a file no descriptor of the process holds any more`); return; }
    const holder = byFd.get(src ?? tfd);
    if (!holder) { lost.push(`fd ${tfd} was closed`); return; }
    if (REDIRECTABLE.has(holder.kind) && plan(holder).action === 'redirect') {
      dropped.push(`the watch on fd ${holder.fd} (${holder.target}) is left out: that descriptor is redirected, and epoll cannot watch what replaces it`);
      return;
    }
    items.push(src === undefined ? { tfd, events, data } : { tfd, events, data, via: src });
  });
  if (lost.length) {
    return {
      fd: f.fd, action: 'refuse',
      reason: `fd ${f.fd} (epoll) watches files that cannot be found again: ${lost.slice(0, 5).join('; ')}${lost.length > 5 ? `; and ${lost.length - 5} more` : ''}`,
      fix: checked ? 'The watched files are held only by another process (passed over a socket or inherited); checkpoint that process tree together, or remove those watches first.'
        : 'Take a new checkpoint with this version of Stasis (it finds the files behind closed numbers), or keep the watched descriptors open.',
    };
  }
  return { fd: f.fd, action: 'epoll', items, cloexec: f.cloexec, ...(dropped.length ? { dropped } : {}) };
}
