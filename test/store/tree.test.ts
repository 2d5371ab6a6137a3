/**
 * Tree checkpoints in the store: members committed in one segment and one transaction (all or
 * nothing, pages a child shares with its parent stored once), deleted whole, carried whole by
 * export/import (new ids, the tree kept), rebuilt whole by reindex, and an incomplete tree is
 * reported by verify. Real SQLite store and segment files in a temp dir.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openStore, type Store } from '../../electron/engine/store';
import { assertSameView, makeState, mapping, materializeToMap, randomPage, rng, tempDir, type View } from './model';

function fill(w: { addPages(v: bigint, d: Buffer): void }, view: View): void {
  for (const [vpn, b] of view) w.addPages(BigInt(vpn) << 12n, b);
}

/** A tree of three processes whose memory is mostly the same pages (as after fork). */
function writeTree(store: Store, seed: number, parents: (number | null)[] = [null, null, null]): { ids: number[]; views: View[] } {
  const r = rng(seed);
  const shared: View = new Map();
  for (let i = 0; i < 40; i++) shared.set(0x1000 + i, randomPage(r));
  const views = [0, 1, 2].map((k) => {
    const v = new Map(shared);
    v.set(0x1000 + 40, randomPage(r)); // one page of its own
    v.set(0x1000 + k, randomPage(r));
    return v;
  });
  const targets = [0, 1, 2].map((k) => store.upsertTarget({ pid: 500 + k, startTime: '77', exe: '/bin/t', cmdline: ['t', String(k)] }));
  const tree = store.beginTree(targets.map((t, k) => ({ targetId: t.id, parentId: parents[k] ?? null, mode: parents[k] ? 'incremental' : 'full', dirtyTracking: 'hash', coverage: 'complete', label: k === 0 ? 'tree' : null })));
  tree.writers.forEach((w, k) => {
    w.setState({ ...makeState([mapping(0x1000, 41)], 500 + k), ppid: k === 0 ? 1 : 500 });
    fill(w, views[k]!);
  });
  const infos = tree.commit([{}, {}, {}]);
  return { ids: infos.map((i) => i.id), views };
}

test('a tree checkpoint commits every member at once; a page shared by the members is stored once', () => {
  const t = tempDir();
  try {
    const store = openStore(t.dir);
    const { ids, views } = writeTree(store, 1);
    assert.deepEqual(ids.map((id) => store.get(id)!.tree), ids.map(() => ({ root: ids[0], size: 3 })));
    assert.deepEqual(store.treeMembers(ids[2]!), ids);
    ids.forEach((id, k) => assertSameView(materializeToMap(store, id), views[k]!, `member ${k}`));
    // 40 shared + 3 x (own page + page 0x1000+k): 46 distinct pages, all in one segment.
    const written = ids.reduce((n, id) => n + store.get(id)!.stats.pagesWritten, 0);
    assert.equal(written, 46);
    assert.equal(fs.readdirSync(path.join(t.dir, 'segments')).length, 1);
    // An aborted tree leaves nothing.
    const before = store.list().length;
    const tg = store.upsertTarget({ pid: 900, startTime: '1', exe: '/bin/x', cmdline: [] });
    const a = store.beginTree([{ targetId: tg.id, parentId: null, mode: 'full', dirtyTracking: 'hash', coverage: 'complete' }]);
    a.writers[0]!.setState(makeState([mapping(0x1000, 1)]));
    a.writers[0]!.addPages(0x1000n << 12n, randomPage(rng(9)));
    a.abort();
    assert.equal(store.list().length, before);
    store.close();
  } finally {
    t.cleanup();
  }
});

test('deleting one member deletes the whole tree; the next tree of the same processes keeps its contents', () => {
  const t = tempDir();
  try {
    const store = openStore(t.dir);
    const first = writeTree(store, 2);
    const second = writeTree(store, 3, first.ids);
    store.remove([first.ids[1]!]);
    for (const id of first.ids) assert.equal(store.get(id), null);
    second.ids.forEach((id, k) => {
      assertSameView(materializeToMap(store, id), second.views[k]!, `second tree member ${k}`);
      assert.deepEqual(store.get(id)!.tree, { root: second.ids[0], size: 3 });
    });
    assert.equal(store.verify().ok, true);
    store.close();
  } finally {
    t.cleanup();
  }
});

test('export and import carry a tree whole with new ids; reindex rebuilds it; verify reports a tree missing a member', () => {
  const a = tempDir();
  const b = tempDir();
  try {
    const src = openStore(a.dir);
    const first = writeTree(src, 4);
    const second = writeTree(src, 5, first.ids);
    const file = path.join(a.dir, 'tree.stasis');
    // Exporting one member takes every member, each with its chain.
    const ex = src.exportStream(second.ids[2]!, file, 'one');
    assert.deepEqual([...ex.checkpoints].sort((x, y) => x - y), [...first.ids, ...second.ids].sort((x, y) => x - y));
    const dst = openStore(b.dir);
    const { ids } = dst.importStream(file);
    assert.equal(ids.length, 6);
    const roots = new Set(ids.map((id) => dst.get(id)!.tree?.root));
    assert.equal(roots.size, 2);
    for (const root of roots) assert.equal(dst.treeMembers(root!).length, 3);
    const newSecond = dst.treeMembers(ids.find((id) => dst.get(id)!.parentId !== null)!);
    newSecond.forEach((id, k) => assertSameView(materializeToMap(dst, id), second.views[k]!, `imported member ${k}`));
    // Reindex from the segment files alone.
    dst.close();
    fs.rmSync(path.join(b.dir, 'index.sqlite'));
    for (const f of ['index.sqlite-wal', 'index.sqlite-shm']) fs.rmSync(path.join(b.dir, f), { force: true });
    const re = openStore(b.dir);
    assert.equal(re.list().length, 6);
    assert.deepEqual(re.treeMembers(newSecond[1]!), newSecond);
    newSecond.forEach((id, k) => assertSameView(materializeToMap(re, id), second.views[k]!, `reindexed member ${k}`));
    assert.equal(re.verify().ok, true);
    // A member lost (as damage would): verify names the tree.
    (re as unknown as { db: { prepare(s: string): { run(...a: unknown[]): void } } }).db.prepare('UPDATE checkpoints SET tree_size = 4 WHERE tree_root = ?').run(newSecond[0]);
    const v = re.verify();
    assert.equal(v.ok, false);
    assert.ok(v.problems.some((p) => p.what.includes(`tree checkpoint #${newSecond[0]} has 3 of its 4 processes`)), JSON.stringify(v.problems));
    re.close();
    src.close();
  } finally {
    a.cleanup();
    b.cleanup();
  }
});
