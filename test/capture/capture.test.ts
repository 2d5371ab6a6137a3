/**
 * Capture against real processes and the real store: bytes equal what the program reports about
 * itself, incremental chains hold exactly the changed pages, every thread's registers, targets
 * keep running untraced, kill mode, and the snapshot child stays invisible to the target's family.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached, type DetachedProcess } from '../helpers/spawn';
import { checkpoint } from '../../electron/engine/capture';
import { REG, probeKernelFeatures } from '../../electron/engine/native';
import { PAGE_SIZE, type Store } from '../../electron/engine/store/api';
import { tempDir, tempStore, waitFor, waitForFile, procStatus, readInfo } from './common';

const PAGES = 300;

/** The region's bytes as stored in checkpoint id (null pages = never stored). */
function regionFromStore(store: Store, id: number, start: bigint, pages: number): (Buffer | null)[] {
  const out: (Buffer | null)[] = new Array(pages).fill(null);
  const end = start + BigInt(pages * PAGE_SIZE);
  for (const run of store.materialize(id)) {
    for (let i = 0; i < run.pages; i++) {
      const va = run.vaddr + BigInt(i * PAGE_SIZE);
      if (va < start || va >= end) continue;
      const idx = Number((va - start) / BigInt(PAGE_SIZE));
      out[idx] = run.data ? run.data.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE) : Buffer.alloc(PAGE_SIZE);
    }
  }
  return out;
}

function assertRegionEquals(got: (Buffer | null)[], file: Buffer, what: string): void {
  for (let i = 0; i < got.length; i++) {
    const want = file.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE);
    if (i % 10 === 9) {
      assert.equal(got[i], null, `${what}: page ${i} was never touched and must not be stored`);
      continue;
    }
    assert.ok(got[i], `${what}: page ${i} missing`);
    assert.ok(got[i]!.equals(want), `${what}: page ${i} differs from what the program wrote`);
  }
}

// The default for a single-threaded target is pre-copy where the kernel has uffd-wp async, else fork.
const singleModes = [
  { name: 'default (pre-copy)', snapshot: 'auto', freeze: 'pre-copy', skip: !probeKernelFeatures().uffdWpAsync },
  { name: 'fork snapshot', snapshot: 'fork', freeze: 'snapshot', skip: false },
] as const;

