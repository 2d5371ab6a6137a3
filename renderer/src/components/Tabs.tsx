/**
 * Tabs (WAI-ARIA tabs pattern): a tab list whose Left/Right/Home/End keys move between tabs, and
 * panels that stay mounted while hidden when `keep` says so (a search keeps its results while the
 * user looks at another tab).
 */
import type { ReactNode } from 'react';

export interface TabSpec<K extends string> { id: K; title: string; keep?: boolean; render: () => ReactNode }

export function Tabs<K extends string>({ label, tabs, active, onChange }: { label: string; tabs: TabSpec<K>[]; active: K; onChange: (id: K) => void }) {
  const onKey = (e: React.KeyboardEvent): void => {
    const i = tabs.findIndex((t) => t.id === active);
    const next = e.key === 'ArrowRight' ? (i + 1) % tabs.length : e.key === 'ArrowLeft' ? (i - 1 + tabs.length) % tabs.length
      : e.key === 'Home' ? 0 : e.key === 'End' ? tabs.length - 1 : -1;
    if (next < 0) return;
    e.preventDefault();
    onChange(tabs[next]!.id);
    document.getElementById(`tab-${tabs[next]!.id}`)?.focus();
  };
  return (
    <div className="tabs">
      <div role="tablist" aria-label={label} className="tablist" onKeyDown={onKey}>
        {tabs.map((t) => (
          <button key={t.id} type="button" role="tab" id={`tab-${t.id}`} aria-controls={`panel-${t.id}`} aria-selected={t.id === active}
            tabIndex={t.id === active ? 0 : -1} className={t.id === active ? 'tab current' : 'tab'} onClick={() => onChange(t.id)}>{t.title}</button>
        ))}
      </div>
      {tabs.map((t) => (t.id === active || t.keep ? (
        <div key={t.id} role="tabpanel" id={`panel-${t.id}`} aria-labelledby={`tab-${t.id}`} hidden={t.id !== active}>{t.render()}</div>
      ) : null))}
    </div>
  );
}
