/**
 * Tree checkpoints with pre-copy (capture/tree-live.ts): each member's private memory is read while
 * the tree runs and writes, and the common freeze copies only what was written since. A parent and
 * its child (test/fixtures/tree-precopy.c) write a private buffer (mostly shared copy-on-write
 * between them) and a MAP_SHARED mapping without pause; restored from the checkpoint, each sums its
 * memory again against the running sums it kept: a page saved from another instant, or lost, shows.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached } from '../helpers/spawn';
import { checkpointTree, closeTrackers, type TreeCheckpointResult } from '../../electron/engine/capture';
import { restore } from '../../electron/engine/restore';
import { probeKernelFeatures, takeFd, closeFd } from '../../electron/engine/native';
import type { Store } from '../../electron/engine/store/api';
import { fileLines, killQuietly, waitFor, withStore } from '../restore/helpers';

const fixture = buildFixture('tree-precopy');
const MIB = 32;
const PAGES = MIB * 256;
const skip = !probeKernelFeatures().uffdWpAsync;

/** Kills the tree (children first), restores checkpoint id with the same PIDs, asks each process for its check; returns "P S" per PID. */
async function restoreAndCheck(store: Store, dir: string, c: TreeCheckpointResult, out: string, kill: () => void): Promise<Map<number, string>> {
  for (const m of [...c.members].reverse()) killQuietly(m.pid);
  kill();
  await waitFor('the original tree to be gone', () => c.members.every((m) => !existsSync(`/proc/${m.pid}`)), 10_000);
  const r = restore(store, c.id, { log: join(dir, 'restore.log') });
  const pids = (r.members ?? []).map((m) => m.pid);
  try {
    assert.deepEqual(pids.sort(), c.members.map((m) => m.pid).sort(), 'the same processes, with their PIDs');
    const before = fileLines(out).length;
    for (const p of pids) process.kill(p, 'SIGUSR1');
    await waitFor('each restored process to check its memory', () => fileLines(out).slice(before).filter((l) => l.startsWith('R ')).length >= pids.length, 10_000);
    const checks = new Map<number, string>();
    for (const l of fileLines(out).slice(before)) {
      const [, pid, , priv, shared] = l.split(' ');
      checks.set(Number(pid), `${priv} ${shared}`);
    }
    return checks;
  } finally {
    for (const p of pids.reverse()) killQuietly(p);
  }
}

test('a tree checkpoint reads each member live (pre-copy), freezes for what was written since, and restores exact memory: private pages shared copy-on-write, a MAP_SHARED mapping both write, the next checkpoint tracked', { skip }, async () => {
  await withStore(async (store, dir) => {
    const out = join(dir, 'out.txt');
    const t = spawnDetached([fixture, out, String(MIB), '2000'], { cwd: dir });
    try {
      await waitFor('parent and child to run', () => fileLines(out).filter((l) => l.startsWith('ready')).length === 2);
      const first = checkpointTree(store, t.pid);
      assert.equal(first.members.length, 2);
      assert.deepEqual(first.members.map((m) => m.freeze), ['pre-copy', 'pre-copy'], JSON.stringify(first.warnings));
      // Most of the memory went while the tree ran: the freeze read only what the two wrote meanwhile.
      for (const m of first.members) assert.ok(m.frozenPages < PAGES / 2, `process ${m.pid} read ${m.frozenPages} of ${PAGES}+ pages while frozen`);
      const second = checkpointTree(store, t.pid);
      assert.equal(second.mode, 'incremental');
      for (const m of second.members) {
        assert.equal(store.get(m.id)!.dirtyTracking, 'uffd-wp', 'each member\'s userfaultfd was kept since its previous checkpoint');
        assert.equal(m.freeze, 'pre-copy');
        assert.ok(m.frozenPages < PAGES / 2, `process ${m.pid} read ${m.frozenPages} pages while frozen`);
      }
      const checks = await restoreAndCheck(store, dir, second, out, () => t.kill());
      assert.equal(checks.size, 2, JSON.stringify([...checks]));
      for (const [pid, c] of checks) assert.equal(c, 'k k', `process ${pid}: private and shared memory as it was written (${fileLines(out).join(' | ')})`);
    } finally {
      closeTrackers();
      t.kill();
    }
  });
});

