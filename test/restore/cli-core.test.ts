// The CLI end to end (`stasis core` opened by gdb in batch mode, `stasis restore --json`), on a real
// checkpoint in a real store. The restored process is a child of the CLI process, which exits: it
// must run on after that.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached } from '../helpers/spawn';
import { checkpoint } from '../../electron/engine/capture';
import { openStore } from '../../electron/engine/store';
import { fields, fileLines, isAlive, killQuietly, tempDir, waitFor } from './helpers';
import { rmSync } from 'node:fs';

const root = new URL('../../', import.meta.url).pathname;

function stasis(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(root, 'bin/stasis.js'), ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('stasis core writes a core file gdb opens with the right registers and memory; stasis restore --json restores', async () => {
  const fidelity = buildFixture('restore-fidelity');
  const dir = tempDir();
  const storeDir = join(dir, 'store');
  const out = join(dir, 'fid.out');
  const t = spawnDetached([fidelity, out], { cwd: dir });
  let pid: number | undefined;
  try {
    await waitFor('output', () => fileLines(out).length >= 4);
    const store = openStore(storeDir);
    const c = checkpoint(store, t.pid);
    const state = store.getState(c.id);
    store.close();
    const pos = Number(state.fds.find((f) => f.fd === 3)!.pos);
    const k = fields(readFileSync(out).subarray(0, pos).toString().trim().split('\n').at(-1)!).c!;

    const core = join(dir, 'core');
    const r = stasis(['--store', storeDir, '--json', 'core', String(c.id), '-o', core]);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { path: string; bytes: number; exe: string };
    assert.equal(j.path, core);
    assert.equal(j.exe, fidelity);
    assert.equal(statSync(core).size, j.bytes);

    const g = spawnSync('gdb', ['-batch', '-nx', '-ex', 'bt', '-ex', 'p counter', '-ex', 'p/x $ymm12.v8_int32[7]', '-ex', 'p/x $rip', fidelity, core], { encoding: 'utf8', timeout: 60_000 });
    const text = g.stdout + g.stderr;
    assert.match(text, /in main \(|^#\d+ +main \(/m, text);
    const counter = Number(/^\$1 = (\d+)/m.exec(text)?.[1]);
    assert.ok(counter === k + 1 || counter === k, `gdb reads counter ${counter}; the file says ${k}`);
    const rip = BigInt(/^\$3 = (0x[0-9a-f]+)/m.exec(text)![1]!);
    assert.equal(rip, state.threads[0]!.regs[16], 'rip in the core is the checkpointed rip');
    if (/#0 .*sleep_keeping_ymm/.test(text)) assert.match(text, /^\$2 = 0x88888888/m, 'upper half of ymm12 is in the core');
    assert.doesNotMatch(text, /too small|not in executable format|Unexpected size/);

    t.kill();
    await t.waitExit();
    // A checklist that fails exits 1 (scripts test the status); the file it needs moved away.
    renameSync(out, `${out}.moved`);
    const check = stasis(['--store', storeDir, 'restore', String(c.id), '--check']);
    renameSync(`${out}.moved`, out);
    assert.equal(check.status, 1, check.stdout + check.stderr);
    assert.match(check.stdout, /cannot be restored/);
    assert.equal(stasis(['--store', storeDir, 'restore', String(c.id), '--check']).status, 0, 'and 0 once it can');
    const rr = stasis(['--store', storeDir, '--json', 'restore', String(c.id), '--stdout', join(dir, 'stdout.log')]);
    assert.equal(rr.status, 0, rr.stderr);
    const res = JSON.parse(rr.stdout) as { pid: number; samePid: boolean; durationMs: number };
    pid = res.pid;
    assert.equal(typeof res.samePid, 'boolean');
    assert.ok(res.durationMs > 0);
    await waitFor('the restored process to write after the CLI exited', () => fileLines(out).some((l) => fields(l).pid === res.pid));
    assert.ok(isAlive(res.pid));

    const bad = stasis(['--store', storeDir, 'restore', '999']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /no checkpoint #999/);
  } finally {
    t.kill();
    killQuietly(pid);
    rmSync(dir, { recursive: true, force: true });
  }
});
