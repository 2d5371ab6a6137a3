import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { openStore } from '../../electron/engine/store';
import { existsSync } from 'node:fs';
import { PAGE_HASH_IMPL, digestPages, digestPagesPerPage, firstMismatch, firstMismatchCopied, hashPage } from '../../electron/engine/store/hash';
import { storeNative } from '../../electron/engine/store/native-addon';
import { PAGE, makeState, mapping, materializeToMap, tempDir } from './model';

const target = { pid: 100, startTime: '555', exe: '/bin/fixture', cmdline: ['fixture'] };

test('page digests: zero flags for all-zero pages only (one byte set anywhere is data), hashes equal hashPage', () => {
  const pages = 300;
  const data = randomFillSync(Buffer.alloc(pages * PAGE));
  for (let i = 0; i < pages; i++) {
    if (i % 7 === 0) data.fill(0, i * PAGE, (i + 1) * PAGE);
    if (i % 11 === 0) { data.fill(0, i * PAGE, (i + 1) * PAGE); data[i * PAGE + ((i * 37) % PAGE)] = 1; }
  }
  const out = { zero: new Uint8Array(pages), hashes: Buffer.alloc(pages * 32) };
  digestPages(data, pages, out);
  for (let i = 0; i < pages; i++) {
    const page = data.subarray(i * PAGE, (i + 1) * PAGE);
    const isZero = page.every((b) => b === 0);
    assert.equal(out.zero[i], isZero ? 1 : 0, `zero flag of page ${i}`);
    if (!isZero) assert.deepEqual(out.hashes.subarray(i * 32, (i + 1) * 32), hashPage(page), `hash of page ${i}`);
  }
});

test('page digests: the batch addon gives the per-page binding\'s zero flags and hashes for every chunk size (SIMD batches of 16/64 and their remainders)', () => {
  // Built by npm install (node-gyp); where it was, it must be the one in use, or a silent fallback
  // would hide a broken build behind the slow path.
  const built = existsSync(new URL('../../native/store-native/build/Release/store_native.node', import.meta.url));
  if (built) assert.equal(PAGE_HASH_IMPL, 'batch');
  const pages = 200;
  const data = randomFillSync(Buffer.alloc(pages * PAGE));
  for (let i = 0; i < pages; i += 5) data.fill(0, i * PAGE, (i + 1) * PAGE);
  data[13 * PAGE + 4095] = 0; // a data page that ends in a zero byte
  for (const n of [1, 2, 15, 16, 17, 63, 64, 65, 129, 200]) {
    const a = { zero: new Uint8Array(n), hashes: Buffer.alloc(n * 32) };
    const b = { zero: new Uint8Array(n), hashes: Buffer.alloc(n * 32) };
    const chunk = data.subarray(PAGE, PAGE + n * PAGE > data.length ? data.length : PAGE + n * PAGE);
    const m = chunk.length / PAGE;
    digestPages(chunk, m, a);
    digestPagesPerPage(chunk, m, b);
    assert.deepEqual(a.zero, b.zero, `zero flags, ${m} pages`);
    for (let i = 0; i < m; i++) if (!a.zero[i]) assert.deepEqual(a.hashes.subarray(i * 32, (i + 1) * 32), b.hashes.subarray(i * 32, (i + 1) * 32), `hash of page ${i} of ${m}`);
  }
});

test('page digests: a chunk shorter than the page count is refused, not read past its end', () => {
  const out = { zero: new Uint8Array(4), hashes: Buffer.alloc(4 * 32) };
  if (PAGE_HASH_IMPL === 'batch') assert.throws(() => digestPages(Buffer.alloc(3 * PAGE), 4, out), /shorter than n pages/);
});

test('dedup across store handles: a handle that already wrote a big checkpoint still dedups pages another handle stored later', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const a = openStore(dir);
    const b = openStore(dir);
    const pages = 24_000;
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
    // Its dedup rows go in once its engine is idle (StoreIndex.addDedupLater).
    await new Promise((r) => setImmediate(r));
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

test('firstMismatch finds the first entry whose page does not have its hash, zero pages and batch edges included (in place through the addon, and copied)', () => {
  // The checkout's addon build checks entries in place (the copying path is the fallback without
  // it); where it was built it must have the function, or a stale build hides behind the fallback.
  if (existsSync(new URL('../../native/store-native/build/Release/store_native.node', import.meta.url))) {
    assert.equal(typeof storeNative?.firstEntryMismatch, 'function', 'rebuild native/store-native (npm_config_nodedir=/usr npx node-gyp rebuild)');
  }
  const n = 600; // batches of 64 (in place) and 256 (copied), the last ones short
  const buf = Buffer.alloc(n * 4128);
  for (let i = 0; i < n; i++) {
    const page = buf.subarray(i * 4128 + 32, (i + 1) * 4128);
    if (i % 5 !== 0) randomFillSync(page); // every fifth page stays zero
    hashPage(page).copy(buf, i * 4128);
  }
  for (const check of [firstMismatch, firstMismatchCopied]) {
    assert.equal(check(buf, n), -1, check.name);
    for (const bad of [0, 5, 63, 64, 255, 256, 300, 599]) {
      const copy = Buffer.from(buf);
      copy[bad * 4128 + 32 + 4000] ^= 1; // a zero page made non-zero, or a byte of a random one
      assert.equal(check(copy, n), bad, `${check.name}: page ${bad} changed`);
      const hashBad = Buffer.from(buf);
      hashBad[bad * 4128 + 7] ^= 0x80;
      assert.equal(check(hashBad, n), bad, `${check.name}: hash of page ${bad} changed`);
      // Only the first n entries are looked at.
      assert.equal(check(copy, bad), -1, `${check.name}: ${bad} entries before the bad one`);
    }
  }
});
