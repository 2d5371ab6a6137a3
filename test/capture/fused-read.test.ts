/**
 * Capture's fused read (capture/page-read.ts, native page_read.c): pages read straight into the
 * segment's blocks and digested there give the very segment the other read paths give, for the
 * same memory: through the addon's separate read and digest (STASIS_FUSED_READ=0), and without the
 * addon at all (STASIS_STORE_NATIVE=0, in a child process). The memory (capture-fused.c) holds
 * random pages, present zero pages and duplicates (pages read in place and then not kept), across
 * block and write-behind job boundaries, and a PROT_NONE mapping only /proc/PID/mem reads. And a
 * process killed in the middle of the read fails the capture with PROCESS_GONE, saving nothing.
 * The read itself gives for every call size what one read and one digest give, including reads
 * cut short by an unreadable page anywhere in the call.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { buildFixture } from '../helpers/fixtures';
import { procState, spawnDetached } from '../helpers/spawn';
import { checkpoint } from '../../electron/engine/capture';
import { openStore } from '../../electron/engine/store';
import { storeNative } from '../../electron/engine/store/native-addon';
import { scanSegment } from '../../electron/engine/store/segments';
import { BLOCK_HEADER_LEN, decodeRecords, type DefEntry } from '../../electron/engine/store/format';
import { KIND_DATA } from '../../electron/engine/store/extents';
import { StasisError } from '../../shared/errors';
import { vmRead } from '../../electron/engine/native';
import { digestPages } from '../../electron/engine/store/hash';
import { tempDir, waitForFile } from './common';

const fixture = buildFixture('capture-fused');
const skip = storeNative?.readPages ? false : 'the store addon here has no fused read';
const runner = join(import.meta.dirname, 'run-checkpoint.ts');

function segmentFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...segmentFiles(p));
    else if (name.endsWith('.seg')) out.push(p);
  }
  return out.sort();
}

/** What a read path decides and writes: the block bytes (header to the last block's end), page hashes and records. */
interface Segment { blocks: Buffer; hashes: Buffer; records: Buffer; pages: number; extents: string[]; image: Map<number, string> }

function segmentOf(storeDir: string): Segment {
  const files = segmentFiles(storeDir);
  assert.equal(files.length, 1, `one segment in ${storeDir}`);
  const scan = scanSegment(files[0]!);
  assert.deepEqual(scan.badBlocks, [], 'every block checksum holds');
  const last = scan.parts.blocks[scan.parts.blocks.length - 1]!;
  const end = last.offset + BLOCK_HEADER_LEN + last.storedLen;
  const def = scan.parts.entries.find((e) => e.type === 'def') as DefEntry;
  const rec = decodeRecords(scan.parts.records, def, files[0]!);
  // The image: each page's hash, or its kind when it holds no data.
  const image = new Map<number, string>();
  let h = 0;
  for (const e of rec.extents) {
    for (let i = 0; i < e.count; i++) {
      image.set(e.vpn + i, e.kind === KIND_DATA ? rec.hashes.subarray(h * 32, h * 32 + 32).toString('hex') : `kind ${e.kind}`);
      if (e.kind === KIND_DATA) h++;
    }
  }
  const extents = rec.extents.map((e) => `${e.vpn.toString(16)}+${e.count}:${e.kind}`);
  return { blocks: readFileSync(files[0]!).subarray(0, end), hashes: scan.parts.hashes, records: scan.parts.records, pages: scan.parts.pages, extents, image };
}

/** The pages of the fixture's regions (info.txt) in an image: what pre-copy must capture alike whatever its timing. */
function regionsOf(image: Map<number, string>, info: string): string[] {
  const [, a, b, c, pagesC] = info.trim().split(' ');
  const out: string[] = [];
  for (const [start, pages] of [[a!, 300], [b!, 77], [c!, Number(pagesC)]] as const) {
    const vpn = Number(BigInt(`0x${start}`) >> 12n);
    for (let i = 0; i < pages; i++) out.push(image.get(vpn + i) ?? 'missing');
  }
  return out;
}

