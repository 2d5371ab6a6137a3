/**
 * Live snapshots are consistent: a program that rewrites its memory all the time is captured as
 * one instant (fork snapshot, pre-copy and userfaultfd write-protect), keeps running, and ends up
 * untraced.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached, type DetachedProcess } from '../helpers/spawn';
import { checkpoint, closeTrackers, type CheckpointOptions } from '../../electron/engine/capture';
import { trackerCount } from '../../electron/engine/capture/tracking';
import { probeKernelFeatures } from '../../electron/engine/native';
import { PAGE_SIZE, type Store } from '../../electron/engine/store/api';
import { tempDir, tempStore, waitFor, waitForFile, procStatus } from './common';

const PAGES = 2048;

describe('live snapshot of a program that keeps writing', () => {
  const modes: { name: string; snapshot: NonNullable<CheckpointOptions['snapshot']>; freeze: string; threads: number; skip?: boolean }[] = [
    { name: 'fork snapshot', snapshot: 'fork', freeze: 'snapshot', threads: 0 },
    { name: 'pre-copy', snapshot: 'precopy', freeze: 'pre-copy', threads: 0, skip: !probeKernelFeatures().uffdWpAsync },
    { name: 'pre-copy, 3 threads, writes from a non-main thread', snapshot: 'precopy', freeze: 'pre-copy', threads: 3, skip: !probeKernelFeatures().uffdWpAsync },
    { name: 'userfaultfd write-protect', snapshot: 'uffd', freeze: 'uffd-wp', threads: 0, skip: !probeKernelFeatures().uffdWp },
    { name: 'userfaultfd write-protect, 3 threads, writes from a non-main thread', snapshot: 'uffd', freeze: 'uffd-wp', threads: 3, skip: !probeKernelFeatures().uffdWp },
  ];
  for (const m of modes) {
    test(`${m.name}: every page from one instant, target keeps running untraced`, { skip: m.skip }, async () => {
      const side = tempDir('capture-live');
      const st = tempStore();
      const target = spawnDetached([buildFixture('capture-mutator'), side.dir, String(PAGES), String(m.threads)]);
      try {
        const info = await waitForFile(join(side.dir, 'info.txt'));
        await waitFor('a few sweeps', () => existsSync(join(side.dir, 'gen.txt')));
        const [, addr, pages] = /region (\w+) (\d+)/.exec(info)!;
        const start = BigInt(`0x${addr}`);
        for (let round = 0; round < 2; round++) {
          const r = checkpoint(st.store, target.pid, { snapshot: m.snapshot });
          assert.equal(r.freeze, m.freeze);
          assert.equal(r.threads, Math.max(1, m.threads + 1));
          const firsts: bigint[] = [];
          let torn = 0;
          for (const run of st.store.materialize(r.id)) {
            for (let i = 0; i < run.pages; i++) {
              const va = run.vaddr + BigInt(i * PAGE_SIZE);
              if (va < start || va >= start + BigInt(Number(pages) * PAGE_SIZE)) continue;
              const first = run.data ? run.data.readBigUInt64LE(i * PAGE_SIZE) : 0n;
              const last = run.data ? run.data.readBigUInt64LE(i * PAGE_SIZE + PAGE_SIZE - 8) : 0n;
              // The freeze may land between the two stores of one page: at most one such page, torn by one sweep.
              if (first !== last) {
                torn++;
                assert.equal(first, last + 1n, `page ${firsts.length} is torn by more than one sweep`);
              }
              firsts.push(first);
            }
          }
          assert.equal(firsts.length, Number(pages));
          assert.ok(torn <= 1, `${torn} torn pages`);
          const max = firsts[0]!;
          const min = firsts[firsts.length - 1]!;
          assert.ok(max - min <= 1n, `spread ${max - min} across the region: not one instant`);
          for (let i = 1; i < firsts.length; i++) assert.ok(firsts[i]! <= firsts[i - 1]!, `page ${i} is newer than page ${i - 1}`);
        }
        const gen = Number(readFileSync(join(side.dir, 'gen.txt'), 'utf8'));
        await waitFor('sweeps to continue', () => Number(readFileSync(join(side.dir, 'gen.txt'), 'utf8')) > gen);
        assert.equal(procStatus(target.pid)!.tracerPid, 0);
      } finally {
        target.kill();
        st.cleanup();
        side.cleanup();
      }
    });
  }
});

describe('a live snapshot leaves out memory populated after its instant', () => {
  const modes: { snapshot: NonNullable<CheckpointOptions['snapshot']>; skip?: boolean }[] = [
    { snapshot: 'fork' },
    { snapshot: 'precopy', skip: !probeKernelFeatures().uffdWpAsync },
    { snapshot: 'uffd', skip: !probeKernelFeatures().uffdWp },
  ];
  for (const m of modes) {
    test(`${m.snapshot}: new pages are a prefix no newer than the old region's newest clock`, { skip: m.skip }, async () => {
      const side = tempDir('capture-grow');
      const st = tempStore();
      const OLD = 256;
      const NEW = 16384;
      const target = spawnDetached([buildFixture('capture-grower'), side.dir, String(OLD), String(NEW)]);
      try {
        const info = await waitForFile(join(side.dir, 'info.txt'));
        await waitForFile(join(side.dir, 'growing.txt'));
        const [, oldAddr, , newAddr] = /regions (\w+) (\d+) (\w+) (\d+)/.exec(info)!;
        const oldStart = BigInt(`0x${oldAddr}`);
        const newStart = BigInt(`0x${newAddr}`);
        const r = checkpoint(st.store, target.pid, { snapshot: m.snapshot });
        let oldMax = 0n;
        const fresh = new Map<number, bigint>();
        for (const run of st.store.materialize(r.id)) {
          for (let i = 0; i < run.pages; i++) {
            const va = run.vaddr + BigInt(i * PAGE_SIZE);
            const clock = run.data ? run.data.readBigUInt64LE(i * PAGE_SIZE) : 0n;
            if (va >= oldStart && va < oldStart + BigInt(OLD * PAGE_SIZE) && clock > oldMax) oldMax = clock;
            if (va >= newStart && va < newStart + BigInt(NEW * PAGE_SIZE)) fresh.set(Number((va - newStart) / BigInt(PAGE_SIZE)), clock);
          }
        }
        const k = fresh.size;
        assert.ok(k > 0 && k < NEW, `${k} new pages saved: the capture should land while the region grows`);
        let newMax = 0n;
        for (let i = 0; i < k; i++) {
          const clock = fresh.get(i);
          // The last one may be empty: the freeze can land after the kernel populated the page for
          // the program's store and before the store itself ran.
          assert.ok(clock !== undefined && (clock > 0n || i === k - 1), `new page ${i} of ${k} is missing or empty: not a prefix`);
          if (clock > newMax) newMax = clock;
        }
        assert.ok(newMax <= oldMax + 4n, `new page clock ${newMax} is newer than the old region's ${oldMax}: populated after the snapshot's instant`);
      } finally {
        target.kill();
        st.cleanup();
        side.cleanup();
      }
    });
  }
});

const TWIN_PAGES = 8192;

/**
 * Runs body against capture-twins (two arrays of TWIN_PAGES pages written identically, a pause of
 * usec after every 2000 writes) with a store; `diff(id)` is how many bytes the arrays differ in
 * checkpoint id (one instant: at most the one being written at the freeze). Checks the program ends
 * up untraced.
 */
