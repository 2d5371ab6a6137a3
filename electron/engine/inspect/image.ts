/**
 * The memory image of one checkpoint, read at any address: for every page the newest record of
 * the chain (the store's layout, i.e. the same view materialize and restore use), else what the
 * process would have seen there: the mapped file for a file-backed page never modified (as the
 * core file writer does), zeros for an anonymous page never touched. Owns no store or file format;
 * it reads through the Store API and the mapped files, never a process.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { StasisError } from '../../../shared/errors';
import type { MappingState, ProcessState } from '../state/process-state';
import { PAGE_SIZE, type Store, type StoredExtent } from '../store/api';

/** Where the bytes of a range come from. */
export type ImageSource =
  | 'saved' // a data page of the checkpoint
  | 'zero' // a page the checkpoint saved as zeros
  | 'file' // file-backed, never modified: read from the mapped file now
  | 'not-present' // anonymous and never touched (or dropped): the process read zeros there
  | 'unavailable'; // not saved and not recoverable (deleted file, special mapping): shown as zeros

export interface ImageRange {
  start: bigint;
  end: bigint;
  source: ImageSource;
  /** Why 'unavailable' or 'file' bytes are what they are (file path, "deleted", ...). */
  note?: string;
}

export interface ImageRead {
  address: bigint;
  bytes: Buffer;
  ranges: ImageRange[];
  /** The mappings the read touched, in address order. */
  mappings: MappingState[];
}

const PAGE = BigInt(PAGE_SIZE);

/** Index of the mapping containing addr in mappings sorted by start, or -1. */
export function mappingAt(mappings: MappingState[], addr: bigint): number {
  let lo = 0;
  let hi = mappings.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const m = mappings[mid]!;
    if (addr < m.start) hi = mid - 1;
    else if (addr >= m.end) lo = mid + 1;
    else return mid;
  }
  return -1;
}

export function sortedMappings(state: ProcessState): MappingState[] {
  return [...state.mappings].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
}

export function describeMapping(m: MappingState): string {
  return `0x${m.start.toString(16)}-0x${m.end.toString(16)} ${m.perms} ${m.path || `[${m.kind}]`}`;
}

/** The mappings just below and above addr, for an error message. */
function nearest(mappings: MappingState[], addr: bigint): string {
  const below = [...mappings].reverse().find((m) => m.end <= addr);
  const above = mappings.find((m) => m.start > addr);
  const parts = [below ? `below: ${describeMapping(below)}` : 'nothing below', above ? `above: ${describeMapping(above)}` : 'nothing above'];
  return parts.join('; ');
}

/** Index of the extent containing vpn in a sorted layout, or -1. */
export function extentAt(layout: StoredExtent[], vpn: number): number {
  let lo = 0;
  let hi = layout.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const e = layout[mid]!;
    if (vpn < e.vpn) hi = mid - 1;
    else if (vpn >= e.vpn + e.count) lo = mid + 1;
    else return mid;
  }
  return -1;
}

const isFileBacked = (m: MappingState): boolean => m.kind === 'file-private' || m.kind === 'file-shared';
const isAnonymous = (m: MappingState): boolean => m.kind === 'anon' || m.kind === 'shared-anon' || m.kind === 'heap' || m.kind === 'stack';

/** Reads pieces of mapped files, keeping each file open for the duration of one image read. */
class FileReader {
  private fds = new Map<string, number | null>();
  read(path: string, offset: bigint, out: Buffer, at: number, len: number): boolean {
    let fd = this.fds.get(path);
    if (fd === undefined) {
      try { fd = openSync(path, 'r'); } catch (_e) { fd = null; }
      this.fds.set(path, fd);
    }
    if (fd === null) return false;
    let done = 0;
    while (done < len) {
      const n = readSync(fd, out, at + done, len - done, Number(offset) + done);
      if (n <= 0) break;
      done += n;
    }
    out.fill(0, at + done, at + len); // past the file's end a process gets SIGBUS; zeros here
    return true;
  }
  close(): void {
    for (const fd of this.fds.values()) if (fd !== null) closeSync(fd);
    this.fds.clear();
  }
}

export interface ImageReader {
  readonly state: ProcessState;
  readonly mappings: MappingState[];
  readonly layout: StoredExtent[];
  read(address: bigint, length: number): ImageRead;
  /**
   * [anchor - before, anchor + after) clipped to the mapped bytes around anchor (contiguous
   * mappings only): the context of a search hit. Null when anchor itself is not mapped.
   */
  readAround(anchor: bigint, before: number, after: number): ImageRead | null;
  close(): void;
}

