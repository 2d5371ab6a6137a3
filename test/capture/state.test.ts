/**
 * What capture records about a process besides its pages, against a program that sets up one of
 * each: fds of every kind (with position, flags, FD_CLOEXEC and fdinfo details), interval and
 * POSIX timers, the alternate signal stack, handlers, blocked signals, rseq, limits, mm fields.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached } from '../helpers/spawn';
import { checkpoint } from '../../electron/engine/capture';
import { tempDir, tempStore, waitForFile } from './common';

for (const snapshot of ['fork', 'never'] as const) {
  test(`state of a process with every kind of fd, timers and signal setup (${snapshot === 'fork' ? 'fork snapshot' : 'frozen throughout'})`, async () => {
    const side = tempDir('capture-state');
    const st = tempStore();
    const target = spawnDetached([buildFixture('capture-state'), side.dir]);
    try {
      const ready = await waitForFile(join(side.dir, 'ready'));
      const fdOf = (k: string): number => Number(new RegExp(`^${k} (\\w+)$`, 'm').exec(ready)![1]);
      const r = checkpoint(st.store, target.pid, { snapshot });
      const s = st.store.getState(r.id);
      const fd = (n: number) => s.fds.find((f) => f.fd === n)!;

      assert.equal(fd(fdOf('file')).kind, 'file');
      assert.equal(fd(fdOf('file')).pos, 123n);
      assert.equal(fd(fdOf('file')).cloexec, true);
      assert.equal(fd(fdOf('file')).flags & 3, 2, 'O_RDWR');
      assert.equal(fd(fdOf('file')).size, 200);
      assert.equal(fd(fdOf('deleted')).kind, 'deleted-file');
      assert.equal(fd(fdOf('deleted')).cloexec, false);
      assert.equal(fd(fdOf('pipe')).kind, 'pipe');
      assert.equal(fd(fdOf('socket')).kind, 'socket');
      assert.equal(fd(fdOf('eventfd')).kind, 'eventfd');
      assert.match(String(fd(fdOf('eventfd')).info?.count), /^0*5$/);
      assert.equal(fd(fdOf('timerfd')).kind, 'timerfd');
      assert.equal(String(fd(fdOf('timerfd')).info?.clockid), '1');
      assert.match(String(fd(fdOf('timerfd')).info?.interval), /\(7, 0\)/);
      assert.equal(fd(fdOf('signalfd')).kind, 'signalfd');
      assert.match(String(fd(fdOf('signalfd')).info?.sigmask), /^0*800$/, 'SIGUSR2 = bit 11');
      assert.equal(fd(fdOf('epoll')).kind, 'epoll');
      assert.equal((fd(fdOf('epoll')).info?.items as string[]).length, 1);
      assert.match((fd(fdOf('epoll')).info?.items as string[])[0]!, new RegExp(`^${fdOf('eventfd')} `));
      assert.equal(fd(fdOf('inotify')).kind, 'inotify');
      assert.equal((fd(fdOf('inotify')).info?.watches as string[]).length, 1);
      assert.equal(fd(fdOf('dir')).kind, 'dir');
      assert.equal(fd(fdOf('memfd')).kind, 'memfd');
      assert.equal(fd(0).kind, 'chr');

      const real = s.timers.itimers?.find((t) => t.which === 'real');
      assert.equal(real?.intervalUs, 10_000_000n);
      assert.ok(real!.valueUs > 40_000_000n && real!.valueUs <= 50_000_000n, `itimer value ${real!.valueUs}`);
      assert.equal(s.timers.posix?.length, 1);
      assert.equal(s.timers.posix![0]!.signo, 10);
      assert.equal(s.timers.posix![0]!.intervalNs, 3_000_000_000n);
      assert.ok(s.timers.posix![0]!.valueNs > 50_000_000_000n);

      const th = s.threads[0]!;
      assert.equal(th.altstack?.sp, BigInt(`0x${/^altstack (\w+)$/m.exec(ready)![1]}`));
      assert.equal(th.altstack?.size, 65536n);
      assert.equal(th.sigmask & (1n << 11n), 1n << 11n, 'SIGUSR2 blocked');
      assert.ok(th.rseq, 'glibc registers rseq');
      assert.ok(th.clearChildTid !== undefined);
      const usr1 = s.sigactions.find((a) => a.signo === 10)!;
      assert.ok(usr1.handler > 1n);
      assert.ok((usr1.flags & 0x08000000n) !== 0n, 'SA_ONSTACK');
      assert.ok((usr1.flags & 0x10000000n) !== 0n, 'SA_RESTART');
      assert.equal(s.sigactions.find((a) => a.signo === 13)?.handler, 1n, 'SIGPIPE ignored');
      assert.ok(s.rlimits.find((l) => l.name === 'nofile')!.cur > 0n);
      assert.ok(s.mm.startCode > 0n && s.mm.endCode > s.mm.startCode && s.mm.brk >= s.mm.startBrk);
      assert.ok(s.auxv.length > 10);
      assert.equal(s.exe, buildFixture('capture-state'));
      assert.deepEqual(s.cmdline, [buildFixture('capture-state'), side.dir]);
      assert.equal(s.cwd, process.cwd());
      assert.ok(s.mappings.some((m) => m.kind === 'vdso') && s.kernel.vdsoSha256);
      assert.ok(s.mappings.some((m) => m.kind === 'file-private' && m.file && m.vmFlags.length > 0));
      assert.equal(readFileSync(`/proc/${target.pid}/status`, 'utf8').match(/TracerPid:\s+(\d+)/)![1], '0');
    } finally {
      target.kill();
      st.cleanup();
      side.cleanup();
    }
  });
}
