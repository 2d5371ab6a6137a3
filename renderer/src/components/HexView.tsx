/**
 * A virtualised hex + ASCII view of one address range: 16 bytes a row, only the rows in view (and a
 * few around them) in the DOM, and the bytes fetched in page-sized chunks as their rows come into
 * view, so a 1 MiB window costs a few requests, not one of 1 MiB. Chunks are kept while the view
 * lives; the parent remounts it (key) for another checkpoint or window. Bytes the image did not
 * save (zero pages, unmodified file pages) are drawn muted, with their source as the row's title.
 */
import { useEffect, useRef, useState } from 'react';
import { HEX_ROW, asciiOf } from '../../../shared/hexdump';

export interface ChunkData {
  bytes: Uint8Array;
  /** Where each part of the chunk came from (inspect.mem ranges), addresses as offsets from the chunk. */
  sources: { from: number; to: number; source: string; note?: string }[];
}

type Chunk = ChunkData | { error: string };

interface Props {
  /** First address of the view (page aligned) and its length in bytes (a multiple of 16). */
  start: bigint;
  length: number;
  /** Offset of the row to scroll to when the view opens. */
  focus?: number;
  /** Bytes [from, to) (offsets from start) to highlight: the search hit. */
  highlight?: { from: number; to: number };
  fetchChunk: (address: bigint, length: number, signal: AbortSignal) => Promise<ChunkData>;
  label: string;
  height?: number;
}

export const CHUNK = 4096;
const ROW_PX = 20;
const OVERSCAN = 8;
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
/** Waits for scrolling to pause before fetching, so dragging the scrollbar does not fetch every page on the way. */
const FETCH_DELAY_MS = 40;

function sourceAt(c: ChunkData, off: number): { source: string; note?: string } | undefined {
  return c.sources.find((s) => off >= s.from && off < s.to);
}

export function HexView({ start, length, focus, highlight, fetchChunk, label, height = 420 }: Props) {
  const box = useRef<HTMLDivElement>(null);
  const rows = Math.ceil(length / HEX_ROW);
  // Opens with the focused row a few rows below the top.
  const [initialTop] = useState(() => Math.max(0, Math.floor((focus ?? 0) / HEX_ROW) - 4) * ROW_PX);
  const [scrollTop, setScrollTop] = useState(initialTop);
  const [chunks, setChunks] = useState<ReadonlyMap<number, Chunk>>(() => new Map());
  const pending = useRef(new Set<number>());
  const abort = useRef(new AbortController());

  // After a frame: in a dialog, the box has no layout (so no scrolling) until the dialog's own effect opens it.
  useEffect(() => {
    const f = requestAnimationFrame(() => { if (box.current) box.current.scrollTop = initialTop; });
    return () => cancelAnimationFrame(f);
  }, [initialTop]);
  useEffect(() => () => abort.current.abort(), []);

  const first = Math.max(0, Math.floor(scrollTop / ROW_PX) - OVERSCAN);
  const last = Math.min(rows, Math.ceil((scrollTop + height) / ROW_PX) + OVERSCAN);

  useEffect(() => {
    const timer = setTimeout(() => {
      const from = Math.floor((first * HEX_ROW) / CHUNK);
      const to = Math.floor((Math.max(first, last - 1) * HEX_ROW) / CHUNK);
      for (let ci = from; ci <= to; ci++) {
        if (chunks.has(ci) || pending.current.has(ci)) continue;
        pending.current.add(ci);
        const len = Math.min(CHUNK, length - ci * CHUNK);
        const signal = abort.current.signal;
        const done = (c: Chunk): void => {
          pending.current.delete(ci);
          if (!signal.aborted) setChunks((prev) => new Map(prev).set(ci, c));
        };
        fetchChunk(start + BigInt(ci * CHUNK), len, signal).then(done, (err: unknown) => done({ error: err instanceof Error ? err.message : String(err) }));
      }
    }, FETCH_DELAY_MS);
    return () => clearTimeout(timer);
  }, [first, last, start, length, fetchChunk, chunks]);

  const hl = highlight ?? { from: -1, to: -1 };
  const out = [];
  let error: string | null = null;
  for (let r = first; r < last; r++) {
    const off = r * HEX_ROW;
    const ci = Math.floor(off / CHUNK);
    const c = chunks.get(ci);
    const data = c && 'bytes' in c ? c : null;
    if (c && 'error' in c) error ??= c.error;
    const src = data ? sourceAt(data, off - ci * CHUNK) : undefined;
    const hex = [];
    const text = [];
    for (let j = 0; j < HEX_ROW && off + j < length; j++) {
      const o = off + j;
      const b = data ? data.bytes[o - ci * CHUNK] : undefined;
      const cls = o >= hl.from && o < hl.to ? ' hl' : '';
      hex.push(<span key={j} className={`hx${cls}${j === 8 ? ' gap' : ''}`}>{b === undefined ? '··' : HEX[b]}</span>);
      text.push(<span key={j} className={`as${cls}`}>{b === undefined ? ' ' : asciiOf(b)}</span>);
    }
    const address = `0x${(start + BigInt(off)).toString(16).padStart(12, '0')}`;
    out.push(
      <div key={r} className={`hexrow${src && src.source !== 'saved' ? ` src-${src.source}` : ''}`} style={{ top: r * ROW_PX }}
        data-testid="hex-row" data-address={address} title={src && src.source !== 'saved' ? `${src.source}${src.note ? `: ${src.note}` : ''}` : undefined}>
        <span className="addr">{address}</span>
        <span className="hexbytes">{hex}</span>
        <span className="ascii">{text}</span>
      </div>,
    );
  }
  return (
    <div className="hexview-wrap">
      {error ? <p className="error-note" role="alert">{error}</p> : null}
      <div ref={box} className="hexview" role="region" aria-label={label} tabIndex={0} style={{ height }}
        onScroll={(e) => setScrollTop(e.currentTarget.scrollTop)}>
        <div className="hexview-inner" style={{ height: rows * ROW_PX }}>{out}</div>
      </div>
    </div>
  );
}
