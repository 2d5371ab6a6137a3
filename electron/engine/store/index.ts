/** The store's entry point: openStore(dir) returns the Store of api.ts (segments + SQLite index in dir). */
import type { Store } from './api';
import { SqliteStore, type StoreOptions } from './store';

export type { StoreOptions } from './store';
export * from './api';

export function openStore(dir: string, opts?: StoreOptions): Store {
  return new SqliteStore(dir, opts);
}
