/**
 * Search the memory of checkpoints (`stasis grep`). Pages are deduplicated by content in the store,
 * so the search works on stored pages, not on checkpoints: every distinct stored page that any of
 * the checkpoints holds is read and scanned once, and each match found in it is then placed at
 * every address of every checkpoint that holds that page. Matches across a page boundary (also
 * between two adjacent mappings) are found by scanning contiguous runs with an overlap of the
 * longest match minus one; where the neighbours in memory are not neighbours in the store (run
 * boundaries), the pair of page edges is scanned once per distinct pair. Owns no store format:
 * it reads through Store.layout / readStored and the checkpoints' ProcessState.
 */
import { StasisError } from '../../../shared/errors';
import type { MappingState } from '../state/process-state';
import { PAGE_SIZE, type Store } from '../store/api';
import { progress, type ProgressFn } from '../progress';
import { compilePattern, type PatternSpec } from './pattern';
import { mappingAt, openImage, sortedMappings, type ImageReader } from './image';

export interface GrepOptions extends PatternSpec {
  /** Checkpoints to search, any order; reported in id order. */
  ids: number[];
  /** Bytes of context on each side of a match in the result (default 16, at most 4096). */
  context?: number;
  /** Stop after this many distinct matches (default 1000); the result says it was truncated. */
  maxMatches?: number;
  signal?: AbortSignal;
  onProgress?: ProgressFn;
  /** Each group of places found, as soon as it is found (a match may be reported in several groups). */
  onHit?: (hit: GrepHit) => void;
}

export interface MappingRef { start: bigint; end: bigint; perms: string; path: string; kind: string }

/** Bytes at one address, found in some checkpoints. */
export interface GrepHit {
  address: bigint;
  bytes: Buffer;
  mapping: MappingRef | null;
  /** The mapping the match ends in, when it runs into the next (adjacent) mapping. */
  endMapping?: MappingRef;
  checkpoints: number[];
}

export interface GrepMatch extends GrepHit {
  first: number;
  last: number;
  /** The bytes around the match in its first checkpoint (clipped to the mapped range). */
  context: { address: bigint; bytes: Buffer } | null;
}

export interface GrepStats {
  checkpoints: number;
  /** Distinct stored pages scanned (each once, whatever the number of checkpoints holding it). */
  distinctPages: number;
  /** Bytes actually scanned: distinct pages, plus the overlaps at run boundaries. */
  bytesScanned: number;
  /** Bytes of memory the searched checkpoints hold together (what a search per checkpoint would read). */
  logicalBytes: number;
  /** Distinct pairs of neighbouring pages scanned across a run boundary. */
  boundaries: number;
  durationMs: number;
}

export interface GrepResult {
  matches: GrepMatch[];
  truncated: boolean;
  stats: GrepStats;
}

const PAGE = PAGE_SIZE;
/** Pages read and scanned at a time: bounds memory, and the granularity of progress and cancelling. */
const CHUNK_PAGES = 256;
const DEFAULT_CONTEXT = 16;
const DEFAULT_MAX_MATCHES = 1000;
/** A stored page's identity for boundary pairs: file x 2^32 + page; -1 is the zero page. */
const ZERO = -1;
const originOf = (file: number | null, page: number): number => (file === null ? ZERO : file * 2 ** 32 + page);

/** One run of one checkpoint, as seen from the stored pages: pages [page, page + count) of a file at vpn. */
interface Occ { page: number; count: number; vpn: number; ckpt: number }

class Cancelled extends Error {}

