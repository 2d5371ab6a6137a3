/**
 * Which inotify watches come back (fd-plan.ts), with the same watch numbers (restore/fds.ts fills
 * gaps). A watch on a file deleted while the process held it open (a ghost file the checkpoint saved,
 * capture/ghost-files.ts) is added again on the recreated file, through /proc/self/fd/N of the
 * descriptor that gets it. A watch whose file was deleted and that nothing in the checkpoint holds
 * cannot watch anything again (no path leads to it): it is left out and pre-flight names it. A watch
 * whose file cannot be found for another reason (a mount not visible) is refused, as before, and so
 * is a descriptor holding unread events (capture/inotify-queue.ts): they cannot be queued again.
 */
import type { FdState } from '../state/process-state';
import type { FdAction } from './fd-plan';
import { parseWatch } from './inotify-watch';

export function planInotify(f: FdState, all: readonly FdState[], plan: (x: FdState) => FdAction): FdAction {
  const queued = Number(f.info?.queuedBytes ?? 0);
  if (queued > 0) {
    return { fd: f.fd, action: 'refuse', reason: `fd ${f.fd} (inotify): ${queued} bytes of events were waiting unread at the checkpoint, and a restore cannot queue them again (the program would never see them)`,
      fix: 'Checkpoint again once the program has read its inotify events (they are usually read within milliseconds).' };
  }
  const raw = Array.isArray(f.info?.watches) ? (f.info.watches as unknown[]).map(String) : [];
  const parsed = raw.map(parseWatch).sort((a, b) => a.wd - b.wd);
  const watches: { wd: number; mask: number; path: string }[] = [];
  const dropped: string[] = [];
  for (const w of parsed) {
    if (w.path !== null && !w.gone) { watches.push({ wd: w.wd, mask: w.mask, path: w.path }); continue; }
    // The same inode as a deleted file the process held open and the checkpoint saved.
    const ghost = w.ino === undefined ? undefined : all.find((x) => x.kind === 'deleted-file' && x.inode === w.ino && (w.dev === undefined || x.dev === w.dev) && plan(x).action === 'ghost');
    if (ghost) { watches.push({ wd: w.wd, mask: w.mask, path: `/proc/self/fd/${ghost.fd}` }); continue; }
    if (w.gone) { dropped.push(`watch ${w.wd} is left out: ${w.why ?? 'its file was deleted'} (inode ${w.ino ?? '?'}), and no descriptor in the checkpoint holds it`); continue; }
    return { fd: f.fd, action: 'refuse', reason: `fd ${f.fd} (inotify): watch ${w.wd}: ${w.why}`, fix: 'Put the watched files back (or take a new checkpoint).' };
  }
  if (watches.some((w) => w.path === '/') && watches.some((w, i) => w.wd !== i + 1)) {
    return { fd: f.fd, action: 'refuse', reason: `fd ${f.fd} (inotify): watch numbers with gaps and a watch on / cannot be recreated with the same numbers`, fix: 'Take a new checkpoint after re-adding the watches.' };
  }
  return { fd: f.fd, action: 'inotify', watches, flags: f.flags & 0o4000, cloexec: f.cloexec, ...(dropped.length ? { dropped } : {}) };
}
