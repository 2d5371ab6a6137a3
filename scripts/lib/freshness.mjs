// Is a build output older than its sources? Shared by bin/stasis.js and scripts/start.mjs.
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';

/** Newest mtime (ms) of files under dir whose name passes `want`; node_modules and dotfiles skipped. */
export function newestMtime(dir, want = () => true, newest = 0) {
  let entries;
  try { entries = readdirSync(dir, { withFileTypes: true }); } catch { return newest; }
  for (const d of entries) {
    if (d.name === 'node_modules' || d.name.startsWith('.')) continue;
    const p = join(dir, d.name);
    if (d.isDirectory()) newest = newestMtime(p, want, newest);
    else if (want(d.name)) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** True when every output exists and none is older than the newest source under the given dirs. */
export function upToDate(outputs, sourceDirs, want) {
  if (!outputs.every((o) => existsSync(o))) return false;
  const built = Math.min(...outputs.map((o) => statSync(o).mtimeMs));
  return sourceDirs.every((d) => newestMtime(d, want) <= built);
}
