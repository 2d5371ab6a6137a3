/**
 * What this kernel lets us do, found by trying it for real (never by version numbers): ptrace on a
 * throw-away child, soft-dirty by a write-then-read round trip on a page of our own (writing
 * clear_refs succeeds silently on kernels without soft-dirty), the PAGEMAP_SCAN ioctl, userfaultfd
 * write-protect, and whether the kernel seals system mappings ([vdso] etc., VmFlags "sl").
 * Used by engine.status, capture and restore pre-flight. Cached per process; `probeKernelFeatures(true)`
 * probes again. Must never leave the probe child behind.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { c, errno, toBig } from './libc';
import { errnoName } from './errors';
import { posixSpawn } from './spawn';
import { seize, interrupt, detach, waitTid, getRegset, NT } from './ptrace';
import { ioctlErrno, mmapLocal, unmapLocal, copyToAddr, syscall, SYS, tryKill } from './sys';
import { openPath, closeFd, O } from './memory';

export interface KernelFeatures {
  kernel: string;
  ptrace: { usable: boolean; yamaScope: number | null; reason?: string };
  /** Soft-dirty bit (pagemap bit 55) really set by a write after clear_refs=4. */
  softDirty: boolean;
  /** PAGEMAP_SCAN ioctl on /proc/PID/pagemap (6.7+). */
  pagemapScan: boolean;
  /** userfaultfd with UFFD_FEATURE_PAGEFAULT_FLAG_WP. */
  uffdWp: boolean;
  /** userfaultfd with UFFD_FEATURE_WP_ASYNC (6.7+): the kernel itself unprotects a written page and PAGEMAP_SCAN reports it as written. */
  uffdWpAsync: boolean;
  /** [vdso]/[vvar] carry VmFlags "sl" (mseal'd system mappings): they cannot be moved or unmapped. null if unknown. */
  sealedSystemMappings: boolean | null;
  /** Size of NT_X86_XSTATE on this CPU, as the kernel reports it (null if ptrace is unusable). */
  xstateBytes: number | null;
}

export const PAGEMAP_SCAN = 0xc0606610;
export const PAGE_IS = {
  WPALLOWED: 1n << 0n, WRITTEN: 1n << 1n, FILE: 1n << 2n, PRESENT: 1n << 3n, SWAPPED: 1n << 4n,
  PFNZERO: 1n << 5n, HUGE: 1n << 6n, SOFT_DIRTY: 1n << 7n, GUARD: 1n << 8n,
} as const;

let cached: KernelFeatures | null = null;

function yamaScope(): number | null {
  try {
    return Number(readFileSync('/proc/sys/kernel/yama/ptrace_scope', 'utf8').trim());
  } catch {
    return null;
  }
}

function probePtrace(): { usable: boolean; reason?: string; xstateBytes: number | null } {
  let pid: number;
  try {
    pid = posixSpawn({ file: '/bin/sleep', argv: ['sleep', '10'] });
  } catch (e) {
    return { usable: false, reason: `could not start a probe child: ${(e as Error).message}`, xstateBytes: null };
  }
  try {
    seize(pid);
    interrupt(pid);
    waitTid(pid);
    let xstateBytes: number | null = null;
    try {
      xstateBytes = getRegset(pid, NT.X86_XSTATE).length;
    } catch {
      xstateBytes = null;
    }
    detach(pid);
    return { usable: true, xstateBytes };
  } catch (e) {
    return { usable: false, reason: (e as Error).message, xstateBytes: null };
  } finally {
    tryKill(pid, 9);
    try {
      waitTid(pid);
    } catch {
      // already reaped
    }
  }
}

function pagemapEntry(fd: number, addr: bigint): bigint {
  const buf = Buffer.alloc(8);
  const r = Number(c.pread(fd, buf, 8, BigInt.asIntN(64, (addr >> 12n) * 8n)));
  if (r !== 8) return 0n;
  return buf.readBigUInt64LE(0);
}

