// The store's layers are enforced, not remembered: every module of electron/engine/store belongs to
// one layer below, and may import (also `import type`) only modules of lower layers or of its own
// group; and no imports may go round in a circle. A new module must be given a layer here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const storeDir = fileURLToPath(new URL('../../electron/engine/store', import.meta.url));

/** Lowest first: [level, group, modules]. Same level, different group: neither may import the other. */
const LAYERS: [number, string, string[]][] = [
  [0, 'base', ['api', 'cancel', 'extents', 'hash', 'format', 'stream-format', 'schema', 'lock', 'native-addon', 'page-slots', 'hash-slots']],
  [1, 'segments', ['segments']],
  [2, 'index', ['store-index']],
  [3, 'read path', ['views', 'read']],
  [3, 'write path', ['writer', 'commit', 'tree-commit']],
  [4, 'maintenance', ['edits', 'gc', 'verify', 'reindex', 'rebase', 'diff', 'streams', 'stream-import', 'flatten']],
  [5, 'store', ['store', 'index', 'detail']],
];

type Graph = Map<string, string[]>;

/** Module name -> the store modules it imports (relative './x' specifiers only). */
function storeGraph(): Graph {
  const g: Graph = new Map();
  for (const f of readdirSync(storeDir)) {
    if (!f.endsWith('.ts')) continue;
    const info = ts.preProcessFile(readFileSync(join(storeDir, f), 'utf8'), true, true);
    const deps = info.importedFiles.map((i) => i.fileName).filter((s) => s.startsWith('./')).map((s) => s.slice(2).replace(/\.(js|ts)$/, ''));
    g.set(f.replace(/\.ts$/, ''), deps);
  }
  return g;
}

/** Every breach of the layer table and every import circle in g, as readable lines. */
function layerProblems(g: Graph, layers = LAYERS): string[] {
  const where = new Map<string, { level: number; group: string }>();
  for (const [level, group, mods] of layers) for (const m of mods) where.set(m, { level, group });
  const out: string[] = [];
  for (const [m, deps] of g) {
    const a = where.get(m);
    if (!a) { out.push(`${m}.ts has no layer (add it to LAYERS in test/lint/store-layers.test.ts)`); continue; }
    for (const d of deps) {
      const b = where.get(d);
      if (!b) continue; // reported as a module of its own
      if (b.level < a.level || b.group === a.group) continue;
      out.push(`${m}.ts (${a.group}) imports ${d}.ts (${b.group}), which is ${b.level > a.level ? 'above' : 'beside'} it`);
    }
  }
  // Circles, also within a group: a depth-first walk that meets a module still on its path.
  const state = new Map<string, 'open' | 'done'>();
  const visit = (m: string, trail: string[]): void => {
    if (state.get(m) === 'done') return;
    if (state.get(m) === 'open') { out.push(`import circle: ${[...trail.slice(trail.indexOf(m)), m].join(' -> ')}`); return; }
    state.set(m, 'open');
    for (const d of g.get(m) ?? []) if (g.has(d)) visit(d, [...trail, m]);
    state.set(m, 'done');
  };
  for (const m of [...g.keys()].sort()) visit(m, []);
  return out;
}

test('the store modules import only downwards, with no circle', () => {
  const g = storeGraph();
  assert.ok(g.size >= 15, `found only ${g.size} modules in ${storeDir}`);
  assert.deepEqual(layerProblems(g), []);
});

test('the check catches an upward import, a sideways one, a circle and a module with no layer', () => {
  const g: Graph = new Map([
    ['gc', ['store-index', 'store']], // maintenance -> store: upward
    ['read', ['commit']], // read path -> write path: beside
    ['store', ['gc']],
    ['diff', ['rebase']], ['rebase', ['diff']], // a circle inside one group
    ['store-index', []], ['commit', []], ['misc', []],
  ]);
  const p = layerProblems(g);
  assert.ok(p.some((x) => x.startsWith('gc.ts (maintenance) imports store.ts (store), which is above')), p.join('\n'));
  assert.ok(p.some((x) => x.startsWith('read.ts (read path) imports commit.ts (write path), which is beside')), p.join('\n'));
  assert.ok(p.some((x) => x.includes('import circle: ') && x.includes('diff -> rebase')), p.join('\n'));
  assert.ok(p.some((x) => x.includes('import circle: gc -> store -> gc')), p.join('\n'));
  assert.ok(p.some((x) => x.startsWith('misc.ts has no layer')), p.join('\n'));
});
