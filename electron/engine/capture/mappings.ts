/**
 * The address space as ProcessState.mappings: /proc/PID/smaps entries classified into MappingKind,
 * with the backing file's stat so restore can refuse a file that changed. Also decides which pages
 * of each mapping a checkpoint must carry. Reads /proc only; never touches the process otherwise.
 */
import { statSync } from 'node:fs';
import type { MappingKind, MappingState } from '../state/process-state';
import { readSmaps, type MapEntry } from '../proc';
import { markSysvMappings } from '../state/sysv-shm';

export function mappingKind(e: MapEntry): MappingKind {
  const shared = e.perms[3] === 's';
  if (e.path.startsWith('[')) {
    switch (e.path) {
      case '[heap]': return 'heap';
      case '[stack]': return 'stack';
      case '[vdso]': return 'vdso';
      case '[vvar]': return 'vvar';
      case '[vvar_vclock]': return 'vvar_vclock';
      case '[vsyscall]': return 'vsyscall';
      default:
        if (e.path.startsWith('[anon:') || e.path.startsWith('[anon_shmem:')) return shared ? 'shared-anon' : 'anon';
        return 'other-special';
    }
  }
  if (e.path === '') return shared ? 'shared-anon' : 'anon';
  // /dev/zero and memfd/shmem mappings are shared anonymous memory as far as contents go.
  if (shared && (e.path === '/dev/zero' || e.path.startsWith('/memfd:') || e.path.startsWith('/SYSV'))) return 'shared-anon';
  // A shared mapping of a file deleted since (a POSIX shm object unlinked after mmap): nothing can
  // open it again, so its pages are saved and it comes back as shared memory of its own.
  if (shared && e.deleted) return 'shared-anon';
  return shared ? 'file-shared' : 'file-private';
}

export function toMappingState(pid: number, e: MapEntry, withFile = true): MappingState {
  const m: MappingState = {
    start: e.start, end: e.end, perms: e.perms, offset: e.offset, dev: e.dev, inode: e.inode,
    path: e.path, deleted: e.deleted, kind: mappingKind(e), vmFlags: e.vmFlags,
  };
  if (withFile) addFileStat(pid, m);
  return m;
}

/** What the backing file looked like (for restore to refuse a changed file). */
/** Mappings addFileStat found backed by a regular file (not saved: this capture's knowledge only). */
const regularFiles = new WeakSet<MappingState>();

export function addFileStat(pid: number, m: MappingState): void {
  if ((m.kind === 'file-private' || m.kind === 'file-shared') && m.inode !== 0) {
    try {
      // map_files works for deleted files too (needs the same privileges as ptrace).
      const st = statSync(`/proc/${pid}/map_files/${m.start.toString(16)}-${m.end.toString(16)}`, { bigint: true });
      m.file = { size: Number(st.size), mtimeNs: st.mtimeNs.toString(), ctimeNs: st.ctimeNs.toString() };
      if (st.isFile()) regularFiles.add(m);
    } catch {
      // unreadable: restore will check by path
    }
  }
}

/**
 * Mappings a fork child does not hold as the process does: MADV_DONTFORK ones are absent from it
 * and MADV_WIPEONFORK ones read as zeros, so a fork snapshot would save them wrong.
 */
export function forkAltered(maps: readonly MapEntry[]): MapEntry[] {
  return maps.filter((e) => e.vmFlags.includes('dc') || e.vmFlags.includes('wf'));
}

/** VmFlags a fork child never inherits (mlock): taken from the process itself for mappings read from its snapshot child. */
const NOT_INHERITED = ['lo', 'lf'];

export function keepOwnFlags(mappings: MappingState[], own: readonly MapEntry[]): void {
  const byRange = new Map(own.map((e) => [`${e.start}-${e.end}`, e.vmFlags]));
  for (const m of mappings) {
    const flags = byRange.get(`${m.start}-${m.end}`);
    if (!flags) continue;
    m.vmFlags = [...m.vmFlags.filter((f) => !NOT_INHERITED.includes(f)), ...flags.filter((f) => NOT_INHERITED.includes(f))];
  }
}

export function readMappings(pid: number): MappingState[] {
  const out = readSmaps(pid).map((e) => toMappingState(pid, e));
  markSysvMappings(out);
  return out;
}

/**
 * How a mapping's pages are saved:
 *  'all'        every present/swapped page (private anon, heap, stack, shared anon)
 *  'cow'        only pages that are no longer page-cache pages (private file mappings: COW'd)
 *  'none'       nothing (shared file mappings live in their file; vvar/vsyscall belong to the kernel)
 */
export function pagePolicy(m: MappingState): 'all' | 'cow' | 'none' {
  switch (m.kind) {
    case 'anon':
    case 'heap':
    case 'stack':
    case 'shared-anon':
      return 'all';
    case 'file-private':
      return 'cow';
    case 'vdso':
      return 'all'; // small; lets restore check or reuse the exact vdso contents
    default:
      return 'none';
  }
}

/**
 * Whether process_vm_readv can read a mapping's pages: not without PROT_READ (PROT_NONE, write-only,
 * exec-only), nor io/pfn mappings. Unreadable ones may still hold data (hasContents).
 */
export function readable(m: MappingState): boolean {
  return m.perms[0] === 'r' && hasContents(m);
}

/**
 * Whether a mapping's pages are memory we can save at all: everything but io/pfn mappings. A
 * PROT_NONE, write-only or exec-only page can hold data (a program mprotects after writing); it is
 * read through /proc/PID/mem, whose FOLL_FORCE reads pages the protections do not let the process
 * read, and restore writes it back the same way. Skipping them restored zeros (issue 13).
 */
export function hasContents(m: MappingState): boolean {
  return !m.vmFlags.includes('io') && !m.vmFlags.includes('pf');
}

/**
 * Whether only its VmFlags can tell if a mapping is io/pfn memory (hasContents false): a driver's
 * or a device's. The kernel's own kinds (anonymous memory, shmem, the vdso) and mappings of regular
 * files (addFileStat) never are, so a held capture copies them before its smaps walk is done.
 */
export function mayBeDeviceMemory(m: MappingState): boolean {
  switch (m.kind) {
    case 'anon': case 'heap': case 'stack': case 'shared-anon': case 'vdso':
      return false;
    default:
      return !regularFiles.has(m);
  }
}

/**
 * Private mappings without PROT_READ that can hold data: pre-copy and the uffd snapshot read only
 * readable memory (process_vm_readv, uffd-wp), so these are read here through /proc/PID/mem. In
 * those two modes the target already runs again: a program that mprotects such a page writable,
 * changes it and protects it again during the capture is saved with the newer bytes.
 */
export function unreadablePrivate(mappings: MappingState[]): MappingState[] {
  return mappings.filter((m) => m.perms[3] === 'p' && !readable(m) && hasContents(m));
}
