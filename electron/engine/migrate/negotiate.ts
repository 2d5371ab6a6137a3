/**
 * Negotiation by content hash: a stream file (store/streams.ts) crosses the session in parts, and
 * only the pages the receiver lacks travel. The sender offers the stream's header + manifest and
 * the BLAKE3 hash of each of its pages; the receiver answers with a bitmap of the pages it holds
 * neither in its store (anywhere: dedup is by content) nor in the resume spool of this transfer
 * (spool.ts); the sender sends those pages; the receiver rebuilds the exact stream from the three
 * sources and imports it with every check of an import, the stream's checksum included, so a
 * wrong rebuild cannot import. Pages are checked against their hash as they arrive and written
 * once (into the import's segment, or the spool when there is no streamed import), so a break
 * loses nothing that fully arrived and a resend sends nothing twice.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { StasisError } from '../../../shared/errors';
import { pagesMismatch, runMismatch } from '../store/hash';
import { copyHash } from '../store/hash-slots';
import { STREAM_LAYOUT, type StreamExport } from '../store/streams';
import type { StreamImport } from '../store/stream-import';
import type { Store } from '../store/api';
import { PageSpool } from './spool';
import { CHUNK, type FrameReader, type FrameWriter } from './wire';

const HASH = 32;
const PAGE = 4096;
const { header: HEADER, footer: FOOTER, entry: ENTRY } = STREAM_LAYOUT;
/** Pages per data frame: 1 MiB. */
const RUN = CHUNK / PAGE;
const MAX_PAGES = 2 ** 28;

export interface OfferResult {
  /** Pages in the stream. */
  pages: number;
  /** Pages that crossed the wire in this offer. */
  pagesSent: number;
  /** Pages the receiver held in its store. */
  pagesHeld: number;
  /** Pages the receiver had spooled from an earlier, broken attempt. */
  pagesResumed: number;
  /** The receiver's ids of the imported checkpoints. */
  ids: number[];
  /** The receiver's whole 'imported' answer (a migration destination adds to it). */
  ack: Record<string, unknown>;
}

/** Sends data in frames of at most CHUNK bytes. */
async function sendData(wr: FrameWriter, data: Buffer): Promise<void> {
  for (let o = 0; o < data.length; o += CHUNK) await wr.data(data.subarray(o, Math.min(data.length, o + CHUNK)));
}

/** Reads exactly total bytes of data frames. */
async function readData(rd: FrameReader, total: number, what: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let got = 0;
  while (got < total) {
    const f = await rd.next();
    if (!f || f.type !== 'data') throw new StasisError('INVALID_INPUT', `${what} broke off after ${got} of ${total} bytes`);
    if (got + f.data.length > total) throw new StasisError('INVALID_INPUT', `${what} is longer than the ${total} bytes announced`);
    parts.push(f.data);
    got += f.data.length;
  }
  return Buffer.concat(parts, total);
}

/**
 * The transfer's identity for the resume spool: the manifest without its export time and the page
 * hashes, so exporting the same checkpoints again (after the sender restarted) finds the spool.
 */
function transferKey(manifest: Buffer, hashes: Buffer): string {
  const m = JSON.parse(manifest.toString('utf8')) as Record<string, unknown>;
  delete m.exportedAt;
  return createHash('sha256').update(JSON.stringify(m)).update(hashes).digest('hex');
}

/**
 * Sends stream x whole, straight from the segments into the wire (the receiver imports it as it
 * arrives), and returns the receiver's answer. One buffer for every chunk: each is on the link
 * before the next is read into it. extra goes into the `stream` message (final, member).
 */
export async function sendStream<A extends { ids: number[] }>(rd: FrameReader, wr: FrameWriter, x: StreamExport, extra: Record<string, unknown> = {}): Promise<A> {
  await wr.send({ t: 'stream', bytes: x.bytes, ...extra });
  for (const chunk of x.chunks(true)) await wr.dataReusable(chunk);
  return rd.expect<A>('imported');
}

/**
 * The sender's side: offers the stream x (produced from the store as it goes: no stream file),
 * sends the pages asked for, returns the receiver's answer. footerLast: the receiver takes the
 * stream's checksum footer after the pages (its hello said so), so the pages are read once; an
 * older receiver needs it in the offer, which costs a first pass over the pages here.
 */
