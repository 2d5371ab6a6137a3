/**
 * Checkpoints: per target a virtualized timeline (time, label, pinned, mode, pages changed, bytes
 * written, frozen time, branch after a restore, matches of the last search); under it three tabs:
 * the selected checkpoint's memory map and actions (restore, compare, pin, label/notes, export,
 * delete), its saved process Details, and Search over all of the target's checkpoints; and the
 * store (usage, verify, gc, import). Everything shown comes from the engine; the list refreshes on
 * pushed events.
 */
import '../components/screens.css';
import { useCallback, useMemo, useState } from 'react';
import { Page } from '../Page';
import { ErrorNote } from '../ErrorNote';
import { useEngine, useEngineEvents } from '../components/engine';
import { CALL, CHECKPOINT_CHANGES } from '../components/calls';
import { Busy } from '../components/Status';
import { takeIntent } from '../components/nav';
import type { CheckpointInfo, StoreStats, TargetInfo } from '../components/types';
import { formatBytes } from '../components/format';
import { Timeline } from './checkpoints/Timeline';
import { CheckpointDetailPanel } from './checkpoints/Detail';
import { StorePanel } from './checkpoints/StorePanel';
import { ProcessDetailsPanel } from './checkpoints/ProcessDetails';
import { SearchPanel } from './checkpoints/SearchPanel';
import { Tabs } from '../components/Tabs';

type Tab = 'checkpoint' | 'details' | 'search';

function targetTitle(t: TargetInfo): string {
  const prog = t.name || t.exe.split('/').pop() || t.exe;
  return `${prog} (PID ${t.pid})`;
}

export function CheckpointsPage() {
  const [intent] = useState(takeIntent);
  const [list, reload] = useEngine<{ targets: TargetInfo[]; checkpoints: CheckpointInfo[] }>(CALL.checkpoints);
  const [targetId, setTargetId] = useState<number | null>(intent.targetId ?? null);
  const [selectedId, setSelectedId] = useState<number | null>(intent.checkpointId ?? null);
  const [showStore, setShowStore] = useState(false);
  const [stats, reloadStats] = useEngine<StoreStats>(CALL.stats);
  const [tab, setTab] = useState<Tab>('checkpoint');
  const [marks, setMarks] = useState<ReadonlyMap<number, number>>(() => new Map());
  const onMarks = useCallback((m: ReadonlyMap<number, number>) => setMarks(m), []);
  useEngineEvents(CHECKPOINT_CHANGES, () => { reload(); reloadStats(); });

  const targets = list.value?.targets;
  const all = list.value?.checkpoints;
  // A checkpoint asked for by another screen decides the target; otherwise the most recent target.
  const effectiveTarget = useMemo(() => {
    if (!targets?.length || !all) return null;
    if (targetId !== null && targets.some((t) => t.id === targetId)) return targetId;
    const wanted = selectedId !== null ? all.find((c) => c.id === selectedId) : undefined;
    if (wanted) return wanted.targetId;
    const newest = all.reduce<CheckpointInfo | null>((b, c) => (!b || c.id > b.id ? c : b), null);
    return newest?.targetId ?? targets[0].id;
  }, [targets, all, targetId, selectedId]);

  const timeline = useMemo(() => (all ?? []).filter((c) => c.targetId === effectiveTarget).sort((a, b) => b.id - a.id), [all, effectiveTarget]);
  // Keep a selection the user can act on when the list changes under it (delete, new target).
  const selected = timeline.find((c) => c.id === selectedId) ?? timeline[0] ?? null;

  return (
    <Page
      title="Checkpoints"
      actions={<>
        <button type="button" className="secondary" onClick={reload}>Refresh</button>
        <button type="button" className="secondary" aria-expanded={showStore} onClick={() => setShowStore((s) => !s)}>Store…</button>
      </>}
    >
      {showStore ? <StorePanel onChanged={() => { reload(); reloadStats(); }} /> : null}
      {list.state === 'loading' && !all ? <Busy>Reading the store…</Busy> : null}
      {list.state === 'failed' ? <ErrorNote error={list.error} onRetry={reload} /> : null}
      {targets && targets.length === 0 ? <p className="muted">No checkpoints yet. Take one from the Processes page.</p> : null}
      {targets && targets.length > 0 && all ? (
        <>
          <div className="toolbar">
            <label>Process
              <select value={effectiveTarget ?? ''} onChange={(e) => { setTargetId(Number(e.target.value)); setSelectedId(null); }}>
                {targets.map((t) => <option key={t.id} value={t.id}>{targetTitle(t)} — {all.filter((c) => c.targetId === t.id).length} checkpoints</option>)}
              </select>
            </label>
            {stats.value ? (
              <p className="muted store-line" data-testid="store-line">
                Store: {formatBytes(stats.value.storeBytes)} on disk for {formatBytes(stats.value.logicalBytes)} of saved memory
                (deduplication ×{stats.value.dedupRatio.toFixed(2)}, compression ×{stats.value.compressionRatio.toFixed(2)})
              </p>
            ) : null}
          </div>
          <Timeline items={timeline} selectedId={selected?.id ?? null} onSelect={setSelectedId} marks={marks} />
          {selected && effectiveTarget !== null ? (
            <Tabs<Tab> label="Checkpoint views" active={tab} onChange={setTab} tabs={[
              { id: 'checkpoint', title: `Checkpoint #${selected.id}`, render: () => <CheckpointDetailPanel key={selected.id} checkpoint={selected} timeline={timeline} target={targets.find((t) => t.id === effectiveTarget) ?? null} onChanged={reload} /> },
              { id: 'details', title: 'Details', render: () => <ProcessDetailsPanel key={selected.id} checkpointId={selected.id} /> },
              // Kept mounted: the results (and the timeline's marks) stay while other tabs are shown; a new process starts afresh.
              { id: 'search', title: 'Search', keep: true, render: () => <SearchPanel key={effectiveTarget} targetId={effectiveTarget} timeline={timeline} selectedId={selected.id} onMarks={onMarks} /> },
            ]} />
          ) : null}
        </>
      ) : null}
    </Page>
  );
}
