/**
 * Store benchmark: synthetic process images with a realistic mix (30% zero pages in runs, 5%
 * duplicates, the rest incompressible and unique), committed as a full checkpoint and then a chain
 * of incrementals with 1% of pages dirty (in clumps of 16, delta coverage). Measures full commit
 * GB/s, incremental commit time, materialize GB/s of the chain's first and last checkpoint, index
 * and dedup-table bytes, store bytes, dedup ratio and reindex time, and next to them the machine's
 * floors measured in the same run (bench/floors): the disk's durable write speed for the bytes the
 * full stored, and the same preads both materializations made replayed from C. Also compares the page hash
 * (SHA-256 vs BLAKE3) and LZ4 block compression on synthetic and on real process memory, and (with
 * --real) a full checkpoint of real process memory through the store. --compression sets the
 * store's block compression for the store runs (a list runs each). --flatten sets the store's
 * flattenAfter (a list runs each chain once per value; 0 = off): a checkpoint whose pages come from
 * more segments is re-flattened after its commit, as the engine does when idle (the bench yields to
 * the event loop after every commit and times those flattens apart from the commits).
 *
 * --ab N builds one chain of N without flattening, copies the store and flattens the copy's last
 * checkpoint, then reads the last checkpoint of both and the same image stored as one full,
 * alternating --reps times: the three in the same moments of a busy machine (medians and bests).
 *
 *   node --import tsx bench/store.ts [--gib 1] [--chains 1,10,100|none] [--big-gib 8] [--compression none,lz4] [--flatten 0,8] [--reps 3] [--ab 100] [--skip-hash] [--real] [--markdown]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { hash, randomFillSync } from 'node:crypto';
import { blake3 } from '@napi-rs/blake-hash';
import { compressSync, uncompressSync } from 'lz4-napi';
import { openStore } from '../electron/engine/store';
import { COMPRESSIONS, type Compression, type Store } from '../electron/engine/store/api';
import { makeState, mapping } from '../test/store/model';
import { formatTable, type Row } from './table';
import { durableWriteSecs, recordReads, replayReadsMs } from './floors';
import { arg } from './args';

const GIB = Number(arg('gib', '1'));
const CHAINS = arg('chains', '1,10,100') === 'none' ? [] : arg('chains', '1,10,100').split(',').map(Number);
const BIG = Number(arg('big-gib', '0'));
const MD = process.argv.includes('--markdown');
const REAL = process.argv.includes('--real');
const COMP = arg('compression', 'none').split(',').map((c) => {
  if (!(COMPRESSIONS as readonly string[]).includes(c)) throw new Error(`--compression ${c}: give ${COMPRESSIONS.join(', ')}`);
  return c as Compression;
});
const FLATTEN = arg('flatten', '0').split(',').map(Number);
/** Alternating materialize rounds per chain (each keeps its best): more rounds see through a busy machine. */
const REPS = Number(arg('reps', '3'));
/** --ab N: a chain of N, its last checkpoint read as it is and flattened (a copy of the store), against the same full. */
const AB = Number(arg('ab', '0'));
const PAGE = 4096;
const BASE_VPN = 0x100000;
const log = (m: string): void => { process.stderr.write(`[bench store] ${m}\n`); };
const now = (): number => Number(process.hrtime.bigint()) / 1e9;

/** A pool of random bytes; pages are slices of it, stamped with (vpn, version) so each is unique. */
const POOL_PAGES = 16384;
const pool = randomFillSync(Buffer.alloc(POOL_PAGES * PAGE));
const dupPool = randomFillSync(Buffer.alloc(16 * PAGE));

function blockKind(vpn: number): 'zero' | 'dup' | 'data' {
  const b = Math.floor(vpn / 32);
  const x = ((b * 2654435761) >>> 0) % 100;
  return x < 30 ? 'zero' : x < 35 ? 'dup' : 'data';
}

function fillPage(out: Buffer, o: number, vpn: number, version: number): void {
  const k = blockKind(vpn);
  if (k === 'zero') { out.fill(0, o, o + PAGE); return; }
  if (k === 'dup') { dupPool.copy(out, o, (vpn % 16) * PAGE, (vpn % 16 + 1) * PAGE); return; }
  const src = ((vpn * 7919) % POOL_PAGES) * PAGE;
  pool.copy(out, o, src, src + PAGE);
  out.writeUInt32LE(vpn >>> 0, o);
  out.writeUInt32LE(version, o + 4);
}

