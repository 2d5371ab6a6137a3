/**
 * What a handler may use: the store (opened lazily on first use), the store directory, and a way to
 * push events to every connected client. Filled by the engine worker (or the CLI, in-process).
 */
import type { Store } from '../engine/store/api';

export interface HandlerContext {
  storeDir: string;
  store(): Store;
  emit(event: string, payload: unknown): void;
  /** Aborted when the client cancels a long call. */
  signal?: AbortSignal;
  /** The id the client gave this call (its cancel id), echoed in 'op.progress' events; absent when it gave none. */
  callId?: string;
  /** Where the handler runs: the engine worker thread (app, browser mode) or the CLI's own thread. */
  runtime?: 'worker' | 'in-process';
}
