// Memory exactness of restore, on the self-checking matrix fixture (restore-memmatrix.c): small
// VMAs with every protection (PROT_NONE, write-only and exec-only pages that held data), merged and
// mprotect-split VMAs, a 2 GiB sparse MAP_NORESERVE mapping, THP, a COW'd private file mapping,
// mremap'd, MADV_DONTNEED'd and MADV_FREE'd memory, SysV shm, shared file, /dev/shm and memfd
// mappings, mlock, private /dev/zero, a file mapping past EOF, MAP_GROWSDOWN, a 3 GiB mapping. The restored process compares every byte it set and reports
// PASS or the first wrong page. Each capture mode, full and incremental.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached } from '../helpers/spawn';
import { checkpoint, type CheckpointOptions } from '../../electron/engine/capture';
import { preflight, restore } from '../../electron/engine/restore';
import { aliasFor, sharedAliases } from '../../electron/engine/restore/shared-aliases';
import type { MappingState } from '../../electron/engine/state/process-state';
import { StasisError } from '../../shared/errors';
import { fileLines, isAlive, killQuietly, waitFor, withStore } from './helpers';

const matrix = buildFixture('restore-memmatrix');

async function ask(out: string, pid: number, sig: 'SIGUSR1' | 'SIGUSR2', want: RegExp): Promise<string> {
  const before = fileLines(out)[0];
  process.kill(pid, sig);
  await waitFor(`${sig} answer from ${pid}`, () => {
    const l = fileLines(out)[0];
    return l !== undefined && l !== before && want.test(l) && l.includes(`pid=${pid} `);
  }, 15_000);
  return fileLines(out)[0]!;
}

// The page fill copies on the addon's threads by default; `threads: 1` runs the same jobs one by one
// here (the path without the addon), and an lz4 store hands it decoded blocks beside raw ones.
const modes: Array<{ name: string; opts: CheckpointOptions; lz4?: boolean; threads?: string }> = [
  { name: 'pre-copy (default)', opts: {} },
  { name: 'fork snapshot', opts: { snapshot: 'fork' } },
  { name: 'uffd snapshot', opts: { snapshot: 'uffd' } },
  { name: 'frozen, --kill', opts: { mode: 'kill', snapshot: 'never' } },
  { name: 'lz4 store', opts: {}, lz4: true },
  { name: 'lz4 store, page fill on one thread', opts: {}, lz4: true, threads: '1' },
];

for (const m of modes) {
  test(`every byte comes back: ${m.name}, full and incremental`, async () => {
    const threads = process.env.STASIS_RESTORE_THREADS;
    if (m.threads) process.env.STASIS_RESTORE_THREADS = m.threads;
    await withStore(async (store, dir) => {
      if (m.lz4) store.setConfig({ compression: 'lz4' });
      const out = join(dir, 'mm.out');
      const t = spawnDetached([matrix, out], { cwd: dir });
      const pids: number[] = [];
      try {
        await waitFor('ready', () => /^ready/.test(fileLines(out)[0] ?? ''), 20_000);
        assert.match(await ask(out, t.pid, 'SIGUSR1', /^(PASS|FAIL)/), /^PASS/, 'the fixture checks itself before any checkpoint');
        const kill = m.opts.mode === 'kill';
        const full = checkpoint(store, t.pid, { ...m.opts, mode: 'leave-running' });
        await ask(out, t.pid, 'SIGUSR2', /^changed/);
        const incr = checkpoint(store, t.pid, m.opts);
        assert.equal(store.get(incr.id)!.mode, 'incremental');
        if (m.lz4) assert.ok(store.stats().compressionRatio > 1.05, `some blocks are stored compressed (ratio ${store.stats().compressionRatio})`);
        if (!kill) t.kill();
        await t.waitExit();
        for (const id of [incr.id, full.id]) {
          const pf = preflight(store, id);
          assert.equal(pf.ok, true, JSON.stringify(pf.items.filter((i) => !i.ok)));
          const r = restore(store, id, { samePid: false });
          pids.push(r.pid);
          const line = await ask(out, r.pid, 'SIGUSR1', /^(PASS|FAIL)/);
          assert.match(line, /^PASS/, `checkpoint #${id} (${id === full.id ? 'full' : 'incremental'}) restored with different bytes`);
          killQuietly(r.pid);
        }
      } finally {
        t.kill();
        for (const p of pids) killQuietly(p);
        rmSync(`/dev/shm/stasis-memmatrix-${t.pid}`, { force: true });
      }
    }).finally(() => {
      if (threads === undefined) delete process.env.STASIS_RESTORE_THREADS;
      else process.env.STASIS_RESTORE_THREADS = threads;
    });
  });
}

