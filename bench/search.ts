/**
 * Search benchmark: `stasis grep` over a chain of checkpoints against grep(1) over one
 * materialized image, in the same run. A synthetic process of --gib GiB of unique random pages is
 * committed as a full checkpoint, then --checkpoints - 1 incrementals each rewriting --dirty % of
 * the pages (delta coverage, as uffd-wp tracking gives them); a needle is planted in one page of
 * the middle checkpoint and one across a page boundary of the full. Reports, for the search of all
 * checkpoints: wall time, bytes actually scanned (each distinct stored page once) and GB/s of that
 * distinct data, plus GB/s of the logical memory searched; and `LC_ALL=C grep -c -a -F` over the
 * last checkpoint's image written to a file (read from the page cache: the floor per image).
 *
 *   node --import tsx bench/search.ts [--gib 0.25] [--checkpoints 10] [--dirty 1]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomFillSync } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { openStore } from '../electron/engine/store';
import { grepCheckpoints } from '../electron/engine/inspect';
import { makeState, mapping } from '../test/store/model';
import { arg } from './args';

const GIB = Number(arg('gib', '0.25'));
const N = Number(arg('checkpoints', '10'));
const DIRTY = Number(arg('dirty', '1')) / 100;
const PAGE = 4096;
const BASE_VPN = 0x100000;
const NEEDLE = 'stasis-bench-needle-0123456789';
const log = (m: string): void => { process.stderr.write(`[bench search] ${m}\n`); };
const now = (): number => performance.now();

const pages = Math.round((GIB * 2 ** 30) / PAGE);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-bench-search-'));
const store = openStore(path.join(dir, 'store'));
try {
  const target = store.upsertTarget({ pid: 4242, startTime: '1', exe: '/bin/fixture', cmdline: ['fixture'] });
  const state = makeState([mapping(BASE_VPN, pages)]);
  const CHUNK = 1024;
  const buf = Buffer.alloc(CHUNK * PAGE);
  let t = now();
  let w = store.begin({ targetId: target.id, parentId: null, mode: 'full', dirtyTracking: 'none', coverage: 'complete' });
  w.setState(state);
  for (let p = 0; p < pages; p += CHUNK) {
    const n = Math.min(CHUNK, pages - p);
    randomFillSync(buf, 0, n * PAGE);
    if (p === 0) buf.write(NEEDLE, PAGE * 10 - 7, 'latin1'); // across the boundary of pages 9/10
    w.addPages(BigInt(BASE_VPN + p) << 12n, buf.subarray(0, n * PAGE));
  }
  const ids = [w.commit().id];
  log(`full checkpoint of ${GIB} GiB committed in ${((now() - t) / 1000).toFixed(1)} s`);
  const dirtyPages = Math.max(1, Math.round(pages * DIRTY));
  t = now();
  for (let c = 1; c < N; c++) {
    w = store.begin({ targetId: target.id, parentId: ids[ids.length - 1]!, mode: 'incremental', dirtyTracking: 'uffd-wp', coverage: 'delta' });
    w.setState(state);
    const one = Buffer.alloc(PAGE);
    for (let i = 0; i < dirtyPages; i++) {
      const p = (i * 7919 + c * 104729) % pages;
      randomFillSync(one);
      if (c === Math.floor(N / 2) && i === 0) one.write(NEEDLE, 100, 'latin1');
      w.addPages(BigInt(BASE_VPN + p) << 12n, one);
    }
    ids.push(w.commit().id);
  }
  log(`${N - 1} incrementals (${dirtyPages} pages each) committed in ${((now() - t) / 1000).toFixed(1)} s`);

  // Warm the page cache for both sides alike: read every segment once.
  for (const f of fs.readdirSync(path.join(dir, 'store', 'segments'))) fs.readFileSync(path.join(dir, 'store', 'segments', f));

  t = now();
  const r = grepCheckpoints(store, { pattern: NEEDLE, ids, context: 0 });
  const ms = now() - t;
  const found = r.matches.map((m) => `0x${m.address.toString(16)} first #${m.first} last #${m.last}`);
  log(`matches: ${found.join('; ')}`);

  // The floor: the last checkpoint's image as one file, and grep -c over it.
  const image = path.join(dir, 'image.bin');
  const fd = fs.openSync(image, 'w');
  for (const run of store.materialize(ids[ids.length - 1]!)) {
    const off = Number(run.vaddr) - BASE_VPN * PAGE;
    if (run.data) fs.writeSync(fd, run.data, 0, run.data.length, off);
  }
  fs.closeSync(fd);
  fs.readFileSync(image); // in the page cache, like the segments
  const imageBytes = fs.statSync(image).size;
  const g0 = now();
  const g = spawnSync('grep', ['-c', '-a', '-F', NEEDLE, image], { env: { ...process.env, LC_ALL: 'C' }, encoding: 'utf8' });
  const grepMs = now() - g0;

  const gb = (bytes: number, msecs: number): string => (bytes / 1e9 / (msecs / 1000)).toFixed(2);
  const s = r.stats;
  const rows = [
    ['checkpoints searched', String(s.checkpoints)],
    ['logical memory searched', `${(s.logicalBytes / 2 ** 30).toFixed(2)} GiB`],
    ['bytes scanned (distinct pages + boundary overlaps)', `${(s.bytesScanned / 2 ** 30).toFixed(3)} GiB (${s.distinctPages} distinct pages, ${s.boundaries} run boundaries)`],
    ['stasis grep wall time', `${ms.toFixed(0)} ms`],
    ['stasis grep, GB/s of distinct data', gb(s.bytesScanned, ms)],
    ['stasis grep, GB/s of logical memory', gb(s.logicalBytes, ms)],
    [`grep -c over one image (${(imageBytes / 2 ** 30).toFixed(2)} GiB)`, `${grepMs.toFixed(0)} ms, ${gb(imageBytes, grepMs)} GB/s (count ${g.stdout.trim()})`],
    [`grep -c over all ${N} images (${N} x one image)`, `${(grepMs * N).toFixed(0)} ms`],
  ];
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(52)} ${v}\n`);
} finally {
  store.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