function fullCommit(store: Store, targetId: number, pages: number): { id: number; secs: number } {
  const buf = Buffer.alloc(256 * PAGE);
  const w = store.begin({ targetId, parentId: null, mode: 'full', dirtyTracking: 'hash', coverage: 'complete' });
  w.setState(makeState([mapping(BASE_VPN, pages)]));
  let secs = 0;
  for (let p = 0; p < pages; p += 256) {
    const n = Math.min(256, pages - p);
    for (let i = 0; i < n; i++) fillPage(buf, i * PAGE, BASE_VPN + p + i, 0);
    const t0 = now();
    w.addPages(BigInt(BASE_VPN + p) << 12n, n === 256 ? buf : buf.subarray(0, n * PAGE));
    secs += now() - t0;
  }
  const t0 = now();
  const id = w.commit().id;
  return { id, secs: secs + now() - t0 };
}

function incrementalCommit(store: Store, targetId: number, parentId: number, pages: number, version: number): { id: number; secs: number } {
  const clumps = Math.max(1, Math.round((pages * 0.01) / 16));
  const buf = Buffer.alloc(16 * PAGE);
  const t0 = now();
  const w = store.begin({ targetId, parentId, mode: 'incremental', dirtyTracking: 'soft-dirty', coverage: 'delta' });
  w.setState(makeState([mapping(BASE_VPN, pages)]));
  const starts = new Set<number>();
  while (starts.size < clumps) starts.add(Math.floor(((version * 104729 + starts.size * 15485863) % (pages - 16)) / 16) * 16);
  for (const s of [...starts].sort((a, b) => a - b)) {
    for (let i = 0; i < 16; i++) {
      const vpn = BASE_VPN + s + i;
      fillPage(buf, i * PAGE, vpn, version);
      if (blockKind(vpn) !== 'data') { pool.copy(buf, i * PAGE, 0, PAGE); buf.writeUInt32LE(vpn, i * PAGE); buf.writeUInt32LE(version, i * PAGE + 4); }
    }
    w.addPages(BigInt(BASE_VPN + s) << 12n, buf);
  }
  const id = w.commit().id;
  return { id, secs: now() - t0 };
}

function materializeSecs(store: Store, id: number): number {
  let best = Infinity;
  for (let rep = 0; rep < 2; rep++) {
    const t0 = now();
    let n = 0;
    for (const r of store.materialize(id)) n += r.pages;
    best = Math.min(best, now() - t0);
    if (n === 0) throw new Error('nothing materialized');
  }
  return best;
}

function sizeOf(dir: string, pred: (n: string) => boolean): number {
  let s = 0;
  for (const n of fs.readdirSync(dir)) if (pred(n)) s += fs.statSync(path.join(dir, n)).size;
  return s;
}

