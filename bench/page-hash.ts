/**
 * Page hashing, the store's per-page cost (store/hash.ts): zero test + BLAKE3 of PAGES random 4 KiB
 * pages (30% zero pages, as the capture target has) through the store addon's batch call and through
 * the per-page @napi-rs/blake-hash binding it falls back to, alternating, best of REPS; and the
 * block checksum (CRC-32 of 256 KiB blocks) through node:zlib and the addon's write-behind thread
 * (writing to /dev/null). usage: npm run bench -- page-hash   (env: PAGES=65536 REPS=5)
 */
import { closeSync, openSync } from 'node:fs';
import { loadavg } from 'node:os';
import { randomFillSync } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { digestPages, digestPagesPerPage, PAGE_HASH_IMPL } from '../electron/engine/store/hash';
import { storeNative } from '../electron/engine/store/native-addon';
import { formatTable, type Row } from './table';

const PAGES = Number(process.env.PAGES ?? 65536);
const REPS = Number(process.env.REPS ?? 5);
const PAGE = 4096;
const BLOCK = 64 * PAGE;

function best(fn: () => void): number {
  let b = Infinity;
  for (let i = 0; i < REPS; i++) {
    const t0 = performance.now();
    fn();
    b = Math.min(b, performance.now() - t0);
  }
  return b;
}

const load0 = loadavg()[0]!;
const data = randomFillSync(Buffer.alloc(PAGES * PAGE));
let nonZero = 0;
for (let i = 0; i < PAGES; i++) if (i % 10 < 3) data.fill(0, i * PAGE, (i + 1) * PAGE); else nonZero++;
const out = { zero: new Uint8Array(PAGES), hashes: Buffer.alloc(PAGES * 32) };
const chunk = 1024; // pages per call, as capture hands the writer 4 MiB at a time
const times = { batch: [] as number[], perPage: [] as number[], zlib: [] as number[], thread: [] as number[] };
for (let round = 0; round < 2; round++) {
  if (PAGE_HASH_IMPL === 'batch') times.batch.push(best(() => { for (let p = 0; p < PAGES; p += chunk) digestPages(data.subarray(p * PAGE, (p + chunk) * PAGE), Math.min(chunk, PAGES - p), out); }));
  times.perPage.push(best(() => { for (let p = 0; p < PAGES; p += chunk) digestPagesPerPage(data.subarray(p * PAGE, (p + chunk) * PAGE), Math.min(chunk, PAGES - p), out); }));
  times.zlib.push(best(() => { for (let o = 0; o + BLOCK <= data.length; o += BLOCK) crc32(data.subarray(o, o + BLOCK)); }));
  if (storeNative) {
    const native = storeNative;
    const fd = openSync('/dev/null', 'w');
    try {
      times.thread.push(best(() => {
        const wb = native.writeBehindOpen(fd, 1 << 30, 0);
        // The checksum is stored over the block's last 4 bytes: the bytes hashed stay the same.
        for (let o = 0; o + BLOCK <= data.length; o += BLOCK) native.writeBehindWrite(wb, data.subarray(o, o + BLOCK), BLOCK, 0, [0, BLOCK - 4, BLOCK - 4]);
        native.writeBehindClose(wb);
      }));
    } finally {
      closeSync(fd);
    }
  }
}
const min = (xs: number[]): number => Math.min(...xs);
const rows: Row[] = [];
const perPageUs = (ms: number): string => ((ms * 1000) / nonZero).toFixed(2);
if (times.batch.length) rows.push({ what: 'page hash: addon, one call per 1024 pages', 'ms': min(times.batch).toFixed(1), 'µs per non-zero page': perPageUs(min(times.batch)), 'GB/s of non-zero pages': ((nonZero * PAGE) / min(times.batch) / 1e6).toFixed(2) });
rows.push({ what: 'page hash: @napi-rs/blake-hash, one call per page', 'ms': min(times.perPage).toFixed(1), 'µs per non-zero page': perPageUs(min(times.perPage)), 'GB/s of non-zero pages': ((nonZero * PAGE) / min(times.perPage) / 1e6).toFixed(2) });
rows.push({ what: 'block CRC-32: node:zlib, 256 KiB blocks', 'ms': min(times.zlib).toFixed(1), 'µs per non-zero page': '', 'GB/s of non-zero pages': `${(data.length / min(times.zlib) / 1e6).toFixed(2)} (all bytes)` });
if (times.thread.length) rows.push({ what: 'block CRC-32 + write to /dev/null: addon thread', 'ms': min(times.thread).toFixed(1), 'µs per non-zero page': '', 'GB/s of non-zero pages': `${(data.length / min(times.thread) / 1e6).toFixed(2)} (all bytes)` });
process.stdout.write(`Page hashing: ${PAGES} pages (${nonZero} non-zero), best of ${REPS} x 2 alternating rounds; load average ${load0.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end\n\n${formatTable(rows)}\n\n${formatTable(rows, true)}\n`);
