/**
 * A ProcessState built by hand for the pure parts of restore (plan, pre-flight): real files in a
 * temp dir, this machine's kernel facts. Not a fake of the kernel: nothing here is restored.
 */
import { statSync } from 'node:fs';
import { STATE_VERSION, type MappingState, type ProcessState } from '../../electron/engine/state/process-state';
import { hostFacts } from '../../electron/engine/restore/host-facts';

export function fileMapping(path: string, start: bigint, end: bigint, perms = 'r--p', offset = 0n): MappingState {
  const st = statSync(path, { bigint: true });
  return {
    start, end, perms, offset, dev: '00:00', inode: Number(st.ino), path, deleted: false,
    kind: perms[3] === 's' ? 'file-shared' : 'file-private', vmFlags: ['rd'],
    file: { size: Number(st.size), mtimeNs: st.mtimeNs.toString() },
  };
}

export function anonMapping(start: bigint, end: bigint, kind: MappingState['kind'] = 'anon', path = ''): MappingState {
  return { start, end, perms: 'rw-p', offset: 0n, dev: '00:00', inode: 0, path, deleted: false, kind, vmFlags: kind === 'stack' ? ['rd', 'wr', 'gd'] : ['rd', 'wr'] };
}

export function syntheticState(exe: string, extra: Partial<ProcessState> = {}): ProcessState {
  const h = hostFacts();
  const st = statSync(exe, { bigint: true });
  return {
    version: STATE_VERSION, pid: 999999, startTime: '1', ppid: 1, pgid: 1, sid: 1, uid: 0, gid: 0, comm: 'synthetic',
    exe, exeFile: { dev: Number(st.dev), inode: Number(st.ino), size: Number(st.size), mtimeNs: st.mtimeNs.toString() },
    cmdline: [exe], cwd: '/', root: '/', umask: 0o22, personality: 0, rlimits: [],
    mm: { startCode: 0n, endCode: 0n, startData: 0n, endData: 0n, startBrk: 0n, brk: 0n, startStack: 0n, argStart: 0n, argEnd: 0n, envStart: 0n, envEnd: 0n },
    auxv: [],
    mappings: [
      fileMapping(exe, 0x400000n, 0x401000n, 'r-xp'),
      anonMapping(0x1000000n, 0x1021000n, 'heap', '[heap]'),
      { ...anonMapping(0x7f0000000000n, 0x7f0000004000n, 'vvar', '[vvar]'), perms: 'r--p' },
      { ...anonMapping(0x7f0000004000n, 0x7f0000006000n, 'vvar_vclock', '[vvar_vclock]'), perms: 'r--p' },
      { ...anonMapping(0x7f0000006000n, 0x7f0000008000n, 'vdso', '[vdso]'), perms: 'r-xp' },
      anonMapping(0x7ffc00000000n, 0x7ffc00021000n, 'stack', '[stack]'),
    ],
    threads: [{ tid: 999999, regs: new Array<bigint>(27).fill(0n), xstate: 'AA==', sigmask: 0n, sigpending: 0n, inSyscall: -1 }],
    sigactions: [], sharedPending: 0n, fds: [], timers: {},
    kernel: { release: h.release, vdsoSha256: h.vdsoSha256 ?? undefined, vdsoSize: h.vdsoSize ?? undefined },
    warnings: [],
    ...extra,
  };
}
