/**
 * Queued signals: a process that sigqueue()d itself real-time signals while they were blocked
 * (several instances of one, with values; process- and thread-directed) gets back exactly those
 * signals after a restore, in order, with their si_value and si_code — not one bare instance of each.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached } from '../helpers/spawn';
import { checkpoint, closeTrackers } from '../../electron/engine/capture';
import { restore } from '../../electron/engine/restore';
import { tgkill } from '../../electron/engine/native';
import type { ProcessState } from '../../electron/engine/state/process-state';
import { fileLines, killQuietly, waitFor, withStore } from './helpers';

const fixture = buildFixture('restore-sigqueue');

/** si_value.sival_int (offset 24 on x86_64) of each saved siginfo record. */
const values = (queue: string[] | undefined): number[] => (queue ?? []).map((b) => Buffer.from(b, 'base64').readInt32LE(24));

/** SIGRTMIN+1 and +2 as glibc numbers them (it keeps the kernel's first two real-time signals). */
const RT1 = 35, RT2 = 36;

/**
 * Runs the fixture to "ready", lets `extra` signal it, checkpoints it with --kill, restores it with
 * a new PID and returns the restored process's line and the restore's warning.
 */
async function roundTrip(extra: (pid: number, worker: number) => void, check: (state: ProcessState) => void): Promise<{ pid: number; line: string; warning?: string }> {
  return withStore(async (store, dir) => {
    const out = join(dir, 'out.txt');
    const t = spawnDetached([fixture], { log: out });
    let pid = 0;
    try {
      await waitFor('the target to queue its signals', () => fileLines(out).includes('ready'));
      const worker = Number(fileLines(out).find((l) => l.startsWith('worker='))!.slice(7));
      extra(t.pid, worker);
      const c = checkpoint(store, t.pid, { mode: 'kill' });
      await t.waitExit();
      check(store.getState(c.id));
      const r = restore(store, c.id, { samePid: false, stdout: out, stderr: out });
      pid = r.pid;
      process.kill(pid, 'SIGUSR1');
      await waitFor('the restored process to drain its signals', () => fileLines(out).some((l) => l.startsWith('pid=')), 10_000);
      const lines = fileLines(out).filter((l) => l.startsWith('pid='));
      assert.equal(lines.length, 1, lines.join('\n'));
      return { pid, line: lines[0]!, ...(r.warning ? { warning: r.warning } : {}) };
    } finally {
      t.kill();
      killQuietly(pid);
      closeTrackers();
    }
  });
}

test('queued real-time signals come back with every instance, in order, with their siginfo (process- and thread-directed, new pid)', async () => {
  const r = await roundTrip(() => {}, (state) => {
    assert.deepEqual(values(state.sharedQueue), [11, 22, 33], 'the process queue was saved');
    assert.deepEqual(state.threads.map((th) => values(th.sigqueue)), [[], [44, 55]], 'the second thread\'s queue was saved');
  });
  assert.doesNotMatch(r.warning ?? '', /could not be queued/);
  assert.equal(r.line, `pid=${r.pid} shared=11,22,33 thread=44,55 code=-1`);
});

test('signals another process sent (si_code SI_USER, which the kernel takes only from the process itself) come back with their sender, after the queued ones', async () => {
  const r = await roundTrip((pid, worker) => {
    process.kill(pid, RT1);
    tgkill(pid, worker, RT2);
  }, () => {});
  assert.doesNotMatch(r.warning ?? '', /could not be queued/);
  assert.equal(r.line, `pid=${r.pid} shared=11,22,33,c0p${process.pid} thread=44,55,c0p${process.pid} code=-1`);
});
