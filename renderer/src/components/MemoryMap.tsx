/**
 * A checkpoint's memory map: one bar per mapping (name, range, size, protections) whose cells are a
 * heatmap of the pages changed in this checkpoint (fill) and how often across the chain (lower strip).
 * Drawn on canvas so a process with thousands of mappings stays cheap; every number is also text.
 */
import { useEffect, useRef } from 'react';
import type { MappingView } from './types';
import { formatBytes, plural } from './format';

function mappingName(m: MappingView): string {
  if (m.path) return m.path.split('/').pop() || m.path;
  return m.kind === 'anon' ? '[anonymous]' : `[${m.kind}]`;
}

function Heat({ m, chainMax }: { m: MappingView; chainMax: number }) {
  const ref = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    const c = ref.current;
    const ctx = c?.getContext('2d');
    if (!c || !ctx) return;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth;
    const h = c.clientHeight;
    c.width = Math.max(1, Math.round(w * dpr));
    c.height = Math.max(1, Math.round(h * dpr));
    ctx.scale(dpr, dpr);
    const styles = getComputedStyle(c);
    const base = styles.getPropertyValue('--heat-base').trim() || '#888';
    const hot = styles.getPropertyValue('--heat-hot').trim() || '#e33';
    const chain = styles.getPropertyValue('--heat-chain').trim() || '#36c';
    ctx.clearRect(0, 0, w, h);
    ctx.fillStyle = base;
    ctx.globalAlpha = 0.18;
    ctx.fillRect(0, 0, w, h);
    const bins = Math.max(m.changed.length, 1);
    const bw = w / bins;
    const top = h * 0.7;
    for (let i = 0; i < m.changed.length; i++) {
      const v = m.changed[i];
      if (v > 0) {
        ctx.globalAlpha = 0.35 + 0.65 * Math.min(1, v);
        ctx.fillStyle = hot;
        ctx.fillRect(i * bw, 0, Math.max(bw, 1), top);
      }
      const n = m.chain[i] ?? 0;
      if (n > 0 && chainMax > 0) {
        ctx.globalAlpha = 0.25 + 0.75 * (n / chainMax);
        ctx.fillStyle = chain;
        ctx.fillRect(i * bw, top + 1, Math.max(bw, 1), h - top - 1);
      }
    }
    ctx.globalAlpha = 1;
  }, [m, chainMax]);
  return <canvas ref={ref} className="heat" aria-hidden="true" />;
}

/** onView: open a mapping's bytes in the page viewer. */
export function MemoryMap({ mappings, onView }: { mappings: MappingView[]; onView?: (m: MappingView) => void }) {
  const chainMax = mappings.reduce((mx, m) => Math.max(mx, ...m.chain), 0);
  return (
    <div className="memmap">
      <p className="legend muted"><span className="swatch hot" aria-hidden="true" /> changed in this checkpoint <span className="swatch chain" aria-hidden="true" /> changed across the chain (darker: more often)</p>
      <ul aria-label="Memory mappings">
        {mappings.map((m) => (
          <li key={m.start} className="mapping" data-testid="mapping">
            <div className={onView ? 'mapping-head with-view' : 'mapping-head'}>
              <span className="mapping-name" title={m.path || m.kind}>{mappingName(m)}</span>
              <code className="muted">{m.start}–{m.end}</code>
              <code>{m.perms}</code>
              <span>{formatBytes(m.pages * 4096)}</span>
              <span className={m.changedPages ? 'changed' : 'muted'} data-testid="mapping-changed" title={`${plural(m.changedPages, 'page')} of ${plural(m.pages, 'page')} changed in this checkpoint`}>{m.changedPages.toLocaleString()} changed</span>
              {onView ? <button type="button" className="link" onClick={() => onView(m)} aria-label={`View the bytes of ${mappingName(m)} at ${m.start}`}>Bytes…</button> : null}
            </div>
            <Heat m={m} chainMax={chainMax} />
          </li>
        ))}
      </ul>
    </div>
  );
}
