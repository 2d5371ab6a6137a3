/**
 * `stasis restore ID --attach`: a program that ran in a terminal comes back in the terminal the
 * command runs in, in the foreground (reading it does not stop it with SIGTTIN), and the command
 * waits until it exits. Both terminals are real pseudo-terminals made by util-linux `script`; the
 * fixture (test/fixtures/attach-echo.c) reports what it reads and whether its group is in the
 * foreground.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { killQuietly, tempDir, waitFor } from './helpers';

const fixture = buildFixture('attach-echo');
const root = new URL('../..', import.meta.url).pathname;

/** A command in a new pseudo-terminal; what it prints is collected (the terminal echoes what we type too). */
function inTerminal(cmd: string): { p: ChildProcessWithoutNullStreams; out: () => string } {
  const p = spawn('script', ['-qfec', cmd, '/dev/null'], { stdio: 'pipe' });
  let text = '';
  p.stdout.on('data', (b: Buffer) => { text += b.toString(); });
  return { p, out: () => text };
}

function pidOf(comm: string): number | null {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try { if (readFileSync(`/proc/${d}/comm`, 'utf8').trim() === comm) return Number(d); } catch { /* gone */ }
  }
  return null;
}

test('a terminal job restored with --attach runs in the foreground of the new terminal, reads from it, and restore waits for it', async () => {
  const dir = tempDir();
  const store = join(dir, 'store');
  const stasis = (args: string[], input?: string): { code: number; out: string; err: string } => {
    const r = spawnSync(process.execPath, [join(root, 'bin/stasis.js'), '--store', store, ...args], { cwd: root, encoding: 'utf8', timeout: 60_000, ...(input !== undefined ? { input } : {}) });
    return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
  };
  // Not exec'd by sh: the program is then a job of sh's session (its own group), not a session leader.
  const first = inTerminal(`sh -c '${fixture} job; :'`);
  let restored: ReturnType<typeof inTerminal> | null = null;
  let pid = 0;
  try {
    await waitFor('the program to start', () => /ready pid=\d+/.test(first.out()), 10_000);
    pid = Number(/ready pid=(\d+)/.exec(first.out())![1]);
    first.p.stdin.write('one\n');
    await waitFor('the first line', () => first.out().includes('got:one n=1 fg=1'), 10_000);
    const c = stasis(['checkpoint', String(pid), '--kill']);
    assert.equal(c.code, 0, c.err);
    await waitFor('the original to be gone', () => !existsSync(`/proc/${pid}`) || readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z'), 10_000);

    const refused = stasis(['restore', '1', '--attach'], '');
    assert.notEqual(refused.code, 0);
    assert.match(refused.err, /--attach needs a terminal on stdin, but stdin is/);

    restored = inTerminal(`${process.execPath} ${join(root, 'bin/stasis.js')} --store ${store} restore 1 --attach`);
    await waitFor('the restore to attach', () => restored!.out().includes('runs in this terminal'), 30_000);
    restored.p.stdin.write('two\n');
    await waitFor('a line read in the new terminal', () => restored!.out().includes('got:two n=2 fg=1'), 10_000);
    restored.p.stdin.write('quit\n');
    await waitFor('the program to end, and restore with it', () => restored!.p.exitCode !== null, 10_000);
    assert.match(restored.out(), /bye n=2/);
    assert.match(restored.out(), /Restored checkpoint #1 as pid \d+/, 'restore printed its result once the program ended');
    assert.equal(restored.p.exitCode, 0);
  } finally {
    first.p.kill('SIGKILL');
    restored?.p.kill('SIGKILL');
    const again = pidOf('attach-echo');
    if (again) killQuietly(again);
  }
});
