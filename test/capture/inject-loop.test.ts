// A long batch of injected system calls runs through the loop in a page mapped for it in the frozen
// process (tracer/inject.ts runLooped): every result in order, memory the calls write is there, the
// page is gone afterwards and the process runs on untouched (its registers, its maps). A short
// batch is single-stepped, with the same results.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { freeze, injectSyscalls, loopStats, withScratch } from '../../electron/engine/tracer';
import { SYS } from '../../electron/engine/native';
import { waitFor } from './common';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached } from '../helpers/spawn';

test('a long injected batch runs through the loop: results in order, the page unmapped after, the process untouched', async () => {
  const child = spawn('python3', ['-c', 'import time\nwhile True:\n    time.sleep(0.01)'], { stdio: 'ignore' });
  try {
    const pid = child.pid!;
    // Up once python has its SIGINT handler (SigCgt bit 2).
    await waitFor('python', () => /SigCgt:\s*\S*[2367abef]$/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')));
    const t = freeze(pid);
    try {
      const mapsBefore = readFileSync(`/proc/${pid}/maps`, 'utf8');
      const regsBefore = t.regs(pid);
      const before = loopStats.batches;
      const handlers = Buffer.alloc(30 * 32);
      const out = withScratch(t, pid, 30 * 32, (addr) => {
        const r = injectSyscalls(t, pid, [
          ...Array.from({ length: 30 }, (_, i) => ({ nr: SYS.rt_sigaction, args: [BigInt(i + 1), 0n, addr + BigInt(i * 32), 8n] })),
          { nr: SYS.getpid, args: [] },
          { nr: SYS.close, args: [99999n] },
        ]);
        t.read(addr, handlers);
        return r;
      });
      assert.equal(loopStats.batches, before + 1, 'the batch went through the loop');
      assert.equal(out.length, 32);
      assert.equal(out[30], BigInt(pid));
      assert.equal(out[31], -9n, 'EBADF in place');
      assert.ok(out.slice(0, 30).every((r) => r === 0n), `rt_sigaction results ${out.slice(0, 30).join(',')}`);
      // What the calls wrote: python's own SIGINT handler, SIG_DFL for SIGKILL.
      assert.notEqual(handlers.readBigUInt64LE(1 * 32), 0n, 'SIGINT has python\'s handler');
      assert.equal(handlers.readBigUInt64LE(8 * 32), 0n, 'SIGKILL is SIG_DFL');
      const short = injectSyscalls(t, pid, [{ nr: SYS.getpid, args: [] }]);
      assert.deepEqual(short, [BigInt(pid)]);
      assert.equal(loopStats.batches, before + 1, 'a short batch is single-stepped');
      assert.equal(readFileSync(`/proc/${pid}/maps`, 'utf8'), mapsBefore, 'the loop page is unmapped');
      assert.deepEqual(t.regs(pid), regsBefore);
    } finally {
      t.release();
    }
    await new Promise((r) => setTimeout(r, 100));
    assert.match(readFileSync(`/proc/${pid}/stat`, 'utf8'), /\) [SR] /, 'it runs on');
  } finally {
    child.kill('SIGKILL');
  }
});

// A W^X seccomp policy may kill the process for the loop's writable and executable page: under
// any filter the batch is single-stepped, with the same results.
test('under a seccomp filter a long batch is single-stepped, not looped', async () => {
  const out = join(tmpdir(), `stasis-inject-seccomp-${process.pid}.txt`);
  const child = spawnDetached([buildFixture('restore-caps'), 'seccomp'], { log: out });
  try {
    await waitFor('the filter', () => { try { return readFileSync(out, 'utf8').includes('ready'); } catch { return false; } });
    const t = freeze(child.pid);
    try {
      const before = loopStats.batches;
      const r = injectSyscalls(t, child.pid, Array.from({ length: 20 }, () => ({ nr: SYS.getpid, args: [] })));
      assert.deepEqual(r, Array.from({ length: 20 }, () => BigInt(child.pid)));
      assert.equal(loopStats.batches, before, 'no loop page under seccomp');
    } finally {
      t.release();
    }
  } finally {
    child.kill();
    rmSync(out, { force: true });
  }
});
