/**
 * Cancellation of the store's long operations (export, import, verify, gc): one check, called at
 * natural boundaries (per checkpoint, per segment, per block of pages). Owns only the check and the
 * error's wording; the callers own leaving the store as it was. Must never clean anything up itself.
 */
import { StasisError } from '../../../shared/errors';

/** Throws CANCELLED ("<operation> was cancelled; <state>.") when signal is aborted. */
export function throwIfCancelled(signal: AbortSignal | undefined, operation: string, state: string): void {
  if (signal?.aborted) throw new StasisError('CANCELLED', `${operation} was cancelled; ${state}.`);
}

export function isCancelled(e: unknown): boolean {
  return e instanceof StasisError && e.code === 'CANCELLED';
}
