/**
 * Turns an engine operation's progress reports into 'op.progress' events for the clients, tagged
 * with the id the client gave the call (the one that cancels it), so a window can tell its own
 * calls' progress from another window's. The engine already throttles; this only tags and emits.
 */
import type { ProgressOp } from '../../shared/contract/engine';
import type { EventPayload } from '../../shared/contract';
import type { ProgressFn } from '../engine/progress';
import type { HandlerContext } from './context';

/**
 * Nothing (no reports, so no up-front page count either) when the caller gave no call id: no
 * client could tell whose progress it is, and counting costs a capture 8-65 ms per 256 MiB.
 */
export function progressEvents(ctx: HandlerContext, op: ProgressOp): ProgressFn | undefined {
  const callId = ctx.callId;
  if (callId === undefined) return undefined;
  return (p) => ctx.emit('op.progress', { callId, op, ...p } satisfies EventPayload<'op.progress'>);
}
