/**
 * Live migration of a process tree with real parts: test/fixtures/tree-counter.c (a parent and two
 * children counting and talking through one pipe, each checking its own memory), two real stores,
 * two Stasis processes joined by a pipe (`--pipe 'stasis receive'`) or by TLS between two network
 * namespaces (test/helpers/two-hosts.ts). Both stores are on this machine, where the source tree's
 * PIDs are taken until it is killed, so the moves ask for new PIDs (`--no-pid`, which this fixture
 * does not mind) and the dry run without it shows the destination refusing exactly that.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { buildFixture } from '../helpers/fixtures';
import { crossedSession } from '../helpers/crossed-session';
import { spawnDetached } from '../helpers/spawn';
import { twoHosts, storeIds } from '../helpers/two-hosts';
import { fileLines, isAlive, killQuietly, sleep, waitFor, withStore } from '../restore/helpers';
import { openStore } from '../../electron/engine/store';
import { FrameReader, FrameWriter } from '../../electron/engine/migrate/wire';
import { migrate } from '../../electron/engine/migrate/source';
import { groupAsTree } from '../../electron/engine/migrate/tree-group';
import type { DestinationDeps } from '../../electron/engine/migrate/destination';
import { prepareMigrationRestore, restore } from '../../electron/engine/restore';
import { checkpointTree } from '../../electron/engine/capture';
import type { Store } from '../../electron/engine/store/api';
import { StasisError } from '../../shared/errors';

const root = fileURLToPath(new URL('../..', import.meta.url));
const bin = join(root, 'bin', 'stasis.js');
const fixture = buildFixture('tree-counter');
const hosts = twoHosts('mt');
before(() => hosts.setup());
after(() => hosts.teardown());

interface Run { code: number; stdout: string; stderr: string }
function stasis(store: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, '--store', store, ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

interface MigrateJson {
  rounds: { kind: string; pages: number; pagesSent: number; bytes: number }[]; bytesSent: number; downtimeMs?: number;
  destination?: { pid: number; prepared: boolean }; tree?: { members: { pid: number; comm: string; destinationPid: number | null }[]; frozenPages?: number; preCopied?: number };
}

/** The parent's lines "C N TOTAL F P", checked: each child's steps and the parent's total consecutive, every memory check k. */
function assertIntact(out: string): { a: number; b: number; total: number } {
  const seen = { A: 0, B: 0 } as Record<string, number>;
  let total = 0;
  for (const l of fileLines(out)) {
    if (l === 'ready' || l.startsWith('grew ')) continue;
    const m = /^([AB]) (\d+) (\d+) ([kx]) ([kx])$/.exec(l);
    assert.ok(m, `a line the tree did not write whole: "${l}"`);
    const [, who, n, t, child, parent] = m;
    assert.equal(Number(n), seen[who!]! + 1, `child ${who} step ${seen[who!]! + 1} is ${n}: a step was lost or repeated (in the pipe or in its memory)`);
    assert.equal(Number(t), total + 1, `the parent's total ${total + 1} is ${t}`);
    assert.equal(child, 'k', `child ${who}'s memory check failed at step ${n}`);
    assert.equal(parent, 'k', `the parent's memory check failed at total ${t}`);
    seen[who!] = Number(n);
    total = Number(t);
  }
  return { a: seen.A!, b: seen.B!, total };
}

function childrenOf(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
}

/** Process state letter (R, S, t, T, Z...), or null when gone. */
function stateOf(pid: number): string | null {
  try { return /\) (\S) /.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1] ?? null; } catch { return null; }
}

async function goesOn(out: string, by = 20): Promise<void> {
  const n = fileLines(out).length;
  await waitFor('the tree to go on counting', () => fileLines(out).length > n + by, 15_000);
}

async function startTree(dir: string, mib = 4, rate = 100, shared = false): Promise<{ t: ReturnType<typeof spawnDetached>; out: string; kids: number[] }> {
  const out = join(dir, 'out.txt');
  const t = spawnDetached([fixture, out, String(mib), String(rate), ...(shared ? ['16', 'shared'] : [])], { cwd: dir });
  await waitFor('the tree to count', () => fileLines(out).length > 20);
  return { t, out, kids: childrenOf(t.pid) };
}

