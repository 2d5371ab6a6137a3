/**
 * A migration's last round in memory the caller faulted in beforehand (migrate/warm-buffer.ts):
 * exportStreamBytes writes the stream into the caller's buffer when it fits, and streamDelta lays
 * the pages out in the caller's scratch; either falls back to fresh memory when it does not fit,
 * with the same content and every check.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { openStore } from '../../electron/engine/store';
import type { Store } from '../../electron/engine/store/api';
import { streamDelta, type StreamDelta } from '../../electron/engine/store/streams';
import { PAGE, mapping, randomPage, rng, tempDir, writeComplete, type View } from './model';

const target = { pid: 202, startTime: '779', exe: '/bin/fixture', cmdline: ['fixture'] };

function twoCheckpoints(store: Store): number[] {
  const tg = store.upsertTarget(target);
  const r = rng(37);
  const a: View = new Map();
  for (let i = 0; i < 64; i++) a.set(0x700 + i, i % 5 === 0 ? Buffer.alloc(PAGE) : randomPage(r));
  const b: View = new Map(a);
  for (let i = 0; i < 20; i++) b.set(0x700 + i * 3, randomPage(r));
  const ida = writeComplete(store, tg.id, null, a, [mapping(0x700, 64)]);
  return [ida, writeComplete(store, tg.id, ida, b, [mapping(0x700, 64)])];
}

function inside(b: Buffer, outer: Buffer): boolean {
  return b.buffer === outer.buffer && b.byteOffset >= outer.byteOffset && b.byteOffset + b.length <= outer.byteOffset + outer.length;
}

/** The delta's runs as comparable values (address, pages, bytes). */
function runsOf(d: StreamDelta): [string, number, string | null][] {
  return d.runs.map((r) => [r.vaddr.toString(16), r.pages, r.data ? r.data.toString('hex') : null]);
}

test('exportStreamBytes into a buffer that fits writes the stream there (data is a view of it); one too small gets fresh memory; both read back the same', () => {
  const t = tempDir();
  try {
    const src = openStore(path.join(t.dir, 'src'));
    const [, id] = twoCheckpoints(src);
    for (const checksum of ['bytes', 'hashes'] as const) {
      const fresh = src.exportStreamBytes(id!, 'one', { continues: 5, maxBytes: 1 << 24, checksum });
      const into = Buffer.alloc(fresh.bytes + 4096, 0xee);
      const warm = src.exportStreamBytes(id!, 'one', { continues: 5, maxBytes: 1 << 24, checksum, into });
      assert.equal(warm.bytes, fresh.bytes);
      assert.equal(warm.data.length, fresh.bytes);
      assert.ok(inside(warm.data, into), `the ${checksum} stream lies in the caller's buffer`);
      assert.equal(into[fresh.bytes], 0xee, 'nothing written past the stream');
      assert.deepEqual(runsOf(streamDelta('warm', warm.data)), runsOf(streamDelta('fresh', fresh.data)));
      const small = Buffer.alloc(fresh.bytes - 1);
      const over = src.exportStreamBytes(id!, 'one', { continues: 5, maxBytes: 1 << 24, checksum, into: small });
      assert.ok(!inside(over.data, small), 'a buffer too small is left alone');
      assert.deepEqual(runsOf(streamDelta('over', over.data)), runsOf(streamDelta('fresh', fresh.data)));
    }
    src.close();
  } finally {
    t.cleanup();
  }
});

test('streamDelta lays the pages out in scratch when they fit (else in fresh memory), with the same runs, and still refuses a damaged page', () => {
  const t = tempDir();
  try {
    const src = openStore(path.join(t.dir, 'src'));
    const [, id] = twoCheckpoints(src);
    const { data } = src.exportStreamBytes(id!, 'one', { continues: 5, maxBytes: 1 << 24, checksum: 'hashes' });
    const plain = streamDelta('plain', data);
    const pages = plain.runs.reduce((k, r) => k + (r.data ? r.pages : 0), 0);
    assert.ok(pages > 0);
    const scratch = Buffer.alloc(pages * PAGE);
    const laid = streamDelta('laid', data, scratch);
    assert.deepEqual(runsOf(laid), runsOf(plain));
    for (const r of laid.runs) if (r.data) assert.ok(inside(r.data, scratch), `the run at ${r.vaddr.toString(16)} lies in scratch`);
    const short = Buffer.alloc(pages * PAGE - 1);
    const apart = streamDelta('apart', data, short);
    assert.deepEqual(runsOf(apart), runsOf(plain));
    for (const r of apart.runs) if (r.data) assert.ok(!inside(r.data, short));
    const pagesAt = 32 + Number(data.readBigUInt64LE(16));
    const bad = Buffer.from(data);
    bad[pagesAt + 32 + 9]! ^= 0x40;
    assert.throws(() => streamDelta('bad', bad, scratch), /page 0 does not match its hash/);
    const cut = data.subarray(0, data.length - 1);
    assert.throws(() => streamDelta('cut', cut, scratch), /does not match its header|too short/);
    src.close();
  } finally {
    t.cleanup();
  }
});
