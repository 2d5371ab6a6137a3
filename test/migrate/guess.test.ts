/**
 * The last round sent before its VmFlags are known (capture/vmflags-guess.ts): the source commits
 * it with the flags of the round before and sends it while the smaps walk finishes; the destination
 * builds the process meanwhile and lets it run only on the source's `run`, sent once the exact
 * flags match. These tests run it with real processes and stores: a counter moved that way (no
 * step lost), a program that changes a mapping's flags between the rounds (the guess retracted, the
 * round taken again, the flags exact there), a destination failing while it builds (the source
 * runs on untouched, nothing kept there), the link cut before `run` (the destination kills what it
 * built), and an older destination (no `confirmRun`: the flags are read first, as before).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildFixture } from '../helpers/fixtures';
import { crossedSession, editHello, preparedWith } from '../helpers/crossed-session';
import { spawnDetached } from '../helpers/spawn';
import { fileLines, killQuietly, waitFor, withStore } from '../restore/helpers';
import { openStore } from '../../electron/engine/store';
import type { Store } from '../../electron/engine/store/api';
import { preflight, prepareRestore, type PreparedRestore } from '../../electron/engine/restore';
import { FrameReader, FrameWriter } from '../../electron/engine/migrate/wire';
import { migrate, type MigrateOptions } from '../../electron/engine/migrate/source';
import { serveMigration, type PreparedProcess } from '../../electron/engine/migrate/destination';
import { StasisError } from '../../shared/errors';
import { assertConsecutive, countsGrow, memCheck } from './counter-checks';

const root = fileURLToPath(new URL('../..', import.meta.url));
const bin = join(root, 'bin', 'stasis.js');
const counter = buildFixture('migrate-counter');
const advising = buildFixture('migrate-advise');

/** The VmFlags of pid's mapping that starts at addr (hex), from its smaps. */
function flagsAt(pid: number, addr: string): string[] {
  const smaps = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  const at = smaps.indexOf(`\n${addr}-`) + 1 || (smaps.startsWith(`${addr}-`) ? 0 : -1);
  assert.ok(at >= 0, `pid ${pid} has a mapping at ${addr}`);
  return /VmFlags:([^\n]*)/.exec(smaps.slice(at))![1]!.trim().split(/\s+/);
}

/** Sleeps without the event loop (inside a synchronous callback). */
function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * An in-process session: the destination (store dst) served on one end of a pair of pipes, the
 * source's migrate on the other. hello: rewrites the destination's hello (an older peer);
 * prepared: wraps the real prepared restore.
 */
async function session(src: Store, dst: Store, pid: number, opts: MigrateOptions, edit: { hello?: (m: Record<string, unknown>) => Record<string, unknown>; prepared?: (p: PreparedRestore) => PreparedProcess } = {}): Promise<{ migrated: Promise<Awaited<ReturnType<typeof migrate>>>; served: ReturnType<typeof serveMigration> }> {
  const { rd, wr, served } = crossedSession(dst, {
    beginImport: (total) => dst.beginImport(total),
    prepare: async (id) => {
      const p = prepareRestore(dst, id);
      return edit.prepared ? edit.prepared(p) : p;
    },
  }, edit.hello ? editHello(edit.hello) : undefined);
  await Promise.resolve();
  return { migrated: migrate(src, pid, rd, wr, opts), served };
}

