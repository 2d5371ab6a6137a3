/**
 * A migration that asks before it goes on (the app's Migrate dialog): round 1 is sent while the
 * process runs, the destination's pre-flight answer is handed to `confirm`, and only a yes turns
 * that session from a dry run into the migration, without sending round 1 again. A no ends it as a
 * dry run (the receiver keeps nothing and, being a dry run, keeps its token). A destination that
 * cannot turn a dry run into a migration is not asked: the result says so.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildFixture } from '../helpers/fixtures';
import { procState, spawnDetached } from '../helpers/spawn';
import { fileLines, killQuietly, waitFor, withStore } from '../restore/helpers';
import { openStore } from '../../electron/engine/store';
import { FrameReader, FrameWriter } from '../../electron/engine/migrate/wire';
import { migrate, type PreflightAnswer } from '../../electron/engine/migrate/source';
import { crossedSession, editHello } from '../helpers/crossed-session';

const root = fileURLToPath(new URL('../..', import.meta.url));
const bin = join(root, 'bin', 'stasis.js');
const counter = buildFixture('migrate-counter');

/** How the receiver ended (its stdout is the session's wire: only stderr is read here). */
async function ended(rx: ChildProcess): Promise<{ code: number | null; err: string }> {
  let err = '';
  rx.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const code = await new Promise<number | null>((resolve) => rx.once('close', (c) => resolve(c)));
  return { code, err };
}

/** A counter writing its memory, counting, and a `stasis receive` over pipes into DIR/dst. */
async function counterAndReceiver(dir: string) {
  const out = join(dir, 'out.txt');
  const dstDir = join(dir, 'dst');
  const t = spawnDetached([counter, out, '8', '200'], { cwd: dir });
  const rx = spawn(process.execPath, [bin, '--store', dstDir, '--json', 'receive'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const done = ended(rx);
  try {
    await waitFor('the counter to start', () => fileLines(out).length > 20);
  } catch (e) {
    t.kill();
    rx.kill('SIGKILL');
    throw e;
  }
  return { out, dstDir, t, rx, done };
}

const fulls = (dir: string): number => {
  const s = openStore(dir);
  try { return s.list().filter((c) => c.label === 'migration: full').length; } finally { s.close(); }
};

test('confirm says yes: the same session goes on from round 1 (sent once) and the counter moves, no step lost', async () => {
  await withStore(async (srcStore, dir) => {
    const { out, t, rx, done } = await counterAndReceiver(dir);
    let moved = 0;
    try {
      const asked: PreflightAnswer[] = [];
      const m = await migrate(srcStore, t.pid, new FrameReader(rx.stdout!), new FrameWriter(rx.stdin!), {
        smallRound: 0, maxRounds: 3,
        confirm: async (pf) => {
          asked.push(pf);
          // Asked while the process runs on, and it keeps counting while the user reads.
          assert.notEqual(procState(t.pid), 'T');
          const n = fileLines(out).length;
          await waitFor('the counter to go on while asked', () => fileLines(out).length > n + 3, 10_000);
          return true;
        },
      });
      moved = m.destination!.pid;
      // The caller owns the pipe: closing it ends the receiver.
      rx.stdin!.end();
      assert.equal(asked.length, 1);
      assert.equal(asked[0]!.ok, true);
      assert.equal(m.dryRun, false);
      assert.equal(m.rounds.filter((r) => r.kind === 'full').length, 1);
      assert.equal(fulls(srcStore.dir), 1, 'round 1 was taken and sent once');
      const r = await done;
      assert.equal(r.code, 0, r.err);
      await t.waitExit(10_000);
      const n = fileLines(out).length;
      await waitFor('the moved counter to count on', () => fileLines(out).length > n + 5, 10_000);
      const counts = fileLines(out).filter((l) => /^\d+$/.test(l)).map(Number);
      counts.forEach((c, i) => assert.equal(c, i + 1, `step ${i + 1} is ${c}`));
    } finally {
      t.kill();
      rx.kill('SIGKILL');
      if (moved) killQuietly(moved);
    }
  });
});

test('confirm says no: the session ends as a dry run, the destination keeps nothing, the process runs on untouched', async () => {
  await withStore(async (srcStore, dir) => {
    const { out, t, rx, done, dstDir } = await counterAndReceiver(dir);
    try {
      const m = await migrate(srcStore, t.pid, new FrameReader(rx.stdout!), new FrameWriter(rx.stdin!), { confirm: () => Promise.resolve(false) });
      rx.stdin!.end();
      assert.equal(m.dryRun, true);
      assert.equal(m.destination, undefined);
      assert.equal(m.preflight.ok, true);
      const r = await done;
      assert.equal(r.code, 0, r.err);
      const d = openStore(dstDir);
      try { assert.equal(d.list().length, 0, 'the destination keeps nothing'); } finally { d.close(); }
      assert.ok(t.alive());
      assert.notEqual(procState(t.pid), 'T');
      const n = fileLines(out).length;
      await waitFor('it to count on here', () => fileLines(out).length > n + 5, 10_000);
    } finally {
      t.kill();
      rx.kill('SIGKILL');
    }
  });
});

test('a destination that cannot go on from a dry run is not asked: the session ends as a dry run that says so', async () => {
  await withStore(async (srcStore, dir) => {
    const out = join(dir, 'out.txt');
    const t = spawnDetached([counter, out, '4', '200'], { cwd: dir });
    const dst = openStore(join(dir, 'dst'));
    try {
      await waitFor('the counter to start', () => fileLines(out).length > 20);
      // An older destination: its hello does not offer `proceed`.
      const { rd, wr, served } = crossedSession(dst, {}, editHello((h) => ({ ...h, proceed: undefined })));
      let asked = 0;
      const m = await migrate(srcStore, t.pid, rd, wr, { confirm: () => { asked++; return Promise.resolve(true); } });
      assert.equal(asked, 0);
      assert.equal(m.dryRun, true);
      assert.equal(m.proceedUnsupported, true);
      const res = await served;
      assert.equal(res.dryRun, true);
      assert.equal(res.restored, undefined);
      assert.equal(dst.list().length, 0);
      assert.ok(t.alive());
    } finally {
      t.kill();
      dst.close();
    }
  });
});
