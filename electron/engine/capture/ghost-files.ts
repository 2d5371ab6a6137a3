/**
 * Open files that were already deleted ("ghost files", as CRIU calls them): nothing on disk can give
 * their bytes back at restore, so capture saves them, up to a size limit, into the checkpoint's state
 * (`FdState.info.ghost`), which is part of the checkpoint's definition in its segment and covered by
 * the segment's checksum (docs/store-format.md). Read while the target is frozen, through
 * /proc/PID/fd/N: a new open of the same inode, so the target's own offset does not move. Several
 * descriptors of one inode (dup, or two opens before the unlink) carry the bytes once, on the lowest.
 * Only regular files: a deleted directory or device has no contents to save. A memfd is saved the
 * same way (with its seals, capture/memfd.ts).
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { FdState, GhostInfo, MappingState } from '../state/process-state';

/** Default limit per file (bytes); `checkpoint --ghost-limit BYTES` changes it. */
export const DEFAULT_GHOST_LIMIT = 10 * 1024 * 1024;

const S_IFMT = 0o170000, S_IFREG = 0o100000;

/** A deleted regular file, or a memfd (never linked anywhere: its bytes exist only in memory). */
export function isGhost(f: FdState): boolean {
  return (f.kind === 'deleted-file' || f.kind === 'memfd') && f.info?.mqueue !== true && f.mode !== undefined && (f.mode & S_IFMT) === S_IFREG;
}

export function captureGhostFiles(pid: number, fds: FdState[], limit: number, warnings: string[]): void {
  const saved = new Map<string, GhostInfo>();
  for (const f of [...fds].sort((a, b) => a.fd - b.fd)) {
    if (!isGhost(f)) continue;
    const key = `${f.dev}:${f.inode}`;
    const size = f.size ?? 0;
    const first = saved.get(key);
    let ghost: GhostInfo;
    if (first) ghost = { size: first.size, mode: first.mode, ...(first.sha256 ? { sha256: first.sha256 } : {}), ...(first.skippedAbove !== undefined ? { skippedAbove: first.skippedAbove } : {}), ...(first.error ? { error: first.error } : {}) };
    else if (size > limit) {
      ghost = { size, mode: f.mode! & 0o7777, skippedAbove: limit };
      warnings.push(`fd ${f.fd}: the deleted file ${f.target} is ${size} bytes, above the ghost-file limit of ${limit} bytes: its contents were not saved`);
    } else {
      try {
        const data = readFileSync(`/proc/${pid}/fd/${f.fd}`);
        ghost = { size: data.length, mode: f.mode! & 0o7777, sha256: createHash('sha256').update(data).digest('hex'), data: data.toString('base64') };
      } catch (e) {
        ghost = { size, mode: f.mode! & 0o7777, error: (e as Error).message };
        warnings.push(`fd ${f.fd}: the deleted file ${f.target} could not be read (${(e as Error).message})`);
      }
    }
    if (!first) saved.set(key, ghost);
    f.info = { ...(f.info ?? {}), ghost };
  }
}

/**
 * Files deleted while mapped privately (a library replaced by an upgrade under a running program):
 * their unmodified pages live only in the deleted file, so its bytes are saved like a ghost file's
 * (MappingState.ghost, on the first mapping of each inode), read through /proc/PID/map_files.
 */
export function captureMappedGhosts(pid: number, mappings: MappingState[], limit: number, warnings: string[]): void {
  const saved = new Map<string, GhostInfo>();
  for (const m of mappings) {
    if (m.kind !== 'file-private' || !m.deleted || m.inode === 0) continue;
    const key = `${m.dev}:${m.inode}`;
    const first = saved.get(key);
    if (first) {
      m.ghost = { size: first.size, mode: first.mode, ...(first.sha256 ? { sha256: first.sha256 } : {}), ...(first.skippedAbove !== undefined ? { skippedAbove: first.skippedAbove } : {}), ...(first.error ? { error: first.error } : {}) };
      continue;
    }
    const at = `/proc/${pid}/map_files/${m.start.toString(16)}-${m.end.toString(16)}`;
    let ghost: GhostInfo;
    try {
      const st = statSync(at);
      if (st.size > limit) {
        ghost = { size: st.size, mode: st.mode & 0o7777, skippedAbove: limit };
        warnings.push(`the deleted file ${m.path} mapped at ${m.start.toString(16)} is ${st.size} bytes, above the ghost-file limit of ${limit} bytes: its contents were not saved`);
      } else {
        const data = readFileSync(at);
        ghost = { size: data.length, mode: st.mode & 0o7777, sha256: createHash('sha256').update(data).digest('hex'), data: data.toString('base64') };
      }
    } catch (e) {
      ghost = { size: 0, mode: 0o644, error: (e as Error).message };
    }
    saved.set(key, ghost);
    m.ghost = ghost;
  }
}
