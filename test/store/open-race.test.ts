/**
 * Several processes creating the same new store at one instant (a daemon and a CLI started
 * together, two tests): every one of them opens it, none fails on a schema step another applied.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const child = fileURLToPath(new URL('./open-race-child.ts', import.meta.url));

function openAt(dir: string, at: number): Promise<string> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, ['--import', 'tsx', child, dir, String(at)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    c.on('exit', () => resolve(out));
  });
}

test('processes that create one new store at the same instant all open it', async () => {
  const base = mkdtempSync(join(tmpdir(), 'stasis-open-race-'));
  try {
    for (let round = 0; round < 4; round++) {
      const dir = join(base, `s${round}`);
      const at = Date.now() + 4000;
      const outs = await Promise.all(Array.from({ length: 6 }, () => openAt(dir, at)));
      assert.deepEqual(outs, outs.map(() => 'ok'));
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
