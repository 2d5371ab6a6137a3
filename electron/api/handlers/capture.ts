/** Handlers for shared/contract/capture.ts: thin wrappers over electron/engine/capture. */
import { join } from 'node:path';
import type { HandlerMap } from '../handler-types';
import type { captureCalls } from '../../../shared/contract/capture';
import { checkpoint, launch, listProcesses, reapLaunched } from '../../engine/capture';
import { userNames } from '../../engine/proc/users';
import { readTargetIdentity } from '../../engine/proc/identity';
import { progressEvents } from '../progress';
import { preflight } from '../../engine/restore';

export const captureHandlers: HandlerMap<typeof captureCalls> = {
  'capture.checkpoint': ({ pid, mode, full, label, name, expectStartTime, snapshot, ghostLimit }, ctx) => {
    const r = checkpoint(ctx.store(), pid, {
      ...(mode ? { mode } : {}),
      ...(full !== undefined ? { full } : {}),
      ...(label !== undefined ? { label } : {}),
      ...(name ? { name } : {}),
      ...(expectStartTime ? { expectStartTime } : {}),
      ...(snapshot ? { snapshot } : {}),
      ...(ghostLimit !== undefined ? { ghostLimit } : {}),
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      onProgress: progressEvents(ctx, 'checkpoint'),
    });
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
