/**
 * Reads a range of a process's memory into a checkpoint writer. With the store addon's fused read
 * (native-addon.ts readPages) the pages go straight from the process into the segment block the
 * write-behind thread writes, digested there in the same call: no copy through a read buffer, one
 * call per block instead of a read, a digest and a copy per page (docs/benchmarks.md "Capture").
 * Without it (an older addon, STASIS_STORE_NATIVE=0, or STASIS_FUSED_READ=0 to compare) through
 * `buffer` with vmRead / memRead and writer.addPages: the same segment bytes either way.
 */
import type { CheckpointWriter, PageRead } from '../store/api';
import { PAGE_SIZE } from '../store/api';
import { storeNative } from '../store/native-addon';
import { memRead, sysError, vmRead } from '../native';

/** Where pages are read from: process_vm_readv of pid, or pread of memFd (its /proc/PID/mem) when memFd >= 0. */
export interface PageSource {
  pid: number;
  memFd: number;
}

/** The fused read of src, or null where the addon lacks it. */
export function fusedRead(src: PageSource): PageRead | null {
  const native = storeNative;
  if (process.env.STASIS_FUSED_READ === '0' || !native?.readPages) return null;
  const readPages = native.readPages.bind(native);
  return (vaddr, pages, dst, dstOffset, zero, hashes) => {
    const n = readPages(src.pid, src.memFd, vaddr, dst, dstOffset, pages, zero, hashes);
    if (n < 0) throw sysError(`${src.memFd >= 0 ? 'pread(/proc/PID/mem' : `process_vm_readv(pid ${src.pid}`}, 0x${vaddr.toString(16)}, ${pages * PAGE_SIZE})`, -n);
    return n;
  };
}

/**
 * Gives the len bytes (whole pages) at a of src to writer, reading through `read` (fusedRead) when
 * given, else through buffer (at least len bytes). Returns the bytes given: whole pages, short when
 * the range ends early (unmapped, or the process is gone); nothing after a short read is given.
 */
export function givePages(writer: CheckpointWriter, src: PageSource, read: PageRead | null, buffer: Buffer, a: bigint, len: number): number {
  if (read) return writer.addPagesRead(a, len / PAGE_SIZE, read) * PAGE_SIZE;
  const buf = buffer.subarray(0, len);
  const n = src.memFd >= 0 ? memRead(src.memFd, a, buf) : vmRead(src.pid, a, buf);
  const whole = Math.floor(Math.max(n, 0) / PAGE_SIZE) * PAGE_SIZE;
  if (whole > 0) writer.addPages(a, buf.subarray(0, whole));
  return whole;
}
