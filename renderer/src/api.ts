/**
 * The renderer's one way to the engine: window.stasis when the Electron preload provides it,
 * otherwise the same StasisApi over HTTP (calls) + WebSocket (events) to the browser-mode server,
 * which authenticates this page by its HttpOnly cookie. Browser code only: no Node, no Electron.
 */
import type { CallInput, CallName, CallOutput, EventName, EventPayload, Reply, StasisApi } from '../../shared/contract';
import type { OpProgress, StasisBridge } from '../../shared/contract/engine';
import { StasisError, toErrorData, errorCodes, type ErrorCode } from '../../shared/errors';

declare global {
  interface Window { stasis?: StasisBridge }
}

/**
 * Per-call options of the renderer's client; an aborted signal cancels the call, and onProgress
 * gets the engine's 'op.progress' events of this call (and no other window's).
 */
export interface CallOptions {
  signal?: AbortSignal;
  onProgress?: (p: OpProgress) => void;
  /** The call's id (newCallId()), for a caller that follows the call's own events (inspect.hit). */
  callId?: string;
}

/**
 * StasisApi plus cancellation. The extra argument is optional, so a ClientApi is a StasisApi.
 * A cancelled call rejects with CANCELLED at once; the engine is told to stop (see README: which
 * operations stop early and which finish their current work first).
 */
export interface ClientApi extends StasisApi {
  call<N extends CallName>(name: N, input: CallInput<N>, opts?: CallOptions): Promise<CallOutput<N>>;
}

function cancelledError(name: string): StasisError {
  return new StasisError('CANCELLED', `${name} was cancelled.`);
}

/** The preload can only pass a message across contextBridge; it prefixes the code as "[CODE] ". */
function fromBridgeError(err: unknown): StasisError {
  const message = err instanceof Error ? err.message : String(err);
  const m = /^(?:Error invoking remote method '[^']*': )?(?:Error: )?\[([A-Z_]+)\] ([\s\S]*)$/.exec(message);
  if (m && (errorCodes as readonly string[]).includes(m[1])) return new StasisError(m[1] as ErrorCode, m[2]);
  return new StasisError('INTERNAL', message);
}

let nextCallId = 1;
// Progress events go to every window and tab: a per-page prefix keeps this page's ids its own.
const pagePrefix = Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) => b.toString(16).padStart(2, '0')).join('');

/** A fresh id for one call: it cancels the call (Electron) and tags its progress events. */
export function newCallId(): string {
  return `${pagePrefix}-${nextCallId++}`;
}

/** Calls onProgress with the progress events of call callId until the returned function is called. */
export function followProgress(callId: string, onProgress: ((p: OpProgress) => void) | undefined): () => void {
  if (!onProgress) return () => {};
  return api.on('op.progress', (p) => { if (p.callId === callId) onProgress(p); });
}

/** An AbortSignal cannot cross contextBridge: the call carries an id, and cancel(id) names it. */
function electronApi(bridge: StasisBridge): ClientApi {
  return {
    call<N extends CallName>(name: N, input: CallInput<N>, opts?: CallOptions): Promise<CallOutput<N>> {
      const signal = opts?.signal;
      if (signal?.aborted) return Promise.reject(cancelledError(name));
      const callId = opts?.callId ?? newCallId();
      const stop = followProgress(callId, opts?.onProgress);
      const reply = bridge.call(name, input, callId).catch((err: unknown) => { throw fromBridgeError(err); }).finally(stop);
      if (!signal) return reply;
      return new Promise<CallOutput<N>>((resolve, reject) => {
        const onAbort = (): void => { bridge.cancel(callId); reject(cancelledError(name)); };
        signal.addEventListener('abort', onAbort, { once: true });
        reply.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
      });
    },
    on: (event, listener) => bridge.on(event, listener),
  };
}

type Listener = (payload: unknown) => void;

function httpApi(): ClientApi {
  const listeners = new Map<string, Set<Listener>>();
  let socket: WebSocket | null = null;
  let retry = 500;

  const connect = (): void => {
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/events`);
    socket = ws;
    ws.onmessage = (m) => {
      let msg: { event?: unknown; payload?: unknown };
      try { msg = JSON.parse(String(m.data)) as typeof msg; } catch { return; }
      if (typeof msg.event !== 'string') return;
      for (const l of listeners.get(msg.event) ?? []) l(msg.payload);
    };
    ws.onopen = () => { retry = 500; };
    ws.onclose = () => {
      socket = null;
      // The server may be restarting; keep trying while someone listens.
      if (listeners.size) setTimeout(connect, retry = Math.min(retry * 2, 10_000));
    };
  };

  async function post<N extends CallName>(name: N, input: CallInput<N>, callId: string, signal: AbortSignal | undefined): Promise<CallOutput<N>> {
    let res: Response;
    try {
      // Aborting the request closes its connection; the server cancels the engine call on close.
      res = await fetch(`/api/call/${encodeURIComponent(name)}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Stasis-Call': callId },
        body: JSON.stringify(input ?? {}),
        credentials: 'same-origin',
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      if (signal?.aborted) throw cancelledError(name);
      throw new StasisError('INTERNAL', `Could not reach the Stasis server (${err instanceof Error ? err.message : String(err)}); is it still running?`);
    }
    let reply: Reply<CallOutput<N>>;
    try {
      reply = (await res.json()) as Reply<CallOutput<N>>;
    } catch {
      if (signal?.aborted) throw cancelledError(name);
      throw new StasisError('INTERNAL', `The Stasis server answered ${res.status} without a JSON reply.`);
    }
    if (reply.ok) return reply.value;
    const e = toErrorData(reply.error);
    throw new StasisError(e.code, e.message, e.detail);
  }

  return {
    async call<N extends CallName>(name: N, input: CallInput<N>, opts?: CallOptions): Promise<CallOutput<N>> {
      const callId = opts?.callId ?? newCallId();
      const stop = followProgress(callId, opts?.onProgress);
      try {
        return await post(name, input, callId, opts?.signal);
      } finally {
        stop();
      }
    },
    on<E extends EventName>(event: E, listener: (payload: EventPayload<E>) => void): () => void {
      let set = listeners.get(event);
      if (!set) listeners.set(event, (set = new Set()));
      set.add(listener as Listener);
      if (!socket) connect();
      return () => {
        set.delete(listener as Listener);
        if (set.size === 0) listeners.delete(event);
      };
    },
  };
}

export const api: ClientApi = window.stasis ? electronApi(window.stasis) : httpApi();
export const transport: 'electron' | 'browser' = window.stasis ? 'electron' : 'browser';
