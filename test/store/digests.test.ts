import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { openStore } from '../../electron/engine/store';
import { hashPage } from '../../electron/engine/store/hash';
import * as digests from '../../electron/engine/store/page-digests';
import { PAGE, makeState, mapping, materializeToMap, tempDir } from './model';

const target = { pid: 100, startTime: '555', exe: '/bin/fixture', cmdline: ['fixture'] };

/** Random, zero, nearly-zero and repeated pages, in an order that crosses the helper's split. */
function mixedChunk(pages: number): Buffer {
  const buf = randomFillSync(Buffer.alloc(pages * PAGE));
  for (let i = 0; i < pages; i++) {
    if (i % 7 === 0) buf.fill(0, i * PAGE, (i + 1) * PAGE);
    if (i % 11 === 0) { buf.fill(0, i * PAGE, (i + 1) * PAGE); buf[i * PAGE + (i % PAGE)] = 1; }
    if (i % 13 === 0 && i > 0) buf.copy(buf, i * PAGE, 1 * PAGE, 2 * PAGE);
  }
  return buf;
}

test('page digests from the helper thread equal hash.ts on every page, in chunks larger and smaller than its slot', () => {
  for (const pages of [31, 32, 257, 3000]) {
    const data = mixedChunk(pages);
    const out = { zero: new Uint8Array(pages), hashes: Buffer.alloc(pages * 32) };
    const before = digests.helperPages;
    digests.digestPages(data, pages, out);
    for (let i = 0; i < pages; i++) {
      const page = data.subarray(i * PAGE, (i + 1) * PAGE);
      const isZero = page.every((b) => b === 0);
      assert.equal(out.zero[i], isZero ? 1 : 0, `zero flag of page ${i} of ${pages}`);
      if (!isZero) assert.deepEqual(out.hashes.subarray(i * 32, (i + 1) * 32), hashPage(page), `hash of page ${i} of ${pages}`);
    }
    // Two cores here: chunks of 32 pages or more are split with the helper.
    if (pages >= 32) assert.ok(digests.helperPages > before, `the helper took part for ${pages} pages`);
    else assert.equal(digests.helperPages, before);
  }
});

test('a stopped helper is replaced on the next chunk, and digests stay the same', () => {
  const data = mixedChunk(600);
  const a = { zero: new Uint8Array(600), hashes: Buffer.alloc(600 * 32) };
  const b = { zero: new Uint8Array(600), hashes: Buffer.alloc(600 * 32) };
  digests.digestPages(data, 600, a);
  digests.stopDigestHelper();
  digests.digestPages(data, 600, b);
  for (let i = 0; i < 600; i++) {
    assert.equal(b.zero[i], a.zero[i], `zero flag of page ${i}`);
    if (a.zero[i] === 0) assert.deepEqual(b.hashes.subarray(i * 32, i * 32 + 32), a.hashes.subarray(i * 32, i * 32 + 32), `hash of page ${i}`);
  }
});

test('dedup through the in-memory key set: a store handle that built its set still dedups pages another handle stored later', () => {
  const { dir, cleanup } = tempDir();
  try {
    const a = openStore(dir);
    const b = openStore(dir);
    const pages = 24_000; // more lookups than the set's build threshold, so b builds it
    const first = randomFillSync(Buffer.alloc(pages * PAGE));
    const tb = b.upsertTarget(target);
    const w1 = b.begin({ targetId: tb.id, parentId: null, mode: 'full', dirtyTracking: 'hash', coverage: 'complete' });
    w1.setState(makeState([mapping(0x1000, pages)]));
    for (let p = 0; p < pages; p += 1024) w1.addPages(BigInt(0x1000 + p) << 12n, first.subarray(p * PAGE, (p + 1024) * PAGE));
    const c1 = w1.commit();
    assert.equal(c1.stats.pagesWritten, pages);
    // Handle a (another process, say the daemon) stores new pages; b must find them.
    const second = randomFillSync(Buffer.alloc(2048 * PAGE));
    const ta = a.upsertTarget(target);
    const w2 = a.begin({ targetId: ta.id, parentId: null, mode: 'full', dirtyTracking: 'hash', coverage: 'complete' });
    w2.setState(makeState([mapping(0x900000, 2048)]));
    w2.addPages(BigInt(0x900000) << 12n, second);
    assert.equal(w2.commit().stats.pagesWritten, 2048);
    const w3 = b.begin({ targetId: tb.id, parentId: null, mode: 'full', dirtyTracking: 'hash', coverage: 'complete' });
    w3.setState(makeState([mapping(0x1000, pages), mapping(0x900000, 2048)]));
    for (let p = 0; p < pages; p += 1024) w3.addPages(BigInt(0x1000 + p) << 12n, first.subarray(p * PAGE, (p + 1024) * PAGE));
    w3.addPages(BigInt(0x900000) << 12n, second);
    const c3 = w3.commit();
    assert.equal(c3.stats.pagesWritten, 0, 'every page was already stored by one handle or the other');
    const got = materializeToMap(b, c3.id);
    assert.deepEqual(got.get(0x900000 + 5), second.subarray(5 * PAGE, 6 * PAGE));
    assert.deepEqual(got.get(0x1000 + 20_000), first.subarray(20_000 * PAGE, 20_001 * PAGE));
    a.close();
    b.close();
  } finally {
    cleanup();
  }
});
