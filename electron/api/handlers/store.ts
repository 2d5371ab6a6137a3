/** Handlers for shared/contract/store.ts: thin adapters from validated input to the Store. */
import type { HandlerMap } from '../handler-types';
import type { storeCalls } from '../../../shared/contract/store';
import type { CheckpointInfo } from '../../engine/store/api';
import { describeCheckpoint } from '../../engine/store/detail';
import { StasisError } from '../../../shared/errors';
import { progressEvents } from '../progress';

function must(c: CheckpointInfo | null, id: number): CheckpointInfo {
  if (!c) throw new StasisError('NOT_FOUND', `Checkpoint ${id} does not exist; \`stasis list\` shows the checkpoints.`);
  return c;
}

export const storeHandlers: HandlerMap<typeof storeCalls> = {
  'checkpoints.list': ({ targetId }, ctx) => {
    const s = ctx.store();
    return { targets: s.listTargets(), checkpoints: s.list(targetId === undefined ? undefined : { targetId }) };
  },
  'checkpoints.rows': ({ targetId }, ctx) =>
    // A tree checkpoint is one row (its root, with the number of processes); its other members
    // show up only when listing their own target.
    ctx.store().list(targetId === undefined ? undefined : { targetId })
      .filter((c) => targetId !== undefined || !c.tree || c.tree.root === c.id)
      .map((c) => ({
        id: c.id, target: c.targetId, parent: c.parentId, createdAt: c.createdAt, label: c.label, pinned: c.pinned,
        pagesWritten: c.stats.pagesWritten, bytesWritten: c.stats.bytesWritten, logicalBytes: c.stats.logicalBytes, mode: c.mode,
        ...(c.tree && c.tree.root === c.id ? { processes: c.tree.size } : {}),
        ...(c.tree && c.tree.root !== c.id ? { treeRoot: c.tree.root } : {}),
      })),
  'checkpoints.show': ({ id, bins }, ctx) => {
    must(ctx.store().get(id), id);
    return describeCheckpoint(ctx.store(), id, bins);
  },
  'checkpoints.diff': ({ a, b }, ctx) => ctx.store().diff(a, b),
  'checkpoints.remove': ({ ids }, ctx) => {
    // A tree checkpoint goes whole: every member is reported removed.
    const removed = [...new Set(ids.flatMap((id) => (ctx.store().get(id) ? ctx.store().treeMembers(id) : [id])))];
    ctx.store().remove(ids);
    ctx.emit('store.changed', { reason: 'remove', ids: removed });
    return { removed };
  },
  'checkpoints.pin': ({ id, pinned }, ctx) => {
    ctx.store().setPinned(id, pinned);
    ctx.emit('store.changed', { reason: 'pin', ids: [id] });
    return must(ctx.store().get(id), id);
  },
  'checkpoints.label': ({ id, label }, ctx) => {
    ctx.store().setLabel(id, label);
    ctx.emit('store.changed', { reason: 'label', ids: [id] });
    return must(ctx.store().get(id), id);
  },
  'checkpoints.notes': ({ id, notes }, ctx) => {
    ctx.store().setNotes(id, notes);
    ctx.emit('store.changed', { reason: 'notes', ids: [id] });
    return must(ctx.store().get(id), id);
  },
  'checkpoints.rebase': ({ id, onto }, ctx) => {
    const r = ctx.store().rebase(id, onto);
    ctx.emit('store.changed', { reason: 'rebase', ids: [id] });
    return r;
  },
  'checkpoints.export': ({ id, file, how }, ctx) => ctx.store().exportStream(id, file, how ?? 'one', { signal: ctx.signal, onProgress: progressEvents(ctx, 'export') }),
  'checkpoints.import': ({ file }, ctx) => {
    const r = ctx.store().importStream(file, { signal: ctx.signal, onProgress: progressEvents(ctx, 'import') });
    ctx.emit('store.changed', { reason: 'import', ids: r.ids });
    return r;
  },
  'store.stats': (_i, ctx) => ({ dir: ctx.storeDir, ...ctx.store().stats() }),
  'store.config': (_i, ctx) => ctx.store().config(),
  'store.configure': (patch, ctx) => ctx.store().setConfig(patch),
  'store.verify': (_i, ctx) => ctx.store().verify({ signal: ctx.signal, onProgress: progressEvents(ctx, 'verify') }),
  'store.gc': (_i, ctx) => ctx.store().gc({ signal: ctx.signal, onProgress: progressEvents(ctx, 'gc') }),
  'store.reindex': (_i, ctx) => {
    const r = ctx.store().reindex();
    ctx.emit('store.changed', { reason: 'reindex', ids: [] });
    return { checkpoints: r.checkpoints, problems: r.problems ?? [] };
  },
};
