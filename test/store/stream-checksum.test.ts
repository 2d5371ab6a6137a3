import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { openStore } from '../../electron/engine/store';
import type { Store } from '../../electron/engine/store/api';
import { streamDelta } from '../../electron/engine/store/streams';
import { PAGE, assertSameView, mapping, materializeToMap, randomPage, rng, tempDir, writeComplete, type View } from './model';

const target = { pid: 201, startTime: '778', exe: '/bin/fixture', cmdline: ['fixture'] };
const ENTRY = 32 + PAGE;

function twoCheckpoints(store: Store): { ids: number[]; views: View[] } {
  const tg = store.upsertTarget(target);
  const r = rng(31);
  const a: View = new Map();
  for (let i = 0; i < 64; i++) a.set(0x500 + i, i % 5 === 0 ? Buffer.alloc(PAGE) : randomPage(r));
  const b: View = new Map(a);
  for (let i = 0; i < 16; i++) b.set(0x500 + i * 3, randomPage(r));
  const ida = writeComplete(store, tg.id, null, a, [mapping(0x500, 64)]);
  const idb = writeComplete(store, tg.id, ida, b, [mapping(0x500, 64)]);
  return { ids: [ida, idb], views: [a, b] };
}

/** Where a stream file's entries start (after its header and manifest), and its version. */
function layout(bytes: Buffer): { version: number; pagesAt: number } {
  return { version: bytes.readUInt32LE(8), pagesAt: 32 + Number(bytes.readBigUInt64LE(16)) };
}

function flipped(bytes: Buffer, at: number): Buffer {
  const b = Buffer.from(bytes);
  b[at]! ^= 0x10;
  return b;
}

function refuses(dst: Store, file: string, bytes: Buffer, re: RegExp, what: string): void {
  fs.writeFileSync(file, bytes);
  assert.throws(() => dst.importStream(file), (e: unknown) => e instanceof Error && re.test(e.message) && /Nothing was imported/.test(e.message), `${what}: ${re}`);
}

test('streams are version 3 by default: a flipped page byte is refused by its page hash, a flipped manifest or page-hash byte by the checksum, nothing imported', () => {
  const t = tempDir();
  try {
    const src = openStore(path.join(t.dir, 'src'));
    const { ids, views } = twoCheckpoints(src);
    const s = src.exportStream(ids[1]!, path.join(t.dir, 'x.stream'));
    const bytes = fs.readFileSync(s.file);
    const { version, pagesAt } = layout(bytes);
    assert.equal(version, 3);
    // The footer's definition, computed here apart from the code: SHA-256 of the header, the manifest and each entry's hash.
    const sha = createHash('sha256').update(bytes.subarray(0, pagesAt));
    for (let o = pagesAt; o < bytes.length - 40; o += ENTRY) sha.update(bytes.subarray(o, o + 32));
    assert.deepEqual(bytes.subarray(-40, -8), sha.digest());
    const dst = openStore(path.join(t.dir, 'dst'));
    refuses(dst, path.join(t.dir, 'page'), flipped(bytes, pagesAt + 2 * ENTRY + 32 + 1000), /page 2 does not match its hash/, 'page byte');
    refuses(dst, path.join(t.dir, 'last-page'), flipped(bytes, bytes.length - 40 - 1), /page \d+ does not match its hash/, 'last page byte');
    refuses(dst, path.join(t.dir, 'manifest'), flipped(bytes, pagesAt - 30), /checksum does not match/, 'manifest byte');
    refuses(dst, path.join(t.dir, 'hash'), flipped(bytes, pagesAt + 3 * ENTRY + 7), /checksum does not match/, 'page hash byte');
    refuses(dst, path.join(t.dir, 'footer'), flipped(bytes, bytes.length - 40 + 3), /checksum does not match/, 'footer byte');
    assert.equal(dst.list().length, 0);
    assert.deepEqual(fs.readdirSync(path.join(t.dir, 'dst', 'segments')), []);
    const r = dst.importStream(s.file);
    for (const [i, id] of r.ids.entries()) assertSameView(materializeToMap(dst, id), views[i]!, `imported #${i}`);
    src.close();
    dst.close();
  } finally {
    t.cleanup();
  }
});

test('a version 1 stream (checksum over every byte) still imports, and a flipped page byte in it is refused by its checksum', () => {
  const t = tempDir();
  try {
    const src = openStore(path.join(t.dir, 'src'));
    const { ids, views } = twoCheckpoints(src);
    const s = src.exportStream(ids[1]!, path.join(t.dir, 'old.stream'), 'one', { checksum: 'bytes' });
    const bytes = fs.readFileSync(s.file);
    const { version, pagesAt } = layout(bytes);
    assert.equal(version, 1);
    // As every Stasis before version 3 wrote and reads it: SHA-256 of every byte before the footer.
    assert.deepEqual(bytes.subarray(-40, -8), createHash('sha256').update(bytes.subarray(0, -40)).digest());
    const dst = openStore(path.join(t.dir, 'dst'));
    refuses(dst, path.join(t.dir, 'page'), flipped(bytes, pagesAt + 2 * ENTRY + 32 + 1000), /checksum does not match/, 'page byte');
    assert.equal(dst.list().length, 0);
    const r = dst.importStream(s.file);
    assert.equal(r.ids.length, 2);
    for (const [i, id] of r.ids.entries()) assertSameView(materializeToMap(dst, id), views[i]!, `imported #${i}`);
    // The same checkpoints as version 3: same pages, same size, another checksum.
    const n = src.exportStream(ids[1]!, path.join(t.dir, 'new.stream'));
    const nb = fs.readFileSync(n.file);
    assert.equal(nb.length, bytes.length);
    assert.ok(!nb.subarray(-40, -8).equals(bytes.subarray(-40, -8)));
    src.close();
    dst.close();
  } finally {
    t.cleanup();
  }
});

