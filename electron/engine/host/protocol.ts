/**
 * Messages between the engine host (UI side: Electron main or the browser-mode server) and the
 * engine worker thread. Structured-clone only; no functions, no class instances.
 */
import type { Reply } from '../../../shared/contract';

export interface WorkerInit {
  storeDir: string;
}

export type ToWorker =
  /** cancel: a SharedArrayBuffer(4) the host sets to 1 on cancel, so synchronous handlers can poll it. */
  | { type: 'call'; id: number; name: string; input: unknown; cancel: SharedArrayBuffer; callId?: string }
  | { type: 'cancel'; id: number }
  | { type: 'shutdown' };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'reply'; id: number; reply: Reply<unknown> }
  | { type: 'event'; event: string; payload: unknown };
