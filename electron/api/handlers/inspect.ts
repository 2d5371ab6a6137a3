/** Handlers for shared/contract/inspect.ts: thin adapters from validated input to electron/engine/inspect. */
import { resolve } from 'node:path';
import type { HandlerMap } from '../handler-types';
import { MEM_INLINE_MAX, type inspectCalls, type MappingRefData } from '../../../shared/contract/inspect';
import { StasisError } from '../../../shared/errors';
import { printable } from '../../../shared/hexdump';
import { grepCheckpoints, inspectCheckpoint, readMemory, type GrepHit } from '../../engine/inspect';
import { progressEvents } from '../progress';

const hex = (v: bigint): string => `0x${v.toString(16)}`;
const mappingRef = (m: { start: bigint; end: bigint; perms: string; path: string; kind: string }): MappingRefData =>
  ({ start: hex(m.start), end: hex(m.end), perms: m.perms, path: m.path, kind: m.kind });

function hitData(h: GrepHit) {
  return {
    address: hex(h.address), length: h.bytes.length, bytes: h.bytes.toString('hex'), text: printable(h.bytes),
    mapping: h.mapping ? mappingRef(h.mapping) : null, ...(h.endMapping ? { endMapping: mappingRef(h.endMapping) } : {}),
    checkpoints: h.checkpoints,
  };
}

export const inspectHandlers: HandlerMap<typeof inspectCalls> = {
  'inspect.mem': ({ id, address, length, output }, ctx) => {
    const r = readMemory(ctx.store(), id, BigInt(address), length, { inlineMax: MEM_INLINE_MAX, ...(output ? { output: resolve(output) } : {}), ...(ctx.signal ? { signal: ctx.signal } : {}) });
    return {
      checkpointId: id, address: hex(r.address), length: r.length,
      ...(r.data ? { data: r.data.toString('hex') } : {}), ...(r.output ? { output: r.output } : {}),
      ranges: r.ranges.map((x) => ({ start: hex(x.start), end: hex(x.end), source: x.source, ...(x.note ? { note: x.note } : {}) })),
      mappings: r.mappings.map(mappingRef),
    };
  },
  'inspect.details': ({ id, showEnv }, ctx) => inspectCheckpoint(ctx.store(), id, { showEnv: showEnv === true }),
  'inspect.grep': ({ ids, targetId, ...spec }, ctx) => {
    const store = ctx.store();
    let list = ids ?? [];
    if (targetId !== undefined) {
      if (!store.getTarget(targetId)) throw new StasisError('NOT_FOUND', `Process (target) ${targetId} does not exist; \`stasis list\` shows the targets of the checkpoints.`);
      list = store.list({ targetId }).map((c) => c.id);
      if (list.length === 0) throw new StasisError('NOT_FOUND', `Process (target) ${targetId} has no checkpoints to search.`);
    }
    const callId = ctx.callId ?? null;
    const r = grepCheckpoints(store, {
      ...spec, ids: list,
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      onProgress: progressEvents(ctx, 'search'),
      onHit: (h) => ctx.emit('inspect.hit', { callId, ...hitData(h) }),
    });
    return {
      matches: r.matches.map((m) => ({
        ...hitData(m), first: m.first, last: m.last,
        context: m.context ? { address: hex(m.context.address), bytes: m.context.bytes.toString('hex') } : null,
      })),
      truncated: r.truncated,
      stats: r.stats,
    };
  },
};
