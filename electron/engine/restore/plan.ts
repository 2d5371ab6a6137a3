/**
 * The restore plan: from a checkpoint's ProcessState and the stub's current layout, decide what the
 * injected-syscall conversation will do — where the trampoline goes (free in both layouts), which
 * stub mappings to drop, how the special mappings ([vvar], [vvar_vclock], [vdso]) move, and every
 * mapping to create, in address order. Pure: no syscalls, no files; must never touch a process.
 */
import type { MappingState, ProcessState } from '../state/process-state';
import { aliasFor } from './shared-aliases';
import { adviceFor, type VmaAdvice } from './vma-advice';
import { attachesLive } from '../state/sysv-shm';
import { shmObjectKey } from './tree-shm';
import { SYSCALL_LOOP } from '../native/syscall-loop';

const SHM_RDONLY = 0o10000, SHM_EXEC = 0o100000;

export interface Range { start: bigint; end: bigint }
export interface LayoutEntry extends Range { name: string }

/** Highest user address on x86_64 with 4-level paging (TASK_SIZE_MAX). */
export const TASK_SIZE = 0x7ffffffff000n;
export const PAGE = 4096n;
/** Trampoline: page 0 holds `syscall; int3`, the rest is scratch memory for syscall arguments. */
export const TRAMPOLINE_SIZE = 16n * PAGE;
/**
 * At 0: `syscall; int3`, the single-stepped call. At TRAMPOLINE_LOOP: native/syscall-loop.ts's
 * loop, for batches of calls (Remote.batch).
 */
export const TRAMPOLINE_LOOP = 8n;
export const TRAMPOLINE_CODE = Buffer.concat([Buffer.from([0x0f, 0x05, 0xcc, 0x90, 0x90, 0x90, 0x90, 0x90]), SYSCALL_LOOP]);
export const SCRATCH_OFFSET = 64n;

export const SPECIAL_KINDS = ['vvar', 'vvar_vclock', 'vdso'] as const;
export type SpecialKind = (typeof SPECIAL_KINDS)[number];

export const PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4;
export const MAP_SHARED = 0x01, MAP_PRIVATE = 0x02, MAP_FIXED = 0x10, MAP_ANONYMOUS = 0x20,
  MAP_GROWSDOWN = 0x100, MAP_NORESERVE = 0x4000, MAP_FIXED_NOREPLACE = 0x100000;

export interface MapStep extends Range {
  kind: 'anon' | 'shared-anon' | 'file-private' | 'file-shared' | 'sysv-shm';
  prot: number;
  flags: number;
  /** File to map (file kinds only) and its page offset. */
  path?: string;
  offset: bigint;
  /** Whether page contents from the store go into this mapping (never into MAP_SHARED files: that would write the file). */
  writeContents: boolean;
  /** The original mapping, for messages. */
  label: string;
  /** madvise(MADV_HUGEPAGE) ("hg" in VmFlags: yes) or MADV_NOHUGEPAGE ("nh": no) at capture. */
  hugepages?: 'yes' | 'no';
  /** Name given with PR_SET_VMA_ANON_NAME ("[anon:NAME]" in maps), to give again. */
  anonName?: string;
  /**
   * Shared memory that was another mapping's pages at a second address: created after every other
   * mapping with mremap(aliasOf, 0, size, MAYMOVE|FIXED, start), so both share one object again.
   */
  aliasOf?: bigint;
  /** shared-anon: the shmem object's identity and this mapping's offset in it (restore/tree-shm.ts), to map a tree's one copy of it. */
  object?: { key: string; offset: bigint };
  /** shared-anon of a memfd ("/memfd:NAME"): NAME, to make it again as a memfd of that name (memory.ts mapAll). */
  memfdName?: string;
  /** sysv-shm: the segment to attach again (shmat) and SHM_* flags; its pages live in the segment. */
  shm?: { shmid: number; flags: number };
  /** file-private of a file deleted at capture: the mapping whose saved bytes recreate it (mapped-ghosts.ts). */
  ghost?: MappingState;
  /** madvise() flags and mlock to give again once the contents are in (absent: none). */
  advice?: VmaAdvice;
}

