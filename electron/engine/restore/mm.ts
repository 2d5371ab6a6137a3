/**
 * Restore step "mm": the kernel's view of the address space through PR_SET_MM_MAP (code/data/brk/
 * stack/arg/env boundaries, so [heap] and [stack] and /proc/PID/cmdline come back; the saved auxv;
 * /proc/PID/exe pointing at the original executable), and the process name. Runs after every
 * mapping exists (the kernel validates the addresses against them).
 */
import { StasisError } from '../../../shared/errors';
import { deletedExeMapping, type ProcessState } from '../state/process-state';
import type { Remote } from './remote';
import { NR, PR_SET_MM, PR_SET_MM_MAP, PR_SET_MM_MAP_SIZE, PR_SET_NAME } from './sysno';

const O_RDONLY = 0, O_CLOEXEC = 0o2000000;

export function setMm(r: Remote, state: ProcessState): void {
  r.resetScratch();
  const sizeAddr = r.reserve(4);
  r.call(NR.prctl, [BigInt(PR_SET_MM), BigInt(PR_SET_MM_MAP_SIZE), sizeAddr, 0n, 0n], 'prctl(PR_SET_MM_MAP_SIZE)');
  const sz = Buffer.alloc(4);
  r.read(sizeAddr, sz);
  const size = sz.readUInt32LE(0) || 104;

  const auxv = Buffer.alloc(state.auxv.length * 8);
  state.auxv.forEach((v, i) => auxv.writeBigUInt64LE(BigInt.asUintN(64, v), i * 8));
  const auxvAddr = auxv.length ? r.put(auxv) : 0n;
  // A deleted executable was recreated (deleted again) for its mapping: reached through that mapping.
  const deleted = state.exeDeleted ? deletedExeMapping(state) : undefined;
  if (state.exeDeleted && !deleted) throw new StasisError('UNSUPPORTED', `The executable ${state.exe} was deleted and is not mapped: nothing can stand for it.`);
  const exePath = deleted ? `/proc/self/map_files/${deleted.start.toString(16)}-${deleted.end.toString(16)}` : state.exe;
  const exeFd = r.call(NR.open, [r.putString(exePath), BigInt(O_RDONLY | O_CLOEXEC), 0n], `open(${exePath}) as the process's executable`);
  try {
    const m = state.mm;
    const map = Buffer.alloc(size);
    [m.startCode, m.endCode, m.startData, m.endData, m.startBrk, m.brk, m.startStack, m.argStart, m.argEnd, m.envStart, m.envEnd]
      .forEach((v, i) => map.writeBigUInt64LE(BigInt.asUintN(64, v), i * 8));
    map.writeBigUInt64LE(auxvAddr, 88);
    map.writeUInt32LE(auxv.length, 96);
    map.writeUInt32LE(Number(exeFd), 100);
    const mapAddr = r.put(map);
    r.call(NR.prctl, [BigInt(PR_SET_MM), BigInt(PR_SET_MM_MAP), mapAddr, BigInt(size), 0n], 'prctl(PR_SET_MM_MAP) (memory layout, auxv and executable)');
  } finally {
    r.raw(NR.close, [exeFd]);
  }
  r.resetScratch();
  r.call(NR.prctl, [BigInt(PR_SET_NAME), r.putString(state.comm.slice(0, 15)), 0n, 0n, 0n], 'prctl(PR_SET_NAME)');
}