/** The moved tree: the source's processes all killed, the destination's three counting on with nothing lost. */
async function checkMoved(m: MigrateJson, src: { t: ReturnType<typeof spawnDetached>; out: string; kids: number[] }): Promise<void> {
  assert.equal(m.rounds[0]!.kind, 'full');
  assert.equal(m.rounds.at(-1)!.kind, 'final');
  assert.ok(typeof m.downtimeMs === 'number' && m.downtimeMs > 0);
  const members = m.tree!.members;
  assert.deepEqual(members.map((x) => x.pid).sort(), [src.t.pid, ...src.kids].sort());
  assert.ok(members.every((x) => x.destinationPid !== null && isAlive(x.destinationPid)), JSON.stringify(members));
  const gone = await src.t.waitExit(10_000);
  assert.equal(gone.signal, 9, 'the source root was killed');
  for (const k of src.kids) await waitFor(`source child ${k} to be gone`, () => stateOf(k) === null, 5000);
  const before = assertIntact(src.out);
  await goesOn(src.out);
  const now = assertIntact(src.out);
  assert.ok(now.a > before.a && now.b > before.b, `both children count on there: ${JSON.stringify([before, now])}`);
}

test('migrate --pipe of a tree: a parent and two children talking through a pipe move to another store and count on, no step lost, the source tree gone', async () => {
  await withStore(async (_s, dir) => {
    const src = await startTree(dir, 8, 100);
    const dst = join(dir, 'dst');
    let moved: number[] = [];
    try {
      const r = await stasis(join(dir, 'src'), ['--json', 'migrate', String(src.t.pid), '--no-pid', '--pipe', `${process.execPath} ${bin} --store ${dst} receive`]);
      assert.equal(r.code, 0, r.stderr);
      const m = JSON.parse(r.stdout) as MigrateJson;
      moved = m.tree!.members.map((x) => x.destinationPid!);
      assert.ok(m.rounds.length >= 2, JSON.stringify(m.rounds));
      const full = m.rounds[0]!;
      assert.ok(full.pages >= 3 * 8 * 256, `the full round carries the three buffers: ${full.pages} pages`);
      // Each member's later rounds continue its copy there: only what changed is read, sent and imported.
      assert.ok(m.rounds.slice(1).every((x) => x.pages < full.pages / 4), `later rounds carry only what changed: ${JSON.stringify(m.rounds)}`);
      assert.equal(m.destination!.prepared, true, JSON.stringify(m.destination));
      // Pre-copy per member: the held last round read only what the tree wrote since its live read.
      assert.equal(m.tree!.preCopied, 3);
      assert.ok(m.tree!.frozenPages! < full.pages / 4, `pages read while the tree was held: ${m.tree!.frozenPages} of ${full.pages}`);
      assert.match(r.stderr, /Migrated process \d+ runs here as pid \d+/);
      await checkMoved(m, src);
    } finally {
      src.t.kill();
      for (const k of src.kids) killQuietly(k);
      for (const p of moved.reverse()) killQuietly(p);
    }
  });
});

test('migrate --to of a tree over TLS between two network namespaces (127.0.0.1 without them): it counts on there, the source tree gone', async () => {
  await withStore(async (_s, dir) => {
    const src = await startTree(dir);
    let moved: number[] = [];
    try {
      const rx = await hosts.receiver(join(dir, 'dst'));
      const r = await hosts.run(join(dir, 'src'), ['--json', 'migrate', String(src.t.pid), '--no-pid', '--to', rx.addr, '--token', rx.token]);
      assert.equal(r.code, 0, r.stderr);
      const m = JSON.parse(r.stdout) as MigrateJson;
      moved = m.tree!.members.map((x) => x.destinationPid!);
      const recv = await rx.done;
      assert.equal(recv.code, 0, recv.stderr);
      const got = JSON.parse(recv.stdout) as { migration: { restored: { pid: number; members: { pid: number }[] } } };
      assert.deepEqual(got.migration.restored.members.map((x) => x.pid).sort(), [...moved].sort());
      if (hosts.netns) {
        // The restored tree lives in the receiver's network namespace.
        assert.equal(readFileSync(`/proc/${moved[0]}/net/dev`, 'utf8').includes(`${hosts.nsB.slice(0, -1)}y`), true);
      }
      await checkMoved(m, src);
    } finally {
      src.t.kill();
      for (const k of src.kids) killQuietly(k);
      for (const p of moved.reverse()) killQuietly(p);
    }
  });
});

