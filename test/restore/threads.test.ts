// Multi-threaded restore against real processes: the restore-mt fixture checks itself (token ring
// over futexes with and without timeouts, TLS, rseq, thread-directed queued signals, pthread_join)
// and prints OK or FAIL at its end; the test restores it from checkpoints taken in each capture
// mode, with its saved thread ids and with new ones.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached } from '../helpers/spawn';
import { checkpoint, closeTrackers, type CheckpointOptions } from '../../electron/engine/capture';
import { preflight, restore } from '../../electron/engine/restore';
import { fileLines, isAlive, killQuietly, waitFor, withStore } from './helpers';

const mt = buildFixture('restore-mt');
const THREADS = 4;
const TURNS = 1500;

function tids(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).map(Number).sort((a, b) => a - b);
}

function threadNames(pid: number): string[] {
  return tids(pid).map((t) => readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim()).sort();
}

/** Turns done so far, from the fixture's "turn N" lines. */
function turns(out: string): number {
  const last = fileLines(out).filter((l) => l.startsWith('turn ')).at(-1);
  return last ? Number(last.slice(5)) : 0;
}

async function runRestored(opts: CheckpointOptions, samePid: boolean, name: string): Promise<void> {
  await withStore(async (store, dir) => {
    const out = join(dir, 'mt.out');
    const t = spawnDetached([mt, String(THREADS), String(TURNS)], { log: out });
    let pid: number | undefined;
    try {
      await waitFor('the ring to turn', () => turns(out) >= 400, 10_000);
      const savedTids = tids(t.pid);
      assert.equal(savedTids.length, THREADS + 1);
      const c = checkpoint(store, t.pid, opts);
      assert.equal(c.threads, THREADS + 1);
      const at = turns(out);
      if (isAlive(t.pid)) t.kill();
      await t.waitExit();
      assert.ok(at < THREADS * TURNS, `${name}: the checkpoint was taken mid-work (turn ${at})`);

      const pf = preflight(store, c.id);
      assert.equal(pf.ok, true, JSON.stringify(pf.items.filter((i) => !i.ok)));
      assert.match(pf.items.find((i) => i.id === 'threads')!.reason, /Each of the 5 threads comes back/);

      const r = restore(store, c.id, { samePid, log: join(dir, 'restore.log') });
      pid = r.pid;
      assert.equal(r.threads, THREADS + 1);
      assert.equal(r.samePid, samePid, `${name}: same pid as asked`);
      if (samePid) {
        assert.deepEqual(tids(r.pid), savedTids, `${name}: every thread has its saved tid`);
        assert.equal(r.warning, undefined);
      } else {
        assert.match(r.warning ?? '', /4 of 4 other threads have new thread ids/);
      }
      assert.deepEqual(threadNames(r.pid), ['mt-w0', 'mt-w1', 'mt-w2', 'mt-w3', 'restore-mt'], `${name}: thread names`);
      await waitFor(`${name}: the restored program to finish`, () => fileLines(out).some((l) => l === 'OK' || l.startsWith('FAIL')), 60_000);
      const lines = fileLines(out);
      assert.ok(lines.includes('OK'), `${name}: ${lines.slice(-2).join(' | ')}`);
      assert.equal(lines.filter((l) => l.startsWith('DONE')).length, 1, 'one run finished: the restored one');
    } finally {
      t.kill();
      killQuietly(pid);
      closeTrackers();
    }
  });
}

test('a multi-threaded program restored from a checkpoint taken frozen (--kill) finishes and checks itself, same pid and tids', async () => {
  await runRestored({ mode: 'kill' }, true, 'kill');
});

test('a multi-threaded program restored from a leave-running checkpoint (every thread frozen throughout) finishes, same tids', async () => {
  await runRestored({}, true, 'all-threads');
});

test('a multi-threaded program restored from a pre-copy checkpoint finishes, same tids', async () => {
  await runRestored({ snapshot: 'precopy' }, true, 'precopy');
});

test('a multi-threaded program restored with a new pid: new tids, glibc thread ids rewritten, thread-directed signals still reach their threads', async () => {
  await runRestored({ mode: 'kill' }, false, 'new pid');
});
