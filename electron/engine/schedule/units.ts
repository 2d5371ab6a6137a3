/**
 * Human units on the command line: durations ("30s", "15m", "6h", "2d", "1w") and sizes ("500M",
 * "2G", "1.5GiB"). Parsing only; errors say what form is expected.
 */
import { StasisError } from '../../../shared/errors';

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$/i.exec(text);
  if (!m) throw new StasisError('INVALID_INPUT', `"${text}" is not a duration; write a number with a unit: 30s, 15m, 6h, 2d, 1w.`);
  const unit = (m[2] ?? 's').toLowerCase();
  return Math.round(Number(m[1]) * durationUnits[unit]!);
}

const sizeUnits: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(text);
  if (!m) throw new StasisError('INVALID_INPUT', `"${text}" is not a size; write a number with a unit: 500M, 2G, 1.5GiB.`);
  return Math.round(Number(m[1]) * sizeUnits[m[2]!.toLowerCase()]!);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function formatDuration(ms: number): string {
  for (const [u, f] of [['w', 604_800_000], ['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms >= f && ms % f === 0) return `${ms / f}${u}`;
  }
  return `${ms}ms`;
}
