/**
 * A keyboard-navigable list box that renders only the rows in view, so 10,000 entries scroll
 * smoothly: fixed row height, absolute positioning, aria-activedescendant for the selection.
 * Owns scrolling and selection keys only; rows are drawn by renderRow.
 */
import { useCallback, useEffect, useRef, useState, type ReactNode } from 'react';

interface Props<T> {
  items: T[];
  rowHeight: number;
  height: number;
  label: string;
  selectedIndex: number | null;
  onSelect: (index: number) => void;
  renderRow: (item: T, index: number, selected: boolean) => ReactNode;
  rowKey: (item: T) => string | number;
  idPrefix: string;
  header?: ReactNode;
}

const OVERSCAN = 6;

export function VirtualList<T>({ items, rowHeight, height, label, selectedIndex, onSelect, renderRow, rowKey, idPrefix, header }: Props<T>) {
  const box = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - OVERSCAN);
  const last = Math.min(items.length, Math.ceil((scrollTop + height) / rowHeight) + OVERSCAN);

  const reveal = useCallback((i: number) => {
    const el = box.current;
    if (!el) return;
    const top = i * rowHeight;
    if (top < el.scrollTop) el.scrollTop = top;
    else if (top + rowHeight > el.scrollTop + el.clientHeight) el.scrollTop = top + rowHeight - el.clientHeight;
  }, [rowHeight]);

  useEffect(() => { if (selectedIndex !== null) reveal(selectedIndex); }, [selectedIndex, reveal]);

  const onKey = (e: React.KeyboardEvent): void => {
    if (!items.length) return;
    const page = Math.max(1, Math.floor(height / rowHeight) - 1);
    const cur = selectedIndex ?? -1;
    let next: number | null = null;
    if (e.key === 'ArrowDown') next = Math.min(items.length - 1, cur + 1);
    else if (e.key === 'ArrowUp') next = Math.max(0, cur - 1);
    else if (e.key === 'Home') next = 0;
    else if (e.key === 'End') next = items.length - 1;
    else if (e.key === 'PageDown') next = Math.min(items.length - 1, cur + page);
    else if (e.key === 'PageUp') next = Math.max(0, cur - page);
    if (next !== null) { e.preventDefault(); onSelect(next); }
  };

  const rows: ReactNode[] = [];
  for (let i = first; i < last; i++) {
    const item = items[i];
    const selected = i === selectedIndex;
    rows.push(
      <div
        key={rowKey(item)}
        id={`${idPrefix}-${i}`}
        role="option"
        aria-selected={selected}
        aria-posinset={i + 1}
        aria-setsize={items.length}
        className={selected ? 'vrow selected' : 'vrow'}
        style={{ top: i * rowHeight, height: rowHeight }}
        onClick={() => onSelect(i)}
      >
        {renderRow(item, i, selected)}
      </div>,
    );
  }
  return (
    <div className="vlist">
      {header}
      <div
        ref={box}
        className="vlist-box"
        role="listbox"
        aria-label={label}
        tabIndex={0}
        aria-activedescendant={selectedIndex !== null ? `${idPrefix}-${selectedIndex}` : undefined}
        style={{ height }}
        onScroll={(e) => setScrollTop(e.currentTarget.scrollTop)}
        onKeyDown={onKey}
      >
        <div className="vlist-inner" style={{ height: items.length * rowHeight }}>{rows}</div>
      </div>
    </div>
  );
}
