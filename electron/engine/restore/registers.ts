/**
 * Restore step "registers": the last injected call drops the trampoline (a single-step trap arrives
 * right after the syscall instruction, before the vanished next byte would run), then the saved
 * general registers (incl. fs_base), the xstate (FPU/SSE/AVX...) and the blocked-signal mask go in.
 * An interrupted relative sleep (-ERESTART_RESTARTBLOCK) becomes -EINTR because its restart block
 * does not exist in the new process; other restart codes restart by themselves (orig_rax kept).
 */
import { NT, REG, setRegs, setRegset, setSigmask } from '../native';
import type { ThreadState } from '../state/process-state';
import type { Remote } from './remote';
import { TRAMPOLINE_SIZE } from './plan';
import { NR } from './sysno';

const ERESTART_RESTARTBLOCK = -516n;
const EINTR = -4n;

export function dropTrampoline(r: Remote, trampoline: bigint): void {
  r.call(NR.munmap, [trampoline, TRAMPOLINE_SIZE], 'munmap of the restore trampoline');
}

export function setRegisters(r: Remote, th: ThreadState): void {
  const regs = [...th.regs];
  if (BigInt.asIntN(64, regs[REG.rax]!) === ERESTART_RESTARTBLOCK) regs[REG.rax] = BigInt.asUintN(64, EINTR);
  setRegs(r.pid, regs);
  if (th.xstate) setRegset(r.pid, NT.X86_XSTATE, Buffer.from(th.xstate, 'base64'));
  else if (th.fpregs) setRegset(r.pid, NT.PRFPREG, Buffer.from(th.fpregs, 'base64'));
  setSigmask(r.pid, th.sigmask);
}
