/**
 * Fills fresh anonymous memory of the process being restored with UFFDIO_COPY instead of
 * process_vm_writev: the kernel allocates each page and copies into it in one step, where a write
 * into a fresh page first takes a fault that zeroes it. A userfaultfd made inside the process
 * (injected), taken over with pidfd_getfd and closed there, registers the private anonymous
 * mappings in MISSING mode only while they are filled; close() unregisters everything, and must come
 * before anything else touches those pages (a read of a missing page would wait for us).
 */
import { readFileSync } from 'node:fs';
import { closeFd, ioctlErrno, sysError, takeFd, uffdHandshake, uffdRegister, UFFDIO_REGISTER_MODE } from '../native';
import { c, toBig } from '../native/libc';
import type { Remote } from './remote';
import { PROT_WRITE, type MapStep } from './plan';
import { NR } from './sysno';

const UFFDIO_COPY = 0xc028aa03;
const EEXIST = 17, EAGAIN = 11, PAGE = 4096;
const O_CLOEXEC = 0o2000000n;
const O_NONBLOCK = 0o4000n;

export class UffdFill {
  private constructor(private fd: number, private readonly ranges: readonly { start: bigint; end: bigint }[]) {}

  /** null when the process may not make a userfaultfd (or the kernel has none): the caller writes as before. */
  static open(r: Remote, steps: readonly MapStep[]): UffdFill | null {
    const thp = thpMode();
    // Where transparent huge pages may back the mapping, faults taken by ordinary writes give it
    // huge pages as the original likely had; UFFDIO_COPY would place small ones only.
    const noThp = (s: MapStep): boolean => thp === 'never' || s.hugepages === 'no' || (thp === 'madvise' && s.hugepages !== 'yes');
    const targets = steps.filter((s) => s.kind === 'anon' && s.writeContents && s.aliasOf === undefined && (s.prot & PROT_WRITE) !== 0 && noThp(s));
    if (targets.length === 0) return null;
    const tfd = r.raw(NR.userfaultfd, [O_CLOEXEC | O_NONBLOCK]);
    if (tfd < 0n) return null;
    let fd: number;
    try {
      fd = takeFd(r.pid, Number(tfd));
    } finally {
      // Only we hold it from here on: the restored process never sees the descriptor.
      r.raw(NR.close, [tfd]);
    }
    if (!uffdHandshake(fd, 0n)) return null;
    const ranges = targets.filter((s) => uffdRegister(fd, s.start, s.end, UFFDIO_REGISTER_MODE.MISSING) === 0).map((s) => ({ start: s.start, end: s.end }));
    if (ranges.length === 0) { closeFd(fd); return null; }
    return new UffdFill(fd, ranges);
  }

  /** The userfaultfd (page-fill.ts hands it to the addon's threads). */
  get descriptor(): number {
    return this.fd;
  }

  covers(va: bigint, end: bigint): boolean {
    return this.fd >= 0 && this.ranges.some((x) => va >= x.start && end <= x.end);
  }

  /**
   * Places data at va. A page that already exists (EEXIST) is handed to writeExisting, which may
   * write it by ordinary means: only a missing page of a registered range would wait for us.
   */
  copy(va: bigint, data: Buffer, writeExisting: (va: bigint, page: Buffer) => void): void {
    const arg = Buffer.alloc(40);
    let off = 0;
    while (off < data.length) {
      const part = data.subarray(off);
      arg.writeBigUInt64LE(va + BigInt(off), 0);
      // As in native/memory.ts: nothing allocates between taking the address and the ioctl.
      arg.writeBigUInt64LE(toBig(c.addrOf(part, part, 0)), 8);
      arg.writeBigUInt64LE(BigInt(part.length), 16);
      arg.writeBigUInt64LE(0n, 24);
      arg.writeBigInt64LE(0n, 32);
      const r = ioctlErrno(this.fd, UFFDIO_COPY, arg);
      if (r.ret === 0) return;
      const done = Number(arg.readBigInt64LE(32));
      if (done > 0) off += done;
      if (r.errno === EEXIST) {
        writeExisting(va + BigInt(off), data.subarray(off, off + PAGE));
        off += PAGE;
      } else if (r.errno !== EAGAIN) {
        throw sysError(`UFFDIO_COPY of ${part.length} bytes at 0x${(va + BigInt(off)).toString(16)}`, r.errno);
      }
    }
  }

  close(): void {
    if (this.fd >= 0) closeFd(this.fd);
    this.fd = -1;
  }
}

let thpCached: string | undefined;
/** The system's transparent huge page mode ("always", "madvise" or "never"; "always" when unknown). */
function thpMode(): string {
  if (thpCached === undefined) {
    try {
      thpCached = /\[(\w+)\]/.exec(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1] ?? 'always';
    } catch {
      thpCached = 'never'; // a kernel without THP
    }
  }
  return thpCached;
}