export interface SpecialMove { kind: SpecialKind; from: Range; temp: bigint; to: bigint }

export interface RestorePlan {
  trampoline: bigint;
  /** Stub mappings to unmap (everything but the specials and the trampoline). */
  unmap: Range[];
  specials: SpecialMove[];
  /** Specials the stub has but the checkpoint did not (unmapped). */
  dropSpecials: Range[];
  steps: MapStep[];
}

export function protOf(perms: string): number {
  return (perms[0] === 'r' ? PROT_READ : 0) | (perms[1] === 'w' ? PROT_WRITE : 0) | (perms[2] === 'x' ? PROT_EXEC : 0);
}

export function isSpecial(m: { kind: string }): boolean {
  return (SPECIAL_KINDS as readonly string[]).includes(m.kind);
}

/** [vsyscall] is listed in maps but is not a mapping of the process: nothing to restore. */
export function isRestorableMapping(m: MappingState): boolean {
  return m.kind !== 'vsyscall' && !isSpecial(m) && m.start < TASK_SIZE;
}

export function mapStepFor(m: MappingState): MapStep {
  const step = mapStepShape(m);
  const advice = adviceFor(m);
  return advice.advice.length || advice.lock !== 'none' ? { ...step, advice } : step;
}

function mapStepShape(m: MappingState): MapStep {
  const prot = protOf(m.perms);
  const shared = m.perms[3] === 's';
  const label = `${m.start.toString(16)}-${m.end.toString(16)} ${m.path || '[anon]'}`;
  const named = /^\[anon(?:_shmem)?:(.*)\]$/.exec(m.path);
  const hugepages = m.vmFlags.includes('hg') ? 'yes' as const : m.vmFlags.includes('nh') ? 'no' as const : undefined;
  const base = { start: m.start, end: m.end, prot, offset: 0n, label, ...(named ? { anonName: named[1] } : {}), ...(hugepages ? { hugepages } : {}) };
  if (m.kind === 'file-private' && m.deleted && m.ghost) {
    // The file is recreated from its saved bytes at restore (mapped-ghosts.ts); path set there.
    return { ...base, kind: 'file-private', flags: MAP_PRIVATE | MAP_FIXED, path: m.path, offset: m.offset, writeContents: true, ghost: m };
  }
  if ((m.kind === 'file-private' || m.kind === 'file-shared') && !m.deleted) {
    return shared
      ? { ...base, kind: 'file-shared', flags: MAP_SHARED | MAP_FIXED, path: m.path, offset: m.offset, writeContents: false }
      : { ...base, kind: 'file-private', flags: MAP_PRIVATE | MAP_FIXED, path: m.path, offset: m.offset, writeContents: true };
  }
  if (attachesLive(m)) {
    // A mapping that was never writable or executable gets an attach that can never become so either.
    const flags = (m.vmFlags.includes('mw') ? 0 : SHM_RDONLY) | (m.vmFlags.includes('me') ? SHM_EXEC : 0);
    return { ...base, kind: 'sysv-shm', flags: 0, offset: m.offset, shm: { shmid: m.inode, flags }, writeContents: false };
  }
  if (m.kind === 'shared-anon' || shared) {
    const object = shmObjectKey(m);
    const memfdName = object && m.path.startsWith('/memfd:') ? m.path.slice('/memfd:'.length) : undefined;
    return { ...base, kind: 'shared-anon', flags: MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, writeContents: true, ...(object ? { object: { key: object, offset: m.offset } } : {}), ...(memfdName !== undefined ? { memfdName } : {}) };
  }
  let flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
  if (m.vmFlags.includes('gd')) flags |= MAP_GROWSDOWN;
  if (m.vmFlags.includes('nr')) flags |= MAP_NORESERVE;
  return { ...base, kind: 'anon', flags, writeContents: true };
}

function overlaps(a: Range, b: Range): boolean {
  return a.start < b.end && b.start < a.end;
}