test('migrate --dry-run of a tree runs the destination\'s pre-flight of the whole tree: its PIDs taken there are refused with the reason, --no-pid passes; nothing stops, the destination keeps nothing', async () => {
  await withStore(async (_s, dir) => {
    const src = await startTree(dir);
    const dst = join(dir, 'dst');
    try {
      const pipe = `${process.execPath} ${bin} --store ${dst} receive`;
      const taken = await stasis(join(dir, 'src'), ['migrate', String(src.t.pid), '--dry-run', '--pipe', pipe]);
      assert.equal(taken.code, 1, taken.stdout);
      assert.match(taken.stderr, new RegExp(`cannot restore the tree of process ${src.t.pid} \\(3 processes\\): PIDs of the tree: .*PID ${src.t.pid} is taken.*--no-pid.*the tree runs on here`, 's'));
      const ok = await stasis(join(dir, 'src'), ['migrate', String(src.t.pid), '--dry-run', '--no-pid', '--pipe', pipe]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /Dry run: the destination's pre-flight for process \d+ passes/);
      assert.match(ok.stdout, /\[ok\] PIDs of the tree: New PIDs were asked for/);
      assert.match(ok.stdout, /\[ok\] Working directory exists \(process \d+, tree-counter\)/);
      for (const p of [src.t.pid, ...src.kids]) assert.match(stateOf(p) ?? 'gone', /^[RS]$/, `process ${p} runs on`);
      await goesOn(src.out);
      assertIntact(src.out);
      assert.deepEqual(storeIds(dst), [], 'the destination discarded both dry runs');
    } finally {
      src.t.kill();
      for (const k of src.kids) killQuietly(k);
    }
  });
});

test('a member that exits mid-migration: the held last round is refused, every other process resumes untouched and the destination discards everything', async () => {
  await withStore(async (srcStore, dir) => {
    const src = await startTree(dir);
    const dst = openStore(join(dir, 'dst'));
    const victim = src.kids[1]!;
    try {
      // No store for offers: the full round, then straight to the held last round, which finds the member gone.
      const { rd, wr, served } = crossedSession(dst);
      await assert.rejects(migrate(srcStore, src.t.pid, rd, wr, {
        samePid: false,
        onRound: (x) => {
          if (x.round !== 1) return;
          process.kill(victim, 'SIGKILL');
          const end = Date.now() + 5000;
          while (stateOf(victim) !== 'Z' && Date.now() < end) { /* its parent never reaps it */ }
        },
      }), (e: unknown) => {
        assert.ok(e instanceof StasisError, String(e));
        assert.equal(e.code, 'PROCESS_GONE');
        assert.match(e.message, new RegExp(`process ${victim} \\(tree-counter\\) of the tree exited during the migration.*Every process was frozen for the last round and now runs on here untouched; the destination discards`, 's'));
        return true;
      });
      const res = await served;
      assert.equal(res.restored, undefined);
      assert.equal(res.discarded, true);
      assert.equal(dst.list().length, 0, 'nothing of the session is visible on the destination');
      // The rest of the tree was released, not left stopped: it counts on.
      for (const p of [src.t.pid, src.kids[0]!]) assert.match(stateOf(p) ?? 'gone', /^[RS]$/, `process ${p} runs on`);
      const tracer = (p: number): string => /TracerPid:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? '?';
      assert.equal(tracer(src.t.pid), '0');
      assert.equal(tracer(src.kids[0]!), '0');
      const n = fileLines(src.out).filter((l) => l.startsWith('A ')).length;
      await waitFor('child A to go on counting', () => fileLines(src.out).filter((l) => l.startsWith('A ')).length > n + 10, 10_000);
      assertIntact(src.out);
    } finally {
      src.t.kill();
      for (const k of src.kids) killQuietly(k);
      dst.close();
    }
  });
});

test('a tree whose member is traced by another program is refused with the reason before anything is frozen for good; it runs on and nothing is sent', async () => {
  await withStore(async (_s, dir) => {
    const src = await startTree(dir);
    const log = join(dir, 'tracer.log');
    const kid = src.kids[0]!;
    // Held until killed below (long enough for a loaded machine).
    const tracer = spawnDetached([buildFixture('schedule-tracer'), String(kid), '120000'], { log });
    const dst = join(dir, 'dst');
    try {
      await waitFor('the tracer to attach', () => fileLines(log).includes('seized'));
      const r = await stasis(join(dir, 'src'), ['migrate', String(src.t.pid), '--no-pid', '--pipe', `${process.execPath} ${bin} --store ${dst} receive`]);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, new RegExp(`Process ${kid} \\(tree-counter\\), a child of ${src.t.pid}, is traced by process ${tracer.pid} \\(schedule-tracer\\).*The tree runs on here untouched; the destination discards`, 's'));
      assert.deepEqual(storeIds(join(dir, 'src')), [], 'no checkpoint was kept here');
      assert.deepEqual(storeIds(dst), []);
      tracer.kill();
      await waitFor('the tracer to let go', () => !isAlive(tracer.pid), 5000);
      for (const p of [src.t.pid, ...src.kids]) await waitFor(`process ${p} to run`, () => /^[RS]$/.test(stateOf(p) ?? ''), 5000);
      await goesOn(src.out);
      assertIntact(src.out);
    } finally {
      tracer.kill();
      src.t.kill();
      for (const k of src.kids) killQuietly(k);
    }
  });
});

