/** The per-target timeline: a virtualized list box of checkpoints, newest first; marks: matches of the last search per checkpoint. */
import { VirtualList } from '../../components/VirtualList';
import { formatBytes, formatMs, formatTime } from '../../components/format';
import type { CheckpointInfo } from '../../components/types';

const ROW = 34;

export function Timeline({ items, selectedId, onSelect, marks }: { items: CheckpointInfo[]; selectedId: number | null; onSelect: (id: number) => void; marks?: ReadonlyMap<number, number> }) {
  const index = selectedId === null ? null : items.findIndex((c) => c.id === selectedId);
  const height = Math.min(8, Math.max(3, items.length)) * ROW;
  return (
    <VirtualList
      items={items}
      rowHeight={ROW}
      height={height}
      label={`Timeline, ${items.length} checkpoints, newest first`}
      idPrefix="ckpt"
      selectedIndex={index !== null && index >= 0 ? index : null}
      onSelect={(i) => onSelect(items[i].id)}
      rowKey={(c) => c.id}
      header={
        <div className="trow thead" aria-hidden="true">
          <span>#</span><span>Time</span><span>Label</span><span>Mode</span><span className="num">Changed</span><span className="num">Written</span><span className="num">Frozen</span><span>Branch</span>
        </div>
      }
      renderRow={(c) => (
        <div className="trow" data-testid="timeline-row" data-id={c.id}>
          <span>#{c.id}</span>
          <span>{formatTime(c.createdAt)}</span>
          <span className="ellipsis">
            {marks?.get(c.id) ? <span className="tag hit" data-testid="row-hits" title="Matches of the search in this checkpoint">{marks.get(c.id)} found</span> : null}
            {c.pinned ? <span className="tag pin">pinned</span> : null} {c.tree ? <span className="tag" data-testid="row-tree">{c.tree.root === c.id ? `${c.tree.size} processes` : `in tree #${c.tree.root}`}</span> : null} {c.label ?? <span className="muted">—</span>}
          </span>
          <span className={`mode mode-${c.mode}`}>{c.mode}</span>
          <span className="num" data-testid="row-changed">{c.stats.pagesChanged.toLocaleString()} pages</span>
          <span className="num" data-testid="row-bytes">{formatBytes(c.stats.bytesWritten)}</span>
          <span className="num">{formatMs(c.stats.frozenMs)}</span>
          <span>{c.restoredFrom ? `from #${c.restoredFrom}` : c.parentId ? `after #${c.parentId}` : 'root'}</span>
        </div>
      )}
    />
  );
}
