/**
 * Restore step "fds": every saved descriptor at its number with its flags, close-on-exec bit and
 * position — reopened from its path, redirected (vanished ttys/pipes to the user's log file, reads
 * from /dev/null), or rebuilt (eventfd) — as decided by fd-plan.ts. Runs inside the stub, whose own
 * inherited descriptors were closed first; must never open anything in the engine itself.
 */
import { StasisError } from '../../../shared/errors';
import type { ProcessState } from '../state/process-state';
import type { Remote } from './remote';
import { O_CLOEXEC, planFd, type RedirectOptions } from './fd-plan';
import { NR } from './sysno';

const SEEK_SET = 0;
const EFD_SEMAPHORE = 1;

export function closeInheritedFds(r: Remote): void {
  r.call(NR.close_range, [0n, 0xffffffffn, 0n], 'close_range (dropping descriptors inherited from the engine)');
}

export function restoreFds(r: Remote, state: ProcessState, redirect: RedirectOptions): void {
  const sorted = [...state.fds].sort((a, b) => a.fd - b.fd);
  for (const f of sorted) {
    const a = planFd(f, redirect);
    r.resetScratch();
    let got: bigint;
    switch (a.action) {
      case 'refuse':
        throw new StasisError('UNSUPPORTED', `${a.reason}. ${a.fix}`);
      case 'open':
      case 'redirect':
        got = r.call(NR.open, [r.putString(a.path), BigInt(a.flags | (a.cloexec ? O_CLOEXEC : 0)), 0o644n], `reopening fd ${a.fd} (${a.path})`);
        break;
      case 'eventfd': {
        const sem = f.info && String(f.info['eventfd-semaphore'] ?? '') === '1' ? EFD_SEMAPHORE : 0;
        got = r.call(NR.eventfd2, [a.count, BigInt(a.flags | sem | (a.cloexec ? O_CLOEXEC : 0))], `recreating eventfd ${a.fd}`);
        break;
      }
    }
    if (got !== BigInt(a.fd)) {
      r.call(NR.dup3, [got, BigInt(a.fd), BigInt(a.cloexec ? O_CLOEXEC : 0)], `dup3 to fd ${a.fd}`);
      r.raw(NR.close, [got]);
    }
    if (a.action === 'open' && a.pos !== 0n) {
      const pos = r.raw(NR.lseek, [BigInt(a.fd), a.pos, BigInt(SEEK_SET)]);
      if (pos < 0n && f.kind === 'file') throw new StasisError('INTERNAL', `Could not restore the position ${a.pos} of fd ${a.fd} (${a.path}): errno ${-pos}.`);
    }
  }
}
