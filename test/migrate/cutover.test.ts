/**
 * The cut-over of a live migration: the last round travels in memory and is written into the
 * destination's prepared process before either store holds it durably. These tests break it at
 * the points that path adds: the destination failing after the last round was sent (the source
 * must come back untouched, its checkpoints restorable, the destination keeping nothing), and the
 * destination dying after the process runs there but before its store committed the round (every
 * earlier checkpoint stays valid, nothing half-visible).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildFixture } from '../helpers/fixtures';
import { crossedSession, preparedWith } from '../helpers/crossed-session';
import { spawnDetached } from '../helpers/spawn';
import { fileLines, killQuietly, waitFor, withStore } from '../restore/helpers';
import { openStore } from '../../electron/engine/store';
import { preflight, prepareRestore, restore } from '../../electron/engine/restore';
import { FrameReader, FrameWriter } from '../../electron/engine/migrate/wire';
import { migrate } from '../../electron/engine/migrate/source';
import { StasisError } from '../../shared/errors';
import { assertConsecutive, countsGrow, memCheck } from './counter-checks';

const root = fileURLToPath(new URL('../..', import.meta.url));
const bin = join(root, 'bin', 'stasis.js');
const counter = buildFixture('migrate-counter');

test('the destination fails after the last round was sent: the source process runs on untouched, its checkpoints verify and restore, the destination keeps nothing', async () => {
  await withStore(async (srcStore, dir) => {
    const out = join(dir, 'out.txt');
    const t = spawnDetached([counter, out, '8', '200'], { cwd: dir });
    const dst = openStore(join(dir, 'dst'));
    let again = 0;
    try {
      await waitFor('the counter to start', () => fileLines(out).length > 20);
      let lastRoundArrived = false;
      const { rd, wr, served } = crossedSession(dst, {
        // A real prepared restore whose resume breaks once the last round was written into it.
        prepare: async (id) => {
          const p = prepareRestore(dst, id);
          return preparedWith(p, {
            absorbDelta: (state, changes) => { lastRoundArrived = true; return p.absorbDelta(state, changes); },
            finish: () => { p.abandon(); throw new StasisError('INTERNAL', 'injected: the destination failed while resuming the process'); },
            // Without it the destination waits for run before finish(), where the failure is injected.
            finishHeld: undefined,
          });
        },
      });
      await assert.rejects(migrate(srcStore, t.pid, rd, wr, { smallRound: 0, maxRounds: 3 }), (e: unknown) => {
        assert.ok(e instanceof StasisError);
        assert.match(e.message, /injected: the destination failed.*frozen for the last round and now runs on here untouched/s);
        return true;
      });
      assert.ok(lastRoundArrived, 'the failure came after the last round reached the prepared process');
      const res = await served;
      assert.equal(res.restored, undefined);
      assert.equal(res.discarded, true);
      assert.equal(dst.list().length, 0, 'the destination keeps nothing of the session');
      assert.deepEqual(dst.verify().problems, []);
      // The source: running, counting on, memory intact, no step lost or repeated.
      assert.ok(t.alive());
      await countsGrow(out);
      assert.match(await memCheck(t.pid, out), /mem=ok/);
      assertConsecutive(out);
      // Its store: every round, the held last one included, verifies and restores.
      const list = srcStore.list();
      assert.equal(list.at(-1)!.label, 'migration: final');
      assert.deepEqual(srcStore.verify().problems, []);
      for (const c of list) assert.equal(preflight(srcStore, c.id).ok, true, `checkpoint #${c.id} passes the pre-flight`);
      const r = restore(srcStore, list.at(-1)!.id, { samePid: false });
      again = r.pid;
      assert.match(await memCheck(again, out), /mem=ok/);
    } finally {
      t.kill();
      if (again) killQuietly(again);
      dst.close();
    }
  });
});

test('the destination dies after the process runs there but before its store committed the last round: its earlier checkpoints stay valid and restorable, nothing half-visible', async () => {
  await withStore(async (srcStore, dir) => {
    const out = join(dir, 'out.txt');
    const dstDir = join(dir, 'dst');
    const t = spawnDetached([counter, out, '8', '200'], { cwd: dir });
    const rx = spawn(process.execPath, [bin, '--store', dstDir, 'receive'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let moved = 0;
    try {
      await waitFor('the counter to start', () => fileLines(out).length > 20);
      const m = await migrate(srcStore, t.pid, new FrameReader(rx.stdout), new FrameWriter(rx.stdin), {
        smallRound: 0, maxRounds: 3,
        // `restored` has just arrived: the destination is now storing the round. It dies here.
        onRound: (x) => { if (x.kind === 'final') rx.kill('SIGKILL'); },
      });
      moved = m.destination!.pid;
      assert.equal(m.destination!.prepared, true);
      await new Promise<void>((resolve) => { if (rx.exitCode !== null || rx.signalCode !== null) resolve(); else rx.once('exit', () => resolve()); });
      assert.equal(rx.signalCode, 'SIGKILL');
      // The process runs there (the source's copy was killed on `restored`).
      await countsGrow(out);
      assert.match(await memCheck(moved, out), /mem=ok/);
      assertConsecutive(out);
      // The source's copy of the last round was made durable after the cut-over: another handle sees it.
      const again = openStore(srcStore.dir);
      try {
        assert.equal(again.list().at(-1)!.label, 'migration: final');
        assert.deepEqual(again.verify().problems, []);
      } finally { again.close(); }
      const d = openStore(dstDir);
      try {
        assert.deepEqual(d.verify().problems, [], 'the destination store verifies after the crash');
        const list = d.list();
        const earlier = m.rounds.length - 1;
        // The rounds before the last are all there; the last is there whole or not at all.
        assert.ok(list.length >= earlier, `${list.length} checkpoints for ${earlier} earlier rounds`);
        for (const c of list) assert.equal(preflight(d, c.id).ok, true, `checkpoint #${c.id} passes the pre-flight`);
        for (const c of list) {
          let pages = 0;
          for (const r of d.materialize(c.id)) pages += r.pages;
          assert.ok(pages >= 8 * 256, `checkpoint #${c.id} reads whole: ${pages} pages`);
        }
      } finally { d.close(); }
    } finally {
      t.kill();
      rx.kill('SIGKILL');
      if (moved) killQuietly(moved);
    }
  });
});
