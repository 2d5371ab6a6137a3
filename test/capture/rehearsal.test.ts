/**
 * The rehearsal of the frozen path before a fresh engine's first live checkpoint (capture/rehearsal.ts):
 * it must run the whole path, leave nothing behind (no child, no temp store, no tracker), happen once
 * per process, and change nothing in the real checkpoint. Its own file: it needs a process whose
 * first checkpoint is the one under test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached } from '../helpers/spawn';
import { checkpoint, closeTrackers } from '../../electron/engine/capture';
import { lastRehearsal } from '../../electron/engine/capture/rehearsal';
import { trackerCount } from '../../electron/engine/capture/tracking';
import { tempDir, tempStore, waitForFile } from './common';

/** Our child processes (pid and comm), zombies included. */
function children(): { pid: number; comm: string; state: string }[] {
  const out: { pid: number; comm: string; state: string }[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const [state, ppid] = stat.slice(close + 2).split(' ');
      if (Number(ppid) === process.pid) out.push({ pid: Number(name), comm: stat.slice(stat.indexOf('(') + 1, close), state: state! });
    } catch { /* gone */ }
  }
  return out;
}

test('the first live checkpoint of a process rehearses the frozen path once on a throwaway process, which leaves nothing behind', async () => {
  const side = tempDir('rehearsal-side');
  const st = tempStore();
  // The rehearsal's store goes to os.tmpdir(): a private one shows that it is removed.
  const privateTmp = mkdtempSync(join(tmpdir(), 'stasis-rehearsal-test-'));
  const savedTmp = process.env.TMPDIR;
  const target = spawnDetached([buildFixture('capture-sleeper'), join(side.dir, 'ready')]);
  try {
    await waitForFile(join(side.dir, 'ready'));
    assert.equal(lastRehearsal(), null, 'nothing rehearsed before the first checkpoint');
    const before = children().map((c) => c.pid);
    process.env.TMPDIR = privateTmp;
    const r = checkpoint(st.store, target.pid, { full: true });
    if (savedTmp === undefined) delete process.env.TMPDIR; else process.env.TMPDIR = savedTmp;
    const rehearsal = lastRehearsal();
    assert.ok(rehearsal, 'the first live checkpoint rehearsed');
    assert.equal(rehearsal.error, undefined);
    assert.equal(rehearsal.ok, true, 'the rehearsal reached the release of its throwaway process');
    assert.deepEqual(children().filter((c) => !before.includes(c.pid)), [], 'the throwaway process is killed and reaped');
    assert.deepEqual(readdirSync(privateTmp), [], 'the throwaway store is removed');
    assert.equal(trackerCount(), r.freeze === 'pre-copy' ? 1 : 0, 'only the real target keeps a tracker');
    assert.equal(st.store.list().length, 1, 'the rehearsal wrote nothing into the real store');
    assert.ok([...st.store.materialize(r.id)].length > 0, 'the real checkpoint has its pages');
    checkpoint(st.store, target.pid, { full: true });
    assert.equal(lastRehearsal(), rehearsal, 'once per process');
  } finally {
    if (savedTmp === undefined) delete process.env.TMPDIR; else process.env.TMPDIR = savedTmp;
    closeTrackers();
    target.kill();
    await target.waitExit(10_000).catch(() => undefined);
    st.cleanup();
    side.cleanup();
    rmSync(privateTmp, { recursive: true, force: true });
  }
});
