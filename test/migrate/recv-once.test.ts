// A negotiated receiver that imports as the pages arrive writes each page once, into its segment
// (no resume spool beside it): counted in bytes the process wrote to disk (/proc/self/io
// write_bytes). A cut keeps the arrived pages as a segment no checkpoint names, the resend takes
// them from it and asks only for the rest; a damaged page in that segment makes the resend ask for
// all of it again and the store stops deduplicating against it. In process, real stores on disk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough, Transform } from 'node:stream';
import { openStore, type Store } from '../../electron/engine/store';
import { FrameReader, FrameWriter } from '../../electron/engine/migrate/wire';
import { acceptStream, offerStream, type AcceptResult, type OfferResult } from '../../electron/engine/migrate/negotiate';
import { hashPage } from '../../electron/engine/store/hash';
import { PAGE, assertSameView, mapping, materializeToMap, randomPage, rng, tempDir, writeComplete, type View } from '../store/model';

const PAGES = 4096;
const target = { pid: 500, startTime: '500', exe: '/bin/r', cmdline: ['r'] };

function writeBytes(): number {
  const m = /^write_bytes: (\d+)$/m.exec(fs.readFileSync('/proc/self/io', 'utf8'));
  return Number(m![1]);
}

/** One offer of checkpoint id from src to dst over in-memory pipes; cutAt: the link to dst ends after that many bytes. */
async function transfer(src: Store, dst: Store, id: number, cutAt = Infinity, flipAt = -1): Promise<{ offered: OfferResult | Error; accepted: AcceptResult | Error }> {
  let passed = 0;
  const toDst = new Transform({
    transform(c: Buffer, _e, cb) {
      if (passed >= cutAt) { cb(); return; }
      const part = Buffer.from(c.subarray(0, Math.min(c.length, cutAt - passed)));
      if (flipAt >= passed && flipAt < passed + part.length) part[flipAt - passed] ^= 0x20;
      passed += part.length;
      this.push(part);
      if (passed >= cutAt) this.push(null);
      cb();
    },
  });
  const toSrc = new PassThrough();
  const dstRd = new FrameReader(toDst), dstWr = new FrameWriter(toSrc);
  const accepted = dstRd.magic().then(() => dstRd.expect('offer'))
    .then((m) => acceptStream(dstRd, dstWr, m, { store: dst, importFile: async (f) => dst.importStream(f), beginImport: (total, avoidFiles) => dst.beginImport(total, avoidFiles ? { avoidFiles } : {}) }))
    .then(async (a) => { await dstWr.send({ t: 'imported', ids: a.ids }); return a; }, (e: Error) => {
      // As a session that refused: it ends, and closes the link (the sender may be mid-frame).
      toSrc.end();
      toDst.destroy();
      return e;
    });
  const x = src.openExport(id, 'one', { checksum: 'hashes' });
  const wr = new FrameWriter(toDst);
  await wr.magic();
  const offered = await offerStream(new FrameReader(toSrc), wr, x, {}, true).catch((e: Error) => e);
  return { offered, accepted: await accepted };
}

function setup(t: { dir: string }): { src: Store; dst: Store; id: number; view: View } {
  const src = openStore(path.join(t.dir, 'src'));
  const dst = openStore(path.join(t.dir, 'dst'));
  const r = rng(23);
  const view: View = new Map();
  for (let i = 0; i < PAGES; i++) view.set(0x400 + i, randomPage(r));
  const id = writeComplete(src, src.upsertTarget(target).id, null, view, [mapping(0x400, PAGES)]);
  return { src, dst, id, view };
}

function segmentFiles(store: string): string[] {
  return fs.readdirSync(path.join(store, 'segments')).filter((n) => !n.endsWith('.tmp')).map((n) => path.join(store, 'segments', n));
}

test('a fresh negotiated receiver writes each arrived page to disk once', async () => {
  const t = tempDir();
  try {
    const { src, dst, id, view } = setup(t);
    const before = writeBytes();
    const { offered, accepted } = await transfer(src, dst, id);
    const written = writeBytes() - before;
    assert.ok(!(offered instanceof Error), String(offered));
    assert.ok(!(accepted instanceof Error), String(accepted));
    assert.equal(offered.pagesSent, PAGES);
    // The pages once (their segment, with its hashes and block headers) plus the index: not twice.
    const perPage = written / (PAGES * PAGE);
    assert.ok(perPage < 1.3, `wrote ${written} bytes for ${PAGES * PAGE} bytes of pages received (${perPage.toFixed(2)}x)`);
    assertSameView(materializeToMap(dst, accepted.ids[0]!), view, 'imported');
    assert.deepEqual(fs.readdirSync(dst.dir).filter((n) => n.startsWith('.')), [], 'no spool left');
    src.close();
    dst.close();
  } finally {
    t.cleanup();
  }
});

