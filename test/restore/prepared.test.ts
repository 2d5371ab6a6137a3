/**
 * A prepared restore (restore/index.ts prepareRestore: what a migration destination builds from an
 * earlier round while the source runs) must end with exactly the memory a restore from scratch of
 * the later checkpoint gives. The fixture (test/fixtures/restore-rounds.c) changes its memory
 * between two checkpoints in every way a round can: rewritten and zeroed private and shared
 * anonymous pages, private file pages copied then dropped back to the file, whole ranges dropped,
 * and checks itself against both phases after the restore.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached } from '../helpers/spawn';
import { fileLines, killQuietly, waitFor, withStore } from './helpers';
import { checkpoint } from '../../electron/engine/capture';
import { prepareRestore } from '../../electron/engine/restore';
import type { Store } from '../../electron/engine/store';

const bin = buildFixture('restore-rounds');

async function twoRounds(store: Store, dir: string, layout: boolean): Promise<{ first: number; second: number; out: string }> {
  const out = join(dir, 'out.txt');
  const t = spawnDetached([bin, out, join(dir, 'file.bin'), ...(layout ? ['layout'] : [])], { cwd: dir });
  try {
    await waitFor('phase 1', () => fileLines(out).includes('ready1'));
    const first = checkpoint(store, t.pid).id;
    t.kill('SIGUSR1');
    await waitFor('phase 2', () => fileLines(out).includes('ready2'));
    const second = checkpoint(store, t.pid, { mode: 'kill' }).id;
    await t.waitExit(5000);
    assert.equal(store.get(second)!.parentId, first, 'the second checkpoint is an incremental of the first');
    return { first, second, out };
  } finally {
    t.kill();
  }
}

async function phaseOf(pid: number, out: string): Promise<string> {
  process.kill(pid, 'SIGUSR2');
  await waitFor('the memory check', () => fileLines(out).some((l) => l.startsWith(`check pid=${pid} `)), 10_000);
  return fileLines(out).find((l) => l.startsWith(`check pid=${pid} `))!;
}

test('a restore prepared from the first checkpoint and caught up with the second holds exactly the second one\'s memory', async () => {
  await withStore(async (store, dir) => {
    const { first, second, out } = await twoRounds(store, dir, false);
    const p = prepareRestore(store, first, { samePid: false });
    let pid = 0;
    try {
      assert.equal(p.absorb(second), true, 'same layout: the round is written in');
      assert.equal(p.checkpointId, second);
      const r = p.finish();
      pid = r.pid;
      assert.equal(r.checkpointId, second);
      assert.match(await phaseOf(pid, out), /phase=2 first=-$/);
    } finally {
      if (pid) killQuietly(pid); else p.abandon();
    }
  });
});

test('without the second round the prepared process holds the first one (the check can tell them apart)', async () => {
  await withStore(async (store, dir) => {
    const { first, out } = await twoRounds(store, dir, false);
    const r = prepareRestore(store, first, { samePid: false }).finish();
    try {
      assert.match(await phaseOf(r.pid, out), /phase=1 /);
    } finally {
      killQuietly(r.pid);
    }
  });
});

test('a round that changed the memory layout is not absorbed; the prepared restore stays valid for the earlier checkpoint', async () => {
  await withStore(async (store, dir) => {
    const { first, second, out } = await twoRounds(store, dir, true);
    const p = prepareRestore(store, first, { samePid: false });
    let pid = 0;
    try {
      assert.equal(p.absorb(second), false, 'a new mapping: not the same layout');
      assert.equal(p.absorb(first), false, 'not a child of the prepared checkpoint');
      assert.equal(p.checkpointId, first);
      const r = p.finish();
      pid = r.pid;
      assert.match(await phaseOf(pid, out), /phase=1 /);
    } finally {
      if (pid) killQuietly(pid); else p.abandon();
    }
  });
});

test('the self-check compares pages given in memory byte for byte: a later run that overwrites an earlier one fails the absorb', async () => {
  await withStore(async (store, dir) => {
    const { first, second } = await twoRounds(store, dir, false);
    const p = prepareRestore(store, first, { samePid: false });
    const state = store.getState(second);
    const anon = state.mappings.find((m) => m.kind === 'anon' && m.perms.startsWith('rw') && m.end - m.start >= 8192n)!;
    // Two runs for one page (a broken delta): the first run's bytes are no longer there once both are written.
    const runs = [
      { vaddr: anon.start, pages: 1, data: Buffer.alloc(4096, 0x61) },
      { vaddr: anon.start, pages: 2, data: Buffer.alloc(8192, 0x62) },
    ];
    try {
      assert.throws(() => p.absorbDelta(state, { runs, absent: [] }), /Restore self-check: the page at 0x[0-9a-f]+ .*holds different bytes/);
    } finally {
      p.abandon();
    }
  });
});

test('a round whose mappings\' advice changed (MADV_DONTFORK, MADV_DONTDUMP, mlock since the first round) is not absorbed: the prepared memory holds the first round\'s advice', async () => {
  await withStore(async (store, dir) => {
    const out = join(dir, 'advice.out');
    const script = [
      'import mmap, os, signal, time',
      'm = mmap.mmap(-1, 1 << 20)',
      'm[::4096] = b"a" * 256',
      'go = []',
      'signal.signal(signal.SIGUSR1, lambda *a: go.append(1))',
      `open(${JSON.stringify(out)}, "w").write("ready1\\n")`,
      'while not go: time.sleep(0.02)',
      'm.madvise(mmap.MADV_DONTDUMP)',
      `open(${JSON.stringify(out)}, "a").write("ready2\\n")`,
      'time.sleep(60)',
    ].join('\n');
    const t = spawnDetached(['python3', '-c', script], { cwd: dir });
    try {
      await waitFor('first round', () => fileLines(out).includes('ready1'));
      const first = checkpoint(store, t.pid).id;
      t.kill('SIGUSR1');
      await waitFor('the advice', () => fileLines(out).includes('ready2'));
      const second = checkpoint(store, t.pid, { mode: 'kill' }).id;
      const advised = store.getState(second).mappings.find((m) => m.vmFlags.includes('dd') && m.end - m.start === 1n << 20n);
      assert.ok(advised, 'the second round saved the MADV_DONTDUMP flag');
      const p = prepareRestore(store, first, { samePid: false });
      try {
        assert.equal(p.absorb(second), false, 'the advice changed: restored from scratch, not absorbed');
      } finally {
        p.abandon();
      }
    } finally {
      t.kill();
    }
  });
});

/** The /proc/PID/stat state letter ('t': stopped under a tracer). */
function procState(pid: number): string {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return s.slice(s.lastIndexOf(')') + 2)[0]!;
}

test('finishHeld runs every step but the last and keeps the process stopped until run(); abandon() instead kills it', async () => {
  await withStore(async (store, dir) => {
    const { first, second, out } = await twoRounds(store, dir, false);
    const p = prepareRestore(store, first, { samePid: false });
    let pid = 0;
    try {
      assert.equal(p.absorb(second), true);
      const h = p.finishHeld();
      pid = p.pid;
      // Built, and stopped under our trace: it has not run a single instruction of its own yet.
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(procState(pid), 't');
      assert.equal(fileLines(out).filter((l) => l.startsWith(`check pid=${pid} `)).length, 0);
      const r = h.run();
      assert.equal(r.pid, pid);
      assert.ok(r.steps.some((s) => s.step === 'detach') && r.steps.some((s) => s.step === 'mm'), 'the result has every step');
      assert.match(await phaseOf(pid, out), /phase=2 first=-$/);
    } finally {
      if (pid) killQuietly(pid); else p.abandon();
    }
    // Abandoned while held: nothing is left running.
    const q = prepareRestore(store, first, { samePid: false });
    q.finishHeld();
    const held = q.pid;
    q.abandon();
    await waitFor('the held process to be gone', () => { try { return procState(held) === 'Z'; } catch { return true; } });
  });
});
