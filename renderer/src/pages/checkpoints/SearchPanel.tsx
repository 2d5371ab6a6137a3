/**
 * The Search tab: searches every checkpoint of one process (inspect.grep with targetId) for text,
 * hex bytes or a regular expression. Places found stream in (inspect.hit events of this call) while
 * the engine's progress bar runs, Cancel stops it; the merged result then replaces them with the
 * first and last checkpoint holding each match and its context. The checkpoints holding matches are
 * reported to the page (onMarks) for the timeline; a match opens in the page viewer.
 */
import { useEffect, useMemo, useRef, useState } from 'react';
import { ErrorNote } from '../../ErrorNote';
import { newCallId } from '../../api';
import { callEngine, useAction, useEngineEvents } from '../../components/engine';
import { CALL, EVENT } from '../../components/calls';
import { Running } from '../../components/Status';
import { formatBytes, formatMs, plural } from '../../components/format';
import type { CheckpointInfo, GrepHitEvent, GrepMatch, GrepResult } from '../../components/types';
import { printable } from '../../../../shared/hexdump';
import { PageViewer, type ViewRequest } from './PageViewer';

/** A row of the list: a streamed place (no first/last/context yet) or a merged match. */
type Row = Omit<GrepMatch, 'first' | 'last' | 'context'> & Partial<Pick<GrepMatch, 'first' | 'last' | 'context'>>;

function hexToBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

function mappingName(m: Row['mapping']): string {
  if (!m) return 'not mapped';
  return m.path ? m.path.split('/').pop() || m.path : m.kind === 'anon' ? '[anonymous]' : `[${m.kind}]`;
}

/** The context's text with the match marked. */
function Context({ row }: { row: Row }) {
  if (!row.context) return <code>{row.text}</code>;
  const bytes = hexToBytes(row.context.bytes);
  const at = Number(BigInt(row.address) - BigInt(row.context.address));
  return (
    <code className="ctx">
      {printable(bytes.subarray(0, at))}<mark>{printable(bytes.subarray(at, at + row.length))}</mark>{printable(bytes.subarray(at + row.length))}
    </code>
  );
}

const byAddress = (a: Row, b: Row): number => { const x = BigInt(a.address); const y = BigInt(b.address); return x < y ? -1 : x > y ? 1 : 0; };