async function withTwins(usec: number, body: (st: ReturnType<typeof tempStore>, pid: number, diff: (id: number) => number) => void): Promise<void> {
  const side = tempDir('capture-twins');
  const st = tempStore();
  const target = spawnDetached([buildFixture('capture-twins'), side.dir, String(TWIN_PAGES), String(usec)]);
  try {
    const [, aHex, bHex] = /twins (\w+) (\w+)/.exec(await waitForFile(join(side.dir, 'info.txt')))!;
    body(st, target.pid, (id) => twinDifference(st.store, id, BigInt(`0x${aHex}`), BigInt(`0x${bHex}`), TWIN_PAGES));
    assert.equal(procStatus(target.pid)!.tracerPid, 0);
  } finally {
    closeTrackers();
    target.kill();
    st.cleanup();
    side.cleanup();
  }
}

function twinDifference(store: Store, id: number, a: bigint, b: bigint, pages: number): number {
  const len = BigInt(pages * PAGE_SIZE);
  const A = Buffer.alloc(pages * PAGE_SIZE);
  const B = Buffer.alloc(pages * PAGE_SIZE);
  for (const run of store.materialize(id)) {
    if (!run.data) continue; // zero pages: both arrays hold random bytes
    const end = run.vaddr + BigInt(run.pages * PAGE_SIZE);
    for (const [base, buf] of [[a, A], [b, B]] as const) {
      const s = run.vaddr > base ? run.vaddr : base;
      const e = end < base + len ? end : base + len;
      if (s < e) run.data.copy(buf, Number(s - base), Number(s - run.vaddr), Number(e - run.vaddr));
    }
  }
  let diff = 0;
  for (let i = 0; i < A.length; i++) if (A[i] !== B[i]) diff++;
  return diff;
}

