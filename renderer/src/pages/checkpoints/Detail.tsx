/** The selected checkpoint: its facts, actions, and memory map (from checkpoints.show). */
import { useState } from 'react';
import { ErrorNote } from '../../ErrorNote';
import { callEngine, useAction, useEngine } from '../../components/engine';
import { CALL } from '../../components/calls';
import { Busy } from '../../components/Status';
import { MemoryMap } from '../../components/MemoryMap';
import { formatBytes, formatMs, formatTime, plural } from '../../components/format';
import type { CheckpointDetail, CheckpointInfo, TargetInfo } from '../../components/types';
import { RestoreWizard } from './RestoreWizard';
import { DiffDialog } from './DiffDialog';
import { EditDialog } from './EditDialog';
import { ExportDialog } from './ExportDialog';
import { SendDialog } from './SendDialog';
import { DeleteDialog } from './DeleteDialog';
import { PageViewer, type ViewRequest } from './PageViewer';

type Open = null | 'restore' | 'diff' | 'edit' | 'export' | 'send' | 'delete';

export function CheckpointDetailPanel({ checkpoint: c, timeline, target, onChanged }: { checkpoint: CheckpointInfo; timeline: CheckpointInfo[]; target: TargetInfo | null; onChanged: () => void }) {
  const [detail, reloadDetail] = useEngine<CheckpointDetail>(CALL.show, { id: c.id });
  const [open, setOpen] = useState<Open>(null);
  const [view, setView] = useState<ViewRequest | null>(null);
  const pin = useAction();
  const close = (): void => setOpen(null);
  const changed = (): void => { onChanged(); reloadDetail(); };

  const togglePin = async (): Promise<void> => {
    const r = await pin.run(() => callEngine(CALL.pin, { id: c.id, pinned: !c.pinned }));
    if (r !== undefined) onChanged();
  };

  const d = detail.value;
  const totalPages = d?.mappings.reduce((s, m) => s + m.pages, 0) ?? 0;
  return (
    <section className="detail" aria-labelledby="detail-title">
      <header className="detail-header">
        <h2 id="detail-title">Checkpoint #{c.id}{c.label ? ` — ${c.label}` : ''}</h2>
        <div className="actions" role="toolbar" aria-label={`Actions for checkpoint ${c.id}`}>
          <button type="button" onClick={() => setOpen('restore')}>Restore…</button>
          <button type="button" className="secondary" onClick={() => setOpen('diff')} disabled={timeline.length < 2}>Compare…</button>
          <button type="button" className="secondary" aria-pressed={c.pinned} onClick={togglePin} disabled={pin.running}>{c.pinned ? 'Unpin' : 'Pin'}</button>
          <button type="button" className="secondary" onClick={() => setOpen('edit')}>Label & notes…</button>
          <button type="button" className="secondary" onClick={() => setOpen('export')}>Export…</button>
          <button type="button" className="secondary" onClick={() => setOpen('send')}>Send to machine…</button>
          <button type="button" className="danger" onClick={() => setOpen('delete')}>Delete…</button>
        </div>
      </header>
      {pin.error ? <ErrorNote error={pin.error} /> : null}
      <dl className="facts compact detail-facts">
        <dt>Taken</dt><dd>{formatTime(c.createdAt)}</dd>
        <dt>Mode</dt><dd>{c.mode} ({c.dirtyTracking}){c.parentId ? `, on top of #${c.parentId}` : ''}{c.restoredFrom ? `, branch after restoring #${c.restoredFrom}` : ''}</dd>
        {c.tree ? <><dt>Tree</dt><dd data-testid="detail-tree">{c.tree.root === c.id ? `${c.tree.size} processes (this process and its descendants at one instant); restore brings back all of them` : `one of the ${c.tree.size} processes of tree checkpoint #${c.tree.root}; restoring it brings back the whole tree`}</dd></> : null}
        <dt>Changed</dt><dd data-testid="detail-changed">{plural(c.stats.pagesChanged, 'page')} ({plural(c.stats.pagesWritten, 'new page')} stored)</dd>
        <dt>Written</dt><dd data-testid="detail-bytes">{formatBytes(c.stats.bytesWritten)} of {formatBytes(c.stats.logicalBytes)} in memory</dd>
        <dt>Frozen</dt><dd>{formatMs(c.stats.frozenMs)} (capture took {formatMs(c.stats.durationMs)})</dd>
        {c.notes ? <><dt>Notes</dt><dd className="notes">{c.notes}</dd></> : null}
      </dl>
      <h3>Memory map</h3>
      {detail.state === 'loading' && !d ? <Busy>Reading the memory map…</Busy> : null}
      {detail.state === 'failed' ? <ErrorNote error={detail.error} onRetry={reloadDetail} /> : null}
      {d ? (
        <>
          <p className="muted" data-testid="map-totals">{plural(d.mappings.length, 'mapping')}, {formatBytes(totalPages * 4096)} of address space, {plural(d.mappings.reduce((s, m) => s + m.changedPages, 0), 'page')} changed in this checkpoint, chain of {plural(d.chainLength, 'checkpoint')}.</p>
          <MemoryMap mappings={d.mappings} onView={(m) => setView({ checkpointId: c.id, start: m.start, end: m.end, address: m.start, length: 0, name: m.path || `[${m.kind}]` })} />
        </>
      ) : null}
      {open === 'restore' ? <RestoreWizard initial={c} timeline={timeline} target={target} onClose={close} /> : null}
      {open === 'diff' ? <DiffDialog timeline={timeline} initialB={c.id} onClose={close} /> : null}
      {open === 'edit' ? <EditDialog checkpoint={c} onClose={close} onSaved={changed} /> : null}
      {open === 'export' ? <ExportDialog checkpoint={c} onClose={close} /> : null}
      {open === 'send' ? <SendDialog checkpoint={c} onClose={close} /> : null}
      {view ? <PageViewer request={view} checkpoints={timeline} onClose={() => setView(null)} /> : null}
      {open === 'delete' ? <DeleteDialog checkpoint={c} onClose={close} onDeleted={onChanged} /> : null}
    </section>
  );
}