export function SearchPanel({ targetId, timeline, selectedId, onMarks }: {
  targetId: number; timeline: CheckpointInfo[]; selectedId: number | null; onMarks: (marks: ReadonlyMap<number, number>) => void;
}) {
  const [pattern, setPattern] = useState('');
  const [regex, setRegex] = useState(false);
  const [hex, setHex] = useState(false);
  const [ignoreCase, setIgnoreCase] = useState(false);
  const [streamed, setStreamed] = useState<ReadonlyMap<string, Row>>(() => new Map());
  const [result, setResult] = useState<GrepResult | null>(null);
  const [view, setView] = useState<ViewRequest | null>(null);
  const search = useAction();
  const callId = useRef<string | null>(null);

  // A place can come in several groups (pages of different checkpoints): merge by address + bytes.
  useEngineEvents([EVENT.searchHit], (_e, payload) => {
    const h = payload as GrepHitEvent;
    if (h.callId === null || h.callId !== callId.current) return;
    setStreamed((prev) => {
      const key = `${h.address}:${h.bytes}`;
      const old = prev.get(key);
      const checkpoints = old ? [...new Set([...old.checkpoints, ...h.checkpoints])].sort((a, b) => a - b) : h.checkpoints;
      return new Map(prev).set(key, { ...h, checkpoints });
    });
  });

  const rows: Row[] = useMemo(() => result?.matches ?? [...streamed.values()].sort(byAddress), [result, streamed]);
  useEffect(() => {
    const marks = new Map<number, number>();
    for (const r of rows) for (const id of r.checkpoints) marks.set(id, (marks.get(id) ?? 0) + 1);
    onMarks(marks);
  }, [rows, onMarks]);

  const run = async (e: React.FormEvent): Promise<void> => {
    e.preventDefault();
    const id = newCallId();
    callId.current = id;
    setStreamed(new Map());
    setResult(null);
    const r = await search.run((signal, onProgress) => callEngine<GrepResult>(CALL.grep, { pattern, targetId, regex, hex, ignoreCase }, signal, onProgress, id));
    if (r) setResult(r);
  };

  const open = (row: Row): void => {
    // The selected checkpoint if it holds the match, else the newest that does.
    const ckpt = selectedId !== null && row.checkpoints.includes(selectedId) ? selectedId : row.checkpoints[row.checkpoints.length - 1]!;
    const m = row.mapping;
    setView({
      checkpointId: ckpt, address: row.address, length: row.length,
      start: m?.start ?? row.address, end: row.endMapping?.end ?? m?.end ?? `0x${(BigInt(row.address) + BigInt(row.length)).toString(16)}`,
      name: `${mappingName(m)}${row.endMapping ? ` + ${mappingName(row.endMapping)}` : ''}`,
    });
  };

  const s = result?.stats;
  return (
    <div className="search-panel">
      <form className="toolbar" onSubmit={run} role="search">
        <label>Pattern
          <input type="search" value={pattern} onChange={(e) => setPattern(e.target.value)} placeholder={hex ? 'de ad be ef' : regex ? 'sess-[0-9a-f]{16}' : 'text to find'} required spellCheck={false} />
        </label>
        <label className="check"><input type="checkbox" checked={regex} disabled={hex} onChange={(e) => setRegex(e.target.checked)} /> Regular expression</label>
        <label className="check"><input type="checkbox" checked={hex} disabled={regex} onChange={(e) => setHex(e.target.checked)} /> Hex bytes</label>
        <label className="check"><input type="checkbox" checked={ignoreCase} onChange={(e) => setIgnoreCase(e.target.checked)} /> Ignore case</label>
        <button type="submit" disabled={search.running || pattern === ''}>Search</button>
      </form>
      <Running action={search}>Searching…</Running>
      {search.error ? <ErrorNote error={search.error} /> : null}
      {s ? (
        <p className="muted" data-testid="search-summary">
          {plural(result.matches.length, 'match', 'matches')}{result.truncated ? ' (stopped at the limit)' : ''} in {plural(s.checkpoints, 'checkpoint')}:
          read {formatBytes(s.bytesScanned)} of distinct pages for {formatBytes(s.logicalBytes)} of memory in {formatMs(s.durationMs)}.
        </p>
      ) : rows.length ? <p className="muted" role="status">{plural(rows.length, 'place')} found so far{search.cancelled ? ' (cancelled: the list is incomplete)' : ''}.</p> : null}
      {result && rows.length === 0 ? <p className="muted">No match in these checkpoints (pages never saved, such as untouched file pages, are not searched).</p> : null}
      {rows.length ? (
        <div className="table-wrap search-results">
          <table className="grid">
            <thead><tr><th scope="col">Address</th><th scope="col">Mapping</th><th scope="col">First</th><th scope="col">Last</th><th scope="col" className="num">In</th><th scope="col">Text</th></tr></thead>
            <tbody>
              {rows.map((r) => (
                <tr key={`${r.address}:${r.bytes}`} data-testid="search-hit" data-address={r.address}>
                  <td><button type="button" className="link" onClick={() => open(r)} title="Open in the page viewer"><code>{r.address}</code></button></td>
                  <td title={r.mapping ? `${r.mapping.start}–${r.mapping.end} ${r.mapping.perms}` : undefined}>{mappingName(r.mapping)}{r.endMapping ? ` → ${mappingName(r.endMapping)}` : ''} <code className="muted">{r.mapping?.perms}</code></td>
                  <td data-testid="hit-first">{r.first !== undefined ? `#${r.first}` : `#${r.checkpoints[0]}`}</td>
                  <td data-testid="hit-last">{r.last !== undefined ? `#${r.last}` : `#${r.checkpoints[r.checkpoints.length - 1]}`}</td>
                  <td className="num" title={r.checkpoints.map((c) => `#${c}`).join(' ')}>{r.checkpoints.length}</td>
                  <td className="ellipsis"><Context row={r} /></td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      {view ? <PageViewer request={view} checkpoints={timeline} onClose={() => setView(null)} /> : null}
    </div>
  );
}
