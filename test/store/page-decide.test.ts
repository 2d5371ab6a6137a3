/**
 * The writer's per-page decisions in the addon (native/store-native/page_decide.c, writer.ts
 * decideInPlace) against the same decisions in JS (STASIS_PAGE_DECIDE=0), on a real store: a root
 * checkpoint of pages read in place with zero pages, duplicates within a read, across blocks, jobs
 * and reads, pages given through addPages in between (the two paths share the page table), and
 * hash keys that collide. Both must store the same pages, give the same records and layout, and
 * materialize to exactly the pages given.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { join } from 'node:path';
import { openStore } from '../../electron/engine/store';
import { storeNative } from '../../electron/engine/store/native-addon';
import { PAGE, makeState, mapping, tempDir } from './model';

const skip = storeNative?.decidePages && storeNative.writeBehindWriteBlocks ? false : 'the store addon here has no decidePages';
const BASE_VPN = 0x40000;
const PAGES = 3000;

/** Page i's content: zero, a copy of an earlier page (in the same read, a block, a job or reads away), or its own. */
function contents(): Buffer[] {
  const own = randomFillSync(Buffer.alloc(PAGES * PAGE));
  const out: Buffer[] = [];
  for (let i = 0; i < PAGES; i++) {
    if (i % 7 === 3) out.push(Buffer.alloc(PAGE));
    else if (i % 17 === 9) out.push(out[i - 1]!);
    else if (i % 23 === 0 && i >= 64) out.push(out[i - 64]!);
    else if (i % 11 === 5 && i >= 300) out.push(out[i - 300]!);
    else out.push(own.subarray(i * PAGE, (i + 1) * PAGE));
  }
  return out;
}

/**
 * A root checkpoint of pages: read in place in reads of varied sizes, except every 5th range given
 * through addPages. keyBits: when set, each hash's first 4 bytes (the page table's key) keep only
 * that many bits, so that many different pages share a key (the rest of the hash still tells
 * them apart).
 */
function checkpointOf(dir: string, pages: Buffer[], keyBits: number | null, prior: Buffer[] = []): { stored: number; records: string; layout: string; image: Buffer[] } {
  const store = openStore(dir);
  try {
    if (prior.length) {
      // Another process's checkpoint first: the store's dedup table is not empty, and some batches find pages in it.
      const other = store.upsertTarget({ pid: 4343, startTime: '1', exe: '/o', cmdline: ['o'], name: 'o' } as never);
      const p = store.begin({ targetId: other.id, parentId: null, mode: 'full', dirtyTracking: 'hash', coverage: 'complete' });
      p.setState(makeState([mapping(BASE_VPN, prior.length)], 4343));
      p.addPages(BigInt(BASE_VPN) << 12n, Buffer.concat(prior));
      p.commit();
    }
    const tg = store.upsertTarget({ pid: 4242, startTime: '1', exe: '/t', cmdline: ['t'], name: 't' } as never);
    const w = store.begin({ targetId: tg.id, parentId: null, mode: 'full', dirtyTracking: 'hash', coverage: 'complete' });
    w.setState(makeState([mapping(BASE_VPN, PAGES)]));
    const scratch = Buffer.alloc(PAGE * 512);
    const read = (vaddr: bigint, n: number, dst: Buffer, dstOffset: number, zero: Uint8Array, hashes: Buffer): number => {
      const p0 = Number(vaddr >> 12n) - BASE_VPN;
      for (let k = 0; k < n; k++) pages[p0 + k]!.copy(scratch, k * PAGE);
      storeNative!.digest(scratch, n, zero, hashes);
      let at = dstOffset;
      for (let k = 0; k < n; k++) {
        if (keyBits !== null) hashes.writeUInt32LE(hashes.readUInt32LE(k * 32) & ((1 << keyBits) - 1), k * 32);
        if (zero[k]) continue;
        scratch.copy(dst, at, k * PAGE, (k + 1) * PAGE);
        at += PAGE;
      }
      return n * PAGE;
    };
    let i = 0;
    let call = 0;
    while (i < PAGES) {
      const n = Math.min(PAGES - i, 1 + ((call * 97) % 300));
      const vaddr = BigInt(BASE_VPN + i) << 12n;
      if (call % 5 === 4 && keyBits === null) w.addPages(vaddr, Buffer.concat(pages.slice(i, i + n)));
      else assert.equal(w.addPagesRead(vaddr, n, read), n);
      i += n;
      call++;
    }
    const info = w.commit();
    const image: Buffer[] = [];
    for (const run of store.materialize(info.id)) {
      for (let k = 0; k < run.pages; k++) image.push(run.data ? run.data.subarray(k * PAGE, (k + 1) * PAGE) : Buffer.alloc(PAGE));
    }
    const text = (x: unknown): string => JSON.stringify(x, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
    return { stored: info.stats.pagesWritten, records: text(store.records(info.id)), layout: text(store.layout(info.id)), image };
  } finally {
    store.close();
  }
}

for (const [keyBits, withPrior] of [[null, false], [2, false], [null, true]] as const) {
  const what = withPrior ? 'a store that holds some of the pages already' : keyBits === null ? 'real hash keys, addPages in between' : 'keys of 2 bits: colliding';
  test(`page decisions in the addon: the same pages stored, records and layout as in JS, and an exact image (${what})`, { skip }, () => {
    const { dir, cleanup } = tempDir();
    const was = process.env.STASIS_PAGE_DECIDE;
    try {
      const pages = contents();
      // Pages 1200-1399 of the checkpoint are in the prior one (reads there find them; reads elsewhere find nothing).
      const prior = withPrior ? pages.slice(1200, 1400) : [];
      const results = [];
      for (const decide of ['1', '0']) {
        process.env.STASIS_PAGE_DECIDE = decide;
        results.push(checkpointOf(join(dir, `decide-${decide}`), pages, keyBits, prior));
      }
      const [native, js] = results as [ReturnType<typeof checkpointOf>, ReturnType<typeof checkpointOf>];
      const distinct = new Set(pages.filter((p) => p.some((b) => b !== 0)).map((p) => p.toString('base64'))).size;
      const inPrior = new Set(prior.map((p) => p.toString('base64')));
      const distinctNew = new Set(pages.filter((p) => p.some((b) => b !== 0) && !inPrior.has(p.toString('base64'))).map((p) => p.toString('base64'))).size;
      if (keyBits === null) assert.equal(native.stored, distinctNew, 'every distinct non-zero page not stored before stored once');
      else assert.ok(native.stored >= distinct && native.stored < PAGES, `pages stored (${native.stored}): at least the ${distinct} distinct ones`);
      assert.equal(native.stored, js.stored, 'pages stored: addon and JS');
      assert.equal(native.records, js.records, 'records: addon and JS');
      assert.equal(native.layout, js.layout, 'layout: addon and JS');
      assert.equal(native.image.length, PAGES, 'every page in the image');
      for (let i = 0; i < PAGES; i++) assert.ok(native.image[i]!.equals(pages[i]!), `page ${i} restored exactly`);
    } finally {
      if (was === undefined) delete process.env.STASIS_PAGE_DECIDE; else process.env.STASIS_PAGE_DECIDE = was;
      cleanup();
    }
  });
}
