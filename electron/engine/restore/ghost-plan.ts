/**
 * How a deleted open file comes back (fd-plan.ts): from the bytes capture saved
 * (capture/ghost-files.ts), recreated in the directory it was in and unlinked again, or refused with
 * what to do when the bytes are not in the checkpoint. A memfd comes back the same way, made again
 * with its name and seals instead of in a directory. Pure apart from stat calls.
 */
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { FdState, GhostInfo } from '../state/process-state';
import type { FdAction } from './fd-plan';

const S_IFMT = 0o170000, S_IFREG = 0o100000;

export function planGhost(f: FdState, all: readonly FdState[], flags: number): FdAction {
  const path = f.target.replace(/ \(deleted\)$/, '');
  const memfd = f.kind === 'memfd';
  const what = memfd ? `a memfd (${path})` : `an open file that was already deleted (${path})`;
  const refuse = (why: string, fix: string): FdAction => ({ fd: f.fd, action: 'refuse', reason: `fd ${f.fd} is ${what}: ${why}`, fix });
  const ghost = f.info?.ghost as GhostInfo | undefined;
  if (f.mode === undefined || (f.mode & S_IFMT) !== S_IFREG) return refuse('it is not a regular file, so it has no contents to recreate', 'Close it in the program before checkpointing.');
  if (!ghost) return refuse('its contents are not in the checkpoint (taken by a Stasis that did not save deleted files)', 'Take a new checkpoint with this version of Stasis.');
  if (ghost.skippedAbove !== undefined) {
    return refuse(`it is ${ghost.size} bytes, above the ghost-file limit of ${ghost.skippedAbove} bytes in force at the checkpoint, so its contents were not saved`,
      `Checkpoint again with a higher limit (stasis checkpoint PID --ghost-limit ${ghost.size}, or more), or keep the file on disk while the program runs.`);
  }
  if (ghost.error) return refuse(`its contents could not be read at the checkpoint (${ghost.error})`, 'Take a new checkpoint.');
  const key = `${f.dev}:${f.inode}`;
  const holder = all.find((x) => `${x.dev}:${x.inode}` === key && typeof (x.info?.ghost as GhostInfo | undefined)?.data === 'string');
  const data = Buffer.from(String((holder?.info?.ghost as GhostInfo | undefined)?.data ?? ''), 'base64');
  if (!holder || data.length !== ghost.size || createHash('sha256').update(data).digest('hex') !== ghost.sha256) {
    return refuse('the saved contents are missing or do not match their hash', 'Run `stasis verify`; restore an earlier checkpoint.');
  }
  if (memfd) {
    if (typeof f.info?.seals !== 'number') return refuse('its seals are not in the checkpoint (taken by a Stasis that did not restore memfds)', 'Take a new checkpoint with this version of Stasis.');
    return { fd: f.fd, action: 'ghost', dir: '', name: '', inode: key, mode: ghost.mode, data, flags, pos: f.pos, cloexec: f.cloexec, memfd: { name: path.replace(/^\/memfd:/, ''), seals: f.info.seals } };
  }
  const dir = dirname(path);
  let isDir = false;
  try { isDir = statSync(dir).isDirectory(); } catch (_e) { /* gone */ }
  if (!isDir) return refuse(`its directory ${dir} no longer exists, and the file is recreated there`, `Recreate the directory ${dir}.`);
  // The original name while it is briefly linked, so /proc/PID/fd shows "PATH (deleted)" as before;
  // another name when something else now lives at the path.
  const taken = existsSync(path);
  const name = taken ? `.${basename(path)}.stasis-ghost-${f.inode}` : basename(path);
  const note = taken ? `${path} exists again, so the deleted file is recreated as ${dir}/${name} (deleted): /proc shows that name` : undefined;
  return { fd: f.fd, action: 'ghost', dir, name, inode: key, mode: ghost.mode, data, flags, pos: f.pos, cloexec: f.cloexec, note };
}
