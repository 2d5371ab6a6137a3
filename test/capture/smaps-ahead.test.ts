// smaps read on the worker thread gives the same entries (addresses and VmFlags) as reading it here,
// for a stopped process, and it is the worker that answered (not the fallback read here).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { answered, readAhead, warm } from '../../electron/engine/capture/smaps-ahead';
import { readSmaps } from '../../electron/engine/proc';

test('readAhead(pid).take() equals readSmaps(pid) for a stopped process', async () => {
  const child = spawn('python3', ['-c', 'import mmap, time\nm = mmap.mmap(-1, 1 << 24)\nm.madvise(mmap.MADV_DONTDUMP)\nm[::4096] = b"x" * 4096\ntime.sleep(60)'], { stdio: 'ignore' });
  try {
    warm();
    await new Promise((r) => setTimeout(r, 500));
    process.kill(child.pid!, 'SIGSTOP');
    const ahead = readAhead(child.pid!);
    const before = answered.count;
    const got = ahead.take();
    const here = readSmaps(child.pid!);
    assert.deepEqual(got.map((e) => [e.start, e.end, e.vmFlags.join(' ')]), here.map((e) => [e.start, e.end, e.vmFlags.join(' ')]));
    assert.ok(got.some((e) => e.vmFlags.includes('dd')), 'the DONTDUMP mapping is there with its flag');
    assert.equal(answered.count, before + 1, 'the worker read it');
  } finally {
    child.kill('SIGKILL');
  }
});
