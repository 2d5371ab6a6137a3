/** Diff of two checkpoints: per mapping the changed/added/removed pages and bytes, drawn as proportional bars. */
import { useState } from 'react';
import { Dialog } from '../../components/Dialog';
import { ErrorNote } from '../../ErrorNote';
import { useEngine } from '../../components/engine';
import { CALL } from '../../components/calls';
import { Busy } from '../../components/Status';
import { formatBytes, formatTime, plural } from '../../components/format';
import type { CheckpointInfo, DiffResult } from '../../components/types';

function Picker({ label, value, onChange, items }: { label: string; value: number; onChange: (id: number) => void; items: CheckpointInfo[] }) {
  return (
    <label>{label}
      <select value={value} onChange={(e) => onChange(Number(e.target.value))}>
        {items.slice(0, 1000).map((c) => <option key={c.id} value={c.id}>#{c.id} — {formatTime(c.createdAt)}{c.label ? ` — ${c.label}` : ''}</option>)}
      </select>
    </label>
  );
}

export function DiffDialog({ timeline, initialB, onClose }: { timeline: CheckpointInfo[]; initialB: number; onClose: () => void }) {
  const b0 = timeline.find((c) => c.id === initialB);
  const older = timeline.find((c) => c.id < initialB);
  const [b, setB] = useState(initialB);
  const [a, setA] = useState(b0?.parentId ?? older?.id ?? timeline[timeline.length - 1].id);
  const [diff, reload] = useEngine<DiffResult>(a === b ? null : CALL.diff, { a, b });
  const d = diff.value;
  const widest = d ? Math.max(1, ...d.mappings.map((m) => m.changedPages + m.addedPages + m.removedPages)) : 1;
  return (
    <Dialog title="Compare checkpoints" onClose={onClose} wide>
      <div className="toolbar">
        <Picker label="From" value={a} onChange={setA} items={timeline} />
        <Picker label="To" value={b} onChange={setB} items={timeline} />
      </div>
      {a === b ? <p className="muted">Pick two different checkpoints.</p> : null}
      {diff.state === 'loading' && a !== b ? <Busy>Comparing…</Busy> : null}
      {diff.state === 'failed' ? <ErrorNote error={diff.error} onRetry={reload} /> : null}
      {d && a !== b ? (
        <div className="diff" aria-busy={diff.state === 'loading'}>
          <p data-testid="diff-totals">From #{d.a} to #{d.b}: {plural(d.changedPages, 'page')} changed, {plural(d.addedPages, 'page')} added, {plural(d.removedPages, 'page')} removed; {formatBytes(d.bytes)} differ.</p>
          <p className="legend muted"><span className="swatch changed" aria-hidden="true" /> changed <span className="swatch added" aria-hidden="true" /> added <span className="swatch removed" aria-hidden="true" /> removed</p>
          <table className="grid diff-table">
            <thead><tr><th scope="col">Mapping</th><th scope="col" className="num">Changed</th><th scope="col" className="num">Added</th><th scope="col" className="num">Removed</th><th scope="col" className="num">Bytes</th><th scope="col">Share</th></tr></thead>
            <tbody>
              {d.mappings.map((m) => (
                <tr key={`${m.start}-${m.path}`} data-testid="diff-row">
                  <th scope="row" title={`${m.start}–${m.end}`}>{m.path || '[anonymous]'} <code className="muted">{m.start}</code></th>
                  <td className="num">{m.changedPages}</td><td className="num">{m.addedPages}</td><td className="num">{m.removedPages}</td>
                  <td className="num">{formatBytes(m.bytes)}</td>
                  <td className="bar-cell" aria-hidden="true">
                    <span className="bar changed" style={{ width: `${(100 * m.changedPages) / widest}%` }} />
                    <span className="bar added" style={{ width: `${(100 * m.addedPages) / widest}%` }} />
                    <span className="bar removed" style={{ width: `${(100 * m.removedPages) / widest}%` }} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {d.mappings.length === 0 ? <p className="muted">The two checkpoints hold the same memory.</p> : null}
        </div>
      ) : null}
    </Dialog>
  );
}