test('one memfd mapped twice with partly overlapping object ranges is refused by pre-flight and restore, not restored as two copies', async () => {
  await withStore(async (store, dir) => {
    const out = join(dir, 'mm.out');
    const t = spawnDetached([matrix, out, 'partial'], { cwd: dir });
    try {
      await waitFor('ready', () => /^ready/.test(fileLines(out)[0] ?? ''), 20_000);
      assert.match(await ask(out, t.pid, 'SIGUSR1', /^(PASS|FAIL)/), /^PASS/);
      const c = checkpoint(store, t.pid);
      const pf = preflight(store, c.id);
      assert.equal(pf.ok, false);
      const it = pf.items.find((i) => i.id === 'shared-aliases')!;
      assert.equal(it.ok, false);
      assert.match(it.reason, /Shared memory mapped at two addresses with partly overlapping ranges of one object \([0-9a-f]+-[0-9a-f]+ and [0-9a-f]+-[0-9a-f]+ share some pages of \/memfd:stasis-partial\)/);
      assert.ok(it.fix);
      assert.throws(() => restore(store, c.id, { samePid: false }), (e: unknown) => e instanceof StasisError && /Shared memory mapped at two addresses/.test(e.message));
    } finally {
      t.kill();
    }
  });
});

test('sharedAliases / aliasFor: a range inside another is an alias to recreate, a partial overlap is refused; mprotect-split pieces and other objects are neither', () => {
  const m = (start: number, pages: number, offset: number, inode: number, kind: MappingState['kind'] = 'shared-anon'): MappingState => ({
    start: BigInt(start) * 4096n, end: BigInt(start + pages) * 4096n, perms: 'rw-s', offset: BigInt(offset) * 4096n,
    dev: '00:01', inode, path: '/dev/zero', deleted: true, kind, vmFlags: [],
  });
  assert.deepEqual(sharedAliases([m(100, 2, 0, 7), m(102, 2, 2, 7), m(200, 4, 0, 8)]), []);
  assert.deepEqual(sharedAliases([m(100, 4, 0, 7, 'file-shared'), m(300, 4, 0, 7, 'file-shared')]), [], 'a shared file mapped twice is the same file again at restore');
  assert.deepEqual(aliasFor([m(100, 2, 0, 7), m(102, 2, 2, 7), m(200, 4, 0, 8)]), new Map());
  const inside = [m(100, 8, 0, 7), m(300, 1, 6, 7)];
  assert.deepEqual(sharedAliases(inside), []);
  assert.deepEqual(aliasFor(inside), new Map([[300n * 4096n, 106n * 4096n]]), 'recreated from page 6 of the primary');
  // The same range twice: the second is an alias of the first.
  assert.deepEqual(aliasFor([m(500, 4, 0, 9), m(100, 4, 0, 9)]), new Map([[100n * 4096n, 500n * 4096n]]));
  const partial = sharedAliases([m(100, 4, 0, 7), m(300, 4, 2, 7)]);
  assert.equal(partial.length, 1);
  assert.equal(partial[0]!.b.start, 300n * 4096n);
  // A long first piece reaching past a short second one still catches a third that overlaps it partly.
  assert.equal(sharedAliases([m(100, 8, 0, 7), m(200, 1, 8, 7), m(300, 4, 6, 7)]).length, 1);
});

test('restore self-check: a page that does not read back as the checkpoint holds fails the restore (nothing left running)', async () => {
  await withStore(async (store, dir) => {
    const out = join(dir, 'mm.out');
    const t = spawnDetached([matrix, out, 'file'], { cwd: dir });
    try {
      await waitFor('ready', () => /^ready/.test(fileLines(out)[0] ?? ''), 20_000);
      // The check reads the MADV_DONTNEED'd pages: they map the zero page, saved as a zero run
      // whose pages restore leaves alone (fresh anonymous memory is zero).
      await ask(out, t.pid, 'SIGUSR1', /^PASS/);
      const c = checkpoint(store, t.pid, { snapshot: 'never' });
      const anon = store.getState(c.id).mappings.filter((m) => m.kind === 'anon');
      const zeroRun = [...store.materialize(c.id)].find((r) => !r.data && anon.some((m) => m.start <= r.vaddr && r.vaddr < m.end));
      assert.ok(zeroRun, 'the checkpoint has a zero run in anonymous memory');
      let stub = 0;
      assert.throws(
        () => restore(store, c.id, { samePid: false }, {
          afterStep: (step, pid) => {
            if (step !== 'memory layout') return;
            stub = pid;
            // Something other than the checkpoint's bytes in a page the contents step skips.
            const fd = openSync(`/proc/${pid}/mem`, 'r+');
            try { writeSync(fd, Buffer.alloc(8, 0xee), 0, 8, Number(zeroRun.vaddr)); } finally { closeSync(fd); }
          },
        }),
        (e: unknown) => e instanceof StasisError && /memory contents/.test(e.message) && new RegExp(`Restore self-check: the page at 0x${zeroRun.vaddr.toString(16)} .*holds different bytes`).test(e.message),
      );
      assert.ok(stub > 0);
      assert.equal(isAlive(stub), false, 'the half-built process was killed');
    } finally {
      t.kill();
    }
  });
});