test('continuations: version 2 and 4 both import onto the receiver\'s parent; streamDelta reads both and refuses a flipped page in either', () => {
  const t = tempDir();
  try {
    const src = openStore(path.join(t.dir, 'src'));
    const { ids, views } = twoCheckpoints(src);
    for (const checksum of ['bytes', 'hashes'] as const) {
      const dst = openStore(path.join(t.dir, `dst-${checksum}`));
      const base = dst.importStream(src.exportStream(ids[0]!, path.join(t.dir, `base-${checksum}`)).file).ids[0]!;
      const file = path.join(t.dir, `cont-${checksum}`);
      src.exportStream(ids[1]!, file, 'one', { continues: base, checksum });
      const bytes = fs.readFileSync(file);
      const { version, pagesAt } = layout(bytes);
      assert.equal(version, checksum === 'bytes' ? 2 : 4);
      const d = streamDelta('round', bytes);
      assert.equal(d.continues, base);
      assert.equal(d.runs.reduce((k, r) => k + (r.data ? r.pages : 0), 0), (bytes.length - pagesAt - 40) / ENTRY);
      assert.throws(() => streamDelta('round', flipped(bytes, pagesAt + 32 + 5)), checksum === 'bytes' ? /checksum does not match/ : /page 0 does not match its hash/);
      const id = dst.importStream(file).ids[0]!;
      assert.equal(dst.get(id)?.parentId, base);
      assertSameView(materializeToMap(dst, id), views[1]!, `continued (${checksum})`);
      dst.close();
    }
    src.close();
  } finally {
    t.cleanup();
  }
});

test('an in-memory export keeps version 1 or 2 unless asked (a receiver of either age takes it); asked, it writes 3 or 4', () => {
  const t = tempDir();
  try {
    const src = openStore(path.join(t.dir, 'src'));
    const { ids } = twoCheckpoints(src);
    assert.equal(src.exportStreamBytes(ids[1]!, 'one', { continues: 9, maxBytes: 1 << 24 }).data.readUInt32LE(8), 2);
    assert.equal(src.exportStreamBytes(ids[1]!, 'one', { continues: 9, maxBytes: 1 << 24, checksum: 'hashes' }).data.readUInt32LE(8), 4);
    assert.equal(src.exportStreamBytes(ids[1]!, 'one', { maxBytes: 1 << 24 }).data.readUInt32LE(8), 1);
    src.close();
  } finally {
    t.cleanup();
  }
});

test('openExport: chunks(true) refills one buffer and gives the bytes of chunks() and of the file export', () => {
  const t = tempDir();
  try {
    const src = openStore(path.join(t.dir, 'src'));
    const tg = src.upsertTarget(target);
    const r = rng(33);
    const v: View = new Map();
    for (let i = 0; i < 600; i++) v.set(0x700 + i, randomPage(r)); // 600 pages: three chunks of entries
    const id = writeComplete(src, tg.id, null, v, [mapping(0x700, 600)]);
    const x = src.openExport(id, 'one');
    const reused: Buffer[] = [];
    const buffers = new Set<ArrayBufferLike>();
    let entryChunks = 0;
    for (const c of x.chunks(true)) {
      reused.push(Buffer.from(c));
      if (c.length % ENTRY === 0 && c.length >= ENTRY) { entryChunks++; buffers.add(c.buffer); }
    }
    assert.equal(entryChunks, 3);
    assert.equal(buffers.size, 1, 'every chunk of entries is the one buffer');
    const fresh = Buffer.concat([...src.openExport(id, 'one').chunks()]);
    const file = fs.readFileSync(src.exportStream(id, path.join(t.dir, 'x.stream')).file);
    // Same bytes but the manifest's export time.
    const body = (b: Buffer): Buffer => b.subarray(32 + Number(b.readBigUInt64LE(16)), b.length - 40);
    assert.deepEqual(body(Buffer.concat(reused)), body(fresh));
    assert.deepEqual(body(fresh), body(file));
    src.close();
  } finally {
    t.cleanup();
  }
});

test('a stream of a version this Stasis does not read is refused by its version, not called short (the reader stops at its header)', () => {
  const t = tempDir();
  try {
    const src = openStore(path.join(t.dir, 'src'));
    const tg = src.upsertTarget(target);
    const r = rng(35);
    const v: View = new Map();
    for (let i = 0; i < 400; i++) v.set(0x800 + i, randomPage(r)); // more than the 1 MiB an import reads at a time
    const id = writeComplete(src, tg.id, null, v, [mapping(0x800, 400)]);
    const bytes = Buffer.from(fs.readFileSync(src.exportStream(id, path.join(t.dir, 'x.stream')).file));
    assert.ok(bytes.length > 1 << 20);
    bytes.writeUInt32LE(5, 8);
    const dst = openStore(path.join(t.dir, 'dst'));
    refuses(dst, path.join(t.dir, 'v5'), bytes, /it is stream version 5, this Stasis reads versions 1, 2, 3, 4/, 'version 5');
    assert.equal(dst.list().length, 0);
    src.close();
    dst.close();
  } finally {
    t.cleanup();
  }
});
