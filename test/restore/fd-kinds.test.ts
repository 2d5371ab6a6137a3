/**
 * Descriptors that used to make a restore refuse or come back wrong: open files that were already
 * deleted (their contents are saved in the checkpoint up to a limit and recreated as unlinked
 * files), and epoll sets of ~1000 watches, some of them on descriptors the program closed after a
 * dup (the kernel keeps those watches under the closed number). Each fixture checks itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached } from '../helpers/spawn';
import { checkpoint, closeTrackers } from '../../electron/engine/capture';
import { preflight, restore } from '../../electron/engine/restore';
import { fields, fileLines, killQuietly, waitFor, withStore } from './helpers';

const ghost = buildFixture('restore-ghost');
const epoll = buildFixture('restore-epoll');

/** Sends SIGUSR1 to pid and returns the fields of the line it then prints. */
async function check(out: string, pid: number): Promise<Record<string, number>> {
  const before = fileLines(out).filter((l) => l.startsWith(`pid=${pid} `)).length;
  process.kill(pid, 'SIGUSR1');
  await waitFor(`the check of ${pid}`, () => fileLines(out).filter((l) => l.startsWith(`pid=${pid} `)).length > before, 10_000);
  return fields(fileLines(out).filter((l) => l.startsWith(`pid=${pid} `)).at(-1)!);
}

test('open files already deleted come back unlinked in the same directory with contents, flags, positions and sharing', async () => {
  await withStore(async (store, dir) => {
    const gdir = join(dir, 'ghosts');
    mkdirSync(gdir);
    const out = join(dir, 'out.txt');
    const t = spawnDetached([ghost, gdir, out], { cwd: dir });
    let pid: number | undefined;
    try {
      await waitFor('the fixture to start', () => fileLines(out).some((l) => l.startsWith('ready')));
      const all = { content: 1, pos: 1, unlinked: 1, path: 1, flags: 1, shared: 1, inode: 1 };
      assert.deepEqual(await check(out, t.pid), { pid: t.pid, ...all }, 'the kernel behaves as the fixture expects');
      const c = checkpoint(store, t.pid, { mode: 'kill' });
      await t.waitExit();
      const pf = preflight(store, c.id, { log: join(dir, 'restore.log') });
      assert.equal(pf.items.find((i) => i.id === 'fds')?.ok, true, JSON.stringify(pf.items.find((i) => i.id === 'fds')));
      const r = restore(store, c.id, { log: join(dir, 'restore.log'), samePid: false });
      pid = r.pid;
      assert.deepEqual(await check(out, r.pid), { pid: r.pid, ...all });
      assert.deepEqual(readdirSync(gdir), [], 'nothing was left linked in the directory');
    } finally {
      t.kill();
      killQuietly(pid);
      closeTrackers();
    }
  });
});

test('a deleted open file above the ghost limit is refused in pre-flight, naming the limit and how to raise it', async () => {
  await withStore(async (store, dir) => {
    const gdir = join(dir, 'ghosts');
    mkdirSync(gdir);
    const out = join(dir, 'out.txt');
    const t = spawnDetached([ghost, gdir, out], { cwd: dir });
    try {
      await waitFor('the fixture to start', () => fileLines(out).some((l) => l.startsWith('ready')));
      // 100 KiB file at fd 3, 11 and 10 bytes at the others: a 50000-byte limit keeps only the small ones.
      const c = checkpoint(store, t.pid, { ghostLimit: 50_000 });
      const pf = preflight(store, c.id, { log: join(dir, 'restore.log') });
      const fds = pf.items.find((i) => i.id === 'fds')!;
      assert.equal(fds.ok, false);
      assert.match(fds.reason, /fd 3 .*102400 bytes.*50000/);
      assert.doesNotMatch(fds.reason, /fd [4678] /, 'the small ones were saved');
      assert.match(fds.fix ?? '', /--ghost-limit/);
      assert.throws(() => restore(store, c.id, { log: join(dir, 'restore.log'), samePid: false }), /PREFLIGHT|pre-flight|fd 3/i);
    } finally {
      t.kill();
      closeTrackers();
    }
  });
});

test('an epoll set of 999 watches, some on closed numbers whose file lives on at another fd, comes back with every mask and data', async () => {
  await withStore(async (store, dir) => {
    const out = join(dir, 'out.txt');
    const t = spawnDetached([epoll, out, '999'], { cwd: dir });
    let pid: number | undefined;
    try {
      await waitFor('the fixture to start', () => fileLines(out).some((l) => l.startsWith('ready')));
      const orig = await check(out, t.pid);
      assert.deepEqual(orig, { pid: t.pid, watches: 999, listed: 999, exact: 1, ready: orig.ready!, readyok: 1 }, 'the kernel behaves as the fixture expects');
      const c = checkpoint(store, t.pid, { mode: 'kill' });
      await t.waitExit();
      const r = restore(store, c.id, { log: join(dir, 'restore.log'), samePid: false });
      pid = r.pid;
      assert.deepEqual(await check(out, r.pid), { pid: r.pid, watches: 999, listed: 999, exact: 1, ready: orig.ready!, readyok: 1 });
    } finally {
      t.kill();
      killQuietly(pid);
      closeTrackers();
    }
  });
});

const inotifyGhost = buildFixture('restore-inotify-ghost');

test('an inotify watch on a file deleted while held open comes back on the recreated file (same watch number), next to a watch on a file that stays', async () => {
  await withStore(async (store, dir) => {
    const wdir = join(dir, 'watched');
    mkdirSync(wdir);
    const out = join(dir, 'out.txt');
    const t = spawnDetached([inotifyGhost, wdir, out], { cwd: dir });
    let pid: number | undefined;
    try {
      await waitFor('the fixture to start', () => fileLines(out).includes('ready'));
      assert.deepEqual(await check(out, t.pid), { pid: t.pid, held: 1, kept: 1 }, 'the kernel behaves as the fixture expects');
      const c = checkpoint(store, t.pid, { mode: 'kill' });
      await t.waitExit();
      const pf = preflight(store, c.id, { log: join(dir, 'restore.log') });
      assert.equal(pf.items.find((i) => i.id === 'fds')?.ok, true, JSON.stringify(pf.items.find((i) => i.id === 'fds')));
      const r = restore(store, c.id, { log: join(dir, 'restore.log'), samePid: false });
      pid = r.pid;
      assert.deepEqual(await check(out, r.pid), { pid: r.pid, held: 1, kept: 1 });
      assert.deepEqual(readdirSync(wdir), ['kept'], 'the recreated file is unlinked again');
    } finally {
      t.kill();
      killQuietly(pid);
      closeTrackers();
    }
  });
});
