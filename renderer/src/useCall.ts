/** A React hook for one API call: loading / value / error, and a way to run it again. */
import { useCallback, useEffect, useState } from 'react';
import type { CallInput, CallName, CallOutput } from '../../shared/contract';
import { toErrorData, type StasisErrorData } from '../../shared/errors';
import { api } from './api';

export type CallState<T> =
  | { state: 'loading' }
  | { state: 'done'; value: T }
  | { state: 'failed'; error: StasisErrorData };

export function useCall<N extends CallName>(name: N, input: CallInput<N>): [CallState<CallOutput<N>>, () => void] {
  const [result, setResult] = useState<CallState<CallOutput<N>>>({ state: 'loading' });
  const [generation, setGeneration] = useState(0);
  const key = JSON.stringify(input);
  useEffect(() => {
    let live = true;
    api.call(name, JSON.parse(key) as CallInput<N>).then(
      (value) => { if (live) setResult({ state: 'done', value }); },
      (err: unknown) => { if (live) setResult({ state: 'failed', error: toErrorData(err) }); },
    );
    return () => { live = false; };
  }, [name, key, generation]);
  // A value already shown stays until the new one arrives: a page re-read on every engine event
  // (a schedule's runs and sends) would otherwise blank its table, and its buttons, each time.
  const reload = useCallback(() => { setResult((r) => (r.state === 'done' ? r : { state: 'loading' })); setGeneration((g) => g + 1); }, []);
  return [result, reload];
}