test('a destination whose session breaks after it restored the tree (no \'done\') kills every process of it, not just the root; the checkpoints stay', async () => {
  await withStore(async (srcStore, dir) => {
    const src = await startTree(dir);
    const dst = openStore(join(dir, 'dst'));
    let there: number[] = [];
    try {
      const { rd, served, toDst } = crossedSession(dst, {
        store: dst,
        beginImport: (total) => dst.beginImport(total, { name: 'incoming round' }),
        groupTree: async (ids) => groupAsTree(dst, ids),
      });
      // The link breaks right where the source would confirm.
      class CutBeforeDone extends FrameWriter {
        override send(msg: { t: string } & Record<string, unknown>): Promise<void> {
          if (msg.t === 'done') { toDst.end(); return Promise.reject(new Error('link cut')); }
          return super.send(msg);
        }
      }
      const m = await migrate(srcStore, src.t.pid, rd, new CutBeforeDone(toDst), { samePid: false });
      assert.match(m.destination!.warning ?? '', /did not confirm that it keeps the tree/);
      assert.ok(m.rounds.length >= 2 && m.rounds.slice(1).every((x) => x.pages < m.rounds[0]!.pages / 4), JSON.stringify(m.rounds));
      const res = await served;
      there = res.restored!.members!.map((x) => x.pid);
      assert.equal(there.length, 3);
      assert.match(res.failure ?? '', /connection closed before the source confirmed/);
      for (const p of there) await waitFor(`restored process ${p} to be killed`, () => /^[ZX]?$/.test(stateOf(p) ?? ''), 5000);
      assert.ok(dst.list().length > 0, 'the checkpoints are kept (restorable)');
    } finally {
      src.t.kill();
      for (const k of src.kids) killQuietly(k);
      for (const p of there.reverse()) killQuietly(p);
      dst.close();
    }
  });
});

test('a destination of an older Stasis (its hello does not say trees) is refused before anything is frozen or saved; the tree runs on', async () => {
  await withStore(async (srcStore, dir) => {
    const src = await startTree(dir);
    try {
      const toDst = new PassThrough();
      const toSrc = new PassThrough();
      const rd = new FrameReader(toDst);
      const wr = new FrameWriter(toSrc);
      // What an older destination answers: no `trees`, so it would kill only the root after a failure.
      const old = (async () => {
        await rd.magic();
        const hello = await rd.expect<{ tree?: unknown }>('hello');
        await wr.send({ t: 'hello', host: 'old', negotiate: false, memoryRound: true, footerLast: true });
        const next = await rd.next();
        return { hello, next: next && next.type === 'json' ? next.msg : null };
      })();
      await assert.rejects(migrate(srcStore, src.t.pid, new FrameReader(toSrc), new FrameWriter(toDst), { samePid: false }), (e: unknown) => {
        assert.ok(e instanceof StasisError);
        assert.equal(e.code, 'UNSUPPORTED');
        assert.match(e.message, /does not take process trees .*Nothing was frozen.*The tree runs on here untouched/s);
        return true;
      });
      const seen = await old;
      assert.equal(seen.hello.tree, true, 'the source said it sends a tree');
      assert.equal(seen.next?.t, 'abort');
      assert.equal(srcStore.list().length, 0, 'no checkpoint was taken');
      for (const p of [src.t.pid, ...src.kids]) assert.match(stateOf(p) ?? 'gone', /^[RS]$/);
      await goesOn(src.out);
      assertIntact(src.out);
    } finally {
      src.t.kill();
      for (const k of src.kids) killQuietly(k);
    }
  });
});

