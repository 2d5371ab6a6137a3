/**
 * Live migration with real parts: a real counter process (test/fixtures/migrate-counter.c: it
 * appends every step to a file and checks its own memory on SIGUSR1), two real stores, and two
 * Stasis processes joined by a pipe (`--pipe 'stasis receive'`, as ssh would) or by TLS
 * (`receive --listen` / `migrate --to --token`). The counter must go on counting on the
 * destination with no step lost or repeated and its memory intact; the source process is killed
 * only after that. A dry run stops nothing; a source that exits mid-migration leaves nothing on
 * the destination; a continuation of a checkpoint the receiver lacks imports nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildFixture } from '../helpers/fixtures';
import { crossedSession } from '../helpers/crossed-session';
import { spawnDetached } from '../helpers/spawn';
import { fileLines, killQuietly, sleep, waitFor, withStore } from '../restore/helpers';
import { openStore } from '../../electron/engine/store';
import { checkpoint } from '../../electron/engine/capture';
import { migrate } from '../../electron/engine/migrate/source';
import { StasisError } from '../../shared/errors';
import { assertConsecutive, countsGrow, memCheck } from './counter-checks';

const root = fileURLToPath(new URL('../..', import.meta.url));
const bin = join(root, 'bin', 'stasis.js');
const counter = buildFixture('migrate-counter');

interface Run { code: number; stdout: string; stderr: string }
function stasis(store: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, '--store', store, ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** The counts the counter wrote, checked to be 1, 2, 3, ... with nothing lost or repeated. */
/** Asks the process to check its memory; returns its check line. */
interface MigrateJson { pid: number; dryRun: boolean; rounds: { kind: string; pages: number; pagesSent: number; bytes: number; absorbed: boolean }[]; bytesSent: number; downtimeMs?: number; destination?: { pid: number; checkpointId: number; prepared: boolean; unprepared?: string } }

test('migrate --pipe: a counter writing its memory moves to another store and goes on counting there, no step lost, memory intact; the source is killed only after', async () => {
  await withStore(async (_s, dir) => {
    const out = join(dir, 'out.txt');
    const src = join(dir, 'src');
    const dst = join(dir, 'dst');
    const t = spawnDetached([counter, out, '32', '200'], { cwd: dir });
    let moved = 0;
    try {
      await waitFor('the counter to start', () => fileLines(out).length > 20);
      const r = await stasis(src, ['--json', 'migrate', String(t.pid), '--pipe', `${process.execPath} ${bin} --store ${dst} receive`]);
      assert.equal(r.code, 0, r.stderr);
      const m = JSON.parse(r.stdout) as MigrateJson;
      moved = m.destination!.pid;
      assert.equal(m.rounds[0]!.kind, 'full');
      assert.equal(m.rounds.at(-1)!.kind, 'final');
      assert.ok(m.rounds[0]!.pages >= 32 * 256, `the full round carries the whole buffer: ${m.rounds[0]!.pages} pages`);
      assert.ok(m.rounds.at(-1)!.pages < m.rounds[0]!.pages / 10, `the final round carries only what changed: ${JSON.stringify(m.rounds)}`);
      assert.ok(typeof m.downtimeMs === 'number' && m.downtimeMs > 0);
      // The destination built the process from round 1 and wrote every later round into it.
      assert.equal(m.destination!.prepared, true, m.destination!.unprepared);
      assert.ok(m.rounds.slice(1).every((x) => x.absorbed), JSON.stringify(m.rounds));
      assert.match(r.stderr, /Migrated process \d+ runs here as pid \d+/, 'the receiver reports on stderr (its stdout is the session)');
      const gone = await t.waitExit(10_000);
      assert.equal(gone.signal, 9, 'the source was killed');
      await countsGrow(out);
      assert.match(await memCheck(moved, out), /mem=ok/);
      assertConsecutive(out);
      const d = openStore(dst);
      try {
        // Every round, plus the restored process's own first checkpoint (a branch recorded by restore).
        assert.equal(d.list().length, m.rounds.length + 1, JSON.stringify(d.list().map((c) => [c.id, c.mode, c.restoredFrom])));
      } finally { d.close(); }
    } finally {
      t.kill();
      if (moved) killQuietly(moved);
    }
  });
});

