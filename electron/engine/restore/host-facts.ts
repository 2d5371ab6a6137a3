/**
 * Facts about the machine the restore runs on that pre-flight compares with a checkpoint: kernel
 * release, the vdso image (size and sha256 of our own [vdso]), whether system mappings are sealed,
 * our capabilities and the address-space floor. Read-only: must never change anything.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { release } from 'node:os';
import { readStatus, statusIds } from '../proc';

export interface HostFacts {
  release: string;
  vdsoSize: number | null;
  vdsoSha256: string | null;
  /** CONFIG_MSEAL_SYSTEM_MAPPINGS: [vdso]/[vvar] carry the "sl" VmFlag and cannot be moved. */
  sealedSystemMappings: boolean;
  euid: number;
  /** Effective gid: with euid, the ids a restored process runs with (restore/creds.ts). */
  egid: number;
  /** Our real, effective, saved and fs uids and gids: the stub starts with them. */
  ids: { uid: number[]; gid: number[] };
  capEff: bigint;
  mmapMinAddr: bigint;
  /** Our hard resource limits by RLIMIT_* number (null = unlimited); the stub inherits them. */
  hardLimits: (bigint | null)[];
}

export const CAP_SYS_PTRACE = 19, CAP_SYS_ADMIN = 21, CAP_SYS_RESOURCE = 24, CAP_CHECKPOINT_RESTORE = 40;

let cached: HostFacts | null = null;

export function hostFacts(): HostFacts {
  if (cached) return cached;
  const smaps = readFileSync('/proc/self/smaps', 'utf8');
  let vdso: { start: bigint; end: bigint } | null = null;
  let sealed = false;
  let current = '';
  for (const line of smaps.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (m) {
      current = m[3].trim();
      if (current === '[vdso]') vdso = { start: BigInt('0x' + m[1]), end: BigInt('0x' + m[2]) };
      continue;
    }
    if ((current === '[vdso]' || current === '[vvar]') && line.startsWith('VmFlags:')) {
      if (line.split(/\s+/).includes('sl')) sealed = true;
    }
  }
  let vdsoSha256: string | null = null;
  if (vdso) {
    const buf = Buffer.alloc(Number(vdso.end - vdso.start));
    const fd = openSync('/proc/self/mem', 'r');
    try { readSync(fd, buf, 0, buf.length, Number(vdso.start)); } finally { closeSync(fd); }
    vdsoSha256 = createHash('sha256').update(buf).digest('hex');
  }
  const status = readFileSync('/proc/self/status', 'utf8');
  const capEff = BigInt('0x' + (/CapEff:\s*([0-9a-f]+)/.exec(status)?.[1] ?? '0'));
  let mmapMinAddr = 65536n;
  try { mmapMinAddr = BigInt(readFileSync('/proc/sys/vm/mmap_min_addr', 'utf8').trim()); } catch (_e) { /* keep the default */ }
  const hardLimits: (bigint | null)[] = [];
  try {
    // /proc/self/limits lists the resources in RLIMIT_* order, after one header line.
    for (const line of readFileSync('/proc/self/limits', 'utf8').split('\n').slice(1)) {
      const m = /^.{26}\s*(\S+)\s+(\S+)/.exec(line);
      if (m) hardLimits.push(m[2] === 'unlimited' ? null : BigInt(m[2]!));
    }
  } catch (_e) { /* unknown: pre-flight then trusts the saved limits */ }
  cached = {
    release: release(),
    vdsoSize: vdso ? Number(vdso.end - vdso.start) : null,
    vdsoSha256,
    sealedSystemMappings: sealed,
    euid: typeof process.geteuid === 'function' ? process.geteuid() : -1,
    egid: typeof process.getegid === 'function' ? process.getegid() : -1,
    ids: { uid: statusIds(readStatus(process.pid), 'Uid'), gid: statusIds(readStatus(process.pid), 'Gid') },
    capEff,
    mmapMinAddr,
    hardLimits,
  };
  return cached;
}

export function hasCap(f: HostFacts, cap: number): boolean {
  return ((f.capEff >> BigInt(cap)) & 1n) === 1n;
}
