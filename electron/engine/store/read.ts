/**
 * Read path, pages: a checkpoint's pages in address order (materialize), what one checkpoint
 * changed (changes), where its pages are stored (layout, readStored) and single pages (readPage).
 * Read-only: it must never write the index or a segment.
 */
import { StasisError } from '../../../shared/errors';
import type { LocatedPart, LocatedRun, PageRecord, PageRun, StoredExtent } from './api';
import { KIND_ABSENT, KIND_DATA, type Extent } from './extents';
import { HASH_LEN, PAGE } from './format';
import { hashKey } from './hash';
import type { StoreIndex } from './store-index';
import type { ChainViews } from './views';

/** Largest PageRun materialize yields: bounds memory whatever the checkpoint's size. */
const MAX_RUN_PAGES = 256;

type Views = Pick<ChainViews, 'view'>;
type Pages = Pick<StoreIndex, 'reader'>;

export function materialize(index: Pages, views: Views, id: number): Iterable<PageRun> {
  return readRuns(index, stretches(views.view(id)));
}

/** materialize's runs naming where their bytes are (raw pages as file offsets) and each page's hash. */
export function materializeLocated(index: Pages, views: Views, id: number): Iterable<LocatedRun> {
  return locateRuns(index, stretches(views.view(id)));
}

/** One bounded run of address-contiguous pages and the stored pieces that hold them (null: zero pages). */
interface Stretch { vpn: number; pages: number; parts: { file: number; page: number; count: number }[] | null }

function* readRuns(index: Pages, all: Iterable<Stretch>): Generator<PageRun> {
  for (const x of all) {
    if (!x.parts) { yield { vaddr: BigInt(x.vpn) << 12n, pages: x.pages, data: null }; continue; }
    const data = Buffer.allocUnsafe(x.pages * PAGE);
    let o = 0;
    for (const p of x.parts) { index.reader.readPages(p.file, p.page, p.count, data, o); o += p.count * PAGE; }
    yield { vaddr: BigInt(x.vpn) << 12n, pages: x.pages, data };
  }
}

function* locateRuns(index: Pages, all: Iterable<Stretch>): Generator<LocatedRun> {
  for (const x of all) {
    if (!x.parts) { yield { vaddr: BigInt(x.vpn) << 12n, pages: x.pages, parts: null, hashes: Buffer.alloc(0) }; continue; }
    const hashes = Buffer.allocUnsafe(x.pages * HASH_LEN);
    const parts: LocatedPart[] = [];
    let o = 0;
    for (const p of x.parts) {
      index.reader.copyHashes(p.file, p.page, p.count, hashes, o);
      parts.push(...index.reader.locate(p.file, p.page, p.count));
      o += p.count * HASH_LEN;
    }
    yield { vaddr: BigInt(x.vpn) << 12n, pages: x.pages, parts, hashes };
  }
}

/** A view's extents as bounded stretches: zero extents whole, address-contiguous data gathered (possibly from several files) up to MAX_RUN_PAGES. */
function* stretches(extents: readonly Extent[]): Generator<Stretch> {
  const view = extents.slice(); // replaces elements of its copy as it splits long extents
  let i = 0;
  while (i < view.length) {
    const e = view[i];
    if (e.kind !== KIND_DATA) {
      yield { vpn: e.vpn, pages: e.count, parts: null };
      i++;
      continue;
    }
    const start = e.vpn;
    let pages = 0;
    const parts: { file: number; page: number; count: number }[] = [];
    let vpn = start;
    let off = 0; // pages consumed from view[i] by a previous run
    while (i < view.length && view[i].kind === KIND_DATA && view[i].vpn + off === vpn && pages < MAX_RUN_PAGES) {
      const x = view[i];
      const take = Math.min(x.count - off, MAX_RUN_PAGES - pages);
      parts.push({ file: x.file, page: x.page + off, count: take });
      pages += take;
      vpn += take;
      if (off + take === x.count) { i++; off = 0; } else { off += take; break; }
    }
    if (off > 0) view[i] = { ...view[i], vpn: view[i].vpn + off, count: view[i].count - off, page: view[i].page + off };
    yield { vpn: start, pages, parts };
  }
}