test('a cut keeps what arrived as a segment no checkpoint names; the resend sends only the rest and writes only it', async () => {
  const t = tempDir();
  try {
    const { src, dst, id, view } = setup(t);
    const cut = await transfer(src, dst, id, 8 << 20);
    assert.ok(cut.accepted instanceof Error && /broke off/.test(cut.accepted.message), String(cut.accepted));
    assert.deepEqual(dst.list(), [], 'nothing visible after the cut');
    const kept = segmentFiles(dst.dir);
    assert.equal(kept.length, 1, 'the arrived pages kept in one published segment');
    const keptPages = Math.floor(fs.statSync(kept[0]!).size / PAGE);
    assert.ok(keptPages > 1000, `kept about ${keptPages} pages`);
    const before = writeBytes();
    const { offered, accepted } = await transfer(src, dst, id);
    const written = writeBytes() - before;
    assert.ok(!(offered instanceof Error), String(offered));
    assert.ok(!(accepted instanceof Error), String(accepted));
    assert.ok(offered.pagesResumed > 1000, `resumed ${offered.pagesResumed}`);
    assert.equal(offered.pagesSent + offered.pagesResumed, PAGES, 'no page that arrived was sent again');
    assert.equal(offered.pagesHeld, 0);
    assert.ok(written < 1.3 * offered.pagesSent * PAGE + (1 << 20), `the resend wrote ${written} bytes for ${offered.pagesSent * PAGE} bytes of pages sent`);
    assertSameView(materializeToMap(dst, accepted.ids[0]!), view, 'resumed import');
    assert.deepEqual(fs.readdirSync(dst.dir).filter((n) => n.startsWith('.')), [], 'the resume record is gone once imported');
    assert.equal(dst.verify().ok, true);
    src.close();
    dst.close();
  } finally {
    t.cleanup();
  }
});

test('a damaged page in the kept segment: the resend asks for every page again, imports exactly, and dedup leaves the damaged copy', async () => {
  const t = tempDir();
  try {
    const { src, dst, id, view } = setup(t);
    const cut = await transfer(src, dst, id, 8 << 20);
    assert.ok(cut.accepted instanceof Error, 'cut');
    const [kept] = segmentFiles(dst.dir);
    // The 10th page of the stream (random bytes: found once in the file) gets one byte flipped.
    const victim = view.get(0x400 + 10)!;
    const bytes = fs.readFileSync(kept!);
    const at = bytes.indexOf(victim.subarray(0, 64));
    assert.ok(at > 0, 'the page is in the kept segment');
    const fd = fs.openSync(kept!, 'r+');
    fs.writeSync(fd, Buffer.from([bytes[at + 100]! ^ 0x5a]), 0, 1, at + 100);
    fs.closeSync(fd);
    const { offered, accepted } = await transfer(src, dst, id);
    assert.ok(!(offered instanceof Error), String(offered));
    assert.ok(!(accepted instanceof Error), String(accepted));
    assert.equal(offered.pagesResumed, 0);
    assert.equal(offered.pagesSent, PAGES);
    assertSameView(materializeToMap(dst, accepted.ids[0]!), view, 'imported past a damaged kept segment');
    // A later checkpoint deduplicating the page must find the good copy.
    const where = dst.locatePages(hashPage(victim));
    assert.ok(where[0], 'the page is found');
    assert.ok(dst.readStored(where[0].file, where[0].page, 1).equals(victim), 'dedup points at the good copy');
    src.close();
    dst.close();
  } finally {
    t.cleanup();
  }
});

test('a kept segment no import used: the store verifies clean, lists nothing, and gc removes it', async () => {
  const t = tempDir();
  try {
    const { src, dst, id } = setup(t);
    const cut = await transfer(src, dst, id, 4 << 20);
    assert.ok(cut.accepted instanceof Error, 'cut');
    assert.equal(segmentFiles(dst.dir).length, 1);
    assert.deepEqual(dst.list(), []);
    assert.equal(dst.verify().ok, true);
    const g = dst.gc();
    assert.equal(g.segmentsRewritten, 1);
    assert.deepEqual(segmentFiles(dst.dir), [], 'gc removed it');
    assert.equal(dst.verify().ok, true);
    src.close();
    dst.close();
  } finally {
    t.cleanup();
  }
});

test('a page damaged on the way (framing intact) is refused by its hash: nothing imported, the pages before it kept for the resend', async () => {
  const t = tempDir();
  try {
    const { src, dst, id, view } = setup(t);
    // Well inside the pages (the head and the hash list come first): about page 1500 of the stream.
    const bad = await transfer(src, dst, id, Infinity, PAGES * 32 + 1500 * PAGE + 777);
    assert.ok(bad.accepted instanceof Error && /does not match its hash/.test(bad.accepted.message), String(bad.accepted));
    assert.deepEqual(dst.list(), [], 'nothing imported');
    const { offered, accepted } = await transfer(src, dst, id);
    assert.ok(!(offered instanceof Error), String(offered));
    assert.ok(!(accepted instanceof Error), String(accepted));
    assert.ok(offered.pagesResumed >= 1000 && offered.pagesResumed < 1500, `resumed ${offered.pagesResumed}: those before the damaged page's frame at most`);
    assert.equal(offered.pagesSent + offered.pagesResumed, PAGES);
    assertSameView(materializeToMap(dst, accepted.ids[0]!), view, 'imported after a damaged page');
    src.close();
    dst.close();
  } finally {
    t.cleanup();
  }
});
