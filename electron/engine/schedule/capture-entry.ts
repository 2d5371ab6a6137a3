/**
 * The capture function schedules use by default: capture's checkpoint() (electron/engine/capture),
 * leaving the target running. A separate module so the scheduler core and its tests can inject
 * another CaptureFn.
 */
import { checkpoint } from '../capture';
import type { CaptureFn } from './scheduler';

export const defaultCapture: CaptureFn = (store, pid, opts) => {
  const r = checkpoint(store, pid, { full: opts.mode === 'full', label: opts.label ?? null, expectStartTime: opts.expectStartTime, ...(opts.name ? { name: opts.name } : {}) });
  return { id: r.id, pid: r.pid, mode: r.mode, dirtyTracking: r.dirtyTracking, frozenMs: r.frozenMs, durationMs: r.durationMs, pagesScanned: r.pagesScanned, pagesWritten: r.pagesWritten, bytesWritten: r.bytesWritten };
};
