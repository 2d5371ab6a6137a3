/** Handlers for shared/contract/capture.ts: thin wrappers over electron/engine/capture. */
import { join } from 'node:path';
import type { HandlerMap } from '../handler-types';
import type { captureCalls } from '../../../shared/contract/capture';
import { launch, listProcesses, reapLaunched, type TreeCheckpointResult } from '../../engine/capture';
import { checkpointScoped, wantsTree } from '../../engine/capture/scope';
import type { CheckpointResultInfo } from '../../../shared/contract/capture';
import { StasisError } from '../../../shared/errors';
import { userNames } from '../../engine/proc/users';
import { readTargetIdentity } from '../../engine/proc/identity';
import { progressEvents } from '../progress';
import { preflight } from '../../engine/restore';

/** A tree checkpoint in the shape of a checkpoint result (the root's id; members listed). */
function treeResult(r: TreeCheckpointResult): CheckpointResultInfo {
  return {
    id: r.id, pid: r.pid, mode: r.mode, dirtyTracking: 'hash', frozenMs: r.frozenMs, durationMs: r.durationMs,
    // 'pre-copy' only when every member had it (tree-live.ts); one read whole while frozen sets the downtime.
    pagesScanned: r.pagesScanned, pagesWritten: r.pagesWritten, bytesWritten: r.bytesWritten, freeze: r.members.every((m) => m.freeze === 'pre-copy') ? 'pre-copy' : 'all-threads',
    threads: r.members.length, killed: r.killed, warnings: r.warnings, members: r.members,
  };
}

export const captureHandlers: HandlerMap<typeof captureCalls> = {
  'capture.checkpoint': ({ pid, mode, full, label, name, expectStartTime, snapshot, ghostLimit, tree }, ctx) => {
    const asTree = wantsTree(pid, tree);
    if (asTree && snapshot && snapshot !== 'auto' && snapshot !== 'never') {
      const why = tree ? 'A tree checkpoint' : `Process ${pid} has child processes, so its checkpoint takes them too (a parent restored without its children cannot wait for them); a tree checkpoint`;
      throw new StasisError('INVALID_INPUT', `${why} reads each process's memory while the tree runs where it can (pre-copy), else while every process is frozen; --snapshot ${snapshot} applies to single-process checkpoints only${tree ? '' : ' (--no-tree takes this process alone)'}.`);
    }
    const opts = {
      ...(mode ? { mode } : {}),
      ...(full !== undefined ? { full } : {}),
      ...(label !== undefined ? { label } : {}),
      ...(name ? { name } : {}),
      ...(expectStartTime ? { expectStartTime } : {}),
      ...(snapshot ? { snapshot } : {}),
      ...(ghostLimit !== undefined ? { ghostLimit } : {}),
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      onProgress: progressEvents(ctx, 'checkpoint'),
    };
    const c = checkpointScoped(ctx.store(), pid, { ...opts, tree: asTree });
    const r = c.tree ? treeResult(c.result) : c.result;
    ctx.emit('capture.done', { id: r.id, pid: r.pid, frozenMs: r.frozenMs, bytesWritten: r.bytesWritten });
    // Say now, not at restore time, what would keep this checkpoint from coming back (threads,
    // sockets, memfds...): the same pre-flight the restore runs, on this machine as it is now.
    const refused = preflight(ctx.store(), r.id).items.filter((i) => !i.ok);
    return refused.length ? { ...r, warnings: [...r.warnings, ...refused.map((i) => `restore would refuse it here and now: ${i.label}: ${i.reason}`)] } : r;
  },
  'processes.list': ({ all }) => {
    reapLaunched();
    const names = userNames();
    return { processes: listProcesses({ all: all ?? false }).map((p) => ({ ...p, user: names.get(p.uid) ?? null })) };
  },
  'capture.launch': ({ argv, name, cwd }, ctx) => {
    reapLaunched();
    const launched = launch({ argv, logDir: join(ctx.storeDir, 'logs'), ...(name ? { name } : {}), ...(cwd ? { cwd } : {}) });
    // A named program is a target from its first moment, so a schedule by name finds it before any checkpoint.
    if (name) ctx.store().upsertTarget(readTargetIdentity(launched.pid, name));
    return launched;
  },
};
