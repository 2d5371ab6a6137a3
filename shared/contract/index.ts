/**
 * The one contract between the renderer (or any client: CLI, browser) and the engine.
 * Each subsystem owns its own file; this one only assembles them.
 */
import type { z } from 'zod';
import type { StasisErrorData } from '../errors';
import { engineCalls, engineEvents } from './engine';
import { storeCalls, storeEvents } from './store';
import { captureCalls, captureEvents } from './capture';
import { restoreCalls, restoreEvents } from './restore';
import { scheduleCalls, scheduleEvents } from './schedule';
import { inspectCalls, inspectEvents } from './inspect';
import { transferCalls, transferEvents } from './transfer';

export const calls = { ...engineCalls, ...storeCalls, ...captureCalls, ...restoreCalls, ...scheduleCalls, ...inspectCalls, ...transferCalls };
export const events = { ...engineEvents, ...storeEvents, ...captureEvents, ...restoreEvents, ...scheduleEvents, ...inspectEvents, ...transferEvents };

export type Calls = typeof calls;
export type CallName = keyof Calls & string;
export type CallInput<N extends CallName> = z.input<Calls[N]['input']>;
export type CallOutput<N extends CallName> = z.output<Calls[N]['output']>;
export type Events = typeof events;
export type EventName = keyof Events & string;
export type EventPayload<E extends EventName> = z.output<Events[E]>;

/** Every reply on every transport. */
export type Reply<T> = { ok: true; value: T } | { ok: false; error: StasisErrorData };

/** What the renderer sees as window.stasis (Electron preload) or builds over HTTP + WebSocket (browser mode). */
export interface StasisApi {
  call<N extends CallName>(name: N, input: CallInput<N>): Promise<CallOutput<N>>;
  on<E extends EventName>(event: E, listener: (payload: EventPayload<E>) => void): () => void;
}

export function isCallName(name: unknown): name is CallName {
  return typeof name === 'string' && Object.prototype.hasOwnProperty.call(calls, name);
}