describe('a program writing scattered bytes faster than a live read: every checkpoint is one instant', () => {
  // 2000 writes per 20 ms over 2 x 8192 pages: thousands of scattered written pages per pre-copy
  // round, more than one PAGEMAP_SCAN returns (this found walk_end going stale after the kernel
  // refills its 512-region buffer: 6 of 8 pre-copy images were inconsistent before the fix).
  const modes: { snapshot: NonNullable<CheckpointOptions['snapshot']>; skip: boolean }[] = [
    { snapshot: 'precopy', skip: !probeKernelFeatures().uffdWpAsync },
    { snapshot: 'fork', skip: false },
    { snapshot: 'uffd', skip: !probeKernelFeatures().uffdWp },
  ];
  for (const m of modes) {
    test(`${m.snapshot}: twin arrays agree in every checkpoint, fresh and tracked`, { skip: m.skip }, () => withTwins(20_000, (st, pid, diff) => {
      for (let k = 0; k < 6; k++) {
        if (k < 4) closeTrackers(); // a fresh userfaultfd each time, as the CLI; then tracked, as the app
        const r = checkpoint(st.store, pid, { snapshot: m.snapshot, full: k === 0 });
        const d = diff(r.id);
        assert.ok(d <= 1, `checkpoint ${k + 1} (${r.mode}, ${r.dirtyTracking}): the arrays differ in ${d} bytes, at most the one being written at the freeze may`);
      }
    }));
  }
});

test('a program that writes faster than pre-copy reads is checkpointed with the fork snapshot instead, said in a warning, still one instant', { skip: !probeKernelFeatures().uffdWpAsync }, () => withTwins(0, (st, pid, diff) => {
  // No pause at all: millions of scattered writes a second over 64 MiB, as long as the program
  // gets a CPU. On a loaded machine it may not get one for a whole live read, and pre-copy then
  // finishes normally: every checkpoint must be consistent, and at least one of a few must give way.
  let gaveWay = 0;
  for (let k = 0; k < 4 && gaveWay < 2; k++) {
    closeTrackers();
    const r = checkpoint(st.store, pid, { full: k === 0 });
    const d = diff(r.id);
    assert.ok(d <= 1, `${r.mode} (${r.freeze}): the arrays differ in ${d} bytes`);
    if (r.freeze !== 'snapshot') continue;
    gaveWay++;
    assert.ok(r.warnings.some((w) => /wrote faster than its memory could be read/.test(w)), r.warnings.join('; '));
    // Each page once: no page read live and again at the freeze.
    assert.ok(r.pagesWritten < TWIN_PAGES * 2 + 1024, `${r.pagesWritten} pages written for ${TWIN_PAGES * 2}`);
  }
  assert.ok(gaveWay > 0, 'in the default mode pre-copy gave way to the fork snapshot at least once in 4 checkpoints');
  // Asked for explicitly, pre-copy stays, and what was written since the last round (thousands of
  // pages here) is read from a fork snapshot taken at the freeze.
  const p = checkpoint(st.store, pid, { snapshot: 'precopy' });
  assert.equal(p.freeze, 'pre-copy');
  const d = diff(p.id);
  assert.ok(d <= 1, `explicit pre-copy: the arrays differ in ${d} bytes`);
}));

/** Checks capture-churn's regions in checkpoint id after its SIGUSR1 (see the fixture). */
function assertChurned(store: Store, id: number, a: bigint, b: bigint, d: bigint, pages: number): void {
  const page = (va: bigint): Buffer | null => store.readPage(id, va);
  const half = pages / 2;
  for (let i = 0; i < pages; i++) {
    const pd = page(d + BigInt(i * PAGE_SIZE));
    assert.ok(pd && pd.every((x) => x === 0x64), `D page ${i} never changed: still 'd'`);
    const pa = page(a + BigInt(i * PAGE_SIZE));
    if (i < half) assert.ok(pa === null || pa.every((x) => x === 0), `A page ${i} was dropped before the freeze: absent or zeros, not 'a'`);
    else assert.ok(pa && pa.every((x) => x === 0x41), `A page ${i} holds 'A' as at the freeze`);
    const pc = page(b + BigInt(i * PAGE_SIZE));
    if (i < half) assert.ok(pc && pc.every((x) => x === 0x63), `C page ${i} holds 'c'`);
    else assert.ok(pc === null || pc.every((x) => x === 0), `C page ${i} was never written: no 'b' from the unmapped region`);
  }
  // The saved address space is the one at the freeze.
  const c = store.getState(id).mappings.find((m) => m.start <= b && b < m.end);
  assert.ok(c && c.kind === 'anon');
}

