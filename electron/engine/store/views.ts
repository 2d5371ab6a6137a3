/**
 * Read path, views: what a checkpoint holds, page by page, as one sorted list of extents (its
 * chain's records overlaid, absent pages dropped), cached per store handle. A checkpoint's view
 * never changes, only where its pages live (gc, reindex, flatten), and those bump the store-wide
 * generation, also for other processes: a cached view is used only while the generation holds.
 */
import { KIND_DATA, overlay, withoutAbsent, type Extent } from './extents';
import type { StoreIndex } from './store-index';

const VIEW_CACHE = 3;

/** The index rows a view is built from. */
export type ViewIndex = Pick<StoreIndex, 'db' | 'meta' | 'chain' | 'ownExtents'>;

export class ChainViews {
  private cache = new Map<number, { gen: number; view: Extent[] }>();

  constructor(private readonly index: ViewIndex) {}

  /**
   * Every stored page of checkpoint id (absent pages dropped), sorted; one consistent read of the
   * index. Callers must not modify the returned array or its extents.
   */
  view(id: number): Extent[] {
    const db = this.index.db;
    return db.transaction(() => {
      const gen = this.index.meta('generation', 0);
      const hit = this.cache.get(id);
      if (hit && hit.gen === gen && db.prepare('SELECT 1 FROM checkpoints WHERE id = ?').get(id)) return hit.view;
      // Start from the nearest ancestor whose view is cached (a search or export walks a chain
      // oldest first, so that is usually the parent): overlaying the remaining records on it gives
      // the same view as overlaying the whole chain, whose absent records it has already applied.
      const chain = this.index.chain(id);
      let v: Extent[] = [];
      let from = 0;
      for (let i = chain.length - 2; i >= 0; i--) {
        const c = this.cache.get(chain[i]);
        if (c && c.gen === gen) { v = c.view; from = i + 1; break; }
      }
      for (let i = from; i < chain.length; i++) v = overlay(v, this.index.ownExtents(chain[i]));
      v = withoutAbsent(v);
      this.cacheView(id, gen, v);
      return v;
    }).deferred();
  }

  /**
   * After a write that bumped the generation without touching the files id's cached view reads
   * from (a gc that rewrote other segments): the view is still right, so it stays cached.
   * alive: whether a segment file is still indexed, asked in the same write transaction or lock.
   */
  keepIfFilesAlive(id: number, alive: (file: number) => boolean): void {
    const hit = this.cache.get(id);
    if (!hit) return;
    const files = new Set<number>();
    for (const e of hit.view) if (e.kind === KIND_DATA) files.add(e.file);
    if ([...files].every(alive)) hit.gen = this.index.meta('generation', 0);
  }

  cacheView(id: number, gen: number, view: Extent[]): void {
    this.cache.delete(id);
    this.cache.set(id, { gen, view });
    // A few views only: one of a 16 GiB process can hold a million extents.
    while (this.cache.size > VIEW_CACHE) this.cache.delete(this.cache.keys().next().value as number);
  }
}
