/**
 * A real restore of a real 64 MiB process reports its steps (RESTORE_STEPS of them, as many as the
 * result lists), the pages handed to "memory contents" while it writes them, and one last report
 * (done == total) once the process runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached } from '../helpers/spawn';
import { checkpoint } from '../../electron/engine/capture';
import { restore, RESTORE_STEPS } from '../../electron/engine/restore';
import { tempDir, waitForFile } from '../capture/common';
import { killQuietly, withStore } from '../restore/helpers';
import { assertWellFormed, recorder } from './helpers';

test('a restore reports steps done of RESTORE_STEPS, pages during memory contents, and a last report', async () => {
  await withStore(async (store, dir) => {
    const side = tempDir('progress-restore');
    const target = spawnDetached([buildFixture('capture-pattern'), side.dir, '16384']);
    let pid: number | undefined;
    try {
      await waitForFile(join(side.dir, 'info.txt'), 30_000);
      const c = checkpoint(store, target.pid);
      target.kill();
      await target.waitExit();
      const rec = recorder();
      const t0 = performance.now();
      const r = restore(store, c.id, { log: join(dir, 'restore.log'), samePid: false, onProgress: rec.fn });
      pid = r.pid;
      const took = performance.now() - t0;
      assert.equal(r.steps.length, RESTORE_STEPS, 'RESTORE_STEPS counts every step the restore runs');
      assertWellFormed(rec.reports, took, 'restore');
      assert.deepEqual(rec.reports[0], { done: 0, total: RESTORE_STEPS, unit: 'steps', phase: 'start the stub' });
      assert.deepEqual(rec.reports.at(-1), { done: RESTORE_STEPS, total: RESTORE_STEPS, unit: 'steps', phase: 'running' });
      // Step names reported are the result's, in its order.
      const names = r.steps.map((s) => s.step);
      const seen = rec.reports.slice(0, -1).map((p) => names.indexOf(p.phase!));
      assert.ok(seen.every((i, k) => i >= 0 && (k === 0 || i >= seen[k - 1]!)), `steps out of order: ${JSON.stringify(rec.reports)}`);
      const memMs = r.steps.find((s) => s.step === 'memory contents')!.ms;
      const within = rec.reports.filter((x) => x.within);
      // A step that long cannot pass without a report inside it (one every 100 ms at most).
      if (memMs > 250) assert.ok(within.length >= 1, `no page report in ${memMs} ms of memory contents`);
      for (const p of within) {
        assert.equal(p.phase, 'memory contents');
        assert.equal(p.done, names.indexOf('memory contents'));
        assert.equal(p.within!.unit, 'pages');
        assert.ok(p.within!.total >= 16384 * 0.9, `pages to write ${p.within!.total}`);
      }
    } finally {
      target.kill();
      killQuietly(pid);
      side.cleanup();
    }
  });
});
