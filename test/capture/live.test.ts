/**
 * Live snapshots are consistent: a program that rewrites its memory all the time is captured as
 * one instant (fork snapshot and userfaultfd write-protect), keeps running, and ends up untraced.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached } from '../helpers/spawn';
import { checkpoint, type CheckpointOptions } from '../../electron/engine/capture';
import { probeKernelFeatures } from '../../electron/engine/native';
import { PAGE_SIZE } from '../../electron/engine/store/api';
import { tempDir, tempStore, waitFor, waitForFile, procStatus } from './common';

const PAGES = 2048;

describe('live snapshot of a program that keeps writing', () => {
  const modes: { name: string; snapshot: NonNullable<CheckpointOptions['snapshot']>; freeze: string; threads: number; skip?: boolean }[] = [
    { name: 'fork snapshot', snapshot: 'fork', freeze: 'snapshot', threads: 0 },
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
          assert.ok(clock !== undefined && clock > 0n, `new page ${i} of ${k} is missing or empty: not a prefix`);
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
