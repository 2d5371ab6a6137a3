/**
 * The addon's write-behind (native/store-native/write_behind.c, used by segments.ts for raw blocks):
 * its checksums equal node:zlib's, a segment written through it is byte for byte the one written
 * without it, a write or fsync error reaches the caller, and a segment sealed on the thread while
 * its index rows go in (seal, publish, place) is the one finish() writes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import { storeNative } from '../../electron/engine/store/native-addon';
import Database from 'better-sqlite3';
import { SegmentWriter, scanSegment } from '../../electron/engine/store/segments';
import { StoreIndex } from '../../electron/engine/store/store-index';
import { PAGE, tempDir } from './model';

const skip = storeNative ? false : 'the store addon is not built here';

test('write-behind: CRC-32 of every length 0..300 at unaligned offsets, and of whole blocks, equals zlib', { skip }, () => {
  const native = storeNative!;
  const { dir, cleanup } = tempDir();
  const fd = fs.openSync(path.join(dir, 'f'), 'w+');
  try {
    const src = randomFillSync(Buffer.alloc(300 + 3 + 64 * PAGE + 4));
    const cases: [number, number][] = [];
    for (let len = 0; len <= 300; len++) cases.push([len % 3, len]);
    for (const len of [PAGE, 17 * PAGE, 64 * PAGE]) cases.push([1, len]);
    const wb = native.writeBehindOpen(fd, 1 << 20, 0);
    let pos = 0;
    const want: { pos: number; crc: number; len: number }[] = [];
    for (const [off, len] of cases) {
      const buf = Buffer.alloc(len + 4);
      src.copy(buf, 0, off, off + len);
      native.writeBehindWait(wb, native.writeBehindWrite(wb, buf, len + 4, pos, [0, len, len]));
      want.push({ pos, crc: crc32(src.subarray(off, off + len)), len });
      pos += len + 4;
    }
    native.writeBehindClose(wb);
    const file = fs.readFileSync(path.join(dir, 'f'));
    for (const w of want) assert.equal(file.readUInt32LE(w.pos + w.len), w.crc, `crc of ${w.len} bytes`);
  } finally {
    fs.closeSync(fd);
    cleanup();
  }
});

test('write-behind: a segment written through the thread is byte for byte the one written without it, and verifies clean', { skip }, () => {
  const { dir, cleanup } = tempDir();
  try {
    const pages = 64 * 9 + 13; // full blocks (more than the ring holds) and a partial last one
    const data = randomFillSync(Buffer.alloc(pages * PAGE));
    const hash = Buffer.alloc(32);
    const files: Buffer[] = [];
    for (const writeBehind of [true, false]) {
      const segDir = path.join(dir, String(writeBehind));
      fs.mkdirSync(segDir);
      const seg = new SegmentWriter(segDir, 7, 'none', writeBehind);
      for (let i = 0; i < pages; i++) { hash.writeUInt32LE(i); seg.addPage(data, i * PAGE, hash); }
      seg.finish([], Buffer.alloc(0));
      files.push(fs.readFileSync(seg.finalPath));
      assert.deepEqual(scanSegment(seg.finalPath).badBlocks, [], `no bad block (write-behind ${writeBehind})`);
    }
    assert.ok(files[0]!.equals(files[1]!), 'same bytes on disk');
  } finally {
    cleanup();
  }
});

test('write-behind: a failed write is thrown by the next wait, every later call and close', { skip }, () => {
  const native = storeNative!;
  const { dir, cleanup } = tempDir();
  fs.writeFileSync(path.join(dir, 'ro'), '');
  const fd = fs.openSync(path.join(dir, 'ro'), 'r'); // pwrite on it fails with EBADF
  try {
    const wb = native.writeBehindOpen(fd, 1 << 20, 0);
    const seq = native.writeBehindWrite(wb, Buffer.alloc(PAGE), PAGE, 0, []);
    assert.throws(() => native.writeBehindWait(wb, seq), (e: NodeJS.ErrnoException) => e.code === 'EBADF');
    assert.throws(() => native.writeBehindWrite(wb, Buffer.alloc(PAGE), PAGE, PAGE, []), (e: NodeJS.ErrnoException) => e.code === 'EBADF');
    assert.throws(() => native.writeBehindClose(wb), (e: NodeJS.ErrnoException) => e.code === 'EBADF');
    assert.throws(() => native.writeBehindWait(wb, seq), /closed/);
    assert.throws(() => native.writeBehindWrite(wb, Buffer.alloc(8), 8, 0, [0, 8, 4]), /closed/);
  } finally {
    fs.closeSync(fd);
    cleanup();
  }
});

test('write-behind: bad arguments are refused before anything is queued', { skip }, () => {
  const native = storeNative!;
  const { dir, cleanup } = tempDir();
  const fd = fs.openSync(path.join(dir, 'f'), 'w+');
  try {
    const wb = native.writeBehindOpen(fd, 1 << 20, 0);
    assert.throws(() => native.writeBehindWrite(wb, Buffer.alloc(8), 9, 0, []), /len must fit/);
    assert.throws(() => native.writeBehindWrite(wb, Buffer.alloc(8), 8, 0, [0, 9, 0]), /outside the write/);
    assert.throws(() => native.writeBehindWrite(wb, Buffer.alloc(8), 8, 0, [0, 4, 5]), /outside the write/);
    assert.throws(() => native.writeBehindWrite(wb, Buffer.alloc(8), 8, 0, [0, 4]), /triples/);
    native.writeBehindClose(wb);
    assert.equal(fs.fstatSync(fd).size, 0);
  } finally {
    fs.closeSync(fd);
    cleanup();
  }
});

test('write-behind: pages read in place into the block (readRoom), some not kept, give the bytes of the kept pages added one by one', { skip }, () => {
  const { dir, cleanup } = tempDir();
  try {
    const pages = 64 * 21 + 7; // more blocks than a job and the ring hold, and a partial last one
    const data = randomFillSync(Buffer.alloc(pages * PAGE));
    // Not kept: runs of 1-3 pages at varied places, the first and last page of a read among them.
    const dropped = (i: number): boolean => i % 13 === 0 || i % 29 < 3 || i % 64 === 63;
    const hash = Buffer.alloc(32);
    const files: Buffer[] = [];
    for (const inPlace of [true, false]) {
      const segDir = path.join(dir, String(inPlace));
      fs.mkdirSync(segDir);
      const seg = new SegmentWriter(segDir, 7, 'none', inPlace);
      let next = 0;
      while (next < pages) {
        if (!inPlace) {
          if (!dropped(next)) { hash.writeUInt32LE(next); seg.addPage(data, next * PAGE, hash); }
          next++;
          continue;
        }
        const room = seg.readRoom()!;
        // Reads of varied sizes, as a capture's ranges give them, many across a block's end.
        const n = Math.min(room.pages, pages - next, 1 + (next % 150));
        data.copy(room.buf, room.first * PAGE, next * PAGE, (next + n) * PAGE);
        for (let k = 0; k < n; k++) {
          if (dropped(next + k)) continue;
          hash.writeUInt32LE(next + k);
          seg.keepReadPage(room.first + k, hash, 0);
        }
        next += n;
      }
      seg.finish([], Buffer.alloc(0));
      files.push(fs.readFileSync(seg.finalPath));
      assert.deepEqual(scanSegment(seg.finalPath).badBlocks, [], `no bad block (in place ${inPlace})`);
    }
    assert.ok(files[0]!.equals(files[1]!), 'same bytes on disk');
  } finally {
    cleanup();
  }
});

test('write-behind: a segment takes the ring of the last one whose thread stopped, never one still in use, and writes the same bytes with it', { skip }, () => {
  const { dir, cleanup } = tempDir();
  try {
    const write = (seg: SegmentWriter, data: Buffer, pages: number, kept: (i: number) => boolean): void => {
      const hash = Buffer.alloc(32);
      let next = 0;
      while (next < pages) {
        const room = seg.readRoom();
        const n = room ? Math.min(room.pages, pages - next, 1 + (next % 90)) : 1;
        if (room) data.copy(room.buf, room.first * PAGE, next * PAGE, (next + n) * PAGE);
        for (let k = 0; k < n; k++) {
          if (!kept(next + k)) continue;
          hash.writeUInt32LE(next + k);
          if (room) seg.keepReadPage(room.first + k, hash, 0); else seg.addPage(data, (next + k) * PAGE, hash);
        }
        next += n;
      }
    };
    const first = new SegmentWriter(dir, 1, 'none', true);
    const firstRing = first.readRoom()!.buf;
    // Open beside it: its own ring.
    const beside = new SegmentWriter(dir, 2, 'none', true);
    assert.notEqual(beside.readRoom()!.buf, firstRing, 'a ring still in use is not shared');
    beside.discard();
    write(first, randomFillSync(Buffer.alloc(600 * PAGE)), 600, () => true);
    first.finish([], Buffer.alloc(0));
    // The ring now holds the first segment's pages: the next one must write only its own.
    const data = randomFillSync(Buffer.alloc(64 * 9 * PAGE));
    const kept = (i: number): boolean => i % 5 !== 1 && i % 64 !== 0;
    const next = new SegmentWriter(dir, 3, 'none', true);
    assert.equal(next.readRoom()!.buf, firstRing, 'the ring of the finished segment is taken again');
    write(next, data, 64 * 9, kept);
    next.finish([], Buffer.alloc(0));
    fs.mkdirSync(path.join(dir, 'plain'));
    const plain = new SegmentWriter(path.join(dir, 'plain'), 3, 'none', false);
    write(plain, data, 64 * 9, kept);
    plain.finish([], Buffer.alloc(0));
    assert.ok(fs.readFileSync(next.finalPath).equals(fs.readFileSync(plain.finalPath)), 'same bytes as without write-behind');
    assert.deepEqual(scanSegment(next.finalPath).badBlocks, [], 'no bad block');
  } finally {
    cleanup();
  }
});

test('write-behind: keepReadPage refuses a slot that was not read in place', { skip }, () => {
  const { dir, cleanup } = tempDir();
  const seg = new SegmentWriter(dir, 1, 'none', true);
  try {
    const room = seg.readRoom()!;
    seg.keepReadPage(room.first + 2, Buffer.alloc(32), 0);
    assert.throws(() => seg.keepReadPage(0, Buffer.alloc(32), 0), /not a page read in place/);
    assert.throws(() => seg.keepReadPage(room.first + room.pages, Buffer.alloc(32), 0), /not a page read in place/);
  } finally {
    seg.discard();
    cleanup();
  }
});

test('write-behind: writeBehindSync fsyncs after the writes queued before it, and its failure is thrown as a write\'s is', { skip }, () => {
  const native = storeNative!;
  const { dir, cleanup } = tempDir();
  const fd = fs.openSync(path.join(dir, 'f'), 'w+');
  const [rd, wr] = pipeFds();
  try {
    assert.equal(typeof native.writeBehindSync, 'function', 'this build has writeBehindSync');
    const wb = native.writeBehindOpen(fd, 1 << 20, 0);
    const data = randomFillSync(Buffer.alloc(3 * PAGE));
    native.writeBehindWrite(wb, data, data.length, 0, []);
    native.writeBehindWait(wb, native.writeBehindSync!(wb));
    native.writeBehindClose(wb);
    assert.ok(fs.readFileSync(path.join(dir, 'f')).equals(data));
    // fsync(2) of a pipe fails with EINVAL: the thread really calls it, and the caller hears of it.
    const bad = native.writeBehindOpen(wr, 1 << 20, 0);
    const seq = native.writeBehindSync!(bad);
    assert.throws(() => native.writeBehindWait(bad, seq), (e: NodeJS.ErrnoException) => e.code === 'EINVAL');
    assert.throws(() => native.writeBehindClose(bad), (e: NodeJS.ErrnoException) => e.code === 'EINVAL');
  } finally {
    for (const x of [fd, rd, wr]) fs.closeSync(x);
    cleanup();
  }
});

/** Two descriptors of one pipe (node:fs has no pipe()): a FIFO opened read-write does not block. */
function pipeFds(): [number, number] {
  const { dir } = tempDir();
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const rd = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  const wr = fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  fs.rmSync(dir, { recursive: true, force: true });
  return [rd, wr];
}

