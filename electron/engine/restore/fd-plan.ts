/**
 * How each saved file descriptor comes back: reopened from its path, redirected (ttys and pipes that
 * no longer exist go to the user's log file, stdin to /dev/null), or rebuilt (eventfd). One decision
 * shared by pre-flight (which reports it) and the fds restore step (which executes it). Pure apart
 * from stat(2) on paths; must never open or change anything.
 */
import { statSync } from 'node:fs';
import type { FdState } from '../state/process-state';

export interface RedirectOptions {
  stdin?: string;
  stdout?: string;
  stderr?: string;
  /** Where any other vanished tty/pipe output goes. */
  log: string;
}

export type FdAction =
  | { fd: number; action: 'open'; path: string; flags: number; pos: bigint; cloexec: boolean; note?: string }
  | { fd: number; action: 'redirect'; path: string; flags: number; cloexec: boolean; note: string }
  | { fd: number; action: 'eventfd'; count: bigint; flags: number; cloexec: boolean }
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

export function planFd(f: FdState, r: RedirectOptions): FdAction {
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
  switch (f.kind) {
    case 'file':
    case 'dir':
    case 'chr':
    case 'blk': {
      if (f.kind === 'chr' && /^\/dev\/(pts\/\d+|tty\d*|console)$/.test(f.target)) return redirect(`${f.target} is a terminal`);
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
    case 'pipe':
    case 'fifo':
      return redirect(`${f.target} (${f.kind}) cannot be reattached`);
    case 'eventfd': {
      const count = f.info && f.info['eventfd-count'] !== undefined ? BigInt(String(f.info['eventfd-count'])) : 0n;
      return { fd: f.fd, action: 'eventfd', count, flags: f.flags & O_NONBLOCK, cloexec };
    }
    default:
      return {
        fd: f.fd, action: 'refuse',
        reason: `fd ${f.fd} is a ${f.kind} (${f.target}): restoring this kind of descriptor is not supported yet`,
        fix: 'Close it in the program before checkpointing, or wait for a Stasis version that restores it.',
      };
  }
}