export async function offerStream(rd: FrameReader, wr: FrameWriter, x: StreamExport, extra: Record<string, unknown> = {}, footerLast = true): Promise<OfferResult> {
  const { head, pages } = x;
  const hashes = x.hashes();
  let footer: Buffer | null = null;
  if (!footerLast) for (const c of x.chunks(true)) footer = c;
  await wr.send({ ...extra, t: 'offer', key: transferKey(head.subarray(HEADER), hashes), headBytes: head.length, pages, ...(footer ? { footer: footer.toString('base64') } : { footerLast: true }) });
  await sendData(wr, head);
  await sendData(wr, hashes);
  const want = await rd.expect<{ held?: unknown; resumed?: unknown }>('want');
  const bitmap = pages ? await readData(rd, Math.ceil(pages / 8), 'the list of wanted pages') : Buffer.alloc(0);
  let sent = 0;
  const out = Buffer.allocUnsafe(RUN * PAGE);
  // A checksum over the hashes only (versions 3/4) needs no page byte: only the wanted pages are read.
  const known = footerLast ? x.footerFromHashes() : null;
  if (known) {
    for (const got of x.wantedPages((i) => (bitmap[i >> 3]! & (1 << (i & 7))) !== 0, out)) {
      await wr.dataReusable(got === RUN ? out : out.subarray(0, got * PAGE));
      sent += got;
    }
    await wr.send({ t: 'footer', footer: known.toString('base64') });
    const ack = await rd.expect<{ ids: number[] }>('imported');
    return { pages, pagesSent: sent, pagesHeld: Number(want.held) || 0, pagesResumed: Number(want.resumed) || 0, ids: ack.ids, ack };
  }
  let n = 0;
  // The chunks are the head, whole entries, then the footer alone (store/streams.ts openExport);
  // each is done with before the next is asked for, and each frame of pages is on the link before
  // out is filled again: one buffer each.
  let pos = 0;
  const pagesEnd = head.length + pages * ENTRY;
  for (const c of x.chunks(true)) {
    const at = pos;
    pos += c.length;
    if (at < head.length) continue;
    if (at >= pagesEnd) { footer = c; continue; }
    const first = (at - head.length) / ENTRY;
    for (let k = 0; k < c.length / ENTRY; k++) {
      const i = first + k;
      if (!(bitmap[i >> 3]! & (1 << (i & 7)))) continue;
      c.copy(out, n * PAGE, k * ENTRY + HASH, (k + 1) * ENTRY);
      if (++n === RUN) { await wr.dataReusable(out); sent += n; n = 0; }
    }
  }
  if (n) { await wr.dataReusable(out.subarray(0, n * PAGE)); sent += n; }
  if (footerLast) await wr.send({ t: 'footer', footer: footer!.toString('base64') });
  const ack = await rd.expect<{ ids: number[] }>('imported');
  return { pages, pagesSent: sent, pagesHeld: Number(want.held) || 0, pagesResumed: Number(want.resumed) || 0, ids: ack.ids, ack };
}

export interface AcceptDeps {
  store: Store;
  importFile(file: string): Promise<{ ids: number[] }>;
  /**
   * Imports the stream as its pages arrive (Store.beginImport): no rebuilt stream file. avoidFiles:
   * segments not to deduplicate against (filled after the call, before the first page is pushed).
   */
  beginImport?(total: number, avoidFiles?: ReadonlySet<number>): StreamImport;
}

export interface AcceptResult { ids: number[]; pages: number; pagesReceived: number; pagesHeld: number; pagesResumed: number }

function diskFull(e: unknown, dir: string): StasisError | null {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOSPC' || code === 'EDQUOT'
    ? new StasisError('INVALID_INPUT', `the destination's disk is full (${(e as Error).message}); nothing of this transfer was imported and its spool was deleted. Free space in ${dir} and send again`)
    : null;
}

type Where = ({ file: number; page: number } | null)[];

/**
 * The pages an earlier, broken-off attempt of this transfer kept in the store (spool.ts `kept`):
 * each is read and checked against its hash, as a spooled page is; a segment with a damaged one is
 * not used (its pages are asked for again, and added to avoid so the import does not dedup
 * against it). Returns which stream pages are resumed from them.
 */
