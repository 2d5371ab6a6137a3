/**
 * Opens the store for a HandlerContext: lazily, once per thread, creating its directory 0700 first
 * (checkpoints hold process memory: other users must not read them). Owns nothing else.
 */
import { mkdirSync, chmodSync, existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve as resolvePath } from 'node:path';
import type { Store } from '../store/api';
import { openStore } from '../store';
import { StasisError } from '../../../shared/errors';

export function ensureStoreDir(dir: string): void {
  if (!existsSync(dir)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700); // mkdir's mode is filtered by the umask
  }
}

export function lazyStore(dir: string): { store(): Store; close(): void } {
  let store: Store | null = null;
  return {
    store() {
      if (store) return store;
      ensureStoreDir(dir);
      store = openStoreImpl(dir);
      return store;
    },
    close() { store?.close(); store = null; },
  };
}

function openStoreImpl(dir: string): Store {
  try {
    return openStore(dir);
  } catch (err) {
    if (err instanceof StasisError) throw err;
    throw new StasisError('INTERNAL', `Could not open the store in ${dir}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** --store / STASIS_STORE, else $XDG_DATA_HOME/stasis, else ~/.local/share/stasis. Shared by the app, browser mode and the CLI. */
export function resolveStoreDir(explicit?: string | null): string {
  if (explicit) return resolvePath(explicit);
  const env = process.env.STASIS_STORE;
  if (env) return resolvePath(env);
  const xdg = process.env.XDG_DATA_HOME;
  // XDG spec: a relative XDG_DATA_HOME is invalid and must be ignored.
  const base = xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.local', 'share');
  return join(base, 'stasis');
}
