/**
 * The capture function schedules use by default: capture's checkpoint, or its tree checkpoint when
 * the target has children (capture/scope.ts), leaving the target running. A separate module so the
 * scheduler core and its tests can inject another CaptureFn.
 */
import { checkpointScoped } from '../capture/scope';
import type { CaptureFn } from './scheduler';

export const defaultCapture: CaptureFn = (store, pid, opts) => {
  // A process with children gets a tree checkpoint, as from the CLI and the app (capture/scope.ts).
  const { result: r } = checkpointScoped(store, pid, { full: opts.mode === 'full', label: opts.label ?? null, expectStartTime: opts.expectStartTime, ...(opts.name ? { name: opts.name } : {}) });
  return { id: r.id, pid: r.pid, mode: r.mode, dirtyTracking: 'dirtyTracking' in r ? r.dirtyTracking : 'hash', frozenMs: r.frozenMs, durationMs: r.durationMs, pagesScanned: r.pagesScanned, pagesWritten: r.pagesWritten, bytesWritten: r.bytesWritten };
};