/** A destination that groups member rounds and builds the tree ahead (what `stasis receive` gives). */
function preparingDestination(dst: Store): Partial<DestinationDeps> {
  return {
    store: dst,
    beginImport: (total) => dst.beginImport(total, { name: 'incoming round' }),
    groupTree: async (ids) => groupAsTree(dst, ids),
    prepare: async (id, how) => prepareMigrationRestore(dst, id, { ...how }),
  };
}

test('a tree whose children write private and MAP_SHARED memory and talk through a pipe is built on the destination from round 1, absorbs each later round member by member, and counts on exact from the prepared tree', async () => {
  await withStore(async (srcStore, dir) => {
    const src = await startTree(dir, 8, 100, true);
    const dst = openStore(join(dir, 'dst'));
    let there: number[] = [];
    try {
      const { rd, wr, served } = crossedSession(dst, preparingDestination(dst));
      const m = await migrate(srcStore, src.t.pid, rd, wr, { samePid: false });
      const res = await served;
      there = res.restored!.members!.map((x) => x.pid);
      assert.equal(m.destination!.prepared, true, JSON.stringify(m.destination));
      assert.equal(res.restored!.prepared, true);
      assert.ok(typeof m.destination!.prepareMs === 'number' && m.destination!.unprepared === undefined, JSON.stringify(m.destination));
      assert.ok(m.rounds.length >= 2, JSON.stringify(m.rounds));
      // Every later round, the last one included, was written into the tree built ahead.
      assert.ok(m.rounds.slice(1).every((x) => x.absorbed), JSON.stringify(m.rounds));
      // The downtime's restore is the last round's changes and the kernel state: no member's memory built from scratch.
      const steps = m.destination!.steps.map((x) => x.step);
      assert.ok(!steps.some((x) => x.startsWith('memory contents') || x.startsWith('fork')), steps.join(', '));
      assert.ok(steps.some((x) => x.startsWith('memory changes')), steps.join(', '));
      assert.equal(there.length, 3);
      // Grouped into one tree checkpoint once the tree ran (not in the downtime), and named to the source.
      assert.equal(res.restored!.checkpointId, m.destination!.checkpointId);
      assert.equal(dst.get(m.destination!.checkpointId)?.tree?.size, 3);
      // The running tree's timeline entry follows that tree checkpoint, as one restored from scratch does.
      const grouped = new Set(dst.treeMembers(m.destination!.checkpointId));
      const branch = dst.list().filter((c) => c.label === `restored from #${m.destination!.checkpointId}`);
      assert.equal(branch.length, 3, JSON.stringify(dst.list().map((c) => [c.id, c.parentId, c.label])));
      assert.ok(branch.every((c) => c.parentId !== null && grouped.has(c.parentId)), JSON.stringify(branch.map((c) => [c.id, c.parentId])));
      await checkMoved(m as MigrateJson, src);
      // The shared area too: each child's half sums to what it wrote, and the parent sees the children's writes.
      assert.ok(fileLines(src.out).filter((l) => /^[AB] /.test(l)).length > 0);
    } finally {
      src.t.kill();
      for (const k of src.kids) killQuietly(k);
      for (const p of there.reverse()) killQuietly(p);
      dst.close();
    }
  });
});