/**
 * Lowest page-aligned address >= from where [addr, addr+size) overlaps none of `used`
 * (each widened by `margin` so stack guard gaps and growth stay clear).
 */
export function findFree(used: Range[], size: bigint, from: bigint, margin = 16n * 1024n * 1024n): bigint {
  const padded = used
    .map((r) => ({ start: r.start > margin ? r.start - margin : 0n, end: r.end + margin }))
    .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  let addr = from;
  for (const r of padded) {
    if (r.end <= addr) continue;
    if (addr + size <= r.start) break;
    addr = r.end;
  }
  addr = (addr + PAGE - 1n) & ~(PAGE - 1n);
  if (addr + size > TASK_SIZE) throw new Error('no free address range for the restore trampoline');
  return addr;
}

/** Where the search for scratch ranges starts: far above classic heaps, far below mmap bases and stacks. */
const SEARCH_BASE = 0x100000000000n;

/**
 * `tree` (tree restores): `avoid`, the mappings of every other member, so the root's trampoline is
 * free in all of them (each child is forked from its parent and inherits it); `trampoline`, the one
 * a forked member inherited (its stub layout then holds it: kept, not unmapped).
 */
export function buildRestorePlan(state: ProcessState, stub: LayoutEntry[], tree: { avoid?: Range[]; trampoline?: bigint } = {}): RestorePlan {
  const targetMaps = state.mappings.filter((m) => m.kind !== 'vsyscall' && m.start < TASK_SIZE);
  const inherited = tree.trampoline;
  const stubMaps = stub.filter((m) => m.start < TASK_SIZE && m.name !== '[vsyscall]'
    && !(inherited !== undefined && overlaps(m, { start: inherited, end: inherited + TRAMPOLINE_SIZE })));
  const used: Range[] = [...targetMaps, ...stubMaps, ...(tree.avoid ?? [])];
  const trampoline = inherited ?? findFree(used, TRAMPOLINE_SIZE, SEARCH_BASE);
  used.push({ start: trampoline, end: trampoline + TRAMPOLINE_SIZE });

  const specials: SpecialMove[] = [];
  const dropSpecials: Range[] = [];
  for (const s of stubMaps) {
    const kind = s.name.replace(/^\[|\]$/g, '');
    if (!(SPECIAL_KINDS as readonly string[]).includes(kind)) continue;
    const target = targetMaps.find((m) => m.kind === kind);
    if (!target) { dropSpecials.push(s); continue; }
    if (target.end - target.start !== s.end - s.start) {
      throw new Error(`[${kind}] is ${s.end - s.start} bytes here but was ${target.end - target.start} bytes at checkpoint time (different kernel)`);
    }
    const temp = findFree(used, s.end - s.start, SEARCH_BASE);
    used.push({ start: temp, end: temp + (s.end - s.start) });
    specials.push({ kind: kind as SpecialKind, from: { start: s.start, end: s.end }, temp, to: target.start });
  }
  const unmap = stubMaps.filter((s) => !(SPECIAL_KINDS as readonly string[]).includes(s.name.replace(/^\[|\]$/g, '')))
    .map((s) => ({ start: s.start, end: s.end }));
  const steps = state.mappings.filter(isRestorableMapping)
    .sort((a, b) => (a.start < b.start ? -1 : 1))
    .map(mapStepFor);
  const aliases = aliasFor(state.mappings);
  for (const st of steps) {
    const src = aliases.get(st.start);
    if (src !== undefined && st.kind === 'shared-anon') st.aliasOf = src;
  }
  for (const st of steps) {
    if (overlaps(st, { start: trampoline, end: trampoline + TRAMPOLINE_SIZE })) throw new Error('trampoline overlaps a mapping');
  }
  return { trampoline, unmap, specials, dropSpecials, steps };
}

export function parseMaps(text: string): LayoutEntry[] {
  const out: LayoutEntry[] = [];
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+)\s+\S+\s+\S+\s+\S+\s+\d+\s*(.*)$/.exec(line);
    if (m) out.push({ start: BigInt('0x' + m[1]), end: BigInt('0x' + m[2]), name: m[3].trim() });
  }
  return out;
}