describe('pre-copy: the checkpoint is the memory at the freeze, not as read while the program ran', () => {
  const churn = async (pages: number): Promise<{ target: DetachedProcess; side: ReturnType<typeof tempDir>; a: bigint; b: bigint; d: bigint; change: () => void }> => {
    const side = tempDir('capture-churn');
    const target = spawnDetached([buildFixture('capture-churn'), side.dir, String(pages)]);
    const [, aHex, bHex, dHex] = /regions (\w+) (\w+) \d+ (\w+)/.exec(await waitForFile(join(side.dir, 'info.txt')))!;
    const changed = join(side.dir, 'changed.txt');
    // Synchronous on purpose: it runs inside a capture's phase callback.
    const change = (): void => {
      process.kill(target.pid, 'SIGUSR1');
      const end = Date.now() + 10_000;
      while (!existsSync(changed) && Date.now() < end) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
      assert.ok(existsSync(changed), 'the program changed its memory');
    };
    return { target, side, a: BigInt(`0x${aHex}`), b: BigInt(`0x${bHex}`), d: BigInt(`0x${dHex}`), change };
  };

  test('pages dropped (MADV_DONTNEED), rewritten, unmapped and remapped after the live read', { skip: !probeKernelFeatures().uffdWpAsync }, async () => {
    const st = tempStore();
    const PAGES = 64;
    const { target, side, a, b, d, change } = await churn(PAGES);
    try {
      // Between the live read and the freeze: make the program change what was just read.
      const r = checkpoint(st.store, target.pid, { snapshot: 'precopy', onPhase: (p) => { if (p === 'live') change(); } });
      assert.equal(r.freeze, 'pre-copy');
      assertChurned(st.store, r.id, a, b, d, PAGES);
      assert.equal(procStatus(target.pid)!.tracerPid, 0);
    } finally {
      target.kill();
      st.cleanup();
      side.cleanup();
    }
  });

  test('between two checkpoints of one engine (uffd-wp dirty tracking), including page tables the kernel frees', { skip: !probeKernelFeatures().uffdWpAsync }, async () => {
    const st = tempStore();
    // 4 MiB halves: MADV_DONTNEED of a whole 2 MiB-aligned range lets the kernel free its page table.
    const PAGES = 2048;
    const { target, side, a, b, d, change } = await churn(PAGES);
    try {
      const full = checkpoint(st.store, target.pid);
      assert.equal(full.freeze, 'pre-copy');
      change();
      const r = checkpoint(st.store, target.pid);
      assert.equal(r.mode, 'incremental');
      assert.equal(r.dirtyTracking, 'uffd-wp');
      assertChurned(st.store, r.id, a, b, d, PAGES);
    } finally {
      target.kill();
      st.cleanup();
      side.cleanup();
    }
  });
});

