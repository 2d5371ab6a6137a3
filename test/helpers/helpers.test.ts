import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { buildFixture } from './fixtures';
import { spawnDetached, procState } from './spawn';

test('buildFixture compiles once and caches by content', () => {
  const a = buildFixture('capture-sleeper');
  const b = buildFixture('capture-sleeper');
  assert.equal(a, b);
  assert.throws(() => buildFixture('no-such-fixture'), /No fixture source/);
});

test('spawnDetached starts a target that is not our child, reports its exit code and kills', async () => {
  const bin = buildFixture('capture-sleeper');
  const t = spawnDetached([bin, '/dev/null', '0']);
  assert.deepEqual(await t.waitExit(5000), { code: 7, signal: null });

  const u = spawnDetached([bin]);
  try {
    const ppid = Number(/PPid:\s+(\d+)/.exec(readFileSync(`/proc/${u.pid}/status`, 'utf8'))![1]);
    assert.notEqual(ppid, process.pid);
    assert.ok(u.alive());
    assert.equal(readFileSync(`/proc/${u.pid}/comm`, 'utf8').trim(), 'capture-sleeper');
  } finally {
    u.kill();
  }
  assert.deepEqual(await u.waitExit(5000), { code: null, signal: 9 });
  assert.ok(!u.alive());
  assert.notEqual(procState(u.pid), 'R');
});
