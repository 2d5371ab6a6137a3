/**
 * `stasis checkpoint`, `stasis launch` and `stasis ps` through the real CLI entry (bin/stasis.js),
 * each printing the handler's output as one JSON document with --json, and one line on stderr with
 * a non-zero exit on error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached } from '../helpers/spawn';
import { tempDir, waitFor, waitForFile, procStatus } from './common';

const root = new URL('../..', import.meta.url).pathname;

function stasis(args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [join(root, 'bin/stasis.js'), ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

test('stasis launch, ps and checkpoint (full then incremental) with --json', async () => {
  const t = tempDir('capture-cli');
  const store = join(t.dir, 'store');
  let pid = 0;
  try {
    const bin = buildFixture('capture-sleeper');
    const l = stasis(['--store', store, '--json', 'launch', '--name', 'cli-sleeper', '--', bin, join(t.dir, 'ready')]);
    assert.equal(l.code, 0, l.err);
    const launched = JSON.parse(l.out) as { pid: number; log: string };
    pid = launched.pid;
    assert.ok(launched.log.startsWith(join(store, 'logs')));
    await waitFor('the program to start', () => existsSync(join(t.dir, 'ready')));

    const ps = stasis(['--store', store, '--json', 'ps']);
    assert.equal(ps.code, 0, ps.err);
    const me = (JSON.parse(ps.out) as { processes: { pid: number; checkpointable: boolean }[] }).processes.find((p) => p.pid === pid);
    assert.equal(me?.checkpointable, true);
    const table = stasis(['--store', store, 'ps']);
    assert.equal(table.code, 0, table.err);
    const row = table.out.split('\n').find((l) => l.trimStart().startsWith(`${pid} `));
    assert.match(row ?? '', new RegExp(`^\\s*${pid}\\s+${userInfo().username}\\s`), 'the human table names the user, not the uid');

    const a = stasis(['--store', store, '--json', 'checkpoint', String(pid), '--label', 'from the cli']);
    assert.equal(a.code, 0, a.err);
    const first = JSON.parse(a.out) as Record<string, unknown>;
    for (const k of ['id', 'pid', 'mode', 'dirtyTracking', 'frozenMs', 'durationMs', 'pagesScanned', 'pagesWritten', 'bytesWritten']) assert.ok(k in first, `${k} in the output`);
    assert.equal(first.mode, 'full');
    assert.equal(first.pid, pid);
    const b = stasis(['--store', store, '--json', 'checkpoint', String(pid)]);
    assert.equal(b.code, 0, b.err);
    assert.equal((JSON.parse(b.out) as { mode: string }).mode, 'incremental');
    const human = stasis(['--store', store, 'checkpoint', String(pid), '--full']);
    assert.equal(human.code, 0, human.err);
    assert.match(human.out, /Checkpoint #3 of pid \d+: full/);
    assert.equal(procStatus(pid)!.tracerPid, 0);

    const bad = stasis(['--store', store, 'checkpoint', '999999999']);
    assert.equal(bad.code, 1);
    assert.equal(bad.err.trim().split('\n').length, 1);
    assert.match(bad.err, /^stasis: Process 999999999 does not exist/);
    assert.ok(readFileSync(launched.log, 'utf8').length >= 0);
  } finally {
    if (pid) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    t.cleanup();
  }
});

test('on a terminal, stasis checkpoint shows the engine progress on stderr and erases it; piped, it prints only the result', async () => {
  const t = tempDir('capture-cli-tty');
  const store = join(t.dir, 'store');
  const target = spawnDetached([buildFixture('capture-pattern'), t.dir, '32768']); // 128 MiB: several reports
  try {
    await waitForFile(join(t.dir, 'info.txt'), 30_000);
    // script(1) gives the CLI a pseudo-terminal for stdout and stderr, and copies what it printed.
    const cmd = [process.execPath, join(root, 'bin/stasis.js'), '--store', store, 'checkpoint', String(target.pid)].map((a) => `'${a}'`).join(' ');
    const r = spawnSync('script', ['-qfec', cmd, '/dev/null'], { cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, COLUMNS: '100' } });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const ERASE = '\u001b[K'; // "erase to the end of the line"
    assert.match(r.stdout.replaceAll(ERASE, '<erase>'), /\rCheckpoint: \d+% \([\d,]+ of [\d,]+ pages\)<erase>/, 'a progress line rewritten in place');
    assert.match(r.stdout.replaceAll(ERASE, '<erase>'), /\r<erase>Checkpoint #1 of pid /, 'the line is erased before the result');
    const piped = stasis(['--store', store, 'checkpoint', String(target.pid)]);
    assert.equal(piped.code, 0, piped.err);
    assert.equal(piped.err, '');
    assert.doesNotMatch(piped.out, /%/);
    assert.match(piped.out, /^Checkpoint #2 of pid /);
  } finally {
    target.kill();
    t.cleanup();
  }
});
