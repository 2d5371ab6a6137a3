/**
 * Pseudo-terminal pairs the program made itself (script, expect, a tmux-like server, a harness
 * driving a child through a pty) come back as a new pair with the same settings and the bytes that
 * waited in it (they used to be refused: "restoring a pseudo-terminal pair is not supported yet").
 * Fixture test/fixtures/restore-pty.c checks itself; a real `script` drives a shell counter.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached } from '../helpers/spawn';
import { checkpoint, checkpointTree, closeTrackers } from '../../electron/engine/capture';
import { preflight, restore } from '../../electron/engine/restore';
import { runZdtm, startZdtm, verdict } from './zdtm';
import { killQuietly, sleep, waitFor, withStore } from './helpers';

const pty = buildFixture('restore-pty');

test('one process with its own pty pair: termios, 33x101 window, lock, packet mode, exclusive and the bytes waiting both ways come back, and the pair connects', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, pty, { args: ['one'] });
    assert.deepEqual(r.lines, ['done pass']);
    const fds = preflight(store, r.checkpointId).items.find((i) => i.id === 'fds')!;
    assert.match(fds.reason, /pseudo-terminal \/dev\/pts\/\d+ is made again with its settings and the 5 bytes for the master and 3 bytes for the slave side that waited \(another number: ttyname\(\) differs\)/);
  });
});

test('the script(1) shape as a tree: the parent reads a counter the child writes through the slave it made its controlling terminal; no step lost, the new slave is the child\'s controlling terminal with its group in front', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, pty, { args: ['tree'], tree: true, beforeRestore: () => sleep(300) });
    assert.deepEqual(r.lines, ['done pass']);
  });
});

test('one process in its own session with its own pair as controlling terminal: the new slave is its controlling terminal again, its group in front', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, pty, { args: ['ctty'] });
    assert.deepEqual(r.lines, ['done pass']);
  });
});

test('a pair whose slave side was closed after writing (a child that exited): the master reads its last output, then EIO, as before', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, pty, { args: ['hup'] });
    assert.deepEqual(r.lines, ['done pass']);
  });
});

test('canonical mode: a complete line, a line ended by ^D and an unfinished one wait at the slave side, their echo at the master; all come back, the unfinished line still editable', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, pty, { args: ['canon'] });
    assert.deepEqual(r.lines, ['done pass']);
  });
  // Left running: the lines were taken to be saved and typed back in, the program reads them alike.
  await withStore(async (store, dir) => {
    const t = await startZdtm(pty, dir, ['canon']);
    try {
      checkpoint(store, t.pid, { mode: 'leave-running' });
      assert.deepEqual(await verdict(t.out), ['done pass']);
    } finally {
      t.kill();
      closeTrackers();
    }
  });
});

test('packet mode: bytes waiting for the master come back as one data packet; a status notice waiting (a flush) is refused in pre-flight, and the program still reads it after a checkpoint that leaves it running', async () => {
  await withStore(async (store, dir) => {
    const r = await runZdtm(store, dir, pty, { args: ['pkt'] });
    assert.deepEqual(r.lines, ['done pass']);
  });
  await refusedThenRuns('pktstatus', /fd 3 is the master side of a pseudo-terminal the program made \(\/dev\/ptmx, \/dev\/pts\/\d+; it also holds \/dev\/pts\/\d+\): a packet-mode status change \(TIOCPKT\) waits to be read from it, which Stasis cannot make again/);
});

test('a pair locked again after its slave side was opened is refused in pre-flight by name', async () => {
  await refusedThenRuns('relock', /fd 3 is the master side of a pseudo-terminal the program made \(\/dev\/ptmx, \/dev\/pts\/\d+; it also holds \/dev\/pts\/\d+\): it was locked again \(TIOCSPTLCK\) after its slave side was opened/);
});

/** The fixture in `mode`, checkpointed leaving it running: the pre-flight refuses its fds by `reason`, and the program still passes its own check. */
async function refusedThenRuns(mode: string, reason: RegExp): Promise<void> {
  await withStore(async (store, dir) => {
    const t = await startZdtm(pty, dir, [mode]);
    try {
      const c = checkpoint(store, t.pid, { mode: 'leave-running' });
      const fds = preflight(store, c.id).items.find((i) => i.id === 'fds')!;
      assert.equal(fds.ok, false);
      assert.match(fds.reason, reason);
      assert.deepEqual(await verdict(t.out), ['done pass']);
    } finally {
      t.kill();
      closeTrackers();
    }
  });
}

