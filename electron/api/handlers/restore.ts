/** Handlers for shared/contract/restore.ts: thin wrappers over electron/engine/restore. */
import { resolve } from 'node:path';
import type { HandlerMap } from '../handler-types';
import type { restoreCalls } from '../../../shared/contract/restore';
import { preflight, restore, writeCore } from '../../engine/restore';
import { progressEvents } from '../progress';
import { StasisError } from '../../../shared/errors';

export const restoreHandlers: HandlerMap<typeof restoreCalls> = {
  'restore.preflight': ({ id, ...redirect }, ctx) => ({ checkpointId: id, ...preflight(ctx.store(), id, redirect) }),
  'restore.run': ({ id, ...redirect }, ctx) => {
    // Only the CLI that runs the engine in its own process sits at that terminal: from the app or the
    // local server it would hand some terminal of this machine to the restored process.
    if (redirect.attach && ctx.runtime !== 'in-process') throw new StasisError('INVALID_INPUT', 'attach works only from `stasis restore ID --attach` in a terminal, not from the app or the local server.');
    const r = restore(ctx.store(), id, { ...redirect, ...(ctx.signal ? { signal: ctx.signal } : {}), onProgress: progressEvents(ctx, 'restore') });
    ctx.emit('restore.done', { checkpointId: id, pid: r.pid, durationMs: r.durationMs });
    return r;
  },
  'restore.core': ({ id, output }, ctx) => ({ checkpointId: id, ...writeCore(ctx.store(), id, resolve(output)) }),
};