for (const sm of singleModes) describe(`capture of a single-threaded program, ${sm.name}`, { skip: sm.skip }, () => {
  let target: DetachedProcess;
  let side: ReturnType<typeof tempDir>;
  let st: ReturnType<typeof tempStore>;

  before(async () => {
    side = tempDir('capture-pattern');
    st = tempStore();
    target = spawnDetached([buildFixture('capture-pattern'), side.dir, String(PAGES)]);
    await waitForFile(join(side.dir, 'info.txt'));
  });
  after(() => {
    target.kill();
    st.cleanup();
    side.cleanup();
  });

  test('full checkpoint holds exactly the bytes the program wrote; the program runs on untraced', async () => {
    const info = readInfo(side.dir);
    const r = checkpoint(st.store, target.pid, { full: true, label: 'first', snapshot: sm.snapshot });
    assert.equal(r.mode, 'full');
    assert.equal(r.freeze, sm.freeze);
    assert.equal(r.dirtyTracking, 'hash'); // no soft-dirty on this kernel
    assert.ok(r.frozenMs > 0 && r.frozenMs < r.durationMs, `frozen ${r.frozenMs} ms of ${r.durationMs} ms`);
    assert.ok(r.pagesWritten > 0 && r.bytesWritten > 0);
    const got = regionFromStore(st.store, r.id, info.region, info.pages);
    assertRegionEquals(got, readFileSync(join(side.dir, 'gen-0.bin')), 'gen 0');

    // Heap contents and the saved state match the process.
    const heapPage = st.store.readPage(r.id, info.heap & ~4095n)!;
    const off = Number(info.heap & 4095n);
    assert.equal(heapPage.subarray(off, off + 30).toString('latin1').split('\0')[0], `stasis-heap-marker-${target.pid}`);
    const state = st.store.getState(r.id);
    assert.equal(state.pid, target.pid);
    assert.equal(state.threads.length, 1);
    assert.ok(state.threads[0]!.xstate.length > 0);
    assert.ok(state.mm.brk >= state.mm.startBrk);
    assert.ok(state.mappings.some((m) => m.start === info.region && m.kind === 'anon'));
    assert.ok(state.sigactions.some((s) => s.signo === 10 && s.handler > 1n), 'SIGUSR1 handler captured');
    assert.equal(state.fds.find((f) => f.fd === 0)?.target, '/dev/null');

    // Untraced and still making progress.
    await waitFor('ticks to advance', () => readInfo(side.dir).ticks > info.ticks + 2);
    const ps = procStatus(target.pid)!;
    assert.equal(ps.tracerPid, 0);
    assert.notEqual(ps.state, 't');
    assert.notEqual(ps.state, 'T');
    assert.ok(target.alive());
  });

  test('incremental chain stores exactly the pages the program changed', async () => {
    const info = readInfo(side.dir);
    const base = checkpoint(st.store, target.pid, { full: true, snapshot: sm.snapshot });
    let prev = base.id;
    for (let gen = info.gen + 1; gen <= info.gen + 2; gen++) {
      target.kill('SIGUSR1');
      await waitFor(`gen ${gen}`, () => readInfo(side.dir).gen === gen);
      const changed = readFileSync(join(side.dir, `changed-${gen}.txt`), 'utf8').trim().split('\n').map(Number);
      const r = checkpoint(st.store, target.pid, { snapshot: sm.snapshot });
      assert.equal(r.mode, 'incremental');
      assert.equal(r.freeze, sm.freeze);
      // Pre-copy keeps its userfaultfd between checkpoints of one engine: only written pages are read.
      assert.equal(r.dirtyTracking, sm.freeze === 'pre-copy' ? 'uffd-wp' : 'hash');
      // Page by page, the region differs from the previous checkpoint exactly where the program wrote.
      const before = regionFromStore(st.store, prev, info.region, info.pages);
      const now = regionFromStore(st.store, r.id, info.region, info.pages);
      const differing = now.flatMap((b, i) => ((b === null) !== (before[i] === null) || (b && !b.equals(before[i]!)) ? [i] : []));
      assert.deepEqual(differing, changed, `gen ${gen}: pages that differ`);
      // The store's own diff agrees (the region's VMA may be merged with a neighbour: at least these).
      const d = st.store.diff(prev, r.id);
      assert.ok(d.changedPages >= changed.length);
      // Only a handful of other pages (stack, stdio buffers) may change besides.
      assert.ok(r.pagesWritten >= changed.length && r.pagesWritten <= changed.length + 12, `pagesWritten ${r.pagesWritten} vs ${changed.length} changed`);
      assertRegionEquals(regionFromStore(st.store, r.id, info.region, info.pages), readFileSync(join(side.dir, `gen-${gen}.bin`)), `gen ${gen}`);
      prev = r.id;
    }
  });
});