test('write-behind: seal() then place() give finish()\'s bytes; the file keeps its temporary name until place()', { skip }, () => {
  const { dir, cleanup } = tempDir();
  try {
    const pages = 64 * 9 + 13;
    const data = randomFillSync(Buffer.alloc(pages * PAGE));
    const hash = Buffer.alloc(32);
    const records = randomFillSync(Buffer.alloc(1000));
    const files: Buffer[] = [];
    for (const split of [true, false]) {
      const segDir = path.join(dir, String(split));
      fs.mkdirSync(segDir);
      const seg = new SegmentWriter(segDir, 7, 'none', split);
      for (let i = 0; i < pages; i++) { hash.writeUInt32LE(i); seg.addPage(data, i * PAGE, hash); }
      if (split) {
        const sealed = seg.seal([], records);
        assert.equal(fs.existsSync(seg.finalPath), false, 'not in place before place()');
        assert.ok(fs.existsSync(seg.tmpPath));
        seg.place();
        assert.equal(fs.statSync(seg.finalPath).size, sealed.bytes);
      } else {
        seg.finish([], records);
      }
      assert.equal(fs.existsSync(seg.tmpPath), false);
      files.push(fs.readFileSync(seg.finalPath));
      assert.deepEqual(scanSegment(seg.finalPath).badBlocks, []);
    }
    assert.ok(files[0]!.equals(files[1]!), 'same bytes on disk');
  } finally {
    cleanup();
  }
});

