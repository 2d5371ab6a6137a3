/**
 * The CLI's own terminal, for `stasis restore ID --attach` (like `criu restore --shell-job`): which
 * terminal stdin is, and handing its foreground process group over and back. The restored process
 * makes itself the foreground group while it is still being rebuilt (restore/fds.ts); the CLI takes
 * the terminal back once it exits or stops, from the background, so SIGTTOU is blocked first (a
 * background tcsetpgrp would otherwise stop the CLI).
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { StasisError } from '../../../shared/errors';
import { copyToAddr, ioctlErrno, mmapLocal, syscall, SYS, unmapLocal } from '../native';

/** Terminal device paths the engine accepts to attach to (the same pattern capture calls a tty). */
export const TERMINAL_PATH = /^\/dev\/(pts\/\d+|tty\w*|console)$/;

const TIOCSPGRP = 0x5410;
const SIGTTOU = 22;
const SIG_BLOCK = 0n;

/** The terminal on stdin, or a clear error saying what stdin is instead. */
export function stdinTerminal(): string {
  let target: string;
  try {
    target = readlinkSync('/proc/self/fd/0');
  } catch (e) {
    throw new StasisError('INVALID_INPUT', `--attach needs a terminal on stdin, and stdin could not be read (${(e as Error).message}). Run the command from a terminal.`);
  }
  if (!TERMINAL_PATH.test(target)) throw new StasisError('INVALID_INPUT', `--attach needs a terminal on stdin, but stdin is ${target}. Run the command from a terminal (not through a pipe or a redirect), or restore without --attach (its output then goes to the log).`);
  return target;
}

/** This process's process group (/proc/self/stat field 5). */
export function ownProcessGroup(): number {
  const s = readFileSync('/proc/self/stat', 'utf8');
  return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[2]);
}

/** Makes pgid the terminal's foreground group from fd (stdin); false when the terminal refuses (not our controlling terminal). */
export function setForeground(fd: number, pgid: number): boolean {
  blockSigttou();
  const arg = Buffer.alloc(4);
  arg.writeInt32LE(pgid, 0);
  return ioctlErrno(fd, TIOCSPGRP, arg).ret === 0;
}

let blocked = false;
function blockSigttou(): void {
  if (blocked) return;
  const page = mmapLocal(4096);
  try {
    const set = Buffer.alloc(8);
    set.writeBigUInt64LE(1n << BigInt(SIGTTOU - 1), 0);
    copyToAddr(page, set);
    syscall(SYS.rt_sigprocmask, [SIG_BLOCK, page, 0n, 8n], 'rt_sigprocmask (blocking SIGTTOU)');
    blocked = true;
  } finally {
    unmapLocal(page, 4096);
  }
}