function checkKept(kept: number[], where: Where, hashes: Buffer, store: Store, avoid: Set<number>): Uint8Array {
  const resumed = new Uint8Array(where.length);
  if (!kept.length) return resumed;
  const files = new Set(kept);
  const buf = Buffer.allocUnsafe(RUN * PAGE);
  const digests = { zero: new Uint8Array(RUN), hashes: Buffer.allocUnsafe(RUN * HASH) };
  for (let i = 0; i < where.length;) {
    const w = where[i];
    if (!w || !files.has(w.file) || avoid.has(w.file)) { i++; continue; }
    // A run of stream pages that lie one after another in that segment (as they were placed): one read, one check.
    let n = 1;
    while (n < RUN && i + n < where.length && where[i + n]?.file === w.file && where[i + n]!.page === w.page + n) n++;
    let ok: boolean;
    try {
      store.readStored(w.file, w.page, n, buf, 0);
      ok = pagesMismatch(buf, n, (k) => hashes.subarray((i + k) * HASH, (i + k + 1) * HASH), digests) < 0;
    } catch { ok = false; }
    if (!ok) avoid.add(w.file);
    i += n;
  }
  for (let i = 0; i < where.length; i++) {
    const w = where[i];
    if (!w || !files.has(w.file)) continue;
    if (avoid.has(w.file)) where[i] = null;
    else resumed[i] = 1;
  }
  return resumed;
}

/**
 * The receiver's side of one offer (its 'offer' message already read): asks for what it lacks,
 * checks each page that arrives against its hash (in batches), then imports the stream: as the
 * pages arrive (deps.beginImport: the pages it holds taken from its store in stream order, the
 * verified hashes reused for dedup; each arrived page is written once, into the new segment), or
 * by spooling the arrived pages, rebuilding the stream file and importing that. What fully arrived
 * survives a broken connection for a resend to resume from: the streamed import's segment is kept
 * in the store with no checkpoint in it (StreamImport.salvage), the spool's log is kept as is. The
 * spool (spool.ts) is deleted once imported or refused, or when the disk is full.
 */
