/**
 * Turns an engine operation's progress reports into 'op.progress' events for the clients, tagged
 * with the id the client gave the call (the one that cancels it), so a window can tell its own
 * calls' progress from another window's. The engine already throttles; this only tags and emits.
 */
import type { ProgressOp } from '../../shared/contract/engine';
import type { EventPayload } from '../../shared/contract';
import type { ProgressFn } from '../engine/progress';
import type { HandlerContext } from './context';

export function progressEvents(ctx: HandlerContext, op: ProgressOp): ProgressFn {
  const callId = ctx.callId ?? null;
  return (p) => ctx.emit('op.progress', { callId, op, ...p } satisfies EventPayload<'op.progress'>);
}
