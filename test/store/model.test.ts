/**
 * Model-based property test: random sequences of checkpoints (complete and delta coverage, random
 * page changes, unmaps, zero pages), deletes, pins, gc, export/import, reindex and reopen; after
 * every step each checkpoint must materialize exactly like a plain in-memory reference. Run once per
 * block compression: the lz4 run also switches the setting back and forth on reopen (a store holding
 * both kinds of blocks) and imports into a store with the other setting.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { openStore } from '../../electron/engine/store';
import type { Compression, Store } from '../../electron/engine/store/api';
import { PAGE, assertSameView, makeState, mapping, materializeToMap, randomPage, rng, tempDir, textPage, writeComplete, type View } from './model';

const SEEDS = [101, 202, 303, 404, 505, 606];
const STEPS = 80;
const SPAN = 96; // pages in the address window [BASE, BASE + SPAN)
const BASE = 0x7000;

function mutate(r: () => number, parent: View, pool: Buffer[]): { view: View; lo: number; hi: number } {
  // The new address space: one mapping [lo, hi) inside the window.
  const lo = BASE + Math.floor(r() * 8);
  const hi = BASE + SPAN - Math.floor(r() * 8);
  const view: View = new Map([...parent].filter(([k]) => k >= lo && k < hi));
  const changes = Math.floor(r() * 20);
  for (let i = 0; i < changes; i++) {
    const k = lo + Math.floor(r() * (hi - lo));
    const x = r();
    if (x < 0.15) view.delete(k);
    else if (x < 0.3) view.set(k, Buffer.alloc(PAGE));
    else if (x < 0.5) view.set(k, pool[Math.floor(r() * pool.length)]);
    else if (x < 0.75) view.set(k, textPage(r));
    else view.set(k, randomPage(r));
  }
  return { view, lo, hi };
}

function writeDelta(store: Store, targetId: number, parentId: number, parent: View, next: View, lo: number, hi: number): number {
  const w = store.begin({ targetId, parentId, mode: 'incremental', dirtyTracking: 'soft-dirty', coverage: 'delta' });
  w.setState(makeState([mapping(lo, hi - lo)]));
  for (let k = lo; k < hi; k++) {
    const a = parent.get(k);
    const b = next.get(k);
    if (b && (!a || !a.equals(b))) {
      if (b.every((x) => x === 0)) w.addZeroPages(BigInt(k) << 12n, 1);
      else w.addPages(BigInt(k) << 12n, b);
    } else if (!b && a) {
      w.addAbsentPages(BigInt(k) << 12n, 1);
    }
  }
  return w.commit().id;
}

const OTHER: Record<Compression, Compression> = { none: 'lz4', lz4: 'none' };

for (const compression of ['none', 'lz4'] as const) for (const seed of SEEDS) {
  test(`random store histories match the in-memory reference (seed ${seed}, compression ${compression})`, () => {
    const t = tempDir();
    const r = rng(seed);
    const pool = Array.from({ length: 4 }, (_, i) => (i % 2 ? textPage(r) : randomPage(r)));
    let store = openStore(path.join(t.dir, 's'));
    store.setConfig({ compression });
    let setting: Compression = compression;
    const other = openStore(path.join(t.dir, 'o'));
    other.setConfig({ compression: OTHER[compression] });
    const ref = new Map<number, View>();
    const otherRef = new Map<number, View>();
    const targets = [store.upsertTarget({ pid: 1, startTime: '1', exe: '/a', cmdline: [] }).id, store.upsertTarget({ pid: 2, startTime: '2', exe: '/b', cmdline: [] }).id];
    const log: string[] = [];
    try {
      for (let step = 0; step < STEPS; step++) {
        const ids = [...ref.keys()];
        const x = r();
        if (ids.length === 0 || x < 0.45) {
          const tg = targets[Math.floor(r() * targets.length)];
          const mine = store.list({ targetId: tg }).map((c) => c.id);
          const parentId = mine.length && r() < 0.8 ? mine[Math.floor(r() * mine.length)] : null;
          const { view, lo, hi } = mutate(r, parentId ? ref.get(parentId)! : new Map(), pool);
          const useDelta = parentId !== null && r() < 0.5;
          const id = useDelta ? writeDelta(store, tg, parentId, ref.get(parentId)!, view, lo, hi) : writeComplete(store, tg, parentId, view, [mapping(lo, hi - lo)]);
          ref.set(id, view);
          log.push(`ckpt ${id} parent ${parentId} ${useDelta ? 'delta' : 'complete'}`);
        } else if (x < 0.62) {
          const victims = ids.filter(() => r() < 0.3).filter((id) => !store.get(id)!.pinned);
          if (victims.length) { store.remove(victims); for (const v of victims) ref.delete(v); log.push(`rm ${victims}`); }
        } else if (x < 0.7) {
          const id = ids[Math.floor(r() * ids.length)];
          store.setPinned(id, !store.get(id)!.pinned);
          log.push(`pin ${id}`);
        } else if (x < 0.8) {
          log.push(`gc ${JSON.stringify(store.gc())}`);
        } else if (x < 0.88) {
          const id = ids[Math.floor(r() * ids.length)];
          const how = (['one', 'flattened', 'chain'] as const)[Math.floor(r() * 3)];
          const file = path.join(t.dir, `x${step}.stream`);
          const e = store.exportStream(id, file, how);
          const { ids: got } = other.importStream(file);
          got.forEach((nid, i) => otherRef.set(nid, ref.get(e.checkpoints[i])!));
          log.push(`export ${id} ${how} -> ${got}`);
        } else if (x < 0.94) {
          store.reindex();
          log.push('reindex');
        } else {
          store.close();
          store = openStore(path.join(t.dir, 's'));
          assert.equal(store.config().compression, setting, 'the setting survives reopening');
          if (compression === 'lz4' && r() < 0.5) {
            setting = OTHER[setting];
            store.setConfig({ compression: setting });
            log.push(`config ${setting}`);
          }
          log.push('reopen');
        }
        for (const [id, view] of ref) {
          try {
            assertSameView(materializeToMap(store, id), view, `seed ${seed} step ${step} checkpoint ${id}`);
          } catch (e) {
            throw new Error(`${(e as Error).message}\nhistory:\n${log.join("\n")}`, { cause: e });
          }
        }
        assert.deepEqual(store.list().map((c) => c.id).sort((a, b) => a - b), [...ref.keys()].sort((a, b) => a - b));
      }
      if (process.env.STASIS_TEST_LOG) console.log(log.join("; "));
      for (const [id, view] of otherRef) assertSameView(materializeToMap(other, id), view, `imported ${id}`);
      // The lz4 store really holds compressed blocks (and the uncompressed one none).
      const ratio = (s: Store): number => s.stats().compressionRatio;
      const [lz4Side, plainSide] = compression === 'lz4' ? [store, other] : [other, store];
      assert.ok(ratio(lz4Side) > 1, `compression ratio ${ratio(lz4Side)} of the lz4 store`);
      if (compression === 'none') assert.equal(ratio(plainSide), 1);
      assert.deepEqual(store.verify(), { ok: true, problems: [] });
      assert.deepEqual(other.verify(), { ok: true, problems: [] });
    } finally {
      store.close();
      other.close();
      t.cleanup();
    }
  });
}