test('migrate --to over TLS with the pairing token; a wrong token is refused and the process runs on untouched', async () => {
  await withStore(async (_s, dir) => {
    const out = join(dir, 'out.txt');
    const src = join(dir, 'src');
    const dst = join(dir, 'dst');
    const t = spawnDetached([counter, out, '16', '200'], { cwd: dir });
    let moved = 0;
    const listen = (): Promise<{ addr: string; token: string; done: Promise<Run> }> => {
      const child = spawn(process.execPath, [bin, '--store', dst, '--json', 'receive', '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let so = '';
      let se = '';
      child.stdout.on('data', (d: Buffer) => { so += d.toString(); });
      const done = new Promise<Run>((resolve) => child.on('close', (code) => resolve({ code: code ?? 1, stdout: so, stderr: se })));
      setTimeout(() => child.kill('SIGKILL'), 60_000).unref();
      return new Promise((resolve) => {
        child.stderr.on('data', (d: Buffer) => {
          se += d.toString();
          const a = /Listening on (\S+)\n/.exec(se);
          const k = /Pairing token: (\S+)\n/.exec(se);
          if (a && k) resolve({ addr: a[1]!, token: k[1]!, done });
        });
      });
    };
    try {
      await waitFor('the counter to start', () => fileLines(out).length > 20);
      const l = await listen();
      const wrong = await stasis(src, ['migrate', String(t.pid), '--to', l.addr, '--token', `stasis1-${Buffer.alloc(32, 9).toString('base64url')}`]);
      assert.equal(wrong.code, 1);
      assert.match(wrong.stderr, /refused the pairing token/);
      await countsGrow(out);
      const r = await stasis(src, ['--json', 'migrate', String(t.pid), '--to', l.addr, '--token', l.token]);
      assert.equal(r.code, 0, r.stderr);
      const m = JSON.parse(r.stdout) as MigrateJson;
      moved = m.destination!.pid;
      const recv = await l.done;
      assert.equal(recv.code, 0, recv.stderr);
      const got = JSON.parse(recv.stdout) as { migration: { restored: { pid: number } } };
      assert.equal(got.migration.restored.pid, moved);
      await t.waitExit(10_000);
      await countsGrow(out);
      assert.match(await memCheck(moved, out), /mem=ok/);
      assertConsecutive(out);
    } finally {
      t.kill();
      if (moved) killQuietly(moved);
    }
  });
});

test('migrate --dry-run sends the first round and shows the destination\'s pre-flight; nothing is stopped and the destination keeps nothing', async () => {
  await withStore(async (_s, dir) => {
    const out = join(dir, 'out.txt');
    const dst = join(dir, 'dst');
    const t = spawnDetached([counter, out, '8', '200'], { cwd: dir });
    try {
      await waitFor('the counter to start', () => fileLines(out).length > 20);
      const r = await stasis(join(dir, 'src'), ['migrate', String(t.pid), '--dry-run', '--pipe', `${process.execPath} ${bin} --store ${dst} receive`]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /Dry run: the destination's pre-flight for process \d+ passes/);
      assert.match(r.stdout, /\[ok\] Working directory exists/);
      assert.ok(t.alive());
      await countsGrow(out);
      const d = openStore(dst);
      try { assert.equal(d.list().length, 0, 'the destination discarded the dry run'); } finally { d.close(); }
    } finally {
      t.kill();
    }
  });
});

test('a source process that exits mid-migration: a clear error, and the destination discards what it received and starts nothing', async () => {
  await withStore(async (srcStore, dir) => {
    const out = join(dir, 'out.txt');
    const t = spawnDetached([counter, out, '8', '500'], { cwd: dir });
    const dst = openStore(join(dir, 'dst'));
    try {
      await waitFor('the counter to start', () => fileLines(out).length > 20);
      // Two crossed pipes: the source's writes are the destination's reads and back.
      const { rd, wr, served } = crossedSession(dst);
      await assert.rejects(migrate(srcStore, t.pid, rd, wr, {
        // The counter dies right after the first round arrived, before the next checkpoint.
        onRound: (x) => { if (x.round === 1) { t.kill(); spawnSyncWait(t.pid); } },
        smallRound: 0,
      }), (e: unknown) => {
        assert.ok(e instanceof StasisError);
        assert.equal(e.code, 'PROCESS_GONE');
        assert.match(e.message, /exited.*The migration stopped after 1 round\(s\); the destination discards what it received and starts nothing/s);
        return true;
      });
      const res = await served;
      assert.equal(res.restored, undefined);
      assert.equal(res.discarded, true);
      assert.match(res.failure ?? '', /the source stopped the migration/);
      assert.equal(dst.list().length, 0);
    } finally {
      t.kill();
      dst.close();
    }
  });
});

/** Waits (bounded, synchronously enough for the callback) until pid is no longer a live process. */
function spawnSyncWait(pid: number): void {
  const end = Date.now() + 5000;
  while (Date.now() < end) {
    try {
      const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (/\) [ZX] /.test(st)) return;
    } catch { return; }
  }
}

test('a continuation stream of a checkpoint the receiver does not hold imports nothing and says what to send', async () => {
  await withStore(async (store, dir) => {
    const out = join(dir, 'out.txt');
    const t = spawnDetached([counter, out, '4', '200'], { cwd: dir });
    try {
      await waitFor('the counter to start', () => fileLines(out).length > 20);
      checkpoint(store, t.pid);
      await sleep(100);
      const b = checkpoint(store, t.pid);
      const file = join(dir, 'cont.stream');
      store.exportStream(b.id, file, 'one', { continues: 7 });
      const other = openStore(join(dir, 'other'));
      try {
        assert.throws(() => other.importStream(file), /continues checkpoint #7 of process \d+, which is not in .*nothing was imported/);
        assert.equal(other.list().length, 0);
      } finally { other.close(); }
      assert.throws(() => store.exportStream(1, join(dir, 'x'), 'one', { continues: 1 }), /a full checkpoint/);
      assert.ok(!existsSync(join(dir, 'x')));
    } finally {
      t.kill();
    }
  });
});

test('a multi-threaded python3 migrates through the prepared restore: every thread counts on there, no step lost or repeated', async () => {
  await withStore(async (_s, dir) => {
    const out = join(dir, 'out.txt');
    const t = spawnDetached(['python3', join(root, 'test/fixtures/migrate-threads.py'), out], { cwd: dir });
    let moved = 0;
    try {
      await waitFor('the threads to count', () => fileLines(out).length > 50, 10_000);
      const r = await stasis(join(dir, 'src'), ['--json', 'migrate', String(t.pid), '--pipe', `${process.execPath} ${bin} --store ${join(dir, 'dst')} receive`]);
      assert.equal(r.code, 0, r.stderr);
      const m = JSON.parse(r.stdout) as MigrateJson;
      moved = m.destination!.pid;
      assert.equal(m.destination!.prepared, true, m.destination!.unprepared);
      assert.equal(readFileSync(`/proc/${moved}/status`, 'utf8').match(/^Threads:\s+(\d+)/m)?.[1], '5');
      await t.waitExit(10_000);
      await countsGrow(out);
      assertConsecutive(out);
    } finally {
      t.kill();
      if (moved) killQuietly(moved);
    }
  });
});

test('a destination that already holds the process\'s pages (a copy sent earlier) gets only the rest: round 1 is negotiated by page hash', async () => {
  await withStore(async (_s, dir) => {
    const out = join(dir, 'out.txt');
    const src = join(dir, 'src');
    const dst = join(dir, 'dst');
    const t = spawnDetached([counter, out, '32', '50'], { cwd: dir });
    let moved = 0;
    try {
      await waitFor('the counter to start', () => fileLines(out).length > 5);
      // An earlier copy on the destination, as `send` or `send --follow` leaves there.
      const c = await stasis(src, ['--json', 'checkpoint', String(t.pid)]);
      assert.equal(c.code, 0, c.stderr);
      const id = String((JSON.parse(c.stdout) as { id: number }).id);
      const sent = await new Promise<number>((resolve) => {
        const tx = spawn(process.execPath, [bin, '--store', src, 'send', id], { stdio: ['ignore', 'pipe', 'ignore'] });
        const rx = spawn(process.execPath, [bin, '--store', dst, 'receive'], { stdio: ['pipe', 'ignore', 'ignore'] });
        tx.stdout.pipe(rx.stdin);
        rx.on('exit', (code) => resolve(code ?? 1));
      });
      assert.equal(sent, 0, 'the earlier copy arrived');
      const r = await stasis(src, ['--json', 'migrate', String(t.pid), '--pipe', `${process.execPath} ${bin} --store ${dst} receive`]);
      assert.equal(r.code, 0, r.stderr);
      const m = JSON.parse(r.stdout) as MigrateJson;
      moved = m.destination!.pid;
      const first = m.rounds[0]!;
      assert.ok(first.pages >= 32 * 256, `round 1 is the whole process: ${first.pages} pages`);
      assert.ok(first.pagesSent < first.pages / 10, `only what the destination lacked crossed: ${first.pagesSent} of ${first.pages} pages`);
      assert.ok(first.bytes < first.pages * 4096 / 5, `round 1 on the wire: ${first.bytes} bytes`);
      await t.waitExit(10_000);
      await countsGrow(out);
      assert.match(await memCheck(moved, out), /mem=ok/);
      assertConsecutive(out);
    } finally {
      t.kill();
      if (moved) killQuietly(moved);
    }
  });
});
