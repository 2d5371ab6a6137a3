/**
 * Private mappings of files deleted at capture (capture/ghost-files.ts captureMappedGhosts): the
 * file is recreated from its saved bytes like an open ghost file (restore/ghost-files.ts: in its
 * directory, unlinked at once, held by the engine) and mapped from /proc/ENGINE/fd/N at its offset;
 * the pages the program had changed go in on top as for any private file mapping. `planMappedGhost`
 * is pure but for stat calls (the pre-flight uses it); `MappedGhostFiles` creates the files.
 */
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { MappingState } from '../state/process-state';
import type { FdAction } from './fd-plan';
import { GhostFiles } from './ghost-files';

type Ghost = Extract<FdAction, { action: 'ghost' }>;

/** The recreated file for mapping m, or why it cannot be recreated. */
export function planMappedGhost(m: MappingState, all: readonly MappingState[]): { ghost: Ghost } | { refuse: string; fix: string } {
  const key = `${m.dev}:${m.inode}`;
  const g = m.ghost;
  if (!g) return { refuse: `${m.path} was already deleted at checkpoint time and its contents are not in the checkpoint (taken by a Stasis that did not save them)`, fix: 'Take a new checkpoint with this version of Stasis.' };
  if (g.skippedAbove !== undefined) {
    return { refuse: `${m.path} was already deleted at checkpoint time and is ${g.size} bytes, above the ghost-file limit of ${g.skippedAbove} bytes, so its contents were not saved`, fix: `Checkpoint again with a higher limit (stasis checkpoint PID --ghost-limit ${g.size}, or more).` };
  }
  if (g.error) return { refuse: `${m.path} was already deleted at checkpoint time and its contents could not be read (${g.error})`, fix: 'Take a new checkpoint.' };
  const holder = all.find((x) => `${x.dev}:${x.inode}` === key && typeof x.ghost?.data === 'string');
  const data = Buffer.from(holder?.ghost?.data ?? '', 'base64');
  if (!holder || data.length !== g.size || createHash('sha256').update(data).digest('hex') !== g.sha256) {
    return { refuse: `the saved contents of the deleted file ${m.path} are missing or do not match their hash`, fix: 'Run `stasis verify`; restore an earlier checkpoint.' };
  }
  const dir = dirname(m.path);
  let isDir = false;
  try { isDir = statSync(dir).isDirectory(); } catch (_e) { /* gone */ }
  if (!isDir) return { refuse: `${m.path} was already deleted at checkpoint time and its directory ${dir}, where it is recreated, no longer exists`, fix: `Recreate the directory ${dir}.` };
  const name = existsSync(m.path) ? `.${basename(m.path)}.stasis-ghost-${m.inode}` : basename(m.path);
  return { ghost: { fd: -1, action: 'ghost', dir, name, inode: key, mode: g.mode, data, flags: 0, pos: 0n, cloexec: false } };
}

/** The recreated files of one restore's deleted mappings, one per inode; close() once every mapping exists. */
export class MappedGhostFiles {
  private readonly files = new GhostFiles();
  constructor(private readonly all: readonly MappingState[]) {}

  pathFor(m: MappingState): string {
    const p = planMappedGhost(m, this.all);
    if ('refuse' in p) throw new Error(p.refuse);
    return this.files.pathFor(p.ghost);
  }

  close(): void {
    this.files.close();
  }
}