export async function acceptStream(rd: FrameReader, wr: FrameWriter, offer: Record<string, unknown>, deps: AcceptDeps): Promise<AcceptResult> {
  const { key, headBytes, pages, footer, footerLast } = offer;
  if (typeof key !== 'string' || !/^[0-9a-f]{64}$/.test(key)) throw new StasisError('INVALID_INPUT', 'the offer names no valid transfer key');
  if (typeof headBytes !== 'number' || !Number.isInteger(headBytes) || headBytes <= HEADER || headBytes > HEADER + STREAM_LAYOUT.maxManifest) throw new StasisError('INVALID_INPUT', `an offer with a ${String(headBytes)}-byte head is out of range`);
  if (typeof pages !== 'number' || !Number.isInteger(pages) || pages < 0 || pages > MAX_PAGES) throw new StasisError('INVALID_INPUT', `an offer of ${String(pages)} pages is out of range`);
  let foot = typeof footer === 'string' ? Buffer.from(footer, 'base64') : Buffer.alloc(0);
  if (footerLast !== true && foot.length !== FOOTER) throw new StasisError('INVALID_INPUT', 'the offer has no valid stream footer');
  const head = await readData(rd, headBytes, 'the stream head');
  const hashes = await readData(rd, pages * HASH, 'the page hashes');
  let spool: PageSpool;
  try {
    spool = PageSpool.open(deps.store.dir, key);
  } catch (e) {
    throw diskFull(e, deps.store.dir) ?? new StasisError('INVALID_INPUT', `the destination cannot open its spool (${(e as Error).message}); nothing was imported`);
  }
  let done = false;
  let imp: StreamImport | null = null;
  let feed: ReturnType<typeof streamFeeder> | null = null;
  try {
    // Whatever keeps the import from starting (the store busy) is said after the pages were read, as a full disk is.
    let importError: unknown = null;
    const avoid = new Set<number>();
    // Started before the pages are located: it holds the store's writer lock, so no gc moves or removes them meanwhile.
    if (deps.beginImport) {
      try { imp = deps.beginImport(headBytes + pages * ENTRY + FOOTER, avoid); imp.push(head); } catch (e) { importError = e; }
    }
    const where = deps.store.locatePages(hashes);
    const fromKept = checkKept(spool.kept(), where, hashes, deps.store, avoid);
    const bitmap = Buffer.alloc(Math.ceil(pages / 8));
    const wanted: number[] = [];
    let held = 0;
    let resumed = 0;
    for (let i = 0; i < pages; i++) {
      const h = hashes.subarray(i * HASH, (i + 1) * HASH);
      if (fromKept[i]) resumed++;
      else if (where[i]) held++;
      else if (spool.has(h)) resumed++;
      else { bitmap[i >> 3]! |= 1 << (i & 7); wanted.push(i); }
    }
    feed = imp ? streamFeeder(imp, hashes, where, spool, deps.store, bitmap) : null;
    await wr.send({ t: 'want', pages: wanted.length, held, resumed });
    if (pages) await sendData(wr, bitmap);
    // The pages held before the first wanted one, while the sender starts on its answer.
    feed?.upTo(wanted[0] ?? pages);
    // Every wanted page is read even after the disk filled, so the session stays in step and the sender hears why.
    let spoolError: unknown = null;
    const digests = { zero: new Uint8Array(RUN), hashes: Buffer.allocUnsafe(RUN * HASH) };
    // Each frame is checked and fed (or spooled) before the next is read: one buffer joins them all.
    const scratch = Buffer.allocUnsafe(RUN * PAGE);
    for (let got = 0; got < wanted.length;) {
      const f = await rd.next(scratch);
      if (!f || f.type !== 'data') throw new StasisError('INVALID_INPUT', `the transfer broke off after ${got} of the ${wanted.length} pages asked for; they are kept to resume from`);
      const n = f.data.length / PAGE;
      if (f.data.length % PAGE || n > RUN || got + n > wanted.length) throw new StasisError('INVALID_INPUT', 'the sender sent pages that were not asked for');
      const hashOf = (k: number): Buffer => hashes.subarray(wanted[got + k]! * HASH, (wanted[got + k]! + 1) * HASH);
      // Consecutive stream pages (every frame to an empty receiver): their hashes are one run to compare.
      const run = n > 0 && wanted[got + n - 1]! - wanted[got]! === n - 1 ? wanted[got]! : -1;
      const badAt = run >= 0 ? runMismatch(f.data, n, hashes, run, digests) : pagesMismatch(f.data, n, hashOf, digests);
      // What arrived before a bad page in this frame is good: kept to resume from.
      const good = badAt >= 0 ? badAt : n;
      if (feed) {
        // The import's segment is the only copy: it is kept if the transfer breaks off.
        for (let k = 0; k < good; k++) feed.arrived(wanted[got + k]!, f.data, k * PAGE, wanted[got + k + 1] ?? pages);
      } else if (spoolError === null) {
        try { spool.append(entriesOf(f.data, good, hashOf)); } catch (e) { spoolError = e; }
      }
      if (badAt >= 0) throw new StasisError('CORRUPT', `page ${wanted[got + badAt]!} of the stream does not match its hash (damaged in transit?); nothing of this transfer was imported, the pages before it are kept to resume from`);
      got += n;
    }
    if (footerLast === true) {
      const m = await rd.expect<{ footer?: unknown }>('footer');
      foot = typeof m.footer === 'string' ? Buffer.from(m.footer, 'base64') : Buffer.alloc(0);
      if (foot.length !== FOOTER) throw new StasisError('INVALID_INPUT', 'the stream\'s footer is not valid');
    }
    if (spoolError !== null) {
      spool.remove();
      done = true;
      throw diskFull(spoolError, deps.store.dir) ?? new StasisError('INVALID_INPUT', `the destination cannot spool the pages (${(spoolError as Error).message}); nothing was imported`);
    }
    if (deps.beginImport) {
      // Imported or refused, the spool has served: a refused stream would be refused again.
      try {
        if (!imp) throw importError;
        feed!.flush();
        imp.push(foot);
        const { ids } = imp.finish();
        return { ids, pages, pagesReceived: wanted.length, pagesHeld: held, pagesResumed: resumed };
      } catch (e) {
        throw diskFull(e, deps.store.dir) ?? e;
      } finally {
        spool.remove();
        done = true;
      }
    }
    const file = path.join(spool.dir, 'stream');
    try {
      rebuild(file, head, hashes, where, spool, deps.store, foot);
    } catch (e) {
      spool.remove();
      done = true;
      throw diskFull(e, deps.store.dir) ?? e;
    }
    // Imported or refused, the spool has served: a refused stream would be refused again.
    try {
      const { ids } = await deps.importFile(file);
      return { ids, pages, pagesReceived: wanted.length, pagesHeld: held, pagesResumed: resumed };
    } finally {
      spool.remove();
      done = true;
    }
  } finally {
    if (imp && !done) keepArrived(imp, feed, spool);
    imp?.abort();
    if (!done) spool.close();
  }
}

