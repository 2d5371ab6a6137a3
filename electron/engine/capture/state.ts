/**
 * Assembles ProcessState from /proc and the frozen tracee (threads.ts). The parts that change
 * while a process runs (registers, signals, fd positions, timers, brk) must be read while frozen;
 * `captureFrozenState` does exactly that and nothing that could be done later.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { release } from 'node:os';
import { STATE_VERSION, type ProcessState } from '../state/process-state';
import type { Tracee } from '../tracer';
import { readStat, readStatus, statusMask, statusIds, readAuxv, readLimits, readCmdline, readEnviron, readFds } from '../proc';
import { captureThread, captureSigactions, captureBrk, captureTimers } from './threads';
import { readMappings, addFileStat } from './mappings';
import { readSmaps } from '../proc';
import type { MappingState } from '../state/process-state';

function safe<T>(f: () => T, fallback: T): T {
  try {
    return f();
  } catch {
    return fallback;
  }
}

/** Everything but mappings, read while every thread is stopped. */
export function captureFrozenState(t: Tracee): ProcessState {
  const pid = t.pid;
  const warnings: string[] = [];
  const stat = readStat(pid);
  const status = readStatus(pid);
  const threads = t.tids.map((tid) => captureThread(t, tid, warnings));
  const sigactions = captureSigactions(t);
  const brk = captureBrk(t);
  const timers = captureTimers(t, warnings);
  const exe = safe(() => readlinkSync(`/proc/${pid}/exe`), '');
  const state: ProcessState = {
    version: STATE_VERSION,
    pid,
    startTime: stat.startTime,
    ppid: stat.ppid,
    pgid: stat.pgrp,
    sid: stat.session,
    uid: statusIds(status, 'Uid')[1] ?? -1,
    gid: statusIds(status, 'Gid')[1] ?? -1,
    comm: stat.comm,
    exe: exe.replace(/ \(deleted\)$/, ''),
    cmdline: safe(() => readCmdline(pid), []),
    environ: safe(() => readEnviron(pid), undefined),
    cwd: safe(() => readlinkSync(`/proc/${pid}/cwd`), '/'),
    root: safe(() => readlinkSync(`/proc/${pid}/root`), '/'),
    umask: parseInt(status.get('Umask') ?? '22', 8),
    personality: safe(() => parseInt(readFileSync(`/proc/${pid}/personality`, 'utf8').trim(), 16), 0),
    rlimits: readLimits(pid),
    mm: { ...stat.mm, brk },
    auxv: readAuxv(pid),
    mappings: [],
    threads,
    sigactions,
    sharedPending: statusMask(status, 'ShdPnd'),
    fds: readFds(pid),
    timers,
    kernel: { release: release() },
    warnings,
  };
  if (exe.endsWith(' (deleted)')) warnings.push(`the executable ${state.exe} was deleted`);
  try {
    const st = statSync(`/proc/${pid}/exe`, { bigint: true });
    state.exeFile = { dev: Number(st.dev), inode: Number(st.ino), size: Number(st.size), mtimeNs: st.mtimeNs.toString() };
  } catch {
    // not readable
  }
  for (const [tid, sig] of t.deferredSignals) warnings.push(`thread ${tid}: signal ${sig} arrived during the freeze; it was delivered after the checkpoint, not saved in it`);
  return state;
}

/** Mappings and the vdso fingerprint; read from `memPid` (the snapshot child or the frozen target). */
export function captureMappings(state: ProcessState, memPid: number, read: (addr: bigint, buf: Buffer) => number): void {
  state.mappings = readMappings(memPid);
  const vdso = state.mappings.find((m) => m.kind === 'vdso');
  if (vdso) {
    const buf = Buffer.alloc(Number(vdso.end - vdso.start));
    const n = read(vdso.start, buf);
    state.kernel.vdsoSize = buf.length;
    if (n === buf.length) state.kernel.vdsoSha256 = createHash('sha256').update(buf).digest('hex');
  }
}

/**
 * For mappings listed while frozen (uffd-wp path): VmFlags from smaps (read after the resume;
 * smaps walks page tables and is too slow to read while frozen), the backing files' stat, and the
 * vdso fingerprint. The "uw" flag our own write-protect registration adds is left out.
 */
export function fillMappingDetails(pid: number, mappings: MappingState[], read: (addr: bigint, buf: Buffer) => number, state: ProcessState): void {
  const flags = new Map<bigint, string[]>();
  for (const e of readSmaps(pid)) flags.set(e.start, e.vmFlags);
  for (const m of mappings) {
    m.vmFlags = (flags.get(m.start) ?? []).filter((f) => f !== 'uw');
    addFileStat(pid, m);
  }
  const vdso = mappings.find((m) => m.kind === 'vdso');
  if (vdso) {
    const buf = Buffer.alloc(Number(vdso.end - vdso.start));
    const n = read(vdso.start, buf);
    state.kernel.vdsoSize = buf.length;
    if (n === buf.length) state.kernel.vdsoSha256 = createHash('sha256').update(buf).digest('hex');
  }
}