export function changes(index: Pick<StoreIndex, 'reader' | 'checkpointRow' | 'ownExtents'>, id: number): { runs: Iterable<PageRun>; absent: { vaddr: bigint; pages: number }[] } {
  index.checkpointRow(id);
  const own = index.ownExtents(id);
  return {
    runs: readRuns(index, stretches(own.filter((e) => e.kind !== KIND_ABSENT))),
    absent: own.filter((e) => e.kind === KIND_ABSENT).map((e) => ({ vaddr: BigInt(e.vpn) << 12n, pages: e.count })),
  };
}

export function records(index: Pick<StoreIndex, 'checkpointRow' | 'ownExtents'>, id: number): PageRecord[] {
  index.checkpointRow(id);
  const kinds = ['data', 'zero', 'absent'] as const;
  return index.ownExtents(id).map((e) => ({ vaddr: BigInt(e.vpn) << 12n, pages: e.count, kind: kinds[e.kind] }));
}

export function layout(views: Views, id: number): StoredExtent[] {
  const out: StoredExtent[] = [];
  for (const e of views.view(id)) {
    const file = e.kind === KIND_DATA ? e.file : null;
    const last = out[out.length - 1];
    if (last && last.vpn + last.count === e.vpn && last.file === file && (file === null || last.page + last.count === e.page)) last.count += e.count;
    else out.push({ vpn: e.vpn, count: e.count, file, page: file === null ? 0 : e.page });
  }
  return out;
}

export function readStored(index: Pages, file: number, page: number, count: number, out?: Buffer, outOffset = 0): Buffer {
  if (!Number.isInteger(file) || !Number.isInteger(page) || !Number.isInteger(count) || count < 0) {
    throw new StasisError('INVALID_INPUT', `Stored pages ${file}/${page} x ${count} are not a location layout() returned.`);
  }
  const buf = out ?? Buffer.allocUnsafe(count * PAGE);
  if (outOffset < 0 || outOffset + count * PAGE > buf.length) throw new StasisError('INVALID_INPUT', `${count} pages do not fit at offset ${outOffset} of a ${buf.length}-byte buffer.`);
  index.reader.readPages(file, page, count, buf, outOffset);
  return buf;
}

export function readPage(index: Pick<StoreIndex, 'reader' | 'db' | 'chain'>, id: number, vaddr: bigint): Buffer | null {
  const vpn = Number(vaddr >> 12n);
  const ids = index.chain(id).reverse();
  const q = index.db.prepare('SELECT vpn, count, kind, file, page FROM extents WHERE ckpt = ? AND vpn <= ? ORDER BY vpn DESC LIMIT 1');
  for (const c of ids) {
    const e = q.get(c, vpn) as Extent | undefined;
    if (!e || e.vpn + e.count <= vpn) continue;
    if (e.kind === KIND_ABSENT) return null;
    if (e.kind !== KIND_DATA) return Buffer.alloc(PAGE);
    const out = Buffer.allocUnsafe(PAGE);
    index.reader.readPages(e.file, e.page + (vpn - e.vpn), 1, out, 0);
    return out;
  }
  return null;
}

/** Where the store holds each page of hashes (32-byte content hashes, concatenated); null where it holds none. */
export function locatePages(index: Pick<StoreIndex, 'reader' | 'lookupDedup'>, hashes: Buffer): ({ file: number; page: number } | null)[] {
  const n = Math.floor(hashes.length / HASH_LEN);
  const keys: bigint[] = [];
  for (let i = 0; i < n; i++) keys.push(hashKey(hashes.subarray(i * HASH_LEN, (i + 1) * HASH_LEN)));
  const found = index.lookupDedup(keys);
  return keys.map((k, i) => {
    const f = found.get(k);
    if (!f) return null;
    // The dedup key is 8 bytes of the hash: the full hash in the segment decides.
    try { return index.reader.hashOf(f.file, f.page).equals(hashes.subarray(i * HASH_LEN, (i + 1) * HASH_LEN)) ? f : null; } catch { return null; }
  });
}
