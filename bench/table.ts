/** A tiny shared table printer for the benchmarks: aligned plain text, and Markdown for docs/. */
export type Row = Record<string, string | number>;

function cell(v: string | number): string {
  return typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : v;
}

export function formatTable(rows: Row[], markdown = false): string {
  if (rows.length === 0) return '(no rows)';
  const cols = Object.keys(rows[0]);
  const cells = rows.map((r) => cols.map((c) => cell(r[c] ?? '')));
  if (markdown) {
    return [`| ${cols.join(' | ')} |`, `|${cols.map(() => '---').join('|')}|`, ...cells.map((r) => `| ${r.join(' | ')} |`)].join('\n');
  }
  const w = cols.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i].length)));
  const line = (r: string[]): string => r.map((v, i) => v.padStart(w[i])).join('  ');
  return [line(cols), line(w.map((n) => '-'.repeat(n))), ...cells.map(line)].join('\n');
}