test('a master whose slave side a process left out of the checkpoint holds (the tree shape checkpointed without --tree) is refused in pre-flight, naming that process', async () => {
  await withStore(async (store, dir) => {
    const t = await startZdtm(pty, dir, ['tree']);
    try {
      const c = checkpoint(store, t.pid, { mode: 'leave-running' });
      const fds = preflight(store, c.id).items.find((i) => i.id === 'fds')!;
      assert.equal(fds.ok, false);
      assert.match(fds.reason, /fd 3 is the master side of a pseudo-terminal the program made \(\/dev\/ptmx, \/dev\/pts\/\d+\): its slave side \/dev\/pts\/\d+ is held by process \d+ \(restore-pty\), which is not in the checkpoint/);
      assert.match(fds.fix ?? '', /stasis checkpoint PID --tree/);
    } finally {
      // Its child (the counter) holds the slave side; the fixture ends it on hang-up too.
      let kids: string[] = [];
      try { kids = readFileSync(`/proc/${t.pid}/task/${t.pid}/children`, 'utf8').split(' ').filter(Boolean); } catch { /* gone */ }
      for (const k of kids) killQuietly(Number(k));
      t.kill();
      closeTrackers();
    }
  });
});

test('a checkpoint that leaves the program running puts the waiting bytes back: it reads them itself afterwards', async () => {
  await withStore(async (store, dir) => {
    const t = await startZdtm(pty, dir, ['one']);
    try {
      checkpoint(store, t.pid, { mode: 'leave-running' });
      assert.deepEqual(await verdict(t.out), ['done pass']);
    } finally {
      t.kill();
      closeTrackers();
    }
  });
});

/**
 * Starts `argv` (a pty-driving program running a shell counter), checkpoints its tree with --kill
 * after 10 lines, restores it and checks the counter goes on with each line once.
 */
async function counterAcrossRestore(argv: (cmd: string) => string[]): Promise<void> {
  await withStore(async (store, dir) => {
    const out = join(dir, 'counter.out');
    const cmd = 'i=0; while [ $i -lt 100000 ]; do i=$((i+1)); echo "n=$i"; sleep 0.02; done';
    const t = spawnDetached(argv(cmd), { cwd: dir, log: out });
    let restored: number[] = [];
    try {
      const count = (): number[] => (existsSync(out) ? [...readFileSync(out, 'utf8').matchAll(/n=(\d+)\r?\n/g)].map((m) => Number(m[1])) : []);
      await waitFor('10 lines', () => count().length >= 10, 10_000);
      const c = checkpointTree(store, t.pid, { mode: 'kill' });
      assert.ok(c.members.length >= 2, `the driver and its shell (and its sleep): ${c.members.map((m) => m.comm).join(', ')}`);
      await t.waitExit();
      await waitFor('the checkpointed processes to be reaped', () => c.members.every((m) => !existsSync(`/proc/${m.pid}`)), 10_000);
      const before = count().length;
      const r = restore(store, c.id, { stdout: out, log: join(dir, 'restore.log') });
      restored = 'members' in r ? (r as { members: { pid: number }[] }).members.map((m) => m.pid) : [r.pid];
      await waitFor('the restored counter to print 20 more lines', () => count().length >= before + 20, 10_000);
      const n = count();
      assert.deepEqual(n, n.map((_v, i) => i + 1), 'the counter goes on from where it was, each line once');
    } finally {
      t.kill();
      for (const p of restored.reverse()) killQuietly(p);
      closeTrackers();
    }
  });
}

test('a real program: script(1) driving a shell counter, checkpointed as a tree with --kill and restored, goes on counting with no line lost or repeated', async () => {
  await counterAcrossRestore((cmd) => ['script', '-qfc', cmd, '/dev/null']);
});

test('a real program: python3 pty.spawn driving a shell counter, checkpointed as a tree with --kill and restored, goes on counting', async () => {
  await counterAcrossRestore((cmd) => ['python3', '-c', 'import pty, sys; pty.spawn(["sh", "-c", sys.argv[1]])', cmd]);
});
