/**
 * A real capture of a real 128 MiB process reports progress: pages scanned of the pages to scan,
 * increasing, throttled to ~10 a second, and one last report (done == total == pagesScanned) after
 * the commit. Without a callback it reports nothing and counts nothing.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { spawnDetached, type DetachedProcess } from '../helpers/spawn';
import { checkpoint } from '../../electron/engine/capture';
import { probeKernelFeatures } from '../../electron/engine/native';
import { tempDir, tempStore, waitForFile } from '../capture/common';
import { assertWellFormed, recorder } from './helpers';

const PAGES = 32768; // 128 MiB: long enough for several reports

let target: DetachedProcess;
let side: ReturnType<typeof tempDir>;
let st: ReturnType<typeof tempStore>;

before(async () => {
  side = tempDir('progress-capture');
  st = tempStore();
  target = spawnDetached([buildFixture('capture-pattern'), side.dir, String(PAGES)]);
  await waitForFile(join(side.dir, 'info.txt'), 30_000);
});
after(() => {
  target.kill();
  st.cleanup();
  side.cleanup();
});

test('a capture reports pages scanned of the pages to scan, throttled, ending at done == total', () => {
  const rec = recorder();
  const t0 = performance.now();
  const r = checkpoint(st.store, target.pid, { full: true, onProgress: rec.fn });
  const took = performance.now() - t0;
  assertWellFormed(rec.reports, took, 'capture');
  const last = rec.reports[rec.reports.length - 1]!;
  assert.equal(last.total, r.pagesScanned, 'the last report counts what the result says was scanned');
  assert.equal(last.unit, 'pages');
  // The region alone is 9/10 present of 32768 pages: the total is known up front, not grown as it goes.
  const first = rec.reports[0]!;
  assert.equal(first.done, 0);
  assert.ok(first.total >= PAGES * 0.9, `first total ${first.total}`);
  assert.ok(Math.abs(first.total - r.pagesScanned) <= 64, `counted ${first.total} up front, scanned ${r.pagesScanned}`);
  const middle = rec.reports.filter((p) => p.done > 0 && p.done < p.total);
  assert.ok(middle.length >= 1, `no report between 0 and done in ${took.toFixed(0)} ms: ${JSON.stringify(rec.reports)}`);
});

test('an incremental capture reports too; a capture without a callback reports nothing', () => {
  const rec = recorder();
  const r = checkpoint(st.store, target.pid, { onProgress: rec.fn });
  assert.equal(r.mode, 'incremental');
  assert.equal(rec.reports[rec.reports.length - 1]!.total, r.pagesScanned);
  const quiet = checkpoint(st.store, target.pid, {});
  assert.equal(quiet.mode, 'incremental');
});

test('a userfaultfd write-protect capture reports progress as it reads the live memory', { skip: !probeKernelFeatures().uffdWp }, () => {
  const rec = recorder();
  const t0 = performance.now();
  const r = checkpoint(st.store, target.pid, { full: true, snapshot: 'uffd', onProgress: rec.fn });
  assert.equal(r.freeze, 'uffd-wp');
  assertWellFormed(rec.reports, performance.now() - t0, 'capture');
  assert.equal(rec.reports[rec.reports.length - 1]!.total, r.pagesScanned);
  assert.ok(rec.reports[0]!.total >= PAGES * 0.9, `first total ${rec.reports[0]!.total}`);
  assert.ok(rec.reports.some((p) => p.done > 0 && p.done < p.total), `no report between 0 and done: ${JSON.stringify(rec.reports)}`);
});
