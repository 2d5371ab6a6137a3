/**
 * LZ4 block compression: what it saves, that every read path gives back the exact bytes, that
 * incompressible memory stays raw, that the per-store setting is kept and honoured by every writer
 * (checkpoint, import, gc), and that damaged or hostile compressed blocks give CORRUPT errors naming
 * the block: never garbage pages, another exception or a huge allocation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import Database from 'better-sqlite3';
import { openStore } from '../../electron/engine/store';
import type { Compression, Store } from '../../electron/engine/store/api';
import { COMP_LZ4, COMP_NONE, segmentName } from '../../electron/engine/store/format';
import { SegmentReader, scanSegment } from '../../electron/engine/store/segments';
import type { SqliteStore } from '../../electron/engine/store/store';
import { StasisError } from '../../shared/errors';
import { PAGE, assertSameView, mapping, materializeToMap, randomPage, rng, tempDir, textPage, writeComplete, type View } from './model';

function storeWith(dir: string, compression: Compression): Store {
  const s = openStore(dir);
  s.setConfig({ compression });
  return s;
}

function segFile(dir: string, id: number): string {
  return path.join(dir, 'segments', segmentName(id));
}

/** 200 text pages (compressible), 64 random ones (not), some zero pages: one target, one mapping at vpn 0x100. */
function mixedView(seed: number, text = 200, random = 64): View {
  const r = rng(seed);
  const v: View = new Map();
  for (let i = 0; i < text; i++) v.set(0x100 + i, textPage(r));
  for (let i = 0; i < random; i++) v.set(0x100 + text + i, randomPage(r));
  for (let i = 0; i < 8; i++) v.set(0x100 + text + random + i, Buffer.alloc(PAGE));
  return v;
}

function isCorrupt(e: unknown): boolean {
  return e instanceof StasisError && e.code === 'CORRUPT' && e.message.length > 30;
}

test('compressible pages shrink the segment; materialize, readPage, export and reindex give back the exact bytes', () => {
  const t = tempDir();
  try {
    const view = mixedView(1, 224, 64); // blocks: 3 of text, 1 half text half random, 1 of 32 random pages
    const out: Record<string, { store: Store; id: number; segBytes: number }> = {};
    for (const c of ['none', 'lz4'] as const) {
      const dir = path.join(t.dir, c);
      const store = storeWith(dir, c);
      const tg = store.upsertTarget({ pid: 1, startTime: '1', exe: '/a', cmdline: [] });
      const id = writeComplete(store, tg.id, null, view, [mapping(0x100, view.size)]);
      out[c] = { store, id, segBytes: fs.statSync(segFile(dir, 1)).size };
    }
    const { none, lz4 } = out;
    assert.ok(lz4.segBytes < none.segBytes / 2, `lz4 segment ${lz4.segBytes} bytes vs ${none.segBytes} uncompressed`);
    // Text and half-text blocks compressed, the random block stored raw (it would not save 1/8).
    const blocks = scanSegment(segFile(path.join(t.dir, 'lz4'), 1)).parts.blocks;
    assert.deepEqual(blocks.map((b) => b.comp), [COMP_LZ4, COMP_LZ4, COMP_LZ4, COMP_LZ4, COMP_NONE]);
    assert.equal(blocks[4].storedLen, 32 * PAGE);
    assert.deepEqual(scanSegment(segFile(path.join(t.dir, 'none'), 1)).parts.blocks.map((b) => b.comp), [0, 0, 0, 0, 0]);
    // Format 2 marks files that may hold compressed blocks, so a Stasis from before compression refuses them.
    assert.deepEqual((['none', 'lz4'] as const).map((c) => fs.readFileSync(segFile(path.join(t.dir, c), 1)).readUInt32LE(8)), [1, 2]);

    const ns = none.store.stats();
    const ls = lz4.store.stats();
    assert.equal(ns.compressionRatio, 1);
    assert.equal(ns.compression, 'none');
    assert.equal(ls.compression, 'lz4');
    const stored = blocks.reduce((n, b) => n + b.storedLen, 0);
    assert.equal(ls.compressionRatio, (288 * PAGE) / stored);
    assert.ok(ls.compressionRatio > 2, `ratio ${ls.compressionRatio}`);
    assert.equal(none.store.get(none.id)!.stats.bytesWritten, 288 * PAGE);
    assert.equal(lz4.store.get(lz4.id)!.stats.bytesWritten, stored, 'bytesWritten is what the pages cost on disk');

    // Every read path.
    const reader = (lz4.store as SqliteStore).reader;
    const before = reader.blocksDecompressed;
    assertSameView(materializeToMap(lz4.store, lz4.id), view, 'lz4 materialize');
    assert.equal(reader.blocksDecompressed - before, 4, 'materialize decompresses each compressed block once, not once per page or run');
    for (const vpn of [0x100, 0x13f, 0x140, 0x1df, 0x1e0, 0x21f, 0x220, 0x300]) {
      assert.deepEqual(lz4.store.readPage(lz4.id, BigInt(vpn) << 12n), view.get(vpn) ?? null, `readPage vpn ${vpn.toString(16)}`);
    }
    const streams = (['none', 'lz4'] as const).map((c) => fs.readFileSync(out[c].store.exportStream(out[c].id, path.join(t.dir, `${c}.stream`), 'flattened').file));
    const pagesOf = (s: Buffer): Buffer => s.subarray(s.length - 40 - Number(s.readBigUInt64LE(24)) * (32 + PAGE), s.length - 40);
    assert.ok(pagesOf(streams[0]).equals(pagesOf(streams[1])), 'streams carry the same raw pages whatever the store compresses');
    const [imported] = none.store.importStream(path.join(t.dir, 'lz4.stream')).ids;
    assertSameView(materializeToMap(none.store, imported), view, 'lz4 store -> stream -> uncompressed store');
    lz4.store.reindex();
    assertSameView(materializeToMap(lz4.store, lz4.id), view, 'after reindex');
    assert.equal(lz4.store.stats().compressionRatio, ls.compressionRatio, 'reindex recomputes the stored block bytes');
    assert.deepEqual(lz4.store.verify(), { ok: true, problems: [] });
    none.store.close();
    lz4.store.close();
  } finally {
    t.cleanup();
  }
});

