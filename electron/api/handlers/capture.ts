/** Handlers for shared/contract/capture.ts. */
import type { HandlerMap } from '../handler-types';
import type { captureCalls } from '../../../shared/contract/capture';

export const captureHandlers: HandlerMap<typeof captureCalls> = {
};
