import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { PassThrough, Transform } from 'node:stream';
import { openStore } from '../../electron/engine/store';
import { FrameReader, FrameWriter } from '../../electron/engine/migrate/wire';
import { acceptStream, offerStream } from '../../electron/engine/migrate/negotiate';
import { PAGE, assertSameView, mapping, materializeToMap, randomPage, rng, tempDir, writeComplete, type View } from '../store/model';

const target = { pid: 400, startTime: '400', exe: '/bin/o', cmdline: ['o'] };

/** Bytes read from files by readSync/readvSync while fn runs (the store reads its segments with these). */
async function bytesRead(fn: () => Promise<void>): Promise<number> {
  const readSync = fs.readSync, readvSync = fs.readvSync;
  let n = 0;
  const f = fs as { readSync: typeof fs.readSync; readvSync: typeof fs.readvSync };
  f.readSync = ((...a: Parameters<typeof fs.readSync>) => { const r = readSync(...a); n += r; return r; }) as typeof fs.readSync;
  f.readvSync = ((...a: Parameters<typeof fs.readvSync>) => { const r = readvSync(...a); n += r; return r; }) as typeof fs.readvSync;
  // The store's modules import node:fs as a namespace: its bindings follow the default object only when synced.
  syncBuiltinESMExports();
  try { await fn(); } finally { f.readSync = readSync; f.readvSync = readvSync; syncBuiltinESMExports(); }
  return n;
}

for (const footerLast of [true, false]) {
  test(`an offer to a receiver that holds most pages ${footerLast ? 'reads only the pages it sends (footer from the hashes)' : '(an older receiver: footer in the offer) still reads every page'}; the import is exact`, async () => {
    const t = tempDir();
    try {
      const src = openStore(`${t.dir}/src`);
      const dst = openStore(`${t.dir}/dst`);
      const r = rng(9);
      const view: View = new Map();
      for (let i = 0; i < 600; i++) view.set(0x100 + i, randomPage(r));
      const id = writeComplete(src, src.upsertTarget(target).id, null, view, [mapping(0x100, 600)]);
      // The receiver holds 500 of the 600 pages already (another process's checkpoint).
      const held: View = new Map([...view].slice(100));
      writeComplete(dst, dst.upsertTarget({ ...target, pid: 401 }).id, null, held, [mapping(0x100 + 100, 500)]);
      const toDst = new Transform({ transform(c: Buffer, _e, cb) { cb(null, Buffer.from(c)); } });
      const toSrc = new PassThrough();
      const dstRd = new FrameReader(toDst), dstWr = new FrameWriter(toSrc);
      const accepted = dstRd.magic().then(() => dstRd.expect('offer')).then((m) => acceptStream(dstRd, dstWr, m, { store: dst, importFile: async (f) => dst.importStream(f), beginImport: (total) => dst.beginImport(total) }))
        // What the destination answers once acceptStream is done (destination.ts).
        .then(async (a) => { await dstWr.send({ t: 'imported', ids: a.ids }); return a; });
      let offered: Awaited<ReturnType<typeof offerStream>> | null = null;
      const read = await bytesRead(async () => {
        const x = src.openExport(id, 'one', { checksum: 'hashes' });
        const wr = new FrameWriter(toDst);
        await wr.magic();
        offered = await offerStream(new FrameReader(toSrc), wr, x, {}, footerLast);
        await accepted;
      });
      const o = offered!;
      assert.equal(o.pages, 600);
      assert.equal(o.pagesSent, 100);
      assert.equal(o.pagesHeld, 500);
      // The receiver reads the 500 held pages from its own store to import them: about 500 pages
      // either way. The sender adds 100 pages, or all 600.
      const pagesRead = read / PAGE;
      if (footerLast) assert.ok(pagesRead < 500 + 100 + 60, `read ${pagesRead.toFixed(0)} pages in all`);
      else assert.ok(pagesRead >= 500 + 600, `read ${pagesRead.toFixed(0)} pages in all`);
      assertSameView(materializeToMap(dst, o.ids[0]!), view, 'imported');
      src.close();
      dst.close();
    } finally {
      t.cleanup();
    }
  });
}
