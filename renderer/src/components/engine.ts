/**
 * The screens' typed view of the engine calls and events they use, in one place. Calls go through
 * A's `api` (window.stasis or HTTP+WS); this module never fakes a reply. Where a call was not yet in
 * shared/contract when the screen was written, it is named here as the issue describes it and the
 * engine answers NOT_FOUND until it lands, which the screens show as a readable error.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { api, type CallOptions } from '../api';
import type { OpProgress } from '../../../shared/contract/engine';
import { toErrorData, type StasisErrorData } from '../../../shared/errors';

type LooseApi = {
  call(name: string, input: unknown, opts?: CallOptions): Promise<unknown>;
  on(event: string, listener: (payload: unknown) => void): () => void;
};
const loose = api as unknown as LooseApi;

/**
 * An aborted signal cancels the call: it rejects with CANCELLED and the engine is told to stop.
 * onProgress gets this call's progress; callId (from newCallId) names the call in its events.
 */
export function callEngine<T>(name: string, input: unknown = {}, signal?: AbortSignal, onProgress?: (p: OpProgress) => void, callId?: string): Promise<T> {
  return loose.call(name, input, signal || onProgress || callId ? { signal, onProgress, callId } : undefined) as Promise<T>;
}

export type Loaded<T> =
  | { state: 'loading'; value?: T }
  | { state: 'done'; value: T }
  | { state: 'failed'; error: StasisErrorData; value?: T };

/** One call kept fresh: reload() re-asks the engine; the previous value stays visible while it does. */
export function useEngine<T>(name: string | null, input: unknown = {}): [Loaded<T>, () => void] {
  const [result, setResult] = useState<Loaded<T>>({ state: 'loading' });
  const [generation, setGeneration] = useState(0);
  const key = JSON.stringify(input);
  useEffect(() => {
    if (!name) return;
    let live = true;
    callEngine<T>(name, JSON.parse(key)).then(
      (value) => { if (live) setResult({ state: 'done', value }); },
      (err: unknown) => { if (live) setResult((prev) => ({ state: 'failed', error: toErrorData(err), value: prev.value })); },
    );
    return () => { live = false; };
  }, [name, key, generation]);
  const reload = useCallback(() => {
    setResult((prev) => ({ state: 'loading', value: prev.value }));
    setGeneration((g) => g + 1);
  }, []);
  return [result, reload];
}

/** Subscribes to pushed engine events for the life of the component. */
export function useEngineEvents(events: string[], listener: (event: string, payload: unknown) => void): void {
  const ref = useRef(listener);
  useEffect(() => { ref.current = listener; });
  const key = events.join('\n');
  useEffect(() => {
    const offs = key.split('\n').filter(Boolean).map((e) => loose.on(e, (p) => ref.current(e, p)));
    return () => { for (const off of offs) off(); };
  }, [key]);
}

/**
 * A user-started operation: running flag, last error, and a runner that catches into that error.
 * The runner hands fn an AbortSignal; cancel() aborts it (the UI's Cancel button), after which the
 * operation ends with `cancelled` set instead of an error. fn also gets onProgress to pass to its
 * engine call: `progress` is then the call's latest progress while it runs (null before the first).
 */
export interface Action {
  running: boolean;
  error: StasisErrorData | null;
  cancelled: boolean;
  progress: OpProgress | null;
  run: <T>(fn: (signal: AbortSignal, onProgress: (p: OpProgress) => void) => Promise<T>) => Promise<T | undefined>;
  cancel: () => void;
  clear: () => void;
}

export function useAction(): Action {
  const [running, setRunning] = useState(false);
  const [error, setError] = useState<StasisErrorData | null>(null);
  const [cancelled, setCancelled] = useState(false);
  const [progress, setProgress] = useState<OpProgress | null>(null);
  const controller = useRef<AbortController | null>(null);
  const run = useCallback(async <T,>(fn: (signal: AbortSignal, onProgress: (p: OpProgress) => void) => Promise<T>): Promise<T | undefined> => {
    const c = new AbortController();
    controller.current = c;
    setRunning(true);
    setError(null);
    setCancelled(false);
    setProgress(null);
    // A late event of an earlier run (the reply can overtake its last event) must not show here.
    const onProgress = (p: OpProgress): void => { if (controller.current === c) setProgress(p); };
    try {
      return await fn(c.signal, onProgress);
    } catch (err) {
      if (c.signal.aborted) setCancelled(true);
      else setError(toErrorData(err));
      return undefined;
    } finally {
      if (controller.current === c) controller.current = null;
      setRunning(false);
      setProgress(null);
    }
  }, []);
  const cancel = useCallback(() => { controller.current?.abort(); }, []);
  // A dialog closed while its operation runs cancels it.
  useEffect(() => () => { controller.current?.abort(); }, []);
  const clear = useCallback(() => { setError(null); setCancelled(false); }, []);
  return { running, error, cancelled, progress, run, cancel, clear };
}