test('incompressible memory stays raw: same segment size as without compression', () => {
  const t = tempDir();
  try {
    const view = mixedView(2, 0, 130);
    const layouts: unknown[] = [];
    for (const c of ['none', 'lz4'] as const) {
      const dir = path.join(t.dir, c);
      const store = storeWith(dir, c);
      const tg = store.upsertTarget({ pid: 1, startTime: '1', exe: '/a', cmdline: [] });
      const id = writeComplete(store, tg.id, null, view, [mapping(0x100, view.size)]);
      assertSameView(materializeToMap(store, id), view, c);
      assert.equal(store.stats().compressionRatio, 1);
      assert.ok(scanSegment(segFile(dir, 1)).parts.blocks.every((b) => b.comp === COMP_NONE));
      store.close();
      layouts.push(scanSegment(segFile(dir, 1)).parts.blocks);
    }
    assert.deepEqual(layouts[1], layouts[0], 'the same blocks at the same offsets');
  } finally {
    t.cleanup();
  }
});

test('the setting persists, is honoured by gc and import, and a bad or unknown value is refused clearly', () => {
  const t = tempDir();
  try {
    const dir = path.join(t.dir, 's');
    let store = openStore(dir);
    assert.deepEqual(store.config(), { compression: 'none', flattenAfter: 0 }, 'default');
    const tg = store.upsertTarget({ pid: 1, startTime: '1', exe: '/a', cmdline: [] });
    const v1 = mixedView(3, 128, 0);
    const a = writeComplete(store, tg.id, null, v1, [mapping(0x100, v1.size)]);
    const v2: View = new Map(v1);
    const r = rng(4);
    for (let i = 0; i < 100; i++) v2.set(0x100 + i, textPage(r));
    const b = writeComplete(store, tg.id, a, v2, [mapping(0x100, v2.size)]);
    assert.equal(store.stats().compressionRatio, 1);
    assert.deepEqual(store.setConfig({ compression: 'lz4' }), { compression: 'lz4', flattenAfter: 0 });
    store.close();
    store = openStore(dir);
    assert.deepEqual(store.config(), { compression: 'lz4', flattenAfter: 0 }, 'kept across reopening');
    // Deleting a leaves its file mostly dead: gc copies the live pages into a new, compressed, segment.
    store.remove([a]);
    const g = store.gc();
    assert.ok(g.segmentsRewritten >= 1);
    const gcFile = Math.max(...fs.readdirSync(path.join(dir, 'segments')).map((n) => Number(n.slice(0, 10))));
    assert.ok(scanSegment(segFile(dir, gcFile)).parts.blocks.some((x) => x.comp === COMP_LZ4), 'gc wrote compressed blocks');
    assertSameView(materializeToMap(store, b), v2, 'after gc');
    // Import into an lz4 store compresses what it writes.
    const other = openStore(path.join(t.dir, 'o'));
    const stream = store.exportStream(b, path.join(t.dir, 'b.stream'), 'flattened').file;
    other.setConfig({ compression: 'lz4' });
    const [ib] = other.importStream(stream).ids;
    assert.ok(other.stats().compressionRatio > 2, `imported ratio ${other.stats().compressionRatio}`);
    assertSameView(materializeToMap(other, ib), v2, 'imported');
    other.close();

    assert.throws(() => store.setConfig({ compression: 'zstd' as Compression }), (e: unknown) => e instanceof StasisError && e.code === 'INVALID_INPUT' && /not one of none, lz4/.test(e.message));
    store.close();
    // A setting written by a newer Stasis is not silently ignored.
    const db = new Database(path.join(dir, 'index.sqlite'));
    db.prepare("UPDATE meta SET value = 'zstd' WHERE key = 'compression'").run();
    db.close();
    store = openStore(dir);
    assert.throws(() => store.begin({ targetId: tg.id, parentId: null, mode: 'full', dirtyTracking: 'hash', coverage: 'complete' }),
      (e: unknown) => e instanceof StasisError && e.code === 'UNSUPPORTED' && /"zstd".*store config --compression none/.test(e.message));
    assertSameView(materializeToMap(store, b), v2, 'reading does not need the setting');
    store.setConfig({ compression: 'none' });
    store.close();
  } finally {
    t.cleanup();
  }
});