/** An image reader for checkpoint id (its state and layout are read once). */
export function openImage(store: Store, id: number): ImageReader {
  const state = store.getState(id);
  const mappings = sortedMappings(state);
  const layout = store.layout(id);
  const files = new FileReader();

  const read = (address: bigint, length: number): ImageRead => {
    if (!Number.isSafeInteger(length) || length <= 0) throw new StasisError('INVALID_INPUT', `The length ${length} is not a positive number of bytes.`);
    if (address < 0n || address + BigInt(length) > 1n << 64n) throw new StasisError('INVALID_INPUT', `0x${address.toString(16)} + ${length} is not an address range of a 64-bit process.`);
    const end = address + BigInt(length);
    // The range must lie in mappings that follow each other without a gap.
    let mi = mappingAt(mappings, address);
    if (mi < 0) throw new StasisError('NOT_FOUND', `0x${address.toString(16)} is not mapped in checkpoint ${id} (${nearest(mappings, address)}); \`stasis inspect ${id}\` lists the mappings.`);
    const touched: MappingState[] = [];
    for (let a = address; a < end;) {
      const m = mappings[mi];
      if (!m || m.start > a) {
        throw new StasisError('NOT_FOUND', `0x${a.toString(16)} (inside 0x${address.toString(16)} + ${length}) is not mapped in checkpoint ${id} (${nearest(mappings, a)}); read a shorter range.`);
      }
      touched.push(m);
      a = m.end;
      mi++;
    }
    const bytes = Buffer.alloc(length);
    const ranges: ImageRange[] = [];
    const push = (start: bigint, stop: bigint, source: ImageSource, note?: string): void => {
      const last = ranges[ranges.length - 1];
      if (last && last.end === start && last.source === source && last.note === note) last.end = stop;
      else ranges.push({ start, end: stop, source, ...(note ? { note } : {}) });
    };
    let ti = 0;
    for (let a = address; a < end;) {
      while (touched[ti]!.end <= a) ti++;
      const m = touched[ti]!;
      const pageEnd = (a / PAGE + 1n) * PAGE;
      const stop = [pageEnd, end, m.end].reduce((x, y) => (y < x ? y : x));
      const at = Number(a - address);
      const len = Number(stop - a);
      const inPage = Number(a % PAGE);
      const ei = extentAt(layout, Number(a / PAGE));
      const e = ei >= 0 ? layout[ei]! : null;
      if (e && e.file !== null) {
        const page = store.readStored(e.file, e.page + (Number(a / PAGE) - e.vpn), 1);
        page.copy(bytes, at, inPage, inPage + len);
        push(a, stop, 'saved');
      } else if (e) {
        push(a, stop, 'zero');
      } else if (isFileBacked(m) && !m.deleted && files.read(m.path, m.offset + (a - m.start), bytes, at, len)) {
        push(a, stop, 'file', m.path);
      } else if (isAnonymous(m)) {
        push(a, stop, 'not-present');
      } else {
        push(a, stop, 'unavailable', isFileBacked(m) ? (m.deleted ? `${m.path} was deleted` : `${m.path} cannot be read`) : `[${m.kind}] is not saved`);
      }
      a = stop;
    }
    return { address, bytes, ranges, mappings: touched };
  };

  return {
    state, mappings, layout, read,
    readAround(anchor, before, after) {
      const mi = mappingAt(mappings, anchor);
      if (mi < 0) return null;
      let lo = anchor - BigInt(before);
      let hi = anchor + BigInt(after);
      // Widen only across contiguous mappings; stop at a gap on either side.
      let i = mi;
      while (i > 0 && lo < mappings[i]!.start && mappings[i - 1]!.end === mappings[i]!.start) i--;
      if (lo < mappings[i]!.start) lo = mappings[i]!.start;
      let j = mi;
      while (j + 1 < mappings.length && hi > mappings[j]!.end && mappings[j + 1]!.start === mappings[j]!.end) j++;
      if (hi > mappings[j]!.end) hi = mappings[j]!.end;
      return hi > lo ? read(lo, Number(hi - lo)) : null;
    },
    close: () => files.close(),
  };
}
