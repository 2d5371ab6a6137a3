import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { openStore } from '../../electron/engine/store';
import { PAGE, assertSameView, mapping, materializeToMap, randomPage, rng, tempDir, writeComplete, type View } from './model';

const target = { pid: 202, startTime: '779', exe: '/bin/fixture', cmdline: ['fixture'] };

/** 96 pages of which 32 distinct: each random page appears at three addresses. */
function repetitive(seed: number): View {
  const r = rng(seed);
  const distinct = Array.from({ length: 32 }, () => randomPage(r));
  const v: View = new Map();
  for (let i = 0; i < 96; i++) v.set(0x600 + i, distinct[i % 32]!);
  return v;
}

/** Bytes of the store's segment files. */
function segmentBytes(dir: string): number {
  const segs = path.join(dir, 'segments');
  return fs.readdirSync(segs).reduce((n, f) => n + fs.statSync(path.join(segs, f)).size, 0);
}

test('an import into an empty store stores each distinct page once; importing it again, or committing the same pages, stores none again (the rows an import adds go in later, before the next look-up)', () => {
  const t = tempDir();
  try {
    const src = openStore(path.join(t.dir, 'src'));
    const tg = src.upsertTarget(target);
    const v = repetitive(41);
    const a = writeComplete(src, tg.id, null, v, [mapping(0x600, 96)]);
    const file = src.exportStream(a, path.join(t.dir, 'a.stream')).file;
    const dst = openStore(path.join(t.dir, 'dst'));
    const first = dst.importStream(file).ids[0]!;
    assert.equal(dst.stats().uniquePages, 32);
    const bytes = segmentBytes(path.join(t.dir, 'dst'));
    assert.ok(bytes > 32 * PAGE && bytes < 40 * PAGE, `the first import wrote ${bytes} bytes`);
    const again = dst.importStream(file).ids[0]!;
    assert.equal(dst.stats().uniquePages, 32, 'the second import found every page stored');
    // Its new segment holds no page, only the checkpoint's records: far less than 32 pages.
    assert.ok(segmentBytes(path.join(t.dir, 'dst')) - bytes < 4 * PAGE, `grew by ${segmentBytes(path.join(t.dir, 'dst')) - bytes}`);
    const tg2 = dst.upsertTarget({ ...target, pid: 203 });
    const before = segmentBytes(path.join(t.dir, 'dst'));
    writeComplete(dst, tg2.id, null, v, [mapping(0x600, 96)]);
    assert.ok(segmentBytes(path.join(t.dir, 'dst')) - before < 4 * PAGE, 'a commit of the same pages found them stored');
    for (const c of [first, again]) assertSameView(materializeToMap(dst, c), v, `#${c}`);
    src.close();
    dst.close();
    // And from a fresh handle (the rows were inserted by then, at the latest at close).
    const reopened = openStore(path.join(t.dir, 'dst'));
    const before2 = segmentBytes(path.join(t.dir, 'dst'));
    reopened.importStream(file);
    assert.ok(segmentBytes(path.join(t.dir, 'dst')) - before2 < 4 * PAGE, 'an import through a fresh handle found them stored');
    reopened.close();
  } finally {
    t.cleanup();
  }
});

test('a stream that carries a page twice (another writer\'s, not ours: an export names each page once) has it stored once', () => {
  const t = tempDir();
  try {
    const src = openStore(path.join(t.dir, 'src'));
    const tg = src.upsertTarget(target);
    const a = writeComplete(src, tg.id, null, repetitive(43), [mapping(0x600, 96)]);
    const bytes = fs.readFileSync(src.exportStream(a, path.join(t.dir, 'a.stream')).file);
    const pagesAt = 32 + Number(bytes.readBigInt64LE(16));
    const n = Number(bytes.readBigInt64LE(24));
    assert.equal(n, 32);
    // The same entries twice (the records still name the first 32), with the header and checksum to match.
    const entries = bytes.subarray(pagesAt, bytes.length - 40);
    const head = Buffer.from(bytes.subarray(0, pagesAt));
    head.writeBigUInt64LE(BigInt(2 * n), 24);
    const sha = createHash('sha256').update(head);
    for (const e of [entries, entries]) for (let o = 0; o < e.length; o += 32 + PAGE) sha.update(e.subarray(o, o + 32));
    const file = path.join(t.dir, 'twice.stream');
    fs.writeFileSync(file, Buffer.concat([head, entries, entries, sha.digest(), bytes.subarray(-8)]));
    const dst = openStore(path.join(t.dir, 'dst'));
    const id = dst.importStream(file).ids[0]!;
    const stored = segmentBytes(path.join(t.dir, 'dst'));
    assert.ok(stored < 40 * PAGE, `${stored} bytes stored for 32 distinct pages`);
    assertSameView(materializeToMap(dst, id), repetitive(43), 'imported');
    src.close();
    dst.close();
  } finally {
    t.cleanup();
  }
});