test('a damaged compressed block is named by verify and reads as a CORRUPT error; other checkpoints still materialize', () => {
  const t = tempDir();
  try {
    const dir = path.join(t.dir, 's');
    const store = storeWith(dir, 'lz4');
    const ta = store.upsertTarget({ pid: 1, startTime: '1', exe: '/a', cmdline: [] });
    const tb = store.upsertTarget({ pid: 2, startTime: '2', exe: '/b', cmdline: [] });
    const va = mixedView(5, 128, 0);
    const vb = mixedView(6, 128, 0);
    const a = writeComplete(store, ta.id, null, va, [mapping(0x100, va.size)]);
    const b = writeComplete(store, tb.id, null, vb, [mapping(0x100, vb.size)]);
    store.close();
    const file = segFile(dir, 1);
    const blocks = scanSegment(file).parts.blocks;
    assert.equal(blocks[1].comp, COMP_LZ4);
    const bytes = fs.readFileSync(file);
    bytes[blocks[1].offset + 32 + Math.floor(blocks[1].storedLen / 2)] ^= 0x40;
    fs.writeFileSync(file, bytes);
    const s2 = openStore(dir);
    const v = s2.verify();
    assert.equal(v.ok, false);
    assert.deepEqual(v.problems, [{ what: 'block 1 checksum mismatch', where: `segments/${segmentName(1)} block 1 (offset ${blocks[1].offset})`, affects: [a] }]);
    assertSameView(materializeToMap(s2, b), vb, 'unaffected checkpoint');
    assert.throws(() => materializeToMap(s2, a), (e: unknown) => isCorrupt(e) && /block 1 checksum does not match/.test((e as Error).message));
    assert.deepEqual(s2.readPage(a, 0x100n << 12n), va.get(0x100), 'a page of an intact block of the same file still reads');
    s2.close();
  } finally {
    t.cleanup();
  }
});

/** Rewrites block i's stored bytes (and, when the length changes, its table entry) with every checksum made valid again. */
function reseal(file: Buffer, blocks: { offset: number }[], i: number, stored: Buffer, comp?: number): Buffer {
  const f = Buffer.from(file);
  const o = blocks[i].offset;
  stored.copy(f, o + 32);
  f.writeUInt32LE(stored.length, o + 16);
  if (comp !== undefined) f.writeUInt32LE(comp, o + 12);
  f.writeUInt32LE(crc32(stored), o + 20);
  f.writeUInt32LE(crc32(f.subarray(o, o + 28)), o + 28);
  const trailerOffset = Number(f.readBigUInt64LE(f.length - 32));
  const pages = Number(f.readBigUInt64LE(trailerOffset + 8));
  const entry = trailerOffset + 48 + pages * 32 + i * 16;
  f.writeUInt32LE(stored.length, entry + 8);
  if (comp !== undefined) f.writeUInt16LE(comp, entry + 12);
  f.writeUInt32LE(crc32(f.subarray(trailerOffset, f.length - 32)), f.length - 16);
  return f;
}