function probeSoftDirty(): boolean {
  const page = mmapLocal(4096);
  let fd = -1;
  try {
    copyToAddr(page, Buffer.from([1]));
    writeFileSync('/proc/self/clear_refs', '4');
    fd = openPath('/proc/self/pagemap', O.RDONLY | O.CLOEXEC);
    const before = (pagemapEntry(fd, page) >> 55n) & 1n;
    copyToAddr(page, Buffer.from([2]));
    const after = (pagemapEntry(fd, page) >> 55n) & 1n;
    return before === 0n && after === 1n;
  } catch {
    return false;
  } finally {
    if (fd >= 0) closeFd(fd);
    unmapLocal(page, 4096);
  }
}

function probePagemapScan(): boolean {
  const page = mmapLocal(4096);
  const vec = toBig(c.malloc(24 * 4));
  let fd = -1;
  try {
    copyToAddr(page, Buffer.from([1]));
    fd = openPath('/proc/self/pagemap', O.RDONLY | O.CLOEXEC);
    const arg = Buffer.alloc(96);
    arg.writeBigUInt64LE(96n, 0); // size
    arg.writeBigUInt64LE(page, 16); // start
    arg.writeBigUInt64LE(page + 4096n, 24); // end
    arg.writeBigUInt64LE(vec, 40);
    arg.writeBigUInt64LE(4n, 48); // vec_len
    arg.writeBigUInt64LE(PAGE_IS.PRESENT, 80); // category_anyof_mask
    arg.writeBigUInt64LE(PAGE_IS.PRESENT, 88); // return_mask
    const r = ioctlErrno(fd, PAGEMAP_SCAN, arg);
    return r.ret === 1;
  } catch {
    return false;
  } finally {
    if (fd >= 0) closeFd(fd);
    c.free(vec);
    unmapLocal(page, 4096);
  }
}

function probeUffdWp(): { wp: boolean; async: boolean } {
  let fd = -1;
  try {
    // O_CLOEXEC | UFFD_USER_MODE_ONLY: allowed even where vm.unprivileged_userfaultfd=0.
    fd = Number(syscall(SYS.userfaultfd, [0o2000000n | 1n], 'userfaultfd'));
    const api = Buffer.alloc(24);
    api.writeBigUInt64LE(0xaan, 0);
    const r = ioctlErrno(fd, 0xc018aa3f, api);
    if (r.ret !== 0) return { wp: false, async: false };
    // With no features asked for, the kernel answers with every feature it supports.
    const f = api.readBigUInt64LE(8);
    const wp = (f & 1n) === 1n; // UFFD_FEATURE_PAGEFAULT_FLAG_WP
    return { wp, async: wp && (f & (1n << 15n)) !== 0n }; // UFFD_FEATURE_WP_ASYNC
  } catch {
    return { wp: false, async: false };
  } finally {
    if (fd >= 0) closeFd(fd);
  }
}

function probeSealed(): boolean | null {
  try {
    const smaps = readFileSync('/proc/self/smaps', 'utf8');
    const i = smaps.indexOf('[vdso]');
    if (i < 0) return null;
    const m = /VmFlags:([^\n]*)/.exec(smaps.slice(i));
    if (!m) return null;
    return m[1]!.trim().split(/\s+/).includes('sl');
  } catch {
    return null;
  }
}

export function probeKernelFeatures(refresh = false): KernelFeatures {
  if (cached && !refresh) return cached;
  const yama = yamaScope();
  const pt = probePtrace();
  let reason = pt.reason;
  if (!pt.usable && yama !== null && yama >= 2) {
    reason = `${reason ?? 'ptrace failed'}; Yama kernel.yama.ptrace_scope=${yama} restricts ptrace (set it to 1 or 0 with sysctl, or run as root)`;
  }
  const uffd = probeUffdWp();
  cached = {
    kernel: release(),
    ptrace: reason ? { usable: pt.usable, yamaScope: yama, reason } : { usable: pt.usable, yamaScope: yama },
    softDirty: probeSoftDirty(),
    pagemapScan: probePagemapScan(),
    uffdWp: uffd.wp,
    uffdWpAsync: uffd.async,
    sealedSystemMappings: probeSealed(),
    xstateBytes: pt.xstateBytes,
  };
  return cached;
}

/** For messages: the errno name of the last failed libc call. */
export function lastErrnoName(): string {
  return errnoName(errno());
}
