/**
 * Export, import, verify and gc on a real store report their progress: phases in order, counts that
 * never go back, one last report with done == total, no more than the throttle allows; and through
 * the handlers they become 'op.progress' events tagged with the caller's id.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { openStore } from '../../electron/engine/store';
import type { Store } from '../../electron/engine/store/api';
import { storeHandlers } from '../../electron/api/handlers/store';
import type { HandlerContext } from '../../electron/api/context';
import type { ProgressReport } from '../../electron/engine/progress';
import { PAGE, mapping, randomPage, rng, tempDir, writeComplete, type View } from '../store/model';
import { assertWellFormed, recorder } from './helpers';

const target = { pid: 301, startTime: '777', exe: '/bin/fixture', cmdline: ['fixture'] };

/** Three checkpoints of `pages` random pages, half of them rewritten each time. */
function chain(store: Store, pages: number): number[] {
  const tg = store.upsertTarget(target);
  const r = rng(7);
  let v: View = new Map();
  for (let i = 0; i < pages; i++) v.set(0x400 + i, randomPage(r));
  const ids: number[] = [];
  for (let k = 0; k < 3; k++) {
    if (k > 0) { v = new Map(v); for (let i = 0; i < pages / 2; i++) v.set(0x400 + Math.floor(r() * pages), randomPage(r)); }
    ids.push(writeComplete(store, tg.id, ids[k - 1] ?? null, v, [mapping(0x400, pages)]));
  }
  return ids;
}

function timed<T>(fn: () => T): { value: T; ms: number } {
  const t0 = performance.now();
  const value = fn();
  return { value, ms: performance.now() - t0 };
}

/** Phase names in the order they first appear. */
const phaseOrder = (reports: ProgressReport[]): string[] => [...new Set(reports.map((p) => p.phase ?? ''))];

test('export, import, verify and gc report well-formed progress ending at done == total', () => {
  const t = tempDir('stasis-progress-');
  try {
    const store = openStore(path.join(t.dir, 'src'));
    const ids = chain(store, 20_000);
    const file = path.join(t.dir, 'x.stasis');

    const ex = recorder();
    const e = timed(() => store.exportStream(ids[2], file, 'chain', { onProgress: ex.fn }));
    assertWellFormed(ex.reports, e.ms, 'export', 2);
    assert.deepEqual(phaseOrder(ex.reports).at(-1), 'written');
    assert.equal(ex.reports.at(-1)!.unit, 'steps');
    const pagesPhase = ex.reports.filter((p) => p.phase === 'pages');
    for (const p of pagesPhase) assert.equal(p.within!.total, e.value.pages, 'the pages phase counts the pages the stream holds');

    const dest = openStore(path.join(t.dir, 'dest'));
    const im = recorder();
    const i = timed(() => dest.importStream(file, { onProgress: im.fn }));
    assert.equal(i.value.ids.length, 3);
    assertWellFormed(im.reports, i.ms, 'import', 3);
    const order = phaseOrder(im.reports);
    assert.equal(order.at(-1), 'imported');
    // Passes appear in their order (a fast one may be skipped by the throttle, never reordered).
    const known = ['checksum', 'page hashes', 'importing', 'imported'];
    assert.deepEqual(order, known.filter((p) => order.includes(p)));
    assert.ok(im.reports.length >= 2, `import reported only ${JSON.stringify(im.reports)}`);
    const within = im.reports.filter((p) => p.within);
    for (let k = 1; k < within.length; k++) {
      const a = within[k - 1]!, b = within[k]!;
      assert.ok(b.done > a.done || (b.done === a.done && b.within!.done >= a.within!.done), 'import progress never goes back');
    }

    const ve = recorder();
    const v = timed(() => dest.verify({ onProgress: ve.fn }));
    assert.equal(v.value.ok, true);
    assertWellFormed(ve.reports, v.ms, 'verify', 2);

    dest.remove([i.value.ids[0]!, i.value.ids[1]!]);
    const g = recorder();
    const gc = timed(() => dest.gc({ onProgress: g.fn }));
    assertWellFormed(g.reports, gc.ms, 'gc');
    assert.equal(g.reports.at(-1)!.unit, 'pages');
    // With nothing to compact, gc says so in one report.
    const empty = openStore(path.join(t.dir, 'empty'));
    const g2 = recorder();
    assert.equal(empty.gc({ onProgress: g2.fn }).segmentsRewritten, 0);
    empty.close();
    assert.deepEqual(g2.reports, [{ done: 0, total: 0, unit: 'pages', phase: 'nothing to compact' }]);
    // A failed operation never reports done == total.
    const bad = recorder();
    assert.throws(() => dest.importStream(path.join(t.dir, 'missing.stasis'), { onProgress: bad.fn }));
    assert.equal(bad.reports.filter((p) => p.done === p.total).length, 0);
    dest.close();
    store.close();
    assert.ok(PAGE === 4096);
  } finally {
    t.cleanup();
  }
});

test('the store handlers emit op.progress tagged with the call id and the operation', async () => {
  const t = tempDir('stasis-progress-h-');
  try {
    const store = openStore(path.join(t.dir, 'src'));
    chain(store, 500);
    const events: { event: string; payload: unknown }[] = [];
    const ctx: HandlerContext = { storeDir: store.dir, store: () => store, emit: (event, payload) => events.push({ event, payload }), callId: 'page1-7' };
    await storeHandlers['store.verify']({}, ctx);
    const progress = events.filter((e) => e.event === 'op.progress').map((e) => e.payload as { callId: string | null; op: string; done: number; total: number });
    assert.ok(progress.length >= 1);
    for (const p of progress) { assert.equal(p.callId, 'page1-7'); assert.equal(p.op, 'verify'); }
    assert.equal(progress.at(-1)!.done, progress.at(-1)!.total);
    events.length = 0;
    // A call without an id (CLI, tests, another engine user) gets no progress: nobody could claim it.
    await storeHandlers['store.gc']({}, { ...ctx, callId: undefined });
    assert.deepEqual(events.filter((e) => e.event === 'op.progress'), []);
    store.close();
  } finally {
    t.cleanup();
  }
});
