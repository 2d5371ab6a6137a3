/**
 * The screens' typed view of the engine calls and events they use, in one place. Calls go through
 * A's `api` (window.stasis or HTTP+WS); this module never fakes a reply. Where a call was not yet in
 * shared/contract when the screen was written, it is named here as the issue describes it and the
 * engine answers NOT_FOUND until it lands, which the screens show as a readable error.
 */
import { useCallback, useEffect, useRef, useState } from 'react';
import { api } from '../api';
import { toErrorData, type StasisErrorData } from '../../../shared/errors';

type LooseApi = {
  call(name: string, input: unknown): Promise<unknown>;
  on(event: string, listener: (payload: unknown) => void): () => void;
};
const loose = api as unknown as LooseApi;

export function callEngine<T>(name: string, input: unknown = {}): Promise<T> {
  return loose.call(name, input) as Promise<T>;
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

/** A user-started operation: running flag, last error, and a runner that catches into that error. */
export function useAction(): { running: boolean; error: StasisErrorData | null; run: <T>(fn: () => Promise<T>) => Promise<T | undefined>; clear: () => void } {
  const [running, setRunning] = useState(false);
  const [error, setError] = useState<StasisErrorData | null>(null);
  const run = useCallback(async <T,>(fn: () => Promise<T>): Promise<T | undefined> => {
    setRunning(true);
    setError(null);
    try {
      return await fn();
    } catch (err) {
      setError(toErrorData(err));
      return undefined;
    } finally {
      setRunning(false);
    }
  }, []);
  const clear = useCallback(() => setError(null), []);
  return { running, error, run, clear };
}