test('hostile compressed blocks with valid checksums (mutated, truncated, lying about their size) give CORRUPT errors only', () => {
  const t = tempDir();
  try {
    const dir = path.join(t.dir, 's');
    const store = storeWith(dir, 'lz4');
    const tg = store.upsertTarget({ pid: 1, startTime: '1', exe: '/a', cmdline: [] });
    const view = mixedView(7, 150, 0);
    writeComplete(store, tg.id, null, view, [mapping(0x100, view.size)]);
    store.close();
    const file = segFile(dir, 1);
    const good = fs.readFileSync(file);
    const blocks = scanSegment(file).parts.blocks;
    assert.deepEqual(blocks.map((b) => b.comp), [COMP_LZ4, COMP_LZ4, COMP_LZ4]);
    const r = rng(77);
    const rss0 = process.memoryUsage().rss;
    const outcomes = new Map<string, number>();
    for (let m = 0; m < 600; m++) {
      const i = Math.floor(r() * blocks.length);
      const stored = good.subarray(blocks[i].offset + 32, blocks[i].offset + 32 + blocks[i].storedLen);
      const want = (i < 2 ? 64 : 22) * PAGE;
      const kind = Math.floor(r() * 4);
      let bytes: Buffer;
      let mustFail = true;
      if (kind === 0) { // scrambled compressed bytes
        const s = Buffer.from(stored);
        for (let k = 1 + Math.floor(r() * 4); k > 0; k--) s[4 + Math.floor(r() * (s.length - 4))] = Math.floor(r() * 256);
        bytes = reseal(good, blocks, i, s);
        mustFail = false; // a change may still decode to the right length: the block checksum was made to match
      } else if (kind === 1) { // truncated
        bytes = reseal(good, blocks, i, Buffer.from(stored.subarray(0, 5 + Math.floor(r() * (stored.length - 6)))));
      } else if (kind === 2) { // the size prefix lies (a huge allocation if trusted)
        const s = Buffer.from(stored);
        s.writeUInt32LE([0, want - 1, want + 4096, 0xffffffff, Math.floor(r() * 2 ** 32)][Math.floor(r() * 5)], 0);
        if (s.readUInt32LE(0) === want) continue;
        bytes = reseal(good, blocks, i, s);
      } else { // an unknown compression, or a compressed block claiming to be raw
        bytes = reseal(good, blocks, i, Buffer.from(stored), r() < 0.5 ? 2 + Math.floor(r() * 1000) : COMP_NONE);
      }
      fs.writeFileSync(file, bytes);
      let flagged = false;
      try {
        flagged = scanSegment(file).badBlocks.includes(i);
      } catch (e) {
        if (!isCorrupt(e)) throw new Error(`mutation ${m} (kind ${kind}): scan raised ${(e as Error).stack}`, { cause: e });
        flagged = true;
      }
      const reader = new SegmentReader(path.join(dir, 'segments'));
      let readFailed = false;
      try {
        const out = Buffer.alloc(want);
        reader.readPages(1, i * 64, want / PAGE, out, 0);
      } catch (e) {
        if (!isCorrupt(e)) throw new Error(`mutation ${m} (kind ${kind}): read raised ${(e as Error).stack}`, { cause: e });
        readFailed = true;
        const key = (e as Error).message.replace(/^Segment file \S+ is damaged: /, '').replace(/\d+/g, 'N').slice(0, 60);
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      } finally {
        reader.closeAll();
      }
      if (mustFail) {
        assert.ok(flagged, `mutation ${m} (kind ${kind}) of block ${i} went unnoticed by verify`);
        assert.ok(readFailed, `mutation ${m} (kind ${kind}) of block ${i} read back without an error`);
      }
      assert.equal(flagged, readFailed, `mutation ${m} (kind ${kind}): verify and readers disagree`);
    }
    const grew = process.memoryUsage().rss - rss0;
    assert.ok(grew < 200 * 1024 * 1024, `memory grew by ${grew} bytes`);
    process.stderr.write(`compressed block fuzz outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}\n`);
  } finally {
    t.cleanup();
  }
});
