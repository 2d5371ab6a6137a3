/**
 * Recreates deleted open files for the fds step (fd-plan action 'ghost'): the engine writes the
 * saved bytes into a new file in the original directory, under the original name when it is free
 * (so the restored process's /proc/PID/fd shows "PATH (deleted)" as before), and unlinks it at once;
 * the restored process then opens it through /proc/ENGINE/fd/N with its own flags. One file per
 * saved inode, so descriptors that were two opens of one file share the bytes again. The engine's
 * descriptors are closed by `close()` once the fds step is done. The file belongs to the engine's
 * user (the restored process runs as that user; pre-flight makes sure of it). A memfd is made
 * again the same way with memfd_create and its name (so /proc shows "/memfd:NAME (deleted)"), and
 * sealed last, once every descriptor and mapping of it is in place.
 */
import { closeSync, constants, fchmodSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { StasisError } from '../../../shared/errors';
import type { FdAction } from './fd-plan';
import { syscall, malloc, free, copyToAddr, SYS } from '../native/sys';

const SYS_MEMFD_CREATE = 319, MFD_CLOEXEC = 1n, MFD_ALLOW_SEALING = 2n;
const F_ADD_SEALS = 1033n;

type Ghost = Extract<FdAction, { action: 'ghost' }>;

export class GhostFiles {
  private readonly fds = new Map<string, number>();
  private readonly modes = new Map<number, number>();
  private readonly seals = new Map<number, number>();

  /** The path the restored process opens to get the file of `a` (created on first use). */
  pathFor(a: Ghost): string {
    let fd = this.fds.get(a.inode);
    if (fd === undefined) {
      fd = a.memfd ? createMemfd(a) : create(a);
      this.fds.set(a.inode, fd);
      this.modes.set(fd, a.mode);
      if (a.memfd?.seals) this.seals.set(fd, a.memfd.seals);
    }
    return `/proc/${process.pid}/fd/${fd}`;
  }

  /** The saved permission bits go on last: with them on first, a read-only file could not be opened for writing again. */
  close(): void {
    for (const fd of this.fds.values()) {
      try {
        fchmodSync(fd, this.modes.get(fd)!);
        const seals = this.seals.get(fd);
        if (seals) syscall(SYS.fcntl, [BigInt(fd), F_ADD_SEALS, BigInt(seals)], `sealing a recreated memfd (seals ${seals})`);
      } finally { closeSync(fd); }
    }
    this.seals.clear();
    this.fds.clear();
  }
}

function create(a: Ghost): number {
  const { O_RDWR, O_CREAT, O_EXCL } = constants;
  let path = join(a.dir, a.name);
  let fd: number;
  try {
    fd = openSync(path, O_RDWR | O_CREAT | O_EXCL | 0o2000000, 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new StasisError('INTERNAL', `Could not recreate the deleted file of fd ${a.fd} in ${a.dir}: ${(e as Error).message}.`);
    // Taken since the pre-flight: another name in the same directory.
    path = join(a.dir, `.${a.name}.stasis-ghost-${randomBytes(6).toString('hex')}`);
    fd = openSync(path, O_RDWR | O_CREAT | O_EXCL | 0o2000000, 0o600);
  }
  try {
    unlinkSync(path);
    for (let off = 0; off < a.data.length;) off += writeSync(fd, a.data, off, a.data.length - off, off);
  } catch (e) {
    closeSync(fd);
    throw new StasisError('INTERNAL', `Could not recreate the deleted file of fd ${a.fd} (${path}): ${(e as Error).message}.`);
  }
  return fd;
}

function createMemfd(a: Ghost): number {
  const name = Buffer.from(`${a.memfd!.name}\0`);
  const at = malloc(name.length);
  let fd: number;
  try {
    copyToAddr(at, name);
    fd = Number(syscall(SYS_MEMFD_CREATE, [at, MFD_CLOEXEC | MFD_ALLOW_SEALING], `memfd_create(${a.memfd!.name}) for fd ${a.fd}`));
  } finally {
    free(at);
  }
  try {
    for (let off = 0; off < a.data.length;) off += writeSync(fd, a.data, off, a.data.length - off, off);
  } catch (e) {
    closeSync(fd);
    throw new StasisError('INTERNAL', `Could not fill the recreated memfd of fd ${a.fd}: ${(e as Error).message}.`);
  }
  return fd;
}