test('a tree that gains a process before its last round is not finished from the tree built ahead: the destination restores the last round from scratch, and it is exact', async () => {
  await withStore(async (srcStore, dir) => {
    const src = await startTree(dir, 8, 100, true);
    const dst = openStore(join(dir, 'dst'));
    let there: number[] = [];
    let grown = 0;
    try {
      const { rd, wr, served } = crossedSession(dst, preparingDestination(dst));
      const m = await migrate(srcStore, src.t.pid, rd, wr, {
        samePid: false, maxRounds: 2,
        onRound: (x) => {
          if (x.round !== 2) return;
          // The parent forks a sleeper: the last round has a fourth process the tree built ahead lacks.
          process.kill(src.t.pid, 'SIGUSR2');
          const end = Date.now() + 5000;
          while (childrenOf(src.t.pid).length < 3 && Date.now() < end) { /* busy: onRound is synchronous */ }
          grown = childrenOf(src.t.pid).find((k) => !src.kids.includes(k)) ?? 0;
        },
      });
      const res = await served;
      there = res.restored!.members!.map((x) => x.pid);
      assert.ok(grown > 0, 'the tree grew');
      assert.equal(m.rounds.length, 3, JSON.stringify(m.rounds));
      assert.equal(m.rounds[1]!.absorbed, true, 'round 2 went into the tree built ahead');
      assert.equal(m.destination!.prepared, false, JSON.stringify(m.destination));
      assert.equal(res.restored!.prepared, false);
      assert.match(m.destination!.unprepared ?? '', /changed what it had built ahead/);
      assert.equal(there.length, 4);
      assert.ok(m.destination!.steps.some((x) => x.step.startsWith('memory contents')), 'restored from scratch');
      assert.ok(there.every((p) => isAlive(p)));
      killQuietly(grown);
      await checkMoved({ ...(m as MigrateJson), tree: { ...m.tree!, members: m.tree!.members.filter((x) => x.pid !== grown) } }, src);
    } finally {
      src.t.kill();
      for (const k of [...src.kids, grown]) if (k) killQuietly(k);
      for (const p of there.reverse()) killQuietly(p);
      dst.close();
    }
  });
});

test('a prepared tree absorbs a later tree checkpoint whose pipe holds bytes the first did not: finished, it is that later checkpoint exactly, the bytes in flight included', async () => {
  await withStore(async (store, dir) => {
    const src = await startTree(dir, 4, 100, true);
    let there: number[] = [];
    try {
      const c1 = checkpointTree(store, src.t.pid, { full: true });
      const p = prepareMigrationRestore(store, c1.id, { samePid: false });
      // The parent stops reading: the children's records wait in the pipe between them.
      process.kill(src.t.pid, 'SIGSTOP');
      await waitFor('the parent to stop', () => stateOf(src.t.pid) === 'T', 5000);
      await sleep(300);
      const c2 = checkpointTree(store, src.t.pid, { mode: 'kill' });
      const waiting = store.getState(c2.id).fds.map((f) => f.info?.pipeData).find((d) => typeof d === 'string' && d.length > 0);
      assert.ok(waiting, 'records wait in the pipe at the second checkpoint');
      assert.equal(p.absorb(c2.id), true, 'the second tree checkpoint is absorbed');
      assert.equal(p.checkpointId, c2.id);
      const r = p.finish();
      p.record();
      there = r.members!.map((m) => m.pid);
      assert.equal(there.length, 3);
      assert.ok(r.steps.every((x) => !x.step.startsWith('memory contents')), 'finished from the memory built ahead');
      // It was checkpointed stopped, so it comes back stopped.
      await waitFor('the restored parent to be stopped', () => stateOf(r.pid) === 'T', 5000);
      process.kill(r.pid, 'SIGCONT');
      await goesOn(src.out);
      assertIntact(src.out);
    } finally {
      src.t.kill();
      for (const k of src.kids) killQuietly(k);
      for (const x of there.reverse()) killQuietly(x);
    }
  });
});

test('a prepared tree that is abandoned frees every PID it took: the restore from scratch that follows (a destination falling back) gets them all back', async () => {
  await withStore(async (store, dir) => {
    const src = await startTree(dir, 4, 100);
    const restored: number[] = [];
    try {
      const c = checkpointTree(store, src.t.pid, { mode: 'kill' });
      await src.t.waitExit();
      const pids = c.members.map((m) => m.pid);
      await waitFor('the original processes to be gone', () => pids.every((x) => stateOf(x) === null));
      const p = prepareMigrationRestore(store, c.id);
      assert.equal(p.pid, src.t.pid, 'the prepared tree holds the original PIDs');
      p.abandon();
      // Killed, children first; init reaps them (slowly in some VMs: the restore's pre-flight waits 1 s for zombies).
      await waitFor('the prepared processes to be gone', () => pids.every((x) => stateOf(x) === null));
      const r = restore(store, c.id);
      restored.push(...r.members!.map((m) => m.pid));
      assert.ok(r.members!.every((m) => m.samePid), JSON.stringify(r.members));
      await goesOn(src.out);
      assertIntact(src.out);
    } finally {
      src.t.kill();
      for (const k of src.kids) killQuietly(k);
      for (const x of restored.reverse()) killQuietly(x);
    }
  });
});
