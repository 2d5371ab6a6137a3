/**
 * Pipes whose both ends the process holds (a self-pipe: event loops wake themselves through one):
 * the restore recreates them, so the bytes waiting in them at the freeze belong to the checkpoint.
 * They are copied, not consumed: the pipe is taken over with pidfd_getfd (same open pipe) and
 * tee(2)'d into a pipe of our own, so the target never notices. Runs while the target is frozen.
 * Pipes with one end elsewhere are not touched (the restore redirects those).
 */
import type { FdState } from '../state/process-state';
import { SYS, syscall, ioctlErrno, malloc, free, copyFromAddr, closeFd } from '../native';

const FIONREAD = 0x541b;
const F_SETPIPE_SZ = 1031;
const SPLICE_F_NONBLOCK = 2n;
const O_CLOEXEC = 0o2000000n;

const readable = (f: FdState): boolean => (f.flags & 3) !== 1;
const writable = (f: FdState): boolean => (f.flags & 3) !== 0;

/** Pipe target ("pipe:[ino]") -> its descriptors, for pipes with a read end and a write end in fds. */
export function internalPipes(fds: readonly FdState[]): Map<string, FdState[]> {
  const byPipe = new Map<string, FdState[]>();
  for (const f of fds) if (f.kind === 'pipe') byPipe.set(f.target, [...(byPipe.get(f.target) ?? []), f]);
  for (const [k, ends] of byPipe) if (!ends.some(readable) || !ends.some(writable)) byPipe.delete(k);
  return byPipe;
}

/** Adds info.pipeData (base64) to the first read end of every internal pipe that holds bytes. */
export function capturePipeContents(pid: number, fds: FdState[], warnings: string[]): void {
  const pipes = internalPipes(fds);
  if (pipes.size === 0) return;
  let pidfd = -1;
  const mem = malloc(16);
  try {
    pidfd = Number(syscall(SYS.pidfd_open, [BigInt(pid), 0n], 'pidfd_open'));
    for (const [target, ends] of pipes) {
      const reader = ends.find(readable)!;
      let ours = -1;
      const local: number[] = [];
      try {
        ours = Number(syscall(SYS.pidfd_getfd, [BigInt(pidfd), BigInt(reader.fd), 0n], `pidfd_getfd of fd ${reader.fd}`));
        const count = Buffer.alloc(4);
        if (ioctlErrno(ours, FIONREAD, count).ret !== 0) continue;
        const n = count.readInt32LE(0);
        if (n <= 0) continue;
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
      }
    }
  } finally {
    if (pidfd >= 0) closeFd(pidfd);
    free(mem);
  }
}