describe('pre-copy of an unprivileged program', () => {
  // With vm.unprivileged_userfaultfd=0 such a target only gets a user-mode-only userfaultfd; in
  // async mode the kernel must still resolve its own writes (here: read() into protected pages).
  test('its system calls that write into protected memory keep working, and it is captured live', { skip: !probeKernelFeatures().uffdWpAsync }, async () => {
    const side = tempDir('capture-kwrite');
    const st = tempStore();
    chmodSync(side.dir, 0o777);
    const target = spawnDetached(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', buildFixture('capture-kwrite'), side.dir, '512']);
    try {
      await waitForFile(join(side.dir, 'info.txt'));
      await waitForFile(join(side.dir, 'count.txt'));
      for (let i = 0; i < 3; i++) {
        const r = checkpoint(st.store, target.pid);
        assert.equal(r.freeze, 'pre-copy');
      }
      const count = Number(readFileSync(join(side.dir, 'count.txt'), 'utf8'));
      await waitFor('the program to go on', () => existsSync(join(side.dir, 'error.txt')) || Number(readFileSync(join(side.dir, 'count.txt'), 'utf8')) > count + 4096);
      assert.ok(!existsSync(join(side.dir, 'error.txt')), existsSync(join(side.dir, 'error.txt')) ? readFileSync(join(side.dir, 'error.txt'), 'utf8') : '');
      assert.equal(procStatus(target.pid)!.tracerPid, 0);
    } finally {
      target.kill();
      st.cleanup();
      side.cleanup();
    }
  });
});

describe('a program whose memory another userfaultfd already has', () => {
  test('the default falls back to the fork snapshot; pre-copy asked for explicitly says why not', { skip: !probeKernelFeatures().uffdWpAsync }, async () => {
    const side = tempDir('capture-ownuffd');
    const st = tempStore();
    const PAGES = 256;
    const target = spawnDetached([buildFixture('capture-ownuffd'), side.dir, String(PAGES)]);
    try {
      const [, hex] = /region (\w+)/.exec(await waitForFile(join(side.dir, 'info.txt')))!;
      const region = BigInt(`0x${hex}`);
      assert.throws(() => checkpoint(st.store, target.pid, { snapshot: 'precopy' }), (e: Error & { code?: string }) => e.code === 'UNSUPPORTED' && /another userfaultfd/.test(e.message));
      assert.equal(st.store.list().length, 0, 'nothing saved by the refused checkpoint');
      const r = checkpoint(st.store, target.pid);
      assert.equal(r.freeze, 'snapshot');
      for (let i = 0; i < PAGES; i++) {
        const p = st.store.readPage(r.id, region + BigInt(i * PAGE_SIZE));
        assert.ok(p && p.every((x) => x === i % 251), `page ${i}`);
      }
      assert.equal(procStatus(target.pid)!.tracerPid, 0);
      assert.ok(target.alive());
    } finally {
      target.kill();
      st.cleanup();
      side.cleanup();
    }
  });
});

describe('a program with an io_uring (the kernel may write its buffers without a fault)', () => {
  const withTarget = async (when: 'now' | 'later', fn: (pid: number, region: bigint, side: string) => void): Promise<void> => {
    const side = tempDir('capture-iouring');
    const target = spawnDetached([buildFixture('capture-iouring'), side.dir, '128', when]);
    try {
      const [, hex] = /region (\w+)/.exec(await waitForFile(join(side.dir, 'info.txt')))!;
      fn(target.pid, BigInt(`0x${hex}`), side.dir);
      assert.equal(procStatus(target.pid)!.tracerPid, 0);
    } finally {
      target.kill();
      side.cleanup();
    }
  };
  const assertRegion = (store: Store, id: number, region: bigint): void => {
    for (let i = 0; i < 128; i++) {
      const p = store.readPage(id, region + BigInt(i * PAGE_SIZE));
      assert.ok(p && p.every((x) => x === i % 251), `page ${i}`);
    }
  };

  test('held from the start: the default uses the fork snapshot, pre-copy asked for says why not', { skip: !probeKernelFeatures().uffdWpAsync }, async () => {
    const st = tempStore();
    try {
      await withTarget('now', (pid, region) => {
        assert.throws(() => checkpoint(st.store, pid, { snapshot: 'precopy' }), (e: Error & { code?: string }) => e.code === 'UNSUPPORTED' && /io_uring/.test(e.message));
        const r = checkpoint(st.store, pid);
        assert.equal(r.freeze, 'snapshot');
        assertRegion(st.store, r.id, region);
      });
    } finally {
      st.cleanup();
    }
  });

  test('created during the live read: nothing read live is trusted, nothing is tracked afterwards', { skip: !probeKernelFeatures().uffdWpAsync }, async () => {
    const st = tempStore();
    try {
      await withTarget('later', (pid, region, dir) => {
        closeTrackers();
        const r = checkpoint(st.store, pid, {
          onPhase: (p) => {
            if (p !== 'live') return;
            process.kill(pid, 'SIGUSR1');
            const end = Date.now() + 10_000;
            while (!existsSync(join(dir, 'ring.txt')) && Date.now() < end) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
          },
        });
        assert.equal(r.freeze, 'pre-copy');
        assertRegion(st.store, r.id, region);
        assert.equal(trackerCount(), 0, 'no userfaultfd kept for a process with an io_uring');
      });
    } finally {
      st.cleanup();
    }
  });
});
