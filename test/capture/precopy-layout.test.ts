/**
 * Pre-copy must not change what a running program's own memory calls do. Registering a range for
 * write-protect splits it off its mapping, so a range registered while the program runs (read from
 * /proc/PID/maps a moment earlier) may cut through a mapping the program made since: its mremap of
 * that mapping then fails with EFAULT, or moves only part of it, and the program crashes on memory
 * it believes mapped. test/fixtures/capture-remapper.c reshapes its address space thousands of
 * times a second, checks every page, and counts its mremap calls that failed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached } from '../helpers/spawn';
import { checkpoint, closeTrackers } from '../../electron/engine/capture';
import { restore } from '../../electron/engine/restore';
import { probeKernelFeatures } from '../../electron/engine/native';
import { fileLines, killQuietly, sleep, waitFor, withStore } from '../restore/helpers';

const fixture = buildFixture('capture-remapper');
const f = probeKernelFeatures();
const skip = !(f.uffdWpAsync && f.pagemapScan && !f.softDirty);

/** Asks the program to check its pages; returns "ok|bad BADPAGES FAILED" from its answer. */
async function check(out: string, pid: number): Promise<string> {
  const before = fileLines(out).length;
  process.kill(pid, 'SIGUSR1');
  await waitFor(`process ${pid} to check its memory`, () => fileLines(out).slice(before).some((l) => l.startsWith(`${pid} `)), 10_000);
  return fileLines(out).slice(before).find((l) => l.startsWith(`${pid} `))!.split(' ').slice(2).join(' ');
}

test('checkpoints with pre-copy of a program that remaps its memory all the time leave its calls alone (no mremap fails, it runs on exact), and restore exact', { skip }, async () => {
  await withStore(async (store, dir) => {
    const out = join(dir, 'out.txt');
    const t = spawnDetached([fixture, out, '20000'], { cwd: dir });
    let restored = -1;
    try {
      await waitFor('the program to start', () => fileLines(out).some((l) => l.startsWith('ready')));
      // The first checkpoint makes the userfaultfd (brief freeze); the next ones keep it (tracking).
      let last = 0;
      for (let k = 0; k < 8; k++) {
        const r = checkpoint(store, t.pid);
        await sleep(50); // the program runs on a little: a page lost behind its back ends it
        if (!t.alive()) assert.fail(`the program died after checkpoint ${k + 1}: ${JSON.stringify(await t.waitExit())}`);
        assert.equal(r.freeze, 'pre-copy', JSON.stringify(r.warnings));
        last = r.id;
      }
      assert.equal(await check(out, t.pid), 'ok 0 0', 'its pages as it wrote them, no mremap of its own failed');
      t.kill();
      await t.waitExit();
      restored = restore(store, last, { log: join(dir, 'restore.log') }).pid;
      const [state, , failed] = (await check(out, restored)).split(' ');
      assert.equal(state, 'ok', 'restored: every page as it was at the checkpoint');
      assert.equal(failed, '0');
    } finally {
      closeTrackers();
      t.kill();
      if (restored > 0) killQuietly(restored);
    }
  });
});
