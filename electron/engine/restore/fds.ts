/**
 * Restore step "fds": every saved descriptor at its number with its flags, close-on-exec bit and
 * position — reopened from its path, redirected (vanished ttys/pipes to the user's log file, reads
 * from /dev/null), or rebuilt (eventfd) — as decided by fd-plan.ts. Runs inside the stub, whose own
 * inherited descriptors were closed first; must never open anything in the engine itself.
 */
import { StasisError } from '../../../shared/errors';
import type { ProcessState } from '../state/process-state';
import type { Remote } from './remote';
import { O_CLOEXEC, planFd, type FdAction, type RedirectOptions } from './fd-plan';
import { NR } from './sysno';

const SEEK_SET = 0;
const EFD_SEMAPHORE = 1;

/**
 * Watch numbers are handed out one after the other, so they come back the same when added in order;
 * a gap is filled with a throw-away watch on / that is removed once the next number is taken.
 */
function addWatches(r: Remote, fd: bigint, watches: { wd: number; mask: number; path: string }[], num: number): void {
  const fillers: bigint[] = [];
  let next = 1;
  for (const w of watches) {
    while (next < w.wd) {
      r.resetScratch();
      fillers.push(r.call(NR.inotify_add_watch, [fd, r.putString('/'), 0x2n /* IN_MODIFY */], `inotify filler watch for fd ${num}`));
      next++;
    }
    r.resetScratch();
    const wd = r.call(NR.inotify_add_watch, [fd, r.putString(w.path), BigInt(w.mask >>> 0)], `inotify watch ${w.wd} (${w.path}) for fd ${num}`);
    if (wd !== BigInt(w.wd)) throw new StasisError('INTERNAL', `inotify watch on ${w.path} came back as ${wd}, not ${w.wd}.`);
    next = w.wd + 1;
  }
  for (const f of fillers) r.call(NR.inotify_rm_watch, [fd, f], `removing an inotify filler watch of fd ${num}`);
}

export function closeInheritedFds(r: Remote): void {
  r.call(NR.close_range, [0n, 0xffffffffn, 0n], 'close_range (dropping descriptors inherited from the engine)');
}

export function restoreFds(r: Remote, state: ProcessState, redirect: RedirectOptions): void {
  const sorted = [...state.fds].sort((a, b) => a.fd - b.fd);
  const epolls: Extract<FdAction, { action: 'epoll' }>[] = [];
  for (const f of sorted) {
    const a = planFd(f, redirect, state.fds);
    r.resetScratch();
    let got: bigint;
    const cloexec = BigInt(a.action !== 'refuse' && a.cloexec ? O_CLOEXEC : 0);
    switch (a.action) {
      case 'refuse':
        throw new StasisError('UNSUPPORTED', `${a.reason}. ${a.fix}`);
      case 'open':
      case 'redirect':
        got = r.call(NR.open, [r.putString(a.path), BigInt(a.flags) | cloexec, 0o644n], `reopening fd ${a.fd} (${a.path})`);
        break;
      case 'eventfd':
        got = r.call(NR.eventfd2, [a.count, BigInt(a.flags | (a.semaphore ? EFD_SEMAPHORE : 0)) | cloexec], `recreating eventfd ${a.fd}`);
        break;
      case 'signalfd': {
        const m = Buffer.alloc(8);
        m.writeBigUInt64LE(a.mask, 0);
        got = r.call(NR.signalfd4, [-1n, r.put(m), 8n, BigInt(a.flags) | cloexec], `recreating signalfd ${a.fd}`);
        break;
      }
      case 'timerfd': {
        got = r.call(NR.timerfd_create, [BigInt(a.clockid), BigInt(a.flags) | cloexec], `recreating timerfd ${a.fd}`);
        if (a.valueNs !== 0n || a.intervalNs !== 0n) {
          const spec = Buffer.alloc(32);
          const v = a.valueNs === 0n ? 1n : a.valueNs;
          [a.intervalNs / 1_000_000_000n, a.intervalNs % 1_000_000_000n, v / 1_000_000_000n, v % 1_000_000_000n].forEach((x, i) => spec.writeBigInt64LE(x, i * 8));
          r.call(NR.timerfd_settime, [got, 0n, r.put(spec), 0n], `arming timerfd ${a.fd}`);
        }
        break;
      }
      case 'epoll':
        got = r.call(NR.epoll_create1, [cloexec], `recreating epoll fd ${a.fd}`);
        epolls.push(a);
        break;
      case 'inotify':
        got = r.call(NR.inotify_init1, [BigInt(a.flags) | cloexec], `recreating inotify fd ${a.fd}`);
        addWatches(r, got, a.watches, a.fd);
        break;
    }
    if (got !== BigInt(a.fd)) {
      r.call(NR.dup3, [got, BigInt(a.fd), cloexec], `dup3 to fd ${a.fd}`);
      r.raw(NR.close, [got]);
    }
    if (a.action === 'open' && a.pos !== 0n) {
      const pos = r.raw(NR.lseek, [BigInt(a.fd), a.pos, BigInt(SEEK_SET)]);
      if (pos < 0n && f.kind === 'file') throw new StasisError('INTERNAL', `Could not restore the position ${a.pos} of fd ${a.fd} (${a.path}): errno ${-pos}.`);
    }
  }
  // Watches last: every watched descriptor exists by now.
  for (const e of epolls) {
    for (const it of e.items) {
      r.resetScratch();
      const ev = Buffer.alloc(12);
      ev.writeUInt32LE(it.events >>> 0, 0);
      ev.writeBigUInt64LE(it.data, 4);
      r.call(NR.epoll_ctl, [BigInt(e.fd), 1n, BigInt(it.tfd), r.put(ev)], `adding fd ${it.tfd} to epoll fd ${e.fd}`);
    }
  }
}