test('publish with place: the rows go in before the segment is in place, and no other connection sees them until both are done', () => {
  const { dir, cleanup } = tempDir();
  const index = new StoreIndex(dir);
  const other = new Database(path.join(dir, 'index.sqlite'), { readonly: true });
  try {
    const seen = (id: number): boolean => other.prepare('SELECT 1 FROM files WHERE id = ?').get(id) !== undefined;
    const data = randomFillSync(Buffer.alloc(100 * PAGE));
    const hash = Buffer.alloc(32);
    const seg = index.newSegment();
    for (let i = 0; i < 100; i++) { hash.writeUInt32LE(i); seg.addPage(data, i * PAGE, hash); }
    const { bytes, pages, blockBytes } = seg.seal([], Buffer.alloc(0));
    const steps: string[] = [];
    index.publish(seg.fileId, () => {
      index.insertFile(seg.fileId, bytes, pages, [], blockBytes);
      steps.push('rows');
    }, () => {
      assert.equal(fs.existsSync(seg.finalPath), false, 'the rows went in before the file was placed');
      seg.place();
      assert.ok(fs.existsSync(seg.finalPath));
      assert.equal(seen(seg.fileId), false, 'not visible before the commit');
      steps.push('placed');
    });
    assert.deepEqual(steps, ['rows', 'placed']);
    assert.equal(seen(seg.fileId), true, 'visible after it');
    assert.equal(other.prepare('SELECT 1 FROM pending WHERE file = ?').get(seg.fileId), undefined);
    assert.equal(index.reader.pagesIn(seg.fileId), 100);

    // The rows fail: nothing is visible, the file never reached its name, and the writer's abort removes it.
    const seg2 = index.newSegment();
    seg2.addPage(data, 0, hash);
    const s2 = seg2.seal([], Buffer.alloc(0));
    assert.throws(() => index.publish(seg2.fileId, () => {
      index.insertFile(seg2.fileId, s2.bytes, s2.pages, [], s2.blockBytes);
      index.insertFile(seg2.fileId, s2.bytes, s2.pages, [], s2.blockBytes); // the same id twice
    }, () => seg2.place()), /UNIQUE/);
    seg2.discard();
    assert.equal(seen(seg2.fileId), false);
    assert.equal(fs.existsSync(seg2.finalPath), false);
    assert.equal(fs.existsSync(seg2.tmpPath), false);
  } finally {
    other.close();
    index.close();
    cleanup();
  }
});