function inChild(storeDir: string, pid: number, snapshot: string | undefined, env: Record<string, string>): void {
  const r = spawnSync(process.execPath, ['--import', 'tsx', runner, storeDir, String(pid), ...(snapshot ? ['--snapshot', snapshot] : [])], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { error?: unknown };
  assert.equal(out.error, undefined, r.stdout);
  const store = openStore(storeDir);
  try { assert.equal(store.verify().ok, true, 'stasis verify finds nothing wrong'); } finally { store.close(); }
}

/** SIGKILL, then wait until its memory is gone (a SIGKILL takes effect a moment later). */
function killAndWaitDead(pid: number): void {
  process.kill(pid, 'SIGKILL');
  const end = Date.now() + 5000;
  for (;;) {
    const state = procState(pid);
    if (state === null || state === 'Z' || state === 'X' || Date.now() > end) return;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
  }
}

/** What readPages must give for the n pages at addr of pid: the bytes one read gets, digested, the zero pages squeezed out. */
function expected(pid: number, addr: bigint, n: number): { got: number; zero: Uint8Array; hashes: Buffer; kept: Buffer } {
  const buf = Buffer.alloc(n * 4096);
  const got = Math.max(vmRead(pid, addr, buf), 0);
  const whole = Math.floor(got / 4096);
  const d = { zero: new Uint8Array(whole), hashes: Buffer.alloc(whole * 32) };
  digestPages(buf, whole, d);
  const kept = Buffer.concat(Array.from({ length: whole }, (_, i) => i).filter((i) => d.zero[i] === 0).map((i) => buf.subarray(i * 4096, (i + 1) * 4096)));
  return { got, zero: d.zero, hashes: d.hashes, kept };
}

describe('fused read', { skip }, () => {
  test('readPages: every call size 1-300 as one read and digest, and reads cut short anywhere in the call', async () => {
    const t = tempDir('fused-sizes');
    const target = spawnDetached([fixture, t.dir]);
    try {
      const [, , b, c, pagesC] = (await waitForFile(join(t.dir, 'info.txt'))).trim().split(' ');
      const cStart = BigInt(`0x${c}`);
      const cEnd = cStart + BigInt(Number(pagesC) * 4096);
      assert.equal(cEnd, BigInt(`0x${b}`), 'the PROT_NONE region follows region c (mmap places them next to each other)');
      const native = storeNative!;
      const dst = Buffer.alloc(320 * 4096);
      const zero = new Uint8Array(320);
      const hashes = Buffer.alloc(320 * 32);
      const check = (addr: bigint, n: number, what: string): number => {
        const want = expected(target.pid, addr, n);
        dst.fill(0xee);
        const got = native.readPages!(target.pid, -1, addr, dst, 4096, n, zero, hashes);
        assert.equal(got, want.got, `${what}: bytes read`);
        const whole = Math.floor(got / 4096);
        assert.deepEqual(zero.subarray(0, whole), want.zero, `${what}: zero flags`);
        for (let i = 0; i < whole; i++) if (!want.zero[i]) assert.ok(hashes.subarray(i * 32, (i + 1) * 32).equals(want.hashes.subarray(i * 32, (i + 1) * 32)), `${what}: hash of page ${i}`);
        assert.ok(dst.subarray(4096, 4096 + want.kept.length).equals(want.kept), `${what}: the non-zero pages back to back`);
        return whole;
      };
      // Region c has a zero page every 97 and a duplicate every 89: offsets that move them across the halves.
      for (let n = 1; n <= 300; n++) check(cStart + BigInt(((n * 37) % 1500) * 4096), n, `${n} pages`);
      // Up to the end of c, then into the PROT_NONE region: short at c's end, wherever it falls.
      for (const [k, n] of [[1, 60], [17, 67], [40, 90], [100, 150], [255, 300], [0, 40]] as const) {
        assert.equal(check(cEnd - BigInt(k * 4096), n, `${k} readable pages of ${n}`), k, `${k} readable pages of ${n}`);
      }
    } finally {
      target.kill();
      t.cleanup();
    }
  });

  // pre-copy reads the running target (precopy.ts readLive); 'never' reads it frozen (pages.ts copyPages, the PROT_NONE mapping through mem).
  for (const snapshot of [undefined, 'never'] as const) {
    test(`same ${snapshot === 'never' ? 'segment' : 'image'} as the separate read and digest, and as no addon at all (${snapshot ?? 'pre-copy'})`, async () => {
      const t = tempDir('fused');
      // Without rseq: the kernel writes the CPU a thread runs on into its TLS (struct rseq), so that
      // page would differ between captures; the rest of this program's memory stays as it is.
      const target = spawnDetached([fixture, t.dir], { env: { ...process.env, GLIBC_TUNABLES: 'glibc.pthread.rseq=0' } });
      try {
        const info = await waitForFile(join(t.dir, 'info.txt'));
        // Each in an engine of its own: one that lives on tracks the pages its last checkpoint of
        // the process saw (capture/tracking.ts) and would read differently. The first capture of a
        // process leaves traces in its memory (pre-copy's userfaultfd): a warm-up first.
        inChild(join(t.dir, 'warm-up'), target.pid, snapshot, {});
        inChild(join(t.dir, 'fused'), target.pid, snapshot, {});
        inChild(join(t.dir, 'separate'), target.pid, snapshot, { STASIS_FUSED_READ: '0' });
        // The fused read with the per-page decisions in JS instead of the addon's decidePages.
        inChild(join(t.dir, 'decided-in-js'), target.pid, snapshot, { STASIS_PAGE_DECIDE: '0' });
        inChild(join(t.dir, 'js'), target.pid, snapshot, { STASIS_STORE_NATIVE: '0' });
        const fused = segmentOf(join(t.dir, 'fused'));
        const regions = regionsOf(fused.image, info);
        assert.equal(regions.filter((x) => x.startsWith('kind')).length, 43 + 15 + 27, 'the present zero pages are zero records');
        assert.equal(new Set(regions).size, regions.length - (43 + 15 + 27) + 1 - (23 + 7 + 29) + 1, 'the duplicates have one hash');
        for (const other of ['separate', 'decided-in-js', 'js']) {
          const o = segmentOf(join(t.dir, other));
          assert.deepEqual(regionsOf(o.image, info), regions, `${other}: the same image of the regions`);
          // Frozen throughout, the read is deterministic: the very same segment. (Pre-copy's rounds
          // read again what the process wrote meanwhile, and where those pages land in the segment
          // depends on timing: the system calls capture makes it run write its TLS page.)
          if (snapshot !== 'never') continue;
          assert.deepEqual(o.extents, fused.extents, `${other}: same extents`);
          assert.equal(o.pages, fused.pages, `${other}: pages stored`);
          assert.ok(o.hashes.equals(fused.hashes), `${other}: same page hashes`);
          assert.ok(o.records.equals(fused.records), `${other}: same records`);
          assert.ok(o.blocks.equals(fused.blocks), `${other}: same block bytes`);
        }
      } finally {
        target.kill();
        t.cleanup();
      }
    });

    test(`a process killed in the middle of the read: PROCESS_GONE, nothing saved (${snapshot ?? 'pre-copy'})`, async () => {
      const t = tempDir('fused-gone');
      // 256 MiB: reads that last longer than progress's throttle (1/10 s), so a report comes between them.
      const target = spawnDetached([fixture, t.dir, String(65536)]);
      const store = openStore(join(t.dir, 'store'));
      try {
        await waitForFile(join(t.dir, 'info.txt'), 30_000);
        let killedAt = -1;
        assert.throws(() => checkpoint(store, target.pid, {
          ...(snapshot ? { snapshot } : {}),
          onProgress: (p) => {
            // Progress comes per chunk read from copyPages ('never'): some pages are read by then.
            // Pre-copy reports per range (here one big one) and first before any read.
            if (killedAt < 0 && p.phase === 'pages' && p.done < p.total && (p.done > 0 || !snapshot)) {
              killedAt = p.done;
              killAndWaitDead(target.pid);
            }
          },
        }), (e: unknown) => e instanceof StasisError && e.code === 'PROCESS_GONE' && /Nothing was saved/.test(e.message));
        assert.ok(killedAt >= 0, 'killed while pages were being read');
        if (snapshot) assert.ok(killedAt > 0, `killed after ${killedAt} pages were read`);
        assert.equal(store.list().length, 0, 'no checkpoint');
        assert.deepEqual(segmentFiles(join(t.dir, 'store')), [], 'no segment file');
        assert.deepEqual(readdirSync(join(t.dir, 'store'), { recursive: true }).filter((f) => String(f).endsWith('.tmp')), [], 'no temporary file');
      } finally {
        store.close();
        target.kill();
        t.cleanup();
      }
    });
  }
});
