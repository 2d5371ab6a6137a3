/**
 * POSIX message queues held as descriptors. /proc shows one as "/NAME" (or "/NAME (deleted)" after
 * mq_unlink), which the root file system does not have: reopened by that path it was refused as
 * "no longer exists", and an unlinked one was taken for a deleted file and brought back as a plain
 * file holding the queue's status text. Capture marks them (statfs type of the descriptor: the
 * mqueue file system); a queue that still exists outlives the process, like a named FIFO, and is
 * opened again by name with mq_open; its messages are the queue's own, as it is now.
 */
import { fstatSync } from 'node:fs';
import { syscall, malloc, free, copyToAddr, copyFromAddr } from '../native/sys';
import { closeFd } from '../native/memory';

const SYS_STATFS = 137, SYS_MQ_OPEN = 240;
const MQUEUE_MAGIC = 0x19800202n;
const O_RDONLY_CLOEXEC = 0o2000000n;

/** Whether `path` (e.g. /proc/PID/fd/N) is on the mqueue file system. */
export function isMqueuePath(path: string): boolean {
  const p = Buffer.from(`${path}\0`);
  const mem = malloc(p.length + 128);
  try {
    copyToAddr(mem, p);
    syscall(SYS_STATFS, [mem, mem + BigInt(p.length)], 'statfs');
    const st = Buffer.alloc(8);
    copyFromAddr(st, mem + BigInt(p.length));
    return st.readBigUInt64LE(0) === MQUEUE_MAGIC;
  } catch {
    return false;
  } finally {
    free(mem);
  }
}

/** The inode of the queue named `name` ("/NAME") now, or null when there is none (mq_open, then closed). */
export function mqueueInode(name: string): number | null {
  const p = Buffer.from(`${name.replace(/^\//, '')}\0`);
  const mem = malloc(p.length);
  try {
    copyToAddr(mem, p);
    const fd = Number(syscall(SYS_MQ_OPEN, [mem, O_RDONLY_CLOEXEC, 0n, 0n], 'mq_open'));
    try { return fstatSync(fd).ino; } finally { closeFd(fd); }
  } catch {
    return null;
  } finally {
    free(mem);
  }
}

/** Marks (info.mqueue) the descriptors of `pid` that are message queues: files on an in-memory file system only (device major 0). */
export function markMqueues(pid: number, fds: { fd: number; kind: string; dev?: number; info?: Record<string, unknown> }[]): void {
  for (const f of fds) {
    if ((f.kind !== 'file' && f.kind !== 'deleted-file') || f.dev === undefined || ((f.dev >>> 8) & 0xfff) !== 0) continue;
    if (isMqueuePath(`/proc/${pid}/fd/${f.fd}`)) f.info = { ...(f.info ?? {}), mqueue: true };
  }
}