async function chainBench(gib: number, chain: number, compression: Compression, flattenAfter = 0): Promise<Row> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-bench-'));
  try {
    const pages = Math.round(gib * 262144);
    let flattens = 0;
    let store = openStore(dir, { onFlatten: (r) => { if (r instanceof Error) throw r; flattens++; } });
    store.setConfig({ compression, flattenAfter });
    let flattenSecs = 0;
    /** Lets a flatten the last commit started run (the engine idle between calls), timed apart. */
    const idle = async (): Promise<void> => {
      const t0 = now();
      await new Promise((resolve) => setImmediate(resolve));
      flattenSecs += now() - t0;
    };
    const tg = store.upsertTarget({ pid: 1, startTime: '1', exe: '/bench', cmdline: [] });
    const full = fullCommit(store, tg.id, pages);
    // The disk's own limit for this commit: the same number of bytes written and fsynced (median of 3).
    const fullBytes = sizeOf(path.join(dir, 'segments'), () => true);
    const floorSecs = [0, 1, 2].map(() => durableWriteSecs(dir, fullBytes)).sort((a, b) => a - b)[1];
    let last = full.id;
    let incSecs = 0;
    for (let k = 1; k < chain; k++) {
      const r = incrementalCommit(store, tg.id, last, pages, k);
      incSecs += r.secs;
      last = r.id;
      await idle();
    }
    // The target compares the chain's last checkpoint with the same image stored as one full
    // checkpoint: flattened and imported into a fresh store (the chain's own first checkpoint holds
    // other contents: the incrementals turn zero pages into data, +28% data bytes at 100).
    const flatDir = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-bench-flat-'));
    const flatFile = path.join(flatDir, 'last.stream');
    store.exportStream(last, flatFile, 'flattened');
    const flat = openStore(path.join(flatDir, 'store'));
    const flatId = flat.importStream(flatFile).ids[0];
    // Alternate the reads so all see the same machine load; keep each one's best.
    let matFirst = Infinity;
    let matLast = Infinity;
    let matFlat = Infinity;
    for (let rep = 0; rep < REPS; rep++) {
      matFirst = Math.min(matFirst, materializeSecs(store, full.id));
      matLast = Math.min(matLast, materializeSecs(store, last));
      matFlat = Math.min(matFlat, materializeSecs(flat, flatId));
    }
    // The kernel's own price for each checkpoint's read pattern: the same preads, replayed from C.
    const readsFirst = recordReads(() => { for (const r of store.materialize(full.id)) void r; });
    const readsLast = recordReads(() => { for (const r of store.materialize(last)) void r; });
    const readsFlat = recordReads(() => { for (const r of flat.materialize(flatId)) void r; });
    const cLast = replayReadsMs(readsLast);
    const cFlat = replayReadsMs(readsFlat);
    flat.close();
    fs.rmSync(flatDir, { recursive: true, force: true });
    const st = store.stats();
    const gcd = store.gc(); // what the superseded copies flattening left behind cost
    store.close(); // checkpoints the WAL into the database files
    const indexBytes = sizeOf(dir, (n) => n.startsWith('index.sqlite'));
    const dedupBytes = sizeOf(dir, (n) => n.startsWith('dedup.sqlite'));
    const segBytes = sizeOf(path.join(dir, 'segments'), () => true);
    for (const n of fs.readdirSync(dir)) if (n.includes('sqlite')) fs.rmSync(path.join(dir, n));
    const t0 = now();
    store = openStore(dir); // a lost index is rebuilt on open
    const reindexSecs = now() - t0;
    if (store.list().length !== chain) throw new Error('reindex lost checkpoints');
    store.close();
    const bytes = pages * PAGE;
    return {
      image: `${gib} GiB`, chain, compression, 'flatten after': flattenAfter || 'off', flattens, 'flatten s': flattenSecs,
      'full GB/s': bytes / full.secs / 1e9,
      'disk floor GB/s': bytes / floorSecs / 1e9,
      'incr ms (1%)': chain > 1 ? (incSecs / (chain - 1)) * 1000 : '-',
      'mat first GB/s': bytes / matFirst / 1e9,
      'mat last GB/s': bytes / matLast / 1e9,
      'last/first': matLast / matFirst,
      'last/same full': matLast / matFlat,
      'reads first': readsFirst.length,
      'reads last/full': `${readsLast.length}/${readsFlat.length}`,
      'C pread last/same full': cLast / cFlat,
      'index KB/GiB/ckpt': indexBytes / 1024 / gib / chain,
      'dedup tbl MB': dedupBytes / 1048576,
      'store MB': (segBytes + indexBytes + dedupBytes + gcd.bytesReclaimed) / 1048576,
      'after gc MB': (segBytes + indexBytes + dedupBytes) / 1048576,
      'dedup x': st.dedupRatio,
      'comp x': st.compressionRatio,
      'reindex s': reindexSecs,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function flattenAB(gib: number, chain: number, reps: number): Row {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-bench-ab-'));
  try {
    const pages = Math.round(gib * 262144);
    const store = openStore(path.join(dir, 'chain'));
    const tg = store.upsertTarget({ pid: 1, startTime: '1', exe: '/bench', cmdline: [] });
    let last = fullCommit(store, tg.id, pages).id;
    for (let k = 1; k < chain; k++) last = incrementalCommit(store, tg.id, last, pages, k).id;
    const flatFile = path.join(dir, 'last.stream');
    store.exportStream(last, flatFile, 'flattened');
    const full = openStore(path.join(dir, 'full'));
    const fullId = full.importStream(flatFile).ids[0];
    fs.rmSync(flatFile);
    store.close();
    fs.cpSync(path.join(dir, 'chain'), path.join(dir, 'flat'), { recursive: true });
    const chained = openStore(path.join(dir, 'chain'));
    const flat = openStore(path.join(dir, 'flat'));
    const t0 = now();
    const fr = flat.flatten(last);
    const flattenSecs = now() - t0;
    flat.gc();
    const once = (s: Store, id: number): number => {
      const t = now();
      let n = 0;
      for (const r of s.materialize(id)) n += r.pages;
      if (n === 0) throw new Error('nothing materialized');
      return now() - t;
    };
    const a: number[] = [];
    const b: number[] = [];
    const f: number[] = [];
    for (let i = 0; i < 2; i++) { once(chained, last); once(flat, last); once(full, fullId); } // page cache warm
    for (let rep = 0; rep < reps; rep++) { a.push(once(chained, last)); b.push(once(flat, last)); f.push(once(full, fullId)); }
    const reads = (s: Store, id: number): number => recordReads(() => { for (const r of s.materialize(id)) void r; }).length;
    const row: Row = {
      image: `${gib} GiB`, chain, reps, 'flatten s': flattenSecs, 'flatten MB': fr.bytes / 1048576,
      'as is ms': median(a) * 1000, 'flattened ms': median(b) * 1000, 'same full ms': median(f) * 1000,
      'as is/full': median(a) / median(f), 'flattened/full': median(b) / median(f),
      'best as is/full': Math.min(...a) / Math.min(...f), 'best flattened/full': Math.min(...b) / Math.min(...f),
      'reads as is/flattened/full': `${reads(chained, last)}/${reads(flat, last)}/${reads(full, fullId)}`,
    };
    chained.close();
    flat.close();
    full.close();
    return row;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Readable, writable private memory of this very process (a Node heap: code, strings, objects). */
function realMemory(limit: number): Buffer {
  const junk: unknown[] = [];
  for (let i = 0; i < 200_000; i++) junk.push({ i, s: `item-${i}-${'x'.repeat(i % 50)}`, a: [i, i * 2, String(i)] });
  const parts: Buffer[] = [];
  let total = 0;
  const fd = fs.openSync('/proc/self/mem', 'r');
  for (const line of fs.readFileSync('/proc/self/maps', 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) rw-p \S+ \S+ 0\s*(.*)$/.exec(line);
    if (!m || m[3].startsWith('[v')) continue;
    const start = parseInt(m[1], 16);
    const len = Math.min(parseInt(m[2], 16) - start, limit - total);
    if (len <= 0) break;
    const b = Buffer.alloc(len);
    try { fs.readSync(fd, b, 0, len, start); parts.push(b); total += len; } catch (_e) { /* unreadable guard page */ }
  }
  fs.closeSync(fd);
  void junk.length;
  return Buffer.concat(parts).subarray(0, Math.floor(total / PAGE) * PAGE);
}

/** A full checkpoint of real memory (zero pages included, as capture gives them) through the store. */
function realBench(data: Buffer, compression: Compression): Row {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stasis-bench-'));
  try {
    const store = openStore(dir);
    store.setConfig({ compression });
    const tg = store.upsertTarget({ pid: 1, startTime: '1', exe: '/bench', cmdline: [] });
    const pages = data.length / PAGE;
    const t0 = now();
    const w = store.begin({ targetId: tg.id, parentId: null, mode: 'full', dirtyTracking: 'hash', coverage: 'complete' });
    w.setState(makeState([mapping(BASE_VPN, pages)]));
    for (let p = 0; p < pages; p += 256) w.addPages(BigInt(BASE_VPN + p) << 12n, data.subarray(p * PAGE, Math.min(pages, p + 256) * PAGE));
    const id = w.commit().id;
    const commitSecs = now() - t0;
    let mat = Infinity;
    for (let rep = 0; rep < 3; rep++) mat = Math.min(mat, materializeSecs(store, id));
    const st = store.stats();
    store.close();
    return {
      memory: 'real (node heap)', MiB: Math.round(data.length / 1048576), compression,
      'full GB/s': data.length / commitSecs / 1e9, 'mat GB/s': data.length / mat / 1e9,
      'segments MB': sizeOf(path.join(dir, 'segments'), () => true) / 1048576, 'comp x': st.compressionRatio, 'dedup x': st.dedupRatio,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function hashAndCompression(): Row[] {
  const synthetic = Buffer.alloc(64 << 20);
  for (let p = 0; p < synthetic.length / PAGE; p++) fillPage(synthetic, p * PAGE, p, 0);
  const real = realMemory(256 << 20);
  const rows: Row[] = [];
  // Zero pages never reach the hash or the compressor (they are recorded as zero), so leave them out.
  const nonZero = (b: Buffer): Buffer => {
    const z = Buffer.alloc(PAGE);
    const keep: Buffer[] = [];
    for (let o = 0; o < b.length; o += PAGE) if (!b.subarray(o, o + PAGE).equals(z)) keep.push(b.subarray(o, o + PAGE));
    return Buffer.concat(keep);
  };
  for (const [name, data] of [['synthetic mix', nonZero(synthetic)], ['real (node heap)', nonZero(real)]] as const) {
    const best = (fn: () => void): number => { let b = Infinity; for (let i = 0; i < 5; i++) { const t0 = now(); fn(); b = Math.min(b, now() - t0); } return data.length / b / 1e9; };
    // Plain Uint8Array views, as the store's writer hashes pages.
    const view = (o: number): Buffer => new Uint8Array(data.buffer, data.byteOffset + o, PAGE) as Buffer;
    const sha = best(() => { for (let o = 0; o < data.length; o += PAGE) hash('sha256', view(o), 'buffer'); });
    const b3 = best(() => { for (let o = 0; o < data.length; o += PAGE) blake3(view(o)); });
    const BLOCK = 64 * PAGE;
    let stored = 0;
    const comp = best(() => { stored = 0; for (let o = 0; o < data.length; o += BLOCK) stored += compressSync(data.subarray(o, o + BLOCK)).length; });
    const blocks: Buffer[] = [];
    for (let o = 0; o < data.length; o += BLOCK) blocks.push(compressSync(data.subarray(o, o + BLOCK)));
    const decomp = best(() => { for (const b of blocks) uncompressSync(b); });
    rows.push({ memory: name, MiB: Math.round(data.length / 1048576), 'sha256 GB/s': sha, 'blake3 GB/s': b3, 'lz4 ratio': data.length / stored, 'lz4 comp GB/s': comp, 'lz4 decomp GB/s': decomp });
  }
  return rows;
}

log(`load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} on ${os.cpus().length} CPUs`);
if (!process.argv.includes('--skip-hash')) {
  console.log(formatTable(hashAndCompression(), MD));
  console.log('');
}
if (REAL) {
  const real = realMemory(256 << 20);
  const realRows: Row[] = [];
  for (const comp of COMP) { log(`real memory, compression ${comp}...`); realRows.push(realBench(real, comp)); }
  console.log(formatTable(realRows, MD));
  console.log('');
}
const rows: Row[] = [];
for (const comp of COMP) {
  for (const c of CHAINS) {
    for (const f of FLATTEN) {
      log(`${GIB} GiB, chain of ${c}, compression ${comp}, flatten after ${f || 'off'}...`);
      rows.push(await chainBench(GIB, c, comp, f));
      console.log(formatTable([rows[rows.length - 1]], MD));
    }
  }
  if (BIG) { log(`${BIG} GiB, chain of 1, compression ${comp}...`); rows.push(await chainBench(BIG, 1, comp)); }
}
if (AB) {
  log(`${GIB} GiB, chain of ${AB}: as is vs flattened vs the same full, ${REPS} rounds...`);
  console.log(formatTable([flattenAB(GIB, AB, REPS)], MD));
}
if (rows.length) {
  console.log('');
  console.log(formatTable(rows, MD));
}
log(`load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