describe('capture of a multi-threaded program', () => {
  test('every thread is frozen and its registers captured; afterwards all run untraced', async () => {
    const side = tempDir('capture-threads');
    const st = tempStore();
    const target = spawnDetached([buildFixture('capture-threads'), side.dir, '3']);
    try {
      const txt = await waitFor('threads.txt', () => {
        const p = join(side.dir, 'threads.txt');
        return existsSync(p) && readFileSync(p, 'utf8').includes('ready') ? readFileSync(p, 'utf8') : null;
      });
      const workers = txt.trim().split('\n').filter((l) => l !== 'ready').map((l) => l.split(' ').map(Number) as [number, number]);
      const r = checkpoint(st.store, target.pid);
      assert.equal(r.freeze, 'all-threads');
      assert.equal(r.threads, 4);
      assert.ok(r.warnings.some((w) => w.includes('multi-threaded')));
      const state = st.store.getState(r.id);
      assert.deepEqual(state.threads.map((t) => t.tid).sort((a, b) => a - b), [target.pid, ...workers.map((w) => w[0])].sort((a, b) => a - b));
      for (const [tid, k] of workers) {
        const th = state.threads.find((t) => t.tid === tid)!;
        assert.equal(th.regs[REG.r12], 0x5157a51500000000n | BigInt(k), `r12 of thread ${tid}`);
        assert.equal(th.regs[REG.r13], 0xc0ffee0000000000n | BigInt(k), `r13 of thread ${tid}`);
        assert.ok(th.regs[REG.fs_base]! !== 0n, 'fs_base (TLS) captured');
        assert.ok(Buffer.from(th.xstate, 'base64').length >= 512);
      }
      // Asking for the fork snapshot does not silently do something else: the warning says why not.
      const f = checkpoint(st.store, target.pid, { snapshot: 'fork' });
      assert.equal(f.freeze, 'all-threads');
      assert.ok(f.warnings.some((w) => /fork snapshot .* needs a single-threaded process/.test(w)), f.warnings.join('; '));
      for (const tid of [target.pid, ...workers.map((w) => w[0])]) {
        const s = readFileSync(`/proc/${target.pid}/task/${tid}/status`, 'utf8');
        assert.match(s, /TracerPid:\s+0\n/);
        assert.doesNotMatch(s, /State:\s+[tT]/);
      }
    } finally {
      target.kill();
      st.cleanup();
      side.cleanup();
    }
  });
});

test('a process with a child says that the child is not in the checkpoint; one without does not', async () => {
  const st = tempStore();
  const parent = spawnDetached(['/bin/sh', '-c', 'sleep 100 & wait']);
  try {
    const kid = Number(await waitFor('the child', () => {
      try { return readFileSync(`/proc/${parent.pid}/task/${parent.pid}/children`, 'utf8').trim() || null; } catch { return null; }
    }));
    const r = checkpoint(st.store, parent.pid);
    assert.ok(r.warnings.some((w) => w.includes(`1 child process (${kid} sleep) not in the checkpoint`)), r.warnings.join('; '));
    const alone = checkpoint(st.store, kid);
    assert.ok(!alone.warnings.some((w) => /child process/.test(w)), alone.warnings.join('; '));
  } finally {
    parent.kill();
    st.cleanup();
  }
});

describe('checkpoint modes', () => {
  test('--kill: the process is killed only after the checkpoint is stored', async () => {
    const side = tempDir('capture-kill');
    const st = tempStore();
    const target = spawnDetached([buildFixture('capture-pattern'), side.dir, '20']);
    try {
      await waitForFile(join(side.dir, 'info.txt'));
      const r = checkpoint(st.store, target.pid, { mode: 'kill' });
      assert.equal(r.killed, true);
      assert.equal(r.freeze, 'all-threads');
      assert.ok(st.store.get(r.id));
      assert.deepEqual(await target.waitExit(5000), { code: null, signal: 9 });
    } finally {
      target.kill();
      st.cleanup();
      side.cleanup();
    }
  });

  for (const sm of singleModes) test(`${sm.name}: no zombie and no SIGCHLD left for a parent that waits for its own child`, { skip: sm.skip }, async () => {
    const side = tempDir('capture-parent');
    const st = tempStore();
    const target = spawnDetached([buildFixture('capture-parent'), side.dir]);
    try {
      const kid = Number((await waitForFile(join(side.dir, 'child.txt'))).trim());
      const snaps = [];
      for (let i = 0; i < 3; i++) snaps.push(checkpoint(st.store, target.pid, { snapshot: sm.snapshot }));
      assert.ok(snaps.every((s) => s.freeze === sm.freeze));
      // No child of the target other than its own is left (zombie or not).
      const children = (readFileSync(`/proc/${target.pid}/task/${target.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)).map(Number);
      assert.deepEqual(children, [kid]);
      process.kill(kid, 'SIGUSR1');
      const report = await waitForFile(join(side.dir, 'report.txt'));
      assert.equal(report, `sigchld 1\nreaped ${kid} 3\n`);
      assert.deepEqual(await target.waitExit(5000), { code: 0, signal: null });
    } finally {
      target.kill();
      st.cleanup();
      side.cleanup();
    }
  });
});