test('the last round travels before its VmFlags are checked: a counter moved to another Stasis process goes on counting there, no step lost, memory intact', async () => {
  await withStore(async (srcStore, dir) => {
    const out = join(dir, 'out.txt');
    const dstDir = join(dir, 'dst');
    const t = spawnDetached([counter, out, '8', '200'], { cwd: dir });
    const rx = spawn(process.execPath, [bin, '--store', dstDir, 'receive'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let moved = 0;
    try {
      await waitFor('the counter to start', () => fileLines(out).length > 20);
      const m = await migrate(srcStore, t.pid, new FrameReader(rx.stdout), new FrameWriter(rx.stdin), { smallRound: 0, maxRounds: 3, guessVmFlags: 'always' });
      moved = m.destination!.pid;
      rx.stdin.end();
      assert.equal(m.vmFlags, 'guessed', 'the flags were guessed and confirmed');
      assert.equal(m.retracted, undefined);
      assert.equal(m.destination!.prepared, true);
      assert.ok(m.destination!.steps.some((s) => s.step === 'waited for the source\'s run'), 'the destination waited for run');
      assert.ok(m.cutover!.some((s) => s.step.startsWith('the rest of the smaps walk')));
      await new Promise<void>((resolve) => { if (rx.exitCode !== null) resolve(); else rx.once('exit', () => resolve()); setTimeout(resolve, 10_000).unref(); });
      assert.equal(rx.exitCode, 0);
      await countsGrow(out);
      assert.match(await memCheck(moved, out), /mem=ok/);
      assertConsecutive(out, 20);
      // Both stores keep the last round with the exact flags: the source's copy settled, the destination's imported.
      const d = openStore(dstDir);
      try {
        assert.deepEqual(d.verify().problems, []);
        const last = d.list().filter((c) => !c.restoredFrom).at(-1)!;
        assert.equal(preflight(d, last.id).ok, true);
      } finally { d.close(); }
      assert.equal(srcStore.list().at(-1)!.label, 'migration: final');
      assert.deepEqual(srcStore.verify().problems, []);
    } finally {
      t.kill();
      rx.kill('SIGKILL');
      if (moved) killQuietly(moved);
    }
  });
});

test('a mapping\'s VmFlags change between the rounds: the guess is retracted, the round taken again, and the process runs there with the exact flags (no step lost; no checkpoint of the wrong flags kept)', async () => {
  await withStore(async (srcStore, dir) => {
    const out = join(dir, 'out.txt');
    const t = spawnDetached([advising, out, '8', '200'], { cwd: dir });
    const dst = openStore(join(dir, 'dst'));
    let moved = 0;
    try {
      await waitFor('the counter to start', () => fileLines(out).length > 20);
      let addr = '';
      const { migrated, served } = await session(srcStore, dst, t.pid, {
        smallRound: 0, maxRounds: 2, guessVmFlags: 'always',
        // After round 2, the last one sent while it runs: the program marks a mapping MADV_DONTDUMP.
        onRound: (x) => {
          if (x.round !== 2) return;
          process.kill(t.pid, 'SIGUSR2');
          const end = Date.now() + 10_000;
          while (!(addr = fileLines(out).find((l) => l.startsWith('advised '))?.slice(8) ?? '')) {
            if (Date.now() > end) throw new Error('the program did not advise');
            sleepMs(2);
          }
        },
      });
      const m = await migrated;
      moved = m.destination!.pid;
      assert.ok(addr, 'the flags changed after the round before the last');
      const res = await served;
      assert.ok(res.restored);
      // Exact there: the restored process has the flag the program set.
      assert.ok(flagsAt(moved, addr).includes('dd'), `the restored mapping at ${addr} is MADV_DONTDUMP: ${flagsAt(moved, addr).join(' ')}`);
      assert.ok(m.retracted?.some((x) => x.startsWith(`${addr}-`) && / dd$| dd /.test(`${x} `)), `the guess was retracted for ${addr}: ${JSON.stringify(m.retracted)}`);
      assert.equal(m.vmFlags, 'read', 'the round taken again read its flags');
      await countsGrow(out);
      assert.match(await memCheck(moved, out), /mem=ok/);
      assertConsecutive(out, 20);
      // The retracted round is gone from the source store: one final round, with the exact flags.
      const finals = srcStore.list().filter((c) => c.label === 'migration: final');
      assert.equal(finals.length, 1);
      const mapping = srcStore.getState(finals[0]!.id).mappings.find((x) => x.start.toString(16) === addr)!;
      assert.ok(mapping.vmFlags.includes('dd'));
      assert.deepEqual(srcStore.verify().problems, []);
      assert.deepEqual(dst.verify().problems, []);
      const stored = dst.list().filter((c) => !c.restoredFrom).at(-1)!;
      assert.ok(dst.getState(stored.id).mappings.find((x) => x.start.toString(16) === addr)!.vmFlags.includes('dd'));
    } finally {
      t.kill();
      if (moved) killQuietly(moved);
      dst.close();
    }
  });
});

test('the destination fails while it builds the process from a round sent before its flags were checked: the source runs on untouched, its last round kept exact, the destination keeps nothing', async () => {
  await withStore(async (srcStore, dir) => {
    const out = join(dir, 'out.txt');
    const t = spawnDetached([counter, out, '8', '200'], { cwd: dir });
    const dst = openStore(join(dir, 'dst'));
    let built = false;
    try {
      await waitFor('the counter to start', () => fileLines(out).length > 20);
      const { migrated, served } = await session(srcStore, dst, t.pid, { smallRound: 0, maxRounds: 3, guessVmFlags: 'always' }, {
        prepared: (p) => preparedWith(p, {
          // The real build of the last round, then a failure before the source's word arrives.
          finishHeld: () => {
            p.finishHeld();
            built = true;
            p.abandon();
            throw new StasisError('INTERNAL', 'injected: the destination failed while building the process');
          },
        }),
      });
      await assert.rejects(migrated, (e: unknown) => {
        assert.ok(e instanceof StasisError);
        assert.match(e.message, /injected: the destination failed.*frozen for the last round and now runs on here untouched/s);
        return true;
      });
      assert.ok(built, 'the failure came once the held round was built there');
      const res = await served;
      assert.equal(res.restored, undefined);
      assert.equal(res.discarded, true);
      assert.equal(dst.list().length, 0, 'the destination keeps nothing of the session');
      assert.deepEqual(dst.verify().problems, []);
      assert.ok(t.alive());
      await countsGrow(out);
      assert.match(await memCheck(t.pid, out), /mem=ok/);
      assertConsecutive(out, 20);
      // Its last round was confirmed exact before `run`: kept, durable, restorable.
      const again = openStore(srcStore.dir);
      try {
        assert.equal(again.list().at(-1)!.label, 'migration: final');
        assert.deepEqual(again.verify().problems, []);
        for (const c of again.list()) assert.equal(preflight(again, c.id).ok, true);
      } finally { again.close(); }
    } finally {
      t.kill();
      dst.close();
    }
  });
});

test('an older destination (no confirmRun in its hello) gets the last round with its flags read first, as before, and the process moves', async () => {
  await withStore(async (srcStore, dir) => {
    const out = join(dir, 'out.txt');
    const t = spawnDetached([counter, out, '8', '200'], { cwd: dir });
    const dst = openStore(join(dir, 'dst'));
    let moved = 0;
    try {
      await waitFor('the counter to start', () => fileLines(out).length > 20);
      const seen: string[] = [];
      const { migrated, served } = await session(srcStore, dst, t.pid, { smallRound: 0, maxRounds: 3, guessVmFlags: 'always' }, {
        hello: (h) => {
          const { confirmRun: _drop, ...older } = h;
          return older;
        },
        prepared: (p) => preparedWith(p, { finishHeld: () => { seen.push('finishHeld'); return p.finishHeld(); } }),
      });
      const m = await migrated;
      moved = m.destination!.pid;
      assert.equal(m.vmFlags, 'read');
      assert.ok(!m.destination!.steps.some((s) => s.step === 'waited for the source\'s run'));
      assert.deepEqual(seen, [], 'no round was held for run');
      assert.ok((await served).restored);
      await countsGrow(out);
      assert.match(await memCheck(moved, out), /mem=ok/);
      assertConsecutive(out, 20);
    } finally {
      t.kill();
      if (moved) killQuietly(moved);
      dst.close();
    }
  });
});

test('the link breaks while the destination holds the process built from a round sent before its flags were checked: it kills that process and keeps nothing; the source runs on untouched', async () => {
  await withStore(async (srcStore, dir) => {
    const out = join(dir, 'out.txt');
    const t = spawnDetached([counter, out, '8', '200'], { cwd: dir });
    const dst = openStore(join(dir, 'dst'));
    let built = 0;
    try {
      await waitFor('the counter to start', () => fileLines(out).length > 20);
      const { rd, served, toDst } = crossedSession(dst, {
        beginImport: (total) => dst.beginImport(total),
        prepare: async (id) => {
          const p = prepareRestore(dst, id);
          return preparedWith(p, { finishHeld: () => { const h = p.finishHeld(); built = p.pid; return h; } });
        },
      });
      // The source's end of the link: the `run` never arrives, the link is cut instead.
      const srcWriter = new FrameWriter(toDst);
      const send = srcWriter.send.bind(srcWriter);
      srcWriter.send = async (m) => {
        if (m.t !== 'run') return send(m);
        toDst.destroy();
        throw new Error('injected: the link broke before run');
      };
      await assert.rejects(migrate(srcStore, t.pid, rd, srcWriter, { smallRound: 0, maxRounds: 3, guessVmFlags: 'always' }), /injected: the link broke before run.*now runs on here untouched/s);
      const res = await served;
      assert.equal(res.restored, undefined);
      assert.ok(built > 0, 'the destination had built the held process');
      await waitFor('the held process there to be gone', () => { try { return readFileSync(`/proc/${built}/stat`, 'utf8').split(') ')[1]![0] === 'Z'; } catch { return true; } });
      assert.equal(res.discarded, true);
      assert.equal(dst.list().length, 0, 'the destination keeps nothing of the session');
      assert.deepEqual(dst.verify().problems, []);
      assert.ok(t.alive());
      await countsGrow(out);
      assert.match(await memCheck(t.pid, out), /mem=ok/);
      assertConsecutive(out, 20);
      assert.deepEqual(srcStore.verify().problems, []);
    } finally {
      t.kill();
      dst.close();
    }
  });
});