/** A streamed import that broke off: the pages it placed stay in the store for the resend (listed in the spool). */
function keepArrived(imp: StreamImport, feed: { flush(): void } | null, spool: PageSpool): void {
  try { feed?.flush(); } catch { /* what was not pushed is asked for again */ }
  const kept = imp.salvage();
  if (!kept) return;
  try { spool.keep(kept.file); } catch { /* the pages are still found in the store, only not counted as resumed */ }
}

function entriesOf(data: Buffer, n: number, hashOf: (k: number) => Buffer): { hash: Buffer; page: Buffer }[] {
  const out: { hash: Buffer; page: Buffer }[] = [];
  for (let k = 0; k < n; k++) out.push({ hash: hashOf(k), page: data.subarray(k * PAGE, (k + 1) * PAGE) });
  return out;
}

/**
 * Feeds an import the stream in order while the wanted pages arrive: each arrived page, then the
 * pages up to the next wanted one from the store or the spool (all already checked: the store's by
 * their stored hash, the spool's when it was opened, the arrived ones in their batch).
 */
function streamFeeder(imp: StreamImport, hashes: Buffer, where: ({ file: number; page: number } | null)[], spool: PageSpool, store: Store, bitmap: Buffer) {
  const out = Buffer.allocUnsafe(RUN * ENTRY);
  let n = 0;
  let next = 0;
  const flush = (): void => { if (n) { imp.push(out.subarray(0, n * ENTRY), true); n = 0; } };
  const entry = (i: number): number => {
    copyHash(hashes, i * HASH, out, n * ENTRY);
    return n * ENTRY + HASH;
  };
  const taken = (): void => { if (++n === RUN) flush(); };
  /** The held pages from next up to (not including) end. */
  const upTo = (end: number): void => {
    for (; next < end; next++) {
      if (bitmap[next >> 3]! & (1 << (next & 7))) throw new StasisError('INTERNAL', `page ${next} is wanted but was skipped`);
      const at = entry(next);
      const w = where[next];
      if (w) store.readStored(w.file, w.page, 1, out, at);
      else if (!spool.read(hashes.subarray(next * HASH, (next + 1) * HASH), out, at)) throw new StasisError('INTERNAL', `page ${next} is neither in the store nor in the spool`);
      taken();
    }
  };
  return {
    upTo,
    flush,
    /** Wanted page i arrived at data[off..]; then the held ones up to nextWanted. */
    arrived(i: number, data: Buffer, off: number, nextWanted: number): void {
      if (i !== next) throw new StasisError('INTERNAL', `page ${i} arrived where page ${next} was expected`);
      data.copy(out, entry(i), off, off + PAGE);
      taken();
      next = i + 1;
      upTo(nextWanted);
    },
  };
}

/** Writes the stream file the sender exported: its head, each page from the store or the spool, its footer. */
function rebuild(file: string, head: Buffer, hashes: Buffer, where: ({ file: number; page: number } | null)[], spool: PageSpool, store: Store, footer: Buffer): void {
  const fd = fs.openSync(file, 'w', 0o600);
  try {
    let pos = 0;
    const put = (b: Buffer): void => { let o = 0; while (o < b.length) o += fs.writeSync(fd, b, o, b.length - o, pos + o); pos += b.length; };
    put(head);
    const pages = where.length;
    const buf = Buffer.allocUnsafe(RUN * ENTRY);
    for (let i = 0; i < pages; i += RUN) {
      const n = Math.min(RUN, pages - i);
      for (let k = 0; k < n; k++) {
        const h = hashes.subarray((i + k) * HASH, (i + k + 1) * HASH);
        h.copy(buf, k * ENTRY);
        const w = where[i + k];
        if (w) store.readStored(w.file, w.page, 1, buf, k * ENTRY + HASH);
        else if (!spool.read(h, buf, k * ENTRY + HASH)) throw new StasisError('INTERNAL', `page ${i + k} is neither in the store nor in the spool`);
      }
      put(buf.subarray(0, n * ENTRY));
    }
    put(footer);
  } finally {
    fs.closeSync(fd);
  }
}
