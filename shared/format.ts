/** Display formatting shared by the CLI and the renderer. Pure TypeScript. */
import type { OpProgress } from './contract/engine';

/** 1536 -> "1.5 KiB"; exact bytes below 1 KiB. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** The name of an engine operation as a person reads it. */
export const OP_NAMES: Record<OpProgress['op'], string> = { checkpoint: 'Checkpoint', restore: 'Restore', export: 'Export', import: 'Import', verify: 'Verify', gc: 'Garbage collection', search: 'Search', send: 'Send', migrate: 'Migrate' };

function amount(n: number, total: number, unit: OpProgress['unit']): string {
  if (unit === 'bytes') return `${formatBytes(n)} of ${formatBytes(total)}`;
  return `${Math.round(n).toLocaleString('en-US')} of ${Math.round(total).toLocaleString('en-US')} ${unit}`;
}

/** The share done (0..1) of an engine operation, counting the current phase's own progress, and a sentence saying so. */
export function describeProgress(p: OpProgress): { value: number; text: string } {
  const inPhase = p.within && p.within.total > 0 ? p.within.done / p.within.total : 0;
  const value = p.total > 0 ? Math.min(1, Math.max(0, (p.done + inPhase) / p.total)) : 1;
  const pct = `${Math.floor(value * 100)}%`;
  const detail = p.within ? `${p.phase ?? ''}: ${amount(p.within.done, p.within.total, p.within.unit)}`.replace(/^: /, '')
    : p.unit === 'steps' ? `${amount(p.done, p.total, p.unit)}${p.phase ? `, ${p.phase}` : ''}`
      : amount(p.done, p.total, p.unit);
  return { value, text: `${OP_NAMES[p.op]}: ${pct} (${detail})` };
}
