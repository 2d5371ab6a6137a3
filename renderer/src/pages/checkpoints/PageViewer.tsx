/**
 * The page viewer: a checkpoint's memory around one address, as hex + ASCII (components/HexView),
 * read through inspect.mem a page at a time. Opened from a search hit (scrolled to it, the match
 * highlighted) or from a mapping of the memory map. Shows at most a 1 MiB window of the region at
 * once (Earlier / Later move it), and any checkpoint of the process can be picked to compare.
 */
import { useCallback, useState } from 'react';
import { Dialog } from '../../components/Dialog';
import { HexView, type ChunkData } from '../../components/HexView';
import { callEngine } from '../../components/engine';
import { CALL } from '../../components/calls';
import { formatBytes, formatTime } from '../../components/format';
import type { CheckpointInfo, MemRead } from '../../components/types';

/** What to show: a region (one mapping, or two adjacent ones a match runs across) and the address in it. */
export interface ViewRequest {
  checkpointId: number;
  /** Hex addresses: the region's bounds and the address to open at. */
  start: string;
  end: string;
  address: string;
  /** Bytes from address to highlight (0: none). */
  length: number;
  name: string;
}

const PAGE = 4096n;
const WINDOW = 1n << 20n;

function hexToBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

function windowAround(start: bigint, end: bigint, at: bigint): bigint {
  let w = ((at - WINDOW / 2n) / PAGE) * PAGE;
  if (w > end - WINDOW) w = end - WINDOW;
  return w < start ? start : w;
}

export function PageViewer({ request: q, checkpoints, onClose }: { request: ViewRequest; checkpoints: CheckpointInfo[]; onClose: () => void }) {
  const start = BigInt(q.start);
  const end = BigInt(q.end);
  const at = BigInt(q.address);
  const [id, setId] = useState(q.checkpointId);
  const [win, setWin] = useState(() => windowAround(start, end, at));
  const winEnd = win + WINDOW < end ? win + WINDOW : end;
  const fetchChunk = useCallback(async (address: bigint, length: number, signal: AbortSignal): Promise<ChunkData> => {
    const r = await callEngine<MemRead>(CALL.mem, { id, address: `0x${address.toString(16)}`, length }, signal);
    return {
      bytes: hexToBytes(r.data ?? ''),
      sources: r.ranges.map((x) => ({ from: Number(BigInt(x.start) - address), to: Number(BigInt(x.end) - address), source: x.source, ...(x.note ? { note: x.note } : {}) })),
    };
  }, [id]);
  const focus = Number((at > win ? at : win) - win);
  const highlight = q.length > 0 ? { from: Number(at - win), to: Number(at - win) + q.length } : undefined;
  const step = WINDOW / 2n;
  return (
    <Dialog title={`Memory of checkpoint #${id}`} onClose={onClose} wide>
      <div className="toolbar">
        <label>Checkpoint
          <select value={id} onChange={(e) => setId(Number(e.target.value))}>
            {checkpoints.slice(0, 1000).map((c) => <option key={c.id} value={c.id}>#{c.id} — {formatTime(c.createdAt)}{c.label ? ` — ${c.label}` : ''}</option>)}
          </select>
        </label>
        <p className="muted store-line" data-testid="viewer-range">
          {q.name} <code>0x{win.toString(16)}–0x{winEnd.toString(16)}</code> ({formatBytes(Number(winEnd - win))}{end - start > WINDOW ? ` of ${formatBytes(Number(end - start))}` : ''})
        </p>
        {end - start > WINDOW ? (
          <div className="actions">
            <button type="button" className="secondary" disabled={win <= start} onClick={() => setWin((w) => (w - step < start ? start : w - step))}>Earlier</button>
            <button type="button" className="secondary" disabled={winEnd >= end} onClick={() => setWin((w) => (w + step > end - WINDOW ? end - WINDOW : w + step))}>Later</button>
          </div>
        ) : null}
      </div>
      <p className="legend muted">
        {highlight ? <span><span className="swatch hit" aria-hidden="true" /> the match at <code>{q.address}</code> ({q.length} bytes)</span> : null}
        <span><span className="swatch unsaved" aria-hidden="true" /> not a saved page: zeros, or the mapped file&apos;s bytes (hover a row for its source)</span>
      </p>
      <HexView key={`${id}-${win}`} start={win} length={Number(winEnd - win)} focus={focus} fetchChunk={fetchChunk}
        {...(highlight ? { highlight } : {})} label={`Bytes of checkpoint ${id} from 0x${win.toString(16)}`} />
    </Dialog>
  );
}