test('a member whose memory another userfaultfd has falls back to being read while frozen; the others keep pre-copy, and the tree restores exact', { skip }, async () => {
  await withStore(async (store, dir) => {
    const out = join(dir, 'out.txt');
    const t = spawnDetached([fixture, out, String(MIB), '2000', 'own-uffd'], { cwd: dir });
    let held = -1;
    try {
      await waitFor('parent and child to run', () => fileLines(out).filter((l) => l.startsWith('ready')).length === 2);
      const [, kid, fd] = fileLines(out).find((l) => l.startsWith('U '))!.split(' ').map(Number);
      // Our copy keeps the child's registration; the child closes its own (a userfaultfd descriptor is not restorable).
      held = takeFd(kid!, fd!);
      process.kill(kid!, 'SIGUSR2');
      await waitFor('the child to close its userfaultfd', () => {
        try { return !existsSync(`/proc/${kid}/fd/${fd}`); } catch { return false; }
      });
      const c = checkpointTree(store, t.pid);
      const byPid = new Map(c.members.map((m) => [m.pid, m]));
      assert.equal(byPid.get(t.pid)!.freeze, 'pre-copy');
      assert.equal(byPid.get(kid!)!.freeze, 'all-threads');
      assert.ok(c.warnings.some((w) => w.includes(`process ${kid}`) && /another userfaultfd/.test(w)), JSON.stringify(c.warnings));
      assert.ok(byPid.get(kid!)!.frozenPages >= PAGES, 'the child was read whole while frozen');
      const checks = await restoreAndCheck(store, dir, c, out, () => t.kill());
      assert.equal(checks.size, 2);
      for (const [pid, x] of checks) assert.equal(x, 'k k', `process ${pid}`);
    } finally {
      if (held >= 0) closeFd(held);
      closeTrackers();
      t.kill();
    }
  });
});

test('a tree checkpoint cancelled while its memory is read live stops there: the tree is never frozen, nothing is saved, no registration is left', { skip }, async () => {
  await withStore(async (store, dir) => {
    const out = join(dir, 'out.txt');
    const t = spawnDetached([fixture, out, String(MIB), '2000'], { cwd: dir });
    const pids: number[] = [];
    try {
      await waitFor('parent and child to run', () => fileLines(out).filter((l) => l.startsWith('ready')).length === 2);
      pids.push(...fileLines(out).filter((l) => l.startsWith('ready')).map((l) => Number(l.split(' ')[1])));
      const stop = new AbortController();
      const phases: string[] = [];
      assert.throws(() => checkpointTree(store, t.pid, { signal: stop.signal, onPhase: (p) => { phases.push(p); if (p === 'live') stop.abort(); } }),
        (e: Error & { code?: string }) => e.code === 'CANCELLED' && /nothing was saved/.test(e.message));
      assert.deepEqual(phases, ['live'], 'cancelled after the first member was read live, before any freeze');
      assert.equal(store.list().length, 0, 'nothing was saved');
      assert.ok(pids.includes(t.pid) && pids.length === 2);
      for (const pid of pids) {
        assert.ok(!/^VmFlags:.*\buw\b/m.test(readFileSync(`/proc/${pid}/smaps`, 'utf8')), `process ${pid}: no write-protect registration left`);
        assert.match(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!, /^[RS] /, `process ${pid} runs on`);
      }
    } finally {
      closeTrackers();
      // The child outlives its parent's kill: killed by its PID too.
      for (const p of pids.reverse()) killQuietly(p);
      t.kill();
    }
  });
});
