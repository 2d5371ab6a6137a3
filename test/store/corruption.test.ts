/**
 * Corruption tests: a byte flipped anywhere in any segment file, a missing segment, a garbage
 * index. verify must name the damage (file and what), and every checkpoint it does not list as
 * affected must still materialize exactly as before.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openStore } from '../../electron/engine/store';
import { StasisError } from '../../shared/errors';
import { COMPRESSIONS, type Compression } from '../../electron/engine/store/api';
import type { MappingState } from '../../electron/engine/state/process-state';
import { assertSameView, mapping, materializeToMap, randomPage, rng, tempDir, textPage, writeComplete, type View } from './model';

const FLIPS = 40;
const t = tempDir('stasis-corrupt-');
/** The same checkpoints in a store per block compression (the lz4 one mixes compressed and raw blocks). */
const templates: Record<Compression, string> = { none: path.join(t.dir, 'template-none'), lz4: path.join(t.dir, 'template-lz4') };
const ref = new Map<number, View>();

before(() => {
  const r = rng(99);
  const page = (): Buffer => { const x = r(); return x < 0.25 ? Buffer.alloc(4096) : x < 0.55 ? textPage(r) : randomPage(r); };
  const history: { target: number; view: View; mappings: MappingState[] }[] = [];
  let v: View = new Map();
  for (let i = 0; i < 150; i++) v.set(0x100 + i, page());
  for (let k = 0; k < 3; k++) {
    if (k) { v = new Map(v); for (let i = 0; i < 20; i++) v.set(0x100 + Math.floor(r() * 150), page()); }
    history.push({ target: 0, view: v, mappings: [mapping(0x100, 150)] });
  }
  const w: View = new Map();
  for (let i = 0; i < 70; i++) w.set(0x900 + i, randomPage(r));
  history.push({ target: 1, view: w, mappings: [mapping(0x900, 70)] });
  for (const compression of COMPRESSIONS) {
    const store = openStore(templates[compression]);
    store.setConfig({ compression });
    const targets = [store.upsertTarget({ pid: 1, startTime: '1', exe: '/a', cmdline: [] }).id, store.upsertTarget({ pid: 2, startTime: '2', exe: '/b', cmdline: [] }).id];
    let parent: number | null = null;
    for (const h of history) {
      parent = writeComplete(store, targets[h.target], h.target === 0 ? parent : null, h.view, h.mappings);
      ref.set(parent, h.view);
    }
    store.setLabel(2, 'a label lives in its own segment');
    if (compression === 'lz4') assert.ok(store.stats().compressionRatio > 1.3, 'the lz4 template holds compressed blocks');
    store.close();
  }
});

after(() => t.cleanup());

function copy(compression: Compression, name: string): string {
  const dir = path.join(t.dir, `${name}-${compression}`);
  fs.cpSync(templates[compression], dir, { recursive: true });
  return dir;
}

for (const compression of COMPRESSIONS) test(`a byte flipped anywhere in a segment (${FLIPS} random places, compression ${compression}) is named by verify; unaffected checkpoints still read back`, () => {
  const r = rng(5);
  const segs = fs.readdirSync(path.join(templates[compression], 'segments')).sort();
  for (let i = 0; i < FLIPS; i++) {
    const dir = copy(compression, `flip-${i}`);
    const seg = segs[Math.floor(r() * segs.length)];
    const file = path.join(dir, 'segments', seg);
    const size = fs.statSync(file).size;
    const at = Math.floor(r() * size);
    const fd = fs.openSync(file, 'r+');
    const one = Buffer.alloc(1);
    fs.readSync(fd, one, 0, 1, at);
    one[0] ^= 1 << Math.floor(r() * 8);
    fs.writeSync(fd, one, 0, 1, at);
    fs.closeSync(fd);
    const store = openStore(dir);
    try {
      const v = store.verify();
      assert.equal(v.ok, false, `flip at ${seg}+${at} went unnoticed`);
      assert.ok(v.problems.some((p) => p.where.includes(seg)), `verify does not name ${seg}: ${JSON.stringify(v.problems)}`);
      const affected = new Set(v.problems.flatMap((p) => p.affects));
      for (const [id, view] of ref) if (!affected.has(id)) assertSameView(materializeToMap(store, id), view, `flip ${seg}+${at}, unaffected #${id}`);
    } finally {
      store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
});

for (const compression of COMPRESSIONS) test(`a missing segment is reported with the checkpoints that need it (compression ${compression})`, () => {
  const dir = copy(compression, 'missing');
  const segs = fs.readdirSync(path.join(dir, 'segments')).sort();
  fs.rmSync(path.join(dir, 'segments', segs[0])); // checkpoint 1's pages, inherited by 2 and 3
  const store = openStore(dir);
  const v = store.verify();
  const p = v.problems.find((x) => x.what.includes('missing'))!;
  assert.ok(p, JSON.stringify(v.problems));
  assert.deepEqual(p.affects, [1, 2, 3]);
  assertSameView(materializeToMap(store, 4), ref.get(4)!, 'other target');
  assert.throws(() => materializeToMap(store, 2), (e: unknown) => e instanceof StasisError && e.code === 'CORRUPT' && /missing/.test(e.message));
  store.close();
});

for (const compression of COMPRESSIONS) test(`a garbage index gives a clear error; without it the store rebuilds itself from the segments (compression ${compression})`, () => {
  const dir = copy(compression, 'badindex');
  fs.writeFileSync(path.join(dir, 'index.sqlite'), Buffer.alloc(8192, 0x5a));
  assert.throws(() => openStore(dir), (e: unknown) => e instanceof StasisError && e.code === 'CORRUPT' && /reindex/.test(e.message));
  for (const f of fs.readdirSync(dir)) if (f.startsWith('index.sqlite')) fs.rmSync(path.join(dir, f));
  const store = openStore(dir);
  for (const [id, view] of ref) assertSameView(materializeToMap(store, id), view, `rebuilt #${id}`);
  assert.equal(store.get(2)!.label, 'a label lives in its own segment');
  assert.equal(store.verify().ok, true);
  store.close();
});
