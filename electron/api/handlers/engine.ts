/**
 * Handlers for shared/contract/engine.ts: engine.status. Reads only; never opens or creates the
 * store (status must work on a machine where nothing was ever checkpointed).
 */
import { readdirSync, lstatSync, statSync } from 'node:fs';
import { join } from 'node:path';
import os from 'node:os';
import type { HandlerMap } from '../handler-types';
import type { engineCalls } from '../../../shared/contract/engine';
import { STASIS_VERSION } from '../version';
import { probeFeatures } from '../../engine/host/features';
import { StasisError } from '../../../shared/errors';

/** Bytes of regular files under dir (symlinks not followed); 0 when dir does not exist. */
function directoryBytes(dir: string): number {
  let total = 0;
  const walk = (d: string): void => {
    let names: string[];
    try { names = readdirSync(d); } catch { return; }
    for (const name of names) {
      const p = join(d, name);
      let st;
      try { st = lstatSync(p); } catch { continue; } // removed while we walked: not ours to report
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) total += st.size;
    }
  };
  walk(dir);
  return total;
}

/** false when absent; throws when the path exists but cannot be a store. */
function storeExists(dir: string): boolean {
  let st;
  try { st = statSync(dir); } catch { return false; }
  if (!st.isDirectory()) throw new StasisError('INVALID_INPUT', `The store path ${dir} exists but is not a directory; pass --store (or STASIS_STORE) pointing to a directory.`);
  return true;
}

export const engineHandlers: HandlerMap<typeof engineCalls> = {
  'engine.status': (_input, ctx) => ({
    version: STASIS_VERSION,
    node: process.versions.node,
    runtime: ctx.runtime ?? 'in-process',
    kernel: { release: os.release(), arch: os.arch() },
    features: probeFeatures(),
    store: { path: ctx.storeDir, exists: storeExists(ctx.storeDir), bytes: directoryBytes(ctx.storeDir) },
  }),
};
