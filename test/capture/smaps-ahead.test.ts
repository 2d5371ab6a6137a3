// smaps read on the worker thread gives the same entries (addresses and VmFlags) as reading it here,
// for a stopped process, and it is the worker that answered (not the fallback read here).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { answered, arm, readAhead, warm } from '../../electron/engine/capture/smaps-ahead';
import { readSmaps } from '../../electron/engine/proc';
import { checkpoint } from '../../electron/engine/capture';
import { probeKernelFeatures, vmWrite } from '../../electron/engine/native';
import { tempStore, waitFor } from './common';

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

// A held checkpoint (a migration's last round) copies its pages while the smaps walk runs and
// applies the VmFlags only before its commit: the saved mappings must still carry the flags the
// process had while held, as read here while it is still held.
test('a held pre-copy checkpoint saves the VmFlags of the held process (applied after the page copy)', { skip: !probeKernelFeatures().uffdWpAsync }, async () => {
  const child = spawn('python3', ['-c', 'import mmap, time\nm = mmap.mmap(-1, 1 << 22)\nm[::4096] = b"x" * 1024\nprint("ready", flush=True)\nwhile True:\n    time.sleep(0.05)\n    if m[0] == 121: break\nm.madvise(mmap.MADV_DONTDUMP)\nprint("advised", flush=True)\ntime.sleep(60)'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const st = tempStore();
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  try {
    await waitFor('the fixture', () => out.includes('ready'));
    const pid = child.pid!;
    const first = checkpoint(st.store, pid, { full: true, snapshot: 'precopy' });
    // After the full round: a flag set between rounds must be in the held round's state.
    const at = readSmaps(pid).find((e) => e.end - e.start === 1n << 22n)!.start;
    vmWrite(pid, at, Buffer.from('y'));
    await waitFor('madvise', () => out.includes('advised'));
    const held = checkpoint(st.store, pid, { mode: 'hold', snapshot: 'precopy' });
    try {
      assert.equal(held.freeze, 'pre-copy');
      const now = readSmaps(pid);
      const saved = st.store.getState(held.id).mappings;
      assert.equal(st.store.get(held.id)?.parentId, first.id);
      assert.deepEqual(saved.map((m) => [m.start, m.end, m.vmFlags.join(' ')]), now.map((e) => [e.start, e.end, e.vmFlags.filter((f) => f !== 'uw').join(' ')]));
      assert.ok(saved.find((m) => m.start === at)?.vmFlags.includes('dd'), 'the flag set after the full round is saved');
    } finally {
      held.held?.resume();
    }
  } finally {
    child.kill('SIGKILL');
    st.cleanup();
  }
});

// A read armed before a freeze that never came (the capture failed first) must free the worker:
// the next read is the worker's, at once, not the fallback after its 5 s wait.
test('an armed read that is cancelled frees the worker for the next one', async () => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    warm();
    await new Promise((r) => setTimeout(r, 300));
    arm().cancel();
    const before = answered.count;
    const t0 = performance.now();
    const got = readAhead(child.pid!).take();
    assert.ok(got.length > 0);
    assert.equal(answered.count, before + 1, 'the worker answered');
    assert.ok(performance.now() - t0 < 4000, 'without waiting for the fallback');
  } finally {
    child.kill('SIGKILL');
  }
});