export function grepCheckpoints(store: Store, opts: GrepOptions): GrepResult {
  const t0 = performance.now();
  const matcher = compilePattern(opts);
  const context = opts.context ?? DEFAULT_CONTEXT;
  if (!Number.isInteger(context) || context < 0 || context > 4096) throw new StasisError('INVALID_INPUT', `The context ${context} must be a whole number of bytes from 0 to 4096.`);
  const maxMatches = opts.maxMatches ?? DEFAULT_MAX_MATCHES;
  if (!Number.isInteger(maxMatches) || maxMatches < 1) throw new StasisError('INVALID_INPUT', `The match limit ${maxMatches} must be a positive whole number.`);
  const ids = [...new Set(opts.ids)].sort((a, b) => a - b);
  if (ids.length === 0) throw new StasisError('INVALID_INPUT', 'No checkpoints to search; give checkpoint ids or a process.');
  for (const id of ids) if (!store.get(id)) throw new StasisError('NOT_FOUND', `Checkpoint ${id} does not exist; \`stasis list\` shows the checkpoints.`);

  const overlap = matcher.maxLength - 1;
  const byFile = new Map<number, Occ[]>();
  const zeroRuns: Occ[] = [];
  /** Boundary pairs "originA:originB" -> the tail/head locations and every place (checkpoint, vpn of B) they meet. */
  const pairs = new Map<string, { a: number; b: number; at: { ckpt: number; vpn: number }[] }>();
  let logicalPages = 0;
  for (const ckpt of ids) {
    const layout = store.layout(ckpt);
    for (let i = 0; i < layout.length; i++) {
      const e = layout[i]!;
      logicalPages += e.count;
      if (e.file === null) zeroRuns.push({ page: 0, count: e.count, vpn: e.vpn, ckpt });
      else {
        let list = byFile.get(e.file);
        if (!list) byFile.set(e.file, (list = []));
        list.push({ page: e.page, count: e.count, vpn: e.vpn, ckpt });
      }
      const n = layout[i + 1];
      if (overlap > 0 && n && e.vpn + e.count === n.vpn) {
        const a = originOf(e.file, e.page + e.count - 1);
        const b = originOf(n.file, n.page);
        const key = `${a}:${b}`;
        let p = pairs.get(key);
        if (!p) pairs.set(key, (p = { a, b, at: [] }));
        p.at.push({ ckpt, vpn: n.vpn });
      }
    }
  }

  // Distinct stored pages per file: the union of every run's page range.
  let distinctPages = 0;
  const intervals = new Map<number, { page: number; count: number }[]>();
  for (const [file, list] of byFile) {
    list.sort((x, y) => x.page - y.page);
    const out: { page: number; count: number }[] = [];
    for (const o of list) {
      const last = out[out.length - 1];
      if (last && last.page + last.count >= o.page) {
        const grow = Math.max(0, o.page + o.count - (last.page + last.count));
        last.count += grow;
        distinctPages += grow;
      } else {
        out.push({ page: o.page, count: o.count });
        distinctPages += o.count;
      }
    }
    intervals.set(file, out);
  }
  const zeroScanned = zeroRuns.length > 0 ? 1 : 0;
  const totalBytes = (distinctPages + zeroScanned) * PAGE + pairs.size * 2 * overlap;
  const prog = progress(opts.onProgress);
  let bytesScanned = 0;

  // Matches, merged by address, bytes and mapping.
  const states = new Map<number, MappingState[]>();
  const mappingsOf = (ckpt: number): MappingState[] => {
    let m = states.get(ckpt);
    if (!m) states.set(ckpt, (m = sortedMappings(store.getState(ckpt))));
    return m;
  };
  const merged = new Map<string, GrepHit & { set: Set<number> }>();
  let truncated = false;
  const ref = (m: MappingState | undefined): MappingRef | null => (m ? { start: m.start, end: m.end, perms: m.perms, path: m.path, kind: m.kind } : null);

  /** Records bytes (length len, read from buf at off) found at every (ckpt, address) of places. */
  const found = (buf: Buffer, off: number, len: number, places: { ckpt: number; address: bigint }[]): void => {
    if (places.length === 0) return;
    const bytes = Buffer.from(buf.subarray(off, off + len));
    const hex = bytes.toString('hex');
    // Group the places by (address, mapping) for the streamed hits.
    const groups = new Map<string, GrepHit>();
    for (const p of places) {
      const maps = mappingsOf(p.ckpt);
      const mi = mappingAt(maps, p.address);
      const m = maps[mi];
      const endAddr = p.address + BigInt(len - 1);
      const em = m && endAddr >= m.end ? maps[mappingAt(maps, endAddr)] : undefined;
      const key = `${p.address}:${hex}:${m ? `${m.start}:${m.path}` : '-'}`;
      let g = merged.get(key);
      if (!g) {
        if (merged.size >= maxMatches) { truncated = true; throw new Cancelled(); }
        g = { address: p.address, bytes, mapping: ref(m), ...(em ? { endMapping: ref(em)! } : {}), checkpoints: [], set: new Set() };
        merged.set(key, g);
      }
      g.set.add(p.ckpt);
      let h = groups.get(key);
      if (!h) groups.set(key, (h = { address: g.address, bytes, mapping: g.mapping, ...(g.endMapping ? { endMapping: g.endMapping } : {}), checkpoints: [] }));
      h.checkpoints.push(p.ckpt);
    }
    if (opts.onHit) for (const h of groups.values()) opts.onHit({ ...h, checkpoints: [...new Set(h.checkpoints)].sort((x, y) => x - y) });
  };

  const checkCancel = (): void => {
    if (opts.signal?.aborted) throw new StasisError('CANCELLED', 'The search was cancelled.');
  };

  // The page edges the boundary pairs need are copied out while their pages pass through the
  // scan below, so no page is read a second time for them.
  const tails = new Map<number, Buffer | null>();
  const heads = new Map<number, Buffer | null>();
  for (const pair of pairs.values()) {
    if (pair.a !== ZERO) tails.set(pair.a, null);
    if (pair.b !== ZERO) heads.set(pair.b, null);
  }
  const work = Buffer.allocUnsafe(overlap + CHUNK_PAGES * PAGE);
  try {
    // 1. Every distinct stored page, file by file, in runs of contiguous stored pages.
    for (const [file, list] of [...byFile].sort((x, y) => x[0] - y[0])) {
      let k = 0; // next occurrence (sorted by page) to activate
      let active: Occ[] = [];
      for (const iv of intervals.get(file)!) {
        let tailLen = 0; // bytes at the start of work kept from the previous chunk of this run
        for (let p = iv.page; p < iv.page + iv.count; p += CHUNK_PAGES) {
          checkCancel();
          const n = Math.min(CHUNK_PAGES, iv.page + iv.count - p);
          store.readStored(file, p, n, work, tailLen);
          const buf = work.subarray(0, tailLen + n * PAGE);
          const base = p * PAGE - tailLen; // stored byte offset of buf[0] within the file
          while (k < list.length && list[k]!.page < p + n) active.push(list[k++]!);
          active = active.filter((o) => o.page + o.count > p - 1);
          const last = p + n >= iv.page + iv.count;
          matcher.scan(buf, 0, buf.length, (s, len) => {
            // A match starting in the last overlap bytes is found again, whole, with the next chunk.
            if (!last && s >= buf.length - overlap) return;
            const abs = base + s;
            const ps = Math.floor(abs / PAGE);
            const pe = Math.floor((abs + len - 1) / PAGE);
            const places: { ckpt: number; address: bigint }[] = [];
            for (const o of active) {
              if (o.page <= ps && o.page + o.count > pe) places.push({ ckpt: o.ckpt, address: BigInt(o.vpn) * BigInt(PAGE) + BigInt(abs - o.page * PAGE) });
            }
            found(buf, s, len, places);
          });
          if (tails.size + heads.size > 0) {
            for (let i = 0; i < n; i++) {
              const o = originOf(file, p + i);
              const at = tailLen + i * PAGE;
              if (tails.has(o)) tails.set(o, Buffer.from(buf.subarray(at + PAGE - overlap, at + PAGE)));
              if (heads.has(o)) heads.set(o, Buffer.from(buf.subarray(at, at + overlap)));
            }
          }
          tailLen = Math.min(overlap, buf.length);
          buf.copy(work, 0, buf.length - tailLen, buf.length);
          bytesScanned += n * PAGE;
          prog.report({ done: bytesScanned, total: totalBytes, unit: 'bytes', phase: 'pages' });
        }
      }
    }

    // 2. Zero pages: one page of zeros stands for all of them (only a pattern of zeros can match).
    if (zeroRuns.length > 0) {
      checkCancel();
      const zeros = Buffer.alloc(2 * PAGE);
      matcher.scan(zeros, 0, zeros.length, (s, len) => {
        if (s >= PAGE) return;
        const places: { ckpt: number; address: bigint }[] = [];
        for (const z of zeroRuns) {
          for (let i = 0; i < z.count; i++) {
            if (s + len > PAGE && i + 1 >= z.count) continue; // runs past the run's end: a boundary pair covers it
            places.push({ ckpt: z.ckpt, address: BigInt(z.vpn + i) * BigInt(PAGE) + BigInt(s) });
          }
        }
        found(zeros, s, len, places);
      });
      bytesScanned += PAGE;
    }

    // 3. Boundaries between runs that are neighbours in memory but not in the store.
    const zeroEdge = Buffer.alloc(overlap);
    const edge = (m: Map<number, Buffer | null>, origin: number): Buffer => {
      if (origin === ZERO) return zeroEdge;
      const b = m.get(origin);
      if (!b) throw new StasisError('INTERNAL', `The search did not see stored page ${origin} it needs for a boundary.`);
      return b;
    };
    let nPairs = 0;
    for (const pair of pairs.values()) {
      if ((++nPairs & 255) === 0) checkCancel();
      const win = Buffer.concat([edge(tails, pair.a), edge(heads, pair.b)]);
      matcher.scan(win, 0, win.length, (s, len) => {
        if (s >= overlap || s + len <= overlap) return; // not across the boundary: found in its page
        found(win, s, len, pair.at.map((x) => ({ ckpt: x.ckpt, address: BigInt(x.vpn) * BigInt(PAGE) - BigInt(overlap - s) })));
      });
      bytesScanned += win.length;
      prog.report({ done: bytesScanned, total: totalBytes, unit: 'bytes', phase: 'boundaries' });
    }
  } catch (e) {
    if (!(e instanceof Cancelled)) throw e;
  }

  // Context from each match's first checkpoint.
  const images = new Map<number, ImageReader>();
  const matches: GrepMatch[] = [];
  try {
    for (const g of merged.values()) {
      const cks = [...g.set].sort((a, b) => a - b);
      const first = cks[0]!;
      let ctx: GrepMatch['context'] = null;
      if (context > 0) {
        let img = images.get(first);
        if (!img) images.set(first, (img = openImage(store, first)));
        const r = img.readAround(g.address, context, g.bytes.length + context);
        if (r) ctx = { address: r.address, bytes: r.bytes };
      }
      matches.push({ address: g.address, bytes: g.bytes, mapping: g.mapping, ...(g.endMapping ? { endMapping: g.endMapping } : {}), checkpoints: cks, first, last: cks[cks.length - 1]!, context: ctx });
    }
  } finally {
    for (const img of images.values()) img.close();
  }
  matches.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.first - b.first));
  prog.finish({ total: totalBytes, unit: 'bytes', phase: truncated ? 'truncated' : 'done' });
  return {
    matches,
    truncated,
    stats: {
      checkpoints: ids.length, distinctPages: distinctPages + zeroScanned, bytesScanned,
      logicalBytes: logicalPages * PAGE, boundaries: pairs.size, durationMs: performance.now() - t0,
    },
  };
}
